/**
 * The real stages write their part of the HTML report: a small pipeline through the runner (a
 * tiny freshly initialized policy, the built-in arith benchmark and exact_match reward, the calc
 * tool plugin as `python`): sft → eval → rl (GRPO, evaluated every step) → probe. Checks that
 * buildReportData finds each stage's `report` output (sft and rl training curves, the eval table
 * with its confidence interval, the probe's entropy curves) and that the page has its training
 * and evaluation sections; and that a forced re-run writes the same report bytes. Then the rl dry
 * run (scripted policy): its report lists its batches, from which the report draws its curves.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadManifest, parseManifest } from "../src/manifest/mod.ts";
import { runManifest } from "../src/run/runner.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import type { PolicyFactory } from "../src/run/stages.ts";
import { buildReportData } from "../src/report/build.ts";
import { renderReport } from "../src/report/render.ts";
import { STAGE_REPORT_FORMAT, type StageReport } from "../src/report/data.ts";
import { rm, scratchStore } from "./fixtures/helpers.ts";
import { calcScript } from "./fixtures/rollout/calc_script.ts";
import { ScriptedPolicy } from "./fixtures/rollout/scripted_policy.ts";

// Named as if it lay beside the rollout fixtures, so `../plugins/calc.ts` resolves there.
const FILE = fileURLToPath(
  new URL("./fixtures/rollout/manifests/report_stages.yaml", import.meta.url),
);

/** eval, probe and an rl dry run with the scripted policy (as tests/rollout_runner_test.ts). */
const DRY_RUN = fileURLToPath(
  new URL("./fixtures/rollout/manifests/rollout_stages.yaml", import.meta.url),
);

const MANIFEST = `
name: report-stages
seed: 7
policy:
  init: { architecture: llama, hidden_size: 32, layers: 1, heads: 4, kv_heads: 2,
          intermediate_size: 64, max_position: 512 }
plugins:
  tools:
    - use: ../plugins/calc.ts
      as: python
  rewards:
    - use: exact_match
  benchmarks:
    - use: arith
      with: { sizes: { train: 4, rl: 4, test: 4 }, system: null, demo_style: short,
              digits: [1, 2], terms: [2, 2] }
stages:
  - sft: { benchmarks: [arith], epochs: 1, batch_size: 2, lr: 0.01 }
  - eval: { benchmark: arith, questions: 2, reward: exact_match,
            rollout: { rollouts: 2, initial: 2 }, sampling: { max_tokens: 12 } }
  - rl:
      benchmark: arith
      split: rl
      reward: exact_match
      steps: 2
      questions_per_step: 2
      minibatch: 2
      lr: 0.001
      eval_every: 1
      eval_questions: 2
      eval_sampling: { max_tokens: 12 }
      rollout: { algorithm: grpo, rollouts: 2, initial: 2 }
      sampling: { max_tokens: 12 }
  - probe: { benchmark: arith, questions: 2, samples: 2, max_distance: 8,
             sampling: { max_tokens: 12 } }
`;

async function stageReport(
  store: Awaited<ReturnType<typeof scratchStore>>,
  digest: string | undefined,
): Promise<StageReport> {
  assert.ok(digest, "the stage has a report output");
  const r = await store.getJson<StageReport>(digest);
  assert.equal(r.format, STAGE_REPORT_FORMAT);
  return r;
}

Deno.test("report: sft, eval, rl and probe stages write their report parts", async () => {
  const store = await scratchStore();
  try {
    const view = parseManifest(MANIFEST, FILE, { stages: BUILTIN_STAGES });
    const a = await runManifest({ store, view });
    assert.deepEqual(a.computed, ["sft", "eval", "rl", "probe"]);
    const st = a.record.stages;

    // The stage outputs themselves.
    const sft = await stageReport(store, st.sft.outputs.report);
    const sftCurve = (await store.getJson<{ steps: { loss: number }[] }>(st.sft.outputs.curve))
      .steps;
    assert.equal(sft.training?.[0].algorithm, "sft");
    assert.deepEqual(sft.training?.[0].steps.map((s) => s.loss), sftCurve.map((s) => s.loss));
    assert.equal(sftCurve.length, 2); // 4 demonstrations, batches of 2, one epoch

    const rl = await stageReport(store, st.rl.outputs.report);
    const series = rl.training![0];
    assert.equal(series.algorithm, "grpo");
    assert.deepEqual(series.steps.map((s) => s.step), [0, 1, 2]);
    assert.deepEqual(rl.rollouts, [st.rl.outputs.rollouts_0, st.rl.outputs.rollouts_1]);
    for (const s of series.steps) assert.equal(typeof s.accuracy, "number", `accuracy @${s.step}`);
    for (const s of series.steps.slice(1)) {
      for (const k of ["reward", "loss", "gradNorm", "entropy", "responseLength"] as const) {
        assert.ok(Number.isFinite(s[k]), `step ${s.step}: ${k} = ${s[k]}`);
      }
      assert.equal(typeof s.toolCallsPerTrajectory, "number");
      assert.equal(typeof s.branchesPerQuestion, "number");
    }
    const batch1 = await store.getJson<{ metrics: { reward: { mean: number } } }>(
      st.rl.outputs.rollouts_1,
    );
    assert.equal(series.steps[2].reward, batch1.metrics.reward.mean);

    const ev = await stageReport(store, st.eval.outputs.report);
    const results = await store.getJson<{ summary: Record<string, unknown> }>(
      st.eval.outputs.results,
    );
    const bench = ev.evals![0].benchmarks[0];
    assert.equal(ev.evals![0].label, "eval");
    assert.equal(bench.benchmark, "arith");
    assert.equal(bench.split, "test");
    assert.equal(bench.questions, 2);
    assert.equal(bench.samples, 2);
    assert.deepEqual(bench.accuracy, results.summary.accuracy);
    assert.equal(bench.passK?.k, 2);

    const probe = await stageReport(store, st.probe.outputs.report);
    assert.ok(probe.entropy![0].fromStart!.mean.length > 0);

    // What the report makes of them.
    const data = await buildReportData(store, a.record);
    const training = new Map(data.training!.map((t) => [t.stage, t]));
    assert.equal(training.get("sft")?.algorithm, "sft");
    assert.equal(training.get("sft")?.steps.length, 2);
    assert.equal(training.get("rl")?.steps.length, 3);
    assert.equal(training.get("rl")?.steps[1].loss, series.steps[1].loss);
    const evals = data.evals!.find((e) => e.stage === "eval")!;
    const acc = evals.benchmarks[0].accuracy as { estimate: number; lo: number; hi: number };
    assert.ok(acc.lo <= acc.estimate && acc.estimate <= acc.hi, JSON.stringify(acc));
    const probeCurves = data.entropy!.find((e) => e.stage === "probe")!;
    assert.deepEqual(probeCurves.fromResult, probe.entropy![0].fromResult);
    assert.deepEqual(probeCurves.fromStart, probe.entropy![0].fromStart);

    const html = renderReport(data);
    for (const id of ["training", "evaluation"]) {
      const m = new RegExp(`<section id="${id}">([\\s\\S]*?)</section>`).exec(html);
      assert.ok(m, `section ${id}`);
      assert.ok(m[1].replace(/<[^>]*>/g, "").trim().length > 20, `section ${id} has content`);
    }

    // Deterministic: recomputed, the same report bytes.
    const b = await runManifest({ store, view, force: true });
    for (const s of ["sft", "eval", "rl", "probe"]) {
      assert.equal(b.record.stages[s].outputs.report, st[s].outputs.report, s);
    }
  } finally {
    await rm(store.root);
  }
});

Deno.test("report: the rl dry run lists its batches; the report draws its curves from them", async () => {
  const policyFactory: PolicyFactory = () => Promise.resolve(new ScriptedPolicy(calcScript));
  const store = await scratchStore();
  try {
    const view = await loadManifest(DRY_RUN, { stages: BUILTIN_STAGES });
    const a = await runManifest({ store, view, policyFactory });
    const rl = a.record.stages.rl;
    const part = await stageReport(store, rl.outputs.report);
    assert.deepEqual(part.rollouts, [rl.outputs.rollouts_0, rl.outputs.rollouts_1]);
    assert.equal(part.training, undefined);
    const data = await buildReportData(store, a.record);
    const series = data.training!.find((t) => t.stage === "rl")!;
    assert.deepEqual(series.steps.map((s) => s.step), [0, 1]);
    assert.ok(series.steps.every((s) => (s.toolCallsPerTrajectory ?? 0) > 0));
    assert.ok(series.steps.every((s) => s.toolCallsByTool?.python !== undefined));
    // The scripted policy answers right often enough for a non-trivial accuracy interval.
    const bench = data.evals!.find((e) => e.stage === "eval")!.benchmarks[0];
    const acc = bench.accuracy as { estimate: number; lo: number; hi: number; confidence: number };
    assert.ok(acc.estimate > 0 && acc.lo <= acc.estimate && acc.estimate <= acc.hi);
    assert.equal(acc.confidence, 0.95);
    assert.ok(data.entropy!.some((e) => e.stage === "probe" && e.fromResult!.mean.length > 0));
  } finally {
    await rm(store.root);
  }
});
