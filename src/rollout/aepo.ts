/**
 * AEPO's rollout rules (Dong et al., arXiv 2510.14545; docs/AEPO.md), as pure functions the agent
 * loop calls. AEPO keeps ARPO's trees, budget, ΔH measurement (`mode`) and keyed draws, and
 * changes two things:
 *
 * Entropy pre-monitoring (`pre_monitor: true`): before the rollout, a root generation (≤
 * `root_tokens` tokens, stopped at a tool tag) measures H_root, and a probe trajectory (one whole
 * rollout with tools) measures H̄_tool, the mean entropy of its generated segments. Both use the
 * reference's segment value: Σ over the first ≤ `reference_window` positions, divided by ln V (here
 * from full-vocabulary entropies; the reference's vLLM sees only the top 10). The number of whole
 * trajectories is then m = clamp(int(M·σ(β·(H_root − H̄_tool))) + 1, 1, M); the rest, M − m, is
 * the branch budget. As the reference, H̄_tool averages every generated segment of the probe, the
 * first one (from the prompt) included, and falls back to H_root when the probe generated none.
 *
 * Branch rule with the consecutive-branch penalty: per attempt, x = clamp((u + w·ΔH)·f, 0, 1)
 * with f = max(0, 1 − penalty·k), u ~ U[0,1) from the keyed stream; branch iff x ≥ τ. With k = 0
 * that is ARPO's sampled rule at α = 1 − τ (probability 1 − τ + w·ΔH). k is counted
 * - `penalty_scope: path` (default): along the path's lineage, the number of tool calls in a row,
 *   ending just before this one, at which it (or the ancestor it shares them with) branched;
 *   a call that does not branch resets it to 0 — the paper's "consecutive high-entropy branching";
 * - `penalty_scope: prompt` (the reference code): the trajectories the question added (branches
 *   and fillers) in the rounds before this one — one counter per prompt, never reset, whichever
 *   path branched.
 */
import type { Stream } from "../rng.ts";
import type { BranchOutcome } from "./arpo.ts";
import type { RolloutConfig } from "./config.ts";

/** σ(x) = 1 / (1 + e^−x). */
export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/**
 * Pre-monitoring: the number of whole trajectories m of a budget of `rollouts` (the reference's
 * `int(n·sigmoid(β·(H_root − H̄_tool))) + 1`, clamped to [1, n]).
 *
 * @example
 * ```ts
 * preMonitorInitial(12, 2.0, 1.0, 0.5); // int(12·σ(0.5)) + 1 = int(7.48) + 1 = 8
 * ```
 */
export function preMonitorInitial(
  rollouts: number,
  hRoot: number,
  hTool: number,
  beta: number,
): number {
  const m = Math.trunc(rollouts * sigmoid(beta * (hRoot - hTool))) + 1;
  return Math.max(1, Math.min(rollouts, m));
}

/** H̄_tool of a probe: the mean of its segment values, H_root when it has none (the reference). */
export function meanToolEntropy(segments: readonly number[], hRoot: number): number {
  if (segments.length === 0) return hRoot;
  let s = 0;
  for (const h of segments) s += h;
  return s / segments.length;
}

/** The penalty factor f = max(0, 1 − penalty·k). */
export function penaltyFactor(penalty: number, k: number): number {
  return Math.max(0, 1 - penalty * k);
}

/** An AEPO decision: ARPO's outcome plus the penalty count and factor it used. */
export interface AepoOutcome extends BranchOutcome {
  penaltyK: number;
  penaltyFactor: number;
}

/**
 * The probability that one attempt branches at this ΔH and k: P(clamp((u + wΔH)·f, 0, 1) ≥ τ)
 * for u ~ U[0,1) (what the fork record carries as `p`, comparable with ARPO's P).
 */
export function aepoBranchProbability(cfg: RolloutConfig, deltaH: number, f: number): number {
  const tau = cfg.threshold;
  if (tau <= 0) return 1;
  if (f <= 0 || tau > 1) return 0;
  return Math.min(1, Math.max(0, 1 - (tau / f - cfg.entropyWeight * deltaH)));
}

/**
 * Decide an AEPO fork: Z attempts while budget remains, each its own draw from the keyed stream
 * of (question, trajectory, call); `k` is the penalty count of the configured scope.
 */
export function decideAepoBranch(
  cfg: RolloutConfig,
  deltaH: number,
  budget: number,
  k: number,
  draws: Stream,
): AepoOutcome {
  const a = cfg.aepo!;
  const f = penaltyFactor(a.penalty, k);
  const p = aepoBranchProbability(cfg, deltaH, f);
  if (budget <= 0) {
    return { p, u: [], children: 0, decision: "budget", penaltyK: k, penaltyFactor: f };
  }
  const u: number[] = [];
  let children = 0;
  for (let z = 0; z < cfg.branchesPerFork && children < budget; z++) {
    const x = draws.uniform();
    u.push(x);
    const prob = Math.min(1, Math.max(0, (x + cfg.entropyWeight * deltaH) * f));
    if (prob >= cfg.threshold) children++;
  }
  return {
    p,
    u,
    children,
    decision: children > 0 ? "branch" : "no_branch",
    penaltyK: k,
    penaltyFactor: f,
  };
}
