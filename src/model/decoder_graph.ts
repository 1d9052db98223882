/**
 * The decoder as an ONNX graph (Llama / Qwen2 / Qwen3), with an external KV cache.
 *
 * Inputs (B rows, T new tokens per row, P cached slots per row):
 *   input_ids      int64   [B, T]
 *   position_ids   int64   [B, T]
 *   attention_bias float32 [B, 1, 1, T, P+T]  additive: 0 where a query may attend, -1e9 elsewhere
 *                                             (past slots beyond a row's length, future tokens,
 *                                             padding)
 *   logits_at      int64   [N]               flat indices into the B*T new positions whose logits
 *                                             are returned
 *   past_key_<i>   float32 [B, kvH, P, hd]   keys of layer i (Q·Kᵀ is a Transpose + MatMul, which
 *                                             ORT fuses into one FusedMatMul with transB: no copy)
 *   past_value_<i> float32 [B, kvH, P, hd]
 * Outputs:
 *   logits         float32 [N, V]
 *   with `samplingHead` also, from an input inv_temperature float32 [N] (1/T per selected row):
 *   probs          float32 [N, V]   softmax(logits / T)
 *   log_z          float32 [N]      logsumexp(logits / T)
 *   entropy        float32 [N]      entropy of probs (nats)
 *   target_logprob float32 [N]      log probs[target_ids] (input target_ids int64 [N]), for
 *                                   teacher-forced scoring without fetching [N, V]
 *   sampled_id     int64   [N]      inverse-CDF draw from probs with input uniform float32 [N]
 *   sampled_logprob float32 [N]
 *   argmax_id      int64   [N]      greedy choice (first maximum of the logits)
 *   argmax_logprob float32 [N]
 *   so the per-token vocabulary-wide work runs vectorized in ORT, not in JS. A caller fetches only
 *   the outputs it needs.
 *   new_key_<i>    float32 [B, kvH, T, hd]   keys/values of the T new tokens only: the caller owns
 *   new_value_<i>  float32 [B, kvH, T, hd]   the cache and appends them (no full-cache copy per step)
 *
 * Attention splits scores into a past part and a new part and concatenates only the (small) score
 * matrices, never the cache. Grouped-query attention reshapes queries to [B, kvH, g·T, hd] so the
 * kv heads are never repeated.
 *
 * Weights come either as initializers (inference: linear weights pre-transposed to [in, out], q/k/v
 * and gate/up fused into one MatMul each) or as graph inputs under their Hugging Face names and
 * layouts (training: gradients come out in HF layout).
 */
import { attr, Graph, type Value } from "../onnx/graph.ts";
import * as op from "../onnx/ops.ts";
import { type DecoderConfig, ropeInvFreq } from "./config.ts";
import type { F32Tensor, TensorMap } from "./safetensors.ts";
import { EMBED, expectedShapes, FINAL_NORM, layerNames, LM_HEAD } from "./weights.ts";

export const MASK_NEG = -1e9;

export interface DecoderGraphOptions {
  /** "initializers" (default): weights baked in; "inputs": weights are graph inputs (HF names). */
  weights?: "initializers" | "inputs";
  /** Omit the KV-cache inputs/outputs (a plain forward over T tokens, P = 0). */
  noCache?: boolean;
  /** Add the inv_temperature input and the probs / log_z / entropy outputs. */
  samplingHead?: boolean;
}

export interface DecoderGraph {
  graph: Graph;
  /** Weight inputs by HF name (weights: "inputs" only). */
  weightInputs: Map<string, Value>;
  inputIds: Value;
  positionIds: Value;
  attentionBias: Value;
  logitsAt: Value;
  pastKeys: Value[];
  pastValues: Value[];
  logits: Value;
  newKeys: Value[];
  newValues: Value[];
}

function transposed(t: F32Tensor): F32Tensor {
  const [r, c] = t.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  }
  return { shape: [c, r], data: out };
}

/** [out_i, in] HF linear weights → one [in, Σout_i] matrix. */
function fusedTransposed(ts: F32Tensor[]): F32Tensor {
  const inDim = ts[0].shape[1];
  const total = ts.reduce((a, t) => a + t.shape[0], 0);
  const out = new Float32Array(inDim * total);
  let col = 0;
  for (const t of ts) {
    const rows = t.shape[0];
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < inDim; j++) out[j * total + col + i] = t.data[i * inDim + j];
    }
    col += rows;
  }
  return { shape: [inDim, total], data: out };
}

function concat1d(ts: F32Tensor[]): F32Tensor {
  const n = ts.reduce((a, t) => a + t.data.length, 0);
  const out = new Float32Array(n);
  let p = 0;
  for (const t of ts) {
    out.set(t.data, p);
    p += t.data.length;
  }
  return { shape: [n], data: out };
}

/** Weight access shared by every part of the graph. */
interface Weights {
  /** Raw HF-layout weight: a graph input (inputs mode) or an initializer, created on first use. */
  raw(name: string): Value;
  /** x @ Wᵀ (+ b) for HF linear weights [out, in], one output per weight. */
  linear(x: Value, names: string[], biasNames?: string[]): Value[];
  /** Initializers only: the one stored [in, out] (transposed) matrix of `linear([name])`. */
  transposedWeight(name: string): Value;
}

/** What the parts of the decoder share while the graph is built. */
interface Ctx extends Weights {
  g: Graph;
  cfg: DecoderConfig;
  mode: "initializers" | "inputs";
}

/** Rotary tables from positions ([B, T, 1, rot]) and the rotated width. */
interface Rotary {
  cos: Value;
  sin: Value;
  rot: number;
}

/** The external KV cache's graph inputs and outputs, filled layer by layer. */
interface KvCache {
  pastKeys: Value[];
  pastValues: Value[];
  newKeys: Value[];
  newValues: Value[];
}

/**
 * The decoder, top to bottom: token embedding, `numLayers` blocks (attention + MLP), then the
 * final norm and LM head at the selected positions, and optionally the sampling head.
 */
export function buildDecoderGraph(
  cfg: DecoderConfig,
  weights: TensorMap | null,
  opts: DecoderGraphOptions = {},
): DecoderGraph {
  const mode = opts.weights ?? "initializers";
  if (mode === "initializers" && !weights) throw new Error("initializer mode needs weights");
  const g = new Graph(`${cfg.architecture}_decoder`);
  const weightInputs = new Map<string, Value>();
  const ctx: Ctx = { g, cfg, mode, ...weightAccess(g, cfg, weights, mode, weightInputs) };

  const inputIds = g.input("input_ids", "int64", ["batch", "new"]);
  const positionIds = g.input("position_ids", "int64", ["batch", "new"]);
  const attentionBias = g.input("attention_bias", "float32", ["batch", 1, 1, "new", "total"]);
  const logitsAt = g.input("logits_at", "int64", ["selected"]);
  // The rotary tables come before the embedding: node and initializer order is serialized.
  const rope = rotaryTables(g, cfg, positionIds);

  const kv: KvCache = { pastKeys: [], pastValues: [], newKeys: [], newValues: [] };
  let h = embed(ctx, inputIds); // token embedding [B, T, d]
  for (let i = 0; i < cfg.numLayers; i++) {
    h = block(ctx, i, h, rope, attentionBias, opts.noCache ? null : kv);
  }
  const logits = lmHead(ctx, h, logitsAt);
  g.output(logits, "logits");
  if (opts.samplingHead) samplingHead(g, cfg, logits);
  const { pastKeys, pastValues, newKeys, newValues } = kv;
  return {
    graph: g,
    weightInputs,
    inputIds,
    positionIds,
    attentionBias,
    logitsAt,
    pastKeys,
    pastValues,
    logits,
    newKeys,
    newValues,
  };
}

/**
 * Weights as graph inputs under their HF names and layouts ("inputs"), or as initializers with
 * linear weights pre-transposed and fused ("initializers"). Each weight is created once.
 */
function weightAccess(
  g: Graph,
  cfg: DecoderConfig,
  weights: TensorMap | null,
  mode: "initializers" | "inputs",
  weightInputs: Map<string, Value>,
): Weights {
  const shapes = expectedShapes(cfg);
  const cache = new Map<string, Value>();
  const once = (key: string, make: () => Value): Value => {
    let v = cache.get(key);
    if (!v) cache.set(key, v = make());
    return v;
  };
  const raw = (name: string): Value =>
    once(`raw:${name}`, () => {
      if (mode === "inputs") {
        const v = g.input(name, "float32", shapes.get(name)!);
        weightInputs.set(name, v);
        return v;
      }
      const t = weights!.get(name)!;
      return g.initializer(name, { dtype: "float32", dims: t.shape, data: t.data });
    });
  /** The pre-transposed [in, Σout] initializer of one or several fused linear weights. */
  const matrix = (names: string[]): Value =>
    once(names.join("+"), () => {
      const ts = names.map((n) => weights!.get(n)!);
      const t = names.length === 1 ? transposed(ts[0]) : fusedTransposed(ts);
      return g.constant({ dtype: "float32", dims: t.shape, data: t.data }, `${names[0]}.T`);
    });
  /** In initializer mode several weights (and their biases) fuse into one MatMul (and one Add). */
  const linear = (x: Value, names: string[], biasNames?: string[]): Value[] => {
    if (mode === "inputs") {
      return names.map((n, i) => {
        const y = op.matmul(x, op.transpose(raw(n), [1, 0]));
        return biasNames ? op.add(y, raw(biasNames[i])) : y;
      });
    }
    let y = op.matmul(x, matrix(names));
    if (biasNames) {
      const b = once(biasNames.join("+"), () => {
        const t = concat1d(biasNames.map((n) => weights!.get(n)!));
        return g.constant({ dtype: "float32", dims: t.shape, data: t.data }, `${biasNames[0]}+`);
      });
      y = op.add(y, b);
    }
    if (names.length === 1) return [y];
    return op.split(y, names.map((n) => shapes.get(n)![0]), -1);
  };
  return { raw, linear, transposedWeight: (name) => matrix([name]) };
}

/**
 * Token embedding [B, T, d]. A tied table is stored once, as the LM head's [d, V] matrix: the
 * lookup gathers its columns and transposes them (exact copies, so the values are those of a
 * row gather), instead of a second [V, d] initializer.
 */
function embed(ctx: Ctx, inputIds: Value): Value {
  if (ctx.mode === "inputs" || !ctx.cfg.tieWordEmbeddings) {
    return op.gather(ctx.raw(EMBED), inputIds, 0);
  }
  const cols = op.gather(ctx.transposedWeight(EMBED), inputIds, 1); // [d, B, T]
  return op.transpose(cols, [1, 2, 0]);
}

function rmsNorm(cfg: DecoderConfig, x: Value, w: Value): Value {
  // The Pow→ReduceMean→Add→Sqrt→Div pattern is what ORT fuses into SimplifiedLayerNorm.
  const ms = op.reduceMean(op.pow(x, 2), [-1]);
  return op.mul(op.div(x, op.sqrt(op.add(ms, cfg.rmsNormEps))), w);
}

/** cos/sin tables of the rotary embedding from position ids: [B, T, 1, rot]. */
function rotaryTables(g: Graph, cfg: DecoderConfig, positionIds: Value): Rotary {
  const invFreq = ropeInvFreq(cfg);
  const freqs = op.mul(
    op.unsqueeze(op.cast(positionIds, "float32"), [2]),
    g.constant(
      { dtype: "float32", dims: [invFreq.length], data: Float32Array.from(invFreq) },
      "inv_freq",
    ),
  );
  const emb = op.concat([freqs, freqs], -1);
  const cos = op.unsqueeze(op.cos(emb), [2]);
  const sin = op.unsqueeze(op.sin(emb), [2]);
  return { cos, sin, rot: invFreq.length * 2 };
}

/** x: [B, T, heads, hd]. rotate_half on the first `rot` dims; the rest pass through. */
function applyRope(x: Value, r: Rotary, hd: number): Value {
  const { rot } = r;
  const xr = rot === hd ? x : op.slice(x, [0], [rot], [3]);
  const x1 = op.slice(xr, [0], [rot / 2], [3]);
  const x2 = op.slice(xr, [rot / 2], [rot], [3]);
  const rotated = op.concat([op.neg(x2), x1], -1);
  const y = op.add(op.mul(xr, r.cos), op.mul(rotated, r.sin));
  return rot === hd ? y : op.concat([y, op.slice(x, [rot], [hd], [3])], -1);
}

/** One pre-norm decoder layer: h + attention(norm(h)), then h + mlp(norm(h)). */
function block(
  ctx: Ctx,
  i: number,
  h: Value,
  rope: Rotary,
  attentionBias: Value,
  kv: KvCache | null,
): Value {
  const n = layerNames(i);
  const a = attention(ctx, i, rmsNorm(ctx.cfg, h, ctx.raw(n.inputNorm)), rope, attentionBias, kv);
  h = op.add(h, a.out);
  h = op.add(h, mlp(ctx, i, rmsNorm(ctx.cfg, h, ctx.raw(n.postNorm))));
  if (kv) {
    kv.newKeys.push(ctx.g.output(a.kNew, `new_key_${i}`));
    kv.newValues.push(ctx.g.output(a.vNew, `new_value_${i}`));
  }
  return h;
}

/** SwiGLU: down(silu(gate(x)) · up(x)). */
function mlp(ctx: Ctx, i: number, x: Value): Value {
  const n = layerNames(i);
  const [gate, up] = ctx.linear(x, [n.gate, n.up]);
  return ctx.linear(op.mul(op.mul(gate, op.sigmoid(gate)), up), [n.down])[0];
}

/**
 * Causal self-attention of layer i over the cached and the new tokens. Returns the output
 * projection and the new tokens' keys/values ([B, kvH, T, hd]) for the cache.
 */
function attention(
  ctx: Ctx,
  i: number,
  x: Value,
  rope: Rotary,
  attentionBias: Value,
  kv: KvCache | null,
): { out: Value; kNew: Value; vNew: Value } {
  const { cfg } = ctx, hd = cfg.headDim;
  const n = layerNames(i);
  const { q, k, v } = qkvHeads(ctx, i, x);
  const qr = op.mul(applyRope(q, rope, hd), 1 / Math.sqrt(hd));
  const kr = applyRope(k, rope, hd);
  const qg = groupQueries(cfg, qr); // [B, kvH, g·T, hd]
  const kNew = op.transpose(kr, [0, 2, 1, 3]); // [B, kvH, T, hd]
  const vNew = op.transpose(v, [0, 2, 1, 3]); // [B, kvH, T, hd]
  const past = kv ? pastInputs(ctx, i, kv) : null;
  const probs = attentionProbs(ctx, qg, kNew, past, attentionBias);
  const y = past ? pastAndNewContext(ctx, probs, past, vNew) : op.matmul(probs, vNew);
  return { out: ctx.linear(mergeHeads(cfg, y), [n.o])[0], kNew, vNew };
}

/** q [B, T, H, hd], k and v [B, T, kvH, hd], with the per-head q/k norm where the model has one. */
function qkvHeads(ctx: Ctx, i: number, x: Value): { q: Value; k: Value; v: Value } {
  const { cfg } = ctx, hd = cfg.headDim;
  const n = layerNames(i);
  const [q, k, v] = ctx.linear(
    x,
    [n.q, n.k, n.v],
    cfg.attentionBias ? [n.qBias, n.kBias, n.vBias] : undefined,
  );
  let q4 = op.reshape(q, [0, 0, cfg.numHeads, hd]);
  let k4 = op.reshape(k, [0, 0, cfg.numKvHeads, hd]);
  const v4 = op.reshape(v, [0, 0, cfg.numKvHeads, hd]);
  if (cfg.qkNorm) {
    q4 = rmsNorm(cfg, q4, ctx.raw(n.qNorm));
    k4 = rmsNorm(cfg, k4, ctx.raw(n.kNorm));
  }
  return { q: q4, k: k4, v: v4 };
}

/** Queries grouped by kv head: [B, T, kvH, g, hd] → [B, kvH, g, T, hd] → [B, kvH, g·T, hd]. */
function groupQueries(cfg: DecoderConfig, q: Value): Value {
  const kvH = cfg.numKvHeads, grp = cfg.numHeads / kvH, hd = cfg.headDim;
  return op.reshape(
    op.transpose(op.reshape(q, [0, 0, kvH, grp, hd]), [0, 2, 3, 1, 4]),
    [0, kvH, -1, hd],
  );
}

/** [B, kvH, g·T, hd] → [B, T, H·hd]. */
function mergeHeads(cfg: DecoderConfig, y: Value): Value {
  const kvH = cfg.numKvHeads, grp = cfg.numHeads / kvH, hd = cfg.headDim;
  return op.reshape(
    op.transpose(op.reshape(y, [0, kvH, grp, -1, hd]), [0, 3, 1, 2, 4]),
    [0, 0, cfg.numHeads * hd],
  );
}

/** The cached keys and values of layer i: graph inputs [B, kvH, P, hd]. */
function pastInputs(ctx: Ctx, i: number, kv: KvCache): { k: Value; v: Value } {
  const kvH = ctx.cfg.numKvHeads, hd = ctx.cfg.headDim;
  const k = ctx.g.input(`past_key_${i}`, "float32", ["batch", kvH, "past", hd]);
  const v = ctx.g.input(`past_value_${i}`, "float32", ["batch", kvH, "past", hd]);
  kv.pastKeys.push(k);
  kv.pastValues.push(v);
  return { k, v };
}

/** softmax(Q·Kᵀ + bias) over past and new keys: [B, kvH, g·T, P+T]. */
function attentionProbs(
  ctx: Ctx,
  qg: Value,
  kNew: Value,
  past: { k: Value } | null,
  attentionBias: Value,
): Value {
  const grp = ctx.cfg.numHeads / ctx.cfg.numKvHeads;
  const kT = (k: Value) => op.transpose(k, [0, 1, 3, 2]);
  const scores = past
    ? op.concat([op.matmul(qg, kT(past.k)), op.matmul(qg, kT(kNew))], -1) // [B, kvH, g·T, P+T]
    : op.matmul(qg, kT(kNew));
  // [B, kvH, g·T, S] → [B, kvH, g, T, S] to add the [B, 1, 1, T, S] bias, and back.
  const sShape = op.shapeOf(scores);
  const s5Shape = op.concat([
    op.shapeOf(scores, 0, 2),
    ctx.g.ints([grp, -1]),
    op.shapeOf(scores, 3, 4),
  ], 0);
  const s5 = op.reshape(scores, s5Shape);
  return op.reshape(op.softmax(op.add(s5, attentionBias), -1), sShape);
}

/** probs · V with the probabilities split at P (a runtime size): the cache is never copied. */
function pastAndNewContext(
  ctx: Ctx,
  probs: Value,
  past: { k: Value; v: Value },
  vNew: Value,
): Value {
  const { g } = ctx, kvH = ctx.cfg.numKvHeads;
  const pLen = op.shapeOf(past.k, 2, 3);
  const big = g.ints([2 ** 62]);
  const zero = g.ints([0]);
  const axis = g.ints([3]);
  const pPast = g.node("Slice", [probs, zero, pLen, axis], [{
    dtype: "float32",
    shape: ["batch", kvH, "?", "past"],
  }])[0];
  const pNew = g.node("Slice", [probs, pLen, big, axis], [{
    dtype: "float32",
    shape: ["batch", kvH, "?", "new"],
  }])[0];
  return op.add(op.matmul(pPast, past.v), op.matmul(pNew, vNew)); // [B, kvH, g·T, hd]
}

/** Only the selected positions go through the final norm and the LM head: logits [N, V]. */
function lmHead(ctx: Ctx, h: Value, logitsAt: Value): Value {
  const flat = op.reshape(h, [-1, ctx.cfg.hiddenSize]);
  const sel = op.gather(flat, logitsAt, 0); // [N, d]
  const normed = rmsNorm(ctx.cfg, sel, ctx.raw(FINAL_NORM));
  if (!ctx.cfg.tieWordEmbeddings) return ctx.linear(normed, [LM_HEAD])[0];
  return ctx.mode === "inputs"
    ? op.matmul(normed, op.transpose(ctx.raw(EMBED), [1, 0]))
    : ctx.linear(normed, [EMBED])[0];
}

/**
 * From logits and inv_temperature: probs, log_z, entropy, target_logprob, an inverse-CDF
 * sample and the greedy choice, with their log-probabilities (see the module comment).
 */
function samplingHead(g: Graph, cfg: DecoderConfig, logits: Value): void {
  const invT = g.input("inv_temperature", "float32", ["selected"]);
  const z = op.mul(logits, op.unsqueeze(invT, [1]));
  const logp = op.logSoftmax(z, -1);
  const probs = op.exp(logp);
  g.output(probs, "probs");
  g.output(op.reduceLogSumExp(z, [-1], false), "log_z");
  g.output(op.neg(op.reduceSum(op.mul(probs, logp), [-1], false)), "entropy");
  const pick = (ids: Value) => op.squeeze(op.gatherElements(logp, op.unsqueeze(ids, [1]), 1), [1]);
  const targets = g.input("target_ids", "int64", ["selected"]);
  g.output(pick(targets), "target_logprob");
  const sampled = inverseCdfSample(g, cfg, probs);
  g.output(sampled, "sampled_id");
  g.output(pick(sampled), "sampled_logprob");
  const argmax = g.node("ArgMax", [logits], [{ dtype: "int64", shape: ["selected"] }], {
    axis: attr.int(1),
    keepdims: attr.int(0),
  })[0];
  g.output(argmax, "argmax_id");
  g.output(pick(argmax), "argmax_logprob");
}

/**
 * Inverse-CDF sampling with one uniform per row (input `uniform`): the first id whose cumulative
 * probability exceeds u · total. Row-wise, so a row's draw does not depend on the other rows.
 */
function inverseCdfSample(g: Graph, cfg: DecoderConfig, probs: Value): Value {
  const u = g.input("uniform", "float32", ["selected"]);
  const cdf = g.node("CumSum", [
    probs,
    g.constant({ dtype: "int64", dims: [], data: new BigInt64Array([1n]) }, "axis"),
  ], [{
    dtype: "float32",
    shape: probs.shape,
  }])[0];
  const total = op.slice(cdf, [-1], [2 ** 62], [1]); // [N, 1]
  const below = op.cast(op.not(op.greater(cdf, op.mul(op.unsqueeze(u, [1]), total))), "float32");
  const count = op.reduceSum(below, [1], false);
  return op.cast(op.min(count, cfg.vocabSize - 1), "int64");
}
