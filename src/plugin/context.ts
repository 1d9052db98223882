/**
 * The PluginContext handed to plugin factories. Data files read through it are digested into the
 * run identity and archived as store objects; on a rerun from an archive the same paths are served
 * from the archived objects instead of the (possibly changed or deleted) files.
 */
import { isAbsolute, relative, resolve, sep } from "node:path";
import { ArpoError, describeError } from "../errors.ts";
import { Stream } from "../rng.ts";
import { digestJson } from "../store/hash.ts";
import type { Store } from "../store/store.ts";
import type { Document, PluginContext } from "./contracts.ts";

/** A data read after the plugin loaded: refused wherever plugins are loaded (runs, `arpo tool`). */
export function lateReadError(who: string, path: string): ArpoError {
  return new ArpoError(
    `${who} reads data file '${path}' after loading; plugins must read their data in the ` +
      `factory (PluginContext.readFile), so it is part of the run id`,
  );
}

/**
 * Data files read by the run's plugins: path (relative to the manifest directory, "/"-separated)
 * → digest. With `archived` set, reads come from the store, not the file system.
 */
export class DataAccess {
  readonly digests: Record<string, string> = {};
  readonly #bytes = new Map<string, Uint8Array>();
  /**
   * Set once plugins are loaded: the run id is computed then, so a later read of a new file would
   * escape the identity and is refused.
   */
  sealed = false;
  constructor(
    readonly store: Store,
    readonly baseDir: string,
    readonly archived?: Record<string, string>,
  ) {}

  /** The identity key of a path: relative to the manifest directory when inside or near it. */
  keyOf(path: string): string {
    const abs = resolve(this.baseDir, path);
    const rel = relative(this.baseDir, abs);
    return isAbsolute(rel) ? abs : rel.split(sep).join("/");
  }

  async read(path: string, who: string): Promise<Uint8Array> {
    const key = this.keyOf(path);
    const seen = this.#bytes.get(key);
    if (seen) return seen;
    if (this.sealed) throw lateReadError(who, path);
    let bytes: Uint8Array;
    if (this.archived) {
      const d = this.archived[key];
      if (!d) {
        throw new ArpoError(
          `${who} reads '${path}', which the archived run never read (archived data files: ` +
            `${Object.keys(this.archived).join(", ") || "none"}); the plugin is not deterministic`,
        );
      }
      bytes = await this.store.getBytes(d, `data file ${key}`);
      this.digests[key] = d;
    } else {
      try {
        bytes = await Deno.readFile(resolve(this.baseDir, path));
      } catch (e) {
        throw new ArpoError(
          `${who} cannot read data file '${path}' (${resolve(this.baseDir, path)}): ` +
            describeError(e),
        );
      }
      this.digests[key] = await this.store.putBytes(bytes);
    }
    this.#bytes.set(key, bytes);
    return bytes;
  }
}

export interface ContextOptions {
  name: string;
  /** "tool 'python' (use: python)" — prefixes messages. */
  label: string;
  baseDir: string;
  seed: number;
  store: Store;
  data: DataAccess;
  /** Plugin digest and options: part of every `cached` key. */
  pluginDigest: string;
  options: unknown;
  log: (message: string) => void;
  documentsOf: (benchmark: string) => Promise<Document[]>;
  /** Filled with what the plugin reads: data files (key → digest) and benchmarks' documents. */
  reads?: { data: Record<string, string>; documents: string[] };
}

export function createPluginContext(o: ContextOptions): PluginContext {
  const readHere: Record<string, string> = o.reads?.data ?? {};
  const readFile = async (path: string) => {
    const bytes = await o.data.read(path, o.label);
    const key = o.data.keyOf(path);
    readHere[key] = o.data.digests[key] ?? o.data.archived?.[key] ?? "";
    return bytes;
  };
  return {
    name: o.name,
    baseDir: o.baseDir,
    seed: o.seed,
    readFile,
    readText: async (path) => new TextDecoder().decode(await readFile(path)),
    stream: (...ids) => new Stream([o.seed, "plugin", o.name, ...ids]),
    async cached(key, compute) {
      // The plugin's code, options and the data it has read so far are part of the key, so an
      // edited plugin or changed corpus never sees stale derived bytes.
      const k = digestJson({
        plugin: o.pluginDigest,
        options: o.options ?? null,
        data: readHere,
        key,
      });
      const hit = await o.store.readMeta<{ digest: string }>("cache", k);
      if (hit && (await o.store.check(hit.digest)) === "ok") {
        return await o.store.getBytes(hit.digest, `${o.label} cache '${key}'`);
      }
      const bytes = await compute();
      if (!(bytes instanceof Uint8Array)) {
        throw new ArpoError(`${o.label}: cached('${key}') must compute a Uint8Array`);
      }
      const digest = await o.store.putBytes(bytes);
      await o.store.writeMeta("cache", k, { digest, plugin: o.name, key });
      return bytes;
    },
    log: (m) => o.log(`[${o.name}] ${m}`),
    documentsOf: (benchmark) => {
      if (o.reads && !o.reads.documents.includes(benchmark)) o.reads.documents.push(benchmark);
      return o.documentsOf(benchmark);
    },
  };
}
