/**
 * Loading one plugin outside a run, for the `bench-data` and `score` commands and for tests: a
 * PluginContext with no store (files are read from disk, `cached` is in memory) and the built-in /
 * path resolution of src/plugin/resolve.ts. Runs use src/plugin/load.ts instead.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ArpoError, describeError } from "../errors.ts";
import { Stream } from "../rng.ts";
import {
  type Benchmark,
  type Document,
  type PluginContext,
  type PluginKind,
  type PluginOf,
  PluginOptionsError,
} from "./contracts.ts";
import { lateReadError } from "./context.ts";
import { lateReadProblem } from "./late_reads.ts";
import { checkShape } from "./load.ts";
import { type PluginList, resolveUse } from "./resolve.ts";

export interface LocalContextOptions {
  name: string;
  baseDir?: string;
  seed?: number;
  /** Benchmarks whose documents `documentsOf` serves. */
  benchmarks?: Record<string, Benchmark>;
  log?: (message: string) => void;
}

/** A PluginContext over the file system, with an in-memory `cached`. */
export function localPluginContext(o: LocalContextOptions): PluginContext {
  const baseDir = o.baseDir ?? Deno.cwd();
  const cache = new Map<string, Uint8Array>();
  const readFile = async (path: string) => {
    try {
      return await Deno.readFile(resolve(baseDir, path));
    } catch (e) {
      throw new ArpoError(
        `${o.name} cannot read data file '${path}' (${resolve(baseDir, path)}): ${
          describeError(e)
        }`,
      );
    }
  };
  return {
    name: o.name,
    baseDir,
    seed: o.seed ?? 0,
    readFile,
    readText: async (p) => new TextDecoder().decode(await readFile(p)),
    stream: (...ids) => new Stream([o.seed ?? 0, "plugin", o.name, ...ids]),
    async cached(key, compute) {
      const hit = cache.get(key);
      if (hit) return hit;
      const bytes = await compute();
      cache.set(key, bytes);
      return bytes;
    },
    log: o.log ?? ((m) => console.error(`[${o.name}] ${m}`)),
    async documentsOf(name: string): Promise<Document[]> {
      const b = o.benchmarks?.[name];
      if (!b?.documents) {
        throw new ArpoError(
          `${o.name} asks for the documents of benchmark '${name}', which is not loaded or has none`,
        );
      }
      return await b.documents();
    },
  };
}

const LIST: Record<PluginKind, PluginList> = {
  tool: "tools",
  reward: "rewards",
  benchmark: "benchmarks",
};

/**
 * Resolve `use` (built-in short name, path, npm: specifier), import it and build the plugin with
 * `options`. Errors are ArpoErrors naming the plugin.
 */
export async function loadLocalPlugin<K extends PluginKind>(
  kind: K,
  use: string,
  options: unknown,
  ctx: Partial<LocalContextOptions> = {},
): Promise<PluginOf<K>> {
  const r = resolveUse(use, LIST[kind], ctx.baseDir ?? Deno.cwd(), "");
  const url = r.kind === "npm" ? r.specifier : pathToFileURL(r.path).href;
  const label = `${kind} '${use}'`;
  let mod: Record<string, unknown>;
  try {
    mod = await import(url);
  } catch (e) {
    throw new ArpoError(`${label}: the module failed to load: ${describeError(e)}`, { cause: e });
  }
  const factory = mod.default as ((o: unknown, c: PluginContext) => Promise<unknown>) & {
    pluginKind?: string;
  };
  if (typeof factory !== "function") {
    throw new ArpoError(`${label}: its default export is not a plugin factory`);
  }
  if (factory.pluginKind && factory.pluginKind !== kind) {
    throw new ArpoError(`${label} is a ${factory.pluginKind} plugin, not a ${kind}`);
  }
  const name = ctx.name ?? use.replace(/^.*[\\/]/, "").replace(/\.[jt]s$/, "");
  // Reads are allowed while the factory runs, as in a run's loader (context.ts, late_reads.ts).
  let loading = true;
  const base = localPluginContext({ ...ctx, name });
  const readFile = (p: string) =>
    loading ? base.readFile(p) : Promise.reject(lateReadError(label, p));
  const pctx: PluginContext = {
    ...base,
    readFile,
    readText: async (p) => new TextDecoder().decode(await readFile(p)),
  };
  try {
    const p = await factory(options ?? {}, pctx);
    loading = false;
    // The same contract checks as a run's loader, so a wrong shape is named, not a TypeError.
    checkShape(p, kind, (what) => {
      throw new ArpoError(`${label} (${url}): ${what}`);
    });
    const late = lateReadProblem(p);
    if (late) throw new ArpoError(`${label} (${url}): ${late}`);
    return p as PluginOf<K>;
  } catch (e) {
    if (e instanceof PluginOptionsError) {
      throw new ArpoError(`${label}: invalid options (--with): ${e.message}`, { cause: e });
    }
    if (e instanceof ArpoError) throw e;
    throw new ArpoError(`${label} threw while loading: ${describeError(e)}`, { cause: e });
  }
}
