/**
 * The manifest's `policy:` section → a running Policy: a model directory (Hugging Face layout) or a
 * model initialized here from the run's seed with the byte tokenizer.
 */
import { join } from "node:path";
import { ArpoError } from "../errors.ts";
import { type PolicyConfig, type PolicyInit, resolveModelDir } from "../manifest/policy.ts";
import type { DecoderConfig } from "../model/config.ts";
import { readGenerationConfig } from "../model/generation_config.ts";
import {
  type DecoderModel,
  hasTokenizer,
  initModel,
  loadModelDir,
  MODEL_FILES,
  readModelConfig,
} from "../model/load.ts";
import { defaultReadFile, type ReadFile } from "../model/safetensors.ts";
import { loadTokenizer, type Tokenizer, type TokenizerLike } from "../model/tokenizer.ts";
import { TokenIdsOnly } from "../model/tokenizer_ids.ts";
import type { Device } from "../onnx/session.ts";
import { OnnxPolicy } from "./onnx_policy.ts";

export interface LoadPolicyOptions {
  /** Directory that relative `policy.model` paths are resolved against (the manifest's). */
  baseDir: string;
  threads?: number;
  device?: Device;
  /** Reads every model file; lets the runner track and archive what the policy depends on. */
  readFile?: ReadFile;
  /** Seed for `init:` policies (the run's seed). Default 0. */
  seed?: number | string;
  onFallback?: (message: string) => void;
  /**
   * "optional": a `policy.model` directory without tokenizer.json loads with token ids only
   * (TokenIdsOnly, which refuses text), for uses that involve no text (training on token data).
   * Default "required": such a directory is refused before its weights are read.
   */
  tokenizer?: "required" | "optional";
  /**
   * The session takes the memory of the weights it was loaded for (RuntimeOptions
   * .consumeWeights): a load peaks at 2.2–2.6× the weights instead of 3.2–3.6× and keeps
   * 1.2–1.6×, and the policy's `model.weights` is empty. For callers that only generate and score.
   */
  consumeWeights?: boolean;
}

/** The tokenizer files a model directory lacks (empty: it has them). */
export async function missingTokenizerFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const f of MODEL_FILES.filter((f) => f !== "config.json")) {
    try {
      if ((await Deno.stat(join(dir, f))).isFile) continue;
    } catch { /* missing */ }
    out.push(f);
  }
  return out;
}

/**
 * The tokenizer of an `init:` policy: the byte tokenizer, with the manifest's `words` as single
 * tokens.
 *
 * @example
 * ```ts
 * const tok = await initTokenizer({ words: ["<python>print("] });
 * // tok.encode("<python>print(1)").length === 3
 * ```
 */
export async function initTokenizer(init: Pick<PolicyInit, "words">): Promise<Tokenizer> {
  return await loadTokenizer(init.words?.length ? { words: init.words } : {});
}

/** The decoder config for an `init:` policy with this tokenizer. */
export function initConfig(init: PolicyInit, tokenizer: Tokenizer): DecoderConfig {
  const headDim = init.hidden_size / init.heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new ArpoError(
      `policy.init: hidden_size ${init.hidden_size} / heads ${init.heads} must be an even integer`,
    );
  }
  return {
    architecture: init.architecture,
    vocabSize: tokenizer.vocabSize,
    hiddenSize: init.hidden_size,
    intermediateSize: init.intermediate_size,
    numLayers: init.layers,
    numHeads: init.heads,
    numKvHeads: init.kv_heads,
    headDim,
    rmsNormEps: 1e-6,
    ropeTheta: init.rope_theta,
    partialRotaryFactor: 1,
    ropeScaling: { type: "default" },
    maxPositionEmbeddings: init.max_position,
    tieWordEmbeddings: init.tie_embeddings,
    attentionBias: init.architecture === "qwen2",
    qkNorm: init.architecture === "qwen3",
    bosTokenId: tokenizer.bosTokenId,
    eosTokenIds: [...tokenizer.eosTokenIds],
  };
}

/** Where a policy's files are read from: the manifest's directory, a reader, the init seed. */
export interface PolicyModelOptions {
  baseDir: string;
  readFile?: ReadFile;
  seed?: number | string;
  /** The model goes to a session that consumes its weights (sizes the memory check). */
  consumeWeights?: boolean;
}

/**
 * The architecture and tokenizer a `policy:` section describes, without its weights (for weights
 * that come from elsewhere: a training checkpoint); `tokenizer` as in loadPolicyModel.
 */
export async function loadPolicyArchitecture(
  config: PolicyConfig,
  opts: PolicyModelOptions & { tokenizer?: "required" | "optional" },
): Promise<{ config: DecoderConfig; tokenizer: TokenizerLike; dir?: string }> {
  const dir = resolveModelDir(config, opts.baseDir);
  if (dir !== undefined) {
    const readFile = opts.readFile ?? defaultReadFile;
    const idsOnly = opts.tokenizer === "optional" && !(await hasTokenizer(dir));
    const c = await readModelConfig(dir, { readFile, requireTokenizer: !idsOnly });
    if (idsOnly) {
      // EOS as `model generate` takes it without a tokenizer: config.json and generation_config.
      const gen = await readGenerationConfig(dir);
      const eos = [...new Set([...c.eosTokenIds, ...(gen.eosTokenIds ?? [])])];
      return { config: c, tokenizer: new TokenIdsOnly(c.vocabSize, eos, dir, c.bosTokenId), dir };
    }
    // The tokenizer reads its own files; pass them through readFile too so they are tracked.
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
      if (opts.readFile) await readFile(join(dir, f));
    }
    return { config: c, tokenizer: await loadTokenizer(dir), dir };
  }
  if (!("init" in config)) throw new ArpoError(`policy: neither 'model' nor 'init' is given`);
  const tokenizer = await initTokenizer(config.init);
  return { config: initConfig(config.init, tokenizer), tokenizer };
}

/**
 * The in-memory model and tokenizer a `policy:` section describes (no session yet); with
 * `tokenizer: "optional"`, a directory without tokenizer.json gives token ids only.
 */
export async function loadPolicyModel(
  config: PolicyConfig,
  opts: PolicyModelOptions & { tokenizer: "optional" },
): Promise<{ model: DecoderModel; tokenizer: TokenizerLike }>;
export async function loadPolicyModel(
  config: PolicyConfig,
  opts: PolicyModelOptions & { tokenizer?: "required" },
): Promise<{ model: DecoderModel; tokenizer: Tokenizer }>;
export async function loadPolicyModel(
  config: PolicyConfig,
  opts: PolicyModelOptions & { tokenizer?: "required" | "optional" },
): Promise<{ model: DecoderModel; tokenizer: TokenizerLike }> {
  const arch = await loadPolicyArchitecture(config, opts);
  const model = arch.dir !== undefined
    ? await loadModelDir(arch.dir, {
      readFile: opts.readFile,
      config: arch.config,
      consumeWeights: opts.consumeWeights,
    })
    : initModel(arch.config, opts.seed ?? 0);
  return { model, tokenizer: arch.tokenizer };
}

export async function loadPolicy(
  config: PolicyConfig,
  opts: LoadPolicyOptions,
): Promise<OnnxPolicy> {
  const { model, tokenizer } = opts.tokenizer === "optional"
    ? await loadPolicyModel(config, { ...opts, tokenizer: "optional" })
    : await loadPolicyModel(config, { ...opts, tokenizer: "required" });
  return await OnnxPolicy.create(model, tokenizer, {
    threads: opts.threads,
    device: opts.device,
    onFallback: opts.onFallback,
    consumeWeights: opts.consumeWeights,
  });
}
