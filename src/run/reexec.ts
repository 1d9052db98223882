/**
 * Re-executing a run from its archived record (plugin sources, data files and model from the
 * store, not from the current files): `rerun` into the same store, `verify` into a scratch store,
 * comparing every output digest with the record and naming the first divergence.
 */
import { join } from "node:path";
import { ArpoError } from "../errors.ts";
import type { ResolvedManifest } from "../manifest/mod.ts";
import { readRecord, referencedObjects, type RunRecord } from "../store/records.ts";
import { Store } from "../store/store.ts";
import type { Reporter } from "./progress.ts";
import { runManifest, type RunResult } from "./runner.ts";
import { isToolCallsOutput } from "./tool_cache.ts";
import type { PolicyFactory, StageKind } from "./stages.ts";

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
    // tool calls, which non-deterministic tools replay from.
    const stageOutputs = new Set(
      Object.values(rec.stages).flatMap((s) =>
        Object.entries(s.outputs).filter(([n]) => !isToolCallsOutput(n)).map(([, d]) => d)
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
  }
  return out;
}

export interface VerifyResult {
  runId: string;
  reexecutedId: string;
  outputs: number;
  divergences: Divergence[];
  /** The scratch store (removed unless `keep`). */
  scratch: string;
}

/** Re-execute run `id` into a scratch store and compare every output digest. */
export async function verifyRun(
  store: Store,
  id: string,
  opts: ReexecOptions & { keep?: boolean } = {},
): Promise<VerifyResult> {
  const rec = await readRecord(store, id);
  if (rec.status !== "complete") {
    throw new ArpoError(`run ${id} is ${rec.status}, not complete; finish it before verifying`);
  }
  const scratchDir = await Deno.makeTempDir({ prefix: "arpo-verify-" });
  try {
    const scratch = new Store(join(scratchDir, "store"));
    const r = await reexecute(store, rec, scratch, opts);
    return {
      runId: id,
      reexecutedId: r.runId,
      outputs: Object.values(rec.stages).reduce((n, s) => n + Object.keys(s.outputs).length, 0),
      divergences: compareOutputs(rec, r.record),
      scratch: scratchDir,
    };
  } finally {
    if (!opts.keep) await Deno.remove(scratchDir, { recursive: true }).catch(() => {});
  }
}
