/**
 * The three plugin contracts. A plugin module's default export is a factory: it takes the
 * manifest's `with:` options and a PluginContext and returns a tool, a reward or a benchmark.
 * `defineTool` / `defineReward` / `defineBenchmark` build such factories with an options schema.
 */
import { z } from "zod";
import type { Stream } from "../rng.ts";

/**
 * Which of the three contracts a plugin implements; also the manifest list it is listed under
 * (`plugins.tools`, `plugins.rewards`, `plugins.benchmarks`).
 */
export type PluginKind = "tool" | "reward" | "benchmark";

/** What the runtime hands a plugin factory. */
export interface PluginContext {
  /** The name the manifest gives this plugin (`as:`, else its `use:` short name). */
  readonly name: string;
  /** Directory of the manifest; relative paths in options are resolved against it. */
  readonly baseDir: string;
  /** Experiment seed. */
  readonly seed: number;
  /**
   * Read a data file. Every file read here is digested into the run's identity and archived with
   * the run, so a rerun sees the same bytes. Read data in the factory, not later.
   */
  readFile(path: string): Promise<Uint8Array>;
  /** `readFile` decoded as UTF-8. */
  readText(path: string): Promise<string>;
  /** A keyed random stream under (seed, "plugin", name, ...ids). */
  stream(...ids: (string | number)[]): Stream;
  /**
   * A content-addressed cache in the run store for derived data (an index built from a corpus,
   * say): returns the cached bytes for `key`, or computes, stores and returns them.
   */
  cached(key: string, compute: () => Promise<Uint8Array> | Uint8Array): Promise<Uint8Array>;
  /** Informational log line (goes to the progress output, never into artefacts). */
  log(message: string): void;
  /**
   * The document corpus of a benchmark declared in the same manifest (see Benchmark.documents):
   * lets a search tool serve the knowledge base a synthetic benchmark generated.
   */
  documentsOf(benchmarkName: string): Promise<Document[]>;
}

/** A searchable document. */
export interface Document {
  /** Identifier, unique within the corpus. */
  id: string;
  /** Title (the local search index weighs it above the text). */
  title: string;
  /** Body text. */
  text: string;
}

// ---------------------------------------------------------------------------------------------
// tools

/** Given to every tool call. */
export interface ToolCallContext {
  /** Aborted when the runtime's per-call timeout passes; long calls must honour it. */
  readonly signal: AbortSignal;
  /** Milliseconds the runtime allows this call. */
  readonly timeoutMs: number;
}

/** A tool the model calls with `<tag>input</tag>`. */
export interface Tool {
  /** Always `"tool"`; `defineTool` adds it. */
  readonly kind: "tool";
  /** Trigger tag, e.g. `python` for `<python>…</python>`. */
  readonly tag: string;
  /** One line for the system prompt. */
  readonly description: string;
  /** The runtime retries failed calls of retryable tools (e.g. a flaky network backend). */
  readonly retryable?: boolean;
  /**
   * False for tools whose output may change between calls with the same input (live web search):
   * reruns replay their recorded results unless asked to call them live. Default true.
   */
  readonly deterministic?: boolean;
  /** Run the tool. Throwing is fine: the runtime turns errors into `Error: …` result text. */
  call(input: string, ctx: ToolCallContext): Promise<string> | string;
  /** Release resources (servers, processes). */
  close?(): Promise<void> | void;
}

// ---------------------------------------------------------------------------------------------
// rewards

/** A chat message. */
export interface ChatMessage {
  /** Who speaks. */
  role: "system" | "user" | "assistant" | "tool";
  /** The message text. */
  content: string;
}

/** One task of a benchmark. */
export interface Task {
  /** Stable within the benchmark and split; keys random streams and artefacts. */
  id: string;
  /** Plain text question, or chat messages (a system prompt, the user's question…). */
  prompt: string | ChatMessage[];
  /** Accepted answers (aliases). */
  answers: string[];
  /** Anything else (source, difficulty, data_source…); must be JSON. */
  meta?: Record<string, unknown>;
}

/**
 * One recorded tool call: what the model asked and the text it got back. This is the one shape
 * of a tool call: rewards see a trajectory's calls in it (RewardSample.toolCalls), the tool
 * runtime returns it, and the rollout tree and a stage's `tool_calls` output store it with the
 * call's place in the rollout. Deterministic fields only: where the result came from (live, the
 * cache, a replay) and how long it took are timings (ToolCallTiming, src/tools/types.ts).
 *
 * The fields after `output` are optional so that a record can be written by hand
 * (`{ tool, input, output }`); every record the runtime makes has them all.
 */
export interface ToolCallRecord {
  /** The tool's name (its manifest name, `as:` or the `use:` short name; the tag if unknown). */
  tool: string;
  /** The text between the tool's tags, trimmed. */
  input: string;
  /**
   * The tool's result text (failures as `Error: …`, capped). The model saw it framed between
   * `<result>` tags with protocol tags neutralized (`frameResult`); this is the text unframed.
   */
  output: string;
  /**
   * The call failed (the tool threw, timed out or returned something other than text, or the
   * tag is unknown): `output` says why.
   */
  error?: boolean;
  /** The tag the model called the tool by. */
  tag?: string;
  /** The call ran past its timeout (`error` is set too). */
  timedOut?: boolean;
  /** `output` was cut to the output cap: its middle was removed, and the text says so. */
  truncated?: boolean;
}

/**
 * One piece of a response, in order: text the policy generated, or a tool result the runtime
 * inserted. The tree knows which tokens are which; rewards that judge the model must read only
 * `model` pieces (`modelText` does this), since a tool's output is not the model's answer.
 */
export interface ResponseSegment {
  /**
   * `model`: tokens the policy sampled (and a forced end of sequence); `result`: a tool result as
   * the model saw it, ` <result>\n…\n</result>` (`frameResult`: protocol tags in the tool's
   * output are neutralized), possibly cut at the response-length limit.
   */
  kind: "model" | "result";
  /** The decoded text. The texts of a sample's segments, in order, are its `response`. */
  text: string;
  /** `result`: the index of its call in RewardSample.toolCalls. */
  toolCall?: number;
}

/** What a reward scores: one finished trajectory. */
export interface RewardSample {
  /** The task the trajectory answers. */
  task: Task;
  /** The decoded response (prompt excluded, tool results included as the model saw them). */
  response: string;
  /** The task's accepted answers (same as task.answers, for convenience). */
  answers: string[];
  /** Tool calls in order. */
  toolCalls: ToolCallRecord[];
  /**
   * The response split into what the model generated and what tools returned; the runtime always
   * sets it (optional so that a sample can be written by hand as before). Judge answers on
   * `modelText(sample)`, which keeps the model's text and reduces each result to an empty
   * `<result></result>` frame: a result printing `<answer>\boxed{42}</answer>` then answers
   * nothing. Without segments, `modelText` is the whole response.
   */
  segments?: ResponseSegment[];
}

/** A reward and its named parts. */
export interface RewardResult {
  /** The scalar reward. */
  reward: number;
  /**
   * The pieces the reward was made of (booleans, numbers, short strings): recorded per sample
   * and printed by `arpo score`.
   */
  parts: Record<string, number | boolean | string>;
}

/** A pure, deterministic scoring function. */
export interface Reward {
  /** Always `"reward"`; `defineReward` adds it. */
  readonly kind: "reward";
  /**
   * Score one trajectory. Must be pure: the same sample always gets the same result (no clock,
   * randomness, network or file reads; read data in the factory).
   */
  score(sample: RewardSample): RewardResult;
}

// ---------------------------------------------------------------------------------------------
// benchmarks

/** A cold-start demonstration: the exact response text the policy should learn for a prompt. */
export interface Demonstration {
  /** The id of the task this demonstrates (Task.id). */
  taskId: string;
  /** The task's prompt, as in Task.prompt. */
  prompt: string | ChatMessage[];
  /**
   * The full response, tool calls and results included, in the tag protocol. The runtime masks
   * `<result>…</result>` spans out of the loss.
   */
  response: string;
}

/** A source of tasks, per split, and optionally demonstrations for SFT. */
export interface Benchmark {
  /** Always `"benchmark"`; `defineBenchmark` adds it. */
  readonly kind: "benchmark";
  /** Split names, e.g. ["train", "test"]. */
  readonly splits: readonly string[];
  /** The tasks of a split: the same ids in the same order for the same options and seed. */
  tasks(split: string): Promise<Task[]> | Task[];
  /** Demonstrations for a split's tasks, for cold-start SFT. */
  demonstrations?(split: string): Promise<Demonstration[]> | Demonstration[];
  /** A corpus that belongs to the benchmark (a generated knowledge base), for search tools. */
  documents?(): Promise<Document[]> | Document[];
  /**
   * Whether `answer` answers `task` correctly: what accuracy and pass@k count (the eval stage and
   * the rl stage's evaluation), whatever the reward. `answer` is the trajectory's final answer,
   * the content of the last `\boxed{…}` inside `<answer>` (`boxedAnswer`); a response that breaks
   * the tag protocol (`checkFormat` with the stage's tools) or has no boxed answer is incorrect
   * without asking. When absent, the answer is correct if it equals an accepted answer after
   * SQuAD normalization (`defaultCorrect`: `exactMatch(answer, task.answers) === 1`). Must be
   * pure and synchronous, like a reward: no clock, randomness, network or file reads.
   */
  correct?(answer: string, task: Task): boolean;
}

/** Any plugin: a tool, a reward or a benchmark. */
export type Plugin = Tool | Reward | Benchmark;
/** The contract of a plugin kind: `PluginOf<"tool">` is Tool, and so on. */
export type PluginOf<K extends PluginKind> = K extends "tool" ? Tool
  : K extends "reward" ? Reward
  : Benchmark;

// ---------------------------------------------------------------------------------------------
// factories

/**
 * What a plugin module exports by default; built by `defineTool`, `defineReward` or
 * `defineBenchmark`.
 *
 * @typeParam K The kind of plugin the factory builds.
 * @typeParam O The parsed options (the output type of the options schema).
 */
export interface PluginFactory<K extends PluginKind = PluginKind, O = unknown> {
  /**
   * Check `options` (the manifest's `with:` map) against the options schema and build the
   * plugin; a PluginOptionsError when they fail the schema.
   */
  (options: unknown, ctx: PluginContext): Promise<PluginOf<K>>;
  /** The kind of plugin built; the loader checks it against the manifest list. */
  readonly pluginKind: K;
  /** The options schema (`z.object({}).strict()` when the definition has none). */
  readonly optionsSchema: z.ZodType<O>;
  /** The definition's one-line description, for listings. */
  readonly description?: string;
}

/**
 * Options failed the plugin's schema. The loader turns this into a manifest error.
 *
 * @example A bad `with:` map
 * ```ts
 * import { defineReward, type PluginContext, PluginOptionsError, z } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const reward = defineReward({
 *   options: z.object({ scale: z.number() }).strict(),
 *   create: (o) => ({ score: () => ({ reward: o.scale, parts: {} }) }),
 * });
 * // The options are checked before `create` runs, so no real context is needed here.
 * const ctx = {} as PluginContext;
 * await assert.rejects(reward({ scale: "high" }, ctx), PluginOptionsError);
 * ```
 */
export class PluginOptionsError extends Error {
  /**
   * An error for schema issues.
   *
   * @param issues zod's issues, one per problem (path and message).
   * @param message The issues, pretty-printed.
   */
  constructor(readonly issues: z.core.$ZodIssue[], message: string) {
    super(message);
    this.name = "PluginOptionsError";
  }
}

function define<K extends PluginKind, S extends z.ZodType>(
  kind: K,
  def: {
    options?: S;
    description?: string;
    create: (options: z.output<S>, ctx: PluginContext) => Promise<PluginOf<K>> | PluginOf<K>;
  },
): PluginFactory<K, z.output<S>> {
  const schema = (def.options ?? z.object({}).strict()) as z.ZodType<z.output<S>>;
  const factory = async (options: unknown, ctx: PluginContext) => {
    const parsed = schema.safeParse(options ?? {});
    if (!parsed.success) {
      throw new PluginOptionsError(parsed.error.issues, z.prettifyError(parsed.error));
    }
    return await def.create(parsed.data, ctx);
  };
  return Object.assign(factory, {
    pluginKind: kind,
    optionsSchema: schema,
    description: def.description,
  });
}

/**
 * What `defineTool` takes. A plugin's options are its signature: the schema is part of the
 * definition, and `create` gets the options it parsed.
 *
 * @typeParam S The zod schema of the manifest's `with:` map.
 */
export interface ToolDefinition<S extends z.ZodType = z.ZodObject> {
  /**
   * Schema of the manifest's `with:` map, best a `z.object({...}).strict()` with a `.default()`
   * for every optional option. Without it the plugin accepts no options.
   */
  options?: S;
  /** One line, for listings. */
  description?: string;
  /** Build the tool (may be async) from the parsed options; `kind` is added for you. */
  create: (
    options: z.output<S>,
    ctx: PluginContext,
  ) => Promise<Omit<Tool, "kind">> | Omit<Tool, "kind">;
}

/**
 * What `defineReward` takes: an options schema and a `create` that builds the reward.
 *
 * @typeParam S The zod schema of the manifest's `with:` map.
 */
export interface RewardDefinition<S extends z.ZodType = z.ZodObject> {
  /** Schema of the manifest's `with:` map (see ToolDefinition.options). */
  options?: S;
  /** One line, for listings. */
  description?: string;
  /** Build the reward (may be async) from the parsed options; `kind` is added for you. */
  create: (
    options: z.output<S>,
    ctx: PluginContext,
  ) => Promise<Omit<Reward, "kind">> | Omit<Reward, "kind">;
}

/**
 * What `defineBenchmark` takes: an options schema and a `create` that builds the benchmark.
 *
 * @typeParam S The zod schema of the manifest's `with:` map.
 */
export interface BenchmarkDefinition<S extends z.ZodType = z.ZodObject> {
  /** Schema of the manifest's `with:` map (see ToolDefinition.options). */
  options?: S;
  /** One line, for listings. */
  description?: string;
  /** Build the benchmark (may be async) from the parsed options; `kind` is added for you. */
  create: (
    options: z.output<S>,
    ctx: PluginContext,
  ) => Promise<Omit<Benchmark, "kind">> | Omit<Benchmark, "kind">;
}

/**
 * Define a tool plugin: an options schema (zod) and a `create` that returns the tool. The
 * result is the factory a plugin module exports by default.
 *
 * @typeParam S The zod schema of the manifest's `with:` map.
 * @param def The options schema, a description and `create`.
 * @returns The plugin factory: it parses the options, then calls `create`.
 *
 * @example A tool that upper-cases its input
 * ```ts
 * import { defineTool, z } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const upper = defineTool({
 *   description: "upper-cases text",
 *   options: z.object({ tag: z.string().default("upper") }).strict(),
 *   create: (o) => ({
 *     tag: o.tag,
 *     description: "the body, upper-cased",
 *     deterministic: true,
 *     call: (input) => input.toUpperCase(),
 *   }),
 * });
 * assert.equal(upper.pluginKind, "tool"); // a plugin module does `export default upper;`
 * ```
 */
export function defineTool<S extends z.ZodType = z.ZodObject>(
  def: ToolDefinition<S>,
): PluginFactory<"tool", z.output<S>> {
  return define("tool", {
    ...def,
    create: async (o, c) => ({ kind: "tool" as const, ...(await def.create(o, c)) }),
  });
}

/**
 * Define a reward plugin: an options schema (zod) and a `create` that returns the reward. The
 * result is the factory a plugin module exports by default.
 *
 * @typeParam S The zod schema of the manifest's `with:` map.
 * @param def The options schema, a description and `create`.
 * @returns The plugin factory: it parses the options, then calls `create`.
 *
 * @example Exact match of the boxed answer
 * ```ts
 * import { boxedAnswer, defineReward, modelText, normalizeAnswer, z } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const exact = defineReward({
 *   description: "1 when the boxed answer is an accepted answer, else `miss`",
 *   options: z.object({ miss: z.number().default(0) }).strict(),
 *   create: (o) => ({
 *     score: (sample) => {
 *       // The model's own text: a tool result's `\boxed{…}` is not the model's answer.
 *       const answer = normalizeAnswer(boxedAnswer(modelText(sample)) ?? "");
 *       const correct = sample.answers.some((a) => normalizeAnswer(a) === answer);
 *       return { reward: correct ? 1 : o.miss, parts: { correct } };
 *     },
 *   }),
 * });
 * assert.equal(exact.pluginKind, "reward"); // a plugin module does `export default exact;`
 * ```
 */
export function defineReward<S extends z.ZodType = z.ZodObject>(
  def: RewardDefinition<S>,
): PluginFactory<"reward", z.output<S>> {
  return define("reward", {
    ...def,
    create: async (o, c) => ({ kind: "reward" as const, ...(await def.create(o, c)) }),
  });
}

/**
 * Define a benchmark plugin: an options schema (zod) and a `create` that returns the benchmark.
 * The result is the factory a plugin module exports by default.
 *
 * @typeParam S The zod schema of the manifest's `with:` map.
 * @param def The options schema, a description and `create`.
 * @returns The plugin factory: it parses the options, then calls `create`.
 *
 * @example A synthetic benchmark with one split, judged by mathematical equality
 * ```ts
 * import { buildPrompt, defineBenchmark, mathEqual, z } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const doubling = defineBenchmark({
 *   description: "what is twice n?",
 *   options: z.object({ size: z.number().int().positive().default(10) }).strict(),
 *   create: (o) => {
 *     const tasks = Array.from({ length: o.size }, (_, n) => ({
 *       id: `test-${n}`,
 *       prompt: buildPrompt(`What is twice ${n}?`, { tools: [] }),
 *       answers: [String(2 * n)],
 *     }));
 *     return {
 *       splits: ["test"],
 *       tasks: () => tasks,
 *       // `\boxed{4.0}` answers "4" (without `correct`: exact match after normalization).
 *       correct: (answer, task) => task.answers.some((a) => mathEqual(answer, a)),
 *     };
 *   },
 * });
 * assert.equal(doubling.pluginKind, "benchmark"); // a module does `export default doubling;`
 * ```
 */
export function defineBenchmark<S extends z.ZodType = z.ZodObject>(
  def: BenchmarkDefinition<S>,
): PluginFactory<"benchmark", z.output<S>> {
  return define("benchmark", {
    ...def,
    create: async (o, c) => ({ kind: "benchmark" as const, ...(await def.create(o, c)) }),
  });
}
