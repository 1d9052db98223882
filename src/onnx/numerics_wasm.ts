/**
 * The portable engine: ONNX Runtime's WebAssembly build (onnxruntime-web), the same binary on
 * every machine. WebAssembly fixes float semantics (IEEE 754, round-to-nearest, no fused
 * multiply-add in fixed-width SIMD), so with one binary and one thread count every kernel rounds
 * alike on any x86-64 or arm64 CPU; only NaN bit patterns may differ.
 *
 * - The binary is pinned by digest (PORTABLE_WASM_SHA256): the one shipped with
 *   onnxruntime-web 1.30.0, checked to contain no relaxed-SIMD instruction (relaxed SIMD lets the
 *   engine pick FMA or not per CPU; docs/REPRODUCIBILITY.md says how it was checked). A different
 *   binary is refused rather than trusted.
 * - It is loaded through `require` so that it shares onnxruntime-common with onnxruntime-node:
 *   one Tensor class, so feeds built with session.ts's `ort.Tensor` go to either engine.
 * - Its thread pool is process-wide and sized once (env.wasm.numThreads), so one process runs
 *   portable graphs at one thread count; asking for another is an error, not a silent change.
 *   Manifests ask for 1 (manifest/validate.ts PORTABLE_THREADS): the multi-threaded build
 *   deadlocks in Deno on the trainer's gradient graph.
 */
import { createRequire } from "node:module";
import { createHash } from "node:crypto";
import { ArpoError, describeError } from "../errors.ts";

type OrtModule = typeof import("onnxruntime-web");

/** The onnxruntime-web version the portable engine runs (deno.json pins the same). */
export const PORTABLE_ENGINE = "onnxruntime-web";
export const PORTABLE_VERSION = "1.30.0";

/** sha256 of dist/ort-wasm-simd-threaded.wasm of onnxruntime-web 1.30.0. */
export const PORTABLE_WASM_SHA256 =
  "3398c10d07d229bd91b364548e130e0e51a8e5704b88c7c083ebbeb78842dee2";

/** The loaded portable engine. */
export interface WasmEngine {
  ort: OrtModule;
  /** The WebAssembly thread count of this process. */
  threads: number;
  /** sha256 of the binary running (PORTABLE_WASM_SHA256). */
  binary: string;
}

let loading: { threads: number; engine: Promise<WasmEngine> } | undefined;

/**
 * The portable engine with `threads` WebAssembly threads, loaded on first use. Throws an
 * ArpoError when this process already runs it at another thread count, or when the binary is not
 * the pinned one.
 *
 * @param threads The thread count (≥ 1); part of a portable run's identity (runtime.threads).
 * @param nodeTensor onnxruntime-node's Tensor class, which the engine must share.
 */
export function wasmEngine(threads: number, nodeTensor: unknown): Promise<WasmEngine> {
  if (!Number.isInteger(threads) || threads < 1) {
    throw new ArpoError(`portable numerics: the thread count must be ≥ 1, got ${threads}`);
  }
  if (loading) {
    if (loading.threads !== threads) {
      throw new ArpoError(
        `portable numerics: this process runs onnxruntime-web with ${loading.threads} ` +
          `thread(s) (its WebAssembly thread pool is sized once per process); a run with ` +
          `runtime.threads ${threads} needs a process of its own`,
      );
    }
    return loading.engine;
  }
  const engine = load(threads, nodeTensor);
  loading = { threads, engine };
  // A failed load is not cached: the error is reported, and a later call tries again.
  engine.catch(() => {
    if (loading?.engine === engine) loading = undefined;
  });
  return engine;
}

async function load(threads: number, nodeTensor: unknown): Promise<WasmEngine> {
  const require = createRequire(import.meta.url);
  let ortw: OrtModule, binaryPath: string;
  try {
    ortw = require("onnxruntime-web") as OrtModule;
    binaryPath = require.resolve("onnxruntime-web/ort-wasm-simd-threaded.wasm");
  } catch (e) {
    throw new ArpoError(
      `portable numerics: onnxruntime-web could not be loaded (${describeError(e)}); it is ` +
        `pinned in deno.json (npm:onnxruntime-web@${PORTABLE_VERSION}): run \`deno install\``,
      { cause: e },
    );
  }
  const version = ortw.env.versions?.web;
  if (version !== PORTABLE_VERSION) {
    throw new ArpoError(
      `portable numerics: onnxruntime-web ${version} is installed, but the portable engine ` +
        `is ${PORTABLE_ENGINE} ${PORTABLE_VERSION}`,
    );
  }
  if (ortw.Tensor !== nodeTensor) {
    throw new ArpoError(
      "portable numerics: onnxruntime-web and onnxruntime-node do not share onnxruntime-common " +
        "(their versions differ?), so tensors cannot pass between them",
    );
  }
  const bytes = await Deno.readFile(binaryPath);
  const binary = createHash("sha256").update(bytes).digest("hex");
  if (binary !== PORTABLE_WASM_SHA256) {
    throw new ArpoError(
      `portable numerics: ${binaryPath} has sha256 ${binary}, not the binary the portable ` +
        `engine was checked with (${PORTABLE_WASM_SHA256}: no relaxed SIMD); reinstall ` +
        `onnxruntime-web ${PORTABLE_VERSION}`,
    );
  }
  const wasm = ortw.env.wasm;
  wasm.numThreads = threads;
  // Fixed-width SIMD128 only: "relaxed" would allow CPU-dependent results.
  wasm.simd = "fixed";
  wasm.proxy = false;
  // Exactly the bytes hashed above, not whatever file the loader would find.
  wasm.wasmBinary = bytes;
  return { ort: ortw, threads, binary };
}
