/**
 * Running a manifest: load plugins (archiving their sources and the data they read), archive the
 * model, compute the run id, then run the stages in order. Each stage has a key over everything
 * that determines its outputs; a key already in the stage index is reused, so running a finished
 * manifest again computes nothing. An interrupted stage resumes from its last checkpoint.
 */
import { hostname } from "node:os";
import { ArpoError, describeError } from "../errors.ts";
import { resolveModelDir } from "../manifest/mod.ts";
import type { ResolvedManifest, StageConfig } from "../manifest/mod.ts";
import type { Policy } from "../policy/types.ts";
import { DataAccess } from "../plugin/context.ts";
import { type LoadedPlugins, loadPlugins, type ManifestView } from "../plugin/load.ts";
import { Stream } from "../rng.ts";
import type { Json } from "../store/canonical.ts";
import { digestJson } from "../store/hash.ts";
import {
  RECORD_FORMAT,
  type RunIdentity,
  runIdOf,
  type RunRecord,
  type StageRecord,
  writeRecord,
} from "../store/records.ts";
import type { Store } from "../store/store.ts";
import { stageStore } from "./stage_store.ts";
import { acquireLock, type HeldLock } from "../store/lock.ts";
import { readStageIndex, writeStageIndex } from "../store/stage_index.ts";
import type { ToolCache } from "../tools/runtime.ts";
import { BUILTIN_STAGES } from "./builtin.ts";
import { archiveModel, checkModelPath, materializeModel, modelDigest } from "./model.ts";
import { addPolicyRecords, recordedOf } from "./policy_record.ts";
import { type Reporter, silentReporter } from "./progress.ts";
import { type StageDependencies, stageInputs, stageKey, stagePlugins } from "./stage_key.ts";
import type {
  EarlierStage,
  PolicyFactory,
  PolicyRequest,
  StageContext,
  StageKind,
  StageOutputs,
} from "./stages.ts";
import { storeToolCache, toolCacheScope } from "./tool_cache.ts";
import { runtimeVersions } from "./versions.ts";
import { checkPolicyTokenizer } from "./tokenizer_gate.ts";
import { peakRssMb, resetPeakRss } from "./peak_rss.ts";
import { numericsOf, withNumerics } from "../onnx/numerics_mode.ts";

export interface RunOptions {
  store: Store;
  view: ManifestView;
  /**
   * The stage kinds the manifest may use (the list it was loaded with); default BUILTIN_STAGES.
   */
  stages?: readonly StageKind[];
  /** Builds the policy stages ask for; default run/policy.ts (the manifest's ONNX decoder). */
  policyFactory?: PolicyFactory;
  /** Recompute every stage, ignoring the stage index and checkpoints. */
  force?: boolean;
  /** Re-execute from an archived record: its plugin sources, data files and model, not the files. */
  archive?: RunRecord;
  signal?: AbortSignal;
  reporter?: Reporter;
  /** With `archive`: call non-deterministic tools live rather than replaying their records. */
  liveTools?: boolean;
}

export interface RunResult {
  runId: string;
  recordPath: string;
  record: RunRecord;
  /** Stage names computed in this invocation (the others were reused). */
  computed: string[];
  reused: string[];
}

function where(view: ManifestView, keyPath: (string | number)[]): string {
  const pos = view.positionOf?.(keyPath);
  return pos ? `${view.path}:${pos.line}:${pos.col}` : view.path;
}

/** The default policy factory, loaded on first use (it pulls in ONNX Runtime). */
async function defaultPolicyFactory(): Promise<PolicyFactory> {
  // A computed specifier: type-checking the runner does not pull in the whole ONNX stack.
  const mod = await import(new URL("./policy.ts", import.meta.url).href);
  return (mod as { defaultPolicyFactory: PolicyFactory }).defaultPolicyFactory;
}

/** This process's numerics fingerprint (run/numerics.ts; loaded on first use, like the policy). */
async function numericsFingerprint(runtime: ResolvedManifest["runtime"]): Promise<Json> {
  const mod = await import(new URL("./numerics.ts", import.meta.url).href);
  return await (mod as { numericsFingerprint: (r: typeof runtime) => Promise<Json> })
    .numericsFingerprint(runtime);
}

/** Everything the stages of one run share. */
interface RunState {
  opts: RunOptions;
  runId: string;
  record: RunRecord;
  identity: RunIdentity;
  plugins: LoadedPlugins;
  modelPath: string | undefined;
  toolCache: ToolCache;
  reporter: Reporter;
  signal: AbortSignal;
  timings: Record<string, number>;
  /** A finished run being run again: its record is rewritten only at the end. */
  quiet: boolean;
  /** Outputs of the stages so far, by name, in manifest order. */
  outputs: Record<string, StageOutputs>;
  earlier: EarlierStage[];
}

/**
 * Run a manifest: plan (plugins, model, identity, record), then each stage in order (its
 * dependencies and key → reuse, or a context and its run function → record).
 */
export async function runManifest(opts: RunOptions): Promise<RunResult> {
  const t0 = performance.now();
  // Wall clock, for listings (`arpo ls`): timings are outside the identity.
  const timings: Record<string, number> = { started_unix_ms: Date.now() };
  const kinds = stageKindsOf(opts);
  const run = await planRun(opts, timings);
  const computed: string[] = [], reused: string[] = [];
  const finish = async (status: RunRecord["status"], error?: string) => {
    run.record.status = status;
    if (error !== undefined) run.record.error = error;
    timings["total_ms"] = performance.now() - t0;
    timings["finished_unix_ms"] = Date.now();
    // A finished run that computed nothing again keeps its record: its timings are the ones of
    // the invocation that did the work.
    if (run.quiet && status === "complete" && computed.length === 0) return;
    await saveRecord(opts.store, run.record);
  };
  try {
    try {
      run.record.numerics = await numericsFingerprint(opts.view.manifest.runtime);
    } catch (e) {
      const msg = `numerics fingerprint of run ${run.runId.slice(0, 12)}: ${describeError(e)}`;
      await finish("failed", msg);
      throw new ArpoError(msg, { cause: e });
    }
    for (let si = 0; si < opts.view.manifest.stages.length; si++) {
      const config = opts.view.manifest.stages[si];
      const kind = kinds[si];
      const label = `run ${run.runId.slice(0, 12)}, stage '${config.name}'`;
      let deps: StageDependencies, key: string;
      try {
        deps = stageDependencies(run, kind, config);
        key = stageKey(config, deps, identityManifest(opts.view.manifest), run.identity);
      } catch (e) {
        throw await stageFailure(run, config, label, e, finish);
      }
      let hit = await reusable(run, key);
      // Another process computing the same stage key holds its lock: wait, then reuse its result.
      const lock = hit ? undefined : await stageLock(run, config, key, label, finish);
      try {
        if (lock?.waited) hit = await reusable(run, key);
        if (hit) {
          run.reporter.stage(config.name, config.kind, "reused");
          reused.push(config.name);
          recordStage(run, config, key, hit, true);
          continue;
        }
        const result = await runStage(run, kind, config, deps, key, label, finish);
        computed.push(config.name);
        recordStage(run, config, key, result, false);
        // Before the lock goes: a waiter checks the index entry against this record.
        if (!run.quiet) await saveRecord(opts.store, run.record);
      } finally {
        await lock?.release();
      }
    }
    await finish("complete");
    run.reporter.done();
    return {
      runId: run.runId,
      recordPath: opts.store.metaPath("runs", run.runId),
      record: run.record,
      computed,
      reused,
    };
  } finally {
    await run.plugins.close();
  }
}

/** What running one stage would do (`exp --dry-run`). */
export interface StagePlan {
  name: string;
  kind: string;
  action: "reused" | "computed" | "resumed";
  /** Its key; null when it reads a stage that would be computed first (its inputs are unknown). */
  key: string | null;
  /** "resumed": the step of the checkpoint it resumes from. */
  step?: number;
  /** "computed" with a null key: the earlier stage(s) to be computed whose outputs it may read. */
  after?: string[];
}

/**
 * The run id (and the identity it digests) and, per stage, whether running the manifest would
 * reuse, compute or resume it, without computing anything and without writing a run record
 * (plugin sources and the model are archived, as they must be to know their digests).
 */
export async function planManifest(
  opts: RunOptions,
): Promise<{ runId: string; identity: RunIdentity; stages: StagePlan[] }> {
  const kinds = stageKindsOf(opts);
  const run = await planRun(opts, {}, true);
  try {
    const stages: StagePlan[] = [];
    const pending = new Set<string>();
    for (let si = 0; si < opts.view.manifest.stages.length; si++) {
      const config = opts.view.manifest.stages[si];
      const kind = kinds[si];
      // A stage to be computed has unknown outputs: try `reads` with none and with any, so a
      // stage that might read it is not given a key it would not have.
      const readsOf = (any: boolean) =>
        kind.reads
          ? kind.reads(
            config.options,
            run.earlier.map((e) =>
              pending.has(e.name) && any ? { ...e, outputs: new Proxy({}, { get: () => "?" }) } : e
            ),
            config.name,
          )
          : run.earlier.map((e) => e.name);
      // With no outputs, a pending stage named by `from:` looks like one that made no weights:
      // that variant may refuse; the one with any outputs decides whether the stage is valid.
      const withNone = (() => {
        try {
          return readsOf(false);
        } catch (e) {
          if (pending.size > 0) return [];
          throw e;
        }
      })();
      const after = [...new Set([...withNone, ...readsOf(true)])].filter((n) => pending.has(n));
      const placeholder = { outputs: {}, metrics: {} };
      if (after.length) {
        stages.push({ name: config.name, kind: config.kind, action: "computed", key: null, after });
      } else {
        const key = stageKey(
          config,
          stageDependencies(run, kind, config),
          identityManifest(opts.view.manifest),
          run.identity,
        );
        const hit = opts.force ? undefined : await reusableNoForce(run, key);
        if (hit) {
          recordStage(run, config, key, hit, true);
          stages.push({ name: config.name, kind: config.kind, action: "reused", key });
          continue;
        }
        const cp = opts.force
          ? undefined
          : await opts.store.readMeta<{ step: number }>("checkpoints", key);
        stages.push({
          name: config.name,
          kind: config.kind,
          action: cp ? "resumed" : "computed",
          key,
          ...(cp ? { step: cp.step } : {}),
        });
      }
      pending.add(config.name);
      run.outputs[config.name] = placeholder;
      run.earlier.push({ name: config.name, kind: config.kind, outputs: {} });
    }
    return { runId: run.runId, identity: run.identity, stages };
  } finally {
    await run.plugins.close();
  }
}

/**
 * The indexed result of `key` with intact outputs, checked as `reusable` checks it (an entry that
 * disagrees with its records would be recomputed, so the plan says so), never removing anything.
 */
async function reusableNoForce(run: RunState, key: string): Promise<StageOutputs | undefined> {
  const hit = await readStageIndex(run.opts.store, key);
  if (!hit || "problem" in hit) return undefined;
  if (await allPresent(run.opts.store, hit.entry.outputs)) return hit.entry;
  return undefined;
}

/**
 * The manifest as the identity and the stage keys see it: without `runtime.trackers`, since where
 * metrics are copied to changes no output (like the store path or the log level).
 */
function identityManifest(m: ResolvedManifest): ResolvedManifest {
  if (m.runtime.trackers === undefined) return m;
  const { trackers: _t, ...runtime } = m.runtime;
  return { ...m, runtime };
}

/** Every stage's kind, or an ArpoError before anything is loaded or recorded. */
function stageKindsOf(opts: RunOptions): StageKind[] {
  const available = opts.stages ?? BUILTIN_STAGES;
  return opts.view.manifest.stages.map((config, si) => {
    const k = available.find((s) => s.kind === config.kind);
    if (!k) {
      const known = available.map((s) => s.kind).sort().join(", ") || "(none)";
      throw new ArpoError(
        `${where(opts.view, ["stages", si])}: stage '${config.name}': no implementation of ` +
          `stage kind '${config.kind}' is given to this run; its stage kinds are: ${known}`,
      );
    }
    return k;
  });
}

/** Plugins (whose factories read the data that enters the identity), model, run id, record. */
async function planRun(
  opts: RunOptions,
  timings: Record<string, number>,
  dry = false,
): Promise<RunState> {
  const { store, view } = opts;
  const manifest = view.manifest;
  const reporter = opts.reporter ?? silentReporter;
  // A model the user supplies that is not there fails now, before anything is loaded or stored.
  const modelDir = opts.archive ? undefined : resolveModelDir(manifest.policy, view.baseDir);
  if (modelDir) await checkModelPath(modelDir, where(view, ["policy", "model"]));
  // Stages that need text with a directory that has no tokenizer: refused before anything loads.
  if (modelDir) {
    await checkPolicyTokenizer(
      modelDir,
      manifest.stages,
      stageKindsOf(opts),
      where(view, ["policy", "model"]),
    );
  }

  const data = new DataAccess(store, view.baseDir, opts.archive?.identity.data);
  const tLoad = performance.now();
  const plugins = await loadPlugins(view, {
    store,
    data,
    archived: opts.archive?.sources,
    log: reporter.log,
  });
  timings["load_plugins_ms"] = performance.now() - tLoad;
  try {
    data.sealed = true;
    const { modelFiles, modelPath } = await runModel(opts);
    const identity: RunIdentity = {
      manifest: JSON.parse(JSON.stringify(identityManifest(manifest))) as Json,
      plugins: plugins.digests,
      data: { ...data.digests },
      model: modelFiles ? modelDigest(modelFiles) : null,
      runtime: runtimeVersions(),
    };
    const runId = runIdOf(identity);
    const record: RunRecord = {
      format: RECORD_FORMAT,
      id: runId,
      identity,
      sources: plugins.sources,
      modelFiles,
      name: manifest.name,
      stages: {},
      status: "running",
      baseDir: view.baseDir,
      manifestPath: opts.archive?.manifestPath ?? view.path,
      timings,
      host: {
        hostname: hostname(),
        os: Deno.build.os,
        arch: Deno.build.arch,
        cpus: navigator.hardwareConcurrency,
      },
    };
    // Re-running a finished run reuses every stage: keep its record saying "complete" until the
    // new one replaces it, so a crash in between cannot make a finished run look unfinished.
    // An unfinished record of this run id (interrupted, failed, or being written by a concurrent
    // process of the same manifest) keeps the stages it holds until this invocation records its
    // own: index entries are checked against them before they are reused. Read and write happen
    // under the record's lock, so a concurrent process's stage is not lost in between.
    const recordLock = dry ? undefined : await acquireLock(store, `run-${runId}`);
    let quiet: boolean;
    try {
      const prev = await store.readMeta<RunRecord>("runs", runId);
      quiet = prev?.status === "complete" && !opts.force;
      if (!quiet && !dry) {
        await writeRecord(store, {
          ...record,
          stages: prev && !opts.force ? prev.stages ?? {} : {},
        });
      }
    } finally {
      await recordLock?.release();
    }
    reporter.debug(`run ${runId}`);
    return {
      opts,
      runId,
      record,
      identity,
      plugins,
      modelPath,
      toolCache: storeToolCache(store, toolCacheScope(manifest, identity.data)),
      reporter,
      signal: opts.signal ?? new AbortController().signal,
      timings,
      quiet,
      outputs: {},
      earlier: [],
    };
  } catch (e) {
    await plugins.close();
    throw e;
  }
}

/** The model the manifest names: archived on a fresh run, materialized from the archive on reruns. */
async function runModel(
  opts: RunOptions,
): Promise<{ modelFiles: Record<string, string> | null; modelPath: string | undefined }> {
  const { store, view } = opts;
  if (opts.archive) {
    const modelFiles = opts.archive.modelFiles;
    return {
      modelFiles,
      modelPath: modelFiles ? await materializeModel(store, modelFiles) : undefined,
    };
  }
  const modelPath = resolveModelDir(view.manifest.policy, view.baseDir);
  const modelFiles = modelPath
    ? await archiveModel(store, modelPath, where(view, ["policy", "model"]))
    : null;
  return { modelFiles, modelPath };
}

/** The plugins and earlier outputs the stage reads (what its key covers). */
function stageDependencies(run: RunState, kind: StageKind, config: StageConfig): StageDependencies {
  return {
    plugins: stagePlugins(kind, config, run.plugins),
    inputs: stageInputs(kind, config, run.earlier, run.outputs),
  };
}

/** Write a run record under its lock (see planRun). */
async function saveRecord(store: Store, rec: RunRecord): Promise<void> {
  const lock = await acquireLock(store, `run-${rec.id}`);
  try {
    await writeRecord(store, rec);
  } finally {
    await lock.release();
  }
}

/** A stage's result with the digest of its metrics' object (and, reused, its numerics). */
type BoundOutputs = StageOutputs & { metricsDigest?: string; numerics?: Json };

/**
 * The indexed result of `key`, when the entry agrees with the run records (store/stage_index.ts)
 * and every output object is still intact; otherwise the stage is recomputed.
 */
async function reusable(
  run: RunState,
  key: string,
): Promise<BoundOutputs | undefined> {
  const { store, force } = run.opts;
  if (force) {
    await store.removeMeta("checkpoints", key);
    return undefined;
  }
  const hit = await readStageIndex(store, key);
  if (hit && "problem" in hit) {
    run.reporter.log(
      `${
        store.metaPath("index/stages", key)
      } ${hit.problem}; not reusing it: recomputing the stage`,
    );
    return undefined;
  }
  if (hit && (await allPresent(store, hit.entry.outputs))) {
    const metrics = { ...hit.entry.metrics };
    // Entries from before metrics were bound get their object now (their record agreed).
    const metricsDigest = hit.entry.metricsDigest ?? (await store.putJson(metrics));
    // The numerics it was computed with: those of the run that computed it.
    const numerics = hit.entry.run
      ? Object.values((await store.readMeta<RunRecord>("runs", hit.entry.run))?.stages ?? {})
        .find((st) => st.key === key)?.numerics
      : undefined;
    return {
      outputs: { ...hit.entry.outputs },
      metrics,
      metricsDigest,
      ...(numerics !== undefined ? { numerics } : {}),
    };
  }
  return undefined;
}

/** The work-in-progress lock of stage `key`; waiting for it honours the run's signal. */
async function stageLock(
  run: RunState,
  config: StageConfig,
  key: string,
  label: string,
  finish: (status: RunRecord["status"], error?: string) => Promise<void>,
): Promise<HeldLock> {
  try {
    return await acquireLock(run.opts.store, key, {
      signal: run.signal,
      onWait: (o, path) =>
        run.reporter.log(
          `[${config.name}] waiting: pid ${o.pid} on ${o.host} is computing this stage ` +
            `(lock ${path}; remove it if that process is gone)`,
        ),
    });
  } catch (e) {
    throw await stageFailure(run, config, label, e, finish);
  }
}

function recordStage(
  run: RunState,
  config: StageConfig,
  key: string,
  result: BoundOutputs,
  reused: boolean,
): void {
  const rec: StageRecord = {
    kind: config.kind,
    key,
    outputs: result.outputs as Record<string, string>,
    metrics: result.metrics as Record<string, Json>,
    ...(result.metricsDigest !== undefined ? { metricsDigest: result.metricsDigest } : {}),
    reused,
  };
  // Computed here: this process's numerics; reused: those it was computed with, if known.
  const numerics = reused ? result.numerics : run.record.numerics;
  if (numerics !== undefined) rec.numerics = numerics;
  run.record.stages[config.name] = rec;
  run.outputs[config.name] = { outputs: result.outputs, metrics: result.metrics };
  run.earlier.push({ name: config.name, kind: config.kind, outputs: result.outputs });
}

/** Compute one stage: its context, its run function, its checked result in the index. */
async function runStage(
  run: RunState,
  kind: StageKind,
  config: StageConfig,
  deps: StageDependencies,
  key: string,
  label: string,
  finish: (status: RunRecord["status"], error?: string) => Promise<void>,
): Promise<BoundOutputs> {
  const { store, force } = run.opts;
  const policies = new Map<string, Promise<Policy>>();
  const ctx = stageContext(run, config, deps, key, label, policies);
  const resumed = !force && (await store.readMeta("checkpoints", key)) !== undefined;
  run.reporter.stage(config.name, config.kind, resumed ? "resumed" : "start");
  const ts = performance.now();
  const rssReset = resetPeakRss();
  let result: BoundOutputs;
  try {
    // A server policy's answers are recorded with the stage (run/policy_record.ts).
    const r = await addPolicyRecords(
      // Every session the stage creates runs on the engine runtime.numerics names.
      await withNumerics(
        numericsOf(run.opts.view.manifest.runtime),
        () => kind.run(ctx, config.options),
      ),
      policies.values(),
      ctx.store,
    );
    run.signal.throwIfAborted();
    const checked = await checkResult(store, r, label);
    // The metrics as an object: records name its digest, so their metrics can be checked.
    result = { ...checked, metricsDigest: await store.putJson(checked.metrics) };
  } catch (e) {
    throw await stageFailure(run, config, label, e, finish);
  } finally {
    for (const p of policies.values()) {
      await p.then((x) => x.dispose()).catch(() => {});
    }
    // The stage's tool results are in the cache before the next stage (or process) starts.
    await run.toolCache.flush?.();
    run.timings[`${config.name}_ms`] = performance.now() - ts;
    // Peak resident memory of the process during this stage (MB; timings, not hashed).
    const peak = rssReset ? peakRssMb() : undefined;
    if (peak !== undefined) run.timings[`${config.name}.peak_rss_mb`] = peak;
  }
  // A stage that saw infrastructure failures (tool calls lost to the machine, not the model)
  // is recorded but not indexed: a later run computes it again instead of reusing it.
  const lost = result.metrics.infrastructure_failures;
  if (typeof lost === "number" && lost > 0) {
    run.reporter.log(
      `stage ${config.name}: ${lost} infrastructure failure(s); not adding it to the stage ` +
        `index, so the next run recomputes it`,
    );
  } else {
    await writeStageIndex(store, key, { ...result, run: run.runId });
  }
  await store.removeMeta("checkpoints", key);
  run.reporter.stage(config.name, config.kind, "done");
  return result;
}

/** Record the run as failed (or interrupted) and return the error to throw. */
async function stageFailure(
  run: RunState,
  config: StageConfig,
  label: string,
  e: unknown,
  finish: (status: RunRecord["status"], error?: string) => Promise<void>,
): Promise<ArpoError> {
  const interrupted = run.signal.aborted;
  const msg = interrupted
    ? `${label} was interrupted; run the same command again to resume`
    : e instanceof ArpoError
    ? `stage '${config.name}' (${config.kind}) failed: ${e.message}`
    : `stage '${config.name}' (${config.kind}) failed: ${describeError(e)}`;
  await finish(interrupted ? "interrupted" : "failed", msg);
  return new ArpoError(msg, { cause: e, exitCode: interrupted ? 130 : 1 });
}

/** What the stage sees while it runs. */
function stageContext(
  run: RunState,
  config: StageConfig,
  deps: StageDependencies,
  key: string,
  label: string,
  policies: Map<string, Promise<Policy>>,
): StageContext {
  const { store, view } = run.opts;
  const manifest = view.manifest;
  const st = stageStore(store, label);
  const archive = run.opts.archive;
  return {
    config,
    name: config.name,
    key,
    manifest,
    baseDir: view.baseDir,
    seed: manifest.seed,
    plugins: deps.plugins,
    inputs: deps.inputs,
    store: st,
    stream: (...ids) => new Stream([manifest.seed, "stage", config.name, ...ids]),
    checkpoint: {
      async save(step, state, meta = {}) {
        for (const [n, d] of Object.entries(state)) {
          if (!(await store.has(d))) {
            throw new ArpoError(
              `${label}: checkpoint state '${n}' names object ${d}, not in the store`,
            );
          }
        }
        await store.writeMeta("checkpoints", key, { step, state, meta });
      },
      load: () => store.readMeta("checkpoints", key),
    },
    progress: (u) => run.reporter.progress(config.name, u),
    log: (m) => run.reporter.log(`[${config.name}] ${m}`),
    signal: run.signal,
    timing: (name, ms) => {
      const k = `${config.name}.${name}`;
      run.timings[k] = (run.timings[k] ?? 0) + ms;
    },
    policy: (request: PolicyRequest = {}) => {
      const k = digestJson(request);
      let p = policies.get(k);
      if (!p) {
        p = (run.opts.policyFactory
          ? Promise.resolve(run.opts.policyFactory)
          : defaultPolicyFactory())
          .then((f) =>
            f({
              manifest,
              baseDir: view.baseDir,
              modelPath: run.modelPath,
              request,
              store: st,
              signal: run.signal,
              recorded: archive ? recordedOf(archive.stages[config.name]) : undefined,
            })
          );
        policies.set(k, p);
      }
      return p;
    },
    modelPath: run.modelPath,
    archived: archive
      ? {
        record: archive,
        stage: archive.stages[config.name],
        liveTools: run.opts.liveTools === true,
      }
      : undefined,
    toolCache: run.toolCache,
  };
}

async function allPresent(store: Store, outputs: Record<string, string>): Promise<boolean> {
  for (const d of Object.values(outputs)) if ((await store.check(d)) !== "ok") return false;
  return true;
}

async function checkResult(
  store: Store,
  r: unknown,
  label: string,
): Promise<{ outputs: Record<string, string>; metrics: Record<string, Json> }> {
  const res = r as { outputs?: unknown; metrics?: unknown } | undefined;
  if (!res || typeof res.outputs !== "object" || res.outputs === null) {
    throw new ArpoError(`${label}: the stage returned no 'outputs' map`);
  }
  const outputs: Record<string, string> = {};
  for (const [n, d] of Object.entries(res.outputs as Record<string, unknown>)) {
    if (typeof d !== "string" || !(await store.has(d))) {
      throw new ArpoError(
        `${label}: output '${n}' is ${JSON.stringify(d)}, not a digest in the store`,
      );
    }
    outputs[n] = d;
  }
  const metrics = (res.metrics ?? {}) as Record<string, Json>;
  digestJson(metrics); // throws on non-JSON metrics (NaN, bigint) before anything is recorded
  return { outputs, metrics: JSON.parse(JSON.stringify(metrics)) };
}
