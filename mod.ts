/**
 * arpo-lab's public API for plugin authors: the tool, reward and benchmark contracts, the helpers
 * that define them, and small utilities a plugin needs. Plugins import this module only
 * (`import { defineTool, z } from "arpo-lab";`).
 *
 * @example A plugin module: its default export is the factory a `define*` helper builds
 * ```ts
 * import { defineTool, z } from "arpo-lab";
 *
 * const reverse = defineTool({
 *   description: "reverses text",
 *   options: z.object({ tag: z.string().default("reverse") }).strict(),
 *   create: (o) => ({
 *     tag: o.tag,
 *     description: "the body, reversed",
 *     deterministic: true,
 *     call: (input) => [...input].reverse().join(""),
 *   }),
 * });
 * // export default reverse;
 * ```
 *
 * @module
 */
export {
  type Benchmark,
  type BenchmarkDefinition,
  type ChatMessage,
  defineBenchmark,
  defineReward,
  defineTool,
  type Demonstration,
  type Document,
  type Plugin,
  type PluginContext,
  type PluginFactory,
  type PluginKind,
  type PluginOf,
  PluginOptionsError,
  type ResponseSegment,
  type Reward,
  type RewardDefinition,
  type RewardResult,
  type RewardSample,
  type Task,
  type Tool,
  type ToolCallContext,
  type ToolCallRecord,
  type ToolDefinition,
} from "./src/plugin/contracts.ts";
export { type KeyPart, Stream, stream } from "./src/rng.ts";
export { sha256 } from "./src/store/hash.ts";
export { canonicalJson } from "./src/store/canonical.ts";
/** zod, re-exported so plugins can declare option schemas with no other import. */
export { z } from "zod";
// Metrics, answer checking, the tag protocol and prompts (src/eval/), for rewards and benchmarks.
export { answerTokens, normalizeAnswer } from "./src/eval/normalize.ts";
export { exactMatch, type F1Parts, tokenF1, tokenF1Single } from "./src/eval/f1.ts";
export {
  type BoxedSpan,
  boxedSpans,
  extractBoxed,
  lastBoxed,
  matchBrace,
} from "./src/eval/boxed.ts";
export { mathEqual, type MathEqualOptions, normalizeMath } from "./src/eval/math_equal.ts";
export { accuracy, mean, meanF1, meanPassAtK, passAtK } from "./src/eval/metrics.ts";
export { defaultCorrect } from "./src/eval/correct.ts";
export {
  bootstrapCI,
  type BootstrapInterval,
  type BootstrapOptions,
  quantileSorted,
} from "./src/eval/bootstrap.ts";
export {
  answerSpan,
  boxedAnswer,
  checkFormat,
  finalAnswer,
  type FormatCheck,
  frameResult,
  modelText,
  neutralizeTags,
  type ResponseLike,
  toolsUsed,
} from "./src/eval/protocol.ts";
export {
  buildPrompt,
  DEFAULT_PROMPT_TOOLS,
  type PromptTool,
  promptTools,
  systemPrompt,
} from "./src/eval/prompt.ts";
export {
  type FormatOptions,
  formatSearchResults,
  LocalIndex,
  searchDocuments,
  type SearchPage,
} from "./src/eval/search_results.ts";
/** Inference-server wire formats, token in / token out (vLLM, SGLang, OpenAI completions). */
export {
  type CompletionAsk,
  completionRequest,
  parseCompletion,
  type ParsedCompletion,
  type ParsedToken,
  type ResolveToken,
  type ServerApi,
  tokenIdOf,
} from "./src/policy/server_protocol.ts";
/** User-facing error (what, where, expected vs found); the CLI prints it without a stack. */
export { ArpoError } from "./src/errors.ts";
/** Sandboxed child processes (no network, scratch cwd, clean env, rlimits), for tool plugins. */
export {
  DEFAULT_LIMITS,
  type IsolatingMechanism,
  resolveSandbox,
  runSandboxed,
  type SandboxLimits,
  type SandboxMechanism,
  type SandboxMode,
  type SandboxRequest,
  type SandboxResult,
  SandboxUnavailableError,
} from "./src/tools/sandbox.ts";
export {
  PythonWorker,
  type PythonWorkerCall,
  type PythonWorkerOptions,
  WorkerFailure,
} from "./src/tools/sandbox_worker.ts";
