/**
 * The memory a model directory needs before its weights are read, checked against what the
 * machine has, so that a model that cannot fit fails in a second with the estimate instead of
 * after minutes of loading (or by the kernel's OOM killer).
 */
import { ArpoError } from "../errors.ts";
import { safetensorsSize, weightFiles } from "./safetensors.ts";

/**
 * Copies of the F32 weights, and of the largest tensor on top of them, alive at the peak of
 * loading a model for inference (the largest is the embedding: tied, it is also the LM head, packed
 * while its copy lives). `kept`: the weights as read stay (training, a library caller), next to the
 * decoder graph's transposed matrices and ONNX Runtime's copy, which it replaces tensor by tensor
 * with packed GEMM matrices. `consumed` (`consumeWeights`: the runner's inference policies, `arpo
 * model`, `arpo serve`): the weights are freed once the graph holds its matrices. Measured peaks
 * (docs/PERFORMANCE.md), kept / consumed: Qwen2.5-0.5B 6.3 / 4.4 GiB, Qwen3-0.6B 8.0 / 5.8 GiB,
 * Qwen2.5-1.5B 18.5 / 12.8 GiB; these estimates give 7.0 / 5.4, 8.3 / 6.4 and 19.5 / 14.2 GiB.
 */
export const LOAD_PEAK = {
  kept: { copies: 3, largest: 2 },
  consumed: { copies: 2, largest: 2.5 },
} as const;
/** Runtime, tokenizer and activations on top of the weights. */
const OVERHEAD_BYTES = 512 * 2 ** 20;

/** Whether the load's session takes the weights' memory (RuntimeOptions.consumeWeights). */
export type LoadUse = keyof typeof LOAD_PEAK;

export interface MemoryEstimate {
  /** F32 bytes of the weights. */
  weightBytes: number;
  /** Estimated peak resident bytes of loading. */
  peakBytes: number;
}

/** The estimate for a model directory from its safetensors headers alone. */
export async function estimateLoadMemory(
  dir: string,
  use: LoadUse = "kept",
): Promise<MemoryEstimate> {
  let f32 = 0, converted = 0, largest = 0;
  for (const file of await weightFiles(dir)) {
    const s = await safetensorsSize(file);
    f32 += s.f32Bytes;
    converted += s.convertedFileBytes;
    largest = Math.max(largest, s.largestF32Bytes);
  }
  const k = LOAD_PEAK[use];
  // BF16/F16 files are read into a buffer and converted: that buffer is alive while converting.
  return {
    weightBytes: f32,
    peakBytes: k.copies * f32 + k.largest * largest + converted + OVERHEAD_BYTES,
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
export async function checkMemory(
  dir: string,
  available?: number | null,
  use: LoadUse = "kept",
): Promise<void> {
  if (Deno.env.get("ARPO_SKIP_MEMORY_CHECK") === "1") return;
  const avail = available === undefined ? await availableMemory() : available;
  if (avail === null) return;
  const est = await estimateLoadMemory(dir, use);
  if (est.peakBytes <= avail) return;
  const k = LOAD_PEAK[use];
  throw new ArpoError(
    `model directory ${dir} will not fit in memory: its weights take ${gb(est.weightBytes)} as ` +
      `float32 and loading needs about ${gb(est.peakBytes)} at its peak (${k.copies} ` +
      `copies of the weights and ${k.largest} more of the largest tensor while ONNX ` +
      `Runtime builds its session, plus runtime), but only ` +
      `${gb(avail)} is available (MemAvailable in /proc/meminfo). Free memory, use a smaller ` +
      `model, or set ARPO_SKIP_MEMORY_CHECK=1 to try anyway.`,
  );
}
