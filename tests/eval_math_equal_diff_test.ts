// Differential corpus for mathEqual (src/eval/math_equal.ts) against two references RL papers
// use, generated once by scripts/fixtures/make_math_equal_fixtures.py: a sympy-based grader in
// the Qwen2.5-Math style and math-verify's documented rules. Where both references agree, mathEqual
// must agree; where it differs from one of them, the difference is listed below with its reason,
// and the list must stay exact (a fixed or a new difference fails the test).
import assert from "node:assert/strict";
import { mathEqual } from "../src/eval/math_equal.ts";

interface Pair {
  category: string;
  a: string;
  b: string;
  sympy: boolean | null;
  math_verify: boolean | null;
}

/** `reference: a ␟ b` → why mathEqual answers otherwise. */
const KNOWN: Record<string, string> = {
  "math_verify: 3.14159 ␟ \\pi":
    "relative tolerance 1e-6 (|3.14159 − π| / π = 8e-7); math-verify rounds to 6 decimals first",
  "math_verify: 50\\% ␟ 50":
    "a percentage also reads as its number (as the sympy grader does); math-verify only as 0.5",
  "math_verify: 25 ␟ 25\\%": "as above",
  "sympy: [1,2) ␟ (1,2)":
    "intervals with different brackets are different sets; the sympy grader ignores bracket kinds",
  "sympy: [0,1] ␟ (0,1)": "as above",
  "sympy: \\{1,2\\} ␟ \\{2,1\\}":
    "sets and bare lists of solutions compare in any order; the sympy grader compares in order",
  "sympy: 1, 2 ␟ 2, 1": "as above",
  "sympy: -2, 3 ␟ 3, -2": "as above",
  "sympy: \\{-1, 1\\} ␟ \\{1, -1\\}": "as above",
  "sympy: B ␟ b":
    "case matters (choices, variables); the sympy grader lower-cases before comparing strings",
  "sympy: 1 ␟ 1.0001":
    "relative tolerance 1e-6; the sympy grader's 1e-4 accepts near misses as equal",
  "sympy: 1/3 ␟ 0.3333": "as above",
  "sympy: 13535 ␟ 13536": "as above: two different integers within 1e-4 of each other",
};

Deno.test("mathEqual agrees with the references, and its differences are the documented ones", async () => {
  const doc = JSON.parse(
    await Deno.readTextFile(
      new URL("./fixtures/math_equal/differential.json", import.meta.url),
    ),
  ) as { pairs: Pair[] };
  assert.ok(doc.pairs.length >= 150, `${doc.pairs.length} pairs`);
  const differences = new Set<string>();
  const againstBoth: string[] = [];
  let compared = 0;
  for (const p of doc.pairs) {
    const ours = mathEqual(p.a, p.b);
    const refs = { sympy: p.sympy, math_verify: p.math_verify };
    if (p.sympy !== null && p.sympy === p.math_verify) {
      compared++;
      if (ours !== p.sympy) {
        againstBoth.push(`${p.category}: ${p.a} vs ${p.b} (refs say ${p.sympy})`);
      }
    }
    for (const [ref, v] of Object.entries(refs)) {
      if (v !== null && v !== ours) differences.add(`${ref}: ${p.a} ␟ ${p.b}`);
    }
  }
  assert.ok(compared >= 120, `${compared} pairs where the references agree`);
  assert.deepEqual(againstBoth, [], "pairs where both references disagree with mathEqual");
  assert.deepEqual([...differences].sort(), Object.keys(KNOWN).sort());
});
