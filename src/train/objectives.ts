/**
 * Per-token training objectives appended to a decoder forward (ARPO.md §4).
 *
 * The forward returns logits only at the N selected positions (the tokens that are learned), so
 * every per-token tensor here is [N]. Each objective produces the SUM over tokens of mask·loss;
 * the caller scales it by 1/(tokens in the whole mini-batch) so micro-batch gradients add up to the
 * token-mean gradient exactly.
 */
import type { Graph, Value } from "../onnx/graph.ts";
import * as op from "../onnx/ops.ts";

export interface SftObjective {
  kind: "sft";
}

/** Clipped surrogate (GRPO/PPO form) with dual clip; KL and entropy terms are built only if on. */
export interface PolicyGradientObjective {
  kind: "pg";
  /** Add β·KL(π‖π_ref) (low-variance k3 estimator, as the reference); needs reference log-probs. */
  kl?: boolean;
  /** Subtract α·entropy. */
  entropy?: boolean;
  /**
   * Upper clip bound: `standard` 1+ε_high (a clipped token has no gradient); `entropy_balanced`
   * (AEPO) (1+ε_high)·r/sg(r): same value, and a clipped token with A > 0 keeps the gradient
   * (1+ε_high)/r times its unclipped one. Default standard.
   */
  clip?: ClipMode;
  /**
   * AEPO's entropy-aware advantage λ: Â = A·(1 + λ·sg(z(H))), z the token entropy standardized
   * over the micro-batch's learned tokens (unbiased std; std 0 → 1). 0 or absent: off. Baked into
   * the graph (it is built once per objective).
   */
  entropyAdvantage?: number;
}

/** The upper clip bound of the pg objective (see PolicyGradientObjective.clip). */
export type ClipMode = "standard" | "entropy_balanced";

export type Objective = SftObjective | PolicyGradientObjective;

/** Objective hyperparameters fed at run time (no rebuild when they change). */
export interface ObjectiveParams {
  clipLow: number;
  clipHigh: number;
  /** Dual-clip constant c for negative advantages (ARPO: 3.0). */
  dualClip: number;
  klCoef: number;
  entropyCoef: number;
}

export const DEFAULT_OBJECTIVE_PARAMS: ObjectiveParams = {
  clipLow: 0.2,
  clipHigh: 0.2,
  dualClip: 3.0,
  klCoef: 0,
  entropyCoef: 0,
};

export interface ObjectiveGraph {
  /** Σ mask·loss_t (scalar). */
  lossSum: Value;
  /** Log-probabilities of the targets [N]. */
  logp: Value;
  /** Scalar statistics (sums over masked tokens), by output name. */
  stats: Record<string, Value>;
}

/**
 * The logits of the sampling distribution softmax(logits / T): `logits · inv_temperature`, a
 * scalar input fed 1/T (`inverseTemperature` in src/policy/sampling.ts, the one place it is
 * computed; the inference decoder's input of the same name). At T = 1 it is fed exactly 1.0, and
 * multiplying by 1.0 is exact, so the graph computes the untempered values bit for bit.
 */
export function temperedLogits(g: Graph, logits: Value): Value {
  const invT = g.input("inv_temperature", "float32", []);
  const z = op.mul(logits, invT);
  if (z.shape === null && logits.shape !== null) z.shape = [...logits.shape];
  return z;
}

/**
 * sg(z(H)): token entropies standardized over the learned tokens (mask 1) of this batch, mean and
 * unbiased std, std 0 (or one token) → 1; detached (AEPO's entropy-aware advantage).
 */
export function entropyZ(entropy: Value, mask: Value): Value {
  const h = op.stopGradient(entropy);
  const n = op.reduceSum(mask, [0], false);
  const mean = op.div(op.reduceSum(op.mul(h, mask), [0], false), op.max(n, 1));
  const d = op.sub(h, mean);
  const variance = op.div(
    op.reduceSum(op.mul(op.mul(d, d), mask), [0], false),
    op.max(op.sub(n, 1), 1),
  );
  const std = op.sqrt(variance);
  return op.div(d, op.where(op.greater(std, 0), std, 1));
}

/** Entropy of each row of log-probabilities [N, V] → [N]. */
export function rowEntropy(lsm: Value): Value {
  return op.neg(op.reduceSum(op.mul(op.exp(lsm), lsm), [-1], false));
}

/**
 * Append the objective to `logits` [N, V]. Batch inputs it creates: targets int64 [N],
 * loss_mask float [N]; pg: inv_temperature (1/T of the rollout, see temperedLogits), old_logp,
 * advantages [N], clip_low, clip_high, dual_clip scalars; kl: ref_logp [N], kl_coef; entropy:
 * entropy_coef. The pg objective's log-probabilities, entropies and KL are those of the tempered
 * policy softmax(logits / T) that sampled the rollouts (as verl); SFT learns the untempered one.
 */
export function appendObjective(g: Graph, logits: Value, obj: Objective): ObjectiveGraph {
  const targets = g.input("targets", "int64", ["selected"]);
  const mask = g.input("loss_mask", "float32", ["selected"]);
  const lsm = op.logSoftmax(obj.kind === "pg" ? temperedLogits(g, logits) : logits, -1);
  const logp = op.reshape(op.gatherElements(lsm, op.unsqueeze(targets, [1]), 1), [-1]);
  logp.shape = ["selected"];
  const masked = (x: Value) => op.reduceSum(op.mul(x, mask), [0], false);
  const stats: Record<string, Value> = { token_count: op.reduceSum(mask, [0], false) };
  // Mean entropy is reported for every objective; it only enters the loss if asked for.
  const entropy = rowEntropy(lsm);
  stats.entropy_sum = masked(entropy);
  if (obj.kind === "sft") {
    return { lossSum: masked(op.neg(logp)), logp, stats };
  }
  const oldLogp = g.input("old_logp", "float32", ["selected"]);
  let adv = g.input("advantages", "float32", ["selected"]);
  const lambda = obj.entropyAdvantage ?? 0;
  // The reference reweights before anything else, so the dual clip's sign test sees Â.
  if (lambda !== 0) adv = op.mul(adv, op.add(op.mul(entropyZ(entropy, mask), lambda), 1));
  const clipLow = g.input("clip_low", "float32", []);
  const clipHigh = g.input("clip_high", "float32", []);
  const dualClip = g.input("dual_clip", "float32", []);
  const logRatio = op.sub(logp, oldLogp);
  const ratio = op.exp(logRatio);
  const negA = op.neg(adv);
  const l1 = op.mul(negA, ratio);
  // Entropy-balanced: the bound (1+ε_h)·exp(logp − sg(logp)) equals 1+ε_h, with gradient.
  const high = obj.clip === "entropy_balanced"
    ? op.mul(op.add(clipHigh, 1), op.exp(op.sub(logp, op.stopGradient(logp))))
    : op.add(clipHigh, 1);
  const clipped = op.max(op.min(ratio, high), op.sub(1, clipLow));
  const l2 = op.mul(negA, clipped);
  const pg = op.max(l1, l2);
  // Dual clip: for A < 0 the loss is bounded by −A·c (a huge ratio cannot dominate).
  const dual = op.min(pg, op.mul(negA, dualClip));
  let loss = op.where(op.less(adv, 0), dual, pg);
  stats.clip_count = masked(op.cast(op.greater(l2, l1), "float32"));
  stats.approx_kl_sum = masked(op.neg(logRatio));
  if (obj.kl) {
    const ref = g.input("ref_logp", "float32", ["selected"]);
    const klCoef = g.input("kl_coef", "float32", []);
    const d = op.sub(ref, logp);
    const k3 = op.sub(op.sub(op.exp(d), d), 1);
    stats.ref_kl_sum = masked(k3);
    loss = op.add(loss, op.mul(k3, klCoef));
  }
  if (obj.entropy) {
    const entCoef = g.input("entropy_coef", "float32", []);
    loss = op.sub(loss, op.mul(entropy, entCoef));
  }
  return { lossSum: masked(loss), logp, stats };
}
