/**
 * Synthetic multi-step integer arithmetic that needs the python tool: products of 3–5 digit
 * numbers, sums of products, longer mixed expressions, word problems and problems with distractor
 * numbers. Seeded; the splits never share a computation (the canonical expression is unique across
 * train, rl and test).
 *
 * Headroom for RL by design (../shared/EXPERIMENTS.md): the `train` split and its demonstrations
 * use `demo_forms` only (by default bare products and sums of products); `rl` and `test` draw from
 * `forms`, which by default adds forms the demonstrations never show (mixed operators with more
 * terms, word problems, distractor numbers).
 *
 * Demonstrations follow the tag protocol exactly:
 * `<think>…</think><python>print(EXPR)</python> <result>\nVALUE\n</result><answer>\boxed{VALUE}</answer>`
 * where VALUE is what `print(EXPR)` prints in Python (exact integers; computed here with BigInt).
 */
import {
  ArpoError,
  buildPrompt,
  defineBenchmark,
  frameResult,
  mathEqual,
  normalizeMath,
  promptTools,
  type Stream,
  stream,
  type Task,
  z,
} from "arpo-lab";

export const FORMS = [
  "product",
  "sum_of_products",
  "mixed",
  "chain",
  "word",
  "distractor",
] as const;
export type Form = typeof FORMS[number];

const range = z.tuple([z.number().int().min(1), z.number().int().min(1)]).refine(
  ([a, b]) => a <= b,
  "expected [min, max] with min ≤ max",
);

const options = z.object({
  /** Seed of the generated problems (default: the experiment seed). */
  seed: z.number().int().optional(),
  /** Digits per operand, [min, max]. */
  digits: range.default([3, 5]),
  /** Operands per expression, [min, max] (sums of products count products). */
  terms: range.default([2, 3]),
  /** Extra operands the `chain` form adds beyond terms[1]. */
  extra_terms: z.number().int().min(1).max(6).default(2),
  /** Operators of `mixed` / `chain` expressions. */
  operators: z.array(z.enum(["+", "-", "*"])).min(1).default(["+", "-", "*"]),
  /** Forms of the rl and test splits. */
  forms: z.array(z.enum(FORMS)).min(1).default([...FORMS]),
  /** Forms of the train split (and so of the SFT demonstrations). */
  demo_forms: z.array(z.enum(FORMS)).min(1).default(["product", "sum_of_products"]),
  sizes: z.object({
    train: z.number().int().min(0).default(1000),
    rl: z.number().int().min(0).default(500),
    test: z.number().int().min(0).default(200),
  }).strict().default({ train: 1000, rl: 500, test: 200 }),
  /** Tools the system prompt describes. */
  tools: z.array(z.string()).default(["python"]),
  /**
   * Replaces the whole system prompt; null drops it (small byte-level models trained here learn
   * the protocol from demonstrations and have no room for a long preamble).
   */
  system: z.string().nullable().optional(),
  /**
   * Demonstration style: `full` prose reasoning; `short` (the protocol with minimal text, one
   * call); `steps` (one python call per additive term, each call after the first building on the
   * value the previous result printed, so the query right after a result depends on it).
   */
  demo_style: z.enum(["full", "short", "steps"]).default("full"),
}).strict();

type Options = z.output<typeof options>;

/** One generated problem: the text, the Python expression that solves it, its value. */
export interface ArithProblem {
  form: Form;
  question: string;
  expression: string;
  value: bigint;
}

function operand(rng: Stream, o: Options): bigint {
  const d = rng.range(o.digits[0], o.digits[1]);
  const lo = 10 ** (d - 1), hi = 10 ** d - 1;
  return BigInt(rng.range(lo, hi));
}

/** Evaluate `a op b op c …` with * before + and − (Python precedence), exactly. */
export function evalExpr(nums: bigint[], ops: string[]): bigint {
  const terms: bigint[] = [nums[0]];
  const signs: number[] = [1];
  for (let i = 0; i < ops.length; i++) {
    if (ops[i] === "*") terms[terms.length - 1] *= nums[i + 1];
    else {
      terms.push(nums[i + 1]);
      signs.push(ops[i] === "+" ? 1 : -1);
    }
  }
  return terms.reduce((acc, t, i) => acc + (signs[i] > 0 ? t : -t), 0n);
}

function render(nums: bigint[], ops: string[]): string {
  let s = String(nums[0]);
  for (let i = 0; i < ops.length; i++) s += ` ${ops[i]} ${nums[i + 1]}`;
  return s;
}

const PLACES = ["warehouse", "library", "bakery", "orchard", "factory", "stadium", "harbour"];
const UNITS: [string, string][] = [
  ["crates", "bottles"],
  ["shelves", "books"],
  ["trays", "rolls"],
  ["rows", "trees"],
  ["pallets", "parts"],
  ["sections", "seats"],
  ["containers", "boxes"],
];

/** Draw one problem of a form. */
export function makeProblem(form: Form, rng: Stream, o: Options): ArithProblem {
  const n = () => operand(rng, o);
  const count = (lo: number, hi: number) => rng.range(lo, hi);
  switch (form) {
    case "product": {
      const k = count(o.terms[0], o.terms[1]);
      const nums = Array.from({ length: k }, n);
      const ops = new Array(k - 1).fill("*");
      const e = render(nums, ops);
      return { form, question: `What is ${e}?`, expression: e, value: evalExpr(nums, ops) };
    }
    case "sum_of_products": {
      const k = count(o.terms[0], o.terms[1]);
      const nums: bigint[] = [], ops: string[] = [];
      for (let i = 0; i < k; i++) {
        if (i > 0) ops.push("+");
        nums.push(n(), n());
        ops.push("*");
      }
      const e = render(nums, ops);
      return { form, question: `What is ${e}?`, expression: e, value: evalExpr(nums, ops) };
    }
    case "mixed":
    case "chain": {
      const k = form === "mixed"
        ? count(Math.max(3, o.terms[0]), Math.max(3, o.terms[1]))
        : count(o.terms[1] + 1, o.terms[1] + o.extra_terms);
      const nums = Array.from({ length: k }, n);
      const ops = Array.from({ length: k - 1 }, () => o.operators[rng.int(o.operators.length)]);
      const e = render(nums, ops);
      const q = form === "mixed"
        ? `Compute ${e}.`
        : `Evaluate the following expression exactly: ${e}`;
      return { form, question: q, expression: e, value: evalExpr(nums, ops) };
    }
    case "word": {
      const p = rng.int(PLACES.length);
      const [box, item] = UNITS[p];
      const [a, b, c, d] = [n(), n(), n(), n()];
      const e = `${a} * ${b} + ${c} * ${d}`;
      const q = `A ${PLACES[p]} has ${a} ${box} with ${b} ${item} each. A delivery adds ${c} ` +
        `more ${box} with ${d} ${item} each. How many ${item} does the ${PLACES[p]} have now?`;
      return { form, question: q, expression: e, value: evalExpr([a, b, c, d], ["*", "+", "*"]) };
    }
    case "distractor": {
      const p = rng.int(PLACES.length);
      const [box, item] = UNITS[p];
      const [a, b] = [n(), n()];
      const year = rng.range(1900, 2020), staff = rng.range(12, 987);
      const e = `${a} * ${b}`;
      const q = `A ${PLACES[p]} opened in ${year} and employs ${staff} people. It has ${a} ` +
        `${box} with ${b} ${item} each. How many ${item} are there in total?`;
      return { form, question: q, expression: e, value: a * b };
    }
  }
}

/**
 * The demonstration response for a problem (exactly what the tools print, framed as the rollout
 * frames results: `frameResult`). `short` keeps the
 * protocol but drops the prose, for small models whose cost grows with every token; `steps` makes
 * one call per additive term (arithSteps).
 */
export function arithDemonstration(
  p: ArithProblem,
  style: "full" | "short" | "steps" = "full",
): string {
  const value = p.value.toString();
  if (style === "steps") {
    const calls = arithSteps(p.expression).map((s) =>
      `<python>print(${s.code})</python>${frameResult(String(s.value), ["python"])}`
    );
    return `<think>Use Python.</think>${calls.join("")}<answer>\\boxed{${value}}</answer>`;
  }
  const think = style === "short"
    ? "<think>Use Python.</think>"
    : `<think>I need ${p.expression}; the numbers are too large to multiply reliably in my ` +
      `head, so I will use Python.</think>`;
  const answer = style === "short" ? `\\boxed{${value}}` : `The answer is \\boxed{${value}}.`;
  return `${think}<python>print(${p.expression})</python>${frameResult(value, ["python"])}` +
    `<answer>${answer}</answer>`;
}

/** One python call of a `steps` demonstration: its code and what it prints. */
export interface ArithStep {
  code: string;
  value: bigint;
}

/**
 * The calls that compute `expression` one additive term at a time: the first computes the first
 * term (with any plain numbers before the first product), each later one adds or subtracts the
 * next term to the value the previous call printed: `a * b + c * d` → `print(a * b)` → X, then
 * `print(X + c * d)`.
 */
export function arithSteps(expression: string): ArithStep[] {
  const tokens = expression.split(" ");
  // Additive terms with their signs: [["+", "a * b"], ["-", "c"], …].
  const terms: [string, string[]][] = [["+", [tokens[0]]]];
  for (let i = 1; i < tokens.length; i += 2) {
    const op = tokens[i], num = tokens[i + 1];
    if (op === "*") terms[terms.length - 1][1].push("*", num);
    else terms.push([op, [num]]);
  }
  const run = (code: string): ArithStep => {
    const parts = code.split(" ");
    const nums = parts.filter((_, i) => i % 2 === 0).map((x) => BigInt(x));
    return { code, value: evalExpr(nums, parts.filter((_, i) => i % 2 === 1)) };
  };
  const steps: ArithStep[] = [];
  let code = terms[0][1].join(" ");
  for (const [op, parts] of terms.slice(1)) {
    // Plain numbers so far need no call of their own: they join the next term.
    if (!code.includes("*")) {
      code += ` ${op} ${parts.join(" ")}`;
      continue;
    }
    const step = run(code);
    steps.push(step);
    code = `${step.value} ${op} ${parts.join(" ")}`;
  }
  steps.push(run(code));
  return steps;
}

/** An answer written as an integer (`1926`, `1,926`, `1926.0`, `$-1926$`), exactly; else null. */
function integerAnswer(answer: string): bigint | null {
  // Drop a zero fraction first: normalizeMath reads decimals as floats, which lose digits.
  let s = normalizeMath(answer.replace(/(\d)\.0+(?!\d)/g, "$1"));
  if (/^-?\d{1,3}(,\d{3})+$/.test(s)) s = s.replaceAll(",", "");
  return /^-?\d+$/.test(s) ? BigInt(s) : null;
}

/**
 * The arith benchmark's correctness: mathematical equality with the exact value. An answer
 * written as an integer is compared exactly (the values have up to ~25 digits, where a float
 * tolerance would accept a wrong last digit); any other form (`\frac{3852}{2}`) by `mathEqual`
 * without tolerance. So `\boxed{1926.0}` and `\boxed{1,926}` answer 1926.
 */
export function arithCorrect(answer: string, gold: string): boolean {
  const a = integerAnswer(answer), g = integerAnswer(gold);
  if (a !== null && g !== null) return a === g;
  return mathEqual(answer, gold, { relTol: 0, absTol: 0 });
}

/** Generate the three splits: test first, then rl, then train, skipping used expressions. */
export function generateArith(o: Options, root: Stream): Record<string, ArithProblem[]> {
  const used = new Set<string>();
  const out: Record<string, ArithProblem[]> = {};
  for (const split of ["test", "rl", "train"] as const) {
    const forms = split === "train" ? o.demo_forms : o.forms;
    const list: ArithProblem[] = [];
    for (let i = 0; i < o.sizes[split]; i++) {
      let made: ArithProblem | null = null;
      for (let attempt = 0; attempt < 100 && !made; attempt++) {
        const rng = root.child(split, i, attempt);
        const form = forms[rng.int(forms.length)];
        const p = makeProblem(form, rng, o);
        if (!used.has(p.expression)) made = p;
      }
      if (!made) {
        throw new ArpoError(
          `arith: cannot draw ${o.sizes[split]} distinct ${split} problems with digits ` +
            `${JSON.stringify(o.digits)} and terms ${
              JSON.stringify(o.terms)
            }; widen them or ask for fewer`,
        );
      }
      used.add(made.expression);
      list.push(made);
    }
    out[split] = list;
  }
  return out;
}

export default defineBenchmark({
  description: "synthetic multi-step integer arithmetic that needs the python tool",
  options,
  create(o, ctx) {
    // keyed by the seed only (not the plugin's name), so every instance sees the same problems
    const problems = generateArith(o, stream(o.seed ?? ctx.seed, "benchmark", "arith"));
    const tools = promptTools(o.tools);
    const tasks: Record<string, Task[]> = {};
    for (const [split, list] of Object.entries(problems)) {
      tasks[split] = list.map((p, i) => ({
        id: `${split}-${i}`,
        prompt: buildPrompt(p.question, { tools, system: o.system }),
        answers: [p.value.toString()],
        meta: { form: p.form, expression: p.expression },
      }));
    }
    const check = (split: string) => {
      if (!(split in tasks)) {
        throw new ArpoError(`${ctx.name}: no split '${split}' (splits: train, rl, test)`);
      }
    };
    return {
      splits: ["train", "rl", "test"],
      tasks(split: string) {
        check(split);
        return tasks[split];
      },
      correct: (answer: string, task: Task) => task.answers.some((a) => arithCorrect(answer, a)),
      demonstrations(split: string) {
        check(split);
        return problems[split].map((p, i) => ({
          taskId: tasks[split][i].id,
          prompt: tasks[split][i].prompt,
          response: arithDemonstration(p, o.demo_style),
        }));
      },
    };
  },
});
