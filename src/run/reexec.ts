/**
 * Re-executing a run from its archived record (plugin sources, data files and model from the
 * store, not from the current files): `rerun` into the same store, `verify` into a scratch store,
 * comparing every output digest with the record and naming the first divergence.
 *
 * `verify` judges a divergence by the numerics fingerprints (run/numerics.ts). A stage computed
 * under this machine's fingerprint from the same inputs (same stage key), or any stage of a
 * portable run, must give the same bytes: a difference is a determinism bug. A stage computed
 * under other numerics (another CPU class, engine, thread count) may round differently, and so
 * may everything downstream of it: those differences are expected, and whether the run
 * replicates is decided by its eval metrics, compared statistically (run/replication.ts).
 */
import { join } from "node:path";
import { ArpoError } from "../errors.ts";
import type { ResolvedManifest } from "../manifest/mod.ts";
import { metricsDifference } from "../store/metrics.ts";
import { readRecord, referencedObjects, type RunRecord } from "../store/records.ts";
import { Store } from "../store/store.ts";
import type { Reporter } from "./progress.ts";
import { runManifest, type RunResult } from "./runner.ts";
import { isToolCallsOutput } from "./tool_cache.ts";
import { isPolicyRecordOutput } from "./policy_record.ts";
import type { PolicyFactory, StageKind } from "./stages.ts";
import {
  asFingerprint,
  type NumericsDifference,
  numericsDifferences,
  type NumericsFingerprint,
  sameNumerics,
} from "./numerics_fingerprint.ts";
import { evalReplication, type MetricReplication } from "./replication.ts";

/** Objects of a record that are missing or damaged, with what each one is. */
export async function checkIntegrity(
  store: Store,
  rec: RunRecord,
): Promise<{ digest: string; what: string; state: "missing" | "damaged" }[]> {
  const bad = [];
  for (const [digest, what] of referencedObjects(rec)) {
    const state = await store.check(digest);
    if (state !== "ok") bad.push({ digest, what, state });
  }
  return bad;
}

/** Throw an ArpoError naming the first missing or damaged object of a run. */
export async function assertIntact(store: Store, rec: RunRecord): Promise<void> {
  const bad = await checkIntegrity(store, rec);
  if (!bad.length) return;
  const first = bad[0];
  throw new ArpoError(
    `run ${rec.id}: ${first.what} (object ${first.digest}) is ${first.state}` +
      (first.state === "damaged"
        ? " — its bytes no longer match its digest (tampering or disk damage)"
        : "") +
      (bad.length > 1 ? `; ${bad.length - 1} more object(s) missing or damaged` : ""),
  );
}

export interface ReexecOptions {
  /** The stage kinds the run may use (default BUILTIN_STAGES). */
  stages?: readonly StageKind[];
  /** The policy factory (default run/policy.ts). */
  policyFactory?: PolicyFactory;
  reporter?: Reporter;
  signal?: AbortSignal;
  /** Call non-deterministic tools live instead of replaying the run's recorded results. */
  liveTools?: boolean;
}

/** Re-execute `rec` (held in `from`) into `into`, recomputing every stage. */
export async function reexecute(
  from: Store,
  rec: RunRecord,
  into: Store,
  opts: ReexecOptions = {},
): Promise<RunResult> {
  await assertIntact(from, rec);
  if (into.root !== from.root) {
    // The archive's inputs travel with it; outputs are what is recomputed, except the recorded
    // tool calls, which non-deterministic tools replay from, and a server policy's recorded
    // answers (run/policy_record.ts).
    const stageOutputs = new Set(
      Object.values(rec.stages).flatMap((s) =>
        Object.entries(s.outputs)
          .filter(([n]) => !isToolCallsOutput(n) && !isPolicyRecordOutput(n))
          .map(([, d]) => d)
      ),
    );
    for (const [d, what] of referencedObjects(rec)) {
      if (stageOutputs.has(d)) continue;
      await into.putBytes(await from.getBytes(d, `run ${rec.id.slice(0, 12)}, ${what}`));
    }
  }
  return await runManifest({
    store: into,
    view: {
      path: `run ${rec.id.slice(0, 12)} (archived manifest of ${rec.manifestPath})`,
      baseDir: rec.baseDir,
      manifest: rec.identity.manifest as unknown as ResolvedManifest,
    },
    archive: rec,
    stages: opts.stages,
    policyFactory: opts.policyFactory,
    force: true,
    reporter: opts.reporter,
    signal: opts.signal,
    liveTools: opts.liveTools,
  });
}

export interface Divergence {
  stage: string;
  output?: string;
  recorded?: string;
  reexecuted?: string;
  message: string;
}

/** Every output digest of `a` (recorded) against `b` (re-executed), in stage order. */
export function compareOutputs(a: RunRecord, b: RunRecord): Divergence[] {
  const out: Divergence[] = [];
  for (const [stage, sa] of Object.entries(a.stages)) {
    const sb = b.stages[stage];
    if (!sb) {
      out.push({ stage, message: `stage '${stage}' was not re-executed` });
      continue;
    }
    const names = [...new Set([...Object.keys(sa.outputs), ...Object.keys(sb.outputs)])];
    for (const o of names) {
      const ra = sa.outputs[o], rb = sb.outputs[o];
      if (ra === rb) continue;
      out.push({
        stage,
        output: o,
        recorded: ra,
        reexecuted: rb,
        message: ra === undefined
          ? `stage '${stage}' output '${o}' is new in the re-execution (${rb})`
          : rb === undefined
          ? `stage '${stage}' output '${o}' (${ra}) is missing from the re-execution`
          : `stage '${stage}' output '${o}' differs: recorded ${ra}, re-executed ${rb}`,
      });
    }
    // Metrics are compared too: a record's metrics are only as good as their re-execution.
    const m = metricsDifference(sa, sb);
    if (m) out.push({ stage, output: "metrics", message: `stage '${stage}' ${m}` });
  }
  return out;
}

/** How this machine's numerics relate to those the archived run was computed with. */
export interface NumericsCheck {
  /** The run's runtime.numerics. */
  mode: "native" | "portable";
  /** This machine's fingerprint for the run's runtime section. */
  here: NumericsFingerprint;
  /** The record's fingerprint (absent in records made before fingerprints). */
  archived?: NumericsFingerprint;
  /** Stages whose recorded fingerprint computes alike with `here`, and those that do not. */
  same: string[];
  other: string[];
  /** Stages with no fingerprint recorded (bit-identity is required of them, as before). */
  unknown: string[];
  /** Fields of `archived` (or of the first stage in `other`) that differ from `here`. */
  differences: NumericsDifference[];
}

/**
 * What verify concluded: `identical` (every output digest equal), `replicated` (not bit-identical
 * under other numerics, every eval metric within its interval), `not-replicated` (an eval metric
 * shifted, or no eval to judge by), `determinism-bug` (bytes differ where they must not).
 */
export type VerifyVerdict = "identical" | "replicated" | "not-replicated" | "determinism-bug";

export interface VerifyResult {
  runId: string;
  reexecutedId: string;
  outputs: number;
  /** Every difference, in stage order. */
  divergences: Divergence[];
  verdict: VerifyVerdict;
  numerics: NumericsCheck;
  /** Differences where the bytes must be equal (same numerics and inputs, or a portable run). */
  bugs: Divergence[];
  /** Differences expected under other numerics. */
  drift: Divergence[];
  /** Eval metrics compared where an eval stage drifted. */
  metrics: MetricReplication[];
  /** Why replication could not be judged (no eval stage drifted into, no per-question results). */
  unjudged: string[];
  /** The scratch store (removed unless `keep`). */
  scratch: string;
}

/** This machine's fingerprint for `rec`'s runtime section, against what the record holds. */
export async function checkNumerics(rec: RunRecord): Promise<NumericsCheck> {
  // Loaded on use: it pulls in ONNX Runtime, which `show` (checkIntegrity) does not need.
  const mod = await import(new URL("./numerics.ts", import.meta.url).href) as {
    numericsFingerprint: (r: ResolvedManifest["runtime"]) => Promise<NumericsFingerprint>;
  };
  const runtime = (rec.identity.manifest as unknown as ResolvedManifest).runtime;
  const here = await mod.numericsFingerprint(runtime);
  const archived = asFingerprint(rec.numerics);
  const same: string[] = [], other: string[] = [], unknown: string[] = [];
  let firstOther: NumericsFingerprint | undefined;
  for (const [name, st] of Object.entries(rec.stages)) {
    const fp = asFingerprint(st.numerics) ?? archived;
    if (!fp) unknown.push(name);
    else if (sameNumerics(fp, here)) same.push(name);
    else {
      other.push(name);
      firstOther ??= fp;
    }
  }
  const against = archived && !sameNumerics(archived, here) ? archived : firstOther;
  return {
    mode: runtime.numerics === "portable" ? "portable" : "native",
    here,
    ...(archived ? { archived } : {}),
    same,
    other,
    unknown,
    differences: against ? numericsDifferences(against, here) : [],
  };
}

/**
 * Re-execute run `id` into a scratch store, compare every output digest and judge the
 * differences by the numerics (see the module comment). `onNumerics` hears the comparison of
 * fingerprints before anything is re-executed.
 */
export async function verifyRun(
  store: Store,
  id: string,
  opts: ReexecOptions & { keep?: boolean; onNumerics?: (c: NumericsCheck) => void } = {},
): Promise<VerifyResult> {
  const rec = await readRecord(store, id);
  if (rec.status !== "complete") {
    throw new ArpoError(`run ${id} is ${rec.status}, not complete; finish it before verifying`);
  }
  const numerics = await checkNumerics(rec);
  opts.onNumerics?.(numerics);
  const scratchDir = await Deno.makeTempDir({ prefix: "arpo-verify-" });
  try {
    const scratch = new Store(join(scratchDir, "store"));
    const r = await reexecute(store, rec, scratch, opts);
    const divergences = compareOutputs(rec, r.record);
    const bugs: Divergence[] = [], drift: Divergence[] = [];
    const metrics: MetricReplication[] = [], unjudged: string[] = [];
    const otherStages = new Set(numerics.other);
    for (const [name, a] of Object.entries(rec.stages)) {
      const divs = divergences.filter((d) => d.stage === name);
      if (!divs.length) continue;
      const b = r.record.stages[name];
      // Bytes must match: a portable run; or this stage under the same numerics (or no record
      // of them) from the same inputs (an equal key: upstream stages gave the same bytes).
      const strict = numerics.mode === "portable" ||
        (!otherStages.has(name) && b !== undefined && b.key === a.key);
      (strict ? bugs : drift).push(...divs);
      if (strict || a.kind !== "eval" || !b) continue;
      const m = await evalReplication(name, { store, stage: a, run: rec.id }, {
        store: scratch,
        stage: b,
      });
      if (typeof m === "string") unjudged.push(m);
      else metrics.push(...m);
    }
    const evals = Object.values(rec.stages).some((st) => st.kind === "eval");
    if (!bugs.length && drift.length && !evals) {
      unjudged.push("the run has no eval stage whose metrics could show that it replicates");
    }
    const verdict: VerifyVerdict = bugs.length
      ? "determinism-bug"
      : !drift.length
      ? "identical"
      : unjudged.length || metrics.some((m) => !m.replicates)
      ? "not-replicated"
      : "replicated";
    return {
      runId: id,
      reexecutedId: r.runId,
      outputs: Object.values(rec.stages).reduce((n, s) => n + Object.keys(s.outputs).length, 0),
      divergences,
      verdict,
      numerics,
      bugs,
      drift,
      metrics,
      unjudged,
      scratch: scratchDir,
    };
  } finally {
    if (!opts.keep) await Deno.remove(scratchDir, { recursive: true }).catch(() => {});
  }
}
