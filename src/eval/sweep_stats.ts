/**
 * Statistics over seeds: the stratified (two-level) bootstrap of Agarwal et al., "Deep RL at the
 * Edge of the Statistical Precipice" (NeurIPS 2021), and the interquartile mean (IQM) they
 * recommend beside the mean. Scores come in groups, one per seed (run), each holding that seed's
 * per-question scores. A resample draws as many seeds as there are, with replacement, and within
 * each drawn seed as many of its questions as it has, with replacement; the statistic is
 * recomputed on the resampled groups, and the interval is the percentile interval of those
 * statistics. Draws come from an rng.ts stream, so an interval is a pure function of (groups,
 * statistic, key, resamples, confidence).
 */
import { type KeyPart, Stream } from "../rng.ts";
import { type BootstrapInterval, checkBootstrapParams, percentileInterval } from "./bootstrap.ts";

/** Options of stratifiedBootstrap. */
export interface StratifiedBootstrapOptions {
  /** Number of resamples (default 2000). */
  resamples?: number;
  /** Confidence level in (0, 1) (default 0.95). */
  confidence?: number;
  /** The random stream; or a seed plus key ids for `new Stream([seed, "bootstrap", ...key])`. */
  stream?: Stream;
  /** Seed of the stream used when no `stream` is given (default 0). */
  seed?: number;
  /** Key ids of the stream used when no `stream` is given (default none). */
  key?: KeyPart[];
  /**
   * Resample the values within each drawn group (default true). False: draw groups only (a
   * bootstrap over seeds), e.g. for metrics that have one value per seed.
   */
  withinGroups?: boolean;
}

/** A statistic of grouped scores (one group per seed). */
export type GroupStatistic = (groups: readonly (readonly number[])[]) => number;

const sum = (xs: readonly number[]) => {
  let s = 0;
  for (const x of xs) s += x;
  return s;
};

/**
 * The mean over groups of each group's mean (groups without values are left out; NaN when none
 * has any): the mean over seeds of the per-seed metric. With groups of equal size it is the mean
 * of all values.
 *
 * @example
 * ```ts
 * import { meanOfGroupMeans } from "./sweep_stats.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(meanOfGroupMeans([[1, 0], [1, 1, 1, 1]]), 0.75);
 * ```
 */
export function meanOfGroupMeans(groups: readonly (readonly number[])[]): number {
  let s = 0, n = 0;
  for (const g of groups) {
    if (g.length === 0) continue;
    s += sum(g) / g.length;
    n++;
  }
  return n ? s / n : NaN;
}

/**
 * Interquartile mean: the mean of the middle half of the values, after dropping the lowest and the
 * highest ⌊n/4⌋ (scipy.stats.trim_mean(x, 0.25), as rliable computes it). For fewer than four
 * values nothing is dropped (the mean); NaN for none.
 *
 * @example The IQM of 1..8 is the mean of 3, 4, 5, 6
 * ```ts
 * import { iqm } from "./sweep_stats.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(iqm([8, 1, 7, 2, 6, 3, 5, 4]), 4.5);
 * ```
 */
export function iqm(values: readonly number[]): number {
  const n = values.length;
  if (n === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const cut = Math.floor(n / 4);
  let s = 0;
  for (let i = cut; i < n - cut; i++) s += sorted[i];
  return s / (n - 2 * cut);
}

/** The IQM of every group's values pooled (seed × question scores). */
export function pooledIqm(groups: readonly (readonly number[])[]): number {
  return iqm(groups.flat());
}

/**
 * Percentile interval of `statistic` over a stratified bootstrap of `groups`: each resample draws
 * G groups from the G given ones with replacement and, within each drawn group of n values, n
 * values with replacement (unless `withinGroups` is false); the statistic of the resampled groups
 * is recorded; [lo, hi] are the (1 ∓ confidence)/2 quantiles of the recorded statistics (linear
 * interpolation). `estimate` is the statistic of the groups as given. Empty groups are dropped
 * first; with none left the interval is NaN.
 *
 * @param groups Per group (seed), its values (per-question scores).
 * @param statistic What to estimate from grouped values, e.g. meanOfGroupMeans or pooledIqm.
 * @param opts Resamples, confidence, the stream (or seed and key), whether to resample within.
 * @returns The estimate and its interval (the same shape as bootstrapCI's).
 *
 * @example Identical seeds with constant questions: the interval collapses to the mean
 * ```ts
 * import { meanOfGroupMeans, stratifiedBootstrap } from "./sweep_stats.ts";
 * import assert from "node:assert/strict";
 *
 * const ci = stratifiedBootstrap([[0.5, 0.5], [0.5, 0.5]], meanOfGroupMeans, { key: ["demo"] });
 * assert.deepEqual([ci.lo, ci.estimate, ci.hi], [0.5, 0.5, 0.5]);
 * ```
 */
export function stratifiedBootstrap(
  groups: readonly (readonly number[])[],
  statistic: GroupStatistic,
  opts: StratifiedBootstrapOptions = {},
): BootstrapInterval {
  const resamples = opts.resamples ?? 2000;
  const confidence = opts.confidence ?? 0.95;
  checkBootstrapParams("stratifiedBootstrap", resamples, confidence);
  const full = groups.filter((g) => g.length > 0);
  const estimate = full.length ? statistic(full) : NaN;
  if (full.length === 0) return { estimate, lo: NaN, hi: NaN, confidence, resamples };
  const rng = opts.stream ?? new Stream([opts.seed ?? 0, "bootstrap", ...(opts.key ?? [])]);
  const within = opts.withinGroups !== false;
  const G = full.length;
  // One buffer per drawn slot, reused across resamples (a slot's size varies with the group).
  const slots: number[][] = Array.from({ length: G }, () => []);
  const stats = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    for (let s = 0; s < G; s++) {
      const g = full[rng.int(G)];
      const slot = slots[s];
      slot.length = g.length;
      if (within) { for (let j = 0; j < g.length; j++) slot[j] = g[rng.int(g.length)]; }
      else for (let j = 0; j < g.length; j++) slot[j] = g[j];
    }
    stats[r] = statistic(slots);
  }
  stats.sort();
  return percentileInterval(estimate, Array.from(stats), confidence);
}
