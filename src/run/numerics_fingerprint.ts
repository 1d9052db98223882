/**
 * The numerics fingerprint as stored (run records and their stages): its shape, and how two are
 * compared and described. Computing one (the canary) is run/numerics.ts, which loads ONNX
 * Runtime; readers (`show`, `diff`, `verify`) need only this.
 */
import type { CpuNumerics } from "../onnx/numerics_cpu.ts";
import type { Numerics } from "../onnx/numerics_mode.ts";
import type { Engine, Provider } from "../onnx/session.ts";
import type { Json } from "../store/canonical.ts";

export const NUMERICS_FORMAT = "arpo-numerics/1";

/** What computed a run's (or a stage's) numbers. JSON, as stored in the run record. */
export type NumericsFingerprint = {
  format: typeof NUMERICS_FORMAT;
  /** The manifest's runtime.numerics. */
  numerics: Numerics;
  engine: Engine;
  /** Version of the engine package that ran (env.versions). */
  engine_version: string;
  provider: Provider;
  /** Intra-op threads (native) or WebAssembly threads (portable). */
  threads: number;
  cpu: CpuNumerics;
  /** GPU providers: the adapter that ran (webgpu: the Vulkan device name). */
  adapter?: string;
  /** Portable: sha256 of the WebAssembly binary that ran. */
  wasm_binary?: string;
  /** sha256 of the canary's outputs on this engine, provider and thread count. */
  canary: string;
};

/** The fields whose equality means "computes alike" (the CPU is descriptive; the canary decides). */
const DECIDING = [
  "numerics",
  "engine",
  "engine_version",
  "provider",
  "adapter",
  "threads",
  "canary",
] as const;

/** The fingerprint a record or stage holds, if it is one (records from before have none). */
export function asFingerprint(v: Json | undefined): NumericsFingerprint | undefined {
  const f = v as Partial<NumericsFingerprint> | undefined;
  return f && typeof f === "object" && f.format === NUMERICS_FORMAT && typeof f.canary === "string"
    ? f as NumericsFingerprint
    : undefined;
}

/** Whether two fingerprints compute alike: same engine, version, provider, adapter, threads and canary. */
export function sameNumerics(a: NumericsFingerprint, b: NumericsFingerprint): boolean {
  return DECIDING.every((k) => a[k] === b[k]);
}

/** One field that differs between two fingerprints (`cpu.isa`, `canary`, …). */
export interface NumericsDifference {
  field: string;
  a: Json | undefined;
  b: Json | undefined;
  /** Whether it decides `sameNumerics` (the CPU fields only describe). */
  deciding: boolean;
}

function flat(fp: NumericsFingerprint): Map<string, Json> {
  const out = new Map<string, Json>();
  for (const [k, v] of Object.entries(fp)) {
    if (k === "cpu") {
      for (const [c, x] of Object.entries(v as CpuNumerics)) {
        out.set(`cpu.${c}`, Array.isArray(x) ? x.join(" ") : x);
      }
    } else if (v !== undefined) out.set(k, v as Json);
  }
  return out;
}

/** Every field of `a` and `b` that differs, deciding fields first. */
export function numericsDifferences(
  a: NumericsFingerprint,
  b: NumericsFingerprint,
): NumericsDifference[] {
  const fa = flat(a), fb = flat(b);
  const out: NumericsDifference[] = [];
  for (const field of [...new Set([...fa.keys(), ...fb.keys()])]) {
    const x = fa.get(field), y = fb.get(field);
    if (JSON.stringify(x) === JSON.stringify(y)) continue;
    out.push({ field, a: x, b: y, deciding: (DECIDING as readonly string[]).includes(field) });
  }
  return out.sort((p, q) => Number(q.deciding) - Number(p.deciding));
}

/**
 * One line: `native: onnxruntime-node 1.30.0 on cpu, 2 threads; <vendor> <model> (x86_64, MLAS
 * class avx512: …); canary <16 hex digits>`.
 */
export function describeNumerics(fp: NumericsFingerprint): string {
  const c = fp.cpu;
  const isa = `${c.isa}${c.isa_features.length ? ": " + c.isa_features.join(" ") : ""}`;
  const cpu = fp.numerics === "portable"
    ? `${c.arch}; its class ${c.isa} does not enter the WebAssembly engine's numerics`
    : `${c.arch}, MLAS class ${isa}`;
  const on = fp.adapter ? `${fp.provider} (${fp.adapter})` : fp.provider;
  return `${fp.numerics}: ${fp.engine} ${fp.engine_version} on ${on}, ` +
    `${fp.threads} thread${fp.threads === 1 ? "" : "s"}; ${c.vendor} ${c.model} (${cpu}); ` +
    `canary ${fp.canary.slice(0, 16)}`;
}
