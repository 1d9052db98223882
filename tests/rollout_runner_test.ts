/**
 * The eval, probe and rl dry-run stages through the real runner: manifest validation of their
 * options, plugin loading (the built-in arith benchmark and exact_match reward, a tool plugin),
 * the content-addressed store, and the same outputs when the run is forced again. The policy
 * backend is the scripted stand-in, passed to the runner as its policy factory.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadManifest } from "../src/manifest/mod.ts";
import { runManifest } from "../src/run/runner.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import type { PolicyFactory } from "../src/run/stages.ts";
import { parseTreeLines } from "../src/rollout/artifacts.ts";
import { calcScript } from "./fixtures/rollout/calc_script.ts";
import { ScriptedPolicy } from "./fixtures/rollout/scripted_policy.ts";
import { rm, scratchStore } from "./fixtures/helpers.ts";

const MANIFEST = fileURLToPath(
  new URL("./fixtures/rollout/manifests/rollout_stages.yaml", import.meta.url),
);

Deno.test("runner: eval, probe and rl dry run stages end to end, deterministic", async () => {
  const policyFactory: PolicyFactory = () => Promise.resolve(new ScriptedPolicy(calcScript));
  const store = await scratchStore();
  try {
    const view = await loadManifest(MANIFEST, { stages: BUILTIN_STAGES });
    const a = await runManifest({ store, view, policyFactory });
    assert.deepEqual(a.computed, ["eval", "probe", "rl"]);
    const ev = a.record.stages.eval;
    assert.deepEqual(Object.keys(ev.outputs).sort(), [
      "report",
      "results",
      "rollouts",
      "tool_calls",
    ]);
    const results = JSON.parse(
      new TextDecoder().decode(await store.getBytes(ev.outputs.results)),
    );
    assert.equal(results.summary.questions, 3);
    assert.equal(results.summary.samples_per_question, 2);
    assert.equal(results.summary.reward, "exact_match");
    assert.ok(results.summary.tools.per_trajectory > 0);
    console.log(
      `eval: pass@1 ${results.summary.pass_at["1"].estimate}, accuracy CI ` +
        `[${results.summary.accuracy.lo}, ${results.summary.accuracy.hi}]`,
    );
    // The rl dry run's trees: M per question, forks within budget, well-formed.
    const rl = a.record.stages.rl;
    const idx = JSON.parse(new TextDecoder().decode(await store.getBytes(rl.outputs.rollouts_1)));
    for (const q of idx.questions) {
      const rec = parseTreeLines(new TextDecoder().decode(await store.getBytes(q.tree)));
      assert.equal(rec.trajectories.length, 4);
      assert.ok(rec.trajectories.every((t) => typeof t.advantage === "number"));
      assert.ok(rec.toolCalls.length > 0 && rec.toolCalls.some((c) => c.error === false));
    }
    // Forced again: every stage recomputed, every output identical.
    const b = await runManifest({ store, view, policyFactory, force: true });
    assert.equal(b.runId, a.runId);
    for (const s of ["eval", "probe", "rl"]) {
      assert.deepEqual(b.record.stages[s].outputs, a.record.stages[s].outputs, s);
    }
  } finally {
    await rm(store.root);
  }
});
