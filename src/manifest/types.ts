/**
 * The shapes of a resolved manifest: what the rest of the runner sees after parsing, `--set`
 * overrides, validation and defaults. Every optional key of the YAML is filled in here, so the
 * resolved manifest is complete and is what gets hashed into the run id.
 */
import type { PolicyConfig } from "./policy.ts";

export type { PolicyConfig };

/** One plugin entry of `plugins.tools | rewards | benchmarks`. */
export interface PluginRef {
  /** Built-in short name (`python`), a path relative to the manifest (`./x.ts`), or `npm:…`. */
  use: string;
  /**
   * The name stages and other plugins refer to it by. Always present in a resolved manifest:
   * when the YAML omits `as:`, it is derived from `use:` (see `pluginName`).
   */
  as?: string;
  /** Options for the plugin's own schema (validated by the plugin loader). Resolved: `{}` if absent. */
  with?: Record<string, unknown>;
}

export type Device = "auto" | "cpu" | "cuda" | "webgpu";

/** One stage, in manifest order. */
export interface StageConfig {
  /** A stage kind the manifest was loaded with: `sft`, `rl`, `eval`, `probe`, or a caller's own. */
  kind: string;
  /** Unique within the manifest; defaults to the kind. */
  name: string;
  /** Validated by the kind's schema, defaults applied. */
  options: Record<string, unknown>;
}

export interface ResolvedManifest {
  name: string;
  description: string;
  seed: number;
  policy: PolicyConfig;
  plugins: { tools: PluginRef[]; rewards: PluginRef[]; benchmarks: PluginRef[] };
  stages: StageConfig[];
  runtime: {
    threads: number;
    device: Device;
    /** Cache deterministic tools' results: all, none, or per tool name (absent names: on). */
    tool_cache: boolean | Record<string, boolean>;
    /**
     * `portable`: every graph runs on onnxruntime-web's WebAssembly build (the same bytes on any
     * machine). Absent means native, so native runs keep the run ids they had before the key.
     */
    numerics?: "portable";
    /**
     * Where a finished run's metrics also go (`tensorboard`). Absent when none; outside the run
     * id and the stage keys (run/runner.ts): where metrics are copied changes no output.
     */
    trackers?: Tracker[];
  };
}

/** An experiment tracker a run's metrics can be written for. */
export type Tracker = "tensorboard";

export interface LoadedManifest {
  /** Absolute path of the manifest file. */
  path: string;
  /** Directory relative paths in the manifest (policy.model, plugin `use:`, data files) resolve against. */
  baseDir: string;
  /** The manifest's source text, as read. */
  text: string;
  manifest: ResolvedManifest;
  /**
   * Line and column (1-based) of the YAML node at `keyPath`, written as in the YAML
   * (`["plugins", "tools", 0, "with", "timeout"]`, `["stages", 1, "rl", "lr"]`). For stages the
   * resolved form `["stages", 1, "options", "lr"]` is accepted too. When the path is not written in
   * the file (a default, say) the position of the nearest ancestor that is; undefined only for an
   * empty document.
   */
  positionOf(keyPath: (string | number)[]): { line: number; col: number } | undefined;
}
