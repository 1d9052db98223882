/**
 * Which engine computes the graphs: `native` (onnxruntime-node: MLAS kernels chosen by the CPU's
 * instruction set, so rounding depends on the machine) or `portable` (onnxruntime-web's
 * WebAssembly build: one binary, fixed-width SIMD, one thread, so the same bytes on any
 * x86-64 or arm64 machine). The runner sets it per stage with `withNumerics`; createSession
 * (session.ts) reads it, so the decoder, the policy and the trainer need no option of their own.
 * Scoped with AsyncLocalStorage rather than a global, so concurrent runs in one process (a sweep,
 * tests) each get their own. This module loads no ONNX Runtime.
 */
import { AsyncLocalStorage } from "node:async_hooks";

/** The manifest's `runtime.numerics`. */
export type Numerics = "native" | "portable";

export const NUMERICS: readonly Numerics[] = ["native", "portable"];

/** The engine in effect: the mode and, for portable, the WebAssembly thread count. */
export type NumericsScope = { mode: "native" } | { mode: "portable"; threads: number };

const scope = new AsyncLocalStorage<NumericsScope>();

/** Run `fn` (and every session it creates, across awaits) under `numerics`. */
export function withNumerics<T>(numerics: NumericsScope, fn: () => T): T {
  return scope.run(numerics, fn);
}

/** The engine in effect here; native outside any `withNumerics`. */
export function currentNumerics(): NumericsScope {
  return scope.getStore() ?? { mode: "native" };
}

/** The scope a manifest's `runtime` section asks for (absent `numerics`: native). */
export function numericsOf(runtime: { numerics?: Numerics; threads: number }): NumericsScope {
  return runtime.numerics === "portable"
    ? { mode: "portable", threads: runtime.threads }
    : { mode: "native" };
}
