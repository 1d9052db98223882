/**
 * The eval, probe and rl dry-run stages driven directly with a hand-built StageContext (scripted
 * policy, in-memory store, a tool and a reward written as plugins are).
 */
import { type Ckpt, stageContext } from "./fixtures/stage_context.ts";
import assert from "node:assert/strict";
import { evalOptionsSchema, runEval } from "../src/run/stages/eval.ts";
import { probeOptionsSchema, runProbe } from "../src/run/stages/probe.ts";
import { rlOptionsSchema } from "../src/run/stages/rl.ts";
import { runRlDryRun, stepTasks } from "../src/run/stages/rl_rollout.ts";
import { rolloutTasks, stageTools } from "../src/run/stages/rollout_shared.ts";
import { parseRolloutConfig } from "../src/rollout/config.ts";
import type { Benchmark, Reward, Task, Tool } from "../src/plugin/contracts.ts";
import { Stream } from "../src/rng.ts";
import { parseTreeLines } from "../src/rollout/artifacts.ts";
import { type Script, ScriptedPolicy } from "./fixtures/rollout/scripted_policy.ts";

const tasks: Task[] = Array.from({ length: 6 }, (_, i) => ({
  id: `t${i}`,
  prompt: `what is ${i}+${i}?`,
  answers: [String(2 * i)],
}));

/** Calls python, then answers right (the result) or wrong, by its own draws. */
const script: Script = (ctx) => {
  const h = 0.5 + 2 * ctx.draw();
  if (!ctx.response.includes("<result>")) {
    const m = /what is (\d+)\+(\d+)/.exec(ctx.prompt)!;
    return [{ text: `<think>hm</think><python>${m[1]}+${m[2]}</python>`, entropy: h }];
  }
  const r = /<result>\n(\d+)\n/.exec(ctx.response)![1];
  const ans = ctx.draw() < 0.6 ? r : "7";
  return [{ text: `<answer>\\boxed{${ans}}</answer><eos>`, entropy: h / 2 }];
};

const python: Tool = {
  kind: "tool",
  tag: "python",
  description: "adds",
  call: (input) => String(input.split("+").reduce((a, b) => a + Number(b), 0)),
};
const reward: Reward = {
  kind: "reward",
  score: (s) => {
    const m = /\\boxed\{(\d+)\}/.exec(s.response);
    const ok = m !== null && s.answers.includes(m[1]);
    return { reward: ok ? 1 : 0, parts: { correct: ok } };
  },
};
const bench: Benchmark = { kind: "benchmark", splits: ["train", "test"], tasks: () => tasks };

/** A hand-built context; `options` as the stage's schema produced them (the runner's job). */
function makeCtx(kind: string, options: object, checkpoint?: Ckpt) {
  const policy = new ScriptedPolicy(script);
  const c = stageContext({
    kind,
    options,
    seed: 5,
    tools: { python },
    rewards: { em: reward },
    benchmarks: { arith: bench },
    checkpoint,
    policy: () => policy,
  });
  return { ...c, policy };
}

const sampling = { temperature: 1, top_p: 1, top_k: 0, max_tokens: 200, max_tool_calls: 3 };

Deno.test("eval stage: pass@k, accuracy, CIs and tool statistics", async () => {
  const opts = evalOptionsSchema.parse({
    benchmark: "arith",
    split: "test",
    questions: 5,
    rollout: { algorithm: "grpo", rollouts: 4, initial: 4 },
    sampling,
  });
  const { ctx, objects } = makeCtx("eval", opts);
  const r = await runEval(ctx, opts);
  const results = JSON.parse(new TextDecoder().decode(objects.get(r.outputs.results)!));
  const perQ = results.per_question as { n: number; correct: number }[];
  assert.equal(perQ.length, 5);
  assert.ok(perQ.every((q) => q.n === 4));
  const pass1 = perQ.reduce((a, q) => a + q.correct / q.n, 0) / perQ.length;
  assert.ok(Math.abs(results.summary.pass_at["1"].estimate - pass1) < 1e-12);
  assert.equal(r.metrics!.pass_at_1, results.summary.pass_at["1"].estimate);
  assert.ok(pass1 > 0 && pass1 < 1, "the scripted agent is right sometimes");
  assert.equal(results.summary.tools.per_trajectory, 1);
  assert.deepEqual(Object.keys(results.summary.pass_at), ["1", "2", "4"]);
  const ci = results.summary.accuracy;
  assert.ok(ci.lo <= ci.estimate && ci.estimate <= ci.hi);
  // Same stage again (different chunking would not matter either): same bytes.
  const again = await runEval(makeCtx("eval", opts).ctx, opts);
  assert.deepEqual(again.outputs, r.outputs);
  // The index names one tree per question; trees carry rewards.
  const index = JSON.parse(new TextDecoder().decode(objects.get(r.outputs.rollouts)!));
  const tree = parseTreeLines(
    new TextDecoder().decode(objects.get(index.questions[0].tree)!),
  );
  assert.equal(tree.trajectories.length, 4);
  assert.ok(tree.trajectories.every((t) => typeof t.reward === "number"));
});

Deno.test("probe stage: entropy table by distance from the last result vs response start", async () => {
  const opts = probeOptionsSchema.parse({
    benchmark: "arith",
    split: "test",
    questions: 4,
    samples: 2,
    max_distance: 12,
    sampling,
  });
  const { ctx, objects } = makeCtx("probe", opts);
  const r = await runProbe(ctx, opts);
  const probe = JSON.parse(new TextDecoder().decode(objects.get(r.outputs.probe)!));
  assert.equal(probe.table.length, 12);
  assert.equal(probe.plot.series.length, 2);
  // 8 trajectories, each contributes distance 0 once before and once after its result.
  assert.equal(probe.table[0].n_start, 8);
  assert.equal(probe.table[0].n_after, 8);
  assert.match(probe.text, /^distance \| entropy after tool result/);
  assert.equal(typeof r.metrics!["entropy_after_result_0-9"], "number");
});

Deno.test("rl dry run: per-step batches with advantages; resume gives the same outputs", async () => {
  const opts = rlOptionsSchema.parse({
    benchmark: "arith",
    split: "train",
    questions: "all",
    reward: "em",
    rollout: { algorithm: "arpo", rollouts: 4, initial: 2, entropy_weight: 0.2 },
    sampling,
    steps: 3,
    questions_per_step: 2,
    minibatch: 2, // ≤ questions_per_step (the schema checks it; a dry run does no update)
    dry_run: true,
  });
  const full = makeCtx("rl", opts);
  const r = await runRlDryRun(full.ctx, opts);
  assert.deepEqual(Object.keys(r.outputs).sort(), [
    "batches",
    "report",
    "rollouts_0",
    "rollouts_1",
    "rollouts_2",
    "tool_calls_0",
    "tool_calls_1",
    "tool_calls_2",
  ]);
  const idx = JSON.parse(new TextDecoder().decode(full.objects.get(r.outputs.rollouts_1)!));
  assert.equal(idx.questions.length, 2);
  // Per-step branching statistics, and their totals over the steps in the stage metrics.
  const steps = JSON.parse(new TextDecoder().decode(full.objects.get(r.outputs.batches)!)).steps;
  let decisions = 0, branches = 0, calls = 0, trajectories = 0;
  for (const s of steps) {
    for (const k of ["decisions", "branch_rate", "forks_per_question", "trajectories"]) {
      assert.equal(typeof s[k], "number", k);
    }
    assert.ok("delta_h_branched" in s && "delta_h_not_branched" in s);
    decisions += s.decisions;
    branches += s.branches;
    calls += s.tool_calls_per_trajectory * s.trajectories;
    trajectories += s.trajectories;
  }
  assert.ok(decisions > 0);
  assert.equal(r.metrics!.branch_rate, branches / decisions);
  assert.ok(
    Math.abs((r.metrics!.tool_calls_per_trajectory as number) - calls / trajectories) < 1e-12,
  );
  assert.deepEqual(idx.context.step, 1);
  for (const q of idx.questions) {
    const tree = parseTreeLines(new TextDecoder().decode(full.objects.get(q.tree)!));
    assert.equal(tree.trajectories.length, 4);
    const adv = tree.trajectories.map((t) => t.advantage as number);
    assert.ok(Math.abs(adv.reduce((a, b) => a + b, 0)) < 1e-9, "advantages sum to 0");
  }
  // Resume from the checkpoint after step 0.
  const first = full.saved[0];
  const batchesMeta = JSON.parse(new TextDecoder().decode(full.objects.get(r.outputs.batches)!));
  const resumed = makeCtx("rl", opts, {
    step: 0,
    state: first.state,
    meta: { steps: [batchesMeta.steps[0]] },
  });
  const r2 = await runRlDryRun(resumed.ctx, opts);
  assert.deepEqual(r2.outputs, r.outputs);
  // Question order: a keyed shuffle per step, no repeats within a step.
  const s = new Stream([1, "x"]);
  const t0 = stepTasks(tasks, 0, 6, s).map((t) => t.id);
  assert.deepEqual([...t0].sort(), tasks.map((t) => t.id));
  assert.throws(() => stepTasks(tasks, 0, 7, s), /questions_per_step is 7/);
});

Deno.test("chunking the questions of a stage does not change any tree", async () => {
  const config = parseRolloutConfig({ rollouts: 3, initial: 2, entropy_weight: 5 }, sampling);
  const run = async (maxSequences: number) => {
    const { ctx, policy } = makeCtx("eval", {});
    const r = await rolloutTasks(
      ctx,
      policy,
      stageTools(ctx),
      config,
      tasks,
      ctx.stream("rollout"),
      "t",
      maxSequences,
    );
    return r.questions.map((q) => q.tree.toJsonLines());
  };
  const one = await run(1000), chunked = await run(4);
  assert.equal(one.length, 6);
  assert.deepEqual(chunked, one);
});
