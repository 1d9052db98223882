/**
 * Run records (runs/<run-id>.json). The identity part determines the run id; everything else
 * (stage outputs, timings, host, status) is what happened. The store does not know what stages
 * are: a stage entry is just a key, named output digests and metrics.
 */
import { ArpoError } from "../errors.ts";
import type { Json } from "./canonical.ts";
import { digestJson } from "./hash.ts";
import { assertMetricsBound } from "./metrics.ts";
import type { Store } from "./store.ts";

export const RECORD_FORMAT = "arpo-run/1";

/** Where a plugin's code came from, archived: relative path → object digest. */
export type PluginSource =
  | { kind: "files"; entry: string; files: Record<string, string> }
  | { kind: "npm"; specifier: string };

export interface RuntimeVersions {
  "arpo-lab": string;
  deno: string;
  v8: string;
  typescript: string;
  "onnxruntime-node": string;
}

/** Everything that determines a run's results; run id = sha256 of its canonical JSON. */
export interface RunIdentity {
  /** The resolved manifest (defaults applied), as JSON. */
  manifest: Json;
  /** plugin manifest name → digest over its source and local imports. */
  plugins: Record<string, string>;
  /** data file (path relative to the manifest directory) → digest. */
  data: Record<string, string>;
  /** Digest of the model file/directory the manifest names; null when it names none. */
  model: string | null;
  runtime: RuntimeVersions;
}

export interface StageRecord {
  kind: string;
  key: string;
  outputs: Record<string, string>;
  metrics: Record<string, Json>;
  /**
   * Digest of the metrics' canonical JSON, stored as an object when the stage was computed
   * (store/metrics.ts); readers check the metrics against it. Absent in records made before
   * metrics were bound.
   */
  metricsDigest?: string;
  /** Reused from the stage cache rather than computed in this invocation. */
  reused: boolean;
  /**
   * The numerics fingerprint (run/numerics.ts) of the process that computed the stage; for a
   * reused stage, the one it was computed with (absent when that is not known).
   */
  numerics?: Json;
}

export type RunStatus = "running" | "complete" | "interrupted" | "failed";

export interface RunRecord {
  format: typeof RECORD_FORMAT;
  id: string;
  identity: RunIdentity;
  /** Archived plugin sources, by plugin name. */
  sources: Record<string, PluginSource>;
  /** Model files: path relative to the model path → digest ("" when the model is one file). */
  modelFiles: Record<string, string> | null;
  /** Manifest name and description, for listings. */
  name: string;
  stages: Record<string, StageRecord>;
  status: RunStatus;
  /** Error message when status is "failed". */
  error?: string;
  // outside the identity
  /**
   * The manifest's directory when the run was made. Reruns use it as their base directory (data
   * files and the model come from the archive, so it need not exist), which keeps the data paths
   * plugins compute from it identical.
   */
  baseDir: string;
  /** The manifest file, for people (not used to re-execute). */
  manifestPath: string;
  timings: Record<string, number>;
  host: Record<string, Json>;
  /**
   * The numerics fingerprint of the process that wrote the record (run/numerics.ts: engine,
   * provider, threads, CPU and instruction-set class, canary digest). Outside the identity;
   * absent in records made before fingerprints.
   */
  numerics?: Json;
}

export function runIdOf(identity: RunIdentity): string {
  return digestJson(identity);
}

/** Every object a record references (for export, verify and integrity checks), with what it is. */
export function referencedObjects(rec: RunRecord): Map<string, string> {
  const out = new Map<string, string>();
  const add = (d: string, what: string) => {
    if (!out.has(d)) out.set(d, what);
  };
  for (const [name, src] of Object.entries(rec.sources)) {
    if (src.kind === "files") {
      for (const [p, d] of Object.entries(src.files)) add(d, `plugin '${name}' source ${p}`);
    }
  }
  for (const [p, d] of Object.entries(rec.identity.data)) add(d, `data file ${p}`);
  for (const [p, d] of Object.entries(rec.modelFiles ?? {})) add(d, `model file ${p || "(model)"}`);
  for (const [s, st] of Object.entries(rec.stages)) {
    for (const [o, d] of Object.entries(st.outputs)) add(d, `stage '${s}' output '${o}'`);
    if (st.metricsDigest !== undefined) add(st.metricsDigest, `stage '${s}' metrics`);
  }
  return out;
}

export async function readRecord(store: Store, id: string): Promise<RunRecord> {
  const rec = await store.readMeta<RunRecord>("runs", id);
  if (!rec) throw new ArpoError(`no run ${id} in the store ${store.root}`);
  if (rec.format !== RECORD_FORMAT || rec.id !== id) {
    throw new ArpoError(
      `run record ${store.metaPath("runs", id)} is not a valid ${RECORD_FORMAT} record`,
    );
  }
  assertMetricsBound(rec, store.metaPath("runs", id));
  return rec;
}

export function writeRecord(store: Store, rec: RunRecord): Promise<void> {
  return store.writeMeta("runs", rec.id, rec);
}

/**
 * Resolve a run id or a unique prefix of one. Unknown and ambiguous prefixes are ArpoErrors that
 * list candidates.
 */
export async function resolveRunId(store: Store, prefix: string): Promise<string> {
  const p = prefix.trim().toLowerCase();
  const ids = await store.listMeta("runs");
  if (!/^[0-9a-f]{1,64}$/.test(p)) {
    throw new ArpoError(
      `'${prefix}' is not a run id (expected hex digits, a unique prefix of one of: ` +
        `${ids.length ? ids.map((i) => i.slice(0, 12)).join(", ") : "no runs in " + store.root})`,
    );
  }
  const hits = ids.filter((i) => i.startsWith(p));
  if (hits.length === 1) return hits[0];
  if (hits.length === 0) {
    const list = ids.length
      ? `runs in the store: ${ids.slice(0, 20).map((i) => i.slice(0, 12)).join(", ")}` +
        (ids.length > 20 ? `, … (${ids.length} in all)` : "")
      : "the store has no runs";
    throw new ArpoError(`no run matches '${prefix}' in ${store.root}; ${list}`);
  }
  throw new ArpoError(
    `run id prefix '${prefix}' is ambiguous in ${store.root}: it matches ` +
      `${hits.map((i) => i.slice(0, 16)).join(", ")}; give more digits`,
  );
}
