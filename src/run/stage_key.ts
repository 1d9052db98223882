/**
 * What a stage depends on, and its key. A stage's key is the digest of exactly what determines
 * its outputs, so a key already in the store's index can be reused and editing something a stage
 * never touches leaves it reused:
 *
 * - `stage`: its own config (kind, name, validated options with defaults);
 * - `seed`, `policy` (the manifest's policy section) and `model` (digest of the model files);
 * - `runtime` (threads, device, tool cache) and `versions` (Deno, ONNX Runtime, arpo-lab);
 * - `plugins`: the plugins it uses (see `stagePlugins`), each by name with its list, `use:`,
 *   `with:` options, source digest and the data files it read;
 * - `inputs`: the outputs of the earlier stages it reads (StageKind.reads; by default all).
 *
 * The stage's context holds exactly these plugins and inputs, so it cannot read what its key
 * does not cover.
 */
import type { PluginRef, ResolvedManifest, StageConfig } from "../manifest/mod.ts";
import type { LoadedPlugin, StagePlugins } from "../plugin/loaded.ts";
import { digestJson } from "../store/hash.ts";
import type { RunIdentity } from "../store/records.ts";
import type { EarlierStage, StageKind, StageOutputs } from "./stages.ts";

type Section = "tools" | "rewards" | "benchmarks";
const SECTIONS: readonly Section[] = ["benchmarks", "rewards", "tools"];

/** What a stage reads: the plugins it uses and the outputs of the earlier stages it reads. */
export interface StageDependencies {
  plugins: StagePlugins;
  inputs: Record<string, StageOutputs>;
}

/**
 * The plugins a stage uses: those its options name (the kind's `references`), every tool when the
 * kind calls tools, and, transitively, the benchmarks whose documents those read. A kind that
 * declares neither references nor tools may use any plugin, so it gets them all.
 */
export function stagePlugins(
  kind: StageKind,
  config: StageConfig,
  all: StagePlugins,
): StagePlugins {
  const wanted = new Set<string>();
  if (kind.references === undefined && !kind.tools) {
    for (const s of SECTIONS) for (const n of all[s].keys()) wanted.add(n);
  }
  for (const key of Object.keys(kind.references ?? {})) {
    const v = config.options[key];
    for (const n of Array.isArray(v) ? v : [v]) if (typeof n === "string") wanted.add(n);
  }
  if (kind.tools) { for (const n of all.tools.keys()) wanted.add(n); }
  // Documents a plugin took from a benchmark make that benchmark a dependency too.
  const queue = [...wanted];
  while (queue.length) {
    for (const b of find(all, queue.pop()!)?.reads.documents ?? []) {
      if (!wanted.has(b)) {
        wanted.add(b);
        queue.push(b);
      }
    }
  }
  const pick = <P>(m: ReadonlyMap<string, LoadedPlugin<P>>) =>
    new Map([...m].filter(([n]) => wanted.has(n)));
  const tools = pick(all.tools), rewards = pick(all.rewards), benchmarks = pick(all.benchmarks);
  const digests: Record<string, string> = {};
  for (const m of [benchmarks, rewards, tools]) for (const [n, p] of m) digests[n] = p.digest;
  return { tools, rewards, benchmarks, digests };
}

function find(all: StagePlugins, name: string): LoadedPlugin<unknown> | undefined {
  return all.tools.get(name) ?? all.rewards.get(name) ?? all.benchmarks.get(name);
}

/** The outputs of the earlier stages this stage reads (StageKind.reads; default: all of them). */
export function stageInputs(
  kind: StageKind,
  config: StageConfig,
  earlier: readonly EarlierStage[],
  outputs: Readonly<Record<string, StageOutputs>>,
): Record<string, StageOutputs> {
  const names = kind.reads
    ? kind.reads(config.options, earlier, config.name)
    : earlier.map((s) => s.name);
  return Object.fromEntries(names.map((n) => [n, outputs[n]]));
}

/** The stage key (see the module comment for what it covers). */
export function stageKey(
  config: StageConfig,
  deps: StageDependencies,
  manifest: ResolvedManifest,
  identity: RunIdentity,
): string {
  const plugins: Record<string, unknown> = {};
  for (const section of SECTIONS) {
    for (const [name, p] of deps.plugins[section]) {
      const ref = manifest.plugins[section].find((r: PluginRef) => r.as === name);
      plugins[name] = {
        section,
        use: p.use,
        with: ref?.with ?? {},
        digest: p.digest,
        data: { ...p.reads.data },
      };
    }
  }
  return digestJson({
    format: "arpo.stage-key.v2",
    stage: { kind: config.kind, name: config.name, options: config.options },
    seed: manifest.seed,
    policy: manifest.policy,
    model: identity.model,
    runtime: manifest.runtime,
    versions: identity.runtime,
    plugins,
    inputs: Object.fromEntries(Object.entries(deps.inputs).map(([n, o]) => [n, o.outputs])),
  });
}
