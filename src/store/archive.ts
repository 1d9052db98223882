/**
 * Run archives: one ustar file holding a run record (runs/<id>.json) and every object it
 * references (objects/sha256/ab/<rest>), the store's own layout. Import checks every digest, the
 * record's id against its identity, every other field of the record (record_check.ts), that
 * nothing referenced is missing and that no record already in the store would change, before
 * adding anything. Both directions stream: export copies each object from disk into the archive
 * and import each entry into a temp file of the store, hashing as the bytes pass, so memory
 * stays flat however large the objects (a multi-GB model); objects become visible (renamed into
 * objects/) only once every check passed.
 */
import { createHash } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { ArpoError } from "../errors.ts";
import { DIGEST_RE } from "./hash.ts";
import {
  readRecord,
  RECORD_FORMAT,
  referencedObjects,
  runIdOf,
  type RunRecord,
  writeRecord,
} from "./records.ts";
import { canonicalJson } from "./canonical.ts";
import { recordFieldProblem } from "./record_check.ts";
import { fileChunks } from "./files.ts";
import type { Store } from "./store.ts";

let tmpCounter = 0;
/** A fresh temp path in `dir`; the name never reaches an artefact. */
function tempPath(dir: string): string {
  return join(dir, `${Deno.pid}-${++tmpCounter}-${crypto.randomUUID().slice(0, 8)}.tmp`);
}
import { tarEntries, TarWriter } from "./tar.ts";

/**
 * Write run `id` and its objects to `file` (atomically: a temp file renamed at the end); returns
 * the number of objects. Each object streams from the store, checked against its digest.
 */
export async function exportRun(store: Store, id: string, file: string): Promise<number> {
  const rec = await readRecord(store, id);
  const refs = referencedObjects(rec);
  const out = resolve(file);
  const tmp = tempPath(dirname(out));
  const f = await Deno.open(tmp, { write: true, createNew: true });
  try {
    const tar = new TarWriter(f);
    const recBytes = new TextEncoder().encode(JSON.stringify(rec, null, 2) + "\n");
    await tar.add(
      `runs/${id}.json`,
      recBytes.length,
      (async function* () {
        yield recBytes;
      })(),
    );
    for (const [d, what] of [...refs].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const context = `run ${id.slice(0, 12)}, ${what}`;
      const path = store.objectPath(d);
      let src: Deno.FsFile;
      try {
        src = await Deno.open(path, { read: true });
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) {
          throw new ArpoError(`object ${d} (${context}) is missing from the store ${store.root}`);
        }
        throw e;
      }
      const h = createHash("sha256");
      try {
        const size = (await src.stat()).size;
        await tar.add(`objects/sha256/${d.slice(0, 2)}/${d.slice(2)}`, size, fileChunks(src, h));
      } finally {
        src.close();
      }
      const actual = h.digest("hex");
      if (actual !== d) {
        throw new ArpoError(
          `object ${d} (${context}) is damaged: its bytes in ${path} now hash to ${actual} ` +
            `(tampering or disk damage); nothing was exported`,
        );
      }
    }
    await tar.finish();
    await f.sync();
    f.close();
    await Deno.rename(tmp, out);
  } catch (e) {
    try {
      f.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  return refs.size;
}

/** Run records are small JSON; a larger entry under runs/ is refused rather than buffered. */
const MAX_RECORD_BYTES = 64 * 2 ** 20;

/** Import an archive into `store`; returns the run ids it held. */
export async function importArchive(store: Store, file: string): Promise<string[]> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(file, { read: true });
  } catch (e) {
    throw new ArpoError(`cannot read archive ${file}: ${(e as Error).message}`);
  }
  /** Objects read so far: digest → their temp file in the store's tmp/ (renamed in at the end). */
  const objects = new Map<string, string>();
  try {
    const records = await readEntries(store, file, f, objects);
    await commit(store, file, records, objects);
    return records.map((r) => r.id);
  } finally {
    f.close();
    for (const tmp of objects.values()) await Deno.remove(tmp).catch(() => {});
  }
}

/** Stream every entry: objects to temp files (digest checked), records parsed and checked. */
async function readEntries(
  store: Store,
  file: string,
  f: Deno.FsFile,
  objects: Map<string, string>,
): Promise<RunRecord[]> {
  const records: RunRecord[] = [];
  await Deno.mkdir(store.tmpDir, { recursive: true });
  try {
    for await (const e of tarEntries(f)) {
      const m = /^objects\/sha256\/([0-9a-f]{2})\/([0-9a-f]{62})$/.exec(e.name);
      if (m) {
        const digest = m[1] + m[2];
        const tmp = tempPath(store.tmpDir);
        const out = await Deno.open(tmp, { write: true, createNew: true, mode: 0o444 });
        const h = createHash("sha256");
        try {
          for await (const c of e.chunks()) {
            h.update(c);
            for (let off = 0; off < c.length;) off += await out.write(c.subarray(off));
          }
          await out.sync();
        } finally {
          out.close();
        }
        const previous = objects.get(digest);
        objects.set(digest, tmp);
        if (previous) await Deno.remove(previous).catch(() => {});
        const actual = h.digest("hex");
        if (actual !== digest) {
          throw new ArpoError(
            `${file}: entry ${e.name} does not match its digest (its bytes hash to ${actual}); ` +
              `the archive is damaged and nothing was imported`,
          );
        }
        continue;
      }
      const r = /^runs\/([0-9a-f]{64})\.json$/.exec(e.name);
      if (!r) {
        throw new ArpoError(`${file}: unexpected entry '${e.name}'; nothing was imported`);
      }
      if (e.size > MAX_RECORD_BYTES) {
        throw new ArpoError(
          `${file}: ${e.name} has ${e.size} bytes, more than a run record can (${MAX_RECORD_BYTES}); ` +
            `nothing was imported`,
        );
      }
      const data = new Uint8Array(e.size);
      let off = 0;
      for await (const c of e.chunks()) {
        data.set(c, off);
        off += c.length;
      }
      let rec: RunRecord;
      try {
        rec = JSON.parse(new TextDecoder().decode(data));
      } catch {
        throw new ArpoError(`${file}: ${e.name} is not JSON; nothing was imported`);
      }
      if (rec.format !== RECORD_FORMAT || rec.id !== r[1] || runIdOf(rec.identity) !== rec.id) {
        throw new ArpoError(
          `${file}: ${e.name} does not match its run id (its identity hashes to ` +
            `${rec.identity ? runIdOf(rec.identity) : "nothing"}); nothing was imported`,
        );
      }
      const bad = recordFieldProblem(rec);
      if (bad) {
        throw new ArpoError(
          `${file}: ${e.name}: ${bad}; the record is invalid and nothing was imported`,
        );
      }
      records.push(rec);
    }
  } catch (e) {
    if (e instanceof ArpoError) throw e;
    throw new ArpoError(`${file} is not a valid run archive: ${(e as Error).message}`);
  }
  return records;
}

/** The checks that need every entry, then the objects renamed in and the new records written. */
async function commit(
  store: Store,
  file: string,
  records: RunRecord[],
  objects: Map<string, string>,
): Promise<void> {
  if (!records.length) throw new ArpoError(`${file} holds no run record; nothing was imported`);
  for (const rec of records) {
    for (const [d, what] of referencedObjects(rec)) {
      if (!DIGEST_RE.test(d)) throw new ArpoError(`${file}: run ${rec.id} names '${d}' (${what})`);
      if (!objects.has(d) && (await store.check(d)) !== "ok") {
        throw new ArpoError(
          `${file}: run ${
            rec.id.slice(0, 12)
          } references ${what} (${d}), which is neither in the ` +
            `archive nor in ${store.root}; nothing was imported`,
        );
      }
    }
  }
  // A record already in the store is kept: an archive may repeat it, never change it.
  const fresh: RunRecord[] = [];
  for (const rec of records) {
    const existing = await store.readMeta<RunRecord>("runs", rec.id);
    if (!existing) {
      fresh.push(rec);
      continue;
    }
    const diff = recordDifference(existing, rec);
    if (diff) {
      throw new ArpoError(
        `${file}: run ${rec.id} is already in ${store.root} and the archive's record of it ` +
          `differs (${diff}); importing would change that record, so nothing was imported. ` +
          `Remove ${store.metaPath("runs", rec.id)} first to replace it`,
      );
    }
  }
  for (const [digest, tmp] of objects) {
    const state = await store.check(digest);
    if (state === "ok") continue;
    const path = store.objectPath(digest);
    // A rename cannot replace a directory (or what a link points at): clear a non-file first.
    if (state === "damaged" && !(await Deno.lstat(path)).isFile) {
      await Deno.remove(path, { recursive: true });
    }
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.rename(tmp, path);
    objects.delete(digest);
  }
  for (const rec of fresh) await writeRecord(store, rec);
}

/**
 * The first difference between two records of one run id in what they say happened (status,
 * where it ran from, sources, model, stage keys, outputs and metrics), or undefined. Timings, the
 * host and the `reused` flags are about an invocation, not the results, and may differ.
 */
function recordDifference(a: RunRecord, b: RunRecord): string | undefined {
  const same = (x: unknown, y: unknown) => canonicalJson(x ?? null) === canonicalJson(y ?? null);
  for (const f of ["status", "error", "name", "baseDir", "sources", "modelFiles"] as const) {
    if (!same(a[f], b[f])) return `field '${f}' differs`;
  }
  const names = [...new Set([...Object.keys(a.stages ?? {}), ...Object.keys(b.stages ?? {})])];
  for (const n of names) {
    const x = a.stages?.[n], y = b.stages?.[n];
    if (!x || !y) return `stage '${n}' is ${x ? "missing from the archive" : "new in the archive"}`;
    for (const f of ["kind", "key", "outputs", "metrics", "metricsDigest"] as const) {
      if (!same(x[f], y[f])) return `stage '${n}': field '${f}' differs`;
    }
  }
  return undefined;
}
