/**
 * A question's rollout as a tree of segments. The root is the prompt; every segment hangs under
 * its predecessor; a trajectory is the root-to-leaf list of its segments. Forks always happen at a
 * segment boundary (right after a tool result), so children share whole segments with their
 * parent and nothing is ever split. Ids are assigned in the engine's deterministic processing
 * order, so the same rollout gives the same tree whatever else shared its batches.
 */
import { canonicalJson } from "../store/canonical.ts";
import type { RewardResult, Task, ToolCallRecord } from "../plugin/contracts.ts";

/** gen: sampled tokens (loss mask 1); result: a tool result (mask 0); eos: forced end (mask 1). */
export type SegmentKind = "gen" | "result" | "eos";

export interface Segment {
  id: number;
  /** Previous segment on every path through this one; null when it follows the prompt. */
  parent: number | null;
  kind: SegmentKind;
  /** Index of the trajectory that produced it. */
  trajectory: number;
  /** Offset of the first token within the response (prompt excluded). */
  start: number;
  tokens: number[];
  /** Sampled log-probabilities (gen); 0 for tokens the policy did not sample. */
  logprobs: number[];
  /** Full-vocabulary entropies (nats) at sampled positions; 0 elsewhere. */
  entropies: number[];
  lossMask: (0 | 1)[];
  text: string;
  /** gen: why generation stopped ("tool" = a closing tool tag). */
  stop?: "eos" | "tool" | "length";
  /** result: cut at the response-length limit. */
  cut?: boolean;
}

/**
 * A tool call in the tree: its record (every field set) and its place. How the result was served
 * (live, cached, replayed; attempts, wall time) depends on the store's state, not on the rollout:
 * it lives in RolloutTimings.toolCalls and is never written with the tree.
 */
export interface ToolCallNode extends Required<ToolCallRecord> {
  id: number;
  /** Index of the calling trajectory (the one that generated the call). */
  trajectory: number;
  /** 1-based index of the call along its trajectory. */
  call: number;
  /** The gen segment ending with the closing tag. */
  segment: number;
  /** The result segment. */
  result: number;
}

/**
 * "branch": children were created; "no_branch": the rule said no; "budget": no budget was left,
 * so no branch could happen (the rule is not consulted, no draws are made); "off": GRPO, which
 * records ΔH at tool calls but never branches.
 */
export type ForkDecision = "branch" | "no_branch" | "budget" | "off";

export interface ForkNode {
  id: number;
  trajectory: number;
  /** Tool call (id) after whose result the decision was taken. */
  toolCall: number;
  /** Result segment the children hang under. */
  at: number;
  mode: "paper" | "reference";
  /** Initial entropy of the trajectory: k values (paper) or one normalized scalar (reference). */
  hInit: number[];
  /** Entropy after the call: the k probe values (paper) or one scalar (reference). */
  hNow: number[];
  deltaH: number;
  /** P: α + β·ΔH (threshold), clamped to [0, 1] (sample), or branch_probability (random). */
  p: number;
  /** `decision: sample` and `random`: the uniform draws, one per attempted child. */
  u: number[];
  decision: ForkDecision;
  /** Trajectory indices created by this fork. */
  children: number[];
  /** `aepo` only: the consecutive-branch count k of the penalty scope (aepo.ts). */
  penaltyK?: number;
  /** `aepo` only: the penalty factor max(0, 1 − penalty·k). */
  penaltyFactor?: number;
}

/** `aepo` with pre-monitoring: what set the question's number of whole trajectories (aepo.ts). */
export interface PreMonitorRecord {
  /** H_root: the root generation's segment value. */
  hRoot: number;
  /** The probe trajectory's segment values (every generated segment, in order). */
  hSteps: number[];
  /** H̄_tool: their mean (H_root when there are none). */
  hTool: number;
  /** m: whole trajectories sampled from the prompt. */
  initial: number;
}

/**
 * Why a trajectory ended. `infrastructure`: a tool call failed for reasons of the machine, not
 * the model (TrajectoryNode.infrastructureFailure says which and why).
 */
export type EndReason = "eos" | "length" | "tool_cap" | "empty_call" | "infrastructure";
export type TrajectoryKind = "initial" | "branch" | "filler";

export interface TrajectoryNode {
  index: number;
  /** Key path of its random stream (see agent_loop.ts). */
  path: string;
  kind: TrajectoryKind;
  /** Trajectory it forked from (branch). */
  parent: number | null;
  /** Segment ids, root to leaf. */
  segments: number[];
  end: EndReason | null;
  toolCalls: number[];
  reward?: number;
  rewardParts?: RewardResult["parts"];
  advantage?: number;
  /**
   * Set when one of its tool calls failed for infrastructure reasons (e.g. the wall-clock guard
   * fired twice): which call and why. Such a trajectory is not the policy's doing: it gets no
   * reward, no advantage, is left out of the update and of accuracy, and is counted in the
   * metrics (`infrastructure_failures`).
   */
  infrastructureFailure?: string;
}

/** A trajectory flattened for training: response arrays aligned position by position. */
export interface FlatTrajectory {
  index: number;
  promptTokens: number[];
  responseTokens: number[];
  lossMask: (0 | 1)[];
  logprobs: number[];
  entropies: number[];
}

export class RolloutTree {
  readonly segments: Segment[] = [];
  readonly toolCalls: ToolCallNode[] = [];
  readonly forks: ForkNode[] = [];
  readonly trajectories: TrajectoryNode[] = [];
  /** `aepo` with pre-monitoring only. */
  premonitor?: PreMonitorRecord;

  constructor(
    readonly task: Task,
    readonly promptTokens: readonly number[],
    readonly promptText: string,
  ) {}

  addSegment(s: Omit<Segment, "id">): Segment {
    const seg = { id: this.segments.length, ...s };
    this.segments.push(seg);
    return seg;
  }

  addToolCall(c: Omit<ToolCallNode, "id">): ToolCallNode {
    const node = { id: this.toolCalls.length, ...c };
    this.toolCalls.push(node);
    return node;
  }

  addFork(f: Omit<ForkNode, "id">): ForkNode {
    const node = { id: this.forks.length, ...f };
    this.forks.push(node);
    return node;
  }

  addTrajectory(t: Omit<TrajectoryNode, "index">): TrajectoryNode {
    const node = { index: this.trajectories.length, ...t };
    this.trajectories.push(node);
    return node;
  }

  /** Response length (tokens) of a trajectory so far. */
  responseLength(t: TrajectoryNode): number {
    const last = t.segments.at(-1);
    if (last === undefined) return 0;
    const s = this.segments[last];
    return s.start + s.tokens.length;
  }

  flatten(t: TrajectoryNode): FlatTrajectory {
    const out: FlatTrajectory = {
      index: t.index,
      promptTokens: [...this.promptTokens],
      responseTokens: [],
      lossMask: [],
      logprobs: [],
      entropies: [],
    };
    for (const id of t.segments) {
      const s = this.segments[id];
      out.responseTokens.push(...s.tokens);
      out.lossMask.push(...s.lossMask);
      out.logprobs.push(...s.logprobs);
      out.entropies.push(...s.entropies);
    }
    return out;
  }

  /** Tool calls of a trajectory as a reward sees them: their records, without tree ids. */
  toolCallRecords(t: TrajectoryNode): Required<ToolCallRecord>[] {
    return t.toolCalls.map((id) => {
      const c = this.toolCalls[id];
      return {
        tool: c.tool,
        tag: c.tag,
        input: c.input,
        output: c.output,
        error: c.error,
        timedOut: c.timedOut,
        truncated: c.truncated,
      };
    });
  }

  /**
   * The tree as JSON lines, each one canonical JSON (RFC 8785): a header, then segments, tool
   * calls, forks and trajectories, each kind in id order. No wall-clock values appear here, nor
   * anything that depends on the cache (ToolCallTiming: source, attempts).
   */
  toJsonLines(extra: Record<string, unknown> = {}): string {
    const lines: string[] = [];
    lines.push(canonicalJson({
      type: "question",
      task_id: this.task.id,
      answers: this.task.answers,
      prompt_tokens: this.promptTokens,
      prompt_text: this.promptText,
      ...(this.premonitor
        ? {
          premonitor: {
            h_root: this.premonitor.hRoot,
            h_steps: this.premonitor.hSteps,
            h_tool: this.premonitor.hTool,
            initial: this.premonitor.initial,
          },
        }
        : {}),
      ...extra,
    }));
    for (const s of this.segments) {
      lines.push(canonicalJson({
        type: "segment",
        id: s.id,
        parent: s.parent,
        kind: s.kind,
        trajectory: s.trajectory,
        start: s.start,
        tokens: s.tokens,
        text: s.text,
        logprobs: s.logprobs,
        entropies: s.entropies,
        loss_mask: s.lossMask,
        stop: s.stop,
        cut: s.cut,
      }));
    }
    for (const c of this.toolCalls) {
      lines.push(canonicalJson({
        type: "tool_call",
        id: c.id,
        trajectory: c.trajectory,
        call: c.call,
        segment: c.segment,
        result: c.result,
        tag: c.tag,
        tool: c.tool,
        input: c.input,
        output: c.output,
        error: c.error,
        timed_out: c.timedOut,
        truncated: c.truncated,
      }));
    }
    for (const f of this.forks) {
      lines.push(canonicalJson({
        type: "fork",
        id: f.id,
        trajectory: f.trajectory,
        tool_call: f.toolCall,
        at: f.at,
        mode: f.mode,
        h_init: f.hInit,
        h_now: f.hNow,
        delta_h: f.deltaH,
        p: f.p,
        u: f.u,
        decision: f.decision,
        children: f.children,
        ...(f.penaltyK !== undefined
          ? { penalty_k: f.penaltyK, penalty_factor: f.penaltyFactor }
          : {}),
      }));
    }
    for (const t of this.trajectories) {
      lines.push(canonicalJson({
        type: "trajectory",
        index: t.index,
        path: t.path,
        kind: t.kind,
        parent: t.parent,
        segments: t.segments,
        end: t.end,
        tool_calls: t.toolCalls,
        response_length: this.responseLength(t),
        reward: t.reward,
        reward_parts: t.rewardParts,
        advantage: t.advantage,
        infrastructure_failure: t.infrastructureFailure,
      }));
    }
    return lines.join("\n") + "\n";
  }
}

/**
 * Structural checks every finished tree must pass (used by tests and worth calling after a run):
 * parents precede children, each trajectory is a connected root-to-leaf chain, masks are 0 exactly
 * on result segments, offsets add up, every trajectory ended.
 */
export function checkTree(tree: RolloutTree): string[] {
  const problems: string[] = [];
  for (const s of tree.segments) {
    const n = s.tokens.length;
    if (s.logprobs.length !== n || s.entropies.length !== n || s.lossMask.length !== n) {
      problems.push(`segment ${s.id}: per-token arrays differ in length`);
    }
    const want = s.kind === "result" ? 0 : 1;
    if (s.lossMask.some((m) => m !== want)) {
      problems.push(`segment ${s.id} (${s.kind}): loss mask should be all ${want}`);
    }
    if (s.parent !== null) {
      const p = tree.segments[s.parent];
      if (p === undefined || p.id >= s.id) problems.push(`segment ${s.id}: bad parent`);
      else if (p.start + p.tokens.length !== s.start) {
        problems.push(`segment ${s.id}: starts at ${s.start}, parent ends elsewhere`);
      }
    } else if (s.start !== 0) problems.push(`segment ${s.id}: root segment not at offset 0`);
  }
  for (const t of tree.trajectories) {
    if (t.end === null) problems.push(`trajectory ${t.index}: not finished`);
    let prev: number | null = null;
    for (const id of t.segments) {
      if (tree.segments[id]?.parent !== prev) {
        problems.push(`trajectory ${t.index}: segment ${id} does not follow ${prev}`);
      }
      prev = id;
    }
  }
  return problems;
}
