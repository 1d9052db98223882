// The numerics machinery below the runner: the CPU's instruction-set class from /proc/cpuinfo,
// comparing fingerprints, the `runtime.numerics` key (in the identity only when portable), and
// the portable engine (onnxruntime-web): the same bytes run after run at its fixed thread
// count, preallocated outputs filled as onnxruntime-node fills them, one thread count per
// process, and a canary that differs from the native one.
import assert from "node:assert/strict";
import { ArpoError } from "../src/errors.ts";
import { parseManifest } from "../src/manifest/mod.ts";
import { Graph } from "../src/onnx/graph.ts";
import { parseCpuinfo } from "../src/onnx/numerics_cpu.ts";
import { wasmEngine } from "../src/onnx/numerics_wasm.ts";
import * as op from "../src/onnx/ops.ts";
import { createSession, ort } from "../src/onnx/session.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { numericsFingerprint } from "../src/run/numerics.ts";
import {
  describeNumerics,
  numericsDifferences,
  type NumericsFingerprint,
  sameNumerics,
} from "../src/run/numerics_fingerprint.ts";

const X86 = (flags: string) =>
  `processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338\n` +
  `flags\t\t: fpu sse sse2 ${flags}\n\nprocessor\t: 1\nflags\t\t: fpu\n`;

Deno.test("numerics: the MLAS class of a CPU comes from its cpuinfo flags", () => {
  const avx512 = parseCpuinfo(
    X86("avx avx2 fma f16c avx512f avx512bw avx512dq avx512vl avx512_vnni avx512_bf16 amx_tile"),
    "x86_64",
  );
  assert.equal(avx512.vendor, "GenuineIntel");
  assert.equal(avx512.model, "Intel(R) Xeon(R) Gold 6338");
  assert.equal(avx512.isa, "avx512");
  assert.deepEqual(avx512.isa_features, [
    "amx_tile",
    "avx",
    "avx2",
    "avx512_bf16",
    "avx512_vnni",
    "avx512bw",
    "avx512dq",
    "avx512f",
    "avx512vl",
    "f16c",
    "fma",
  ]);
  assert.equal(parseCpuinfo(X86("avx avx2 fma avx512f"), "x86_64").isa, "avx512f");
  assert.equal(parseCpuinfo(X86("avx avx2 fma f16c"), "x86_64").isa, "avx2-fma");
  assert.equal(parseCpuinfo(X86("avx"), "x86_64").isa, "avx");
  assert.equal(parseCpuinfo(X86(""), "x86_64").isa, "sse");
  const arm = parseCpuinfo(
    "processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimdhp asimddp i8mm bf16 sve\n" +
      "CPU implementer\t: 0x41\nCPU part\t: 0xd40\n",
    "aarch64",
  );
  assert.deepEqual(
    { vendor: arm.vendor, model: arm.model, isa: arm.isa },
    { vendor: "ARM", model: "ARM part 0xd40", isa: "neon-sve" },
  );
  assert.deepEqual(arm.isa_features, ["asimd", "asimddp", "asimdhp", "bf16", "i8mm", "sve"]);
  assert.equal(parseCpuinfo("", "x86_64").isa, "unknown");
});

const FP: NumericsFingerprint = {
  format: "arpo-numerics/1",
  numerics: "native",
  engine: "onnxruntime-node",
  engine_version: "1.30.0",
  provider: "cpu",
  threads: 2,
  cpu: { arch: "x86_64", vendor: "A", model: "m", isa: "avx512", isa_features: ["avx2"] },
  canary: "a".repeat(64),
};

Deno.test("numerics: the canary decides whether two fingerprints compute alike, the CPU describes", () => {
  const otherModel = { ...FP, cpu: { ...FP.cpu, model: "n" } };
  assert.ok(sameNumerics(FP, otherModel), "a CPU model alone does not make numerics differ");
  assert.deepEqual(numericsDifferences(FP, otherModel), [
    { field: "cpu.model", a: "m", b: "n", deciding: false },
  ]);
  const avx2 = { ...FP, cpu: { ...FP.cpu, isa: "avx2-fma" }, canary: "b".repeat(64) };
  assert.ok(!sameNumerics(FP, avx2));
  assert.deepEqual(numericsDifferences(FP, avx2).map((d) => [d.field, d.deciding]), [
    ["canary", true],
    ["cpu.isa", false],
  ]);
  assert.ok(!sameNumerics(FP, { ...FP, threads: 1 }));
  assert.match(
    describeNumerics(FP),
    /^native: onnxruntime-node 1\.30\.0 on cpu, 2 threads; .*avx512.*canary a{16}$/,
  );
});

const MANIFEST = "name: n\nruntime:\n  threads: 1\n";

Deno.test("runtime.numerics: native is not in the identity, portable is, and runs on the CPU on one thread", () => {
  const stages = BUILTIN_STAGES;
  const native = parseManifest(MANIFEST, "n.yaml", { stages }).manifest;
  // Native runs keep the run ids they had before the key existed.
  assert.deepEqual(native.runtime, { threads: 1, device: "cpu", tool_cache: true });
  const explicit = parseManifest(MANIFEST + "  numerics: native\n", "n.yaml", { stages });
  assert.deepEqual(explicit.manifest, native);
  const portable = parseManifest(MANIFEST + "  numerics: portable\n", "n.yaml", { stages });
  assert.equal(portable.manifest.runtime.numerics, "portable");
  assert.throws(
    () => parseManifest(MANIFEST + "  numerics: portable\n  device: cuda\n", "n.yaml", { stages }),
    (e: Error) =>
      /n\.yaml:5:\d+.*runtime\.device.*cpu: runtime\.numerics: portable/s.test(e.message),
  );
  // One WebAssembly thread: the default count resolves to 1, another written count is refused.
  const defaults = parseManifest("name: n\nruntime: { numerics: portable }\n", "n.yaml", {
    stages,
  });
  assert.equal(defaults.manifest.runtime.threads, 1);
  assert.throws(
    () =>
      parseManifest("name: n\nruntime:\n  numerics: portable\n  threads: 2\n", "n.yaml", {
        stages,
      }),
    (e: Error) => /n\.yaml:4:\d+.*runtime\.threads.*1 \(or no value\)/s.test(e.message),
  );
  assert.throws(
    () => parseManifest(MANIFEST + "  numerics: exact\n", "n.yaml", { stages }),
    (e: Error) => /n\.yaml:4:\d+.*runtime\.numerics/s.test(e.message),
  );
});

function graph(): Graph {
  const g = new Graph("numerics_engine_test");
  const a = g.input("a", "float32", [3, 40]);
  const b = g.input("b", "float32", [40, 5]);
  const y = op.matmul(a, b);
  g.output(y, "y");
  g.output(op.reduceSum(op.exp(y), [1], false), "s");
  return g;
}

const feeds = () => ({
  a: new ort.Tensor("float32", Float32Array.from({ length: 120 }, (_, i) => Math.sin(i)), [3, 40]),
  b: new ort.Tensor("float32", Float32Array.from({ length: 200 }, (_, i) => Math.cos(i)), [40, 5]),
});

Deno.test("portable engine: same bytes every run at its thread count, preallocated outputs filled, one thread count per process", async () => {
  const portable = { mode: "portable", threads: 1 } as const;
  const s = await createSession(graph(), { numerics: portable });
  assert.equal(s.provider, "wasm");
  assert.equal(s.engine, "onnxruntime-web");
  const first = await s.run(feeds());
  const again = await s.run(feeds());
  assert.deepEqual(first.y.data, again.y.data);
  // Preallocated fetches (the trainer binds its next state this way) receive the values.
  const into = new Float32Array(15);
  const out = await s.ort.run(feeds(), { y: new ort.Tensor("float32", into, [3, 5]), s: null });
  assert.deepEqual(into, first.y.data);
  assert.equal(out.y.data, into);
  assert.deepEqual(out.s.data, first.s.data);
  // Against native: close, as both compute the same graph.
  const n = await createSession(graph(), { numerics: { mode: "native" }, threads: 1 });
  assert.equal(n.provider, "cpu");
  const ny = (await n.run(feeds())).y.data as Float32Array;
  (first.y.data as Float32Array).forEach((x, i) => assert.ok(Math.abs(x - ny[i]) < 1e-4));
  await s.release();
  await n.release();
  assert.throws(
    () => wasmEngine(2, ort.Tensor),
    (e: Error) => e instanceof ArpoError && /runs onnxruntime-web with 1 thread/.test(e.message),
  );
});

Deno.test("numerics fingerprint: once per process, native and portable canaries differ in engine", async () => {
  const rt = { threads: 1, device: "cpu" as const };
  const native = await numericsFingerprint(rt);
  assert.equal(native, await numericsFingerprint(rt), "computed once, then cached");
  assert.equal(native.engine, "onnxruntime-node");
  assert.match(native.canary, /^[0-9a-f]{64}$/);
  const portable = await numericsFingerprint({ ...rt, numerics: "portable" });
  assert.equal(portable.provider, "wasm");
  assert.match(portable.wasm_binary ?? "", /^[0-9a-f]{64}$/);
  assert.ok(!sameNumerics(native, portable));
});
