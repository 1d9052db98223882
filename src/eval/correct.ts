/**
 * Whether a sample is correct: the benchmark's own judgement (Benchmark.correct), never the
 * reward's value. This is what accuracy and pass@k count (the eval stage, the rl stage's
 * evaluation); a reward may add bonuses or partial credit (token F1 of 0.9 plus a 0.1 multi-tool
 * bonus is a reward of 1.0 and still a wrong answer).
 *
 * A response that breaks the tag protocol (`checkFormat` with the stage's tool tags) or has no
 * `\boxed{…}` in `<answer>` is incorrect without asking the benchmark; otherwise its final answer
 * (the last `\boxed{…}` in `<answer>`, `boxedAnswer`) goes to the benchmark's `correct`, or to
 * `defaultCorrect` (exact match after SQuAD normalization against any accepted answer). All of
 * it is read from the model's own text (`modelText`): a tool result that prints an answer is not
 * the model's answer.
 */
import { ArpoError, describeError } from "../errors.ts";
import type { Benchmark, Task } from "../plugin/contracts.ts";
import { exactMatch } from "./f1.ts";
import { boxedAnswer, checkFormat, modelText, type ResponseLike } from "./protocol.ts";

/**
 * The correctness of a benchmark that declares none: the answer equals one of the task's
 * accepted answers after SQuAD normalization (lowercase, no punctuation or articles, collapsed
 * spaces; `exactMatch`).
 *
 * @param answer The final answer (the content of the last `\boxed{…}` in `<answer>`).
 * @param task The task, whose `answers` are the accepted aliases.
 * @returns Whether the answer is correct.
 *
 * @example
 * ```ts
 * import { defaultCorrect } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const task = { id: "q", prompt: "Who?", answers: ["The Beatles", "Beatles"] };
 * assert.ok(defaultCorrect("the beatles!", task));
 * assert.ok(!defaultCorrect("Beatles Paul", task)); // partial credit is not correct
 * ```
 */
export function defaultCorrect(answer: string, task: Task): boolean {
  return exactMatch(answer, task.answers) === 1;
}

/** A sample's correctness and what it was judged on. */
export interface Judgement {
  /** The benchmark's verdict; false for a format failure or a missing answer. */
  correct: boolean;
  /** The final answer that was judged; null when the response has none (or breaks the format). */
  answer: string | null;
  /** The format rule the response broke, when it did. */
  formatError?: string;
}

/**
 * Judge one response: a reward sample (its segments say which text is the model's, `modelText`)
 * or a decoded response string (prompt excluded), read whole. `name` names the benchmark in
 * errors: a `correct` that throws or returns something other than a boolean is an ArpoError
 * naming the benchmark and the task.
 */
export function judgeResponse(
  benchmark: Pick<Benchmark, "correct">,
  response: ResponseLike,
  task: Task,
  toolTags: readonly string[],
  name = "benchmark",
): Judgement {
  const own = modelText(response);
  const format = checkFormat(own, toolTags);
  if (!format.ok) return { correct: false, answer: null, formatError: format.reason };
  const answer = boxedAnswer(own);
  if (answer === null) return { correct: false, answer: null };
  if (!benchmark.correct) return { correct: defaultCorrect(answer, task), answer };
  let verdict: unknown;
  try {
    verdict = benchmark.correct(answer, task);
  } catch (e) {
    throw new ArpoError(
      `benchmark '${name}' threw in correct() on task '${task.id}': ${describeError(e)}`,
      { cause: e },
    );
  }
  if (typeof verdict !== "boolean") {
    throw new ArpoError(
      `benchmark '${name}' correct() returned ${
        verdict instanceof Promise ? "a Promise" : JSON.stringify(verdict) ?? String(verdict)
      } for task '${task.id}'; expected a boolean (correct() must be synchronous)`,
    );
  }
  return { correct: verdict, answer };
}
