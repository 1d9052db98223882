/**
 * AEPO's rollout (issue 18, src/rollout/aepo.ts): the pre-monitoring split, hand-worked; the
 * penalised branch rule; the consecutive-branch count along a path vs per prompt, on a scripted
 * policy; pre-monitoring inside the agent loop; and the options that stay out of other
 * algorithms' blocks (so their stage keys do not change).
 */
import assert from "node:assert/strict";
import { runRollout } from "../src/rollout/agent_loop.ts";
import {
  aepoBranchProbability,
  decideAepoBranch,
  meanToolEntropy,
  penaltyFactor,
  preMonitorInitial,
} from "../src/rollout/aepo.ts";
import { parseRolloutConfig, rolloutSettingsSchema } from "../src/rollout/config.ts";
import { checkTree, type RolloutTree } from "../src/rollout/tree.ts";
import { type Stream, stream } from "../src/rng.ts";
import { ArpoError } from "../src/errors.ts";
import { type Script, ScriptedPolicy } from "./fixtures/rollout/scripted_policy.ts";
import { FakeToolRuntime } from "./fixtures/rollout/fake_tools.ts";

type RolloutInput = Parameters<typeof parseRolloutConfig>[0];

/** A stand-in stream whose draws are the given values, in order. */
const draws = (...u: number[]) => ({ uniform: () => u.shift()! }) as unknown as Stream;

Deno.test("aepo pre-monitoring: m = clamp(int(n·σ(β·(H_root − H̄_tool))) + 1, 1, n), by hand", () => {
  // σ(0.5·(2 − 1)) = σ(0.5) = 0.622459; 12·0.622459 = 7.4695 → 7 + 1 = 8.
  assert.equal(preMonitorInitial(12, 2, 1, 0.5), 8);
  // Equal entropies: σ(0) = 0.5, 12·0.5 = 6 → 7 (the "+1" rounds up even an integer).
  assert.equal(preMonitorInitial(12, 1, 1, 0.5), 7);
  // Tool steps far more uncertain than the root: σ → 0, int(≈0) + 1 = 1 whole trajectory.
  assert.equal(preMonitorInitial(12, 0, 40, 0.5), 1);
  // Root far more uncertain: σ(20) = 1 − 2e-9: int(11.99…) + 1 = 12; σ(200) = 1: 13 → clamp 12.
  assert.equal(preMonitorInitial(12, 40, 0, 0.5), 12);
  assert.equal(preMonitorInitial(12, 400, 0, 0.5), 12);
  // σ(−0.5) = 0.377541; 8·0.377541 = 3.0203 → 3 + 1 = 4.
  assert.equal(preMonitorInitial(8, 1, 2, 0.5), 4);
  // H̄_tool: the mean of the probe's segments; none → H_root (the reference's fallback).
  assert.equal(meanToolEntropy([0.5, 1.0, 1.5], 9), 1);
  assert.equal(meanToolEntropy([], 0.7), 0.7);
});

Deno.test("aepo rule: (u + w·ΔH)·max(0, 1 − 0.05·k) ≥ τ, by hand", () => {
  const c = parseRolloutConfig({ algorithm: "aepo", entropy_weight: 0.2, branches_per_fork: 1 });
  assert.equal(c.threshold, 0.5);
  assert.equal(c.aepo!.penalty, 0.05);
  assert.equal(penaltyFactor(0.05, 0), 1);
  assert.ok(Math.abs(penaltyFactor(0.05, 2) - 0.9) < 1e-12);
  assert.equal(penaltyFactor(0.05, 30), 0);
  // u = 0.55, ΔH = 0: k = 0 → 0.55 ≥ 0.5 branch; k = 2 → 0.55·0.9 = 0.495 < 0.5, no branch.
  assert.equal(decideAepoBranch(c, 0, 4, 0, draws(0.55)).decision, "branch");
  const k2 = decideAepoBranch(c, 0, 4, 2, draws(0.55));
  assert.equal(k2.decision, "no_branch");
  assert.equal(k2.penaltyK, 2);
  assert.ok(Math.abs(k2.penaltyFactor - 0.9) < 1e-12);
  // ΔH = 0.5 adds w·ΔH = 0.1: (0.45 + 0.1)·0.9 = 0.495 < 0.5; at k = 1: 0.55·0.95 = 0.5225 ≥ 0.5.
  assert.equal(decideAepoBranch(c, 0.5, 4, 2, draws(0.45)).decision, "no_branch");
  assert.equal(decideAepoBranch(c, 0.5, 4, 1, draws(0.45)).decision, "branch");
  // The recorded p = P(branch) = 1 − (τ/f − w·ΔH): k = 0, ΔH = 0.5 → 1 − (0.5 − 0.1) = 0.6.
  assert.ok(Math.abs(aepoBranchProbability(c, 0.5, 1) - 0.6) < 1e-12);
  // k = 2: 1 − (0.5/0.9 − 0.1) = 0.54444…; f = 0 never branches.
  assert.ok(Math.abs(aepoBranchProbability(c, 0.5, 0.9) - (1 - (0.5 / 0.9 - 0.1))) < 1e-12);
  assert.equal(aepoBranchProbability(c, 0.5, 0), 0);
  // No budget: no draw, "budget".
  const b = decideAepoBranch(c, 5, 0, 0, draws());
  assert.deepEqual([b.decision, b.u, b.children], ["budget", [], 0]);
  // Z = 3 attempts, each its own draw, capped by the budget (2).
  const z3 = parseRolloutConfig({ algorithm: "aepo", branches_per_fork: 3 });
  const o = decideAepoBranch(z3, 0, 2, 0, draws(0.9, 0.1, 0.7, 0.99));
  assert.deepEqual([o.u, o.children], [[0.9, 0.1, 0.7], 2]);
});

// --- the agent loop --------------------------------------------------------------------------

/** `n` calls then an answer; the first segment has entropy `a` per token, later ones `b`. */
const nCalls = (n: number, a = 1, b = 1): Script => (ctx) => {
  const calls = ctx.response.split("<result>").length - 1;
  const h = calls === 0 ? a : b;
  if (calls < n) return [{ text: `<python>c${calls}</python>`, entropy: h }];
  return [{ text: "<answer>x</answer><eos>", entropy: h }];
};

async function roll(script: Script, cfg: RolloutInput, ids = ["q1"], maxToolCalls = 4) {
  const policy = new ScriptedPolicy(script);
  const tools = new FakeToolRuntime(["python"], (_t, i) => `r:${i}`);
  const config = parseRolloutConfig(cfg, { max_tool_calls: maxToolCalls });
  const res = await runRollout(
    ids.map((id) => ({
      task: { id, prompt: "q", answers: ["x"] },
      promptTokens: policy.tokenizer.encode(`Q ${id}\n`),
    })),
    { policy, tools, config, rng: stream(7, "aepo-test") },
  );
  for (const q of res.questions) {
    assert.deepEqual(checkTree(q.tree), []);
    assert.equal(q.tree.trajectories.length, config.rollouts, "exactly M trajectories");
  }
  assert.equal(policy.live, 0);
  return { trees: res.questions.map((q) => q.tree), config, stats: res.stats, policy };
}

/** The fork records of trajectory `path`, in call order: [penalty k, decision]. */
function forksOf(tree: RolloutTree, path: string): [number | undefined, string][] {
  const t = tree.trajectories.find((x) => x.path === path)!;
  return tree.forks.filter((f) => f.trajectory === t.index)
    .map((f) => [f.penaltyK, f.decision]);
}

// penalty 1: f = max(0, 1 − k), so a path that branched at its last call (k ≥ 1) cannot branch
// again; τ = 0.001 and w = 0: with k = 0 a draw branches unless u < 0.001 (none does here).
const PENALTY_1 = {
  algorithm: "aepo",
  mode: "reference",
  reference_top_k: 0,
  rollouts: 6,
  initial: 1,
  threshold: 0.001,
  entropy_weight: 0,
  penalty: 1,
} as const;

Deno.test("aepo penalty per path: k counts the path's own consecutive branchings, reset by a non-branch", async () => {
  const { trees } = await roll(nCalls(4), { ...PENALTY_1, penalty_scope: "path" });
  const tree = trees[0];
  // Trajectory 0: call 1 k=0 branches (child 0/1.0); call 2 k=1 → f=0, no branch (reset);
  // call 3 k=0 branches again (child 0/3.0); call 4 k=1, no branch.
  assert.deepEqual(forksOf(tree, "0"), [[0, "branch"], [1, "no_branch"], [0, "branch"], [
    1,
    "no_branch",
  ]]);
  // The child forked at call 1 inherits its parent's streak (1): its call 2 is penalised too,
  // then its call 3 branches (k = 0), its call 4 not.
  assert.deepEqual(forksOf(tree, "0/1.0"), [[1, "no_branch"], [0, "branch"], [1, "no_branch"]]);
  // The child forked at call 3 has one call left, with k = 1.
  assert.deepEqual(forksOf(tree, "0/3.0"), [[1, "no_branch"]]);
  assert.ok(tree.forks.every((f) => f.penaltyFactor === Math.max(0, 1 - f.penaltyK!)));
});

Deno.test("aepo penalty per prompt (the reference): k counts the question's added paths, never reset", async () => {
  const { trees } = await roll(nCalls(4), { ...PENALTY_1, penalty_scope: "prompt" });
  const tree = trees[0];
  // Round 1: nothing added yet, k = 0: branch. From round 2 on k = 1 (the branch of round 1)
  // for every path of the question: nothing branches again, although trajectory 0 did not
  // branch at call 2 (per path it would at call 3, see the test above).
  assert.deepEqual(forksOf(tree, "0"), [[0, "branch"], [1, "no_branch"], [1, "no_branch"], [
    1,
    "no_branch",
  ]]);
  assert.deepEqual(forksOf(tree, "0/1.0"), [[1, "no_branch"], [1, "no_branch"], [1, "no_branch"]]);
  // The rest of the budget went to fillers, which count too: their calls see k ≥ 2.
  const fillers = tree.trajectories.filter((t) => t.kind === "filler");
  assert.equal(fillers.length, 4);
  const kOfFiller3 = forksOf(tree, fillers.at(-1)!.path).map(([k]) => k!);
  assert.ok(kOfFiller3.every((k) => k >= 4), `last filler's k: ${kOfFiller3}`);
});

Deno.test("aepo pre-monitoring in the loop: probe entropies set the question's m, recorded", async () => {
  // First segment "<python>c0</python>" = 4 tokens of entropy 5, later ones 0:
  // H_root = 4·5 / ln V; probe: 3 segments (c0, c1, answer) → H̄_tool = (20 + 0 + 0) / 3 / ln V.
  const { trees, config, policy } = await roll(nCalls(2, 5, 0), {
    algorithm: "aepo",
    rollouts: 8,
    initial: 2,
    pre_monitor: true,
  });
  const lnV = Math.log(policy.vocabSize);
  const pm = trees[0].premonitor!;
  assert.ok(Math.abs(pm.hRoot - 20 / lnV) < 1e-9, `H_root ${pm.hRoot}`);
  assert.equal(pm.hSteps.length, 3);
  assert.ok(Math.abs(pm.hTool - 20 / 3 / lnV) < 1e-9);
  // V = 107: ln V = 4.6728; H_root − H̄_tool = 2.8532; σ(0.5·2.8532) = 0.80633; 8·0.806 = 6.45 → 7.
  assert.equal(policy.vocabSize, 107);
  assert.equal(pm.initial, 7);
  const initial = trees[0].trajectories.filter((t) => t.kind === "initial").length;
  assert.equal(initial, 7, "m whole trajectories, not `initial`");
  assert.equal(config.initial, 2);
  // The record is in the stored tree; an ARPO tree has none.
  assert.match(trees[0].toJsonLines().split("\n")[0], /"premonitor":\{"h_root":/);
  const arpo = await roll(nCalls(2), { rollouts: 4, initial: 2 });
  assert.doesNotMatch(arpo.trees[0].toJsonLines(), /premonitor|penalty_k/);
});

Deno.test("aepo is deterministic and independent of the batch (keyed streams)", async () => {
  const cfg = { algorithm: "aepo", rollouts: 6, initial: 2, pre_monitor: true } as const;
  const script: Script = (ctx) => {
    const calls = ctx.response.split("<result>").length - 1;
    const h = 0.5 + ctx.draw();
    if (calls < 2) return [{ text: `<python>c${calls}</python>`, entropy: h }];
    return [{ text: "<answer>x</answer><eos>", entropy: h }];
  };
  const alone = await roll(script, cfg, ["q2"]);
  const batch = await roll(script, cfg, ["q1", "q2", "q3"]);
  assert.equal(alone.trees[0].toJsonLines(), batch.trees[1].toJsonLines());
});

Deno.test("aepo options: defaults filled for aepo only; errors elsewhere", () => {
  const arpo = rolloutSettingsSchema({ algorithm: "arpo", rollouts: 8, initial: 4 }).parse({});
  for (const k of ["pre_monitor", "pre_monitor_beta", "root_tokens", "penalty", "penalty_scope"]) {
    assert.ok(!(k in arpo), `${k} must stay out of an arpo block (stage keys)`);
  }
  assert.equal(parseRolloutConfig({}).aepo, undefined);
  const a = rolloutSettingsSchema({ algorithm: "arpo", rollouts: 8, initial: 4 })
    .parse({ algorithm: "aepo" });
  assert.deepEqual(
    [a.pre_monitor, a.pre_monitor_beta, a.root_tokens, a.penalty, a.penalty_scope],
    [false, 0.5, 50, 0.05, "path"],
  );
  assert.throws(
    () => parseRolloutConfig({ penalty_scope: "prompt" }, {}, "stages[2]"),
    (e) => e instanceof ArpoError && /stages\[2\]\.rollout\.penalty_scope: .*aepo/.test(e.message),
  );
  assert.throws(
    () => parseRolloutConfig({ algorithm: "aepo", penalty_scope: "batch" as "path" }),
    /rollout\.penalty_scope/,
  );
});
