/**
 * ONNX Runtime's C API session (onnx/capi_session.ts): preallocated outputs are written in place
 * and handed back as the caller's own tensors, other outputs come back as new tensors, errors
 * carry ONNX Runtime's message, and a trainer on it gives the same bits as on onnxruntime-node.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { CapiSession, capiUnavailable } from "../src/onnx/capi_session.ts";
import { Graph } from "../src/onnx/graph.ts";
import * as op from "../src/onnx/ops.ts";
import { serializeModel } from "../src/onnx/serialize.ts";
import { createSession, ort } from "../src/onnx/session.ts";
import { initWeights } from "../src/model/weights.ts";
import { Trainer, type TrainerOptions } from "../src/train/trainer.ts";
import type { TrainSequence } from "../src/train/batch.ts";
import { Stream } from "../src/rng.ts";
import { TINY_LLAMA } from "./fixtures/tiny_llama.ts";

const why = capiUnavailable();
const ignore = why !== undefined;
if (ignore) console.log(`skipping the C API session tests: ${why}`);

function incGraph(): Uint8Array {
  const g = new Graph("inc");
  const x = g.input("x", "float32", ["n"]);
  const y = op.add(x, 1);
  g.output(y, "y");
  g.output(op.reduceSum(y, [0], false), "total");
  return serializeModel(g);
}

Deno.test({
  name: "capi: a preallocated output is written in place and returned as the same tensor",
  ignore,
  fn: async () => {
    const s = CapiSession.create(incGraph(), { threads: 1 });
    assert.deepEqual([s.inputNames, s.outputNames], [["x"], ["y", "total"]]);
    // One large tensor (its own memory) and one small one (staged and copied back).
    for (const n of [5000, 3]) {
      const data = new Float32Array(n).map((_, i) => i);
      const t = new ort.Tensor("float32", data, [n]);
      const out = await s.run({ x: t }, { y: t, total: null });
      assert.equal(out.y, t);
      assert.equal(data[n - 1], n);
      assert.equal((out.total.data as Float32Array)[0], (n * (n + 1)) / 2);
      assert.deepEqual(out.total.dims, []);
    }
    const all = await s.run({ x: new ort.Tensor("float32", Float32Array.of(1, 2), [2]) });
    assert.deepEqual([...all.y.data as Float32Array], [2, 3]);
    const named = await s.run({ x: new ort.Tensor("float32", Float32Array.of(4), [1]) }, ["y"]);
    assert.deepEqual(Object.keys(named), ["y"]);
    await assert.rejects(() => s.run({}), /no feed for input\(s\) x/);
    await assert.rejects(
      () => s.run({ x: new ort.Tensor("float32", Float32Array.of(1), [1]) }, ["nope"]),
      /no output 'nope'/,
    );
    await s.release();
    await assert.rejects(() => s.run({}), /released/);
  },
});

Deno.test({
  name: "capi: small feeds stay valid while the run works on another thread and V8 collects",
  ignore,
  fn: async () => {
    // A Gather of small int64 ids (a staged buffer) that runs after a MatMul chain slow enough for
    // collections to run meanwhile: a staged buffer collected under the run is reused by the
    // garbage below and reads as other ids.
    const g = new Graph("gather");
    const ids = g.input("ids", "int64", [4]);
    const table = g.input("table", "float32", [16, 256]);
    const w = g.input("w", "float32", [512, 512]);
    let h = w;
    for (let i = 0; i < 40; i++) h = op.matmul(h, w);
    const late = op.add(table, op.mul(op.reduceSum(h, [0, 1], true), 0)); // after the chain
    g.output(op.reduceSum(op.gather(late, ids), [1], false), "sums");
    const s = CapiSession.create(serializeModel(g), { threads: 1 });
    const tableData = new Float32Array(16 * 256).map((_, i) => Math.floor(i / 256));
    const wData = new Float32Array(512 * 512);
    for (let round = 0; round < 4; round++) {
      const run = s.run({
        ids: new ort.Tensor("int64", BigInt64Array.of(1n, 3n, 5n, 7n), [4]),
        table: new ort.Tensor("float32", tableData, [16, 256]),
        w: new ort.Tensor("float32", wData, [512, 512]),
      });
      let done = false;
      run.finally(() => (done = true)).catch(() => {});
      while (!done) {
        for (let i = 0; i < 2000; i++) new Uint8Array(new ArrayBuffer(32)).fill(0x7f);
        await new Promise((r) => setTimeout(r, 0));
      }
      const out = await run;
      assert.deepEqual([...out.sums.data as Float32Array], [256, 768, 1280, 1792]);
    }
    await s.release();
  },
});

Deno.test({
  name: "capi: createSession with inPlaceOutputs returns the caller's tensors, not copies",
  ignore,
  fn: async () => {
    const a = await createSession(incGraph(), { threads: 1, inPlaceOutputs: true });
    const b = await createSession(incGraph(), { threads: 1 });
    const da = new Float32Array(10000).fill(2), db = new Float32Array(10000).fill(2);
    const ta = new ort.Tensor("float32", da, [da.length]);
    const tb = new ort.Tensor("float32", db, [db.length]);
    const oa = await a.ort.run({ x: ta }, { y: ta, total: null });
    const ob = await b.ort.run({ x: tb }, { y: tb, total: null });
    assert.equal(oa.y, ta);
    assert.notEqual((ob.y.data as Float32Array).buffer, db.buffer); // onnxruntime-node copies
    assert.deepEqual(da, db);
    await a.release();
    await b.release();
  },
});

function seqs(n: number, key: string): TrainSequence[] {
  const s = new Stream(["capi-test", key]);
  return Array.from({ length: n }, (_, k) => {
    const len = 4 + s.int(7);
    const tokens = Array.from({ length: len }, () => s.int(13));
    const lossMask = tokens.map((_, i) => (i < 2 ? 0 : 1));
    return {
      tokens,
      lossMask,
      advantages: k % 2 ? 1 : -0.5,
      oldLogp: tokens.map((_, i) => -2.6 + 0.3 * Math.sin(i + k)),
    };
  });
}

function stateDigest(t: Trainer): string {
  const h = createHash("sha256");
  const st = t.state();
  for (const map of [st.weights, st.m, st.v]) {
    for (const [name, x] of map) h.update(name).update(new Uint8Array(x.data.buffer));
  }
  return h.digest("hex");
}

Deno.test({
  name: "capi: a trainer on the C API gives onnxruntime-node's bits (fused and micro-batched)",
  ignore,
  fn: async () => {
    const w = initWeights(TINY_LLAMA, "capi");
    const cases: [string, Partial<TrainerOptions>][] = [
      ["sft fused", { objective: { kind: "sft" } }],
      ["pg fused", { objective: { kind: "pg", entropy: true } }],
      ["sft micro-batched", { objective: { kind: "sft" }, tokenBudget: 24 }],
    ];
    for (const [label, o] of cases) {
      const digests: string[] = [];
      for (const inPlaceOutputs of [true, false]) {
        const t = Trainer.create(TINY_LLAMA, w, {
          objective: { kind: "sft" },
          threads: 1,
          adamGroupElements: 1000,
          ...o,
          inPlaceOutputs,
        });
        const losses: number[] = [];
        for (let k = 0; k < 3; k++) losses.push((await t.trainStep(seqs(5, `${k}`), 1e-2)).loss);
        digests.push(`${stateDigest(t)} ${losses.join(",")}`);
        await t.release();
      }
      assert.equal(digests[0], digests[1], label);
    }
  },
});
