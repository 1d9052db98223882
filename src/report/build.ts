/**
 * Run record (+ its stage outputs in the store) → ReportData. The record gives the run, the
 * manifest summary and the stage table; stage outputs give the rest, recognised by content:
 *  - a StageReport object (`format: "arpo-report-stage/1"`): training curves, eval tables,
 *    entropy curves, fork decisions, branching, trees — as the stage wrote them;
 *  - a rollout_batch index (src/rollout/artifacts.ts): its metrics' entropy curves, and its
 *    trees (fork decisions, branches per question, a few trees for the browser).
 * Anything else (checkpoints, data) is skipped without being read when it is large.
 */
import { ArpoError } from "../errors.ts";
import type { Json } from "../store/canonical.ts";
import type { RunRecord, StageRecord } from "../store/records.ts";
import type { Store } from "../store/store.ts";
import { parseTreeLines } from "../rollout/artifacts.ts";
import {
  type BranchingSet,
  type EntropyCurves,
  type ManifestSummary,
  type MetricValue,
  type ReportData,
  type Scalar,
  STAGE_REPORT_FORMAT,
  type StagePart,
  type StageReport,
  type StageRow,
} from "./data.ts";
import { runSamples, type Sample, type TokenTexts } from "./samples.ts";
import { runTokenizer, tokenTexts } from "./tokens.ts";
import {
  branchesPerQuestion,
  cut,
  entropyFromMetrics,
  forkPoints,
  stepFromMetrics,
  treeFromRecord,
  type TreeRecordLike,
} from "./from_rollout.ts";

export interface BuildOptions {
  /** Rollout trees per stage kept for the browser (default 8). */
  treesPerStage?: number;
  /** Trees read per stage for fork decisions and branching (default 400). */
  maxTreesRead?: number;
  /** Outputs larger than this are not opened (default 16 MiB). */
  maxOutputBytes?: number;
  /**
   * Per stage kind, the default of each option (dotted path → value; manifest/option_table.ts
   * `optionDefaults`): settings at their default are folded away in the report.
   */
  defaults?: Record<string, Record<string, unknown>>;
  /**
   * Per-token texts for the token view; default: the run's tokenizer (report/tokens.ts), when
   * it has one here. `false`: no per-token data.
   */
  tokenTexts?: TokenTexts | false;
  /** Samples kept per stage for the sample browser (default 2000). */
  maxSamplesPerStage?: number;
  /** Tokens with per-token entropy kept over all samples (default 150000); later ones have none. */
  maxSampleTokens?: number;
}

type Obj = Record<string, Json>;

function isObj(x: unknown): x is Obj {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** One line for the policy: the model path, or the init config compacted. */
function policyLine(p: Json | undefined): string | undefined {
  if (!isObj(p)) return undefined;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(p)) {
    if (v === null || v === undefined) continue;
    parts.push(`${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`);
  }
  const line = parts.join("; ");
  return line.length > 240 ? line.slice(0, 239) + "…" : line;
}

/** Flatten a stage's options into "stage.key.sub" scalars (arrays as JSON), at most `max`. */
function flattenSettings(
  prefix: string,
  value: Json,
  out: Record<string, Scalar>,
  max: number,
  depth = 0,
): void {
  if (Object.keys(out).length >= max) return;
  if (isObj(value) && depth < 4) {
    for (const k of Object.keys(value).sort()) {
      flattenSettings(`${prefix}.${k}`, value[k], out, max, depth + 1);
    }
  } else if (value === null || ["string", "number", "boolean"].includes(typeof value)) {
    out[prefix] = value as Scalar;
  } else {
    const s = JSON.stringify(value);
    out[prefix] = s.length > 120 ? s.slice(0, 119) + "…" : s;
  }
}

function manifestSummary(rec: RunRecord, defaults: BuildOptions["defaults"]): ManifestSummary {
  const m = isObj(rec.identity.manifest) ? rec.identity.manifest : {};
  const out: ManifestSummary = {};
  if (typeof m.seed === "number") out.seed = m.seed;
  const pol = policyLine(m.policy);
  if (pol) out.policy = pol;
  const plugins: { name: string; use: string; digest?: string }[] = [];
  if (isObj(m.plugins)) {
    for (const group of ["tools", "rewards", "benchmarks"]) {
      const list = m.plugins[group];
      if (!Array.isArray(list)) continue;
      for (const p of list) {
        if (!isObj(p)) continue;
        const use = typeof p.use === "string" ? p.use : "";
        const name = typeof p.as === "string" ? p.as : use;
        const digest = rec.identity.plugins[name];
        plugins.push(digest ? { name, use, digest } : { name, use });
      }
    }
  }
  if (plugins.length) out.plugins = plugins;
  const settings: Record<string, Scalar> = {};
  const defaulted: string[] = [];
  if (Array.isArray(m.stages)) {
    for (const s of m.stages) {
      if (!(isObj(s) && typeof s.name === "string" && isObj(s.options))) continue;
      const mine: Record<string, Scalar> = {};
      flattenSettings(s.name, s.options, mine, 400);
      const d = defaults?.[String(s.kind)] ?? {};
      for (const [k, v] of Object.entries(mine)) {
        settings[k] = v;
        const dv = d[k.slice(s.name.length + 1)];
        if (dv !== undefined && sameSetting(v, dv)) defaulted.push(k);
      }
    }
  }
  if (Object.keys(settings).length) out.settings = settings;
  if (defaulted.length) out.defaulted = defaulted;
  return out;
}

/** A flattened setting equals an option's default (arrays and maps flatten to JSON text). */
function sameSetting(v: Scalar, dflt: unknown): boolean {
  if (v === dflt) return true;
  const text = typeof dflt === "object" && dflt !== null ? JSON.stringify(dflt) : undefined;
  return text !== undefined && v === (text.length > 120 ? text.slice(0, 119) + "…" : text);
}

/** Top-level scalar metrics (or estimates) of a stage, for the stage table. */
function headline(metrics: Record<string, Json>, max = 8): Record<string, MetricValue | string> {
  const out: Record<string, MetricValue | string> = {};
  for (const [k, v] of Object.entries(metrics)) {
    if (Object.keys(out).length >= max) break;
    if (typeof v === "number" && Number.isFinite(v)) out[k] = v;
    else if (typeof v === "string" && v.length <= 40) out[k] = v;
    else if (isObj(v) && typeof v.estimate === "number") {
      out[k] = v as unknown as MetricValue;
    }
  }
  return out;
}

function stageRows(rec: RunRecord): StageRow[] {
  const m = isObj(rec.identity.manifest) ? rec.identity.manifest : {};
  const planned: { name: string; kind: string }[] = Array.isArray(m.stages)
    ? m.stages.filter(isObj).map((s) => ({ name: String(s.name), kind: String(s.kind) }))
    : [];
  for (const [name, s] of Object.entries(rec.stages)) {
    if (!planned.some((p) => p.name === name)) planned.push({ name, kind: s.kind });
  }
  let blamed = false;
  return planned.map(({ name, kind }) => {
    const s = rec.stages[name];
    const row: StageRow = { name, kind };
    if (s) {
      row.key = s.key;
      row.status = s.reused ? "reused" : "done";
      const hl = headline(s.metrics);
      if (Object.keys(hl).length) row.metrics = hl;
    } else if (!blamed && rec.status !== "complete") {
      // The first stage without a record is the one that was running when the run stopped.
      row.status = rec.status;
      blamed = true;
    } else row.status = "pending";
    const wall = rec.timings[`${name}_ms`];
    if (typeof wall === "number") row.wallMs = wall;
    return row;
  });
}

function withStage<T extends { stage: string }>(items: StagePart<T>[] | undefined, stage: string) {
  return (items ?? []).filter(isObj).map((x) => ({ ...x, stage: x.stage ?? stage }) as T);
}

/** Merge entropy curves of several batches: count-weighted means per distance. */
function mergeCurves(
  list: EntropyCurves[],
  stage: string,
): EntropyCurves | undefined {
  if (list.length === 0) return undefined;
  if (list.length === 1) return list[0];
  const merge = (which: "fromResult" | "fromStart") => {
    const sum: number[] = [], cnt: number[] = [];
    for (const e of list) {
      const c = e[which];
      if (!c) continue;
      c.mean.forEach((m, i) => {
        const k = c.count?.[i] ?? 1;
        sum[i] = (sum[i] ?? 0) + m * k;
        cnt[i] = (cnt[i] ?? 0) + k;
      });
    }
    if (!sum.length) return undefined;
    return {
      mean: sum.map((s, i) => (cnt[i] > 0 ? s / cnt[i] : 0)),
      count: cnt.map((c) => c ?? 0),
    };
  };
  const out: EntropyCurves = { stage };
  const fr = merge("fromResult"), fs = merge("fromStart");
  if (fr) out.fromResult = fr;
  if (fs) out.fromStart = fs;
  return out;
}

export async function readSmallJson(
  store: Store,
  digest: string,
  maxBytes: number,
  context: string,
): Promise<Obj | undefined> {
  try {
    const st = await Deno.stat(store.objectPath(digest));
    if (st.size > maxBytes) return undefined;
  } catch {
    return undefined; // missing objects are `arpo show`'s and `verify`'s business
  }
  const bytes = await store.getBytes(digest, context);
  // Only JSON objects can be report fragments or rollout indexes; skip binaries cheaply.
  let i = 0;
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x0a)) i++;
  if (bytes[i] !== 0x7b) return undefined;
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes));
    return isObj(v) ? v : undefined;
  } catch {
    return undefined; // JSON lines (trees) and other text: not a single object
  }
}

/** The report's per-stage lists, filled stage by stage. */
type Parts = Required<
  Pick<ReportData, "training" | "evals" | "entropy" | "forks" | "branching" | "trees">
>;

interface Limits {
  treesPerStage: number;
  maxTreesRead: number;
  maxBytes: number;
}

/** A rollout batch index with the optimizer step it was sampled at (its context's `step`). */
interface Batch {
  index: Obj;
  step: number | undefined;
}

/** A rollout tree record with its batch's step. */
interface TreeRead {
  rec: TreeRecordLike;
  step: number | undefined;
}

/** Build the report data of one run from its record and the objects it references. */
export async function buildReportData(
  store: Store,
  rec: RunRecord,
  opts: BuildOptions = {},
): Promise<ReportData> {
  const limits: Limits = {
    treesPerStage: opts.treesPerStage ?? 8,
    maxTreesRead: opts.maxTreesRead ?? 400,
    maxBytes: opts.maxOutputBytes ?? 16 * 1024 * 1024,
  };
  const data = runOverview(rec, opts.defaults);
  const parts: Parts = {
    training: [],
    evals: [],
    entropy: [],
    forks: [],
    branching: [],
    trees: [],
  };
  for (const [stage, s] of Object.entries(rec.stages)) {
    await collectStage(store, rec, stage, s, parts, limits);
  }
  if (parts.training.length) data.training = parts.training;
  if (parts.evals.length) data.evals = parts.evals;
  if (parts.entropy.length) data.entropy = parts.entropy;
  if (parts.forks.length) data.forks = parts.forks;
  if (parts.branching.length) data.branching = parts.branching;
  if (parts.trees.length) data.trees = parts.trees;
  await addSamples(store, rec, data, opts);
  return data;
}

/**
 * Every trajectory for the sample browser: texts cut at MAX_TEXT, per-token values rounded to 3
 * decimals (the page stays small; the store keeps the full values), at most
 * `maxSamplesPerStage` per stage and `maxSampleTokens` tokens with per-token data in all.
 */
async function addSamples(
  store: Store,
  rec: RunRecord,
  data: ReportData,
  opts: BuildOptions,
): Promise<void> {
  let texts = opts.tokenTexts === false ? undefined : opts.tokenTexts;
  if (opts.tokenTexts === undefined) {
    const tok = await runTokenizer(store, rec).catch(() => undefined);
    if (tok) texts = tokenTexts(tok);
  }
  const all = await runSamples(store, rec, undefined, texts);
  if (!all.length) return;
  const perStage = opts.maxSamplesPerStage ?? 2000;
  let tokenBudget = opts.maxSampleTokens ?? 150_000;
  const kept: Sample[] = [];
  const left: Record<string, number> = {};
  const count = new Map<string, number>();
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  for (const s of all) {
    const n = count.get(s.stage) ?? 0;
    count.set(s.stage, n + 1);
    if (n >= perStage) {
      left[s.stage] = (left[s.stage] ?? 0) + 1;
      continue;
    }
    const withTokens = tokenBudget >= s.responseTokens;
    if (withTokens) tokenBudget -= s.responseTokens;
    kept.push({
      ...s,
      question: cut(s.question),
      parts: s.parts.map((p) => {
        const { tokens, ...rest } = p;
        const out = { ...rest, text: cut(p.text) };
        return withTokens && tokens
          ? {
            ...out,
            tokens: tokens.map((t) => ({
              text: t.text,
              entropy: r3(t.entropy),
              logprob: r3(t.logprob),
            })),
          }
          : out;
      }),
    });
  }
  data.samples = kept;
  if (Object.keys(left).length) data.samplesLeftOut = left;
}

/** The run header and the stage table, from the record alone. */
function runOverview(rec: RunRecord, defaults: BuildOptions["defaults"]): ReportData {
  const m = isObj(rec.identity.manifest) ? rec.identity.manifest : {};
  const data: ReportData = {
    run: {
      id: rec.id,
      name: rec.name,
      status: rec.status,
      manifest: manifestSummary(rec, defaults),
    },
    stages: stageRows(rec),
  };
  if (typeof m.description === "string" && m.description) data.run.description = m.description;
  if (rec.error) data.run.error = rec.error;
  if (typeof rec.timings.total_ms === "number") data.run.wallMs = rec.timings.total_ms;
  return data;
}

/**
 * One stage's parts: what its StageReport outputs give, and what its rollout batches give for
 * the parts the stage did not report itself.
 */
async function collectStage(
  store: Store,
  rec: RunRecord,
  stage: string,
  s: StageRecord,
  parts: Parts,
  limits: Limits,
): Promise<void> {
  const label = `run ${rec.id.slice(0, 12)}, stage '${stage}'`;
  const { given, batches } = await readStageOutputs(store, s, stage, label, parts, limits);
  if (batches.length === 0) {
    if (!given.has("entropy")) {
      const e = entropyFromMetrics(s.metrics as unknown as Json, { stage });
      if (e) parts.entropy.push(e);
    }
    return;
  }
  // Batches in step order; the browser shows trees of the last one (the most trained policy).
  batches.sort((a, b) => (a.step ?? 0) - (b.step ?? 0));
  curvesFromBatches(stage, s, batches, given, parts);
  const wantForks = !given.has("forks") || !given.has("branching");
  const wantTrees = !given.has("trees");
  if (!wantForks && !wantTrees) return;
  const records = await readTrees(store, batches, label, limits.maxTreesRead);
  if (wantForks) forksFromTrees(stage, batches, records, given, parts);
  if (wantTrees) {
    for (const r of records.slice(0, limits.treesPerStage)) {
      parts.trees.push(treeFromRecord(r.rec, { stage, step: r.step }));
    }
  }
}

/**
 * Read a stage's outputs: StageReport parts go straight into `parts` (their keys into `given`);
 * rollout batch indexes, direct or listed by a StageReport, are returned once each.
 */
async function readStageOutputs(
  store: Store,
  s: StageRecord,
  stage: string,
  label: string,
  parts: Parts,
  limits: Limits,
): Promise<{ given: Set<string>; batches: Batch[] }> {
  const given = new Set<string>();
  const batches: Batch[] = [];
  const seen = new Set<string>();
  const addBatch = (digest: string, index: Obj) => {
    if (seen.has(digest)) return; // listed by a StageReport and also a direct output
    seen.add(digest);
    const ctx = isObj(index.context) ? index.context : {};
    batches.push({ index, step: typeof ctx.step === "number" ? ctx.step : undefined });
  };
  for (const [out, digest] of Object.entries(s.outputs)) {
    const obj = await readSmallJson(store, digest, limits.maxBytes, `${label} output '${out}'`);
    if (!obj) continue;
    if (obj.format === STAGE_REPORT_FORMAT) {
      const part = obj as unknown as StageReport;
      addStageReport(part, stage, given, parts);
      for (const d of Array.isArray(part.rollouts) ? part.rollouts : []) {
        if (typeof d !== "string") continue;
        const idx = await readSmallJson(store, d, limits.maxBytes, `${label} rollout batch ${d}`);
        if (idx?.type === "rollout_batch" && Array.isArray(idx.questions)) addBatch(d, idx);
      }
    } else if (obj.type === "rollout_batch" && Array.isArray(obj.questions)) {
      addBatch(digest, obj);
    }
  }
  return { given, batches };
}

/** A StageReport's parts, stamped with the stage where they do not name one. */
function addStageReport(part: StageReport, stage: string, given: Set<string>, parts: Parts) {
  const add = <K extends keyof Omit<StageReport, "format">>(k: K, into: unknown[]) => {
    const items = withStage(part[k] as StagePart<{ stage: string }>[] | undefined, stage);
    if (items.length) given.add(k);
    into.push(...items);
  };
  add("training", parts.training);
  add("evals", parts.evals);
  add("entropy", parts.entropy);
  add("forks", parts.forks);
  add("branching", parts.branching);
  add("trees", parts.trees);
}

/** Training curve (rl stages or several steps) and merged entropy curves from batch metrics. */
function curvesFromBatches(
  stage: string,
  s: StageRecord,
  batches: Batch[],
  given: Set<string>,
  parts: Parts,
): void {
  const steps = new Set(batches.map((b) => b.step).filter((x) => x !== undefined));
  if (!given.has("training") && (s.kind === "rl" || steps.size > 1)) {
    const pts = batches.filter((b) => b.step !== undefined)
      .map((b) => stepFromMetrics(b.step!, b.index.metrics));
    if (pts.length) parts.training.push({ stage, steps: pts });
  }
  if (!given.has("entropy")) {
    const curves = batches
      .map((b) => entropyFromMetrics(b.index.metrics, { stage }))
      .filter((e): e is EntropyCurves => e !== undefined);
    const merged = mergeCurves(curves, stage);
    if (merged) parts.entropy.push(merged);
  }
}

/** Up to `max` rollout trees, last batch first so the browser's trees are among those read. */
async function readTrees(
  store: Store,
  batches: Batch[],
  label: string,
  max: number,
): Promise<TreeRead[]> {
  const records: TreeRead[] = [];
  for (const b of [...batches].reverse()) {
    for (const q of b.index.questions as Json[]) {
      if (records.length >= max) break;
      if (!isObj(q) || typeof q.tree !== "string") continue;
      const where = `${label}, rollout tree of '${String(q.task_id)}'`;
      const text = new TextDecoder().decode(await store.getBytes(q.tree, where));
      records.push({ rec: parseTreeLines(text, where), step: b.step });
    }
  }
  return records;
}

/** Fork decisions over all trees read, and branches per question of the last batch. */
function forksFromTrees(
  stage: string,
  batches: Batch[],
  records: TreeRead[],
  given: Set<string>,
  parts: Parts,
): void {
  if (!given.has("forks")) {
    const points = forkPoints(records.map((r) => r.rec));
    if (points.length) parts.forks.push({ stage, points });
  }
  if (!given.has("branching")) {
    const lastStep = batches.at(-1)!.step;
    const last = records.filter((r) => r.step === lastStep).map((r) => r.rec);
    const perQuestion = branchesPerQuestion(last);
    if (perQuestion.length) {
      const set: BranchingSet = { stage, perQuestion };
      if (lastStep !== undefined) set.label = `${stage} (step ${lastStep})`;
      parts.branching.push(set);
    }
  }
}

/** Read a ReportData from JSON text (`arpo report --data FILE`), checking its outline. */
export function parseReportData(text: string, where: string): ReportData[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ArpoError(`${where}: not valid JSON (${(e as Error).message})`);
  }
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) throw new ArpoError(`${where}: an empty list; expected ReportData`);
  list.forEach((d, i) => {
    const at = Array.isArray(v) ? `${where}[${i}]` : where;
    if (!isObj(d)) throw new ArpoError(`${at}: expected a ReportData object, found ${typeof d}`);
    if (d.format !== undefined && d.format !== "arpo-report-data/1") {
      throw new ArpoError(
        `${at}: format is ${JSON.stringify(d.format)}; expected "arpo-report-data/1"`,
      );
    }
    if (!isObj(d.run) || typeof d.run.id !== "string" || typeof d.run.name !== "string") {
      throw new ArpoError(`${at}: 'run' must be an object with string 'id' and 'name'`);
    }
    for (const k of ["stages", "training", "evals", "entropy", "forks", "branching", "trees"]) {
      if (d[k] !== undefined && !Array.isArray(d[k])) {
        throw new ArpoError(`${at}: '${k}' must be a list, found ${typeof d[k]}`);
      }
    }
  });
  return list as ReportData[];
}
