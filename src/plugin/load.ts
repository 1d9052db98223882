/**
 * Loading the manifest's plugins: resolve each `use:`, archive and hash its sources, import it,
 * check the contract, call its factory with the `with:` options and a PluginContext, and check the
 * object it returns. Benchmarks are instantiated first so tools can ask for their documents. Every
 * failure is an ArpoError naming the plugin, its file and the manifest line.
 */
import { fileURLToPath, pathToFileURL } from "node:url";
import { ArpoError, describeError } from "../errors.ts";
import { pluginName, type PluginRef, type ResolvedManifest } from "../manifest/mod.ts";
import type { PluginSource } from "../store/records.ts";
import type { Store } from "../store/store.ts";
import {
  type Benchmark,
  type Document,
  type Plugin,
  type PluginKind,
  PluginOptionsError,
  type Reward,
  type Tool,
} from "./contracts.ts";
import { createPluginContext, type DataAccess } from "./context.ts";
import type { LoadedPlugin, PluginReads, StagePlugins } from "./loaded.ts";
import { archiveSources, collectSources, materialize, sourceDigest } from "./digest.ts";
import { guardExit } from "./exit_guard.ts";
import { lateReadProblem } from "./late_reads.ts";
import { LIST_KIND, type PluginList, resolveUse } from "./resolve.ts";

/** The manifest as the loader needs it: positions are optional (archived manifests have none). */
export interface ManifestView {
  /** Manifest file, or a description such as "run 3fa2… (archived manifest)". */
  path: string;
  baseDir: string;
  manifest: ResolvedManifest;
  positionOf?(keyPath: (string | number)[]): { line: number; col: number } | undefined;
}

export interface LoadOptions {
  store: Store;
  data: DataAccess;
  /** Rerun from an archive: plugin name → archived source (the files on disk are ignored). */
  archived?: Record<string, PluginSource>;
  log?: (message: string) => void;
}

export interface LoadedPlugins extends StagePlugins {
  /** Archived sources by plugin name (for the run record). */
  sources: Record<string, PluginSource>;
  close(): Promise<void>;
}

const ORDER: PluginList[] = ["benchmarks", "rewards", "tools"];

function at(view: ManifestView, keyPath: (string | number)[]): string {
  for (let n = keyPath.length; n >= 2; n--) {
    const pos = view.positionOf?.(keyPath.slice(0, n));
    if (pos) return `${view.path}:${pos.line}:${pos.col}`;
  }
  return view.path;
}

/**
 * Loads every plugin of the manifest: `listPlugins` (names checked before anything is imported),
 * then per plugin `locateSources` → `importFactory` → `instantiate` → `addPlugin`.
 */
export async function loadPlugins(view: ManifestView, opts: LoadOptions): Promise<LoadedPlugins> {
  const entries = listPlugins(view);
  const plugins: PluginMaps = { tools: new Map(), rewards: new Map(), benchmarks: new Map() };
  const digests: Record<string, string> = {};
  const sources: Record<string, PluginSource> = {};
  const loaded: Plugin[] = [];
  const scope: LoadScope = {
    view,
    opts,
    log: opts.log ?? (() => {}),
    documentsOf: benchmarkDocuments(plugins.benchmarks),
  };

  for (const entry of entries) {
    const located = await locateSources(entry, view, opts);
    digests[entry.name] = located.digest;
    sources[entry.name] = located.source;
    const reads = { data: {}, documents: [] };
    // An exit called while the plugin loads becomes its load error (exit_guard.ts).
    const plugin = await guardExit(async () =>
      instantiate(entry, await importFactory(entry, located), located.digest, scope, reads)
    );
    loaded.push(plugin);
    addPlugin(plugins, entry, located.digest, reads, plugin);
  }
  // Loaded: what they read is known (the run id is computed from it); later reads are refused,
  // in a run and in `arpo tool` alike.
  opts.data.sealed = true;

  return {
    tools: plugins.tools,
    rewards: plugins.rewards,
    benchmarks: plugins.benchmarks,
    digests,
    sources,
    async close() {
      for (const p of loaded) {
        if (p.kind === "tool" && p.close) await p.close();
      }
    },
  };
}

/** One plugin of the manifest, as it is being loaded. */
interface Entry {
  readonly list: PluginList;
  /** Index in its list. */
  readonly index: number;
  readonly ref: PluginRef;
  readonly kind: PluginKind;
  readonly name: string;
  /** Where its `use:` is written (`manifest:line:col`). */
  readonly where: string;
  /** How messages name it; the file it resolved to is added once known. */
  label: string;
}

function fail(entry: Entry, what: string, cause?: unknown): never {
  throw new ArpoError(`${entry.where}: ${entry.label}: ${what}`, { cause });
}

/**
 * The manifest's plugins in loading order (benchmarks, rewards, tools). Names are checked here,
 * so duplicates are reported before anything is imported.
 */
function listPlugins(view: ManifestView): Entry[] {
  const lists = view.manifest.plugins;
  const entries: Entry[] = [];
  const names = new Map<string, string>();
  for (const list of ORDER) {
    (lists[list] ?? []).forEach((ref: PluginRef, index: number) => {
      const name = pluginName(ref);
      const where = at(view, ["plugins", list, index, "use"]);
      if (names.has(name)) {
        throw new ArpoError(
          `${where}: plugin name '${name}' is already used by ${names.get(name)}; give one of ` +
            `them a different name with 'as:'`,
        );
      }
      names.set(name, `plugins.${list}[${index}] (${where})`);
      const kind = LIST_KIND[list];
      entries.push({
        list,
        index,
        ref,
        kind,
        name,
        where,
        label: `${kind} '${name}' (use: ${ref.use})`,
      });
    });
  }
  return entries;
}

/** `documentsOf` for plugin contexts: the documents of a benchmark loaded so far. */
function benchmarkDocuments(
  benchmarks: ReadonlyMap<string, LoadedPlugin<Benchmark>>,
): (who: string, name: string) => Promise<Document[]> {
  return async (who, name) => {
    const b = benchmarks.get(name);
    if (!b) {
      throw new ArpoError(
        `${who} asks for the documents of benchmark '${name}', but the manifest's benchmarks are: ` +
          `${[...benchmarks.keys()].join(", ") || "(none)"}`,
      );
    }
    if (!b.plugin.documents) {
      throw new ArpoError(`${who} asks for the documents of benchmark '${name}', which has none`);
    }
    return await b.plugin.documents();
  };
}

/** A plugin's sources, their digest, and the module to import. */
interface Located {
  source: PluginSource;
  digest: string;
  importUrl: string;
  /** The plugin's own directory, when it was copied from disk (to map load errors back). */
  originalRoot?: string;
}

/**
 * Step 1, sources → digest: from the archive on a rerun, else resolve `use:` and archive the files
 * (or take the npm: specifier). Adds the resolved file to the entry's label.
 */
async function locateSources(
  entry: Entry,
  view: ManifestView,
  opts: LoadOptions,
): Promise<Located> {
  if (opts.archived) {
    const archived = opts.archived[entry.name];
    if (!archived) fail(entry, "the archived run has no source for this plugin");
    const { source, digest } = sourceDigest(archived);
    const importUrl = source.kind === "npm"
      ? source.specifier
      : pathToFileURL(await materialize(opts.store, source, entry.label)).href;
    if (source.kind === "files") entry.label += ` [archived ${source.entry}]`;
    return { source, digest, importUrl };
  }
  const r = resolveUse(entry.ref.use, entry.list, view.baseDir, `${entry.where}: `);
  if (r.kind === "npm") {
    const { source, digest } = sourceDigest({ kind: "npm", specifier: r.specifier });
    return { source, digest, importUrl: r.specifier };
  }
  entry.label += ` [${r.path}]`;
  const set = await collectSources(r.path, `${entry.where}: ${entry.label}`);
  const { source, digest } = await archiveSources(opts.store, set);
  const importUrl = pathToFileURL(await materialize(opts.store, source, entry.label)).href;
  return { source, digest, importUrl, originalRoot: set.root };
}

/** What a plugin module's default export is: a factory made by `defineTool` and the like. */
type Factory = ((o: unknown, c: unknown) => unknown) & {
  pluginKind?: PluginKind;
  optionsSchema?: unknown;
};

/** Step 2, import the module and check its default export is a factory of the listed kind. */
async function importFactory(entry: Entry, located: Located): Promise<Factory> {
  const { importUrl, originalRoot } = located;
  let mod: Record<string, unknown>;
  try {
    mod = await import(importUrl);
  } catch (e) {
    return fail(
      entry,
      `the module failed to load: ${loadErrorText(e, importUrl, originalRoot)}`,
      e,
    );
  }
  const factory = mod.default as Factory | undefined;
  if (typeof factory !== "function") {
    fail(
      entry,
      `its default export is ${factory === undefined ? "missing" : `a ${typeof factory}`}; ` +
        `expected a plugin factory (export default define${cap(entry.kind)}({...}))`,
    );
  }
  if (factory.pluginKind && factory.pluginKind !== entry.kind) {
    fail(
      entry,
      `it is a ${factory.pluginKind} plugin, but it is listed under plugins.${entry.list}; move it ` +
        `to plugins.${factory.pluginKind}s`,
    );
  }
  return factory;
}

/** What every plugin's context shares. */
interface LoadScope {
  view: ManifestView;
  opts: LoadOptions;
  log: (message: string) => void;
  documentsOf: (who: string, name: string) => Promise<Document[]>;
}

/**
 * Step 3, call the factory with the `with:` options and a PluginContext, then check the object it
 * returns against the contract.
 */
async function instantiate(
  entry: Entry,
  factory: Factory,
  digest: string,
  scope: LoadScope,
  reads: { data: Record<string, string>; documents: string[] },
): Promise<Plugin> {
  const { view, opts } = scope;
  const { name, label } = entry;
  const ctx = createPluginContext({
    name,
    label,
    baseDir: view.baseDir,
    seed: view.manifest.seed,
    store: opts.store,
    data: opts.data,
    pluginDigest: digest,
    options: entry.ref.with ?? {},
    log: scope.log,
    documentsOf: (b) => scope.documentsOf(label, b),
    reads,
  });
  let obj: unknown;
  try {
    obj = await factory(entry.ref.with ?? {}, ctx);
  } catch (e) {
    if (e instanceof PluginOptionsError) throw optionsError(view, entry, factory, e);
    if (e instanceof ArpoError) throw e;
    fail(entry, `threw while loading: ${describeError(e)}`, e);
  }
  checkShape(obj, entry.kind, (what) => fail(entry, what));
  const late = lateReadProblem(obj);
  if (late) fail(entry, late);
  return obj as Plugin;
}

/** Invalid `with:` options: one line per issue, at the option's own manifest position. */
function optionsError(
  view: ManifestView,
  entry: Entry,
  factory: Factory,
  e: PluginOptionsError,
): ArpoError {
  const { list, index: i } = entry;
  const known = optionNames(factory);
  const lines = e.issues.flatMap((iss) => {
    const p = iss.path.map((x) => typeof x === "symbol" ? String(x) : x);
    if (iss.code === "unrecognized_keys") {
      return iss.keys.map((k) =>
        `${at(view, ["plugins", list, i, "with", ...p, k])}: with.${[...p, k].join(".")}: ` +
        `unknown option${p.length === 0 && known ? ` (options: ${known})` : ""}`
      );
    }
    const pos = at(view, ["plugins", list, i, "with", ...p]);
    const key = p.length ? `with.${p.join(".")}` : "with";
    return [`${pos}: ${key}: ${iss.message}`];
  });
  return new ArpoError(
    `${entry.where}: ${entry.label}: invalid options:\n  ${lines.join("\n  ")}`,
    { cause: e },
  );
}

interface PluginMaps {
  tools: Map<string, LoadedPlugin<Tool>>;
  rewards: Map<string, LoadedPlugin<Reward>>;
  benchmarks: Map<string, LoadedPlugin<Benchmark>>;
}

/** Step 4, file the plugin under its name; rewards and benchmarks are guarded to name it. */
function addPlugin(
  maps: PluginMaps,
  entry: Entry,
  digest: string,
  reads: PluginReads,
  plugin: Plugin,
): void {
  const { name, kind, label } = entry;
  const base = { name, use: entry.ref.use, digest, reads };
  if (kind === "tool") maps.tools.set(name, { ...base, plugin: plugin as Tool });
  if (kind === "reward") {
    maps.rewards.set(name, { ...base, plugin: guardReward(plugin as Reward, label) });
  }
  if (kind === "benchmark") {
    maps.benchmarks.set(name, { ...base, plugin: guardBenchmark(plugin as Benchmark, label) });
  }
}

/**
 * One line from a module load error: the message, and where (mapped from the materialized copy
 * back to the plugin's own files), without the code frame or a stack.
 */
function loadErrorText(e: unknown, importUrl: string, originalRoot?: string): string {
  let text = describeError(e);
  if (originalRoot && importUrl.startsWith("file:")) {
    const dir = fileURLToPath(importUrl).replace(/\/[^/]*$/, "");
    // The materialized dir is <store>/plugins/<digest>/<entry's dir>; map it back.
    const m = /^(.*\/plugins\/[0-9a-f]{64})/.exec(dir);
    if (m) text = text.split(pathToFileURL(m[1]).href).join(pathToFileURL(originalRoot).href);
  }
  const lines = text.split("\n");
  const at = lines.map((l) => /^\s*at (.*)$/.exec(l)?.[1]).find((x) => x);
  return lines[0] + (at ? ` (at ${at})` : "");
}

function cap(s: string): string {
  return s[0].toUpperCase() + s.slice(1);
}

function hasType(v: unknown, t: string): boolean {
  return t === "function" ? typeof v === "function" : typeof v === "string";
}

/** The top-level option names of a factory's schema (a zod object), for messages. */
function optionNames(factory: { optionsSchema?: unknown }): string | undefined {
  const shape = (factory.optionsSchema as { shape?: Record<string, unknown> } | undefined)?.shape;
  return shape && typeof shape === "object" ? Object.keys(shape).join(", ") : undefined;
}

/** Check the object a factory returned has the contract's members. */
export function checkShape(obj: unknown, kind: PluginKind, fail: (what: string) => never): void {
  if (obj === null || typeof obj !== "object") {
    fail(`its factory returned ${obj === null ? "null" : typeof obj}, expected a ${kind} object`);
  }
  const o = obj as Record<string, unknown>;
  if (o.kind !== undefined && o.kind !== kind) {
    fail(`its factory returned a ${String(o.kind)}, expected a ${kind}`);
  }
  const want: [string, string][] = kind === "tool"
    ? [["tag", "string"], ["description", "string"], ["call", "function"]]
    : kind === "reward"
    ? [["score", "function"]]
    : [["splits", "array"], ["tasks", "function"]];
  const missing = want.filter(([k, t]) => t === "array" ? !Array.isArray(o[k]) : !hasType(o[k], t))
    .map(([k, t]) => `'${k}' (${t}, found ${Array.isArray(o[k]) ? "array" : typeof o[k]})`);
  if (missing.length) fail(`the ${kind} it returned lacks ${missing.join(", ")}`);
  if (kind === "tool" && !/^[a-z][a-z0-9_-]*$/i.test(o.tag as string)) {
    fail(`tool tag '${o.tag}' is not a valid tag name (letters, digits, _ and -)`);
  }
  if (kind === "benchmark" && !(o.splits as unknown[]).every((s) => typeof s === "string")) {
    fail(`benchmark splits must be strings`);
  }
  if (o.kind === undefined) (o as { kind: string }).kind = kind;
}

/** Rewards and benchmarks that throw while running are reported by plugin name. */
function guardReward(r: Reward, label: string): Reward {
  return Object.assign(Object.create(r), {
    kind: "reward" as const,
    score(sample: Parameters<Reward["score"]>[0]) {
      try {
        return r.score(sample);
      } catch (e) {
        throw new ArpoError(
          `${label} threw while scoring task '${sample?.task?.id}': ${describeError(e)}`,
          {
            cause: e,
          },
        );
      }
    },
  });
}

function guardBenchmark(b: Benchmark, label: string): Benchmark {
  const wrap =
    <A extends unknown[], R>(what: string, f: (...a: A) => R | Promise<R>) =>
    async (...a: A): Promise<R> => {
      try {
        return await f.apply(b, a);
      } catch (e) {
        if (e instanceof ArpoError) throw e;
        throw new ArpoError(
          `${label} threw in ${what}(${a.map((x) => JSON.stringify(x)).join(", ")}): ${
            describeError(e)
          }`,
          {
            cause: e,
          },
        );
      }
    };
  const g: Benchmark = {
    kind: "benchmark",
    splits: b.splits,
    tasks: async (split: string) => {
      if (!b.splits.includes(split)) {
        throw new ArpoError(`${label} has no split '${split}' (splits: ${b.splits.join(", ")})`);
      }
      return await wrap("tasks", b.tasks)(split);
    },
  };
  if (b.demonstrations) g.demonstrations = wrap("demonstrations", b.demonstrations);
  if (b.documents) g.documents = wrap("documents", b.documents);
  // Synchronous, called once per sample: the eval stage reports a throw naming the task.
  if (b.correct) g.correct = b.correct.bind(b);
  return g;
}
