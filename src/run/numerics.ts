/**
 * The numerics fingerprint of a run and of each stage it computed: which engine and provider ran
 * the graphs, ONNX Runtime's version, the thread count, the CPU and the instruction-set class
 * MLAS dispatches on, and the digest of a small fixed canary computation (a matmul, reductions
 * and one training step of a tiny decoder, built with the project's own graph builder and
 * trainer) run once per process. Two machines whose canaries agree compute alike; `verify` uses
 * that to tell a determinism bug (same fingerprint, different bytes) from a change of hardware.
 *
 * The fingerprint is outside the run identity (run ids do not change with the machine); the
 * manifest's `runtime.numerics: portable` is inside it.
 */
import { createHash } from "node:crypto";
import { parseHfConfig } from "../model/config.ts";
import { initWeights } from "../model/weights.ts";
import { Graph } from "../onnx/graph.ts";
import { cpuNumerics } from "../onnx/numerics_cpu.ts";
import { type Numerics, numericsOf, withNumerics } from "../onnx/numerics_mode.ts";
import { PORTABLE_WASM_SHA256 } from "../onnx/numerics_wasm.ts";
import * as op from "../onnx/ops.ts";
import { createSession, type Device, ort, type Provider } from "../onnx/session.ts";
import { Stream } from "../rng.ts";
import { Trainer } from "../train/trainer.ts";
import { NUMERICS_FORMAT, type NumericsFingerprint } from "./numerics_fingerprint.ts";

/** The canary's decoder: 1 layer, hidden 16, grouped-query attention, a vocabulary of 24. */
const CANARY_MODEL = parseHfConfig({
  model_type: "llama",
  vocab_size: 24,
  hidden_size: 16,
  intermediate_size: 40,
  num_hidden_layers: 1,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  tie_word_embeddings: true,
  max_position_embeddings: 32,
}, "the numerics canary");

/** Uniform values in [-1, 1) from a keyed stream (integer arithmetic only: the same everywhere). */
function canaryValues(n: number, name: string): Float32Array {
  const s = new Stream(["numerics-canary", name]);
  return Float32Array.from({ length: n }, () => s.nextUint32() / 2 ** 31 - 1);
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Matmul and reductions: K = 300 spans MLAS's K-blocking, and the row reductions run over
 * lengths that are not multiples of the vector widths (8 lanes for AVX2, 16 for AVX-512), where
 * kernels of different widths sum in different orders.
 */
async function kernelCanary(
  h: ReturnType<typeof createHash>,
  threads: number,
  device: Device,
): Promise<{ provider: Provider; adapter?: string }> {
  const [M, K, N] = [19, 300, 37];
  const g = new Graph("numerics_canary");
  const x = g.input("x", "float32", [M, K]);
  const w = g.input("w", "float32", [K, N]);
  const y = op.matmul(x, w);
  g.output(y, "matmul");
  g.output(op.reduceSum(y, [1], false), "row_sum");
  g.output(op.reduceMean(op.mul(x, x), [1], false), "row_mean_square");
  g.output(op.softmax(y, -1), "softmax");
  g.output(op.reduceLogSumExp(y, [1], false), "logsumexp");
  g.output(op.tanh(op.sigmoid(y)), "activations");
  const s = await createSession(g, { threads, device, label: "the numerics canary" });
  try {
    const out = await s.run({
      x: new ort.Tensor("float32", canaryValues(M * K, "x"), [M, K]),
      w: new ort.Tensor("float32", canaryValues(K * N, "w"), [K, N]),
    });
    for (const name of [...Object.keys(out)].sort()) {
      h.update(name);
      h.update(bytesOf(out[name].data as Float32Array));
    }
    return { provider: s.provider, adapter: s.adapter };
  } finally {
    await s.release();
  }
}

/** One SFT step of the tiny decoder through the trainer (forward, backward, clip, AdamW). */
async function trainingCanary(
  h: ReturnType<typeof createHash>,
  threads: number,
  device: Device,
): Promise<void> {
  const tr = Trainer.create(CANARY_MODEL, initWeights(CANARY_MODEL, "numerics-canary"), {
    objective: { kind: "sft" },
    threads,
    device,
  });
  try {
    const s = new Stream(["numerics-canary", "sequences"]);
    const seqs = [11, 7, 9].map((len) => {
      const tokens = Array.from({ length: len }, () => s.int(CANARY_MODEL.vocabSize));
      return { tokens, lossMask: tokens.map((_, i) => (i < 2 ? 0 : 1)) };
    });
    const stats = await tr.trainStep(seqs, 1e-2);
    h.update(bytesOf(Float32Array.of(stats.loss, stats.gradNorm)));
    for (const name of [...tr.weights.keys()].sort()) {
      h.update(name);
      h.update(bytesOf(tr.weights.get(name)!.data as Float32Array));
    }
  } finally {
    await tr.release();
  }
}

/** What the fingerprint of a run is computed for: its manifest's runtime section. */
export interface NumericsRuntime {
  numerics?: Numerics;
  threads: number;
  device: Device;
}

const cache = new Map<string, Promise<NumericsFingerprint>>();

/**
 * This process's numerics fingerprint for a manifest's `runtime` (the canary runs once per
 * engine, thread count and device, then comes from a cache).
 *
 * @param runtime The resolved manifest's runtime section (numerics, threads, device).
 */
export function numericsFingerprint(runtime: NumericsRuntime): Promise<NumericsFingerprint> {
  const scope = numericsOf(runtime);
  const k = `${scope.mode}|${runtime.threads}|${runtime.device}`;
  let fp = cache.get(k);
  if (!fp) {
    fp = withNumerics(scope, () => compute(scope.mode, runtime.threads, runtime.device));
    cache.set(k, fp);
    fp.catch(() => cache.delete(k));
  }
  return fp;
}

async function compute(
  numerics: Numerics,
  threads: number,
  device: Device,
): Promise<NumericsFingerprint> {
  const h = createHash("sha256");
  const { provider, adapter } = await kernelCanary(h, threads, device);
  await trainingCanary(h, threads, device);
  const portable = numerics === "portable";
  const fp: NumericsFingerprint = {
    format: NUMERICS_FORMAT,
    numerics,
    engine: portable ? "onnxruntime-web" : "onnxruntime-node",
    engine_version: String(
      (ort.env.versions as Record<string, string>)[portable ? "web" : "node"] ?? "unknown",
    ),
    provider,
    threads,
    cpu: cpuNumerics(),
    canary: h.digest("hex"),
  };
  if (portable) fp.wasm_binary = PORTABLE_WASM_SHA256;
  if (adapter) fp.adapter = adapter;
  return fp;
}
