/**
 * Every trajectory of a run's rollout stages as a Sample: the question, the text it generated
 * and the tool results it saw (in order), its reward and parts, whether the benchmark judged it
 * correct (eval stages record that per sample), its tool errors and timeouts, and optionally its
 * per-token entropy and log-probability. `arpo samples` prints them; the report's sample browser
 * shows them.
 */
import { ArpoError } from "../errors.ts";
import type { Json } from "../store/canonical.ts";
import type { RunRecord, StageRecord } from "../store/records.ts";
import type { Store } from "../store/store.ts";
import { parseTreeLines, type TreeRecord } from "../rollout/artifacts.ts";
import { type Scalar, STAGE_REPORT_FORMAT } from "./data.ts";
import { readSmallJson } from "./build.ts";
import { questionText } from "./from_rollout.ts";

/** One token of a generated segment (or of a tool result, which the policy did not sample). */
export interface SampleToken {
  /** Its text, as a streaming decoder attributes it (may be "" inside a multi-byte character). */
  text: string;
  /** Full-vocabulary entropy at the position (nats); 0 where the policy did not sample. */
  entropy: number;
  logprob: number;
}

/** A piece of a trajectory, in order: generated text, or the result of a tool call. */
export interface SamplePart {
  kind: "gen" | "result" | "eos";
  text: string;
  /** Result parts: the call (its tool, what the model asked, whether it failed). */
  call?: { id: number; tool: string; input: string; error: boolean; timedOut: boolean };
  /** With per-token data asked for. */
  tokens?: SampleToken[];
}

export interface Sample {
  stage: string;
  /** The optimizer step the batch was sampled at (rl), when the batch says. */
  step?: number;
  taskId: string;
  question: string;
  answers: string[];
  trajectory: number;
  kind: string;
  end: string | null;
  reward?: number;
  rewardParts?: Record<string, Scalar>;
  advantage?: number;
  /** The benchmark's verdict; null where the stage judged nothing (rl, probe) or it failed. */
  correct: boolean | null;
  toolCalls: number;
  /** Calls that failed, timeouts included. */
  toolErrors: number;
  timeouts: number;
  /** Mean entropy over sampled positions. */
  meanEntropy?: number;
  responseTokens: number;
  parts: SamplePart[];
}

/** Turns token ids into per-token texts (a streaming decoder, so characters split right). */
export type TokenTexts = (ids: readonly number[]) => string[];

export const SAMPLE_FILTERS = ["correct", "wrong", "tool_error", "timeout"] as const;
export type SampleFilter = typeof SAMPLE_FILTERS[number];
export const SAMPLE_SORTS = ["reward", "entropy", "length"] as const;
export type SampleSort = typeof SAMPLE_SORTS[number];

type Obj = Record<string, Json>;
const isObj = (x: unknown): x is Obj => typeof x === "object" && x !== null && !Array.isArray(x);
const num = (x: Json | undefined) => typeof x === "number" && Number.isFinite(x) ? x : undefined;
const nums = (x: Json | undefined) =>
  Array.isArray(x) ? x.map((v) => (typeof v === "number" ? v : 0)) : [];
const str = (x: Json | undefined) => (typeof x === "string" ? x : "");

/** A rollout batch of a stage, with the step it was sampled at. */
interface Batch {
  index: Obj;
  step?: number;
}

/** The stage's rollout batches (direct outputs, or listed by its StageReport) and eval verdicts. */
async function stageBatches(
  store: Store,
  s: StageRecord,
  label: string,
): Promise<{ batches: Batch[]; verdicts: Map<string, (boolean | null)[]> }> {
  const batches: Batch[] = [];
  const verdicts = new Map<string, (boolean | null)[]>();
  const seen = new Set<string>();
  const add = (d: string, idx: Obj) => {
    if (seen.has(d)) return;
    seen.add(d);
    const ctx = isObj(idx.context) ? idx.context : {};
    batches.push({ index: idx, step: num(ctx.step) });
  };
  const max = 64 * 1024 * 1024;
  for (const [out, d] of Object.entries(s.outputs)) {
    const obj = await readSmallJson(store, d, max, `${label} output '${out}'`);
    if (!obj) continue;
    if (obj.type === "rollout_batch" && Array.isArray(obj.questions)) add(d, obj);
    else if (obj.format === STAGE_REPORT_FORMAT && Array.isArray(obj.rollouts)) {
      for (const r of obj.rollouts) {
        if (typeof r !== "string") continue;
        const idx = await readSmallJson(store, r, max, `${label} rollout batch ${r}`);
        if (idx?.type === "rollout_batch" && Array.isArray(idx.questions)) add(r, idx);
      }
    } else if (obj.type === "eval_results" && Array.isArray(obj.per_question)) {
      for (const q of obj.per_question) {
        if (!isObj(q) || !Array.isArray(q.sample_correct)) continue;
        verdicts.set(
          str(q.task_id),
          q.sample_correct.map((c) => (typeof c === "boolean" ? c : null)),
        );
      }
    }
  }
  batches.sort((a, b) => (a.step ?? 0) - (b.step ?? 0));
  return { batches, verdicts };
}

/** The samples of one tree. */
export function treeSamples(
  rec: TreeRecord,
  where: { stage: string; step?: number; verdicts?: (boolean | null)[] },
  tokenTexts?: TokenTexts,
): Sample[] {
  const segs = new Map(rec.segments.map((s) => [num(s.id), s]));
  const callByResult = new Map(rec.toolCalls.map((c) => [num(c.result), c]));
  const q = rec.question;
  return rec.trajectories.map((t, i) => {
    const parts: SamplePart[] = [];
    let entSum = 0, entN = 0, tokens = 0;
    for (const id of nums(t.segments)) {
      const s = segs.get(id);
      if (!s) continue;
      const kind =
        (["gen", "result", "eos"].includes(str(s.kind)) ? str(s.kind) : "gen") as SamplePart[
          "kind"
        ];
      const part: SamplePart = { kind, text: str(s.text) };
      const ids = nums(s.tokens), ent = nums(s.entropies), lp = nums(s.logprobs);
      const mask = nums(s.loss_mask);
      tokens += ids.length;
      mask.forEach((m, j) => {
        if (m === 1) (entSum += ent[j] ?? 0), entN++;
      });
      const c = kind === "result" ? callByResult.get(id) : undefined;
      if (c) {
        part.call = {
          id: num(c.id) ?? -1,
          tool: str(c.tool) || str(c.tag),
          input: str(c.input),
          error: c.error === true,
          timedOut: c.timed_out === true,
        };
      }
      if (tokenTexts) {
        const texts = tokenTexts(ids);
        part.tokens = ids.map((_, j) => ({
          text: texts[j] ?? "",
          entropy: ent[j] ?? 0,
          logprob: lp[j] ?? 0,
        }));
      }
      parts.push(part);
    }
    const calls = parts.filter((p) => p.call).map((p) => p.call!);
    const sample: Sample = {
      stage: where.stage,
      taskId: str(q.task_id),
      question: questionText(q),
      answers: Array.isArray(q.answers) ? q.answers.map((a) => String(a)) : [],
      trajectory: num(t.index) ?? i,
      kind: str(t.kind),
      end: typeof t.end === "string" ? t.end : null,
      correct: where.verdicts?.[i] ?? null,
      toolCalls: calls.length,
      toolErrors: calls.filter((c) => c.error || c.timedOut).length,
      timeouts: calls.filter((c) => c.timedOut).length,
      responseTokens: tokens,
      parts,
    };
    if (where.step !== undefined) sample.step = where.step;
    if (num(t.reward) !== undefined) sample.reward = num(t.reward);
    if (num(t.advantage) !== undefined) sample.advantage = num(t.advantage);
    if (entN) sample.meanEntropy = entSum / entN;
    if (isObj(t.reward_parts)) {
      const rp: Record<string, Scalar> = {};
      for (const [k, v] of Object.entries(t.reward_parts)) {
        if (v === null || ["string", "number", "boolean"].includes(typeof v)) rp[k] = v as Scalar;
      }
      sample.rewardParts = rp;
    }
    return sample;
  });
}

/**
 * The samples of a run's stage (or of every stage with rollouts, `stage` undefined), in stage,
 * step and question order. An unknown stage, or one without rollouts, is an error naming it.
 */
export async function runSamples(
  store: Store,
  rec: RunRecord,
  stage?: string,
  tokenTexts?: TokenTexts,
): Promise<Sample[]> {
  const names = stage === undefined ? Object.keys(rec.stages) : [stage];
  if (stage !== undefined && !rec.stages[stage]) {
    throw new ArpoError(
      `run ${rec.id.slice(0, 12)} has no stage '${stage}' (its stages: ${
        Object.keys(rec.stages).join(", ") || "none"
      })`,
    );
  }
  const out: Sample[] = [];
  for (const name of names) {
    const label = `run ${rec.id.slice(0, 12)}, stage '${name}'`;
    const { batches, verdicts } = await stageBatches(store, rec.stages[name], label);
    if (stage !== undefined && batches.length === 0) {
      throw new ArpoError(`${label} (${rec.stages[name].kind}) has no rollouts to show`);
    }
    for (const b of batches) {
      for (const q of b.index.questions as Json[]) {
        if (!isObj(q) || typeof q.tree !== "string") continue;
        const where = `${label}, rollout tree of '${str(q.task_id)}'`;
        const text = new TextDecoder().decode(await store.getBytes(q.tree, where));
        out.push(...treeSamples(parseTreeLines(text, where), {
          stage: name,
          step: b.step,
          verdicts: verdicts.get(str(q.task_id)),
        }, tokenTexts));
      }
    }
  }
  return out;
}

/** Does the sample pass `--where`? */
export function sampleMatches(s: Sample, where: SampleFilter): boolean {
  switch (where) {
    case "correct":
      return s.correct === true;
    case "wrong":
      return s.correct === false;
    case "tool_error":
      return s.toolErrors > 0;
    case "timeout":
      return s.timeouts > 0;
  }
}

/** Highest first (reward, mean entropy, response length); ties keep their order. */
export function sortSamples(samples: Sample[], by: SampleSort): Sample[] {
  const key = (s: Sample) =>
    by === "reward"
      ? s.reward ?? -Infinity
      : by === "entropy"
      ? s.meanEntropy ?? -Infinity
      : s.responseTokens;
  return samples.map((s, i) => ({ s, i, k: key(s) }))
    .sort((a, b) => b.k - a.k || a.i - b.i)
    .map((x) => x.s);
}
