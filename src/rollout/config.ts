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

/**
 * `arpo`: entropy-adaptive tree rollouts; `grpo`: M independent trajectories; `random`: ARPO's tree
 * machinery and budget, branching after a tool call with a fixed probability (the control that
 * tells whether the entropy trigger matters or only the branching). docs/BRANCHING.md.
 */
export type RolloutAlgorithm = "arpo" | "grpo" | "random" | "aepo";
/**
 * AEPO's consecutive-branch penalty: k counted along the path's own lineage (`path`, the paper's
 * motivation) or over all branches the question created so far (`prompt`, the reference code).
 */
export type PenaltyScope = "path" | "prompt";

/** AEPO's rollout knobs (docs/AEPO.md); present on a RolloutConfig only for `algorithm: aepo`. */
export interface AepoRolloutConfig {
  /** Entropy pre-monitoring: a probe decides m = clamp(int(n·σ(β_m·(H_root − H̄_tool))) + 1, 1, n). */
  preMonitor: boolean;
  /** β_m of the pre-monitoring sigmoid (reference: 0.5, hard-coded). */
  preMonitorBeta: number;
  /** Tokens of the root generation that measures H_root (reference: 50). */
  rootTokens: number;
  /** Penalty per counted branch: P·max(0, 1 − penalty·k) (reference: 0.05). */
  penalty: number;
  penaltyScope: PenaltyScope;
}
/**
 * How ΔH is measured. paper: k-token look-ahead probe after each result against the first k
 * tokens of the response. reference: the segment that ended at the call against the trajectory's
 * first segment (see arpo.ts).
 */
export type ArpoMode = "paper" | "reference";
/** How P = α + β·ΔH becomes a decision: `threshold` P > τ (paper); `sample` u < clamp(P) (reference). */
export type BranchDecisionRule = "threshold" | "sample";
/**
 * The divisor of the summed entropy differences: the vocabulary size (paper), its natural log
 * (reference), or the number of positions summed (`mean`: the mean per-position change in nats).
 */
export type EntropyNormalization = "vocab" | "log_vocab" | "mean";
/** Reference mode: a branch's H_init is its own first segment (reference) or its parent's. */
export type ReferenceInit = "own" | "parent";

/** The defaults of `rollout:` that differ between stage kinds. */
export interface RolloutDefaults {
  algorithm: RolloutAlgorithm;
  rollouts: number;
  initial: number;
}

/** `random`'s branch probability when the block gives none. */
export const DEFAULT_BRANCH_PROBABILITY = 0.5;

/** AEPO's defaults (the reference code's). */
export const AEPO_DEFAULTS = {
  pre_monitor: false,
  pre_monitor_beta: 0.5,
  root_tokens: 50,
  penalty: 0.05,
  penalty_scope: "path",
} as const;

const AEPO_KEYS = [
  "pre_monitor",
  "pre_monitor_beta",
  "root_tokens",
  "penalty",
  "penalty_scope",
] as const;

/** The most trajectories per question (`rollouts`, `initial`). */
export const MAX_ROLLOUTS = 1024;

/** `rollout:` — how trajectories are sampled per question (ARPO.md §2 names in comments). */
export function rolloutSettingsSchema(d: RolloutDefaults) {
  return z.strictObject({
    algorithm: z.enum(["arpo", "grpo", "random", "aepo"]).default(d.algorithm)
      .describe(
        "`arpo`: entropy-adaptive tree rollouts; `grpo`: M independent trajectories; `random`: " +
          "ARPO's trees and budget, branching with fixed probability `branch_probability`; " +
          "`aepo`: ARPO's trees with AEPO's pre-monitoring and consecutive-branch penalty",
      ),
    // Bounds: far above any experiment, below what exhausts memory (issue 13).
    rollouts: z.int().min(1).max(MAX_ROLLOUTS).default(d.rollouts)
      .describe("M: trajectories per question"),
    initial: z.int().min(1).max(MAX_ROLLOUTS).default(d.initial)
      .describe("N: whole trajectories sampled from the prompt (the rest, M−N, is branch budget)"),
    entropy_tokens: z.int().min(1).default(20)
      .describe("k: tokens probed after a tool result (the reference uses ≤20 positions)"),
    base_probability: z.number().min(0).max(1).default(0.5).describe("α: base branch probability"),
    entropy_weight: z.number().default(0.2).describe("β: weight of the entropy change ΔH"),
    threshold: z.number().default(0.5).describe("τ: `decision: threshold` branches when P > τ"),
    branches_per_fork: z.int().min(1).default(1).describe("Z: partial trajectories per fork"),
    decision: z.enum(["threshold", "sample"]).default("sample")
      .describe(
        "`sample`: each of Z attempts draws u ~ U[0,1) and branches when u < clamp(α + β·ΔH, 0, 1) " +
          "(the reference); `threshold`: branch when α + β·ΔH > τ (the paper; with α = τ only " +
          "the sign of ΔH matters)",
      ),
    entropy_norm: z.enum(["vocab", "log_vocab", "mean"]).optional()
      .describe(
        "divide the summed ΔH by V (`vocab`), ln V (`log_vocab`) or the positions summed " +
          "(`mean`, nats per position); default by decision: vocab (threshold, the paper's " +
          "pair), log_vocab (sample, the reference's pair)",
      ),
    mode: z.enum(["paper", "reference"]).default("paper")
      .describe(
        "how ΔH is measured: `paper`: k-token probe after the result; `reference`: the " +
          "segment that ended at the call",
      ),
    reference_top_k: z.int().min(0).default(10)
      .describe(
        "reference mode: entropy from the top-K log-probabilities (vLLM logprobs=10); 0 = full",
      ),
    reference_window: z.int().min(1).default(20)
      .describe("reference mode: positions of a segment whose entropies enter ΔH"),
    reference_init: z.enum(["own", "parent"]).default("own")
      .describe(
        "reference mode: a branch's H_init is the first segment it generates itself (`own`, " +
          "the reference) or its parent's (`parent`)",
      ),
    branch_probability: z.number().min(0).max(1).optional()
      .describe(
        `algorithm: random only: the probability of each of Z branch attempts after a tool ` +
          `call (default ${DEFAULT_BRANCH_PROBABILITY})`,
      ),
    // AEPO only; optional and absent from the validated block of other algorithms, so adding
    // them left every existing stage's options (and key) as they were.
    pre_monitor: z.boolean().optional()
      .describe(
        "aepo: entropy pre-monitoring sets N per question from a probe rollout (default false, " +
          "as the official scripts' ENABLE_DYNAMIC_ROLLOUTS=False)",
      ),
    pre_monitor_beta: z.number().optional()
      .describe("aepo: β of m = clamp(int(M·σ(β·(H_root − H̄_tool))) + 1, 1, M) (default 0.5)"),
    root_tokens: z.int().min(1).optional()
      .describe("aepo pre-monitoring: tokens of the root generation measuring H_root (default 50)"),
    penalty: z.number().min(0).optional()
      .describe("aepo: consecutive-branch penalty, P·max(0, 1 − penalty·k) (default 0.05)"),
    penalty_scope: z.enum(["path", "prompt"]).optional()
      .describe(
        "aepo: k counts consecutive branchings along the path (`path`, default) or all branches " +
          "of the question so far (`prompt`, the reference code)",
      ),
  }).superRefine((v, ctx) => {
    for (const k of AEPO_KEYS) {
      if (v[k] !== undefined && v.algorithm !== "aepo") {
        ctx.addIssue({
          code: "custom",
          path: [k],
          message: `${k} is an algorithm: aepo option, found with algorithm: ${v.algorithm}`,
        });
      }
    }
    if (v.algorithm !== "grpo" && v.initial > v.rollouts) {
      ctx.addIssue({
        code: "custom",
        path: ["initial"],
        message: `at most rollouts (${v.rollouts}), found ${v.initial}`,
      });
    }
    if (v.branch_probability !== undefined && v.algorithm !== "random") {
      ctx.addIssue({
        code: "custom",
        path: ["branch_probability"],
        message: `no branch_probability with algorithm: ${v.algorithm} (it is the fixed ` +
          `probability of algorithm: random; arpo branches with base_probability + ` +
          `entropy_weight·ΔH)`,
      });
    }
  }).transform((
    {
      branch_probability,
      pre_monitor,
      pre_monitor_beta,
      root_tokens,
      penalty,
      penalty_scope,
      ...v
    },
  ) => ({
    ...v,
    // Each decision rule with the divisor of its source (ARPO.md §2): the paper's threshold rule
    // divides by V, the reference's sampled rule by ln V. An explicit value wins.
    entropy_norm: v.entropy_norm ?? (v.decision === "threshold" ? "vocab" : "log_vocab"),
    // Present for `random` only (the other algorithms have no use for it).
    ...(v.algorithm === "random"
      ? { branch_probability: branch_probability ?? DEFAULT_BRANCH_PROBABILITY }
      : {}),
    // Present, defaults filled, for `aepo` only.
    ...(v.algorithm === "aepo"
      ? {
        pre_monitor: pre_monitor ?? AEPO_DEFAULTS.pre_monitor,
        pre_monitor_beta: pre_monitor_beta ?? AEPO_DEFAULTS.pre_monitor_beta,
        root_tokens: root_tokens ?? AEPO_DEFAULTS.root_tokens,
        penalty: penalty ?? AEPO_DEFAULTS.penalty,
        penalty_scope: penalty_scope ?? AEPO_DEFAULTS.penalty_scope,
      }
      : {}),
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
    // 0 or ≥ 0.01: below that 1/T overflows the logits (5e-324 gave NaN) and is greedy anyway.
    temperature: z.number().min(0).max(100).refine((t) => t === 0 || t >= 0.01, {
      message: "0 (greedy) or at least 0.01",
    }).default(d.temperature).describe("0 = greedy"),
    top_p: z.number().gt(0).max(1).default(d.top_p).describe("nucleus mass kept; 1 = off"),
    top_k: z.int().min(0).default(0).describe("0 = off"),
    max_tokens: z.int().min(1).max(1 << 17).default(512)
      .describe("response-length limit in tokens"),
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
  /** τ (`decision: threshold`). */
  threshold: number;
  /** Z: children per branch (threshold: all at once; sample / random: Z independent draws). */
  branchesPerFork: number;
  entropyNormalization: EntropyNormalization;
  /** How ΔH is measured (probe after the result, or the segment before the call). */
  mode: ArpoMode;
  /** How P becomes a decision (arpo). */
  decision: BranchDecisionRule;
  /** Reference mode: where a branch's H_init comes from. */
  referenceInit: ReferenceInit;
  /** `random`: probability of each branch attempt; absent for the other algorithms. */
  branchProbability?: number;
  /** `aepo`: its knobs; absent for the other algorithms. */
  aepo?: AepoRolloutConfig;
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
    decision: r.decision,
    referenceInit: r.reference_init,
    ...(r.branch_probability !== undefined ? { branchProbability: r.branch_probability } : {}),
    ...(r.algorithm === "aepo"
      ? {
        aepo: {
          preMonitor: r.pre_monitor ?? AEPO_DEFAULTS.pre_monitor,
          preMonitorBeta: r.pre_monitor_beta ?? AEPO_DEFAULTS.pre_monitor_beta,
          rootTokens: r.root_tokens ?? AEPO_DEFAULTS.root_tokens,
          penalty: r.penalty ?? AEPO_DEFAULTS.penalty,
          penaltyScope: r.penalty_scope ?? AEPO_DEFAULTS.penalty_scope,
        },
      }
      : {}),
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
