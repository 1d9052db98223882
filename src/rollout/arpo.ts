/**
 * ARPO's entropy-based branching rule (ARPO.md §2), as pure functions the agent loop calls.
 * docs/BRANCHING.md has one row per knob and says where each acts.
 *
 * Two independent choices: how ΔH is measured (`mode`) and how P = α + β·ΔH becomes a decision
 * (`decision`).
 *
 * mode: paper (how ΔH is measured)
 *   H_init = entropies of the trajectory's first k generated tokens (its first segment; a branch
 *   shares it with its parent). After tool call t, H_t = entropies of the first k tokens the
 *   trajectory generates after the result. ΔH = Σ_j (H_t[j] − H_init[j]) / norm over the
 *   positions both have. The children fork at the result boundary and re-sample, so the probe is a
 *   look-ahead; the parent keeps its probe tokens, which are simply the start of its own
 *   continuation (it is one of the group's trajectories, and throwing its tokens away would waste
 *   them and bias the parent towards re-sampling).
 *
 * mode: reference (the reference code's measurement)
 *   The entropy of a segment is Σ over its first ≤20 positions of the per-position entropy,
 *   computed from the top-10 log-probabilities, divided by the normalization. H_init is that value
 *   for the trajectory's first segment; at tool call t, ΔH = value(segment that ended at call t) −
 *   H_init; the children fork right after the result. `reference_init: own` (default, as the
 *   reference): a branch's H_init is the first segment it generates itself, so its first call after
 *   the fork has ΔH = 0; `parent`: it keeps its parent's. Unlike the reference, H_init is never taken
 *   from a stale dictionary keyed by batch slot.
 *
 * decision: threshold (the paper) — branch when P > τ, into min(Z, budget left) children; no draws.
 * decision: sample (the reference) — each of Z attempts draws u ~ U[0,1) from the keyed stream of
 *   (question, trajectory, call) and branches when u < clamp(α + β·ΔH, 0, 1).
 * algorithm: random — as `sample` with P = branch_probability: ΔH is measured and recorded, never
 *   used.
 *
 * normalization (`entropy_norm`): the summed differences are divided by V (`vocab`, the paper),
 * ln V (`log_vocab`, the reference) or the number of positions summed (`mean`, nats per position).
 *
 * Budget: per question at most M trajectories in all. A decision taken with no budget left is
 * recorded as "budget" whatever the rule would have said (no draws are made): a decision where no
 * branch could happen.
 */
import { ArpoError } from "../errors.ts";
import type { GeneratedToken } from "../policy/types.ts";
import type { Stream } from "../rng.ts";
import { DEFAULT_BRANCH_PROBABILITY, type RolloutConfig } from "./config.ts";
import type { ForkDecision } from "./tree.ts";

/** Divides a sum of `n` per-position entropies (or differences) by the normalization. */
export type EntropyDivisor = (n: number) => number;

/** The divisor of ΔH: V, ln V, or the number of positions summed (`mean`). */
export function entropyDivisor(cfg: RolloutConfig, vocabSize: number): EntropyDivisor {
  switch (cfg.entropyNormalization) {
    case "vocab":
      return () => vocabSize;
    case "log_vocab": {
      const l = Math.log(vocabSize);
      return () => l;
    }
    case "mean":
      return (n) => Math.max(1, n);
  }
}

const divide = (sum: number, n: number, norm: number | EntropyDivisor) =>
  sum / (typeof norm === "number" ? norm : norm(n));

/** Paper H_init / H_t: the first k entropies of a segment. */
export function leadingEntropies(entropies: readonly number[], k: number): number[] {
  return entropies.slice(0, k);
}

/** Paper ΔH: summed differences over the positions both vectors have, normalized. */
export function paperDeltaH(
  hNow: readonly number[],
  hInit: readonly number[],
  norm: number | EntropyDivisor,
): number {
  const n = Math.min(hNow.length, hInit.length);
  let s = 0;
  for (let j = 0; j < n; j++) s += hNow[j] - hInit[j];
  return divide(s, n, norm);
}

/**
 * Entropy of one position from its top-k log-probabilities, the way vLLM-based code sees it: the
 * top entries plus the sampled token when it is not among them.
 */
export function topKEntropy(tok: GeneratedToken): number {
  const top = tok.top;
  if (top === undefined) {
    throw new ArpoError(
      "rollout: reference mode with reference_top_k > 0 needs top log-probabilities, and the " +
        "policy returned none; set reference_top_k: 0 to use full-vocabulary entropies.",
    );
  }
  let h = 0;
  let sampledSeen = false;
  for (const [id, lp] of top) {
    if (id === tok.id) sampledSeen = true;
    h -= Math.exp(lp) * lp;
  }
  if (!sampledSeen) h -= Math.exp(tok.logprob) * tok.logprob;
  return h;
}

/**
 * Reference segment entropy: Σ over the first ≤window positions (top-K or full entropies),
 * divided by the normalization.
 */
export function referenceSegmentEntropy(
  tokens: readonly GeneratedToken[],
  cfg: RolloutConfig,
  norm: number | EntropyDivisor,
): number {
  let s = 0;
  const n = Math.min(cfg.referenceWindow, tokens.length);
  for (let j = 0; j < n; j++) {
    s += cfg.referenceTopK > 0 ? topKEntropy(tokens[j]) : tokens[j].entropy;
  }
  return divide(s, n, norm);
}

export interface BranchOutcome {
  /** P: α + β·ΔH (threshold), clamped to [0, 1] (sample), or branch_probability (random). */
  p: number;
  /** sample / random: the draws made (one per attempted child). */
  u: number[];
  /** Children to create (≤ Z, ≤ budget). */
  children: number;
  decision: ForkDecision;
}

/** The recorded P of a decision at this ΔH (also what GRPO's "off" records carry). */
export function branchProbability(cfg: RolloutConfig, deltaH: number): number {
  if (cfg.algorithm === "random") return cfg.branchProbability ?? DEFAULT_BRANCH_PROBABILITY;
  const raw = cfg.baseProbability + cfg.entropyWeight * deltaH;
  return cfg.decision === "threshold" ? raw : Math.min(1, Math.max(0, raw));
}

/**
 * Decide a fork. `budget` = trajectories the question may still add (M − created); `draws` is the
 * keyed stream of this (question, trajectory, call), used by `decision: sample` and by `random`
 * (the random algorithm's decisions depend on the draws and the budget only, never on ΔH).
 */
export function decideBranch(
  cfg: RolloutConfig,
  deltaH: number,
  budget: number,
  draws: Stream,
): BranchOutcome {
  const p = branchProbability(cfg, deltaH);
  if (budget <= 0) return { p, u: [], children: 0, decision: "budget" };
  if (cfg.algorithm !== "random" && cfg.decision === "threshold") {
    if (!(p > cfg.threshold)) return { p, u: [], children: 0, decision: "no_branch" };
    return { p, u: [], children: Math.min(cfg.branchesPerFork, budget), decision: "branch" };
  }
  const u: number[] = [];
  let children = 0;
  // As the reference: Z attempts, each its own draw, while budget remains.
  for (let z = 0; z < cfg.branchesPerFork && children < budget; z++) {
    const x = draws.uniform();
    u.push(x);
    if (x < p) children++;
  }
  return { p, u, children, decision: children > 0 ? "branch" : "no_branch" };
}
