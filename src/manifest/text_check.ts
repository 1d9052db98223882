/**
 * Text a manifest may hold: every string and key is well-formed Unicode (no lone surrogates from
 * `"\ud800"` escapes, which cannot be hashed as UTF-8 faithfully) without NUL or other control
 * characters (tab, newline and carriage return are allowed in values), and nesting is bounded.
 * These reach names, records and the run id, where they would be invisible or ambiguous.
 */
import type { Problem } from "./problems.ts";

/** Deepest nesting of maps and lists accepted. */
export const MAX_DEPTH = 64;

// deno-lint-ignore no-control-regex
const VALUE_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/;
// deno-lint-ignore no-control-regex
const KEY_CONTROL = /[\u0000-\u001f\u007f]/;

function textProblem(s: string, re: RegExp): string | undefined {
  if (!s.isWellFormed()) return "text with a lone UTF-16 surrogate (not valid Unicode)";
  const m = re.exec(s);
  if (m) {
    const c = m[0].charCodeAt(0).toString(16).padStart(4, "0").toUpperCase();
    return `text holding the control character U+${c} at offset ${m.index}`;
  }
  return undefined;
}

/** Problems of the strings, keys and nesting in a parsed manifest value. */
export function textProblems(root: unknown): Problem[] {
  const problems: Problem[] = [];
  const stack: { v: unknown; path: PropertyKey[] }[] = [{ v: root, path: [] }];
  while (stack.length && problems.length < 100) {
    const { v, path } = stack.pop()!;
    if (typeof v === "string") {
      const p = textProblem(v, VALUE_CONTROL);
      if (p) problems.push({ path, expected: "printable text", found: p, at: "value" });
      continue;
    }
    if (v === null || typeof v !== "object") continue;
    if (path.length >= MAX_DEPTH) {
      problems.push({
        path,
        expected: `at most ${MAX_DEPTH} levels of nested maps and lists`,
        found: "deeper nesting",
        at: "value",
      });
      continue;
    }
    const entries: [PropertyKey, unknown][] = Array.isArray(v)
      ? v.map((x, i) => [i, x])
      : Object.entries(v as Record<string, unknown>);
    for (const [k, x] of entries.reverse()) {
      if (typeof k === "string") {
        const p = textProblem(k, KEY_CONTROL);
        if (p) {
          problems.push({ path: [...path, k], expected: "a printable key", found: p, at: "key" });
          continue;
        }
      }
      stack.push({ v: x, path: [...path, k] });
    }
  }
  return problems;
}
