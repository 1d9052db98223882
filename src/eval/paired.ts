/**
 * Paired comparison of two evaluations of the same questions: per question B − A, its mean, and
 * a percentile bootstrap interval over questions. Pairing matters: two evals of one question set
 * share most of their variance (easy and hard questions), so the interval of the difference is
 * much narrower than the two separate intervals suggest. `compare` (two eval stages) and `verify`
 * (an archived eval against its re-execution) both use it.
 */
import { bootstrapCI } from "./bootstrap.ts";
import { passAtK } from "./metrics.ts";
import type { KeyPart } from "../rng.ts";

/** What a paired comparison reads of one question's eval result (the eval stage's per_question). */
export interface QuestionResult {
  task_id: string;
  /** Samples judged (those lost to infrastructure failures are not counted). */
  n: number;
  /** Samples judged correct. */
  correct: number;
  /** Each sample's reward; null for a sample lost to an infrastructure failure. */
  rewards: (number | null)[];
}

/** One metric compared: the means of A and B over the shared questions and B − A with its CI. */
export interface PairedDifference {
  metric: string;
  a: number;
  b: number;
  difference: number;
  lo: number;
  hi: number;
  /** The interval lies on one side of 0: the difference is significant at this confidence. */
  excludesZero: boolean;
}

/** Options of `pairedDifference`. */
export interface PairedOptions {
  /** Bootstrap resamples (default 10000). */
  resamples?: number;
  /** Confidence of the interval (default 0.95). */
  confidence?: number;
  /** Key ids of the bootstrap's random stream (the comparison's name). */
  key: KeyPart[];
}

const meanOf = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);

/**
 * B − A over paired values (`a[i]` and `b[i]` are one question), with a percentile bootstrap
 * interval of the mean difference.
 *
 * @param metric The metric's name (copied into the result).
 * @param a Per-question values of A.
 * @param b Per-question values of B, in the same order.
 * @param opts Resamples, confidence and the stream key.
 * @returns The means, the difference and its interval.
 */
export function pairedDifference(
  metric: string,
  a: readonly number[],
  b: readonly number[],
  opts: PairedOptions,
): PairedDifference {
  if (a.length !== b.length) {
    throw new RangeError(`pairedDifference: ${a.length} values of A but ${b.length} of B`);
  }
  const ci = bootstrapCI(a.map((x, i) => b[i] - x), {
    resamples: opts.resamples ?? 10000,
    confidence: opts.confidence ?? 0.95,
    key: opts.key,
  });
  return {
    metric,
    a: meanOf(a),
    b: meanOf(b),
    difference: ci.estimate,
    lo: ci.lo,
    hi: ci.hi,
    excludesZero: ci.lo > 0 || ci.hi < 0,
  };
}

/** A per-question score of an eval result; undefined where it is not defined (pass@k, n < k). */
export type QuestionScore = (q: QuestionResult) => number | undefined;

/**
 * The scores an eval compares per question: accuracy (correct / judged samples), pass@k for each `k`
 * (unbiased estimator; questions with fewer than k samples left out) and, with a reward, the
 * mean reward.
 *
 * @param ks The k values of pass@k.
 * @param reward Whether the eval had a reward.
 */
export function questionScores(ks: readonly number[], reward: boolean): [string, QuestionScore][] {
  // A question with no judged sample (all lost to infrastructure failures) has no score.
  const out: [string, QuestionScore][] = [[
    "accuracy",
    (q) => (q.n > 0 ? q.correct / q.n : undefined),
  ]];
  for (const k of ks) {
    out.push([`pass@${k}`, (q) => (q.n >= k ? passAtK(q.n, q.correct, k) : undefined)]);
  }
  if (reward) {
    out.push(["mean_reward", (q) => {
      const judged = q.rewards.filter((r): r is number => r !== null);
      return judged.length ? meanOf(judged) : undefined;
    }]);
  }
  return out;
}

/**
 * Compare one score over the questions A and B share (paired by task id; questions where the
 * score is undefined on either side are left out).
 */
export function compareScore(
  metric: string,
  score: QuestionScore,
  a: readonly QuestionResult[],
  b: readonly QuestionResult[],
  opts: PairedOptions,
): (PairedDifference & { questions: number }) | undefined {
  const bs = new Map(b.map((q) => [q.task_id, q]));
  const xa: number[] = [], xb: number[] = [];
  for (const qa of a) {
    const qb = bs.get(qa.task_id);
    if (!qb) continue;
    const va = score(qa), vb = score(qb);
    if (va === undefined || vb === undefined) continue;
    xa.push(va);
    xb.push(vb);
  }
  if (!xa.length) return undefined;
  return { ...pairedDifference(metric, xa, xb, opts), questions: xa.length };
}
