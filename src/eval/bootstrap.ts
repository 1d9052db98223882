/**
 * Percentile bootstrap confidence intervals. Resampling draws come from an rng.ts stream, so an
 * interval is a pure function of (values, seed/key, resamples, confidence).
 */
import { type KeyPart, Stream } from "../rng.ts";
import { mean } from "./metrics.ts";

/** Options of bootstrapCI: how many resamples, the confidence level, the stream, the statistic. */
export interface BootstrapOptions {
  /** Number of resamples (default 1000). */
  resamples?: number;
  /** Confidence level in (0, 1) (default 0.95). */
  confidence?: number;
  /** The random stream; or a seed plus key ids for `stream(seed, "bootstrap", ...key)`. */
  stream?: Stream;
  /** Seed of the stream used when no `stream` is given (default 0). */
  seed?: number;
  /** Key ids of the stream used when no `stream` is given (default none). */
  key?: KeyPart[];
  /** Statistic of a sample (default: mean). */
  statistic?: (sample: readonly number[]) => number;
}

/** A percentile bootstrap confidence interval, as bootstrapCI returns it. */
export interface BootstrapInterval {
  /** The statistic on the original values. */
  estimate: number;
  /** Lower bound: the (1 − confidence) / 2 quantile of the resampled statistics; NaN for none. */
  lo: number;
  /** Upper bound: the (1 + confidence) / 2 quantile of the resampled statistics; NaN for none. */
  hi: number;
  /** The confidence level used. */
  confidence: number;
  /** The number of resamples drawn. */
  resamples: number;
}

/**
 * Linear-interpolated quantile of sorted values (numpy's default); NaN for no values.
 *
 * @param sorted Values in ascending order.
 * @param q The quantile, in [0, 1].
 * @returns The interpolated quantile.
 *
 * @example The median of four values
 * ```ts
 * import { quantileSorted } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(quantileSorted([1, 2, 3, 4], 0.5), 2.5);
 * ```
 */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * Throws a RangeError unless `resamples` is a positive integer and `confidence` lies in (0, 1).
 *
 * @param fn The bootstrap's name, for the message.
 */
export function checkBootstrapParams(fn: string, resamples: number, confidence: number): void {
  if (!Number.isInteger(resamples) || resamples < 1) {
    throw new RangeError(`${fn}: resamples must be a positive integer, got ${resamples}`);
  }
  if (!(confidence > 0 && confidence < 1)) {
    throw new RangeError(`${fn}: confidence must be in (0, 1), got ${confidence}`);
  }
}

/**
 * The percentile interval of the resampled statistics `sorted` (ascending, one per resample)
 * around `estimate`: their (1 − confidence) / 2 and (1 + confidence) / 2 quantiles.
 */
export function percentileInterval(
  estimate: number,
  sorted: readonly number[],
  confidence: number,
): BootstrapInterval {
  const alpha = (1 - confidence) / 2;
  return {
    estimate,
    lo: quantileSorted(sorted, alpha),
    hi: quantileSorted(sorted, 1 - alpha),
    confidence,
    resamples: sorted.length,
  };
}

/**
 * Percentile bootstrap interval of a statistic (mean by default) of `values`. The draws come from
 * a keyed stream, so the same values and options always give the same interval.
 *
 * @param values The per-item scores.
 * @param opts Resamples, confidence, the stream (or seed and key) and the statistic.
 * @returns The estimate and its interval.
 *
 * @example A 95% interval of an accuracy
 * ```ts
 * import { bootstrapCI } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const ci = bootstrapCI([1, 0, 1, 1, 0, 1, 1, 1], { seed: 7, key: ["eval", "test"] });
 * assert.equal(ci.estimate, 0.75);
 * assert.ok(ci.lo <= ci.estimate && ci.estimate <= ci.hi);
 * ```
 */
export function bootstrapCI(
  values: readonly number[],
  opts: BootstrapOptions = {},
): BootstrapInterval {
  const resamples = opts.resamples ?? 1000;
  const confidence = opts.confidence ?? 0.95;
  checkBootstrapParams("bootstrapCI", resamples, confidence);
  const stat = opts.statistic ?? mean;
  const estimate = stat(values);
  const n = values.length;
  if (n === 0) return { estimate, lo: NaN, hi: NaN, confidence, resamples };
  const rng = opts.stream ?? new Stream([opts.seed ?? 0, "bootstrap", ...(opts.key ?? [])]);
  const stats = new Array<number>(resamples);
  const sample = new Array<number>(n);
  for (let r = 0; r < resamples; r++) {
    for (let j = 0; j < n; j++) sample[j] = values[rng.int(n)];
    stats[r] = stat(sample);
  }
  stats.sort((x, y) => x - y);
  return percentileInterval(estimate, stats, confidence);
}
