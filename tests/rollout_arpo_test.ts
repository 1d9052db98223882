import assert from "node:assert/strict";
import { runRollout } from "../src/rollout/agent_loop.ts";
import { decideBranch, paperDeltaH, topKEntropy } from "../src/rollout/arpo.ts";
import { parseRolloutConfig } from "../src/rollout/config.ts";
import { checkTree } from "../src/rollout/tree.ts";
import { stream } from "../src/rng.ts";
import {
  type Script,
  type ScriptContext,
  ScriptedPolicy,
} from "./fixtures/rollout/scripted_policy.ts";
import { FakeToolRuntime } from "./fixtures/rollout/fake_tools.ts";

type RolloutInput = Parameters<typeof parseRolloutConfig>[0];

const pathOf = (ctx: ScriptContext) => String(ctx.path.at(-1));
const task = (id: string) => ({ id, prompt: "q", answers: ["a"] });

async function roll(script: Script, cfg: RolloutInput, ids = ["q1"]) {
  const policy = new ScriptedPolicy(script);
  const tools = new FakeToolRuntime(["python", "search"], (_t, i) => `r:${i}`);
  const config = parseRolloutConfig(cfg);
  const res = await runRollout(
    ids.map((id) => ({ task: task(id), promptTokens: policy.tokenizer.encode(`Q ${id}\n`) })),
    { policy, tools, config, rng: stream(7, "arpo-test") },
  );
  for (const q of res.questions) assert.deepEqual(checkTree(q.tree), []);
  assert.equal(policy.live, 0, "every sequence released");
  return { res, policy, tools, config };
}

Deno.test("paper mode, threshold rule: hand-worked branch, no-branch, filler and budget", async () => {
  const script: Script = (ctx) => {
    const p = pathOf(ctx);
    if (!ctx.response.includes("<result>")) return [{ text: "<python>q</python>", entropy: 1 }];
    if (p === "0") return [{ text: "ok<answer>A</answer><eos>", entropy: 2 }];
    if (p === "1") return [{ text: "no<answer>A</answer><eos>", entropy: 0.5 }];
    if (p === "0/1.0") return [{ text: "<answer>B</answer><eos>", entropy: 0.3 }];
    return [{ text: "zz<answer>C</answer><eos>", entropy: 3 }]; // filler "2"
  };
  const { res, policy, config } = await roll(script, {
    rollouts: 4,
    initial: 2,
    entropy_tokens: 2,
    base_probability: 0.5,
    entropy_weight: 1,
    threshold: 0.5,
    decision: "threshold",
    entropy_norm: "log_vocab",
  });
  const tree = res.questions[0].tree;
  const lnV = Math.log(policy.vocabSize);
  assert.deepEqual(
    tree.trajectories.map((t) => [t.index, t.path, t.kind, t.parent, t.end]),
    [
      [0, "0", "initial", null, "eos"],
      [1, "1", "initial", null, "eos"],
      [2, "0/1.0", "branch", 0, "eos"],
      [3, "2", "filler", null, "eos"],
    ],
  );
  // Timeline: 2 initial rounds, the child's round, then the filler's two rounds.
  assert.equal(res.stats.rounds, 5);
  assert.deepEqual(policy.batchSizes, [2, 2, 1, 1, 1]);
  const [f0, f1, f3] = tree.forks;
  assert.equal(tree.forks.length, 3);
  assert.deepEqual([f0.trajectory, f0.decision, f0.children], [0, "branch", [2]]);
  assert.deepEqual(f0.hInit, [1, 1]);
  assert.deepEqual(f0.hNow, [2, 2]);
  assert.ok(Math.abs(f0.deltaH - 2 / lnV) < 1e-12);
  assert.ok(Math.abs(f0.p - (0.5 + 2 / lnV)) < 1e-12);
  assert.deepEqual([f1.trajectory, f1.decision, f1.children], [1, "no_branch", []]);
  assert.ok(Math.abs(f1.deltaH - -1 / lnV) < 1e-12);
  assert.deepEqual([f3.trajectory, f3.decision, f3.children], [3, "budget", []]);
  // The child forks at the result boundary: it shares the gen and result segments, then
  // re-samples; the parent keeps its probe tokens.
  const t0 = tree.trajectories[0], t2 = tree.trajectories[2];
  assert.deepEqual(t2.segments.slice(0, 2), t0.segments.slice(0, 2));
  assert.equal(tree.segments[t2.segments[1]].kind, "result");
  assert.equal(f0.at, t0.segments[1]);
  const dec = (i: number) =>
    policy.tokenizer.decode(tree.flatten(tree.trajectories[i]).responseTokens);
  assert.equal(dec(0), "<python>q</python> <result>\nr:q\n</result>ok<answer>A</answer><eos>");
  assert.equal(dec(2), "<python>q</python> <result>\nr:q\n</result><answer>B</answer><eos>");
  assert.deepEqual(t2.toolCalls, t0.toolCalls);
  // M trajectories, forks within M − N.
  assert.equal(tree.trajectories.length, config.rollouts);
});

Deno.test("threshold rule: vocab normalization by default, and strict (P > τ)", async () => {
  // Same entropies before and after: ΔH = 0, P = α = τ → no branch; all M come from fillers. The
  // last filler's call finds no budget left: recorded as "budget" (no branch could happen).
  const script: Script = (ctx) =>
    ctx.response.includes("<result>")
      ? [{ text: "<answer>x</answer><eos>", entropy: 1 }]
      : [{ text: "<search>s</search>", entropy: 1 }];
  const { res, config } = await roll(script, {
    rollouts: 3,
    initial: 1,
    entropy_tokens: 3,
    decision: "threshold",
  });
  assert.equal(config.entropyNormalization, "vocab", "the threshold rule's default divisor");
  const tree = res.questions[0].tree;
  assert.deepEqual(tree.forks.map((f) => [f.deltaH, f.p, f.decision]), [
    [0, 0.5, "no_branch"],
    [0, 0.5, "no_branch"],
    [0, 0.5, "budget"],
  ]);
  assert.deepEqual(tree.trajectories.map((t) => t.kind), ["initial", "filler", "filler"]);
  assert.equal(paperDeltaH([3, 3], [1, 1, 1], 100), 0.04);
});

Deno.test("budget: Z children capped by M − N, later forks recorded as budget", async () => {
  const script: Script = (ctx) => {
    const calls = ctx.response.split("<result>").length - 1;
    if (calls === 0) return [{ text: "<python>a</python>", entropy: 0.1 }];
    if (calls === 1) return [{ text: "<python>b</python>", entropy: 5 }];
    return [{ text: "<answer>x</answer><eos>", entropy: 5 }];
  };
  const { res, config } = await roll(script, {
    rollouts: 3,
    initial: 1,
    branches_per_fork: 5,
    entropy_tokens: 2,
    decision: "threshold",
  });
  const tree = res.questions[0].tree;
  assert.deepEqual(tree.trajectories.map((t) => t.path), ["0", "0/1.0", "0/1.1"]);
  const taken = tree.forks.filter((f) => f.decision === "branch");
  assert.equal(taken.length, 1);
  assert.deepEqual(taken[0].children, [1, 2]);
  // The second call of each of the three is over budget.
  assert.deepEqual(
    tree.forks.filter((f) => f.decision === "budget").map((f) => f.trajectory).sort(),
    [0, 1, 2],
  );
  const children = tree.forks.reduce((n, f) => n + f.children.length, 0);
  assert.ok(children <= config.rollouts - config.initial);
});

Deno.test("filler: one fresh whole trajectory per round when all paths ended", async () => {
  const script: Script = () => [{ text: "<answer>x</answer><eos>", entropy: 1 }];
  const { res, policy } = await roll(script, { rollouts: 5, initial: 2 });
  const tree = res.questions[0].tree;
  assert.deepEqual(
    tree.trajectories.map((t) => [t.path, t.kind]),
    [["0", "initial"], ["1", "initial"], ["2", "filler"], ["3", "filler"], ["4", "filler"]],
  );
  assert.deepEqual(policy.batchSizes, [2, 1, 1, 1]);
  assert.equal(tree.forks.length, 0);
});

Deno.test("reference mode: ΔH from the segment that ended at the call, clamped P", async () => {
  // α = 0, β = 100: first call ΔH = 0 → P = 0; second call ΔH > 0 → P = 1 (path 0) or < 0 → 0.
  const script: Script = (ctx) => {
    const p = pathOf(ctx);
    const calls = ctx.response.split("<result>").length - 1;
    if (p.includes("/")) return [{ text: "<answer>c</answer><eos>", entropy: 9 }];
    if (calls === 0) return [{ text: "<python>a</python>", entropy: 1 }];
    if (calls === 1) return [{ text: "<python>b</python>", entropy: p === "0" ? 2 : 0.5 }];
    return [{ text: "<answer>x</answer><eos>", entropy: 1 }];
  };
  const { res, policy } = await roll(script, {
    mode: "reference",
    rollouts: 4,
    initial: 2,
    base_probability: 0,
    entropy_weight: 100,
    branches_per_fork: 2,
    reference_top_k: 0,
  });
  const tree = res.questions[0].tree;
  const lnV = Math.log(policy.vocabSize);
  assert.deepEqual(tree.trajectories.map((t) => [t.path, t.parent]), [
    ["0", null],
    ["1", null],
    ["0/2.0", 0],
    ["0/2.1", 0],
  ]);
  const byTraj = (i: number) => tree.forks.filter((f) => f.trajectory === i);
  // First calls: ΔH = 0, P = 0, two draws each, no branch.
  for (const i of [0, 1]) {
    const [first, second] = byTraj(i);
    assert.equal(first.deltaH, 0);
    assert.equal(first.p, 0);
    assert.equal(first.decision, "no_branch");
    assert.equal(first.u.length, 2);
    // H of a 3-token segment: 3 positions × entropy, over ln V.
    assert.ok(Math.abs(first.hInit[0] - 3 / lnV) < 1e-12);
    assert.ok(Math.abs(second.hNow[0] - (i === 0 ? 6 : 1.5) / lnV) < 1e-12);
  }
  assert.deepEqual(byTraj(0)[1].children, [2, 3]);
  assert.equal(byTraj(0)[1].p, 1);
  assert.equal(byTraj(1)[1].p, 0);
  assert.equal(byTraj(1)[1].decision, "budget"); // 0's children used the budget first
  // Children fork right after the second result and inherit H_init.
  const child = tree.trajectories[2];
  assert.equal(tree.segments[child.segments.at(-2)!].kind, "result");
  assert.equal(child.toolCalls.length, 2);
  // The draws come from the keyed stream of (question, path, call).
  const u = stream(7, "arpo-test").child("q", "q1", "fork", "0", 1);
  assert.deepEqual(byTraj(0)[0].u, [u.uniform(), u.uniform()]);
});

Deno.test("reference mode: stochastic decision u < clamp(α + βΔH) and top-k entropy", () => {
  const cfg = parseRolloutConfig({
    mode: "reference",
    base_probability: 0.3,
    branches_per_fork: 3,
  });
  const s = stream(1, "x");
  const out = decideBranch(cfg, 0, 10, s.child("a"));
  const replay = s.child("a");
  const u = [replay.uniform(), replay.uniform(), replay.uniform()];
  assert.deepEqual(out.u, u);
  assert.equal(out.children, u.filter((x) => x < 0.3).length);
  assert.equal(decideBranch(cfg, 0, 0, s).decision, "budget");
  assert.equal(decideBranch(cfg, 10, 2, s).children, 2, "P clamps to 1, capped by budget");
  // Top-k entropy: listed entries, plus the sampled token when absent from the list.
  const h = topKEntropy({
    id: 1,
    logprob: Math.log(0.5),
    entropy: 9,
    top: [[1, Math.log(0.5)], [2, Math.log(0.25)]],
  });
  assert.ok(Math.abs(h - (0.5 * Math.log(2) + 0.25 * Math.log(4))) < 1e-12);
  const h2 = topKEntropy({ id: 3, logprob: Math.log(0.1), entropy: 9, top: [[2, Math.log(0.25)]] });
  assert.ok(Math.abs(h2 - (0.25 * Math.log(4) + 0.1 * Math.log(10))) < 1e-12);
});

Deno.test("reference mode with top-10 entropies from the policy runs", async () => {
  const script: Script = (ctx) =>
    ctx.response.includes("<result>")
      ? [{ text: "<answer>x</answer><eos>", entropy: 1, logprob: Math.log(0.6) }]
      : [{ text: "<python>a</python>", entropy: 1, logprob: Math.log(0.6) }];
  const { res } = await roll(script, { mode: "reference", rollouts: 4, initial: 2 });
  const tree = res.questions[0].tree;
  const expect = -0.6 * Math.log(0.6) - 9 * (0.4 / 9) * Math.log(0.4 / 9);
  const lnV = Math.log(new ScriptedPolicy(script).vocabSize);
  assert.ok(Math.abs(tree.forks[0].hNow[0] - 3 * expect / lnV) < 1e-9);
  assert.equal(tree.trajectories.length, 4);
});
