/**
 * The stage index, index/stages/<key>.json: what the stage with that key left (output digests,
 * metrics and the digest binding them) and the run that computed it. The index is a mutable file
 * that decides what is reused, so an entry is checked before reuse: its metrics against their
 * digest, and the entry against the run record(s) holding that stage key. An entry that fails is
 * not reused (the stage is recomputed and the entry rewritten), never trusted silently.
 */
import { canonicalJson, type Json } from "./canonical.ts";
import { DIGEST_RE } from "./hash.ts";
import { metricsDigestOf } from "./metrics.ts";
import type { RunRecord, StageRecord } from "./records.ts";
import type { Store } from "./store.ts";

/** One entry of the stage index. */
export interface StageIndexEntry {
  outputs: Record<string, string>;
  metrics: Record<string, Json>;
  /** Digest of the metrics' object (absent in entries from before metrics were bound). */
  metricsDigest?: string;
  /** The run that computed the stage (absent in entries from before this was recorded). */
  run?: string;
}

const isMap = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

/** Write the entry for `key`. */
export function writeStageIndex(store: Store, key: string, entry: StageIndexEntry): Promise<void> {
  return store.writeMeta("index/stages", key, entry);
}

/** Why a parsed index entry is malformed, or undefined. */
function shapeProblem(v: unknown): string | undefined {
  if (!isMap(v) || !isMap(v.outputs) || !isMap(v.metrics)) {
    return "is not a stage index entry (expected {outputs, metrics})";
  }
  for (const [n, d] of Object.entries(v.outputs)) {
    if (typeof d !== "string" || !DIGEST_RE.test(d)) {
      return `names ${JSON.stringify(d)} as output '${n}', not a sha256 digest`;
    }
  }
  if (v.metricsDigest !== undefined && v.metricsDigest !== metricsDigestOf(v.metrics as never)) {
    return "holds metrics that do not hash to its metricsDigest (edited)";
  }
  if (v.run !== undefined && (typeof v.run !== "string" || !DIGEST_RE.test(v.run))) {
    return `names ${JSON.stringify(v.run)} as its run, not a run id`;
  }
  return undefined;
}

/** How an index entry disagrees with a record's stage of the same key, or undefined. */
function disagreement(e: StageIndexEntry, s: StageRecord): string | undefined {
  if (canonicalJson(e.outputs) !== canonicalJson(s.outputs ?? {})) {
    const names = [...new Set([...Object.keys(e.outputs), ...Object.keys(s.outputs ?? {})])];
    const o = names.find((n) => e.outputs[n] !== s.outputs?.[n]);
    return `output '${o}' is ${e.outputs[o!] ?? "absent"} in the index but ` +
      `${s.outputs?.[o!] ?? "absent"} in the record`;
  }
  if (canonicalJson(e.metrics) !== canonicalJson(s.metrics ?? {})) {
    return "its metrics differ from the record's";
  }
  return undefined;
}

/** The record's stage with `key`, if any. */
function stageWithKey(rec: RunRecord | undefined, key: string): [string, StageRecord] | undefined {
  if (!rec || !isMap(rec.stages)) return undefined;
  return Object.entries(rec.stages).find(([, s]) => isMap(s) && s.key === key);
}

export type IndexLookup =
  | { entry: StageIndexEntry }
  | { problem: string }
  | undefined;

/**
 * The checked entry for `key`: undefined when there is none, `{problem}` when it is malformed,
 * its metrics were edited, or it disagrees with (or is held by no) run record. The record it
 * names is checked first; entries naming none (older stores), or whose run no longer holds the
 * key, are checked against the first record that does.
 */
export async function readStageIndex(store: Store, key: string): Promise<IndexLookup> {
  let raw: unknown;
  try {
    raw = await store.readMeta<unknown>("index/stages", key);
  } catch (e) {
    return { problem: (e as Error).message };
  }
  if (raw === undefined) return undefined;
  const shape = shapeProblem(raw);
  if (shape) return { problem: shape };
  const entry = raw as StageIndexEntry;
  const readRun = (id: string) => store.readMeta<RunRecord>("runs", id).catch(() => undefined);
  let held = entry.run ? stageWithKey(await readRun(entry.run), key) : undefined;
  let owner = entry.run;
  if (!held) {
    for (const id of await store.listMeta("runs")) {
      if (id === entry.run) continue;
      held = stageWithKey(await readRun(id), key);
      if (held) {
        owner = id;
        break;
      }
    }
  }
  if (!held) {
    return { problem: "is held by no run record, so it cannot be checked" };
  }
  const d = disagreement(entry, held[1]);
  if (d) {
    return {
      problem: `disagrees with run ${owner!.slice(0, 12)}'s record of stage '${held[0]}': ${d}`,
    };
  }
  return { entry };
}
