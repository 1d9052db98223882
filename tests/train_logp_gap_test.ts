/**
 * `logp_gap` (mean |recomputed − sampled| log-prob) counts only tokens the policy sampled: a
 * forced end-of-sequence token (over the tool-call cap) and tool results carry a 0 placeholder
 * as their sampled log-prob and are skipped. What is learned (the loss mask) does not change.
 */
import assert from "node:assert/strict";
import { initWeights } from "../src/model/weights.ts";
import { type TreeLike, treeSequences } from "../src/train/advantages.ts";
import { recomputeLogprobs, rlUpdate } from "../src/train/rl_update.ts";
import { Trainer } from "../src/train/trainer.ts";
import { Stream } from "../src/rng.ts";
import { TINY_LLAMA } from "./fixtures/tiny_llama.ts";

const cfg = TINY_LLAMA;
const EOS = 0;

/**
 * prompt [1, 2]; trajectory 0: gen [5, 6] (a tool call), result [7, 8], gen [9] (another call,
 * over the cap), forced eos; trajectory 1 forks after the result: gen [10, 11, EOS] (sampled
 * EOS). `logprobs` of gen segments are filled by the caller.
 */
function tree(lp: (seg: number, i: number) => number): TreeLike {
  const seg = (id: number, kind: string, tokens: number[]) => ({
    id,
    kind,
    tokens,
    lossMask: tokens.map(() => (kind === "result" ? 0 : 1)),
    logprobs: tokens.map((_, i) => (kind === "gen" ? lp(id, i) : 0)),
  });
  return {
    promptTokens: [1, 2],
    segments: [
      seg(0, "gen", [5, 6]),
      seg(1, "result", [7, 8]),
      seg(2, "gen", [9]),
      seg(3, "eos", [EOS]),
      seg(4, "gen", [10, 11, EOS]),
    ],
    trajectories: [
      { index: 0, segments: [0, 1, 2, 3] },
      { index: 1, segments: [0, 1, 4] },
    ],
  };
}

Deno.test("logp gap: sequences mark sampled tokens; the forced EOS is learned but not sampled", () => {
  const t = tree(() => -0.5);
  for (const mode of ["soft", "hard"] as const) {
    const [a, b] = treeSequences(t, [1, -1], mode);
    assert.deepEqual(a.tokens, [1, 2, 5, 6, 7, 8, 9, EOS]);
    assert.deepEqual(a.sampledMask, [0, 0, 1, 1, 0, 0, 1, 0]);
    assert.deepEqual(a.lossMask, [0, 0, 1, 1, 0, 0, 1, 1]); // the forced EOS is still learned
    assert.deepEqual(a.sampledLogp, [0, 0, -0.5, -0.5, 0, 0, -0.5, 0]);
    assert.deepEqual(b.sampledMask, [0, 0, 1, 1, 0, 0, 1, 1, 1]); // a sampled EOS counts
  }
  // Segments without a kind (hand-built trees): the learned tokens count as sampled.
  const bare: TreeLike = {
    promptTokens: [1],
    segments: [{ id: 0, tokens: [3, 4], lossMask: [1, 0], logprobs: [-1, 0] }],
    trajectories: [{ index: 0, segments: [0] }],
  };
  assert.deepEqual(treeSequences(bare, [0])[0].sampledMask, [0, 1, 0]);
});

Deno.test("logp gap: the forced EOS's 0 placeholder does not count", async () => {
  // A scorer that reproduces every sampled log-prob up to 0.01 and gives the forced EOS −2.5.
  const t = tree(() => -0.5);
  const seqs = treeSequences(t, [1, -1]);
  const scorer = {
    score: (xs: readonly { tokens: readonly number[] }[]) =>
      Promise.resolve(xs.map((_, k) => {
        const logp = Float32Array.from(seqs[k].sampledLogp, (x, i) =>
          seqs[k].sampledMask[i] ? x + 0.01 : -2.5);
        return { logp, entropy: new Float32Array(logp.length) };
      })),
  };
  const gap = await recomputeLogprobs(scorer, seqs, undefined);
  // 3 + 5 learned sampled tokens, each 0.01 off; counting the forced EOS would add 2.5 / 9.
  assert.ok(Math.abs(gap - 0.01) < 1e-6, `gap ${gap}`);
  assert.equal(seqs[0].oldLogp![7], -2.5); // recomputed for the loss all the same
});

Deno.test("logp gap: a real update on a tree with a forced EOS reports the sampled tokens' gap", async () => {
  const w = initWeights(cfg, "gap", 0.3);
  const trainer = Trainer.create(cfg, w, { objective: { kind: "pg" }, threads: 1 });
  // The "rollout" log-probs are the trainer's own: the gap over sampled tokens is ~0, while the
  // forced EOS's placeholder is |log p(EOS)| ≈ ln 13 away.
  const flat = treeSequences(tree(() => 0), [0, 0]);
  const scored = await trainer.score(flat);
  const sampled = (seg: number, i: number) => {
    // segment → (sequence, position): trajectory 0 holds segments 0–3, trajectory 1 segment 4
    const pos: Record<number, [number, number]> = { 0: [0, 2], 2: [0, 6], 4: [1, 6] };
    const [k, p] = pos[seg];
    return scored[k].logp[p + i];
  };
  const t = tree(sampled);
  const eosLogp = scored[0].logp[7];
  assert.ok(Math.abs(eosLogp) > 1, `log p(forced EOS) = ${eosLogp}`);
  const r = await rlUpdate(trainer, [{ tree: t, advantages: [1, -1] }], {
    epochs: 1,
    minibatch: 1,
    lr: 1e-3,
    attribution: "soft",
    shuffle: new Stream(["gap-test"]),
  });
  await trainer.release();
  assert.ok(r.logpGap < 1e-6, `logp gap ${r.logpGap}`);
  // What is learned is unchanged: both trajectories' learned tokens, the forced EOS included.
  assert.equal(r.updates.length, 1);
  assert.equal(r.updates[0].tokens, 4 + 5);
});
