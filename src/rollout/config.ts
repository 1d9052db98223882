/**
 * Rollout configuration: the ARPO / GRPO knobs of ARPO.md §2 (`rollout:`) and the decoding options
 * with the agent-loop limits of §1 (`sampling:`). The zod schemas here are the one definition of
 * both blocks: stage kinds embed them in their options (with the defaults that differ between
 * training and evaluation), the manifest loader validates and fills defaults with them, and
 * `rolloutConfig` maps the validated blocks, as they are, onto the `RolloutConfig` the engine
 * reads. Nothing downstream validates or defaults again.
 */
import { z } from "zod";
import { ArpoError } from "../errors.ts";
import type { SamplingParams } from "../policy/types.ts";

export type RolloutAlgorithm = "arpo" | "grpo";
/** paper: k-token look-ahead after each result, branch when P > τ. reference: see arpo.ts. */
export type ArpoMode = "paper" | "reference";
/** ΔH divided by the vocabulary size (paper) or by its natural log (reference). */
export type EntropyNormalization = "vocab" | "log_vocab";

/** The defaults of `rollout:` that differ between stage kinds. */
export interface RolloutDefaults {
  algorithm: RolloutAlgorithm;
  rollouts: number;
  initial: number;
}

/** `rollout:` — how trajectories are sampled per question (ARPO.md §2 names in comments). */
export function rolloutSettingsSchema(d: RolloutDefaults) {
  return z.strictObject({
    algorithm: z.enum(["arpo", "grpo"]).default(d.algorithm)
      .describe("`arpo`: entropy-adaptive tree rollouts; `grpo`: M independent trajectories"),
    rollouts: z.int().min(1).default(d.rollouts).describe("M: trajectories per question"),
    initial: z.int().min(1).default(d.initial)
      .describe("N: whole trajectories sampled from the prompt (the rest, M−N, is branch budget)"),
    entropy_tokens: z.int().min(1).default(20)
      .describe("k: tokens probed after a tool result (the reference uses ≤20 positions)"),
    base_probability: z.number().min(0).max(1).default(0.5).describe("α"),
    entropy_weight: z.number().default(0.2).describe("β"),
    threshold: z.number().default(0.5).describe("τ: paper mode branches when P > τ"),
    branches_per_fork: z.int().min(1).default(1).describe("Z: partial trajectories per fork"),
    entropy_norm: z.enum(["vocab", "log_vocab"]).optional()
      .describe(
        "divide the summed ΔH by V (`vocab`) or ln V (`log_vocab`); default by mode: " +
          "vocab (paper), log_vocab (reference)",
      ),
    mode: z.enum(["paper", "reference"]).default("paper")
      .describe("`paper`: k-token probe, P > τ; `reference`: segment entropy, u ≤ P"),
    reference_top_k: z.int().min(0).default(10)
      .describe(
        "reference mode: entropy from the top-K log-probabilities (vLLM logprobs=10); 0 = full",
      ),
    reference_window: z.int().min(1).default(20)
      .describe("reference mode: positions of a segment whose entropies enter ΔH"),
  }).superRefine((v, ctx) => {
    if (v.algorithm === "arpo" && v.initial > v.rollouts) {
      ctx.addIssue({
        code: "custom",
        path: ["initial"],
        message: `at most rollouts (${v.rollouts}), found ${v.initial}`,
      });
    }
  }).transform((v) => ({
    ...v,
    // ARPO.md §2: the paper divides by V, the reference by ln V; an explicit value wins.
    entropy_norm: v.entropy_norm ?? (v.mode === "reference" ? "log_vocab" : "vocab"),
  }));
}

/** The defaults of `sampling:` that differ between training and evaluation. */
export interface SamplingDefaults {
  temperature: number;
  top_p: number;
}

/** `sampling:` — decoding options and the per-trajectory caps of the agent loop (ARPO.md §1). */
export function samplingSettingsSchema(d: SamplingDefaults) {
  return z.strictObject({
    temperature: z.number().min(0).default(d.temperature).describe("0 = greedy"),
    top_p: z.number().gt(0).max(1).default(d.top_p),
    top_k: z.int().min(0).default(0).describe("0 = off"),
    max_tokens: z.int().min(1).default(512).describe("response-length limit in tokens"),
    max_tool_calls: z.int().min(0).default(3)
      .describe("tool calls per trajectory (reference: 3 for reasoning, 6 for deep search)"),
  });
}

/** A validated `rollout:` block (defaults filled). */
export type RolloutSettings = z.output<ReturnType<typeof rolloutSettingsSchema>>;
/** A validated `sampling:` block (defaults filled). */
export type SamplingSettings = z.output<ReturnType<typeof samplingSettingsSchema>>;

/**
 * What the rollout engine reads. Its field names are those of the stored artefacts (every tree and
 * batch index carries it), so they stay as they are; `rolloutConfig` is the one place that maps
 * the manifest's names onto them.
 */
export interface RolloutConfig {
  algorithm: RolloutAlgorithm;
  /** M: trajectories per question. */
  rollouts: number;
  /** N: whole trajectories sampled from the prompt (ARPO); GRPO always uses N = M. */
  initial: number;
  /** k: entropy window (paper: probe length after a result and H_init length). */
  entropyTokens: number;
  /** α. */
  baseProbability: number;
  /** β. */
  entropyWeight: number;
  /** τ (paper mode). */
  threshold: number;
  /** Z: children per branch (paper: all at once; reference: Z independent draws). */
  branchesPerFork: number;
  entropyNormalization: EntropyNormalization;
  mode: ArpoMode;
  /**
   * Reference mode only: entropy for ΔH from the top-K log-probabilities of each position (the
   * reference's vLLM `logprobs=10`); 0 uses the full-vocabulary entropy.
   */
  referenceTopK: number;
  /** Reference mode: positions of a segment that enter its entropy (reference: 20). */
  referenceWindow: number;
  /** Tool calls allowed per trajectory; one more call gets an end-of-sequence instead. */
  maxToolCalls: number;
  /** Response tokens (generated + tool results) per trajectory. */
  maxResponseTokens: number;
  sampling: SamplingParams;
}

/** The engine's configuration from validated `rollout:` and `sampling:` blocks (a plain mapping). */
export function rolloutConfig(r: RolloutSettings, s: SamplingSettings): RolloutConfig {
  return {
    algorithm: r.algorithm,
    rollouts: r.rollouts,
    // GRPO samples all M trajectories from the prompt, whatever `initial` says.
    initial: r.algorithm === "grpo" ? r.rollouts : r.initial,
    entropyTokens: r.entropy_tokens,
    baseProbability: r.base_probability,
    entropyWeight: r.entropy_weight,
    threshold: r.threshold,
    branchesPerFork: r.branches_per_fork,
    entropyNormalization: r.entropy_norm,
    mode: r.mode,
    referenceTopK: r.reference_top_k,
    referenceWindow: r.reference_window,
    maxToolCalls: s.max_tool_calls,
    maxResponseTokens: s.max_tokens,
    sampling: { temperature: s.temperature, topP: s.top_p, topK: s.top_k },
  };
}

/**
 * The `rollout:` block of M independent samples per question (GRPO), every other knob at its
 * schema default: what the probe and the evaluation inside rl sample with.
 */
export function independentRollouts(m: number): RolloutSettings {
  return rolloutSettingsSchema({ algorithm: "grpo", rollouts: m, initial: m }).parse({});
}

/** The defaults of an rl stage's blocks: what `parseRolloutConfig` fills in. */
const RL_ROLLOUT = rolloutSettingsSchema({ algorithm: "arpo", rollouts: 8, initial: 4 });
const RL_SAMPLING = samplingSettingsSchema({ temperature: 1, top_p: 1 });

/**
 * A RolloutConfig from partial `rollout:` / `sampling:` blocks written in code (tests, benches,
 * independent samples inside a stage), validated and defaulted by the same schemas as a manifest's
 * rl stage. Bad values throw an ArpoError naming `where` and the key.
 *
 * @example
 * ```ts
 * const config = parseRolloutConfig({ algorithm: "grpo", rollouts: 4 }, { max_tokens: 128 });
 * ```
 */
export function parseRolloutConfig(
  rollout: z.input<typeof RL_ROLLOUT> = {},
  sampling: z.input<typeof RL_SAMPLING> = {},
  where = "stage",
): RolloutConfig {
  const parse = <S extends z.ZodType>(schema: S, v: unknown, block: string): z.output<S> => {
    const r = schema.safeParse(v);
    if (r.success) return r.data;
    const i = r.error.issues[0];
    const key = [block, ...i.path.map(String)].join(".");
    throw new ArpoError(`${where}.${key}: ${i.message}`);
  };
  return rolloutConfig(
    parse(RL_ROLLOUT, rollout, "rollout"),
    parse(RL_SAMPLING, sampling, "sampling"),
  );
}
