/**
 * Sweep records (sweeps/<sweep-id>.json): one manifest run once per seed. The identity part
 * determines the sweep id: the identity of its runs without the seed (the resolved manifest minus
 * `seed`, plugin, data and model digests, runtime versions) plus the list of seeds; the same
 * command gives the same id. Everything else (the run of each seed, status, the aggregate
 * statistics, timings) is what happened. Written atomically (temp file, fsync, rename) like the
 * store's other JSON files; the store does not know what stages are.
 */
import { ArpoError } from "../errors.ts";
import type { Json } from "./canonical.ts";
import { digestJson } from "./hash.ts";
import type { RunIdentity, RunStatus } from "./records.ts";
import type { Store } from "./store.ts";

export const SWEEP_FORMAT = "arpo-sweep/1";

/** Everything that determines a sweep's runs; sweep id = sha256 of its canonical JSON. */
export interface SweepIdentity {
  format: typeof SWEEP_FORMAT;
  /** The run identity of the first seed's run with `manifest.seed` removed. */
  base: Json;
  /** The seeds, ascending, without duplicates. */
  seeds: number[];
}

/** One seed's run in a sweep. */
export interface SweepRun {
  seed: number;
  /** Null while its run has not started, or when it failed before it had an id. */
  runId: string | null;
  status: RunStatus | "pending";
  error?: string;
  /**
   * Digest of this run's identity without its seed, when it differs from the sweep's `base`
   * (a plugin that read seed-dependent data files); absent when equal.
   */
  base?: string;
}

/** One metric of one stage, aggregated over the seeds. */
export interface SweepMetric {
  metric: string;
  /** Mean over seeds of the per-seed value (null: not finite). */
  mean: number | null;
  /** Percentile interval of the mean (stratified bootstrap). */
  lo: number | null;
  hi: number | null;
  /** Interquartile mean of the pooled seed × question scores (of the seed values without them). */
  iqm: number | null;
  iqmLo: number | null;
  iqmHi: number | null;
  /** The stage metric of each seed's run, in the order of `SweepAggregate.seeds` (null: none). */
  perSeed: (number | null)[];
  /** What was resampled: seeds and their questions, or seeds only. */
  resampled: "seeds×questions" | "seeds";
  /** Per-question scores pooled over seeds (when resampled over questions too). */
  scores?: number;
}

export interface SweepStageAggregate {
  stage: string;
  kind: string;
  metrics: SweepMetric[];
}

/** The aggregate statistics of a sweep's complete runs. */
export interface SweepAggregate {
  /** The seeds whose runs entered (complete runs), ascending. */
  seeds: number[];
  confidence: number;
  resamples: number;
  /** In words, for people. */
  method: string;
  stages: SweepStageAggregate[];
}

export type SweepStatus = "running" | "complete" | "interrupted" | "failed";

export interface SweepRecord {
  format: typeof SWEEP_FORMAT;
  id: string;
  identity: SweepIdentity;
  /** Manifest name and description, for listings. */
  name: string;
  description?: string;
  /** The manifest file, for people. */
  manifestPath: string;
  /** `--set` overrides given besides the seed (they are in `identity.base.manifest` already). */
  overrides: string[];
  seeds: number[];
  runs: SweepRun[];
  status: SweepStatus;
  error?: string;
  /** Over the complete runs; written when the sweep stops (complete, failed or interrupted). */
  aggregate?: SweepAggregate;
  // outside the identity
  timings: Record<string, number>;
}

export function sweepIdOf(identity: SweepIdentity): string {
  return digestJson(identity);
}

/** A run identity without its manifest's seed: what the runs of a sweep have in common. */
export function identityWithoutSeed(identity: RunIdentity): Json {
  const manifest = { ...(identity.manifest as Record<string, Json>) };
  delete manifest.seed;
  return JSON.parse(JSON.stringify({ ...identity, manifest })) as Json;
}

export function sweepPath(store: Store, id: string): string {
  return store.metaPath("sweeps", id);
}

/** Written like every mutable file of the store: temp file, fsync, rename. */
export async function writeSweep(store: Store, rec: SweepRecord): Promise<void> {
  await store.writeMeta("sweeps", rec.id, rec);
}

/** Ids of the sweeps in the store, sorted. */
export async function listSweeps(store: Store): Promise<string[]> {
  return (await store.listMeta("sweeps")).sort();
}

export async function readSweep(store: Store, id: string): Promise<SweepRecord> {
  const path = sweepPath(store, id);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ArpoError(`no sweep ${id} in the store ${store.root}`);
    }
    throw e;
  }
  let rec: SweepRecord;
  try {
    rec = JSON.parse(text) as SweepRecord;
  } catch (e) {
    throw new ArpoError(
      `${path} is not valid JSON (${(e as Error).message}); the store is damaged`,
    );
  }
  if (rec?.format !== SWEEP_FORMAT || rec.id !== id) {
    throw new ArpoError(`sweep record ${path} is not a valid ${SWEEP_FORMAT} record`);
  }
  return rec;
}

/** Sweep ids that start with `prefix` (lower-cased, trimmed); [] for a non-hex prefix. */
export async function matchSweeps(store: Store, prefix: string): Promise<string[]> {
  const p = prefix.trim().toLowerCase();
  if (!/^[0-9a-f]{1,64}$/.test(p)) return [];
  return (await listSweeps(store)).filter((i) => i.startsWith(p));
}

/**
 * Resolve a sweep id or a unique prefix of one. Unknown and ambiguous prefixes are ArpoErrors
 * that list candidates.
 */
export async function resolveSweepId(store: Store, prefix: string): Promise<string> {
  const ids = await listSweeps(store);
  const known = ids.length
    ? `sweeps in the store: ${ids.slice(0, 20).map((i) => i.slice(0, 12)).join(", ")}` +
      (ids.length > 20 ? `, … (${ids.length} in all)` : "")
    : "the store has no sweeps (make one with `deno task exp <manifest> --seeds 1-3`)";
  if (!/^[0-9a-f]{1,64}$/.test(prefix.trim().toLowerCase())) {
    throw new ArpoError(`'${prefix}' is not a sweep id (expected hex digits); ${known}`);
  }
  const hits = await matchSweeps(store, prefix);
  if (hits.length === 1) return hits[0];
  if (hits.length === 0) {
    throw new ArpoError(`no sweep matches '${prefix}' in ${store.root}; ${known}`);
  }
  throw new ArpoError(
    `sweep id prefix '${prefix}' is ambiguous in ${store.root}: it matches ` +
      `${hits.map((i) => i.slice(0, 16)).join(", ")}; give more digits`,
  );
}
