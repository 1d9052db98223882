/**
 * The memory a model directory needs before its weights are read, checked against what the
 * machine has, so that a model that cannot fit fails in a second with the estimate instead of
 * after minutes of loading (or by the kernel's OOM killer).
 */
import { ArpoError } from "../errors.ts";
import { safetensorsSize, weightFiles } from "./safetensors.ts";

/**
 * Copies of the F32 weights alive at the peak of loading a model for inference: the weights as
 * read (HF layout, kept for digests and training), the decoder graph's transposed matrices and
 * ONNX Runtime's copy of them, which it replaces tensor by tensor with packed GEMM matrices.
 */
export const LOAD_PEAK_COPIES = 3;
/**
 * Copies of the largest tensor on top of that (the embedding: tied, it is also the LM head, which
 * is packed while its copy lives). Measured peaks, docs/PERFORMANCE.md: Qwen2.5-0.5B 6.3 GiB,
 * Qwen3-0.6B 8.0 GiB, Qwen2.5-1.5B 18.5 GiB; this estimate gives 7.0, 8.3 and 19.5 GiB.
 */
export const LOAD_PEAK_LARGEST = 2;
/** Runtime, tokenizer and activations on top of the weights. */
const OVERHEAD_BYTES = 512 * 2 ** 20;

export interface MemoryEstimate {
  /** F32 bytes of the weights. */
  weightBytes: number;
  /** Estimated peak resident bytes of loading. */
  peakBytes: number;
}

/** The estimate for a model directory from its safetensors headers alone. */
export async function estimateLoadMemory(dir: string): Promise<MemoryEstimate> {
  let f32 = 0, converted = 0, largest = 0;
  for (const file of await weightFiles(dir)) {
    const s = await safetensorsSize(file);
    f32 += s.f32Bytes;
    converted += s.convertedFileBytes;
    largest = Math.max(largest, s.largestF32Bytes);
  }
  // BF16/F16 files are read into a buffer and converted: that buffer is alive while converting.
  return {
    weightBytes: f32,
    peakBytes: LOAD_PEAK_COPIES * f32 + LOAD_PEAK_LARGEST * largest + converted + OVERHEAD_BYTES,
  };
}

/** MemAvailable of /proc/meminfo in bytes, or null where there is none (not Linux). */
export async function availableMemory(): Promise<number | null> {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(await Deno.readTextFile("/proc/meminfo"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

const gb = (b: number) => `${(b / 1e9).toFixed(1)} GB`;

/**
 * Refuse a model whose estimated peak exceeds the available memory. `ARPO_SKIP_MEMORY_CHECK=1`
 * tries anyway (the estimate is an upper bound for models whose weights are partly unused).
 */
export async function checkMemory(dir: string, available?: number | null): Promise<void> {
  if (Deno.env.get("ARPO_SKIP_MEMORY_CHECK") === "1") return;
  const avail = available === undefined ? await availableMemory() : available;
  if (avail === null) return;
  const est = await estimateLoadMemory(dir);
  if (est.peakBytes <= avail) return;
  throw new ArpoError(
    `model directory ${dir} will not fit in memory: its weights take ${gb(est.weightBytes)} as ` +
      `float32 and loading needs about ${gb(est.peakBytes)} at its peak (${LOAD_PEAK_COPIES} ` +
      `copies of the weights and ${LOAD_PEAK_LARGEST} more of the largest tensor while ONNX ` +
      `Runtime builds its session, plus runtime), but only ` +
      `${gb(avail)} is available (MemAvailable in /proc/meminfo). Free memory, use a smaller ` +
      `model, or set ARPO_SKIP_MEMORY_CHECK=1 to try anyway.`,
  );
}
