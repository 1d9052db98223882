/**
 * What the manifest needs to know of a stage kind: its name, the zod schema of its options, and
 * which options name plugins. The stage kinds themselves (options schema and run function in one
 * module) live in src/run/stages/; whoever loads a manifest passes the list it may contain
 * (`loadManifest(path, { stages })`), so this room imports none of them.
 *
 * In YAML each stage is a single-key map, the key naming the kind and its value the options; an
 * optional `name:` among the options names the stage (default: the kind). Names are unique, so a
 * second stage of the same kind needs an explicit name:
 *
 * ```yaml
 * stages:
 *   - sft: { benchmarks: [arith] }
 *   - rl: { name: arpo, rollout: { algorithm: arpo } }
 *   - rl: { name: grpo, rollout: { algorithm: grpo } }
 *   - eval                      # a bare kind: all options at their defaults
 * ```
 */
import type { z } from "zod";

export type PluginSection = "tools" | "rewards" | "benchmarks";

/** An option whose value names plugins declared in the manifest. */
export interface PluginReference {
  /** Which plugin list the names refer to. */
  section: PluginSection;
  /**
   * When the option is absent and the manifest declares exactly one plugin of that section, use
   * it (so single-benchmark manifests need not repeat its name).
   */
  fill?: boolean;
}

/** A stage kind as the manifest loader sees it. */
export interface StageSchema {
  /** The YAML key naming the kind (`sft`, `rl`, …): lower case, digits and `_`. */
  readonly kind: string;
  /**
   * Validates the stage's options (without `name`, which the manifest handles) and applies their
   * defaults. A strict object schema, so unknown options are reported.
   */
  readonly options: z.ZodType;
  /**
   * Options (top-level keys of the stage's options) whose values are plugin names (a string or a
   * list of strings): checked against the manifest's `plugins:` with a "did you mean".
   */
  readonly references?: Readonly<Record<string, PluginReference>>;
  /**
   * Whether the stage, with these (validated) options, updates the policy's weights: such a
   * stage needs a model trained here, so the manifest refuses it with an inference-server policy.
   */
  readonly trains?: (options: unknown) => boolean;
}

const KIND_RE = /^[a-z][a-z0-9_]*$/;

/** The kinds by name, after checking the list (a programming error throws, not a manifest one). */
export function stageSchemaMap(stages: readonly StageSchema[]): Map<string, StageSchema> {
  const out = new Map<string, StageSchema>();
  for (const s of stages) {
    if (!KIND_RE.test(s.kind)) throw new Error(`stage kind must match ${KIND_RE}, got '${s.kind}'`);
    if (s.kind === "name") throw new Error("'name' cannot be a stage kind");
    if (out.has(s.kind)) throw new Error(`stage kind '${s.kind}' is listed twice`);
    out.set(s.kind, s);
  }
  return out;
}
