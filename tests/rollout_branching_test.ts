/**
 * Branching knobs that act (issue 11): the sampled decision rule and its response to β on ΔH values
 * recorded from a real model (and the threshold rule's flaw with α = τ), the `random` control's
 * budget accounting and independence from ΔH, `reference_init`, the `mean` normalization, and the
 * per-step branching statistics (docs/BRANCHING.md).
 */
import assert from "node:assert/strict";
import { runRollout } from "../src/rollout/agent_loop.ts";
import {
  branchProbability,
  decideBranch,
  entropyDivisor,
  paperDeltaH,
  referenceSegmentEntropy,
} from "../src/rollout/arpo.ts";
import { parseRolloutConfig } from "../src/rollout/config.ts";
import { rolloutMetrics } from "../src/rollout/metrics.ts";
import { checkTree, type RolloutTree } from "../src/rollout/tree.ts";
import { rolloutTotals, stepSummary } from "../src/run/stages/rl_rollout.ts";
import { stream } from "../src/rng.ts";
import { ArpoError } from "../src/errors.ts";
import { type Script, ScriptedPolicy } from "./fixtures/rollout/scripted_policy.ts";
import { FakeToolRuntime } from "./fixtures/rollout/fake_tools.ts";
import { QUICKSTART_DELTA_H } from "./fixtures/rollout/delta_h.ts";

type RolloutInput = Parameters<typeof parseRolloutConfig>[0];

/** Branch rate of `decideBranch` (Z = 1, budget never binding) over `values`: draw i keyed by i. */
function rate(cfg: RolloutInput, values: readonly number[]): number {
  const c = parseRolloutConfig(cfg);
  const root = stream(11, "beta-study");
  let n = 0;
  values.forEach((dh, i) => {
    if (decideBranch(c, dh, 10, root.child(i)).children > 0) n++;
  });
  return n / values.length;
}

Deno.test("β: under decision: sample the branch rate rises with β on recorded ΔH", () => {
  const betas = [0, 0.2, 0.4, 5];
  const rates = betas.map((b) => rate({ entropy_weight: b }, QUICKSTART_DELTA_H));
  console.log(`sample, α = 0.5, log_vocab: β ${betas.join(" / ")} → rates ${rates.join(" / ")}`);
  for (let i = 1; i < rates.length; i++) {
    assert.ok(rates[i] > rates[i - 1], `β=${betas[i]} (${rates[i]}) > β=${betas[i - 1]}`);
  }
  // Each rate is near the mean of clamp(α + βΔH, 0, 1).
  betas.forEach((b, i) => {
    const p = QUICKSTART_DELTA_H.reduce((s, x) => s + Math.min(1, Math.max(0, 0.5 + b * x)), 0) /
      QUICKSTART_DELTA_H.length;
    assert.ok(Math.abs(rates[i] - p) < 0.08, `β=${b}: rate ${rates[i]} vs mean P ${p}`);
  });
});

Deno.test("β: under decision: threshold with α = τ only the sign of ΔH matters (the old flaw)", () => {
  const th = (b: number) => rate({ decision: "threshold", entropy_weight: b }, QUICKSTART_DELTA_H);
  const rates = [0.05, 0.2, 0.4, 5].map(th);
  console.log(`threshold, α = τ = 0.5: β 0.05 / 0.2 / 0.4 / 5 → rates ${rates.join(" / ")}`);
  // Every recorded ΔH is positive: every β > 0 branches at every call, β = 0 never.
  assert.deepEqual(rates, [1, 1, 1, 1]);
  assert.equal(th(0), 0);
  const mixed = [
    ...QUICKSTART_DELTA_H.slice(0, 100),
    ...QUICKSTART_DELTA_H.slice(100).map((x) => -x),
  ];
  const m = [0.05, 0.2, 0.4, 5].map((b) =>
    rate({ decision: "threshold", entropy_weight: b }, mixed)
  );
  assert.deepEqual(m, [0.5, 0.5, 0.5, 0.5], "branch iff ΔH > 0, whatever β");
  // And ΔH / V (the paper's divisor, V = 259 there) leaves P ≈ α: β hardly acts even when sampled.
  const lnV = Math.log(259);
  const perV = QUICKSTART_DELTA_H.map((x) => (x * lnV) / 259);
  const v = [0, 0.4].map((b) => rate({ entropy_weight: b, entropy_norm: "vocab" }, perV));
  assert.ok(Math.abs(v[1] - v[0]) <= 0.02, `vocab: β 0 → ${v[0]}, β 0.4 → ${v[1]}`);
});

Deno.test("decision rule and P: threshold raw, sample clamped, random fixed; budget draws nothing", () => {
  const th = parseRolloutConfig({ decision: "threshold", entropy_weight: 1 });
  const sa = parseRolloutConfig({ entropy_weight: 1 });
  const ra = parseRolloutConfig({ algorithm: "random", branch_probability: 0.3 });
  assert.equal(branchProbability(th, 2), 2.5);
  assert.equal(branchProbability(sa, 2), 1);
  assert.equal(branchProbability(sa, -2), 0);
  assert.equal(branchProbability(ra, 2), 0.3);
  assert.equal(branchProbability(ra, -2), 0.3);
  const s = stream(1, "d");
  for (const c of [th, sa, ra]) {
    assert.deepEqual(decideBranch(c, 5, 0, s.child("x")), {
      p: branchProbability(c, 5),
      u: [],
      children: 0,
      decision: "budget",
    });
  }
  // The random rule ignores ΔH: same draws, same outcome.
  const a = decideBranch(ra, -100, 3, s.child("y")), b = decideBranch(ra, 100, 3, s.child("y"));
  assert.deepEqual(a, b);
  assert.equal(a.u.length, 1);
  assert.equal(a.children, a.u[0] < 0.3 ? 1 : 0);
});

Deno.test("config: random's branch_probability, defaults and errors", () => {
  assert.equal(parseRolloutConfig({ algorithm: "random" }).branchProbability, 0.5);
  assert.equal(
    parseRolloutConfig({ algorithm: "random", branch_probability: 0 }).branchProbability,
    0,
  );
  const err = (cfg: RolloutInput, re: RegExp) =>
    assert.throws(
      () => parseRolloutConfig(cfg),
      (e: unknown) => e instanceof ArpoError && re.test(e.message),
    );
  err({ algorithm: "random", branch_probability: 1.5 }, /^stage\.rollout\.branch_probability: /);
  err({ algorithm: "random", branch_probability: -0.1 }, /^stage\.rollout\.branch_probability: /);
  err(
    { branch_probability: 0.5 },
    /branch_probability: no branch_probability with algorithm: arpo \(it is the fixed/,
  );
  err({ algorithm: "grpo", branch_probability: 0.5 }, /no branch_probability with algorithm: grpo/);
  err({ algorithm: "random", rollouts: 2, initial: 3 }, /rollout\.initial: at most rollouts/);
  err({ decision: "coin" as "sample" }, /rollout\.decision/);
});

// --- the random algorithm with a scripted policy --------------------------------------------

/** `n` calls then an answer; the entropies are `scale`·(a draw of the trajectory's stream). */
const nCalls = (n: number, scale: number): Script => (ctx) => {
  const calls = ctx.response.split("<result>").length - 1;
  const h = scale * (0.2 + ctx.draw());
  if (calls < n) return [{ text: `<python>c${calls}</python>`, entropy: h }];
  return [{ text: "<answer>x</answer><eos>", entropy: h }];
};
const twoCalls = (scale: number) => nCalls(2, scale);

async function roll(script: Script, cfg: RolloutInput, ids = ["q1", "q2", "q3"]) {
  const policy = new ScriptedPolicy(script);
  const tools = new FakeToolRuntime(["python"], (_t, i) => `r:${i}`);
  const config = parseRolloutConfig(cfg);
  const res = await runRollout(
    ids.map((id) => ({
      task: { id, prompt: "q", answers: ["x"] },
      promptTokens: policy.tokenizer.encode(`Q ${id}\n`),
    })),
    { policy, tools, config, rng: stream(5, "random-test") },
  );
  for (const q of res.questions) {
    assert.deepEqual(checkTree(q.tree), []);
    assert.equal(q.tree.trajectories.length, config.rollouts, "exactly M trajectories");
  }
  assert.equal(policy.live, 0);
  return { trees: res.questions.map((q) => q.tree), config };
}

const count = (tree: RolloutTree, kind: string) =>
  tree.trajectories.filter((t) => t.kind === kind).length;
const childrenOf = (tree: RolloutTree) => tree.forks.reduce((n, f) => n + f.children.length, 0);

for (const mode of ["paper", "reference"] as const) {
  const base = { algorithm: "random", mode, rollouts: 7, initial: 2, reference_top_k: 0 } as const;

  Deno.test(`random (${mode}): p = 0 never branches, the budget goes to fillers`, async () => {
    const { trees } = await roll(twoCalls(1), { ...base, branch_probability: 0 });
    for (const tree of trees) {
      assert.equal(childrenOf(tree), 0);
      assert.equal(count(tree, "initial"), 2);
      assert.equal(count(tree, "filler"), 5);
      assert.ok(tree.forks.every((f) => f.decision !== "branch" && f.p === 0));
      // Every call with budget left drew once; the last filler's calls found none.
      assert.ok(
        tree.forks.filter((f) => f.decision === "no_branch").every((f) => f.u.length === 1),
      );
    }
  });

  Deno.test(`random (${mode}): p = 1 branches until the budget is spent`, async () => {
    const { trees } = await roll(twoCalls(1), {
      ...base,
      branch_probability: 1,
      branches_per_fork: 2,
    });
    for (const tree of trees) {
      assert.equal(childrenOf(tree), 5, "M − N children");
      assert.equal(count(tree, "filler"), 0);
      assert.ok(tree.forks.every((f) => f.decision !== "no_branch"));
      // Branch while there is budget; afterwards every decision is budget-blocked.
      const first = tree.forks.findIndex((f) => f.decision === "budget");
      assert.ok(first > 0);
      assert.ok(tree.forks.slice(first).every((f) => f.decision === "budget"));
    }
  });

  Deno.test(`random (${mode}): budget accounting at p = 0.5, decisions independent of ΔH`, async () => {
    // One call per trajectory: the children (forked after it) make none, so the initial
    // trajectories and the fillers take the decisions, and the budget is often left unspent.
    const cfg = { ...base, branch_probability: 0.5, branches_per_fork: 2 };
    const ids = ["q1", "q2", "q3", "q4", "q5", "q6"];
    const a = await roll(nCalls(1, 1), cfg, ids);
    const b = await roll(nCalls(1, 7), cfg, ids);
    let branched = 0, unbranched = 0;
    for (let i = 0; i < a.trees.length; i++) {
      const ta = a.trees[i], tb = b.trees[i];
      const children = childrenOf(ta);
      assert.ok(children <= 5, "never more than M − N children");
      assert.equal(count(ta, "filler"), 5 - children, "the unspent budget becomes fillers");
      assert.equal(count(ta, "branch"), children);
      // Same draws, same decisions, same trees; only the recorded entropies differ.
      const shape = (t: RolloutTree) =>
        t.forks.map((f) => [f.trajectory, f.toolCall, f.decision, f.u, f.children, f.p]);
      assert.deepEqual(shape(tb), shape(ta));
      assert.deepEqual(tb.trajectories.map((t) => t.path), ta.trajectories.map((t) => t.path));
      // The entropies are measured and recorded (reference mode: ΔH itself is 0 at a
      // trajectory's first call, whose segment is its first).
      const h = (t: RolloutTree) => t.forks.map((f) => [f.hNow, f.deltaH]);
      assert.notDeepEqual(h(tb), h(ta), "entropies are measured and recorded");
      branched += children > 0 ? 1 : 0;
      unbranched += children < 5 ? 1 : 0;
    }
    assert.ok(branched > 0 && unbranched > 0, "p = 0.5 is neither all nor nothing here");
    const m = rolloutMetrics(a.trees);
    assert.ok(m.branching.decided > 0);
    assert.equal(
      m.branching.decided,
      m.branching.decisions.branch + m.branching.decisions.no_branch +
        m.branching.decisions.budget,
    );
  });
}

Deno.test("paper probe with decision: sample draws from the keyed stream of (question, path, call)", async () => {
  const script: Script = (ctx) =>
    ctx.response.includes("<result>")
      ? [{ text: "<answer>x</answer><eos>", entropy: 2 }]
      : [{ text: "<python>a</python>", entropy: 1 }];
  const policy = new ScriptedPolicy(script);
  const config = parseRolloutConfig({ rollouts: 4, initial: 2, entropy_tokens: 2 });
  const res = await runRollout([{
    task: { id: "q1", prompt: "q", answers: [] },
    promptTokens: [5, 6],
  }], {
    policy,
    tools: new FakeToolRuntime(["python"], () => "r"),
    config,
    rng: stream(7, "arpo-test"),
  });
  const f = res.questions[0].tree.forks[0];
  const lnV = Math.log(policy.vocabSize);
  assert.ok(Math.abs(f.deltaH - 2 / lnV) < 1e-12);
  assert.ok(Math.abs(f.p - (0.5 + 0.2 * 2 / lnV)) < 1e-12);
  const u = stream(7, "arpo-test").child("q", "q1", "fork", "0", 1).uniform();
  assert.deepEqual(f.u, [u]);
  assert.equal(f.decision, u < f.p ? "branch" : "no_branch");
});

Deno.test("reference_init: a branch's H_init is its own first segment (own) or its parent's", async () => {
  // 0: first segment entropy 1, branches at its first call (P = 1); the child's own segment
  // (entropy 3) ends at a second call.
  const script: Script = (ctx) => {
    const p = String(ctx.path.at(-1));
    const calls = ctx.response.split("<result>").length - 1;
    if (calls === 0) return [{ text: "<python>a</python>", entropy: 1 }];
    if (p.includes("/") && calls === 1) return [{ text: "<python>b</python>", entropy: 3 }];
    return [{ text: "<answer>x</answer><eos>", entropy: 1 }];
  };
  const run = async (init: "own" | "parent") => {
    const policy = new ScriptedPolicy(script);
    const config = parseRolloutConfig({
      mode: "reference",
      reference_top_k: 0,
      reference_init: init,
      rollouts: 2,
      initial: 1,
      base_probability: 1,
      entropy_weight: 0,
    });
    const res = await runRollout([{
      task: { id: "q", prompt: "q", answers: [] },
      promptTokens: [5],
    }], {
      policy,
      tools: new FakeToolRuntime(["python"], () => "r"),
      config,
      rng: stream(1, "init"),
    });
    const tree = res.questions[0].tree;
    assert.deepEqual(tree.trajectories.map((t) => t.path), ["0", "0/1.0"]);
    return { fork: tree.forks.find((f) => f.trajectory === 1)!, lnV: Math.log(policy.vocabSize) };
  };
  const own = await run("own"), parent = await run("parent");
  // "<python>b</python>" = 3 tokens.
  assert.ok(Math.abs(own.fork.hNow[0] - 9 / own.lnV) < 1e-12);
  assert.deepEqual(own.fork.hInit, own.fork.hNow, "own: its first segment is this one");
  assert.equal(own.fork.deltaH, 0);
  assert.ok(Math.abs(parent.fork.hInit[0] - 3 / parent.lnV) < 1e-12, "parent: 0's first segment");
  assert.ok(Math.abs(parent.fork.deltaH - 6 / parent.lnV) < 1e-12);
});

Deno.test("entropy_norm: mean divides by the positions summed (nats per position)", () => {
  const c = parseRolloutConfig({ entropy_norm: "mean", mode: "reference", reference_top_k: 0 });
  const div = entropyDivisor(c, 1000);
  assert.equal(paperDeltaH([3, 3], [1, 1, 1], div), 2);
  assert.equal(paperDeltaH([], [1], div), 0);
  const tok = (entropy: number) => ({ id: 1, logprob: -1, entropy });
  assert.equal(referenceSegmentEntropy([tok(1), tok(2), tok(6)], c, div), 3);
  const w = parseRolloutConfig({
    entropy_norm: "mean",
    mode: "reference",
    reference_top_k: 0,
    reference_window: 2,
  });
  assert.equal(referenceSegmentEntropy([tok(1), tok(2), tok(6)], w, entropyDivisor(w, 1000)), 1.5);
  assert.equal(entropyDivisor(parseRolloutConfig({ entropy_norm: "vocab" }), 1000)(7), 1000);
  assert.equal(entropyDivisor(parseRolloutConfig({}), 1000)(7), Math.log(1000));
});

Deno.test("step summary and stage totals: decisions, branch rate, forks per question, ΔH split", async () => {
  const { trees } = await roll(twoCalls(1), {
    rollouts: 6,
    initial: 2,
    entropy_tokens: 2,
    entropy_weight: 0.5,
  }, ["q1", "q2", "q3", "q4"]);
  const m = rolloutMetrics(trees);
  const questions = trees.map((tree) => ({ task: tree.task, tree }));
  const s = stepSummary(questions, m);
  const b = m.branching;
  assert.equal(s.decisions, b.decisions.branch + b.decisions.no_branch + b.decisions.budget);
  assert.equal(s.branches, b.decisions.branch);
  assert.equal(s.branch_rate, b.decisions.branch / (s.decisions as number));
  assert.equal(
    s.branch_rate_open,
    b.decisions.branch / (b.decisions.branch + b.decisions.no_branch),
  );
  assert.equal(s.forks_per_question, b.children / 4);
  assert.equal(s.trajectories, 24);
  const mean = (d: string) => {
    const v = trees.flatMap((t) => t.forks.filter((f) => f.decision === d).map((f) => f.deltaH));
    return v.length ? v.reduce((x, y) => x + y, 0) / v.length : null;
  };
  assert.equal(s.delta_h_branched, mean("branch"));
  assert.equal(s.delta_h_not_branched, mean("no_branch"));
  for (
    const k of ["mean_reward", "tool_calls_per_trajectory", "children", "fillers", "delta_h_mean"]
  ) {
    assert.ok(k in s, k);
  }
  // GRPO: "off" records are no decisions; the rate is 0, the ΔH split empty.
  const g = await roll(twoCalls(1), { algorithm: "grpo", rollouts: 3 });
  const gs = stepSummary(
    g.trees.map((tree) => ({ task: tree.task, tree })),
    rolloutMetrics(g.trees),
  );
  assert.deepEqual([gs.decisions, gs.branches, gs.branch_rate, gs.delta_h_branched], [
    0,
    0,
    0,
    null,
  ]);
  // Totals over steps: trajectory-weighted tool calls, branches over decisions.
  const t = rolloutTotals([
    { step: 0, eval: { accuracy: 1 } },
    { trajectories: 8, tool_calls_per_trajectory: 1, decisions: 4, branches: 1 },
    { trajectories: 24, tool_calls_per_trajectory: 2, decisions: 6, branches: 4 },
  ]);
  assert.deepEqual(t, {
    tool_calls_per_trajectory: (8 + 48) / 32,
    branch_rate: 0.5,
    infrastructure_failures: 0,
  });
  assert.deepEqual(
    rolloutTotals([{ trajectories: 3, tool_calls_per_trajectory: 2, decisions: 0, branches: 0 }]),
    {
      tool_calls_per_trajectory: 2,
      branch_rate: 0,
      infrastructure_failures: 0,
    },
  );
  // The tool-call cap: counted per step only when it ended a trajectory, totalled as a share.
  assert.ok(!("tool_cap_ends" in s), "no cap end, no key (ordinary curves keep their bytes)");
  const capped = stepSummary(questions, { ...m, endReasons: { ...m.endReasons, tool_cap: 3 } });
  assert.equal(capped.tool_cap_ends, 3);
  assert.equal(
    rolloutTotals([
      { trajectories: 8, tool_calls_per_trajectory: 3, decisions: 0, branches: 0 },
      {
        trajectories: 24,
        tool_calls_per_trajectory: 3,
        decisions: 0,
        branches: 0,
        tool_cap_ends: 4,
      },
    ]).tool_cap_rate,
    4 / 32,
  );
});
