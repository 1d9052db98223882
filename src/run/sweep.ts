/**
 * Seeds as an axis: run one manifest once per seed (each its own run, the manifest with `seed` set
 * to that value, exactly as `--set seed=N` would; stages whose key does not depend on the seed are
 * shared through the stage index like any other reuse), record the sweep (store/sweeps.ts), and
 * aggregate every numeric stage metric over the seeds: the mean with a stratified bootstrap
 * interval over seeds and questions, and the interquartile mean (eval/sweep_stats.ts).
 *
 * Per-question scores come from eval stages' `results` output (`per_question`); a metric is
 * resampled over questions only when the mean of those scores is the metric the stage recorded
 * (accuracy, pass@k, mean reward, tool calls per trajectory), else over seeds only (rl, sft,
 * probe metrics, counts).
 */
import { ArpoError, describeError } from "../errors.ts";
import { mean, passAtK } from "../eval/metrics.ts";
import { meanOfGroupMeans, pooledIqm, stratifiedBootstrap } from "../eval/sweep_stats.ts";
import type { ManifestView } from "../plugin/load.ts";
import type { Json } from "../store/canonical.ts";
import { digestJson } from "../store/hash.ts";
import { readRecord, type RunRecord } from "../store/records.ts";
import type { Store } from "../store/store.ts";
import {
  identityWithoutSeed,
  readSweep,
  SWEEP_FORMAT,
  type SweepAggregate,
  type SweepIdentity,
  sweepIdOf,
  type SweepMetric,
  sweepPath,
  type SweepRecord,
  type SweepRun,
  type SweepStageAggregate,
  writeSweep,
} from "../store/sweeps.ts";
import { runManifest, type RunOptions, type RunResult } from "./runner.ts";
import { ZERO_WHEN_ABSENT } from "./stages/rl_rollout.ts";

/** At most this many seeds in one sweep (a typo such as `1-10000` is an error, not a week). */
export const MAX_SEEDS = 1000;

/** Default resamples and confidence of a sweep's aggregate. */
export const SWEEP_RESAMPLES = 2000;
export const SWEEP_CONFIDENCE = 0.95;

/**
 * Parse a seed list: comma-separated non-negative integers and inclusive ranges `A-B` (A ≤ B),
 * e.g. `1,2,3`, `1-5`, `1-3,7`. Returns the seeds ascending. An empty list, an empty item, a
 * malformed item, a reversed range, a seed given twice, or more than MAX_SEEDS seeds is an
 * ArpoError naming the item.
 *
 * @example
 * ```ts
 * import { parseSeedList } from "./sweep.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseSeedList("1-3,7"), [1, 2, 3, 7]);
 * ```
 */
export function parseSeedList(text: string): number[] {
  const fail = (why: string): never => {
    throw new ArpoError(
      `--seeds ${JSON.stringify(text)}: ${why}; expected comma-separated non-negative integers ` +
        `and ranges, e.g. --seeds 1,2,3, --seeds 1-5 or --seeds 1-3,7`,
      { exitCode: 2 },
    );
  };
  if (text.trim() === "") fail("the list is empty");
  const seeds: number[] = [];
  const seen = new Set<number>();
  const add = (n: number, item: string) => {
    if (seen.has(n)) fail(`seed ${n} is given twice (in '${item}')`);
    seen.add(n);
    seeds.push(n);
    if (seeds.length > MAX_SEEDS) fail(`more than ${MAX_SEEDS} seeds`);
  };
  const int = (s: string, item: string) => {
    const n = Number(s);
    if (!Number.isSafeInteger(n)) fail(`'${item}' is out of range`);
    return n;
  };
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (item === "") fail("an item between commas is empty");
    const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(item);
    if (!m) fail(`'${item}' is neither a seed (e.g. 3) nor a range (e.g. 1-5)`);
    const a = int(m![1], item);
    if (m![2] === undefined) {
      add(a, item);
      continue;
    }
    const b = int(m![2], item);
    if (b < a) fail(`the range '${item}' ends below its start`);
    if (b - a + 1 > MAX_SEEDS) fail(`more than ${MAX_SEEDS} seeds`);
    for (let s = a; s <= b; s++) add(s, item);
  }
  return seeds.sort((x, y) => x - y);
}

export interface SweepOptions extends Omit<RunOptions, "view" | "archive" | "liveTools"> {
  /** The seeds (any order; run ascending). */
  seeds: readonly number[];
  /** The manifest with its seed set to `seed` (like `--set seed=N`). */
  view: (seed: number) => ManifestView | Promise<ManifestView>;
  /** `--set` overrides besides the seed, recorded for people. */
  overrides?: readonly string[];
  /** Called before each seed's run (progress). */
  onSeed?: (seed: number, index: number, total: number) => void;
  /** Resamples and confidence of the aggregate (defaults SWEEP_RESAMPLES, SWEEP_CONFIDENCE). */
  resamples?: number;
  confidence?: number;
}

export interface SweepResult {
  sweepId: string;
  recordPath: string;
  record: SweepRecord;
  /** Each seed's run, in seed order. */
  runs: { seed: number; result: RunResult }[];
}

/**
 * Run the manifest once per seed, in ascending seed order, and write the sweep record: after the
 * first seed's run (whose identity fixes the sweep id), after every later one, and at the end
 * with the aggregate. A failed or interrupted seed stops the sweep; its record then says so (with
 * the aggregate of the runs that completed) and the same command resumes, reusing what finished.
 */
export async function runSweep(opts: SweepOptions): Promise<SweepResult> {
  const seeds = [...new Set(opts.seeds)].sort((a, b) => a - b);
  if (seeds.length === 0) throw new ArpoError("a sweep needs at least one seed");
  const timings: Record<string, number> = { started_unix_ms: Date.now() };
  const t0 = performance.now();
  const runs: SweepRun[] = seeds.map((seed) => ({ seed, runId: null, status: "pending" }));
  const results: { seed: number; result: RunResult }[] = [];
  let rec: SweepRecord | undefined;
  let quiet = false;
  let baseDigest = "";
  const finish = async (status: SweepRecord["status"], error?: string) => {
    if (!rec) return;
    rec.status = status;
    if (error !== undefined) rec.error = error;
    else delete rec.error;
    timings.total_ms = performance.now() - t0;
    timings.finished_unix_ms = Date.now();
    const complete = rec.runs.filter((r) => r.status === "complete");
    if (complete.length) {
      rec.aggregate = await sweepAggregate(opts.store, rec, {
        resamples: opts.resamples,
        confidence: opts.confidence,
      });
    } else delete rec.aggregate;
    await writeSweep(opts.store, rec);
  };
  for (let i = 0; i < seeds.length; i++) {
    const seed = seeds[i];
    opts.onSeed?.(seed, i, seeds.length);
    let result: RunResult;
    try {
      const view = await opts.view(seed);
      if (view.manifest.seed !== seed) {
        throw new ArpoError(
          `internal: the manifest for seed ${seed} has seed ${view.manifest.seed}`,
        );
      }
      result = await runManifest({ ...opts, view });
    } catch (e) {
      const interrupted = opts.signal?.aborted === true;
      const msg = e instanceof ArpoError ? e.message : describeError(e);
      runs[i].status = interrupted ? "interrupted" : "failed";
      runs[i].error = msg;
      const where = `seed ${seed} (${i + 1} of ${seeds.length})`;
      // The run's error matters more than a failure to record the sweep's state.
      await finish(interrupted ? "interrupted" : "failed", `${where}: ${msg}`).catch(() => {});
      const tail = rec
        ? ` (sweep ${rec.id.slice(0, 12)} recorded as ${rec.status}; the same command resumes)`
        : "";
      throw new ArpoError(`sweep ${where}: ${msg}${tail}`, {
        cause: e,
        exitCode: e instanceof ArpoError ? e.exitCode : 1,
      });
    }
    results.push({ seed, result });
    runs[i] = { seed, runId: result.runId, status: result.record.status };
    const base = identityWithoutSeed(result.record.identity);
    if (!rec) {
      const identity: SweepIdentity = { format: SWEEP_FORMAT, base, seeds };
      const id = sweepIdOf(identity);
      baseDigest = digestJson(base);
      const m = result.record.identity.manifest as Record<string, Json>;
      rec = {
        format: SWEEP_FORMAT,
        id,
        identity,
        name: result.record.name,
        ...(typeof m.description === "string" ? { description: m.description } : {}),
        manifestPath: result.record.manifestPath,
        overrides: [...(opts.overrides ?? [])],
        seeds,
        runs,
        status: "running",
        timings,
      };
      // Running a finished sweep again: keep its record saying "complete" until the new one
      // replaces it at the end (as the runner does for run records).
      const prev = await readSweep(opts.store, id).catch(() => undefined);
      quiet = prev?.status === "complete" && !opts.force;
    } else {
      const d = digestJson(base);
      if (d !== baseDigest) {
        runs[i].base = d;
        opts.reporter?.log(
          `seed ${seed}: this run differs from seed ${seeds[0]}'s in more than the seed ` +
            `(identity without seed ${d.slice(0, 12)} vs ${baseDigest.slice(0, 12)})`,
        );
      }
    }
    if (!quiet && i < seeds.length - 1) await writeSweep(opts.store, rec);
  }
  await finish("complete");
  return {
    sweepId: rec!.id,
    recordPath: sweepPath(opts.store, rec!.id),
    record: rec!,
    runs: results,
  };
}

// ---------------------------------------------------------------------------------------------
// aggregate

interface PerQuestion {
  task_id: string;
  n: number;
  correct: number;
  rewards: number[];
  tool_calls?: number[];
}

type Obj = Record<string, Json>;
const isObj = (x: unknown): x is Obj => typeof x === "object" && x !== null && !Array.isArray(x);
const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
const fin = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** Per-question scores whose mean is the eval metric `metric`, if it is one of those. */
function perQuestionScores(metric: string, qs: readonly PerQuestion[]): number[] | undefined {
  const ok = qs.filter((q) => finite(q.n) && q.n > 0 && finite(q.correct));
  if (metric === "accuracy" || metric === "pass_at_1") return ok.map((q) => q.correct / q.n);
  const pk = /^pass_at_(\d+)$/.exec(metric);
  if (pk) {
    const k = Number(pk[1]);
    return ok.filter((q) => q.n >= k).map((q) => passAtK(q.n, q.correct, k));
  }
  if (metric === "mean_reward") {
    return ok.every((q) => Array.isArray(q.rewards) && q.rewards.length)
      ? ok.map((q) => mean(q.rewards))
      : undefined;
  }
  if (metric === "tool_calls_per_trajectory") {
    return ok.every((q) => Array.isArray(q.tool_calls) && q.tool_calls.length)
      ? ok.map((q) => mean(q.tool_calls!))
      : undefined;
  }
  return undefined;
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

/** An eval stage's per-question results, or undefined when it has none. */
async function evalPerQuestion(
  store: Store,
  rec: RunRecord,
  stage: string,
): Promise<PerQuestion[] | undefined> {
  const s = rec.stages[stage];
  const d = s?.outputs.results;
  if (s?.kind !== "eval" || typeof d !== "string") return undefined;
  const res = await store.getJson<Obj>(d, `run ${rec.id.slice(0, 12)}, stage '${stage}' results`);
  return isObj(res) && Array.isArray(res.per_question)
    ? res.per_question as unknown as PerQuestion[]
    : undefined;
}

/** Stage names and kinds in manifest order over the runs (first appearance). */
function stagesOf(recs: readonly RunRecord[]): { name: string; kind: string }[] {
  const out: { name: string; kind: string }[] = [];
  const add = (name: string, kind: string) => {
    if (!out.some((s) => s.name === name)) out.push({ name, kind });
  };
  for (const r of recs) {
    const m = r.identity.manifest as Obj;
    for (const s of Array.isArray(m.stages) ? m.stages.filter(isObj) : []) {
      if (r.stages[String(s.name)]) add(String(s.name), String(s.kind));
    }
    for (const [name, s] of Object.entries(r.stages)) add(name, s.kind);
  }
  return out;
}

export const SWEEP_METHOD =
  "mean over seeds; interval: percentile stratified bootstrap (resample seeds with " +
  "replacement, then each drawn seed's questions with replacement; seeds only for metrics " +
  "without per-question scores); IQM: interquartile mean of the pooled seed × question scores";

/**
 * A seed's value of a stage metric for the aggregate: the recorded number; 0 for a metric its
 * stage records only when nonzero (ZERO_WHEN_ABSENT) in a stage that ran; otherwise null (absent).
 *
 * @example
 * ```ts
 * seedMetric({ branch_rate: 0.3 }, "tool_cap_rate"); // 0: the cap ended no trajectory
 * seedMetric(undefined, "tool_cap_rate"); // null: the stage is not in this run
 * ```
 */
export function seedMetric(
  metrics: Readonly<Record<string, Json>> | undefined,
  metric: string,
): number | null {
  if (metrics === undefined) return null;
  const v = metrics[metric];
  if (finite(v)) return v;
  return v === undefined && ZERO_WHEN_ABSENT.has(metric) ? 0 : null;
}

/**
 * The aggregate over a sweep's complete runs: per stage, per numeric metric of the run records,
 * the mean over seeds with its interval, the IQM with its interval, and each seed's value. The
 * bootstrap stream is keyed by (sweep id, stage), so the same sweep always gives the same numbers.
 */
export async function sweepAggregate(
  store: Store,
  sweep: Pick<SweepRecord, "id" | "runs">,
  opts: { resamples?: number; confidence?: number } = {},
): Promise<SweepAggregate> {
  const resamples = opts.resamples ?? SWEEP_RESAMPLES;
  const confidence = opts.confidence ?? SWEEP_CONFIDENCE;
  const done = sweep.runs.filter((r) => r.status === "complete" && r.runId)
    .sort((a, b) => a.seed - b.seed);
  const recs: RunRecord[] = [];
  for (const r of done) recs.push(await readRecord(store, r.runId!));
  const seeds = done.map((r) => r.seed);
  const stages: SweepStageAggregate[] = [];
  for (const { name, kind } of stagesOf(recs)) {
    const names: string[] = [];
    for (const r of recs) {
      for (const [k, v] of Object.entries(r.stages[name]?.metrics ?? {})) {
        if (finite(v) && !names.includes(k)) names.push(k);
      }
    }
    if (!names.length) continue;
    const perQ = await Promise.all(recs.map((r) => evalPerQuestion(store, r, name)));
    const metrics: SweepMetric[] = [];
    for (const metric of names) {
      const perSeed = recs.map((r) => seedMetric(r.stages[name]?.metrics, metric));
      // Per-question scores, used only when every seed has them and they reproduce its metric.
      let groups: number[][] | undefined = [];
      for (let i = 0; i < recs.length && groups; i++) {
        const v = perSeed[i];
        if (v === null) continue;
        const qs = perQ[i] ? perQuestionScores(metric, perQ[i]!) : undefined;
        if (!qs || !qs.length || !close(mean(qs), v)) groups = undefined;
        else groups.push(qs);
      }
      const byQuestion = groups !== undefined && groups.length > 0;
      const g = byQuestion ? groups! : perSeed.filter((v): v is number => v !== null).map((v) => [
        v,
      ]);
      // One stream per stage: every metric and statistic of a stage sees the same resampled
      // seeds and questions (a joint bootstrap), so metrics with equal scores (accuracy and
      // pass@1) get equal intervals.
      const bo = {
        resamples,
        confidence,
        key: ["sweep", sweep.id, name],
        withinGroups: byQuestion,
      };
      const m = stratifiedBootstrap(g, meanOfGroupMeans, bo);
      const q = stratifiedBootstrap(g, pooledIqm, bo);
      metrics.push({
        metric,
        mean: fin(m.estimate),
        lo: fin(m.lo),
        hi: fin(m.hi),
        iqm: fin(q.estimate),
        iqmLo: fin(q.lo),
        iqmHi: fin(q.hi),
        perSeed,
        resampled: byQuestion ? "seeds×questions" : "seeds",
        ...(byQuestion ? { scores: g.reduce((a, x) => a + x.length, 0) } : {}),
      });
    }
    stages.push({ stage: name, kind, metrics });
  }
  return { seeds, confidence, resamples, method: SWEEP_METHOD, stages };
}
