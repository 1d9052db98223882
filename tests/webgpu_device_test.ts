// Device choice and what a GPU session reports: `device: auto` never takes a software Vulkan
// adapter (llvmpipe/lavapipe) and says so, `device: webgpu` does and names it, a graph with an
// op the WebGPU provider has no kernel for gets one warning line naming the graph and the op, and
// the pieces those rest on (ORT's placement log, the shape buckets). The parts that need the
// WebGPU provider are skipped, saying why, where it cannot start.
import assert from "node:assert/strict";
import { Graph } from "../src/onnx/graph.ts";
import * as op from "../src/onnx/ops.ts";
import { createSession, ort, webgpuStartError } from "../src/onnx/session.ts";
import { preferredAdapter, vulkanDevices } from "../src/onnx/vulkan.ts";
import { WEBGPU_MIN_TOKENS, webgpuBucket } from "../src/onnx/webgpu.ts";
import { describeMissing, parsePlacement } from "../src/onnx/webgpu_placement.ts";

const why = await webgpuStartError();
if (why) console.log(`webgpu tests skipped: the WebGPU provider cannot start here (${why})`);

Deno.test("webgpu placement: only nodes without a WebGPU kernel that land on the CPU", () => {
  const t = "2026-12-02 03:58:57.960395033";
  const log = [
    `${t} [I:onnxruntime:, webgpu_execution_provider.cc:665 GetCapability] webgpu kernel not ` +
    `found in registries for Op type: LogSoftmax node name: LogSoftmax_7`,
    `${t} [I:onnxruntime:, webgpu_execution_provider.cc:665 GetCapability] webgpu kernel not ` +
    `found in registries for Op type: Sum node name: Sum_3`,
    `${t} [I:onnxruntime:, webgpu_execution_provider.cc:665 GetCapability] webgpu kernel not ` +
    `found in registries for Op type: Sum node name: Sum_4`,
    `${t} [V:onnxruntime:, session_state.cc:1383 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed ` +
    `on [WebGpuExecutionProvider]. Number of nodes: 40`,
    `${t} [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   MatMul (MatMul_1)`,
    `${t} [V:onnxruntime:, session_state.cc:1383 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed ` +
    `on [CPUExecutionProvider]. Number of nodes: 4`,
    `${t} [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   LogSoftmax (LogSoftmax_7)`,
    `${t} [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   Sum (Sum_3)`,
    `${t} [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   Sum (Sum_4)`,
    // Shape arithmetic ORT puts on the CPU on purpose: not a missing kernel.
    `${t} [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   Reshape (Reshape_2)`,
    `${t} [W:onnxruntime:, session_state.cc:1397 VerifyEachNodeIsAssignedToAnEp] Some nodes were not`,
  ].join("\n");
  const p = parsePlacement(log);
  assert.deepEqual([...p.missing], [["LogSoftmax", ["LogSoftmax_7"]], ["Sum", ["Sum_3", "Sum_4"]]]);
  assert.equal(p.onGpu, 40);
  assert.equal(p.onCpu, 4);
  assert.equal(describeMissing(p.missing), "LogSoftmax, Sum ×2");
  assert.equal(parsePlacement("").missing.size, 0);
});

Deno.test("webgpu buckets: few shapes, never smaller than asked", () => {
  const got = new Set<number>();
  for (let n = 1; n <= 512; n++) {
    const b = webgpuBucket(n);
    assert.ok(b >= n && b < 2 * n + 8, `bucket(${n}) = ${b}`);
    got.add(b);
  }
  assert.deepEqual([...got], [1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64, 128, 256, 512]);
  assert.equal(WEBGPU_MIN_TOKENS, webgpuBucket(WEBGPU_MIN_TOKENS));
});

function matmulGraph(): Graph {
  const g = new Graph("device_test");
  const x = g.input("x", "float32", [2, 3]);
  g.output(op.matmul(x, op.transpose(x, [1, 0])), "y");
  return g;
}

Deno.test({
  name: "webgpu device: auto never takes a software adapter; webgpu does and names it",
  ignore: !!why,
  async fn() {
    const best = preferredAdapter();
    assert.ok(best, `a Vulkan device (${vulkanDevices().why})`);
    const messages: string[] = [];
    const auto = await createSession(matmulGraph(), {
      device: "auto",
      onFallback: (m) => messages.push(m),
    });
    const asked = await createSession(matmulGraph(), { device: "webgpu" });
    try {
      if (best.software) {
        assert.equal(auto.provider, "cpu");
        assert.equal(auto.adapter, undefined);
        assert.equal(messages.length, 1);
        assert.ok(
          messages[0].includes(`webgpu: only a software adapter (${best.name})`),
          messages[0],
        );
      } else if (auto.provider === "webgpu") assert.equal(auto.adapter, best.name);
      assert.equal(asked.provider, "webgpu");
      assert.equal(asked.adapter, best.name);
      const x = new ort.Tensor("float32", Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
      const y = await asked.run({ x });
      assert.deepEqual(Array.from(y.y.data as Float32Array), [14, 32, 32, 77]);
    } finally {
      await auto.release();
      await asked.release();
    }
  },
});

Deno.test({
  name: "webgpu device: an op without a WebGPU kernel is named, with its graph, once",
  ignore: !!why,
  async fn() {
    const g = new Graph("log_softmax_graph");
    const x = g.input("x", "float32", [2, 3]);
    g.output(op.logSoftmax(op.matmul(x, op.transpose(x, [1, 0]))), "y");
    const messages: string[] = [];
    const opts = {
      device: "webgpu" as const,
      label: "the test graph",
      onFallback: (m: string) => messages.push(m),
    };
    const a = await createSession(g, opts);
    const b = await createSession(g, opts); // same structure: not checked again
    try {
      assert.equal(a.provider, "webgpu");
      assert.equal(messages.length, 1, messages.join("\n"));
      assert.match(
        messages[0],
        /^webgpu: the test graph: no WebGPU kernel for LogSoftmax; 1 of \d+ nodes/,
      );
      const xv = new ort.Tensor("float32", Float32Array.from([1, 0, 0, 0, 1, 0]), [2, 3]);
      const y = (await b.run({ x: xv })).y.data as Float32Array;
      const want = Math.log(Math.E / (Math.E + 1));
      assert.ok(Math.abs(y[0] - want) < 1e-6, `${y[0]} vs ${want}`);
    } finally {
      await a.release();
      await b.release();
    }
  },
});
