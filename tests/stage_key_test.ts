// Stage keys cover what a stage actually depends on (src/run/stage_key.ts): editing a plugin a
// stage never uses leaves it reused, editing one it uses recomputes it, and a stage is keyed by
// the outputs of the stages it reads, not by every earlier stage. Real built-in kinds (sft, eval)
// on a tiny model, with plugin files copied into a scratch directory so the test can edit them.
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest } from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { runManifest } from "../src/run/runner.ts";
import { REPO, rm, scratchStore } from "./fixtures/helpers.ts";

const MANIFEST = `
name: stage-keys
seed: 3
policy:
  init: { hidden_size: 16, layers: 1, heads: 2, kv_heads: 2, intermediate_size: 32, max_position: 256 }
plugins:
  rewards:
    - use: ./reward.ts
      as: reward
  benchmarks:
    - use: ./arith.ts
      as: arith
      with: { system: null, demo_style: short, digits: [2, 2], terms: [2, 2], sizes: { train: 8, rl: 2, test: 2 } }
stages:
  - sft: { benchmarks: [arith], epochs: 1, batch_size: 4, lr: 1e-3 }
  - eval: { name: eval_sft, questions: 2, rollout: { rollouts: 2 }, sampling: { max_tokens: 8 } }
  - eval: { name: eval_last, questions: 1, rollout: { rollouts: 1 }, sampling: { max_tokens: 8 } }
`;

async function scratch(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "arpo-keys-" });
  await Deno.copyFile(join(REPO, "plugins/rewards/exact_match.ts"), join(dir, "reward.ts"));
  await Deno.copyFile(join(REPO, "plugins/benchmarks/arith.ts"), join(dir, "arith.ts"));
  await Deno.writeTextFile(join(dir, "m.yaml"), MANIFEST);
  return dir;
}

async function run(
  dir: string,
  store: Awaited<ReturnType<typeof scratchStore>>,
  set: string[] = [],
) {
  const view = await loadManifest(join(dir, "m.yaml"), { stages: BUILTIN_STAGES, overrides: set });
  return await runManifest({ store, view });
}

async function appendComment(path: string) {
  await Deno.writeTextFile(path, (await Deno.readTextFile(path)) + "\n// an edit\n");
}

Deno.test("stage keys: an edited plugin recomputes the stages that use it, and only those", async () => {
  const dir = await scratch();
  const store = await scratchStore();
  try {
    const a = await run(dir, store);
    assert.deepEqual(a.computed, ["sft", "eval_sft", "eval_last"]);

    // The reward is used by the evals only: sft is reused, both evals recompute.
    await appendComment(join(dir, "reward.ts"));
    const b = await run(dir, store);
    assert.notEqual(b.runId, a.runId, "the run id covers every plugin");
    assert.deepEqual(b.reused, ["sft"]);
    assert.deepEqual(b.computed, ["eval_sft", "eval_last"]);
    assert.equal(b.record.stages.sft.key, a.record.stages.sft.key);
    assert.notEqual(b.record.stages.eval_sft.key, a.record.stages.eval_sft.key);
    assert.deepEqual(b.record.stages.eval_sft.outputs, a.record.stages.eval_sft.outputs);

    // The benchmark is used by every stage: all recompute.
    await appendComment(join(dir, "arith.ts"));
    const c = await run(dir, store);
    assert.deepEqual(c.computed, ["sft", "eval_sft", "eval_last"]);
    // sft's weights are byte-identical (a comment changes no behaviour), so its readers'
    // inputs are the same; their keys still changed, because they use the edited benchmark.
    assert.equal(c.record.stages.sft.outputs.weights, a.record.stages.sft.outputs.weights);
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("stage keys: a stage is keyed by the stages it reads, not by every earlier stage", async () => {
  const dir = await scratch();
  const store = await scratchStore();
  try {
    const a = await run(dir, store);
    // eval_last reads sft's weights only: a change to eval_sft leaves it reused.
    const b = await run(dir, store, ["stages.eval_sft.sampling.max_tokens=6"]);
    assert.deepEqual(b.computed, ["eval_sft"]);
    assert.deepEqual(b.reused, ["sft", "eval_last"]);
    assert.equal(b.record.stages.eval_last.key, a.record.stages.eval_last.key);
    // `from: policy` reads no stage: eval_last no longer depends on sft's weights.
    const c = await run(dir, store, ["stages.eval_last.from=policy"]);
    assert.deepEqual(c.computed, ["eval_last"]);
    const d = await run(dir, store, [
      "stages.eval_last.from=policy",
      "stages.sft.lr=2e-3",
    ]);
    assert.deepEqual(d.computed, ["sft", "eval_sft"], "a changed sft does not touch eval_last");
    assert.equal(d.record.stages.eval_last.key, c.record.stages.eval_last.key);
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});
