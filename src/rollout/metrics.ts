/**
 * Rollout metrics of ARPO.md §7, computed from finished trees (deterministic: no timings here).
 * Per-trajectory counts (tool calls, response length) count shared prefixes once per trajectory
 * containing them, as the training group sees them; per-event counts (tool errors, entropies by
 * distance) count each tree node once.
 *
 * Branching (docs/BRANCHING.md): a decision is a fork record of ARPO or `random` — "branch",
 * "no_branch" or "budget" (no budget left, so no branch could happen); GRPO's "off" records are not
 * decisions. branch rate = branches / decisions, budget-blocked decisions included (the rate at
 * which tool calls led to a branch); the open rate leaves them out (the rule's own rate where it
 * could act: what `random`'s branch_probability should be set to in order to match a run).
 */
import type { Json } from "../store/canonical.ts";
import type { EndReason, ForkDecision, RolloutTree } from "./tree.ts";

export interface Summary {
  count: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  p10: number;
  p50: number;
  p90: number;
}

export interface Histogram {
  /** Bin edges (bins + 1 values); empty when there is no data. */
  edges: number[];
  counts: number[];
}

/** Mean entropy at each distance (tokens) from an anchor; index = distance. */
export interface EntropyCurve {
  mean: number[];
  count: number[];
}

export interface RolloutMetrics {
  questions: number;
  trajectories: number;
  responseLength: Summary;
  /** Trajectories by end reason; `infrastructure` only when one ended so (see below). */
  endReasons: Record<Exclude<EndReason, "infrastructure">, number> & { infrastructure?: number };
  /**
   * Trajectories marked with an infrastructure failure (TrajectoryNode.infrastructureFailure);
   * absent when there are none, so ordinary artefacts keep their bytes.
   */
  infrastructureFailures?: number;
  toolCallsPerTrajectory: { all: number; byTool: Record<string, number> };
  toolCalls: {
    total: number;
    byTool: Record<string, number>;
    errors: number;
    timeouts: number;
    truncated: number;
  };
  branching: {
    decisions: Record<ForkDecision, number>;
    /** Decisions taken: branch + no_branch + budget ("off" is not a decision). */
    decided: number;
    /** branch / decided; 0 when nothing was decided (GRPO, or no tool calls). */
    branchRate: number;
    /** branch / (branch + no_branch): the rule's rate where budget remained; 0 when none. */
    openBranchRate: number;
    /** Trajectories created by forks. */
    children: number;
    childrenPerQuestion: number;
    fillers: number;
    /** Mean ΔH of the "branch" decisions; null when there are none. */
    deltaHBranched: number | null;
    /** Mean ΔH of the "no_branch" decisions (budget-blocked ones left out); null when none. */
    deltaHNotBranched: number | null;
  };
  /** ΔH at tool calls (every call after which its trajectory continued). */
  deltaH: Summary & { histogram: Histogram };
  /** P = α + βΔH at those calls. */
  branchProbability: Summary;
  entropy: {
    /** Generated tokens after a tool result, by distance from the end of the most recent result. */
    fromResult: EntropyCurve;
    /** Generated tokens before the first tool result, by distance from the response start. */
    fromStart: EntropyCurve;
  };
  reward?: { mean: number; parts: Record<string, number> };
}

export function summarize(values: readonly number[]): Summary {
  const n = values.length;
  if (n === 0) return { count: 0, mean: 0, std: 0, min: 0, max: 0, p10: 0, p50: 0, p90: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  let mean = 0;
  for (const v of values) mean += v;
  mean /= n;
  let ss = 0;
  for (const v of values) ss += (v - mean) ** 2;
  const q = (p: number) => {
    const x = p * (n - 1), i = Math.floor(x), f = x - i;
    return i + 1 < n ? sorted[i] * (1 - f) + sorted[i + 1] * f : sorted[i];
  };
  return {
    count: n,
    mean,
    std: n > 1 ? Math.sqrt(ss / (n - 1)) : 0,
    min: sorted[0],
    max: sorted[n - 1],
    p10: q(0.1),
    p50: q(0.5),
    p90: q(0.9),
  };
}

/** The mean, or null for no values. */
function mean(values: readonly number[]): number | null {
  return values.length > 0 ? values.reduce((a, b) => a + b, 0) / values.length : null;
}

export function histogram(values: readonly number[], bins = 10): Histogram {
  if (values.length === 0) return { edges: [], counts: [] };
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  if (lo === hi) return { edges: [lo, hi], counts: [values.length] };
  const w = (hi - lo) / bins;
  const edges = Array.from({ length: bins + 1 }, (_, i) => (i === bins ? hi : lo + i * w));
  const counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - lo) / w))]++;
  return { edges, counts };
}

class CurveBuilder {
  sum: number[] = [];
  count: number[] = [];
  constructor(readonly max: number) {}
  add(d: number, h: number): void {
    if (d < 0 || d >= this.max) return;
    while (this.sum.length <= d) {
      this.sum.push(0);
      this.count.push(0);
    }
    this.sum[d] += h;
    this.count[d]++;
  }
  build(): EntropyCurve {
    return {
      mean: this.sum.map((s, i) => (this.count[i] > 0 ? s / this.count[i] : 0)),
      count: [...this.count],
    };
  }
}

/** Metrics over the trees of one batch (or one benchmark). `maxDistance` bounds the curves. */
export function rolloutMetrics(
  trees: readonly RolloutTree[],
  opts: { maxDistance?: number } = {},
): RolloutMetrics {
  const maxDistance = opts.maxDistance ?? 256;
  const lengths: number[] = [];
  const ends: RolloutMetrics["endReasons"] = { eos: 0, length: 0, tool_cap: 0, empty_call: 0 };
  let infra = 0;
  const perTool: Record<string, number> = {};
  let trajCalls = 0, nTraj = 0;
  const calls = {
    total: 0,
    byTool: {} as Record<string, number>,
    errors: 0,
    timeouts: 0,
    truncated: 0,
  };
  const decisions: Record<ForkDecision, number> = { branch: 0, no_branch: 0, budget: 0, off: 0 };
  let children = 0, fillers = 0;
  const dH: number[] = [], probs: number[] = [];
  const dHBranched: number[] = [], dHNotBranched: number[] = [];
  const fromResult = new CurveBuilder(maxDistance), fromStart = new CurveBuilder(maxDistance);
  const rewards: number[] = [];
  const parts: Record<string, number[]> = {};

  for (const tree of trees) {
    for (const t of tree.trajectories) {
      nTraj++;
      lengths.push(tree.responseLength(t));
      if (t.end !== null) ends[t.end] = (ends[t.end] ?? 0) + 1;
      if (t.infrastructureFailure !== undefined) infra++;
      if (t.kind === "filler") fillers++;
      trajCalls += t.toolCalls.length;
      for (const id of t.toolCalls) {
        const tag = tree.toolCalls[id].tag;
        perTool[tag] = (perTool[tag] ?? 0) + 1;
      }
      if (t.reward !== undefined) {
        rewards.push(t.reward);
        for (const [k, v] of Object.entries(t.rewardParts ?? {})) {
          const x = typeof v === "number" ? v : typeof v === "boolean" ? Number(v) : NaN;
          if (Number.isFinite(x)) (parts[k] ??= []).push(x);
        }
      }
    }
    for (const c of tree.toolCalls) {
      calls.total++;
      calls.byTool[c.tag] = (calls.byTool[c.tag] ?? 0) + 1;
      if (c.error) calls.errors++;
      if (c.timedOut) calls.timeouts++;
      if (c.truncated) calls.truncated++;
    }
    for (const f of tree.forks) {
      decisions[f.decision]++;
      children += f.children.length;
      dH.push(f.deltaH);
      probs.push(f.p);
      if (f.decision === "branch") dHBranched.push(f.deltaH);
      else if (f.decision === "no_branch") dHNotBranched.push(f.deltaH);
    }
    // Entropy by distance: each generated token once, anchored on its path's last result.
    const resultEnd = new Map<number, number | null>();
    for (const s of tree.segments) {
      const inherited = s.parent === null ? null : resultEnd.get(s.parent) ?? null;
      resultEnd.set(s.id, s.kind === "result" ? s.start + s.tokens.length : inherited);
      if (s.kind !== "gen") continue;
      for (let j = 0; j < s.tokens.length; j++) {
        const pos = s.start + j;
        if (inherited === null) fromStart.add(pos, s.entropies[j]);
        else fromResult.add(pos - inherited, s.entropies[j]);
      }
    }
  }
  const open = decisions.branch + decisions.no_branch;
  const decided = open + decisions.budget;
  const byTool: Record<string, number> = {};
  for (const [k, v] of Object.entries(perTool)) byTool[k] = nTraj > 0 ? v / nTraj : 0;
  const out: RolloutMetrics = {
    questions: trees.length,
    trajectories: nTraj,
    responseLength: summarize(lengths),
    endReasons: ends,
    toolCallsPerTrajectory: { all: nTraj > 0 ? trajCalls / nTraj : 0, byTool },
    toolCalls: calls,
    branching: {
      decisions,
      decided,
      branchRate: decided > 0 ? decisions.branch / decided : 0,
      openBranchRate: open > 0 ? decisions.branch / open : 0,
      children,
      childrenPerQuestion: trees.length > 0 ? children / trees.length : 0,
      fillers,
      deltaHBranched: mean(dHBranched),
      deltaHNotBranched: mean(dHNotBranched),
    },
    deltaH: { ...summarize(dH), histogram: histogram(dH) },
    branchProbability: summarize(probs),
    entropy: { fromResult: fromResult.build(), fromStart: fromStart.build() },
  };
  if (infra > 0) out.infrastructureFailures = infra;
  if (rewards.length > 0) {
    const m: Record<string, number> = {};
    for (const [k, v] of Object.entries(parts)) m[k] = v.reduce((a, b) => a + b, 0) / v.length;
    out.reward = { mean: rewards.reduce((a, b) => a + b, 0) / rewards.length, parts: m };
  }
  return out;
}

/** The metrics as JSON (for StageResult.metrics / store objects). */
export function metricsJson(m: RolloutMetrics): Json {
  return JSON.parse(JSON.stringify(m)) as Json;
}
