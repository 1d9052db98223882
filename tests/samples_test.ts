// `arpo samples` (src/cli/commands/samples.ts over src/report/samples.ts): a run's trajectories
// as text with tool calls, results, reward parts, verdicts and per-token entropy; filters, sort.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadManifest } from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { runManifest } from "../src/run/runner.ts";
import type { PolicyFactory } from "../src/run/stages.ts";
import { parseTreeLines } from "../src/rollout/artifacts.ts";
import { runSamples, sampleMatches, sortSamples, treeSamples } from "../src/report/samples.ts";
import { tokenTexts } from "../src/report/tokens.ts";
import { loadTokenizer } from "../src/model/tokenizer.ts";
import { calcScript } from "./fixtures/rollout/calc_script.ts";
import { ScriptedPolicy } from "./fixtures/rollout/scripted_policy.ts";
import { cli, rm, scratchStore } from "./fixtures/helpers.ts";

const MANIFEST = fileURLToPath(
  new URL("./fixtures/rollout/manifests/rollout_stages.yaml", import.meta.url),
);

const line = (o: unknown) => JSON.stringify(o);
const TREE = [
  line({ type: "question", task_id: "t1", answers: ["7"], prompt_text: "What is 3+4?" }),
  line({
    type: "segment",
    id: 0,
    parent: null,
    kind: "gen",
    trajectory: 0,
    tokens: [104, 105],
    text: "hi",
    entropies: [1.5, 0.5],
    logprobs: [-0.7, -0.1],
    loss_mask: [1, 1],
  }),
  line({
    type: "segment",
    id: 1,
    parent: 0,
    kind: "result",
    trajectory: 0,
    tokens: [33],
    text: "!",
    entropies: [0],
    logprobs: [0],
    loss_mask: [0],
  }),
  line({
    type: "segment",
    id: 2,
    parent: 1,
    kind: "gen",
    trajectory: 1,
    tokens: [195, 169],
    text: "é",
    entropies: [2, 2],
    logprobs: [-1, -1],
    loss_mask: [1, 1],
  }),
  line({
    type: "tool_call",
    id: 0,
    trajectory: 0,
    segment: 0,
    result: 1,
    tool: "python",
    input: "3+",
    output: "!",
    error: true,
    timed_out: true,
  }),
  line({
    type: "trajectory",
    index: 0,
    kind: "initial",
    segments: [0, 1],
    end: "eos",
    tool_calls: [0],
    reward: 0,
  }),
  line({
    type: "trajectory",
    index: 1,
    kind: "branch",
    parent: 0,
    segments: [0, 1, 2],
    end: "eos",
    tool_calls: [0],
    reward: 1,
    reward_parts: { correct: 1 },
  }),
].join("\n");

Deno.test("samples: a tree's trajectories, in order, with calls, verdicts and token texts", async () => {
  const tok = await loadTokenizer({});
  const ss = treeSamples(
    parseTreeLines(TREE),
    { stage: "eval", verdicts: [false, true] },
    tokenTexts(tok),
  );
  assert.equal(ss.length, 2);
  assert.deepEqual(ss[1].parts.map((p) => p.kind), ["gen", "result", "gen"]);
  assert.deepEqual(ss[1].parts[1].call, {
    id: 0,
    tool: "python",
    input: "3+",
    error: true,
    timedOut: true,
  });
  assert.equal(ss[0].timeouts, 1);
  assert.equal(ss[0].toolErrors, 1, "a timeout is a failed call");
  assert.equal(ss[0].correct, false);
  assert.equal(ss[1].correct, true);
  assert.deepEqual(ss[1].rewardParts, { correct: 1 });
  assert.equal(ss[0].meanEntropy, 1, "over sampled positions only (mask 1)");
  // "é" is two bytes: the streaming decoder puts the character on its second token
  assert.deepEqual(ss[1].parts[2].tokens!.map((t) => t.text), ["", "é"]);
  assert.deepEqual(ss[1].parts[0].tokens!.map((t) => t.entropy), [1.5, 0.5]);
  assert.deepEqual(sortSamples(ss, "reward").map((s) => s.trajectory), [1, 0]);
  assert.deepEqual(ss.filter((s) => sampleMatches(s, "wrong")).map((s) => s.trajectory), [0]);
  assert.equal(ss.filter((s) => sampleMatches(s, "timeout")).length, 2);
});

Deno.test("samples: the CLI over a run's eval, probe and rl stages", async () => {
  const policyFactory: PolicyFactory = () => Promise.resolve(new ScriptedPolicy(calcScript));
  const store = await scratchStore();
  try {
    const view = await loadManifest(MANIFEST, { stages: BUILTIN_STAGES });
    const r = await runManifest({ store, view, policyFactory });
    const all = await runSamples(store, r.record);
    const evals = all.filter((s) => s.stage === "eval");
    assert.equal(evals.length, 3 * 2, "3 questions × 2 rollouts");
    assert.ok(evals.every((s) => s.correct !== null), "eval samples carry the judge's verdict");
    assert.ok(all.some((s) => s.stage === "rl" && s.step !== undefined));
    const id = r.runId.slice(0, 10);

    const j = await cli(["samples", `${id}:eval`, "--store", store.root, "--json", "--limit", "0"]);
    assert.equal(j.code, 0, j.stderr);
    const out = JSON.parse(j.stdout);
    assert.equal(out.total, 6);
    const correct = evals.filter((s) => s.correct).length;
    const c = await cli([
      "samples",
      `${id}:eval`,
      "--store",
      store.root,
      "--where",
      "correct",
      "--sort",
      "reward",
      "--limit",
      "1",
      "--tokens",
    ]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(
      c.stdout,
      /^── stage eval · task \S+ · trajectory \d+ \(initial\) · reward 1 .*· correct/m,
    );
    assert.match(c.stdout, /^\[result of python\]$/m);
    assert.match(c.stdout, /^ {4}pos {2}entropy {2}logprob {2}token$/m);
    assert.match(
      c.stdout,
      new RegExp(`^1 of ${correct} sample\\(s\\) where correct \\(6 in stage 'eval'\\)`, "m"),
    );

    const bad = await cli(["samples", `${id}:nosuch`, "--store", store.root]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /has no stage 'nosuch' \(its stages: eval, probe, rl\)/);
    const rl = await cli(["samples", `${id}:rl`, "--store", store.root, "--where", "wrong"]);
    assert.equal(rl.code, 2);
    assert.match(rl.stderr, /only eval stages record the benchmark's verdict/);
    const w = await cli(["samples", id, "--store", store.root, "--where", "nope"]);
    assert.equal(w.code, 2);
    assert.match(w.stderr, /--where: expected one of correct, wrong, tool_error, timeout/);
  } finally {
    await rm(store.root);
  }
});
