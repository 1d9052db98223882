// The default experiment end to end with small budgets: the real manifest (experiments/
// quickstart.yaml) with --set overrides, every stage kind (sft → eval → rl (ARPO) → eval →
// probe) on the real ONNX policy and the sandboxed python tool, then the HTML report and
// `verify` of the run.
import assert from "node:assert/strict";
import { join } from "node:path";
import { arpo, rm } from "./fixtures/helpers.ts";
import { QUICKSTART, quickstartSets } from "./fixtures/quickstart.ts";

const SMALL = quickstartSets({
  sizes: { train: 48, rl: 16, test: 6 },
  questions: 6,
  probeQuestions: 3,
  steps: 2,
});

Deno.test("quickstart (reduced): every stage runs, the report renders, verify reproduces it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-qs-" });
  const store = join(dir, "store");
  const manifest = QUICKSTART;
  try {
    const run = await arpo(
      ["exp", manifest, "--store", store, "--progress", "none", "--json", ...SMALL],
      dir,
    );
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const summary = JSON.parse(run.stdout);
    const id: string = summary.runId;
    assert.match(id, /^[0-9a-f]{64}$/, run.stdout);

    const record = JSON.parse(await Deno.readTextFile(join(store, "runs", `${id}.json`)));
    assert.equal(record.status, "complete");
    const stages = Object.keys(record.stages);
    assert.deepEqual(stages, ["sft", "eval_sft", "rl", "eval", "probe"]);
    assert.ok(record.stages.sft.outputs.weights, "sft produced weights");
    assert.ok(record.stages.rl.outputs.weights, "rl produced weights");
    assert.ok(record.stages.eval.outputs.results, "eval produced results");

    // The report: a self-contained HTML file with the sections a run of this shape supports.
    const report = join(store, "reports", `${id}.html`);
    const html = await Deno.readTextFile(report);
    for (const section of ["stages", "training", "evaluation", "entropy", "rollouts"]) {
      assert.ok(html.includes(`<section id="${section}">`), `report section ${section}`);
    }
    assert.ok(!/<script[^>]+src=/.test(html), "no external scripts");

    // A second invocation computes nothing and prints the same run id.
    const again = await arpo(
      ["exp", manifest, "--store", store, "--progress", "none", "--json", ...SMALL],
      dir,
    );
    assert.equal(again.code, 0, again.stderr);
    const s2 = JSON.parse(again.stdout);
    assert.equal(s2.runId, id);
    assert.deepEqual(s2.computed, []);

    // The paired comparison of the evals before and after RL.
    const cmp = await arpo(
      ["compare", `${id.slice(0, 12)}:eval_sft`, "eval", "--store", store, "--json"],
      dir,
    );
    assert.equal(cmp.code, 0, cmp.stderr);
    const c = JSON.parse(cmp.stdout);
    assert.equal(c.questions, 6);
    for (const m of c.metrics) {
      assert.ok(Math.abs(m.difference - (m.b - m.a)) < 1e-12, JSON.stringify(m));
      assert.ok(m.lo <= m.difference + 1e-12 && m.difference <= m.hi + 1e-12, JSON.stringify(m));
    }
    const notEval = await arpo(
      ["compare", `${id.slice(0, 12)}:sft`, "eval", "--store", store],
      dir,
    );
    assert.equal(notEval.code, 1);
    assert.match(notEval.stderr, /stage 'sft' .* is a sft stage with no eval results/);

    const verify = await arpo(["verify", id.slice(0, 12), "--store", store], dir);
    assert.equal(verify.code, 0, verify.stderr + verify.stdout);
  } finally {
    await rm(dir);
  }
});
