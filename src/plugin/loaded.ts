/** What the plugin loader hands to the stages: instantiated plugins with where they came from. */
import type { Benchmark, Reward, Tool } from "./contracts.ts";

/** An instantiated plugin with where it came from. */
export interface LoadedPlugin<P> {
  /** Manifest name (`as:`, else the `use:` short name / file stem). */
  readonly name: string;
  /** The `use:` text as written. */
  readonly use: string;
  /** sha256 over the plugin's source and its local imports (npm: the specifier). */
  readonly digest: string;
  /**
   * What the plugin read while it was instantiated: data files (identity key → digest) and the
   * benchmarks whose documents it took (`documentsOf`). A stage that uses the plugin depends on
   * those too (its stage key covers them).
   */
  readonly reads: PluginReads;
  readonly plugin: P;
}

/** Data files and other plugins a plugin read through its PluginContext. */
export interface PluginReads {
  readonly data: Readonly<Record<string, string>>;
  readonly documents: readonly string[];
}

/** The manifest's plugins, instantiated, by manifest name (in manifest order). */
export interface StagePlugins {
  readonly tools: ReadonlyMap<string, LoadedPlugin<Tool>>;
  readonly rewards: ReadonlyMap<string, LoadedPlugin<Reward>>;
  readonly benchmarks: ReadonlyMap<string, LoadedPlugin<Benchmark>>;
  /** name → digest for every plugin (tool results are cached under the tool's digest). */
  readonly digests: Readonly<Record<string, string>>;
}
