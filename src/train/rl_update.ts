/**
 * One RL update (ARPO.md §3–§4): a step's scored rollout trees become training sequences (soft or
 * hard attribution, advantages.ts), the trainer recomputes their behaviour log-probs (and the
 * reference model's when the objective has a KL term), then `epochs` passes of mini-batch updates
 * over a keyed shuffle of the questions (`minibatch` questions each; token-mean clipped surrogate
 * with dual clip). Returns per-update statistics and how far the recomputed log-probs are from the
 * sampled ones.
 */
import type { Json } from "../store/canonical.ts";
import type { Stream } from "../rng.ts";
import type { TensorMap } from "../model/safetensors.ts";
import { type Attribution, type TreeLike, type TreeSequence, treeSequences } from "./advantages.ts";
import type { Trainer } from "./trainer.ts";

/** A question of the step: its tree and one advantage per trajectory (in tree order). */
export interface UpdateQuestion {
  tree: TreeLike;
  advantages: readonly number[];
}

export interface RlUpdateOptions {
  /** PPO epochs over the step's questions. */
  epochs: number;
  /** Questions per mini-batch update. */
  minibatch: number;
  lr: number;
  attribution: Attribution;
  /** Reference weights for the KL term; omitted when the objective has none. */
  reference?: TensorMap;
  /** Mini-batch order: epoch e shuffles the questions with `shuffle.child(e)`. */
  shuffle: Stream;
}

/** Statistics of one mini-batch update (the stage's curve entry lists them). */
export type UpdateStats = {
  loss: number;
  tokens: number;
  grad_norm: number;
  clip_frac: number | null;
  approx_kl: number | null;
  entropy: number;
};

export interface RlUpdateResult {
  updates: UpdateStats[];
  /**
   * Mean |recomputed − sampled| log-prob over the learned response tokens the policy sampled
   * (forced end-of-sequence tokens and tool results, whose sampled log-prob is a 0 placeholder,
   * are skipped): ≈ 0 up to float noise (a check that the training forward, at the rollout
   * temperature, and the rollout decoder agree).
   */
  logpGap: number;
  /** Wall time of the log-prob recompute and of the updates (timings, outside any artefact). */
  scoreMs: number;
  updateMs: number;
}

/**
 * Recompute behaviour (and reference) log-probs, then `epochs` of mini-batch updates.
 *
 * @example
 * ```ts
 * const r = await rlUpdate(trainer, questions, {
 *   epochs: 1, minibatch: 4, lr: 2e-4, attribution: "soft", shuffle: ctx.stream("minibatches", step),
 * });
 * ```
 */
export async function rlUpdate(
  trainer: Trainer,
  questions: readonly UpdateQuestion[],
  o: RlUpdateOptions,
): Promise<RlUpdateResult> {
  const perQ = questions.map((q) => treeSequences(q.tree, q.advantages, o.attribution));
  let t = performance.now();
  const logpGap = await recomputeLogprobs(trainer, perQ.flat(), o.reference);
  const scoreMs = performance.now() - t;
  t = performance.now();
  const updates: UpdateStats[] = [];
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const order = o.shuffle.child(epoch).shuffle([...perQ.keys()]);
    for (let i = 0; i < order.length; i += o.minibatch) {
      const batch = order.slice(i, i + o.minibatch).flatMap((q) => perQ[q])
        .filter((s) => s.lossMask.some((m) => m));
      if (!batch.length) continue;
      const st = await trainer.trainStep(batch, o.lr);
      updates.push({
        loss: st.loss,
        tokens: st.tokens,
        grad_norm: st.gradNorm,
        clip_frac: st.clipFrac ?? null,
        approx_kl: st.approxKl ?? null,
        entropy: st.entropy,
      });
    }
  }
  return { updates, logpGap, scoreMs, updateMs: performance.now() - t };
}

/**
 * Set `oldLogp` (and `refLogp`) on every sequence; returns the mean gap to the sampled log-probs
 * over learned tokens the policy sampled (`sampledMask`).
 */
export async function recomputeLogprobs(
  trainer: Pick<Trainer, "score">,
  seqs: TreeSequence[],
  reference: TensorMap | undefined,
): Promise<number> {
  const old = await trainer.score(seqs);
  const ref = reference ? await trainer.score(seqs, reference) : null;
  let gap = 0, n = 0;
  seqs.forEach((s, i) => {
    s.oldLogp = Array.from(old[i].logp);
    if (ref) s.refLogp = Array.from(ref[i].logp);
    s.lossMask.forEach((m, j) => {
      if (m && j > 0 && s.sampledMask[j]) {
        gap += Math.abs(s.oldLogp![j] - s.sampledLogp[j]);
        n++;
      }
    });
  });
  return n ? gap / n : 0;
}

/** Token-weighted mean of one statistic over a step's updates (undefined if none). */
export function updateMean(
  updates: readonly UpdateStats[] | readonly Json[],
  key: keyof UpdateStats,
  weighted = true,
): number | undefined {
  let s = 0, n = 0;
  for (const u of updates as Record<string, Json>[]) {
    const v = u[key], w = weighted ? u.tokens : 1;
    if (typeof v !== "number" || !Number.isFinite(v) || typeof w !== "number") continue;
    s += v * w;
    n += w;
  }
  return n > 0 ? s / n : undefined;
}
