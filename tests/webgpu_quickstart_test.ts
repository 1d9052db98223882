// The quickstart's eval stage (experiments/quickstart.yaml: its model, benchmark, python tool and
// reward) reduced to 2 questions × 2 rollouts of at most 40 tokens, run by `arpo exp` on
// `runtime.device: webgpu` and on cpu: the same tokens, tool calls, rewards and accuracy, every
// float (log-probabilities, entropies) within FLOAT_TOL, the webgpu run's numerics fingerprint
// naming its provider and adapter, the cpu run's naming none. Skipped, saying why, where the
// WebGPU provider cannot start.
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { webgpuStartError } from "../src/onnx/session.ts";
import { arpo, rm } from "./fixtures/helpers.ts";
import { QUICKSTART } from "./fixtures/quickstart.ts";

/** Relative difference allowed in the stored floats (f32 kernels summing in other orders). */
const FLOAT_TOL = 1e-4;

const DIGEST = /^(sha256:)?[0-9a-f]{64}$/;

/**
 * Same JSON, numbers within FLOAT_TOL, objects named by digest (which differ when floats inside
 * them do) compared by content, read from `stores`; the first difference's path.
 */
async function closeJson(
  a: unknown,
  b: unknown,
  stores: [string, string],
  path = "$",
): Promise<string | undefined> {
  if (typeof a === "number" && typeof b === "number") {
    return Math.abs(a - b) <= FLOAT_TOL * Math.max(1, Math.abs(a))
      ? undefined
      : `${path}: ${a} vs ${b}`;
  }
  if (
    typeof a === "string" && typeof b === "string" && a !== b && DIGEST.test(a) && DIGEST.test(b)
  ) {
    return await closeJson(
      await readObject(stores[0], a),
      await readObject(stores[1], b),
      stores,
      `${path}→`,
    );
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return `${path}: length ${a.length} vs ${b.length}`;
    for (let i = 0; i < a.length; i++) {
      const d = await closeJson(a[i], b[i], stores, `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (a && b && typeof a === "object" && typeof b === "object") {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      const d = await closeJson(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        stores,
        `${path}.${k}`,
      );
      if (d) return d;
    }
    return undefined;
  }
  return a === b ? undefined : `${path}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
}

/** An object of the store as JSON values (one, or one per line). */
async function readObject(store: string, digest: string): Promise<unknown[]> {
  const hex = digest.replace(/^sha256:/, "");
  const text = await Deno.readTextFile(
    join(store, "objects", "sha256", hex.slice(0, 2), hex.slice(2)),
  );
  try {
    return [JSON.parse(text)];
  } catch {
    return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  }
}

const why = await webgpuStartError();
if (why) console.log(`webgpu tests skipped: the WebGPU provider cannot start here (${why})`);

/** quickstart.yaml with only its first eval, from the initial policy, at a test's budget. */
async function reducedEval(dir: string, device: string): Promise<string> {
  const m = parse(await Deno.readTextFile(QUICKSTART));
  const evalSft = m.stages.find((s: Record<string, { name?: string }>) =>
    s.eval?.name === "eval_sft"
  );
  evalSft.eval = {
    ...evalSft.eval,
    from: "policy",
    questions: 2,
    rollout: { rollouts: 2 },
    sampling: { max_tokens: 40 },
  };
  m.stages = [evalSft];
  m.plugins.benchmarks[0].with.sizes = { train: 4, rl: 4, test: 4 };
  m.runtime = { ...m.runtime, device, threads: 1 };
  const path = join(dir, `quickstart-eval-${device}.yaml`);
  await Deno.writeTextFile(path, stringify(m));
  return path;
}

Deno.test({
  name: "webgpu quickstart (reduced eval): the CPU's results, the adapter in the fingerprint",
  ignore: !!why,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "arpo-webgpu-qs-" });
    try {
      // deno-lint-ignore no-explicit-any
      const out: Record<string, { record: any; store: string }> = {};
      for (const device of ["cpu", "webgpu"]) {
        const store = join(dir, `store-${device}`);
        const run = await arpo(
          ["exp", await reducedEval(dir, device), "--store", store, "--progress", "none", "--json"],
          dir,
        );
        assert.equal(run.code, 0, run.stderr + run.stdout);
        const id: string = JSON.parse(run.stdout).runId;
        const record = JSON.parse(await Deno.readTextFile(join(store, "runs", `${id}.json`)));
        assert.equal(record.status, "complete");
        out[device] = { record, store };
      }
      const gpu = out.webgpu.record.numerics, cpu = out.cpu.record.numerics;
      assert.equal(gpu.provider, "webgpu", JSON.stringify(gpu));
      assert.ok(typeof gpu.adapter === "string" && gpu.adapter.length > 0, JSON.stringify(gpu));
      assert.equal(cpu.provider, "cpu");
      assert.equal(cpu.adapter, undefined);
      assert.deepEqual(
        out.webgpu.record.stages.eval_sft.metrics,
        out.cpu.record.stages.eval_sft.metrics,
      );
      // Every output of the eval (results, rollout trees, tool calls, report), by content.
      const d = await closeJson(
        out.webgpu.record.stages.eval_sft.outputs,
        out.cpu.record.stages.eval_sft.outputs,
        [out.webgpu.store, out.cpu.store],
      );
      assert.equal(d, undefined, "eval outputs");
    } finally {
      await rm(dir);
    }
  },
});
