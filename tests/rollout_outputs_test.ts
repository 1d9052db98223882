import { memoryStore } from "./fixtures/helpers.ts";
import assert from "node:assert/strict";
import { runRollout } from "../src/rollout/agent_loop.ts";
import { parseTreeLines, storeRollout, treeLines } from "../src/rollout/artifacts.ts";
import { parseRolloutConfig } from "../src/rollout/config.ts";
import { rolloutMetrics, summarize } from "../src/rollout/metrics.ts";
import { renderPrompt } from "../src/rollout/prompt.ts";
import { responseText, scoreRollout } from "../src/rollout/rewards.ts";
import { groupAdvantages, setGroupAdvantages } from "../src/train/advantages.ts";
import { ArpoError } from "../src/errors.ts";
import { stream } from "../src/rng.ts";
import { canonicalJson } from "../src/store/canonical.ts";
import type { Reward } from "../src/plugin/contracts.ts";
import { type Script, ScriptedPolicy } from "./fixtures/rollout/scripted_policy.ts";
import { FakeToolRuntime } from "./fixtures/rollout/fake_tools.ts";

Deno.test("group advantages: unbiased std, +1e-6, group of one → 0", () => {
  const a = groupAdvantages([1, 0, 0, 1]);
  const std = Math.sqrt(1 / 3);
  assert.deepEqual(a.map((x) => x.toFixed(9)), [
    (0.5 / (std + 1e-6)).toFixed(9),
    (-0.5 / (std + 1e-6)).toFixed(9),
    (-0.5 / (std + 1e-6)).toFixed(9),
    (0.5 / (std + 1e-6)).toFixed(9),
  ]);
  assert.deepEqual(groupAdvantages([0.7]), [0]);
  assert.deepEqual(groupAdvantages([0.3, 0.3, 0.3]), [0, 0, 0]);
  assert.deepEqual(groupAdvantages([]), []);
});

// Hand-worked tree (same as the paper-mode threshold test): 0 branches into 2; 1 does not; filler 3.
const script: Script = (ctx) => {
  const p = String(ctx.path.at(-1));
  if (!ctx.response.includes("<result>")) return [{ text: "<python>q</python>", entropy: 1 }];
  if (p === "0") return [{ text: "ok<answer>A</answer><eos>", entropy: 2 }];
  if (p === "1") return [{ text: "no<answer>A</answer><eos>", entropy: 0.5 }];
  if (p === "0/1.0") return [{ text: "<answer>B</answer><eos>", entropy: 0.3 }];
  return [{ text: "zz<answer>C</answer><eos>", entropy: 3 }];
};

async function handWorked() {
  const policy = new ScriptedPolicy(script);
  const tools = new FakeToolRuntime(["python"], (_t, i) => (i === "q" ? "Error: boom" : i));
  const config = parseRolloutConfig({
    rollouts: 4,
    initial: 2,
    entropy_tokens: 2,
    entropy_weight: 1,
    decision: "threshold",
    entropy_norm: "log_vocab",
  });
  const task = { id: "t1", prompt: "Q", answers: ["A"] };
  const res = await runRollout([{ task, promptTokens: policy.tokenizer.encode("Q\n") }], {
    policy,
    tools,
    config,
    rng: stream(7, "arpo-test"),
  });
  return { policy, config, res };
}

Deno.test("rewards: every trajectory scored, advantages per question", async () => {
  const { policy, res } = await handWorked();
  const seen: string[] = [];
  const reward: Reward = {
    kind: "reward",
    score(s) {
      seen.push(s.response);
      const ok = s.response.includes("<answer>A</answer>");
      return { reward: ok ? 1 : 0, parts: { correct: ok, calls: s.toolCalls.length } };
    },
  };
  scoreRollout(res.questions, reward, policy.tokenizer);
  const tree = res.questions[0].tree;
  assert.deepEqual(tree.trajectories.map((t) => t.reward), [1, 1, 0, 0]);
  // Scoring sets rewards only; the group advantages are the trainer's step.
  assert.ok(tree.trajectories.every((t) => t.advantage === undefined));
  setGroupAdvantages(res.questions);
  const adv = groupAdvantages([1, 1, 0, 0]);
  assert.deepEqual(tree.trajectories.map((t) => t.advantage), adv);
  // The response excludes the prompt and the trailing EOS; results are included.
  assert.equal(seen[0], "<python>q</python> <result>\nError: boom\n</result>ok<answer>A</answer>");
  assert.equal(responseText(tree, tree.trajectories[2], policy.tokenizer), seen[2]);
  const bad: Reward = { kind: "reward", score: () => ({ reward: NaN, parts: {} }) };
  assert.throws(() => scoreRollout(res.questions, bad, policy.tokenizer, "f1"), (e: unknown) => {
    assert.ok(e instanceof ArpoError);
    assert.match(e.message, /reward plugin "f1" returned reward NaN for task "t1"/);
    return true;
  });
});

Deno.test("metrics: tool calls, branching, ΔH, entropy by distance, lengths", async () => {
  const { policy, res } = await handWorked();
  const tree = res.questions[0].tree;
  const m = rolloutMetrics([tree]);
  assert.equal(m.trajectories, 4);
  assert.deepEqual(m.toolCallsPerTrajectory, { all: 1, byTool: { python: 1 } });
  // Distinct calls: 0, 1 and the filler 3 (the child shares 0's call).
  assert.equal(m.toolCalls.total, 3);
  assert.equal(m.toolCalls.errors, 0, "the fake runtime reports error=false for this text");
  assert.deepEqual(m.branching.decisions, { branch: 1, no_branch: 1, budget: 1, off: 0 });
  assert.equal(m.branching.children, 1);
  assert.equal(m.branching.fillers, 1);
  const lnV = Math.log(policy.vocabSize);
  // Decisions: branch, no_branch and the filler's budget-blocked one, which counts.
  assert.equal(m.branching.decided, 3);
  assert.equal(m.branching.branchRate, 1 / 3);
  assert.equal(m.branching.openBranchRate, 1 / 2);
  assert.ok(Math.abs(m.branching.deltaHBranched! - 2 / lnV) < 1e-12);
  assert.ok(Math.abs(m.branching.deltaHNotBranched! - -1 / lnV) < 1e-12);
  assert.equal(m.deltaH.count, 3);
  assert.ok(Math.abs(m.deltaH.max - 4 / lnV) < 1e-12, "filler: (3−1)·2 / ln V");
  assert.ok(Math.abs(m.deltaH.min - -1 / lnV) < 1e-12);
  // Before any result: three first segments of 3 tokens at entropy 1.
  assert.deepEqual(m.entropy.fromStart.count, [3, 3, 3]);
  assert.deepEqual(m.entropy.fromStart.mean, [1, 1, 1]);
  // After results: at distance 0 the four continuations (0, 1, child, filler), once each.
  assert.equal(m.entropy.fromResult.count[0], 4);
  assert.ok(Math.abs(m.entropy.fromResult.mean[0] - (2 + 0.5 + 0.3 + 3) / 4) < 1e-12);
  const lens = tree.trajectories.map((t) => tree.responseLength(t));
  assert.deepEqual(m.responseLength, summarize(lens));
  assert.deepEqual(m.endReasons, { eos: 4, length: 0, tool_cap: 0, empty_call: 0 });
});

Deno.test("artefacts: canonical JSON lines, no timings, digests, read back", async () => {
  const { policy, config, res } = await handWorked();
  const objects = new Map<string, Uint8Array>();
  const store = memoryStore(objects);
  const stored = await storeRollout(store, res, config, policy.digest, { stage: "rl", step: 0 });
  const text = new TextDecoder().decode(objects.get(stored.trees[0].digest)!);
  assert.equal(text, treeLines(res, config, policy.digest)[0]);
  for (const line of text.trim().split("\n")) {
    assert.equal(canonicalJson(JSON.parse(line)), line, "each line is canonical JSON");
  }
  assert.ok(!/duration|_ms|Ms"/.test(text), "no wall-clock values in the tree");
  const rec = parseTreeLines(text);
  assert.equal(rec.trajectories.length, 4);
  assert.equal(rec.forks.length, 3);
  assert.equal(rec.toolCalls.length, 3);
  assert.equal(rec.question.task_id, "t1");
  assert.equal(rec.segments.length, res.questions[0].tree.segments.length);
  for (const seg of rec.segments) {
    const want = seg.kind === "result" ? 0 : 1;
    assert.deepEqual(seg.loss_mask, (seg.tokens as number[]).map(() => want));
  }
  const index = JSON.parse(new TextDecoder().decode(objects.get(stored.index)!));
  assert.equal(index.type, "rollout_batch");
  assert.deepEqual(index.questions, [{
    task_id: "t1",
    tree: stored.trees[0].digest,
    trajectories: 4,
  }]);
  assert.ok(!JSON.stringify(index).includes("durationMs"));
  // Timings live outside: one per tool call.
  assert.equal(res.timings.toolCalls.length, 3);
  assert.throws(
    () => parseTreeLines('{"type":"nope"}\n', "tree x"),
    /tree x, line 1: unknown record type/,
  );
});

Deno.test("config: defaults, errors name the field", () => {
  const c = parseRolloutConfig({ mode: "reference" });
  assert.equal(c.entropyNormalization, "log_vocab");
  assert.equal(c.referenceInit, "own");
  // Default: paper probe, sampled decision, ln V (ΔH O(1), so β acts); threshold → V.
  const d = parseRolloutConfig({});
  assert.deepEqual([d.mode, d.decision, d.entropyNormalization], ["paper", "sample", "log_vocab"]);
  assert.equal(parseRolloutConfig({ decision: "threshold" }).entropyNormalization, "vocab");
  assert.equal(
    parseRolloutConfig({ decision: "threshold", entropy_norm: "mean" }).entropyNormalization,
    "mean",
  );
  assert.equal(d.branchProbability, undefined);
  // The rl stage's defaults: M=8, N=4.
  assert.deepEqual([d.rollouts, d.initial], [8, 4]);
  assert.equal(parseRolloutConfig({ algorithm: "grpo", rollouts: 5, initial: 2 }).initial, 5);
  assert.throws(
    () => parseRolloutConfig({ rollouts: 4, initial: 6 }, {}, 'stage "rl"'),
    (e: unknown) =>
      e instanceof ArpoError &&
      /^stage "rl"\.rollout\.initial: at most rollouts \(4\), found 6$/.test(e.message),
  );
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => parseRolloutConfig({ bogus: 1 } as any),
    (e: unknown) =>
      e instanceof ArpoError && /^stage\.rollout: Unrecognized key: "bogus"$/.test(e.message),
  );
  assert.throws(
    () => parseRolloutConfig({}, { max_tokens: 0 }),
    (e: unknown) => e instanceof ArpoError && /^stage\.sampling\.max_tokens: /.test(e.message),
  );
});

Deno.test("prompt rendering: template when present, else text after BOS", () => {
  const policy = new ScriptedPolicy(() => []);
  const tok = policy.tokenizer;
  const task = { id: "a", prompt: "hi", answers: [] };
  assert.deepEqual(renderPrompt(task, tok).tokens, tok.encode("hi"));
  const withBos = Object.assign(Object.create(tok), { bosTokenId: 1 });
  withBos.encode = tok.encode.bind(tok);
  assert.deepEqual(renderPrompt(task, withBos).tokens, [1, ...tok.encode("hi")]);
  const chat = Object.assign(Object.create(tok), {
    applyChatTemplate: (m: { role: string; content: string }[], gen: boolean) =>
      m.map((x) => `${x.role}:${x.content}\n`).join("") + (gen ? "assistant:" : ""),
  });
  chat.encode = tok.encode.bind(tok);
  const r = renderPrompt({
    id: "b",
    prompt: [{ role: "system", content: "s" }, { role: "user", content: "u" }],
    answers: [],
  }, chat);
  assert.equal(r.text, "system:s\nuser:u\nassistant:");
});
