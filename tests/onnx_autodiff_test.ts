/**
 * Finite-difference checks of every vector-Jacobian rule and of whole decoders (GQA, tied
 * embeddings, Qwen2 biases, Qwen3 q/k norms). Each check builds y = f(inputs), a scalar
 * loss = Σ y·R with a fixed random cotangent R, and compares the graph's gradients with central
 * differences of the loss (float32 runs, compared in float64).
 */
import { centralDifference } from "./fixtures/finite_difference.ts";
import assert from "node:assert/strict";
import { Graph, type Value } from "../src/onnx/graph.ts";
import * as op from "../src/onnx/ops.ts";
import { gradients } from "../src/onnx/autodiff.ts";
import { createSession, ort } from "../src/onnx/session.ts";
import { Stream } from "../src/rng.ts";
import { parseHfConfig } from "../src/model/config.ts";
import { buildDecoderGraph } from "../src/model/decoder_graph.ts";
import { initWeights } from "../src/model/weights.ts";

interface In {
  name: string;
  shape: number[];
  /** Default: standard normal. */
  data?: Float32Array;
  /** Not differentiated (e.g. masks); still fed. */
  fixed?: boolean;
  dtype?: "float32" | "int64" | "bool";
  ints?: number[];
}

function randn(n: number, key: string, scale = 1): Float32Array {
  const s = new Stream(["autodiff-test", key]);
  return Float32Array.from({ length: n }, () => scale * s.normal());
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Build f, append the backward pass and compare against central differences on `probes`
 * coordinates per differentiated input.
 */
async function gradCheck(
  label: string,
  ins: In[],
  f: (g: Graph, xs: Value[]) => Value,
  opts: { h?: number; rtol?: number; atol?: number; probes?: number } = {},
) {
  const h = opts.h ?? 1e-2, rtol = opts.rtol ?? 2e-2, atol = opts.atol ?? 2e-3;
  const g = new Graph(label);
  const xs = ins.map((i) =>
    g.input(
      i.name,
      i.dtype ?? "float32",
      i.shape,
    )
  );
  const y = f(g, xs);
  const yShape = y.shape && y.shape.every((d) => typeof d === "number")
    ? y.shape as number[]
    : null;
  let loss: Value;
  if (yShape) {
    const r = g.constant({
      dtype: "float32",
      dims: yShape,
      data: randn(size(yShape), label + "R"),
    });
    loss = op.reduceSum(op.mul(y, r), [...Array(yShape.length).keys()], false);
  } else {
    loss = op.reduceSum(op.mul(y, op.sin(op.mul(y, 3))), [], false);
  }
  if (loss.shape?.length !== 0) loss = op.reshape(loss, []);
  const diff = xs.filter((_, k) => !ins[k].fixed && (ins[k].dtype ?? "float32") === "float32");
  const grads = gradients(g, loss, diff);
  g.output(loss, "loss");
  grads.forEach((gv, k) => g.output(gv, `grad_${k}`));
  const sess = await createSession(g, { threads: 1 });
  const feeds: Record<string, ort.Tensor> = {};
  const datas = ins.map((i) => {
    if (i.dtype === "int64") {
      const t = new ort.Tensor("int64", BigInt64Array.from(i.ints!, BigInt), i.shape);
      feeds[i.name] = t;
      return null;
    }
    if (i.dtype === "bool") {
      feeds[i.name] = new ort.Tensor("bool", Uint8Array.from(i.ints!), i.shape);
      return null;
    }
    const d = i.data ?? randn(size(i.shape), `${label}/${i.name}`);
    feeds[i.name] = new ort.Tensor("float32", d, i.shape);
    return d;
  });
  const out = await sess.run(feeds);
  const lossAt = async (): Promise<number> => {
    const o = await sess.run(feeds);
    return (o.loss.data as Float32Array)[0];
  };
  let k = 0;
  for (let i = 0; i < ins.length; i++) {
    const d = datas[i];
    if (!d || ins[i].fixed) continue;
    const grad = out[`grad_${k++}`].data as Float32Array;
    assert.equal(grad.length, d.length, `${label}: grad of ${ins[i].name} has the wrong size`);
    const s = new Stream(["autodiff-probe", label, ins[i].name]);
    const probes = Math.min(opts.probes ?? 4, d.length);
    let scale = 0;
    for (const v of grad) scale = Math.max(scale, Math.abs(v));
    for (let p = 0; p < probes; p++) {
      const j = p === 0 ? 0 : s.int(d.length);
      const num = await centralDifference(d, j, h, lossAt);
      const ana = grad[j];
      const tol = atol * Math.max(1, scale) + rtol * Math.max(Math.abs(num), Math.abs(ana));
      assert.ok(
        Math.abs(num - ana) <= tol,
        `${label}: d loss / d ${ins[i].name}[${j}]: analytic ${ana}, numeric ${num}`,
      );
    }
  }
  await sess.release();
}

const A = (name: string, shape: number[], extra: Partial<In> = {}): In => ({
  name,
  shape,
  ...extra,
});

Deno.test("autodiff: elementwise ops with broadcasting", async () => {
  await gradCheck("add", [A("a", [2, 3, 4]), A("b", [3, 1])], (_g, [a, b]) => op.add(a, b));
  await gradCheck("sub", [A("a", [4]), A("b", [2, 3, 4])], (_g, [a, b]) => op.sub(a, b));
  await gradCheck("mul", [A("a", [2, 1, 4]), A("b", [1, 3, 4])], (_g, [a, b]) => op.mul(a, b));
  await gradCheck("div", [
    A("a", [2, 3]),
    A("b", [2, 3], { data: Float32Array.from([1.5, -2, 3, 2.5, -1.2, 4]) }),
  ], (_g, [a, b]) => op.div(a, b));
  await gradCheck(
    "scalar",
    [A("a", [2, 3]), A("s", [])],
    (_g, [a, s]) => op.mul(op.add(a, 1.5), s),
  );
  await gradCheck(
    "sum",
    [A("a", [2, 3]), A("b", [3]), A("c", [2, 1])],
    (g, [a, b, c]) => g.node("Sum", [a, b, c], [{ dtype: "float32", shape: [2, 3] }])[0],
  );
  await gradCheck(
    "max-min",
    [A("a", [3, 4]), A("b", [4])],
    (_g, [a, b]) => op.add(op.max(a, b), op.mul(op.min(a, b), 2)),
  );
});

Deno.test("autodiff: unary ops", async () => {
  const pos = Float32Array.from({ length: 6 }, (_, i) => 0.5 + 0.3 * i);
  await gradCheck("neg-exp", [A("a", [2, 3])], (_g, [a]) => op.exp(op.neg(a)));
  await gradCheck(
    "log-sqrt-recip",
    [A("a", [6], { data: pos })],
    (_g, [a]) => op.add(op.add(op.log(a), op.sqrt(a)), op.reciprocal(a)),
  );
  await gradCheck("pow2", [A("a", [2, 3])], (_g, [a]) => op.pow(a, 2));
  await gradCheck("pow-3.5", [A("a", [6], { data: pos })], (_g, [a]) => op.pow(a, 3.5));
  await gradCheck(
    "pow-both",
    [A("a", [6], { data: pos }), A("b", [6])],
    (_g, [a, b]) => op.pow(a, b),
  );
  await gradCheck("sigmoid-tanh", [A("a", [2, 3])], (_g, [a]) => op.mul(op.sigmoid(a), op.tanh(a)));
  await gradCheck("silu", [A("a", [4, 5])], (_g, [a]) => op.mul(a, op.sigmoid(a)));
  await gradCheck("sin-cos", [A("a", [5])], (_g, [a]) => op.add(op.sin(a), op.cos(a)));
  await gradCheck("relu-abs", [
    A("a", [6], { data: Float32Array.from([-1, -0.5, 0.3, 0.7, 1.2, -2]) }),
  ], (_g, [a]) => op.add(op.relu(a), op.abs(a)));
  await gradCheck("cast", [A("a", [3])], (_g, [a]) => op.cast(op.mul(a, 2), "float32"));
});

Deno.test("autodiff: MatMul with batch broadcasting", async () => {
  await gradCheck("mm2", [A("a", [3, 4]), A("b", [4, 5])], (_g, [a, b]) => op.matmul(a, b));
  await gradCheck(
    "mm-weight",
    [A("a", [2, 3, 4]), A("b", [4, 5])],
    (_g, [a, b]) => op.matmul(a, b),
  );
  await gradCheck(
    "mm-batched",
    [A("a", [2, 1, 3, 4]), A("b", [3, 4, 2])],
    (_g, [a, b]) => op.matmul(a, b),
  );
  await gradCheck(
    "mm-weight-left",
    [A("a", [3, 4]), A("b", [2, 4, 5])],
    (_g, [a, b]) => op.matmul(a, b),
  );
});

Deno.test("autodiff: reductions, softmax, log-softmax", async () => {
  await gradCheck("reducemean", [A("a", [2, 3, 4])], (_g, [a]) => op.reduceMean(a, [-1]));
  await gradCheck(
    "reducemean-nokeep",
    [A("a", [2, 3, 4])],
    (_g, [a]) => op.reduceMean(a, [0, 2], false),
  );
  await gradCheck("reducesum", [A("a", [2, 3, 4])], (_g, [a]) => op.reduceSum(a, [1], false));
  await gradCheck(
    "reducesum-all",
    [A("a", [2, 3])],
    (g, [a]) => g.node("ReduceSum", [a], [{ dtype: "float32", shape: [1, 1] }])[0],
  );
  await gradCheck("softmax", [A("a", [2, 5])], (_g, [a]) => op.softmax(a, -1));
  await gradCheck("softmax-axis1", [A("a", [2, 3, 4])], (_g, [a]) => op.softmax(a, 1));
  await gradCheck("logsoftmax", [A("a", [3, 6])], (_g, [a]) => op.logSoftmax(a, -1));
  await gradCheck("rmsnorm", [A("x", [2, 3, 8]), A("w", [8])], (_g, [x, w]) => {
    const ms = op.reduceMean(op.pow(x, 2), [-1]);
    return op.mul(op.div(x, op.sqrt(op.add(ms, 1e-6))), w);
  });
});

Deno.test("autodiff: Gather, GatherElements, Where", async () => {
  // Repeated ids: gradients of the same row must add.
  await gradCheck("gather-embed", [
    A("table", [5, 3]),
    A("ids", [2, 3], { dtype: "int64", ints: [1, 4, 1, 0, 1, 2] }),
  ], (_g, [t, ids]) => op.gather(t, ids, 0));
  await gradCheck("gather-elements", [
    A("lp", [4, 5]),
    A("tg", [4, 1], { dtype: "int64", ints: [2, 0, 4, 2] }),
  ], (_g, [lp, tg]) => op.gatherElements(op.logSoftmax(lp, -1), tg, 1));
  await gradCheck("where", [
    A("c", [2, 3], { dtype: "bool", ints: [1, 0, 1, 0, 0, 1] }),
    A("a", [2, 3]),
    A("b", [3]),
  ], (_g, [c, a, b]) => op.where(c, a, b));
});

Deno.test("autodiff: shape ops", async () => {
  await gradCheck(
    "reshape-transpose",
    [A("a", [2, 3, 4])],
    (_g, [a]) => op.transpose(op.reshape(a, [0, 2, 6]), [2, 0, 1]),
  );
  await gradCheck(
    "runtime-reshape",
    [A("a", [2, 3, 4])],
    (_g, [a]) => op.mul(op.reshape(op.reshape(a, op.shapeOf(a, 0, 1)), op.shapeOf(a)), a),
  );
  await gradCheck("slice-concat", [A("a", [2, 3, 6])], (_g, [a]) => {
    const x1 = op.slice(a, [0], [3], [2]);
    const x2 = op.slice(a, [3], [6], [2]);
    return op.concat([op.neg(x2), op.mul(x1, 2)], -1);
  });
  await gradCheck("slice-middle", [A("a", [4, 5])], (_g, [a]) => op.slice(a, [1, 1], [3, 4]));
  await gradCheck("split", [A("a", [2, 7])], (_g, [a]) => {
    const [p, , r] = op.split(a, [2, 3, 2], 1);
    return op.concat([op.exp(p), r], 1);
  });
  await gradCheck(
    "squeeze-unsqueeze-expand",
    [A("a", [3, 1]), A("b", [3])],
    (_g, [a, b]) => op.add(op.expand(op.unsqueeze(op.squeeze(a, [1]), [0]), [2, 3]), b),
  );
});

/** Whole-decoder check on the decoder graph itself (weights as inputs). */
async function wholeDecoderCheck(label: string, hf: Record<string, unknown>) {
  const cfg = parseHfConfig(hf, label);
  const dec = buildDecoderGraph(cfg, null, { weights: "inputs", noCache: true });
  const g = dec.graph;
  const B = 2, T = 5, N = 7;
  const V = cfg.vocabSize;
  const r = g.constant({ dtype: "float32", dims: [N, V], data: randn(N * V, label + "R") });
  const loss = op.reduceSum(op.mul(dec.logits, r), [0, 1], false);
  const names = [...dec.weightInputs.keys()];
  const wv = names.map((n) => dec.weightInputs.get(n)!);
  const grads = gradients(g, loss, wv);
  g.output(loss, "loss");
  grads.forEach((gv, k) => g.output(gv, `grad_${k}`));
  const sess = await createSession(g, { threads: 1 });
  const w = initWeights(cfg, label, 0.3);
  const feeds: Record<string, ort.Tensor> = {};
  const data = new Map<string, Float32Array>();
  for (const n of names) {
    const t = w.get(n)!;
    const d = n.endsWith("norm.weight")
      ? Float32Array.from(t.data, (_, i) => 1 + 0.1 * Math.sin(i + 1))
      : n.endsWith(".bias")
      ? randn(t.data.length, n, 0.3)
      : t.data;
    data.set(n, d);
    feeds[n] = new ort.Tensor("float32", d, t.shape);
  }
  const bias = new Float32Array(B * T * T);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      for (let j = 0; j < T; j++) {
        const ok = j <= i && !(b === 1 && j === 0); // row 1 is left-padded by one token
        bias[(b * T + i) * T + j] = ok ? 0 : -1e9;
      }
    }
  }
  const i64 = (xs: number[], dims: number[]) =>
    new ort.Tensor("int64", BigInt64Array.from(xs, BigInt), dims);
  feeds.input_ids = i64([3, 7, 1, 9, 4, 2, 2, 8, 0, 5], [B, T]);
  feeds.position_ids = i64([0, 1, 2, 3, 4, 0, 0, 1, 2, 3], [B, T]);
  feeds.attention_bias = new ort.Tensor("float32", bias, [B, 1, 1, T, T]);
  feeds.logits_at = i64([0, 2, 4, 6, 7, 8, 9], [N]);
  const out = await sess.run(feeds);
  const h = 1e-2;
  let checked = 0;
  for (let k = 0; k < names.length; k++) {
    const d = data.get(names[k])!;
    const grad = out[`grad_${k}`].data as Float32Array;
    assert.equal(grad.length, d.length);
    let scale = 0;
    for (const v of grad) scale = Math.max(scale, Math.abs(v));
    assert.ok(scale > 0, `${label}: gradient of ${names[k]} is all zeros`);
    const s = new Stream(["decoder-probe", label, names[k]]);
    // Probe the largest-gradient coordinate and two random ones.
    let jmax = 0;
    for (let j = 1; j < grad.length; j++) if (Math.abs(grad[j]) > Math.abs(grad[jmax])) jmax = j;
    for (const j of [jmax, s.int(d.length), s.int(d.length)]) {
      const x0 = d[j];
      d[j] = x0 + h;
      const lp = (await sess.run(feeds)).loss.data as Float32Array;
      d[j] = x0 - h;
      const lm = (await sess.run(feeds)).loss.data as Float32Array;
      d[j] = x0;
      const num = (lp[0] - lm[0]) / (2 * h);
      const tol = 1e-2 * scale + 3e-2 * Math.abs(num);
      assert.ok(
        Math.abs(num - grad[j]) <= tol,
        `${label}: d loss / d ${names[k]}[${j}]: analytic ${
          grad[j]
        }, numeric ${num} (max |g| ${scale})`,
      );
      checked++;
    }
  }
  await sess.release();
  return checked;
}

const base = {
  vocab_size: 11,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 64,
};

Deno.test("autodiff: two-layer llama decoder, GQA, tied embeddings", async () => {
  const n = await wholeDecoderCheck("llama-gqa-tied", {
    ...base,
    model_type: "llama",
    tie_word_embeddings: true,
  });
  assert.ok(n >= 30);
});

Deno.test("autodiff: qwen2 (q/k/v biases, untied) and qwen3 (q/k norms, partial rotary)", async () => {
  await wholeDecoderCheck("qwen2", { ...base, model_type: "qwen2", tie_word_embeddings: false });
  await wholeDecoderCheck("qwen3", {
    ...base,
    model_type: "qwen3",
    head_dim: 8,
    tie_word_embeddings: true,
    partial_rotary_factor: 0.5,
  });
});

Deno.test("autodiff: unsupported op names the op", () => {
  const g = new Graph("bad");
  const x = g.input("x", "float32", [3]);
  const [y] = g.node("Erf", [x], [{ dtype: "float32", shape: [3] }]);
  const loss = op.reduceSum(y, [0], false);
  assert.throws(() => gradients(g, loss, [x]), /no vector-Jacobian rule for ONNX op 'Erf'/);
});

Deno.test("autodiff: a value the loss does not depend on gets zeros", async () => {
  const g = new Graph("zeros");
  const x = g.input("x", "float32", [3]);
  const u = g.input("u", "float32", [2, 2]);
  const loss = op.reduceSum(op.mul(x, x), [0], false);
  const [gx, gu] = gradients(g, loss, [x, u]);
  g.output(gx, "gx");
  g.output(gu, "gu");
  const s = await createSession(g, { threads: 1 });
  const o = await s.run({
    x: new ort.Tensor("float32", Float32Array.from([1, 2, 3]), [3]),
    u: new ort.Tensor("float32", new Float32Array(4), [2, 2]),
  });
  assert.deepEqual([...(o.gx.data as Float32Array)], [2, 4, 6]);
  assert.deepEqual([...(o.gu.data as Float32Array)], [0, 0, 0, 0]);
  await s.release();
});
