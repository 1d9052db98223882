// The multi-hop experiment (experiments/kbqa.yaml) runs end to end with small budgets: sft on
// search → result → search demonstrations, an eval and an ARPO rl step with the real local search
// tool over the benchmark's generated documents and the sandboxed python tool.
import assert from "node:assert/strict";
import { join } from "node:path";
import { arpo, REPO, rm, setFlags } from "./fixtures/helpers.ts";

const SMALL = setFlags([
  "policy.init.hidden_size=32",
  "policy.init.layers=1",
  "policy.init.intermediate_size=64",
  "plugins.benchmarks[0].with.people=60",
  "plugins.benchmarks[0].with.companies=12",
  "plugins.benchmarks[0].with.cities=10",
  "plugins.benchmarks[0].with.countries=4",
  "plugins.benchmarks[0].with.sizes={train: 16, rl: 4, test: 2}",
  "stages.sft.epochs=1",
  "stages.eval_sft.questions=2",
  "stages.eval_sft.sampling.max_tokens=64",
  "stages.rl.steps=1",
  "stages.rl.questions_per_step=2",
  "stages.rl.minibatch=1",
  "stages.rl.rollout.rollouts=2",
  "stages.rl.rollout.initial=1",
  "stages.rl.sampling.max_tokens=64",
  "stages.eval.questions=2",
  "stages.eval.sampling.max_tokens=64",
]);

Deno.test("experiments: kbqa (reduced) runs every stage with search and python", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-kbqa-" });
  try {
    const out = await arpo([
      "exp",
      join(REPO, "experiments", "kbqa.yaml"),
      "--store",
      join(dir, "store"),
      "--progress",
      "none",
      "--json",
      "--no-report",
      ...SMALL,
    ], dir);
    assert.equal(out.code, 0, out.stderr + out.stdout);
    const summary = JSON.parse(out.stdout);
    assert.deepEqual(Object.keys(summary.stages), ["sft", "eval_sft", "rl", "eval"]);
    assert.equal(summary.stages.sft.metrics.demonstrations, 16);
    assert.ok(summary.stages.rl.outputs.weights);
  } finally {
    await rm(dir);
  }
});
