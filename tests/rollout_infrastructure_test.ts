// A tool call that failed for infrastructure reasons (issue 13, point 6: the wall-clock guard fired
// twice) marks its trajectory: the trajectory ends there, is recorded as such in the rollout
// artefact, gets no reward and no advantage, is left out of the group normalization, the update
// and the eval accuracy, and is counted in the metrics.
import assert from "node:assert/strict";
import type { Reward, Task } from "arpo-lab";
import exactMatch from "../plugins/rewards/exact_match.ts";
import { localPluginContext } from "../src/plugin/local.ts";
import { runRollout } from "../src/rollout/agent_loop.ts";
import { parseTreeLines, storeRollout } from "../src/rollout/artifacts.ts";
import { parseRolloutConfig } from "../src/rollout/config.ts";
import { rolloutMetrics } from "../src/rollout/metrics.ts";
import { scoreRollout } from "../src/rollout/rewards.ts";
import { checkTree } from "../src/rollout/tree.ts";
import { stream } from "../src/rng.ts";
import {
  groupAdvantages,
  setGroupAdvantages,
  treeSequences,
  updateQuestion,
} from "../src/train/advantages.ts";
import { questionResults } from "../src/run/stages/eval.ts";
import { rolloutTotals, stepSummary } from "../src/run/stages/rl_rollout.ts";
import type { ToolCallOutcome } from "../src/tools/types.ts";
import { type Script, ScriptedPolicy } from "./fixtures/rollout/scripted_policy.ts";
import { FakeToolRuntime } from "./fixtures/rollout/fake_tools.ts";
import { memoryStore } from "./fixtures/helpers.ts";

const GUARD = "wall-clock guard fired twice (execution timed out after 10s)";

/** The fake runtime, whose calls of `print(slow)` fail as the guarded runtime reports it. */
class FlakyMachine extends FakeToolRuntime {
  constructor() {
    super(["python"], () => "2");
  }
  override async call(tag: string, input: string): Promise<ToolCallOutcome> {
    const o = await super.call(tag, input);
    if (input !== "print(slow)") return o;
    return {
      ...o,
      output: "Error: execution timed out after 10s",
      error: true,
      timedOut: true,
      attempts: 2,
      infrastructureFailure: GUARD,
    };
  }
}

/** Trajectory "1" of question a and every trajectory of b hit the flaky machine; "3" is wrong. */
const script: Script = (ctx) => {
  const path = String(ctx.path.at(-1));
  if (ctx.response.includes("</result>")) {
    return [{ text: `<answer>\\boxed{${path === "3" ? 5 : 2}}</answer><eos>`, entropy: 0.2 }];
  }
  const slow = path === "1" || ctx.prompt.startsWith("b");
  return [{
    text: `<think>t</think><python>print(${slow ? "slow" : "fast"})</python>`,
    entropy: 1,
  }];
};

const tasks: Task[] = [
  { id: "a", prompt: "a: 1+1?", answers: ["2"] },
  { id: "b", prompt: "b: 1+1?", answers: ["2"] },
];

async function roll(tools: FakeToolRuntime, s: Script = script) {
  const policy = new ScriptedPolicy(s);
  const res = await runRollout(
    tasks.map((task) => ({ task, promptTokens: policy.tokenizer.encode(String(task.prompt)) })),
    {
      policy,
      tools,
      config: parseRolloutConfig({ algorithm: "grpo", rollouts: 4 }, {}),
      rng: stream(3, "infra"),
    },
  );
  for (const q of res.questions) assert.deepEqual(checkTree(q.tree), []);
  const reward = await exactMatch({}, localPluginContext({ name: "em" })) as Reward;
  scoreRollout(res.questions, reward, policy.tokenizer, "em");
  setGroupAdvantages(res.questions);
  return { policy, res };
}

Deno.test("infrastructure failure: the trajectory ends, marked, unscored, without advantage", async () => {
  const { res } = await roll(new FlakyMachine());
  const a = res.questions[0].tree;
  const failed = a.trajectories[1];
  assert.equal(failed.end, "infrastructure");
  assert.equal(failed.infrastructureFailure, `python call 1: ${GUARD}`);
  // It stopped at the result: no generation after the failed call.
  assert.equal(a.segments[failed.segments.at(-1)!].kind, "result");
  assert.equal(failed.reward, undefined);
  assert.equal(failed.advantage, undefined);
  // The group is the other three: rewards 1, 1, 0 (trajectory 3 answers 5).
  const kept = [0, 2, 3].map((i) => a.trajectories[i]);
  assert.deepEqual(kept.map((t) => t.reward), [1, 1, 0]);
  assert.deepEqual(kept.map((t) => t.advantage), groupAdvantages([1, 1, 0]));
  assert.ok(kept.every((t) => t.infrastructureFailure === undefined && t.end === "eos"));
  // Question b lost every sample: nothing to normalize, nothing scored.
  const b = res.questions[1].tree;
  assert.ok(b.trajectories.every((t) => t.end === "infrastructure" && t.reward === undefined));
  // The timings say so too (outside the hashed trees).
  assert.equal(res.timings.toolCalls.filter((c) => c.infrastructureFailure === GUARD).length, 5);
});

Deno.test("infrastructure failure: left out of the update, in both attributions", async () => {
  const { res } = await roll(new FlakyMachine());
  const a = res.questions[0].tree;
  const u = updateQuestion(a);
  assert.deepEqual(u.tree.trajectories.map((t) => t.index), [0, 2, 3]);
  assert.deepEqual(u.advantages, groupAdvantages([1, 1, 0]));
  for (const mode of ["soft", "hard"] as const) {
    const seqs = treeSequences(u.tree, u.advantages, mode);
    assert.deepEqual(seqs.map((s) => s.trajectory), [0, 2, 3], mode);
  }
  // Every trajectory of b failed: the question adds nothing to learn from.
  const ub = updateQuestion(res.questions[1].tree);
  assert.equal(treeSequences(ub.tree, ub.advantages).length, 0);
  // Without failures the view is the whole tree with its advantages, as before.
  const ok = await roll(new FakeToolRuntime(["python"], () => "2"));
  const whole = ok.res.questions[0].tree;
  const v = updateQuestion(whole);
  assert.equal(v.tree.trajectories.length, 4);
  assert.deepEqual(v.advantages, whole.trajectories.map((t) => t.advantage ?? 0));
});

Deno.test("infrastructure failure: counted in the metrics and recorded in the artefact", async () => {
  const { res } = await roll(new FlakyMachine());
  const trees = res.questions.map((q) => q.tree);
  const m = rolloutMetrics(trees);
  assert.equal(m.infrastructureFailures, 5);
  assert.equal(m.endReasons.infrastructure, 5);
  assert.equal(m.reward!.mean, 2 / 3); // over the scored three
  const s = stepSummary(res.questions, m);
  assert.equal(s.infrastructure_failures, 5);
  assert.equal(
    rolloutTotals([{ step: 0, eval: { accuracy: 1, infrastructure_failures: 2 } }, s])
      .infrastructure_failures,
    7,
  );
  const objects = new Map<string, Uint8Array>();
  const config = parseRolloutConfig({ algorithm: "grpo", rollouts: 4 }, {});
  const stored = await storeRollout(memoryStore(objects), res, config, "p");
  const lines = parseTreeLines(new TextDecoder().decode(objects.get(stored.trees[0].digest)!));
  assert.deepEqual(
    lines.trajectories.map((t) => [t.end, t.infrastructure_failure]),
    [
      ["eos", undefined],
      ["infrastructure", `python call 1: ${GUARD}`],
      ["eos", undefined],
      ["eos", undefined],
    ],
  );
  const index = JSON.parse(new TextDecoder().decode(objects.get(stored.index)!));
  assert.equal(index.metrics.infrastructureFailures, 5);
  // An ordinary rollout carries no trace of the concept: its artefacts keep their bytes.
  const ok = await roll(new FakeToolRuntime(["python"], () => "2"));
  const om = rolloutMetrics(ok.res.questions.map((q) => q.tree));
  assert.equal(om.infrastructureFailures, undefined);
  assert.ok(!("infrastructure" in om.endReasons));
  assert.ok(!("infrastructure_failures" in stepSummary(ok.res.questions, om)));
  const okStored = await storeRollout(memoryStore(objects), ok.res, config, "p");
  for (const d of [okStored.index, ...okStored.trees.map((t) => t.digest)]) {
    assert.ok(!new TextDecoder().decode(objects.get(d)!).includes("infrastructure"));
  }
});

Deno.test("infrastructure failure: left out of eval accuracy, reported per question", async () => {
  const { policy, res } = await roll(new FlakyMachine());
  const perQ = questionResults(res.questions, {}, policy.tokenizer, ["python"], {
    benchmark: "arith",
  });
  assert.deepEqual(perQ[0], {
    task_id: "a",
    n: 3,
    correct: 2,
    sample_correct: [true, null, true, false],
    rewards: [1, null, 1, 0],
    tool_calls: [1, 1, 1, 1],
    infrastructure_failures: 1,
  });
  assert.equal(perQ[1].n, 0);
  assert.equal(perQ[1].infrastructure_failures, 4);
  // Without failures the entries are what they always were (no extra field).
  const ok = await roll(new FakeToolRuntime(["python"], () => "2"));
  const okQ = questionResults(ok.res.questions, {}, policy.tokenizer, ["python"], {
    benchmark: "arith",
  });
  assert.deepEqual(okQ[0], {
    task_id: "a",
    n: 4,
    correct: 3,
    sample_correct: [true, true, true, false],
    rewards: [1, 1, 1, 0],
    tool_calls: [1, 1, 1, 1],
  });
});
