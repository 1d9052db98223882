/**
 * Adapters from the rollout engine's artefacts (src/rollout/: per-question tree JSON lines and the
 * rollout_batch index with its metrics) to ReportData parts. These read the stored snake_case
 * records defensively: a field the engine does not (yet) write is left out, never guessed.
 */
import type { Json } from "../store/canonical.ts";
import type {
  EntropyCurves,
  ForkPoint,
  ReportTree,
  Scalar,
  StepMetrics,
  TreeFork,
  TreeSegment,
  TreeToolCall,
  TreeTrajectory,
} from "./data.ts";

type Obj = Record<string, Json>;

/** Segment text beyond this many characters is cut (the page stays small). */
export const MAX_TEXT = 4000;

function str(x: Json | undefined): string {
  return typeof x === "string" ? x : x === undefined || x === null ? "" : JSON.stringify(x);
}
function numOr(x: Json | undefined): number | undefined {
  return typeof x === "number" && Number.isFinite(x) ? x : undefined;
}
/** Text cut at MAX_TEXT characters, saying how much was left out. */
export function cut(text: string): string {
  return text.length > MAX_TEXT
    ? text.slice(0, MAX_TEXT) + `\n…[${text.length - MAX_TEXT} more characters]`
    : text;
}
function nums(x: Json | undefined): number[] {
  return Array.isArray(x) ? x.filter((v): v is number => typeof v === "number") : [];
}

/** The tree records as parseTreeLines (src/rollout/artifacts.ts) returns them. */
export interface TreeRecordLike {
  question: Obj;
  segments: Obj[];
  toolCalls: Obj[];
  forks: Obj[];
  trajectories: Obj[];
}

/**
 * The question: a `question` field when the engine writes one, else the templated prompt with
 * the last user turn picked out of ChatML-style templates (Qwen's `<|im_start|>user`), else the
 * whole prompt text.
 */
export function questionText(q: Obj): string {
  if (typeof q.question === "string") return cut(q.question);
  const text = str(q.prompt_text);
  const at = text.lastIndexOf("<|im_start|>user\n");
  if (at >= 0) {
    const body = text.slice(at + "<|im_start|>user\n".length);
    const end = body.indexOf("<|im_end|>");
    return cut(end >= 0 ? body.slice(0, end) : body);
  }
  return cut(text);
}

export function treeFromRecord(
  rec: TreeRecordLike,
  where: { stage: string; step?: number },
): ReportTree {
  const q = rec.question;
  const segments: TreeSegment[] = rec.segments.map((s) => {
    const ent = nums(s.entropies);
    const mask = nums(s.loss_mask);
    const sampled = ent.filter((_, i) => mask[i] === 1);
    const seg: TreeSegment = {
      id: numOr(s.id) ?? -1,
      parent: numOr(s.parent) ?? null,
      kind: str(s.kind),
      trajectory: numOr(s.trajectory) ?? -1,
      text: cut(str(s.text)),
      tokens: Array.isArray(s.tokens) ? s.tokens.length : undefined,
    };
    if (str(s.kind) === "gen" && sampled.length) {
      seg.meanEntropy = sampled.reduce((a, b) => a + b, 0) / sampled.length;
    }
    if (typeof s.stop === "string") seg.stop = s.stop;
    if (seg.tokens === undefined) delete seg.tokens;
    return seg;
  });
  const toolCalls: TreeToolCall[] = rec.toolCalls.map((c) => ({
    id: numOr(c.id) ?? -1,
    trajectory: numOr(c.trajectory) ?? -1,
    segment: numOr(c.segment) ?? -1,
    result: numOr(c.result) ?? -1,
    tool: str(c.tool ?? c.tag),
    input: cut(str(c.input)),
    output: cut(str(c.output)),
    error: c.error === true,
    timedOut: c.timed_out === true,
    cached: c.cached === true,
  }));
  const forks: TreeFork[] = rec.forks.map((f) => ({
    id: numOr(f.id) ?? -1,
    trajectory: numOr(f.trajectory) ?? -1,
    toolCall: numOr(f.tool_call) ?? -1,
    at: numOr(f.at) ?? -1,
    deltaH: numOr(f.delta_h) ?? NaN,
    p: numOr(f.p) ?? NaN,
    decision: str(f.decision),
    children: nums(f.children),
  }));
  const trajectories: TreeTrajectory[] = rec.trajectories.map((t) => {
    const out: TreeTrajectory = {
      index: numOr(t.index) ?? -1,
      kind: str(t.kind),
      parent: numOr(t.parent) ?? null,
      segments: nums(t.segments),
      end: typeof t.end === "string" ? t.end : null,
      toolCalls: Array.isArray(t.tool_calls) ? t.tool_calls.length : undefined,
      responseLength: numOr(t.response_length),
      reward: numOr(t.reward),
      advantage: numOr(t.advantage),
    };
    if (t.reward_parts && typeof t.reward_parts === "object" && !Array.isArray(t.reward_parts)) {
      const parts: Record<string, Scalar> = {};
      for (const [k, v] of Object.entries(t.reward_parts)) {
        if (v === null || ["string", "number", "boolean"].includes(typeof v)) {
          parts[k] = v as Scalar;
        }
      }
      out.rewardParts = parts;
    }
    for (const k of Object.keys(out) as (keyof TreeTrajectory)[]) {
      if (out[k] === undefined) delete out[k];
    }
    return out;
  });
  const tree: ReportTree = {
    stage: where.stage,
    taskId: str(q.task_id),
    question: questionText(q),
    segments,
    toolCalls,
    forks,
    trajectories,
  };
  if (where.step !== undefined) tree.step = where.step;
  if (Array.isArray(q.answers)) tree.answers = q.answers.map(str);
  return tree;
}

/** Every fork decision of the trees as scatter points. */
export function forkPoints(recs: readonly TreeRecordLike[]): ForkPoint[] {
  const out: ForkPoint[] = [];
  for (const r of recs) {
    for (const f of r.forks) {
      const dh = numOr(f.delta_h), p = numOr(f.p);
      if (dh === undefined || p === undefined) continue;
      out.push({ deltaH: dh, p, decision: str(f.decision) });
    }
  }
  return out;
}

/** Branches taken per question: the trajectories created by forks ("branch" kind). */
export function branchesPerQuestion(recs: readonly TreeRecordLike[]): number[] {
  return recs.map((r) => r.trajectories.filter((t) => t.kind === "branch").length);
}

/** Entropy curves from rollout metrics JSON (RolloutMetrics.entropy), when present. */
export function entropyFromMetrics(
  metrics: Json | undefined,
  where: { stage: string; label?: string },
): EntropyCurves | undefined {
  const ent = (metrics as Obj | undefined)?.entropy as Obj | undefined;
  if (!ent || typeof ent !== "object") return undefined;
  const curve = (c: Json | undefined) => {
    const o = c as Obj | undefined;
    if (!o || !Array.isArray(o.mean)) return undefined;
    return { mean: nums(o.mean), ...(Array.isArray(o.count) ? { count: nums(o.count) } : {}) };
  };
  const out: EntropyCurves = { stage: where.stage };
  if (where.label) out.label = where.label;
  const fr = curve(ent.fromResult), fs = curve(ent.fromStart);
  if (fr) out.fromResult = fr;
  if (fs) out.fromStart = fs;
  return fr || fs ? out : undefined;
}

/**
 * One training-curve point from a rollout batch's metrics (RolloutMetrics JSON): what the
 * rollouts alone tell (reward, tool use, branching, length); the update's numbers (loss, KL…)
 * come only from a StageReport.
 */
export function stepFromMetrics(step: number, metrics: Json | undefined): StepMetrics {
  const m = (metrics ?? {}) as Obj;
  const out: StepMetrics = { step };
  const o = (
    x: Json | undefined,
  ) => (x && typeof x === "object" && !Array.isArray(x) ? x as Obj : {});
  const reward = o(m.reward);
  if (numOr(reward.mean) !== undefined) out.reward = numOr(reward.mean);
  const parts: Record<string, number> = {};
  for (const [k, v] of Object.entries(o(reward.parts))) {
    if (typeof v === "number" && Number.isFinite(v)) parts[k] = v;
  }
  if (Object.keys(parts).length) out.rewardParts = parts;
  const tpt = o(m.toolCallsPerTrajectory);
  if (numOr(tpt.all) !== undefined) out.toolCallsPerTrajectory = numOr(tpt.all);
  const byTool: Record<string, number> = {};
  for (const [k, v] of Object.entries(o(tpt.byTool))) {
    if (typeof v === "number" && Number.isFinite(v)) byTool[k] = v;
  }
  if (Object.keys(byTool).length) out.toolCallsByTool = byTool;
  const errors = numOr(o(m.toolCalls).errors);
  if (errors !== undefined) out.toolErrors = errors;
  const branches = numOr(o(m.branching).childrenPerQuestion);
  if (branches !== undefined) out.branchesPerQuestion = branches;
  const len = numOr(o(m.responseLength).mean);
  if (len !== undefined) out.responseLength = len;
  return out;
}
