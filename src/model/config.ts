/**
 * Decoder configuration parsed from a Hugging Face config.json of the Llama / Qwen2 / Qwen3
 * family. Anything the decoder graph would silently get wrong (an unknown architecture, a rope
 * scaling type, sliding-window attention, an activation other than SiLU…) is an ArpoError naming
 * the option, rather than a model that runs and produces different numbers.
 */
import { ArpoError } from "../errors.ts";

export type Architecture = "llama" | "qwen2" | "qwen3";

export type RopeScaling =
  | { type: "default" }
  | { type: "linear"; factor: number }
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  };

export interface DecoderConfig {
  architecture: Architecture;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** Fraction of head_dim that is rotated (1 = all). */
  partialRotaryFactor: number;
  ropeScaling: RopeScaling;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** Bias on q/k/v projections (Qwen2). */
  attentionBias: boolean;
  /** RMSNorm on q and k per head (Qwen3). */
  qkNorm: boolean;
  bosTokenId?: number;
  eosTokenIds: number[];
}

const ARCH_BY_MODEL_TYPE: Record<string, Architecture> = {
  llama: "llama",
  qwen2: "qwen2",
  qwen3: "qwen3",
};

const ARCH_BY_CLASS: Record<string, Architecture> = {
  LlamaForCausalLM: "llama",
  Qwen2ForCausalLM: "qwen2",
  Qwen3ForCausalLM: "qwen3",
};

/** Typed access to the fields of a config.json object; errors name the file. */
interface Fields {
  c: Record<string, unknown>;
  fail(msg: string): never;
  num(key: string, fallback?: number): number;
  int(key: string, fallback?: number): number;
}

/** Parse and validate a config.json object. `where` names the file in errors. */
export function parseHfConfig(raw: unknown, where = "config.json"): DecoderConfig {
  const f = fields(raw, where);
  const a = architecture(f);
  const { hiddenSize, numHeads, numKvHeads, headDim } = attentionShape(f);
  checkSupported(f, a);
  const { ropeTheta, ropeScaling, partial } = rope(f, headDim);
  return {
    architecture: a,
    vocabSize: f.int("vocab_size"),
    hiddenSize,
    intermediateSize: f.int("intermediate_size"),
    numLayers: f.int("num_hidden_layers"),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: f.num("rms_norm_eps", 1e-6),
    ropeTheta,
    partialRotaryFactor: partial,
    ropeScaling,
    maxPositionEmbeddings: f.int("max_position_embeddings", 4096),
    tieWordEmbeddings: f.c.tie_word_embeddings === true,
    attentionBias: a === "qwen2",
    qkNorm: a === "qwen3",
    bosTokenId: typeof f.c.bos_token_id === "number" ? f.c.bos_token_id : undefined,
    eosTokenIds: eosTokenIds(f.c.eos_token_id),
  };
}

function fields(raw: unknown, where: string): Fields {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ArpoError(`${where}: expected a JSON object`);
  }
  const c = raw as Record<string, unknown>;
  const fail = (msg: string): never => {
    throw new ArpoError(`${where}: ${msg}`);
  };
  const num = (key: string, fallback?: number): number => {
    const v = c[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      return fail(`missing required field '${key}'`);
    }
    if (typeof v !== "number" || !Number.isFinite(v)) {
      return fail(`field '${key}' must be a number, found ${JSON.stringify(v)}`);
    }
    return v;
  };
  const int = (key: string, fallback?: number): number => {
    const v = num(key, fallback);
    if (!Number.isInteger(v) || v <= 0) {
      fail(`field '${key}' must be a positive integer, found ${v}`);
    }
    return v;
  };
  return { c, fail, num, int };
}

/** model_type, or (only when it is absent) the first known class in `architectures`. */
function architecture({ c, fail }: Fields): Architecture {
  const modelType = typeof c.model_type === "string" ? c.model_type : undefined;
  const classes = Array.isArray(c.architectures) ? c.architectures.map(String) : [];
  let arch: Architecture | undefined = modelType ? ARCH_BY_MODEL_TYPE[modelType] : undefined;
  if (!arch && !modelType) arch = classes.map((k) => ARCH_BY_CLASS[k]).find((a) => a);
  if (!arch) {
    fail(
      `unsupported architecture '${modelType ?? (classes.join(", ") || "(none given)")}': ` +
        `supported model_type values are ${Object.keys(ARCH_BY_MODEL_TYPE).join(", ")}`,
    );
  }
  return arch!;
}

/** Hidden size, query and kv heads (grouped-query attention), head dim. */
function attentionShape({ c, fail, int }: Fields) {
  const hiddenSize = int("hidden_size");
  const numHeads = int("num_attention_heads");
  const numKvHeads = int("num_key_value_heads", numHeads);
  if (numHeads % numKvHeads !== 0) {
    fail(
      `num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
    );
  }
  const headDim = c.head_dim == null ? hiddenSize / numHeads : int("head_dim");
  if (!Number.isInteger(headDim)) {
    fail(`hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
  }
  return { hiddenSize, numHeads, numKvHeads, headDim };
}

/** Options the decoder graph does not build, named rather than silently ignored. */
function checkSupported({ c, fail }: Fields, a: Architecture): void {
  const act = c.hidden_act ?? c.hidden_activation ?? "silu";
  if (act !== "silu") fail(`unsupported option hidden_act='${act}' (only 'silu' is supported)`);
  if (c.mlp_bias === true) fail(`unsupported option mlp_bias=true`);
  if (c.pretraining_tp != null && c.pretraining_tp !== 1) {
    fail(`unsupported option pretraining_tp=${c.pretraining_tp} (only 1)`);
  }
  if (c.use_sliding_window === true) {
    fail(
      `unsupported option use_sliding_window=true (sliding-window attention is not implemented)`,
    );
  }
  if (Array.isArray(c.layer_types) && c.layer_types.some((t) => t !== "full_attention")) {
    fail(
      `unsupported option layer_types containing '${
        c.layer_types.find((t) => t !== "full_attention")
      }'`,
    );
  }
  if (a === "llama" && c.attention_bias === true) {
    // Llama's attention_bias also adds an o_proj bias, which this decoder does not build.
    fail(`unsupported option attention_bias=true for llama`);
  }
  if (a === "qwen3" && c.attention_bias === true) {
    fail(`unsupported option attention_bias=true for qwen3`);
  }
}

/**
 * Rope: transformers 5 writes rope_parameters {rope_type, rope_theta, ...}; older files use
 * rope_theta + rope_scaling at the top level.
 */
function rope(f: Fields, headDim: number) {
  const { c, fail, num } = f;
  const rp = (c.rope_parameters ?? c.rope_scaling ?? null) as Record<string, unknown> | null;
  if (rp !== null && (typeof rp !== "object" || Array.isArray(rp))) {
    fail(`rope_parameters/rope_scaling must be an object or null`);
  }
  const ropeTheta = typeof rp?.rope_theta === "number" ? rp.rope_theta : num("rope_theta", 10000);
  const ropeScaling = ropeScalingOf(f, rp);
  const partial = typeof rp?.partial_rotary_factor === "number"
    ? rp.partial_rotary_factor
    : num("partial_rotary_factor", 1);
  if (!(partial > 0 && partial <= 1) || (headDim * partial) % 2 !== 0) {
    fail(`partial_rotary_factor ${partial} must be in (0, 1] and give an even rotary dim`);
  }
  return { ropeTheta, ropeScaling, partial };
}

function ropeScalingOf({ fail }: Fields, rp: Record<string, unknown> | null): RopeScaling {
  const ropeType = String(rp?.rope_type ?? rp?.type ?? "default");
  const rnum = (k: string): number => {
    const v = rp?.[k];
    if (typeof v !== "number") return fail(`rope scaling '${ropeType}' needs a number '${k}'`);
    return v;
  };
  if (ropeType === "default") return { type: "default" };
  if (ropeType === "linear") return { type: "linear", factor: rnum("factor") };
  if (ropeType === "llama3") {
    return {
      type: "llama3",
      factor: rnum("factor"),
      lowFreqFactor: rnum("low_freq_factor"),
      highFreqFactor: rnum("high_freq_factor"),
      originalMaxPositionEmbeddings: rnum("original_max_position_embeddings"),
    };
  }
  return fail(`unsupported option rope type '${ropeType}' (supported: default, linear, llama3)`);
}

function eosTokenIds(eos: unknown): number[] {
  return Array.isArray(eos)
    ? eos.filter((x): x is number => typeof x === "number")
    : typeof eos === "number"
    ? [eos]
    : [];
}

/** The config.json a HF loader would accept for this decoder (for saving models trained here). */
export function toHfConfig(cfg: DecoderConfig): Record<string, unknown> {
  const cls = { llama: "LlamaForCausalLM", qwen2: "Qwen2ForCausalLM", qwen3: "Qwen3ForCausalLM" };
  const rope: Record<string, unknown> = {
    rope_type: cfg.ropeScaling.type,
    rope_theta: cfg.ropeTheta,
  };
  if (cfg.ropeScaling.type === "linear") rope.factor = cfg.ropeScaling.factor;
  if (cfg.ropeScaling.type === "llama3") {
    rope.factor = cfg.ropeScaling.factor;
    rope.low_freq_factor = cfg.ropeScaling.lowFreqFactor;
    rope.high_freq_factor = cfg.ropeScaling.highFreqFactor;
    rope.original_max_position_embeddings = cfg.ropeScaling.originalMaxPositionEmbeddings;
  }
  if (cfg.partialRotaryFactor !== 1) rope.partial_rotary_factor = cfg.partialRotaryFactor;
  return {
    architectures: [cls[cfg.architecture]],
    model_type: cfg.architecture,
    vocab_size: cfg.vocabSize,
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numLayers,
    num_attention_heads: cfg.numHeads,
    num_key_value_heads: cfg.numKvHeads,
    head_dim: cfg.headDim,
    hidden_act: "silu",
    rms_norm_eps: cfg.rmsNormEps,
    rope_theta: cfg.ropeTheta,
    rope_parameters: rope,
    max_position_embeddings: cfg.maxPositionEmbeddings,
    tie_word_embeddings: cfg.tieWordEmbeddings,
    attention_bias: cfg.attentionBias,
    bos_token_id: cfg.bosTokenId ?? null,
    eos_token_id: cfg.eosTokenIds.length === 1 ? cfg.eosTokenIds[0] : cfg.eosTokenIds,
    torch_dtype: "float32",
  };
}

/** Inverse rotary frequencies (length rotaryDim/2), including rope scaling, as HF computes them. */
export function ropeInvFreq(cfg: DecoderConfig): Float64Array {
  const dim = Math.round(cfg.headDim * cfg.partialRotaryFactor);
  const out = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    // HF computes base ** (arange(0, dim, 2).float() / dim) in float32.
    out[i] = 1 / Math.fround(Math.pow(cfg.ropeTheta, Math.fround((2 * i) / dim)));
  }
  const s = cfg.ropeScaling;
  if (s.type === "linear") { for (let i = 0; i < out.length; i++) out[i] /= s.factor; }
  if (s.type === "llama3") {
    const lowWl = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWl = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < out.length; i++) {
      const wl = (2 * Math.PI) / out[i];
      const f = out[i];
      if (wl > lowWl) out[i] = f / s.factor;
      else if (wl >= highWl) {
        const smooth = (s.originalMaxPositionEmbeddings / wl - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor);
        out[i] = (1 - smooth) * (f / s.factor) + smooth * f;
      }
    }
  }
  return out;
}

/** Parameter count (for reporting). */
export function parameterCount(cfg: DecoderConfig): number {
  const d = cfg.hiddenSize, hd = cfg.headDim;
  const q = cfg.numHeads * hd, kv = cfg.numKvHeads * hd;
  let layer = d * q + 2 * d * kv + q * d + 3 * d * cfg.intermediateSize + 2 * d;
  if (cfg.attentionBias) layer += q + 2 * kv;
  if (cfg.qkNorm) layer += 2 * hd;
  return cfg.vocabSize * d * (cfg.tieWordEmbeddings ? 1 : 2) + cfg.numLayers * layer + d;
}
