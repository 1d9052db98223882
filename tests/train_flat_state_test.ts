// The trainer's flat optimizer state (src/train/flat_state.ts) and the grouped AdamW graph
// (graphs.ts appendAdamW): the same bits as the per-tensor update it replaced, an in-place state
// that copies taken from it never see change, and a diverging step that leaves it as it was.
import assert from "node:assert/strict";
import { initWeights } from "../src/model/weights.ts";
import type { TensorMap } from "../src/model/safetensors.ts";
import { Graph, type Value } from "../src/onnx/graph.ts";
import * as op from "../src/onnx/ops.ts";
import { createSession, ort } from "../src/onnx/session.ts";
import { ADAM_INPUTS, buildUpdateGraph } from "../src/train/graphs.ts";
import { type FlatLayout, flatLayout, flatten, unflatten, views } from "../src/train/flat_state.ts";
import { adamScalars, DEFAULT_ADAMW } from "../src/train/optimizer.ts";
import { Trainer } from "../src/train/trainer.ts";
import { checkpointBytes, checkpointParts } from "../src/train/checkpoint.ts";
import { concatBytes } from "../src/store/bytes.ts";
import type { TrainSequence } from "../src/train/batch.ts";
import { Stream } from "../src/rng.ts";
import { TINY_LLAMA } from "./fixtures/tiny_llama.ts";

const cfg = TINY_LLAMA;

function randomMap(key: string, scale: number, positive = false): TensorMap {
  const s = new Stream(["flat-state-test", key]);
  const m: TensorMap = new Map();
  for (const [name, t] of initWeights(cfg, "shapes")) {
    const data = Float32Array.from(t.data, () => {
      const x = (s.uniform() * 2 - 1) * scale;
      return positive ? Math.abs(x) : x;
    });
    m.set(name, { shape: t.shape, data });
  }
  return m;
}

/** The per-tensor clip + AdamW graph the trainer used before its state was flat. */
function perTensorUpdateGraph(names: string[], shapes: number[][]): Graph {
  const g = new Graph("per_tensor_adamw");
  const h = Object.fromEntries(ADAM_INPUTS.map((k) => [k, g.input(k, "float32", [])])) as Record<
    string,
    Value
  >;
  const ps = names.map((name, i) => ({
    name,
    w: g.input(name, "float32", shapes[i]),
    grad: g.input(`grad.${name}`, "float32", shapes[i]),
  }));
  const squares = ps.map((p) => op.reduceSum(op.mul(p.grad, p.grad), [], false));
  const sq = g.node("Sum", squares, [{ dtype: "float32", shape: [] }])[0];
  const norm = op.sqrt(sq);
  g.output(norm, "grad_norm");
  const coef = op.min(op.div(h.max_grad_norm, op.add(norm, 1e-6)), 1);
  const oneMinusB1 = op.sub(1, h.adam_beta1), oneMinusB2 = op.sub(1, h.adam_beta2);
  for (const p of ps) {
    const m = g.input(`m.${p.name}`, "float32", p.w.shape!);
    const v = g.input(`v.${p.name}`, "float32", p.w.shape!);
    const gc = op.mul(p.grad, coef);
    const m2 = op.add(op.mul(m, h.adam_beta1), op.mul(gc, oneMinusB1));
    const v2 = op.add(op.mul(v, h.adam_beta2), op.mul(op.mul(gc, gc), oneMinusB2));
    const denom = op.add(op.mul(op.sqrt(v2), h.adam_inv_sqrt_bc2), h.adam_eps);
    const w2 = op.sub(op.mul(p.w, h.adam_decay), op.mul(op.div(m2, denom), h.adam_step_size));
    g.output(w2, `new.${p.name}`);
    g.output(m2, `new_m.${p.name}`);
    g.output(v2, `new_v.${p.name}`);
  }
  return g;
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

Deno.test("flat state: layout, flatten, views alias, unflatten copies", () => {
  const l = flatLayout(cfg);
  const w = randomMap("layout", 1);
  assert.deepEqual(l.names, [...w.keys()]);
  assert.equal(l.total, [...w.values()].reduce((a, t) => a + t.data.length, 0));
  const flat = flatten(l, w);
  const v = views(l, flat), u = unflatten(l, flat);
  for (const [name, t] of w) {
    assert.deepEqual(bytesOf(v.get(name)!.data), bytesOf(t.data));
    assert.deepEqual(u.get(name)!.shape, t.shape);
  }
  flat.fill(7);
  const first = l.names[0];
  assert.equal(v.get(first)!.data[0], 7, "a view follows its buffer");
  assert.equal(u.get(first)!.data[0], w.get(first)!.data[0], "unflatten owns its copy");
});

Deno.test("flat state: groups are runs of whole tensors under the cap, a larger one alone", () => {
  const sizes = flatLayout(cfg).sizes;
  const cap = Math.max(...sizes) - 1; // the largest tensor exceeds it
  const l = flatLayout(cfg, cap);
  assert.ok(l.groups.length > 1);
  assert.equal(l.groups[0].start, 0);
  assert.equal(l.groups.at(-1)!.stop, l.total);
  l.groups.forEach((g, i) => {
    if (i > 0) assert.equal(g.start, l.groups[i - 1].stop);
    assert.equal(g.stop - g.start, sizes.slice(g.first, g.end).reduce((a, b) => a + b, 0));
    assert.ok(g.end - g.first === 1 || g.stop - g.start <= cap, `group ${i} is over the cap`);
  });
  assert.ok(l.groups.some((g) => g.end - g.first > 1), "small tensors share a group");
});

Deno.test("flat AdamW: bit for bit the per-tensor update, one group or several, 1 and 2 threads", async () => {
  for (const l of [flatLayout(cfg), flatLayout(cfg, 300)]) await sameBitsAsPerTensor(l);
});

async function sameBitsAsPerTensor(l: FlatLayout) {
  const w = randomMap("w", 0.5), grad = randomMap("g", 0.3), m = randomMap("m", 0.01);
  const v = randomMap("v", 1e-4, true);
  const adamw = { ...DEFAULT_ADAMW, maxGradNorm: 0.5 };
  const scalars = Object.entries(adamScalars(adamw, 3e-3, 5)).map(([k, x]) =>
    [k, new ort.Tensor("float32", Float32Array.of(x), [])] as const
  );
  for (const threads of [1, 2]) {
    const old = await createSession(perTensorUpdateGraph(l.names, l.shapes), { threads });
    const feeds: Record<string, ort.Tensor> = Object.fromEntries(scalars);
    for (const [name, t] of w) {
      feeds[name] = new ort.Tensor("float32", t.data, t.shape);
      feeds[`grad.${name}`] = new ort.Tensor("float32", grad.get(name)!.data, t.shape);
      feeds[`m.${name}`] = new ort.Tensor("float32", m.get(name)!.data, t.shape);
      feeds[`v.${name}`] = new ort.Tensor("float32", v.get(name)!.data, t.shape);
    }
    const want = await old.run(feeds);
    await old.release();
    const flat = await createSession(buildUpdateGraph(cfg, l).graph, { threads });
    const ff: Record<string, ort.Tensor> = Object.fromEntries(scalars);
    for (const [name, t] of grad) ff[`grad.${name}`] = new ort.Tensor("float32", t.data, t.shape);
    const state = { weights: flatten(l, w), m: flatten(l, m), v: flatten(l, v) };
    l.groups.forEach((g, i) => {
      for (const [k, a] of Object.entries(state)) {
        ff[`state.${k}.${i}`] = new ort.Tensor("float32", a.subarray(g.start, g.stop), [
          g.stop - g.start,
        ]);
      }
    });
    const got = await flat.run(ff);
    await flat.release();
    assert.ok((want.grad_norm.data as Float32Array)[0] > 0.5, "clipping should be active");
    assert.deepEqual(got.grad_norm.data, want.grad_norm.data);
    for (const [k, prefix] of [["weights", "new."], ["m", "new_m."], ["v", "new_v."]]) {
      l.groups.forEach((g, gi) => {
        const out = got[`new.${k}.${gi}`].data as Float32Array;
        for (let i = g.first; i < g.end; i++) {
          const o = l.offsets[i] - g.start;
          assert.deepEqual(
            bytesOf(out.subarray(o, o + l.sizes[i])),
            bytesOf(want[prefix + l.names[i]].data as Float32Array),
            `${threads} threads: ${k} of ${l.names[i]} differs`,
          );
        }
      });
    }
  }
}

Deno.test("flat state: weights are the current step's, state() is a copy later steps leave alone, stateView() is live", async () => {
  const s = new Stream(["flat-state-test", "batch"]);
  const batch: TrainSequence[] = Array.from({ length: 3 }, () => {
    const tokens = Array.from({ length: 9 }, () => s.int(13));
    return { tokens, lossMask: tokens.map((_, i) => (i < 2 ? 0 : 1)) };
  });
  const w = initWeights(cfg, "flat");
  const a = Trainer.create(cfg, w, { objective: { kind: "sft" }, threads: 1 });
  await a.trainStep(batch, 1e-2);
  const after1 = a.state();
  const saved = checkpointBytes(after1);
  // The live views give the same checkpoint, and its pieces are those bytes.
  assert.deepEqual(checkpointBytes(a.stateView()), saved);
  const parts = checkpointParts(a.stateView());
  for (const k of ["weights", "optimizer"] as const) {
    assert.deepEqual(concatBytes(parts[k]), saved[k]);
  }
  const live1 = [...a.weights].map(([k, t]) => [k, t.data.slice()] as const);
  for (const [k, t] of live1) assert.deepEqual(t, after1.weights.get(k)!.data);
  // Three more in-place steps; the copy taken after step 1 stays as it was.
  for (let i = 0; i < 3; i++) await a.trainStep(batch, 1e-2);
  assert.deepEqual(checkpointBytes(after1).weights, saved.weights);
  assert.deepEqual(checkpointBytes(after1).optimizer, saved.optimizer);
  assert.notDeepEqual(checkpointBytes(a.state()).weights, saved.weights);
  // Resuming from the copy and taking the same three steps gives the same bytes.
  const b = Trainer.create(cfg, after1, { objective: { kind: "sft" }, threads: 1 });
  for (let i = 0; i < 3; i++) await b.trainStep(batch, 1e-2);
  assert.deepEqual(checkpointBytes(b.state()), checkpointBytes(a.state()));
  // Several AdamW groups (fused and micro-batched updates) give the same bytes as one.
  for (const tokenBudget of [undefined, 12]) {
    const c = Trainer.create(cfg, w, {
      objective: { kind: "sft" },
      threads: 1,
      adamGroupElements: 300,
      tokenBudget,
    });
    const d = Trainer.create(cfg, w, { objective: { kind: "sft" }, threads: 1, tokenBudget });
    for (let i = 0; i < 4; i++) {
      const sc = await c.trainStep(batch, 1e-2);
      await d.trainStep(batch, 1e-2);
      if (tokenBudget) assert.ok(sc.microBatches > 1);
    }
    assert.deepEqual(checkpointBytes(c.state()), checkpointBytes(d.state()));
    if (!tokenBudget) assert.deepEqual(checkpointBytes(c.state()), checkpointBytes(a.state()));
    await c.release();
    await d.release();
  }
  await a.release();
  await b.release();
});

Deno.test("flat state: a step with a non-finite loss throws and leaves the state as it was", async () => {
  const w = initWeights(cfg, "nan");
  const norm = [...w.keys()].find((k) => k.endsWith("input_layernorm.weight"))!;
  w.get(norm)!.data[3] = Infinity;
  const batch: TrainSequence[] = [{ tokens: [1, 2, 3, 4, 5], lossMask: [0, 1, 1, 1, 1] }];
  for (const tokenBudget of [undefined, 3]) {
    const tr = Trainer.create(cfg, w, { objective: { kind: "sft" }, threads: 1, tokenBudget });
    const before = checkpointBytes(tr.state());
    await assert.rejects(() => tr.trainStep(batch, 1e-2), /non-finite/);
    assert.equal(tr.step, 0);
    assert.deepEqual(checkpointBytes(tr.state()), before);
    await tr.release();
  }
});
