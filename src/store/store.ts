/**
 * The content-addressed store: objects/sha256/ab/<rest of the digest>, written through a temp file
 * in tmp/ that is fsynced and renamed, so an interrupted write never leaves a visible partial
 * object and concurrent writers of the same bytes simply race to an identical rename. Reading
 * re-hashes the bytes; a mismatch (tampering, disk damage) is an ArpoError naming the digest.
 *
 * Besides objects the store holds small mutable JSON files, each replaced atomically by rename:
 * runs/<run-id>.json (run records), index/stages/<key>.json (stage cache), checkpoints/<key>.json,
 * cache/<key>.json (plugin-derived data).
 */
import { createHash } from "node:crypto";
import { join, resolve } from "node:path";
import { ArpoError } from "../errors.ts";
import { canonicalJson } from "./canonical.ts";
import { fileChunks, hashFile, readWhole } from "./files.ts";
import { DIGEST_RE, sha256 } from "./hash.ts";

export const STORE_ENV = "ARPO_STORE";
export const DEFAULT_STORE_DIR = ".arpo";

/** `--store DIR`, else $ARPO_STORE, else ./.arpo in the current working directory. */
export function storeDir(flag?: string): string {
  return resolve(flag ?? Deno.env.get(STORE_ENV) ?? DEFAULT_STORE_DIR);
}

let tmpCounter = 0;

/**
 * What `atomicWrite` writes: bytes, pieces written one after another, or the bytes of a file
 * copied a chunk at a time and checked against the sha256 they were stored under.
 */
export type WriteSource = Uint8Array | readonly Uint8Array[] | { copyOf: string; sha256: string };

/** Write `source` to `path` atomically: temp file in `tmpDir`, fsync, rename. */
export async function atomicWrite(
  tmpDir: string,
  path: string,
  source: WriteSource,
  mode = 0o644,
): Promise<void> {
  await Deno.mkdir(tmpDir, { recursive: true });
  // pid + counter + a random suffix keep concurrent processes' temp names apart; the name never
  // reaches an artefact.
  const tmp = join(
    tmpDir,
    `${Deno.pid}-${++tmpCounter}-${crypto.randomUUID().slice(0, 8)}.tmp`,
  );
  const f = await Deno.open(tmp, { write: true, createNew: true, mode });
  const writeAll = async (part: Uint8Array) => {
    let off = 0;
    while (off < part.length) off += await f.write(part.subarray(off));
  };
  try {
    if (source instanceof Uint8Array) await writeAll(source);
    else if (Array.isArray(source)) { for (const part of source) await writeAll(part); }
    else await copyChecked(source as { copyOf: string; sha256: string }, writeAll);
    await f.sync();
  } catch (e) {
    f.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  f.close();
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Copy a file through `write`, hashing as it goes; a file that changed meanwhile is an error. */
async function copyChecked(
  src: { copyOf: string; sha256: string },
  write: (part: Uint8Array) => Promise<void>,
): Promise<void> {
  const h = createHash("sha256");
  const f = await Deno.open(src.copyOf, { read: true });
  try {
    for await (const c of fileChunks(f, h)) await write(c);
  } finally {
    f.close();
  }
  if (h.digest("hex") !== src.sha256) {
    throw new ArpoError(`${src.copyOf} changed while it was being stored; nothing was stored`);
  }
}

export class Store {
  readonly root: string;
  constructor(root: string) {
    this.root = resolve(root);
  }

  get tmpDir(): string {
    return join(this.root, "tmp");
  }

  objectPath(digest: string): string {
    return join(this.root, "objects", "sha256", digest.slice(0, 2), digest.slice(2));
  }

  async has(digest: string): Promise<boolean> {
    try {
      return (await Deno.stat(this.objectPath(digest))).isFile;
    } catch {
      return false;
    }
  }

  /**
   * Store bytes; returns their sha256. An existing object is re-hashed first: intact, it is left
   * alone (same name, same bytes); damaged (tampering, disk damage), the good bytes atomically
   * replace it, so recomputing a stage heals the objects it writes.
   */
  putBytes(bytes: Uint8Array): Promise<string> {
    return this.putParts([bytes]);
  }

  /**
   * Store the concatenation of `parts` (as putBytes does) without building it: a checkpoint's
   * tensors go to disk from the trainer's own buffers.
   */
  putParts(parts: readonly Uint8Array[]): Promise<string> {
    const h = createHash("sha256");
    for (const p of parts) h.update(p);
    return this.#place(h.digest("hex"), parts);
  }

  /**
   * Store a file's bytes (as putBytes would) a chunk at a time: memory stays flat with its size
   * (a model's weights when a run archives its model).
   */
  async putFile(path: string): Promise<string> {
    const sha = await hashFile(path);
    return await this.#place(sha, { copyOf: path, sha256: sha });
  }

  /** Write the object `digest` from `source` unless an intact copy is there. */
  async #place(digest: string, source: WriteSource): Promise<string> {
    const state = await this.check(digest);
    if (state === "ok") return digest;
    const path = this.objectPath(digest);
    // A rename cannot replace a directory (or what a link points at): clear a non-file first.
    if (state === "damaged" && !(await Deno.lstat(path)).isFile) {
      await Deno.remove(path, { recursive: true });
    }
    await Deno.mkdir(join(path, ".."), { recursive: true });
    // Objects are immutable: read-only guards against accidental edits (not against tampering,
    // which reads detect).
    await atomicWrite(this.tmpDir, path, source, 0o444);
    return digest;
  }

  putJson(value: unknown): Promise<string> {
    return this.putBytes(new TextEncoder().encode(canonicalJson(value)));
  }

  /**
   * Read an object and check its bytes still hash to its name. `context` (e.g. "run 3fa2…") goes
   * into the error so the user knows what the object belonged to.
   */
  async getBytes(digest: string, context?: string): Promise<Uint8Array> {
    if (!DIGEST_RE.test(digest)) {
      throw new ArpoError(`'${digest}' is not a sha256 digest${context ? ` (${context})` : ""}`);
    }
    let bytes: Uint8Array;
    try {
      bytes = await readWhole(this.objectPath(digest));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new ArpoError(
          `object ${digest}${
            context ? ` (${context})` : ""
          } is missing from the store ${this.root}`,
        );
      }
      throw e;
    }
    const actual = sha256(bytes);
    if (actual !== digest) {
      throw new ArpoError(
        `object ${digest}${context ? ` (${context})` : ""} is damaged: its bytes in ` +
          `${this.objectPath(digest)} now hash to ${actual} (tampering or disk damage)`,
      );
    }
    return bytes;
  }

  async getJson<T = unknown>(digest: string, context?: string): Promise<T> {
    return JSON.parse(new TextDecoder().decode(await this.getBytes(digest, context))) as T;
  }

  /** Check an object without returning it: "ok", "missing" or "damaged". */
  async check(digest: string): Promise<"ok" | "missing" | "damaged"> {
    try {
      const path = this.objectPath(digest);
      // Something other than a plain file (a directory, a FIFO that would block) is damage too.
      if (!(await Deno.lstat(path)).isFile) return "damaged";
      return (await hashFile(path)) === digest ? "ok" : "damaged";
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return "missing";
      throw e;
    }
  }

  /**
   * Remove temp files a killed writer left in tmp/ (older than `olderThanMs`, so a concurrent
   * writer's file in progress is never touched). They were never visible as objects.
   */
  async sweepTmp(olderThanMs = 24 * 3600 * 1000): Promise<number> {
    let n = 0;
    const now = Date.now();
    try {
      for await (const e of Deno.readDir(this.tmpDir)) {
        const p = join(this.tmpDir, e.name);
        const st = await Deno.stat(p).catch(() => undefined);
        if (e.isFile && st?.mtime && now - st.mtime.getTime() > olderThanMs) {
          await Deno.remove(p).catch(() => {});
          n++;
        }
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return n;
  }

  // -------------------------------------------------------------------------------------------
  // small mutable JSON files

  metaPath(
    kind: "runs" | "sweeps" | "index/stages" | "checkpoints" | "cache",
    name: string,
  ): string {
    return join(this.root, kind, `${name}.json`);
  }

  async writeMeta(kind: Parameters<Store["metaPath"]>[0], name: string, value: unknown) {
    const path = this.metaPath(kind, name);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await atomicWrite(
      this.tmpDir,
      path,
      new TextEncoder().encode(JSON.stringify(value, null, 2) + "\n"),
    );
  }

  async readMeta<T>(kind: Parameters<Store["metaPath"]>[0], name: string): Promise<T | undefined> {
    const path = this.metaPath(kind, name);
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new ArpoError(
        `${path} is not valid JSON (${(e as Error).message}); the store is damaged`,
      );
    }
  }

  async removeMeta(kind: Parameters<Store["metaPath"]>[0], name: string): Promise<void> {
    await Deno.remove(this.metaPath(kind, name)).catch(() => {});
  }

  /** Names (without .json) in one of the meta folders. */
  async listMeta(kind: Parameters<Store["metaPath"]>[0]): Promise<string[]> {
    const out: string[] = [];
    try {
      for await (const e of Deno.readDir(join(this.root, kind))) {
        if (e.isFile && e.name.endsWith(".json")) out.push(e.name.slice(0, -5));
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return out.sort();
  }
}
