/**
 * What the WebGPU execution provider needs besides ONNX Runtime: a runtime directory for Mesa's
 * Vulkan drivers, the adapter it runs on (vulkan.ts), and the static shapes that let it reuse
 * compiled pipelines.
 *
 * Why shapes: the provider compiles one GPU pipeline per program variant, and a variant depends
 * on shape classes (a MatMul whose row count is ≤ 8 compiles another tiling than a longer one, a
 * reduction picks its workgroup from the reduced length). Compiling is slow on a software device
 * (seconds per variant on lavapipe), so every decode step should hit pipelines compiled before.
 * The policy pads, on the webgpu path only, the rows of a call (batch), its new tokens and its
 * sampled positions up to buckets (`webgpuBucket`): a handful of shapes over a whole rollout.
 */
import { preferredAdapter, type VulkanDevice, vulkanDevices } from "./vulkan.ts";

/** This user's directory for the WebGPU path (mode 0700 under the temp dir). */
function privateDir(): string {
  const dir = `${Deno.env.get("TMPDIR") ?? "/tmp"}/arpo-webgpu-${Deno.uid() ?? "user"}`;
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * Mesa's Vulkan drivers want XDG_RUNTIME_DIR (they print errors without it); when it is not set,
 * this user's private directory is used.
 */
export function ensureRuntimeDir(): void {
  if (Deno.env.get("XDG_RUNTIME_DIR")) return;
  Deno.env.set("XDG_RUNTIME_DIR", privateDir());
}

let lockPath: string | undefined;

/** The process's lock file; lock files of processes that are gone are removed. */
function processLock(): string {
  if (lockPath) return lockPath;
  const dir = privateDir();
  for (const e of Deno.readDirSync(dir)) {
    const pid = /^webgpu-(\d+)\.lock$/.exec(e.name)?.[1];
    if (pid && Number(pid) !== Deno.pid && !existsSync(`/proc/${pid}`)) {
      try {
        Deno.removeSync(`${dir}/${e.name}`);
      } catch { /* another process removed it */ }
    }
  }
  lockPath = `${dir}/webgpu-${Deno.pid}.lock`;
  return lockPath;
}

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The adapter a webgpu session runs on, as the run record names it. */
export interface WebgpuAdapter {
  name: string;
  software: boolean;
}

/** The adapter WebGPU gets here, or why there is none. */
export function webgpuAdapter(): { adapter?: WebgpuAdapter; why?: string } {
  ensureRuntimeDir();
  const d: VulkanDevice | undefined = preferredAdapter();
  if (!d) return { why: vulkanDevices().why ?? "no Vulkan device" };
  return { adapter: { name: d.name, software: d.software } };
}

/**
 * Fewest new tokens per row in a webgpu forward call. A decode step (one new token) padded to 8
 * runs the same MatMul tiling as a short prefill, so a generate compiles one set of pipelines,
 * not two (measured on lavapipe: 64 greedy tokens of tests/fixtures/model/tiny-qwen2 with a cold
 * shader cache, 13.1 s with decode at 1 token, 8.3 s at 8; a padded step took no longer). On a
 * real GPU a decode step is bound by reading the weights, which the padding does not change.
 */
export const WEBGPU_MIN_TOKENS = 8;

/** Smallest bucket ≥ n: 1, 2, 4, 8, then multiples of 8 up to 64, then powers of two. */
export function webgpuBucket(n: number): number {
  if (n <= 1) return 1;
  if (n <= 8) return 2 ** Math.ceil(Math.log2(n));
  if (n <= 64) return Math.ceil(n / 8) * 8;
  return 2 ** Math.ceil(Math.log2(n));
}

/**
 * Run `fn` with this process's WebGPU lock held. onnxruntime-node's WebGPU provider crashes the
 * process (segfault or abort) when two JS threads of one process (workers, as `deno test
 * --parallel` uses) call into it at once; one thread never does. The lock is an flock on a file
 * named by the process id, so it serializes this process's threads (every open of the file is
 * its own lock holder) and leaves other processes alone. On a system without /proc the lock
 * files of finished processes are not cleaned up (they are empty).
 */
export async function webgpuExclusive<T>(fn: () => Promise<T>): Promise<T> {
  const f = await Deno.open(processLock(), { create: true, write: true });
  try {
    await f.lock(true);
    return await fn();
  } finally {
    f.close(); // closing releases the lock
  }
}
