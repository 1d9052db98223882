/**
 * The `policy:` section: where the model comes from. Exactly one source:
 *
 * ```yaml
 * policy:
 *   model: ./models/qwen2.5-0.5b   # a Hugging Face layout directory (config.json, *.safetensors,
 *                                  # tokenizer.json), relative to the manifest
 * ```
 * or
 * ```yaml
 * policy:
 *   init: { architecture: qwen2, hidden_size: 128, layers: 4 }   # a fresh model, built here
 * ```
 *
 * or
 * ```yaml
 * policy:
 *   server: { url: http://127.0.0.1:8000, model: qwen, tokenizer: ./models/qwen }   # vLLM & co.
 * ```
 *
 * Omitting `policy:` means `policy: { init: {} }` (the small defaults below). New sources are added
 * here by extending `policySourceShape` and the `PolicyConfig` union; `POLICY_SOURCES` follows.
 */
import { isAbsolute, resolve } from "node:path";
import { z } from "zod";

/** The most parameters a model initialized here may have (~2 GB of float32 weights). */
export const MAX_INIT_PARAMETERS = 500e6;

/** A model initialized here (random weights from the run's seed). */
export const policyInitSchema = z.strictObject({
  architecture: z.enum(["llama", "qwen2", "qwen3"]).default("qwen2")
    .describe("decoder family (sets attention bias, q/k norm and the config.json layout)"),
  // Bounds: a model initialized here is small; larger ones come from `model:` (issue 13: a
  // manifest must not be able to ask for more memory than any machine has).
  hidden_size: z.int().min(1).max(8192).default(128),
  layers: z.int().min(1).max(256).default(4),
  heads: z.int().min(1).max(256).default(4),
  kv_heads: z.int().min(1).max(256).default(4).describe(
    "key/value heads (grouped-query attention)",
  ),
  intermediate_size: z.int().min(1).max(65536).default(512),
  max_position: z.int().min(1).max(1 << 17).default(512).describe(
    "longest sequence the model handles",
  ),
  rope_theta: z.number().positive().default(10000),
  tie_embeddings: z.boolean().default(true),
  tokenizer: z.enum(["byte"]).default("byte")
    .describe("`byte`: UTF-8 bytes plus the special tokens of the tag protocol"),
  // Optional without a default: a manifest that does not set it keeps its run id.
  words: z.array(z.string().min(1)).optional().describe(
    "strings that become single tokens of the byte tokenizer (Hugging Face added tokens, not " +
      "special), matched longest first everywhere, tool output included: a fixed protocol's " +
      "tags and calls (`<python>print(`) in one token each make sequences several times shorter",
  ),
}).superRefine((v, ctx) => {
  for (const [i, w] of (v.words ?? []).entries()) {
    if (v.words!.indexOf(w) !== i) {
      ctx.addIssue({ code: "custom", path: ["words", i], message: `listed twice: "${w}"` });
    }
  }
  const params = v.layers * (4 * v.hidden_size ** 2 + 3 * v.hidden_size * v.intermediate_size);
  if (params > MAX_INIT_PARAMETERS) {
    ctx.addIssue({
      code: "custom",
      path: ["layers"],
      message:
        `a model of at most ${MAX_INIT_PARAMETERS / 1e6}M parameters (layers × (4·hidden² + ` +
        `3·hidden·intermediate)), found ${Math.round(params / 1e6)}M; load a larger model with ` +
        "`policy.model`",
    });
  }
  if (v.hidden_size % v.heads !== 0) {
    ctx.addIssue({
      code: "custom",
      path: ["hidden_size"],
      message: `a multiple of heads (${v.heads}), found ${v.hidden_size}`,
    });
  }
  if (v.heads % v.kv_heads !== 0) {
    ctx.addIssue({
      code: "custom",
      path: ["kv_heads"],
      message: `a divisor of heads (${v.heads}), found ${v.kv_heads}`,
    });
  }
  if (v.hidden_size % v.heads === 0 && (v.hidden_size / v.heads) % 2 !== 0) {
    ctx.addIssue({
      code: "custom",
      path: ["heads"],
      message: `heads giving an even head size for rotary embeddings, found head size ${
        v.hidden_size / v.heads
      }`,
    });
  }
});

export type PolicyInit = z.output<typeof policyInitSchema>;

/**
 * An OpenAI-compatible inference server holding the model (vLLM, SGLang, `arpo serve`): the
 * rollout engine sends token ids and reads token ids with log-probabilities back
 * (policy/server_policy.ts, docs/SERVERS.md).
 */
export const policyServerSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/ }).describe(
    "base URL of the server, e.g. http://127.0.0.1:8000",
  ),
  model: z.string().min(1).describe("the served model name (`/v1/models`)"),
  api: z.enum(["vllm", "sglang", "openai"]).default("vllm")
    .describe(
      "request dialect: `vllm` (/v1/completions with vLLM's token-id extras; also `arpo serve`), " +
        "`sglang` (/generate with input_ids), `openai` (plain /v1/completions fields)",
    ),
  tokenizer: z.string().min(1).optional()
    .describe(
      "directory holding the model's tokenizer.json, relative to the manifest (or `byte`); " +
        "default: the one the server publishes (`arpo serve` only)",
    ),
  top_logprobs: z.int().min(0).max(1000).default(20)
    .describe(
      "top log-probabilities asked per position (entropy is approximated from them unless the " +
        "server returns exact entropies); vLLM caps it at --max-logprobs (default 20)",
    ),
  max_concurrency: z.int().min(1).default(32).describe("requests in flight at once"),
  timeout_s: z.number().positive().default(300).describe("per-request timeout, seconds"),
  retries: z.int().min(0).default(4).describe("retries on 429, 5xx, timeouts, dropped connections"),
  headers: z.record(z.string(), z.string()).default({})
    .describe(
      "extra HTTP headers; `${env:NAME}` in a value is read from the environment when the " +
        "server is contacted (the manifest, and so the run record, keep the placeholder)",
    ),
});

export type PolicyServer = z.output<typeof policyServerSchema>;

/** The resolved policy: exactly one source. */
export type PolicyConfig = { model: string } | { init: PolicyInit } | { server: PolicyServer };

const policySourceShape = {
  model: z.string().min(1).optional()
    .describe("Hugging Face layout directory, relative to the manifest"),
  // `init:` written with nothing after it is YAML null: same as `init: {}`.
  init: z.preprocess((v) => v === null ? {} : v, policyInitSchema).optional()
    .describe("initialize a small model here"),
  server: policyServerSchema.optional()
    .describe("an OpenAI-compatible inference server (vLLM, SGLang, `arpo serve`)"),
};

/** The keys of which exactly one must be given. */
export const POLICY_SOURCES = Object.keys(policySourceShape);

export const policySchema = z.strictObject(policySourceShape).superRefine((v, ctx) => {
  const given = POLICY_SOURCES.filter((k) => (v as Record<string, unknown>)[k] !== undefined);
  if (given.length !== 1) {
    ctx.addIssue({
      code: "custom",
      path: [],
      message: `exactly one of ${POLICY_SOURCES.map((k) => `\`${k}\``).join(", ")}, found ${
        given.length ? given.map((k) => `\`${k}\``).join(" and ") : "neither"
      }`,
    });
  }
}).describe(
  "the policy model: `model:` (a directory), `init:` (a fresh model) or `server:` (an inference " +
    "server)",
);

/** Absolute directory of a `policy.model`, or undefined for an initialized policy. */
export function resolveModelDir(policy: PolicyConfig, baseDir: string): string | undefined {
  if (!("model" in policy)) return undefined;
  return isAbsolute(policy.model) ? policy.model : resolve(baseDir, policy.model);
}
