/**
 * The CPU as ONNX Runtime's MLAS sees it: vendor, model and the instruction-set class its kernels
 * are chosen by. MLAS picks its GEMM, reduction and activation kernels from CPUID at run time
 * (SSE → AVX → AVX2/FMA3 → AVX-512F → AVX-512 core; NEON, dot-product, fp16, i8mm, SVE on arm64)
 * and no option forces one, so two machines of one architecture can round floats differently.
 * The class is read from /proc/cpuinfo (Linux); elsewhere it is "unknown" and only the canary
 * digest (run/numerics.ts) tells whether two machines compute alike.
 */

/** What a numerics fingerprint says about the CPU. */
export type CpuNumerics = {
  /** Deno.build.arch: x86_64 or aarch64. */
  arch: string;
  /** vendor_id (x86) or the implementer's name (arm64); "unknown" without /proc/cpuinfo. */
  vendor: string;
  /** model name (x86), or implementer/part (arm64). */
  model: string;
  /**
   * The class MLAS dispatches its fp32 kernels on: `avx512` (F+BW+DQ+VL, "AVX-512 core"),
   * `avx512f`, `avx2-fma`, `avx`, `sse` on x86-64; `neon` or `neon-sve` on arm64; `unknown`.
   */
  isa: string;
  /**
   * The features present that select further MLAS kernels (int8, bf16, fp16, AMX…), sorted: two
   * CPUs of one class that differ here may still differ in quantized or half-precision kernels.
   */
  isa_features: string[];
};

/** x86 flags that change which MLAS kernels run. */
const X86_FEATURES = [
  "avx",
  "avx2",
  "fma",
  "f16c",
  "avx512f",
  "avx512bw",
  "avx512dq",
  "avx512vl",
  "avx512_vnni",
  "avx512_bf16",
  "avx512_fp16",
  "avx_vnni",
  "amx_tile",
  "amx_int8",
  "amx_bf16",
];

/** arm64 features (/proc/cpuinfo `Features`) that change which MLAS kernels run. */
const ARM_FEATURES = ["asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2"];

/** arm64 implementer codes (MIDR bits 31:24) as /proc/cpuinfo prints them. */
const ARM_IMPLEMENTERS: Record<string, string> = {
  "0x41": "ARM",
  "0x42": "Broadcom",
  "0x43": "Cavium",
  "0x46": "Fujitsu",
  "0x48": "HiSilicon",
  "0x4e": "NVIDIA",
  "0x50": "Applied Micro",
  "0x51": "Qualcomm",
  "0x61": "Apple",
  "0x69": "Intel",
  "0x6d": "Microsoft",
  "0xc0": "Ampere",
};

/** The first value of `key` in /proc/cpuinfo text (fields are `key<tabs>: value`). */
function field(text: string, key: string): string | undefined {
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i > 0 && line.slice(0, i).trim() === key) return line.slice(i + 1).trim();
  }
  return undefined;
}

/** The MLAS fp32 class of a set of x86 flags. */
function x86Class(f: ReadonlySet<string>): string {
  if (f.has("avx512f")) {
    return ["avx512bw", "avx512dq", "avx512vl"].every((x) => f.has(x)) ? "avx512" : "avx512f";
  }
  if (f.has("avx2") && f.has("fma")) return "avx2-fma";
  if (f.has("avx")) return "avx";
  return "sse";
}

/**
 * The CPU fingerprint from /proc/cpuinfo text and the architecture.
 *
 * @param cpuinfo The text of /proc/cpuinfo ("" when there is none).
 * @param arch Deno.build.arch.
 */
export function parseCpuinfo(cpuinfo: string, arch: string): CpuNumerics {
  if (arch === "x86_64") {
    const flags = new Set((field(cpuinfo, "flags") ?? "").split(/\s+/).filter(Boolean));
    return {
      arch,
      vendor: field(cpuinfo, "vendor_id") ?? "unknown",
      model: field(cpuinfo, "model name") ?? "unknown",
      isa: flags.size ? x86Class(flags) : "unknown",
      isa_features: X86_FEATURES.filter((x) => flags.has(x)).sort(),
    };
  }
  if (arch === "aarch64") {
    const feats = new Set((field(cpuinfo, "Features") ?? "").split(/\s+/).filter(Boolean));
    const impl = field(cpuinfo, "CPU implementer")?.toLowerCase();
    const part = field(cpuinfo, "CPU part");
    const vendor = impl ? ARM_IMPLEMENTERS[impl] ?? `implementer ${impl}` : "unknown";
    return {
      arch,
      vendor,
      model: field(cpuinfo, "model name") ?? (part ? `${vendor} part ${part}` : "unknown"),
      // NEON is architectural on arm64; SVE adds kernels in newer MLAS.
      isa: !feats.size ? (cpuinfo ? "neon" : "unknown") : feats.has("sve") ? "neon-sve" : "neon",
      isa_features: ARM_FEATURES.filter((x) => feats.has(x)).sort(),
    };
  }
  return { arch, vendor: "unknown", model: "unknown", isa: "unknown", isa_features: [] };
}

/** This machine's CPU fingerprint (reads /proc/cpuinfo; "unknown" fields where there is none). */
export function cpuNumerics(): CpuNumerics {
  let text = "";
  try {
    text = Deno.readTextFileSync("/proc/cpuinfo");
  } catch {
    // Not Linux (or no access): the canary digest still compares machines.
  }
  return parseCpuinfo(text, Deno.build.arch);
}
