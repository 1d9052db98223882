/**
 * Stage kinds and what a stage sees while it runs. A stage kind (sft, rl, eval, probe, or a test
 * fixture) is a value made with `defineStage`; the runner (run/runner.ts) is given the list of
 * kinds a manifest may use, gives each stage a StageContext and records the digests it returns. A stage's outputs are named store
 * objects: every artefact a later stage, the report or `verify` needs must be one of them.
 */
import type { z } from "zod";
import type { Json } from "../store/canonical.ts";
import type { RunRecord, StageRecord } from "../store/records.ts";
import type { Stream } from "../rng.ts";
import type { StagePlugins } from "../plugin/loaded.ts";
import type { Policy } from "../policy/types.ts";
import type { ToolCache } from "../tools/runtime.ts";
import type { ResolvedManifest, StageConfig, StageSchema } from "../manifest/mod.ts";

/** What a finished stage left: named output objects and small JSON metrics. */
export interface StageOutputs {
  /** output name → sha256 of a store object. */
  readonly outputs: Readonly<Record<string, string>>;
  readonly metrics: Readonly<Record<string, Json>>;
}

/** A stage's result. */
export interface StageResult {
  outputs: Record<string, string>;
  metrics?: Record<string, Json>;
}

/** Content-addressed store access for stages. Reading re-hashes: damaged bytes throw ArpoError. */
export interface StageStore {
  putBytes(bytes: Uint8Array): Promise<string>;
  /** Store the concatenation of `parts` without building it (Store.putParts). */
  putParts(parts: readonly Uint8Array[]): Promise<string>;
  /** Stores the RFC 8785 canonical JSON of `value`; returns its digest. */
  putJson(value: unknown): Promise<string>;
  getBytes(digest: string): Promise<Uint8Array>;
  getJson<T = unknown>(digest: string): Promise<T>;
  has(digest: string): Promise<boolean>;
}

/** A resumable stage saves checkpoints (state = named object digests) and loads the last one. */
export interface CheckpointApi {
  /** Persist `state` (digests already in the store) as reached after `step`. Atomic. */
  save(step: number, state: Record<string, string>, meta?: Record<string, Json>): Promise<void>;
  /** The last checkpoint of this stage key, or undefined (fresh start, or `--force`). */
  load(): Promise<
    { step: number; state: Record<string, string>; meta: Record<string, Json> } | undefined
  >;
}

/**
 * A progress report (`ctx.progress(update)`), shown according to the CLI's progress style
 * (run/progress.ts), never stored in artefacts nor part of any identity. Every field is optional:
 * the reporter folds the updates of a stage together, so report what changed, when it changes.
 *
 * ```ts
 * ctx.progress({ step: s, total: steps });               // at the start of step s (s done)
 * ctx.progress({ within: { done: q, total: n, unit: "questions" }, rollouts: 8, toolCalls: 5 });
 * ctx.progress({ step: s + 1, reward: meanReward });     // step s finished, its mean reward
 * ```
 */
export interface ProgressUpdate {
  /** The stage's main counter: steps completed so far (rl/sft training steps). Drives the ETA. */
  step?: number;
  /** How many steps the stage has in all. */
  total?: number;
  /**
   * Progress inside the current step (e.g. questions of a step's rollout batch; for a stage
   * without steps, such as eval, its whole work). Refines the ETA; cleared when `step` changes.
   */
  within?: { done: number; total: number; unit?: string };
  /** Increment: trajectories finished since the last report (shown as rollouts/s). */
  rollouts?: number;
  /** Increment: tool calls made since the last report (shown as tool calls/s). */
  toolCalls?: number;
  /**
   * A reward observation (e.g. a step's mean reward); shown as an exponential moving average.
   * Without it, `metrics.mean_reward` is taken as the observation.
   */
  reward?: number;
  /** Free text shown at the end of the line (replaces the previous message). */
  message?: string;
  /** Extra numbers shown as `name=value` (replace the previous ones). */
  metrics?: Record<string, number>;
}

/**
 * What the policy factory may be asked for. `weights` names a checkpoint object (a digest an
 * earlier stage produced); without it the manifest's policy (model file or init) is meant.
 */
export interface PolicyRequest {
  weights?: string;
  /**
   * "optional": the stage uses no text (sft on token data), so a `policy.model` directory
   * without tokenizer files loads with token ids only; by default it is refused.
   */
  tokenizer?: "optional";
  /**
   * "none": the stage only trains from the policy's weights (sft, rl); a factory that can give
   * its policy without an inference session does (the default one: `OnnxPolicy.weightsOnly`).
   */
  session?: "none";
  [key: string]: unknown;
}

/** Everything a stage gets. */
export interface StageContext {
  readonly config: StageConfig;
  /** Stage name (config.name), unique in the manifest. */
  readonly name: string;
  /** This stage's key (hash of everything that determines its outputs). */
  readonly key: string;
  readonly manifest: ResolvedManifest;
  /** Manifest directory (for a rerun: the scratch directory the archive was materialized into). */
  readonly baseDir: string;
  readonly seed: number;
  readonly plugins: StagePlugins;
  /** Outputs of the stages before this one, by stage name. */
  readonly inputs: Readonly<Record<string, StageOutputs>>;
  readonly store: StageStore;
  /** The keyed stream (seed, "stage", stageName, ...ids). */
  stream(...ids: (string | number)[]): Stream;
  readonly checkpoint: CheckpointApi;
  progress(update: ProgressUpdate): void;
  log(message: string): void;
  /** Aborted on Ctrl-C: save a checkpoint and throw (or return) promptly. */
  readonly signal: AbortSignal;
  /** Record a wall-clock timing (outside the run identity). */
  timing(name: string, ms: number): void;
  /** The policy (lazy; built by the run's policy factory, RunOptions.policyFactory). */
  policy(request?: PolicyRequest): Promise<Policy>;
  /**
   * On `rerun`/`verify`: the archived record being re-executed and this stage's entry in it (its
   * outputs hold, e.g., recorded tool results to replay for non-deterministic tools). Undefined on
   * an ordinary run.
   */
  readonly archived?: {
    record: RunRecord;
    stage: StageRecord | undefined;
    /** `--live-tools`: call non-deterministic tools live instead of replaying their records. */
    liveTools?: boolean;
  };
  /**
   * The store's tool-result cache, keyed by (tool digest, input) (run/tool_cache.ts). Undefined
   * when the stage runs outside a store (hand-built contexts in tests).
   */
  readonly toolCache?: ToolCache;
  /** Path of the model file or directory the manifest names (materialized from the archive on reruns). */
  readonly modelPath: string | undefined;
}

/**
 * A stage kind: one module owns its options schema and its run function. The runner hands `run`
 * the options its own schema produced when the manifest was validated, so `options` is typed as
 * that schema's output; nothing casts or re-validates them.
 *
 * Its key (what decides reuse, run/stage_key.ts) covers its config, the plugins it uses (those
 * its options name through `references`, every tool when `tools` is set, and the plugins those
 * read), and the outputs of the earlier stages it reads (`reads`; by default all of them).
 * `ctx.plugins` and `ctx.inputs` hold exactly those, so a stage cannot depend on anything its key
 * does not cover.
 */
export interface StageKind<S extends z.ZodType = z.ZodType> extends StageSchema {
  readonly options: S;
  /** The stage calls the manifest's tools (rollouts): every tool plugin is part of its key. */
  readonly tools?: boolean;
  /**
   * The earlier stages whose outputs this stage reads, given its options and what the earlier
   * stages produced (in manifest order). Throws an ArpoError for an option naming none.
   */
  reads?(options: z.output<S>, earlier: readonly EarlierStage[], name: string): string[];
  /**
   * The benchmark splits the stage trains on and those it measures, so that training on a split
   * a stage measures can be warned about (run/split_overlap.ts).
   */
  splits?(options: z.output<S>): { trains?: BenchmarkSplit[]; measures?: BenchmarkSplit[] };
  /**
   * Whether the stage, with these options, turns text into tokens or back (rollouts, text
   * demonstrations), which needs the policy's tokenizer: a `policy.model` directory without
   * tokenizer files is refused before anything loads (run/tokenizer_gate.ts). Default: true.
   */
  needsTokenizer?(options: z.output<S>): boolean;
  run(ctx: StageContext, options: z.output<S>): Promise<StageResult>;
}

/** One split of one manifest benchmark. */
export interface BenchmarkSplit {
  benchmark: string;
  split: string;
}

/** A finished earlier stage, as `StageKind.reads` sees it. */
export interface EarlierStage {
  readonly name: string;
  readonly kind: string;
  readonly outputs: Readonly<Record<string, string>>;
}

/**
 * Declare a stage kind (checks the schema/run pairing at compile time; registers nothing).
 *
 * @example
 * ```ts
 * const countStage = defineStage({
 *   kind: "count",
 *   options: z.strictObject({ benchmark: z.string(), split: z.string().default("test") }),
 *   references: { benchmark: { section: "benchmarks", fill: true } },
 *   async run(ctx, o) {
 *     const tasks = await ctx.plugins.benchmarks.get(o.benchmark)!.plugin.tasks(o.split);
 *     return { outputs: {}, metrics: { tasks: tasks.length } };
 *   },
 * });
 * ```
 */
export function defineStage<S extends z.ZodType>(kind: StageKind<S>): StageKind<S> {
  return kind;
}

// ---------------------------------------------------------------------------------------------
// the policy factory: passed in through the run options (RunOptions.policyFactory); run/policy.ts
// holds the default

/** What the policy factory is given. */
export interface PolicyFactoryInput {
  manifest: ResolvedManifest;
  baseDir: string;
  /** Absolute path of the manifest's model (file or directory), when it names one. */
  modelPath: string | undefined;
  request: PolicyRequest;
  store: StageStore;
  signal: AbortSignal;
  /**
   * On rerun/verify of a stage that ran on an inference server: the digests of what that stage
   * recorded (`policy_responses`, `policy_tokenizer` outputs), which the server policy answers
   * from instead of calling the server.
   */
  recorded?: { responses: string; tokenizer: string };
}

/** Builds the policy a stage asks for (`ctx.policy(request)`). */
export type PolicyFactory = (input: PolicyFactoryInput) => Promise<Policy>;
