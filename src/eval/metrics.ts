/**
 * Aggregate evaluation metrics: accuracy, mean, pass@k with the unbiased estimator of Chen et al.
 * (2021), "Evaluating Large Language Models Trained on Code".
 */

/**
 * Mean of a list (0 for an empty list).
 *
 * @param values The numbers.
 * @returns Their arithmetic mean.
 *
 * @example
 * ```ts
 * import { mean } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(mean([1, 2, 3, 4]), 2.5);
 * assert.equal(mean([]), 0);
 * ```
 */
export function mean(values: readonly number[]): number {
  if (values.length === 0) return 0;
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}

/**
 * Fraction of correct items: booleans, or scores counted correct when ≥ threshold (default 1).
 *
 * @param items Correctness flags or scores.
 * @param threshold The score from which an item counts as correct.
 * @returns The fraction correct (0 for no items).
 *
 * @example
 * ```ts
 * import { accuracy } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(accuracy([true, false, 1, 0.5]), 0.5);
 * assert.equal(accuracy([1, 0.5, 0.25, 0], 0.5), 0.5);
 * ```
 */
export function accuracy(items: readonly (boolean | number)[], threshold = 1): number {
  if (items.length === 0) return 0;
  let ok = 0;
  for (const x of items) if (typeof x === "boolean" ? x : x >= threshold) ok++;
  return ok / items.length;
}

/**
 * Mean token F1 over items.
 *
 * @param f1s Per-item F1 scores.
 * @returns Their mean (0 for none).
 *
 * @example
 * ```ts
 * import { meanF1, tokenF1 } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(meanF1([tokenF1("Paris", "Paris"), tokenF1("Lyon", "Paris")]), 0.5);
 * ```
 */
export function meanF1(f1s: readonly number[]): number {
  return mean(f1s);
}

/**
 * Unbiased pass@k for one problem with n samples of which c are correct:
 * 1 − C(n−c, k) / C(n, k), computed as 1 − Π_{i=n−c+1..n} (1 − k/i) to avoid huge binomials.
 *
 * @param n Samples drawn for the problem.
 * @param c How many of them are correct.
 * @param k The k of pass@k, in 1..n.
 * @returns The probability that k of the n samples, drawn without replacement, include a
 * correct one.
 *
 * @example
 * ```ts
 * import { passAtK } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(passAtK(2, 1, 1), 0.5);
 * assert.equal(passAtK(5, 4, 2), 1); // any two of the five samples include a correct one
 * ```
 */
export function passAtK(n: number, c: number, k: number): number {
  for (const [name, v] of [["n", n], ["c", c], ["k", k]] as const) {
    if (!Number.isInteger(v) || v < 0) {
      throw new RangeError(`passAtK: ${name} must be a non-negative integer, got ${v}`);
    }
  }
  if (c > n) throw new RangeError(`passAtK: c=${c} correct out of n=${n} samples`);
  if (k < 1 || k > n) throw new RangeError(`passAtK: k=${k} must be in 1..n=${n}`);
  if (n - c < k) return 1;
  let prod = 1;
  for (let i = n - c + 1; i <= n; i++) prod *= 1 - k / i;
  return 1 - prod;
}

/**
 * Mean pass@k over problems, each given as (n samples, c correct).
 *
 * @param problems Per problem, the number of samples and of correct ones.
 * @param k The k of pass@k.
 * @returns The mean of passAtK over the problems (0 for none).
 *
 * @example
 * ```ts
 * import { meanPassAtK } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(meanPassAtK([{ n: 2, c: 1 }, { n: 2, c: 0 }], 1), 0.25);
 * ```
 */
export function meanPassAtK(problems: readonly { n: number; c: number }[], k: number): number {
  return mean(problems.map((p) => passAtK(p.n, p.c, k)));
}
