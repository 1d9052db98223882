/**
 * The graph IR, its ONNX serialization and sessions: ops run on ONNX Runtime with the numbers a
 * direct computation gives; shapes are inferred; devices are chosen or refused clearly.
 */
import assert from "node:assert/strict";
import { Graph } from "../src/onnx/graph.ts";
import * as op from "../src/onnx/ops.ts";
import { serializeModel } from "../src/onnx/serialize.ts";
import { createSession, knownProviders, ort } from "../src/onnx/session.ts";
import { ArpoError } from "../src/errors.ts";

function tiny(): Graph {
  const g = new Graph("tiny");
  const x = g.input("x", "float32", ["batch", 3]);
  const w = g.initializer("w", {
    dtype: "float32",
    dims: [3, 2],
    data: Float32Array.from([1, 2, 3, 4, 5, 6]),
  });
  const y = op.add(op.matmul(x, w), 1); // [batch, 2]
  const sm = op.softmax(y, -1);
  const ls = op.logSoftmax(y, -1);
  const rms = op.div(y, op.sqrt(op.add(op.reduceMean(op.pow(y, 2), [-1]), 1e-6)));
  const idx = g.input("idx", "int64", [2]);
  const picked = op.gather(y, idx, 0);
  const masked = op.where(op.less(y, 20), y, 0);
  const t = op.transpose(op.unsqueeze(y, [0]), [0, 2, 1]); // [1, 2, batch]
  const s = op.reduceSum(op.concat([y, op.neg(y)], 1), [1], false); // zeros
  const sl = op.slice(y, [1], [2], [1]);
  g.output(y, "y");
  g.output(sm, "softmax");
  g.output(ls, "logsoftmax");
  g.output(rms, "rms");
  g.output(picked, "picked");
  g.output(masked, "masked");
  g.output(t, "t");
  g.output(s, "s");
  g.output(sl, "sl");
  return g;
}

Deno.test("onnx graph: shapes are inferred, symbolic dims pass through", () => {
  const g = tiny();
  const byName = new Map(g.outputs.map((v) => [v.name, v]));
  assert.deepEqual(byName.get("y")!.shape, ["batch", 2]);
  assert.deepEqual(byName.get("t")!.shape, [1, 2, "batch"]);
  assert.deepEqual(byName.get("s")!.shape, ["batch"]);
  assert.deepEqual(byName.get("sl")!.shape, ["batch", 1]);
  assert.deepEqual(byName.get("picked")!.shape, [2, 2]);
  assert.equal(byName.get("masked")!.dtype, "float32");
  // Every node's inputs are produced before it (topological order), and consumers are indexed.
  const seen = new Set<number>(g.values.filter((v) => v.kind !== "node").map((v) => v.id));
  for (const n of g.nodes) {
    for (const v of n.inputs) if (v) assert.ok(seen.has(v.id), `${n.name} reads ${v.name} early`);
    for (const v of n.outputs) seen.add(v.id);
  }
  const cons = g.consumers();
  const y = byName.get("y")!;
  assert.ok(cons.get(y.id)!.length >= 6);
  assert.throws(
    () => op.matmul(g.input("a", "float32", [2, 3]), g.input("b", "float32", [4, 2])),
    /inner dims/,
  );
  assert.throws(() => g.input("x", "float32", [1]), /duplicate name/);
});

Deno.test("onnx graph: serialized model runs on ONNX Runtime with the expected numbers", async () => {
  const g = tiny();
  const bytes = serializeModel(g);
  assert.ok(bytes.length > 100);
  const s = await createSession(bytes, { threads: 1, device: "cpu" });
  try {
    assert.equal(s.provider, "cpu");
    const x = Float32Array.from([1, 0, 0, 0, 1, 1]);
    const out = await s.run({
      x: new ort.Tensor("float32", x, [2, 3]),
      idx: new ort.Tensor("int64", BigInt64Array.from([1n, 0n]), [2]),
    });
    const y = [2, 3, 9, 11]; // [1,0,0]·w + 1, [0,1,1]·w + 1
    assert.deepEqual(Array.from(out.y.data as Float32Array), y);
    const sm = out.softmax.data as Float32Array;
    const e = Math.exp(1);
    assert.ok(Math.abs(sm[1] - e / (1 + e)) < 1e-6);
    const ls = out.logsoftmax.data as Float32Array;
    assert.ok(Math.abs(ls[0] - (2 - Math.log(Math.exp(2) + Math.exp(3)))) < 1e-5);
    const rms = out.rms.data as Float32Array;
    assert.ok(Math.abs(rms[0] - 2 / Math.sqrt((4 + 9) / 2 + 1e-6)) < 1e-5);
    assert.deepEqual(Array.from(out.picked.data as Float32Array), [9, 11, 2, 3]);
    assert.deepEqual(Array.from(out.masked.data as Float32Array), [2, 3, 9, 11]);
    assert.deepEqual(out.t.dims, [1, 2, 2]);
    assert.deepEqual(Array.from(out.t.data as Float32Array), [2, 9, 3, 11]);
    assert.deepEqual(Array.from(out.s.data as Float32Array), [0, 0]);
    assert.deepEqual(Array.from(out.sl.data as Float32Array), [3, 11]);
  } finally {
    await s.release();
  }
});

Deno.test("onnx session: device selection, fallback and refusal", async () => {
  const names = knownProviders().map((p) => p.name);
  assert.ok(names.includes("cpu"));
  const g = tiny();
  // auto: a GPU provider if one starts, else CPU with a message saying why.
  const messages: string[] = [];
  const s = await createSession(g, {
    device: "auto",
    threads: 1,
    onFallback: (m) => messages.push(m),
  });
  try {
    if (s.provider === "cpu") {
      assert.equal(messages.length, 1);
      assert.match(messages[0], /no GPU execution provider could start.*running model on CPU/);
      assert.equal(s.fallback, messages[0]);
    } else assert.equal(messages.length, 0);
  } finally {
    await s.release();
  }
  // An explicitly requested device that cannot start is an ArpoError naming it.
  if (s.provider !== "cuda") {
    await assert.rejects(
      () => createSession(g, { device: "cuda" }),
      (e) => e instanceof ArpoError && /device 'cuda' was requested/.test(e.message),
    );
  }
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () => createSession(g, { device: "tpu" as any }),
    (e) => e instanceof ArpoError && /unknown device 'tpu'/.test(e.message),
  );
  // A broken model is an ArpoError, not a stack trace.
  await assert.rejects(
    () => createSession(new Uint8Array([1, 2, 3]), { device: "cpu" }),
    (e) => e instanceof ArpoError && /could not load/.test(e.message),
  );
});

Deno.test("onnx graph: select returns one of two tensors whole, bit for bit, on ORT", async () => {
  const g = new Graph("select");
  const ok = g.input("ok", "bool", []);
  const a = g.input("a", "float32", [4]);
  const b = g.input("b", "float32", [4]);
  const updated = op.mul(a, 2); // an intermediate, as the optimizer's new state is
  const picked = op.select(ok, updated, b);
  g.output(picked, "picked");
  // The branches' values are the If's implicit inputs: passes see them as read.
  const readers = g.consumers();
  assert.ok(readers.get(updated.id)?.includes(picked.producer!));
  assert.ok(readers.get(b.id)?.includes(picked.producer!));
  assert.throws(() => op.select(a, a, b), /must be a bool scalar/);
  const s = await createSession(serializeModel(g), { threads: 2, device: "cpu" });
  try {
    // NaN, −0 and a subnormal come back with their exact bits from either branch.
    const av = Float32Array.from([NaN, -0, 1e-40, 3]), bv = Float32Array.from([-0, NaN, 7, 1e-42]);
    const bits = (x: Float32Array) => Array.from(new Uint32Array(x.buffer.slice(0)));
    const run = async (flag: boolean) =>
      (await s.run({
        ok: new ort.Tensor("bool", Uint8Array.of(flag ? 1 : 0), []),
        a: new ort.Tensor("float32", av, [4]),
        b: new ort.Tensor("float32", bv, [4]),
      })).picked.data as Float32Array;
    assert.deepEqual(bits(await run(true)), bits(av.map((x) => x * 2)));
    assert.deepEqual(bits(await run(false)), bits(bv));
  } finally {
    await s.release();
  }
});
