/**
 * Training steps on ONNX Runtime: the fused and micro-batched paths agree, AdamW matches a TS
 * reference, the SFT loss is the token-mean over loss-mask tokens, the clipped surrogate with dual
 * clip gives the hand-computed values, scoring matches the inference decoder, and training is
 * deterministic down to checkpoint bytes (also across a resume).
 */
import assert from "node:assert/strict";
import { parseHfConfig } from "../src/model/config.ts";
import { buildDecoderGraph } from "../src/model/decoder_graph.ts";
import { initWeights } from "../src/model/weights.ts";
import type { TensorMap } from "../src/model/safetensors.ts";
import { createSession, ort } from "../src/onnx/session.ts";
import { buildTrainGraph } from "../src/train/graphs.ts";
import { microBatches, packBatch, type TrainSequence } from "../src/train/batch.ts";
import { adamScalars, DEFAULT_ADAMW, lrAt } from "../src/train/optimizer.ts";
import { Trainer } from "../src/train/trainer.ts";
import { checkpointBytes, parseCheckpoint } from "../src/train/checkpoint.ts";
import { Stream } from "../src/rng.ts";
import { TINY_LLAMA } from "./fixtures/tiny_llama.ts";

const cfg = TINY_LLAMA;

function seqs(n: number, key: string): TrainSequence[] {
  const s = new Stream(["train-test", key]);
  return Array.from({ length: n }, (_, k) => {
    const len = 4 + s.int(7);
    const tokens = Array.from({ length: len }, () => s.int(13));
    // The first two tokens are "prompt"; one later token is a masked tool result.
    const lossMask = tokens.map((_, i) => (i < 2 || i === len - 2 ? 0 : 1));
    return { tokens, lossMask, advantages: k % 2 ? 1 : -0.5 };
  });
}

function maxDiff(a: TensorMap, b: TensorMap): number {
  let d = 0;
  for (const [k, t] of a) {
    const u = b.get(k)!.data;
    for (let i = 0; i < t.data.length; i++) d = Math.max(d, Math.abs(t.data[i] - u[i]));
  }
  return d;
}

Deno.test("train: micro-batched accumulation equals the fused single-batch update", async () => {
  const w = initWeights(cfg, "acc");
  const sft = seqs(6, "acc");
  // Arbitrary behaviour / reference log-probs: some ratios clipped, some not.
  const pg = sft.map((s, k) => ({
    ...s,
    oldLogp: s.tokens.map((_, i) => -2.6 + 0.3 * Math.sin(i + k)),
    refLogp: s.tokens.map((_, i) => -2.4 + 0.2 * Math.cos(i * k)),
  }));
  const cases = [
    { objective: { kind: "sft" as const }, batch: sft },
    { objective: { kind: "pg" as const, kl: true, entropy: true }, batch: pg },
  ];
  for (const { objective, batch } of cases) {
    const objectiveParams = { klCoef: 0.2, entropyCoef: 0.01 };
    const a = Trainer.create(cfg, w, { objective, objectiveParams, threads: 1 });
    const b = Trainer.create(cfg, w, { objective, objectiveParams, threads: 1, tokenBudget: 24 });
    const sa = await a.trainStep(batch, 1e-2);
    const sb = await b.trainStep(batch, 1e-2);
    assert.equal(sa.microBatches, 1);
    assert.ok(sb.microBatches >= 3, `expected ≥3 micro-batches, got ${sb.microBatches}`);
    assert.equal(sa.tokens, sb.tokens);
    assert.ok(Math.abs(sa.loss - sb.loss) < 1e-5, `${objective.kind}: ${sa.loss} vs ${sb.loss}`);
    assert.ok(Math.abs(sa.gradNorm - sb.gradNorm) < 1e-5 * sa.gradNorm);
    if (objective.kind === "pg") {
      assert.ok(Math.abs(sa.clipFrac! - sb.clipFrac!) < 1e-9);
      assert.ok(sa.clipFrac! > 0 && sa.clipFrac! < 1, `clip fraction ${sa.clipFrac}`);
    }
    const diff = maxDiff(a.weights, b.weights);
    assert.ok(diff < 1e-6, `${objective.kind}: weights differ by ${diff}`);
    assert.ok(maxDiff(a.weights, w) > 1e-3, "the step changed nothing");
    await a.release();
    await b.release();
  }
});

Deno.test("train: in-graph AdamW (clip, bias correction, decoupled decay) matches a TS reference", async () => {
  const w = initWeights(cfg, "adam");
  const batch = seqs(4, "adam");
  const total = batch.reduce((a, s) => a + s.lossMask.slice(1).reduce((x, y) => x + y, 0), 0);
  // Gradients from the gradient graph.
  const tg = buildTrainGraph(cfg, { kind: "sft" }, "grads");
  const sess = await createSession(tg.graph, { threads: 1 });
  const feeds = packBatch(batch).feeds;
  feeds.loss_scale = new ort.Tensor("float32", Float32Array.of(1 / total), []);
  for (const [k, t] of w) feeds[k] = new ort.Tensor("float32", t.data, t.shape);
  const out = await sess.run(feeds);
  await sess.release();
  const adamw = { ...DEFAULT_ADAMW, weightDecay: 0.1, maxGradNorm: 0.05 };
  let sq = 0;
  for (const k of w.keys()) for (const x of out[`grad.${k}`].data as Float32Array) sq += x * x;
  const norm = Math.sqrt(sq);
  assert.ok(norm > 0.05, "clipping should be active in this test");
  const coef = Math.min(1, adamw.maxGradNorm / (norm + 1e-6));
  const lr = 3e-3;
  const tr = Trainer.create(cfg, w, { objective: { kind: "sft" }, threads: 1, adamw });
  const st = await tr.trainStep(batch, lr);
  assert.ok(Math.abs(st.gradNorm - norm) < 1e-4 * norm);
  let worst = 0;
  for (const [k, t] of w) {
    const gr = out[`grad.${k}`].data as Float32Array;
    const got = tr.weights.get(k)!.data;
    for (let i = 0; i < t.data.length; i++) {
      const g = gr[i] * coef;
      const m = (1 - adamw.beta1) * g, v = (1 - adamw.beta2) * g * g;
      const mh = m / (1 - adamw.beta1), vh = v / (1 - adamw.beta2);
      const want = t.data[i] * (1 - lr * adamw.weightDecay) - lr * mh / (Math.sqrt(vh) + adamw.eps);
      worst = Math.max(worst, Math.abs(want - got[i]));
    }
  }
  assert.ok(worst < 2e-6, `AdamW differs from the reference by ${worst}`);
  await tr.release();
});

Deno.test("train: SFT loss is the token-mean NLL over loss-mask tokens and decreases", async () => {
  const w = initWeights(cfg, "sft");
  const batch = seqs(4, "sft");
  const tr = Trainer.create(cfg, w, { objective: { kind: "sft" }, threads: 1 });
  const scores = await tr.score(batch);
  let nll = 0, n = 0;
  batch.forEach((s, k) => {
    s.lossMask.forEach((m, i) => {
      if (i > 0 && m) {
        nll -= scores[k].logp[i];
        n++;
      }
    });
  });
  const first = await tr.trainStep(batch, 1e-2);
  assert.equal(first.tokens, n);
  assert.ok(Math.abs(first.loss - nll / n) < 1e-5, `loss ${first.loss} vs NLL ${nll / n}`);
  assert.ok(first.entropy > 2 && first.entropy <= Math.log(13) + 1e-5);
  let last = first;
  for (let i = 0; i < 40; i++) last = await tr.trainStep(batch, 1e-2);
  assert.equal(tr.step, 41);
  assert.ok(last.loss < 0.5 * first.loss, `loss ${first.loss} → ${last.loss}`);
  await tr.release();
});

Deno.test("train: clipped surrogate with dual clip, approx KL, reference KL", async () => {
  const w = initWeights(cfg, "pg");
  const batch = seqs(4, "pg");
  const probe = Trainer.create(cfg, w, { objective: { kind: "sft" }, threads: 1 });
  const sc = await probe.score(batch);
  await probe.release();
  // Sequence k: A = ±; old log-probs shifted so the ratio is e^shift.
  const shifts = [0, 0.5, 3, -1]; // A: -0.5, 1, -0.5, 1
  const pgBatch = batch.map((s, k) => ({
    ...s,
    oldLogp: Array.from(sc[k].logp, (x) => x - shifts[k]),
    refLogp: Array.from(sc[k].logp, (x) => x + 0.3),
  }));
  let want = 0, n = 0, clipped = 0, kl = 0;
  pgBatch.forEach((s, k) => {
    const A = s.advantages as number;
    const r = Math.exp(shifts[k]);
    const l1 = -A * r, l2 = -A * Math.min(Math.max(r, 0.8), 1.2);
    let l = Math.max(l1, l2);
    if (A < 0) l = Math.min(l, -A * 3);
    for (let i = 1; i < s.tokens.length; i++) {
      if (!s.lossMask[i]) continue;
      want += l;
      kl -= shifts[k];
      if (l2 > l1) clipped++;
      n++;
    }
  });
  const k3 = Math.exp(0.3) - 0.3 - 1;
  const tr = Trainer.create(cfg, w, {
    objective: { kind: "pg", kl: true, entropy: true },
    objectiveParams: { klCoef: 0.5, entropyCoef: 0 },
    threads: 1,
  });
  const st = await tr.trainStep(pgBatch, 1e-3);
  assert.ok(
    Math.abs(st.loss - (want / n + 0.5 * k3)) < 1e-4,
    `loss ${st.loss} vs ${want / n + 0.5 * k3}`,
  );
  assert.ok(Math.abs(st.clipFrac! - clipped / n) < 1e-6);
  assert.ok(clipped > 0 && clipped < n);
  assert.ok(Math.abs(st.approxKl! - kl / n) < 1e-4);
  assert.ok(Math.abs(st.refKl! - k3) < 1e-4);
  await tr.release();
  // With old = current log-probs the ratio is 1: loss = −mean A, nothing clipped.
  const onPolicy = batch.map((s, k) => ({ ...s, oldLogp: Array.from(sc[k].logp) }));
  let meanA = 0, cnt = 0;
  onPolicy.forEach((s) =>
    s.lossMask.forEach((m, i) => {
      if (i > 0 && m) {
        meanA += s.advantages as number;
        cnt++;
      }
    })
  );
  const tr2 = Trainer.create(cfg, w, { objective: { kind: "pg" }, threads: 1 });
  const st2 = await tr2.trainStep(onPolicy, 1e-3);
  assert.ok(Math.abs(st2.loss + meanA / cnt) < 1e-5);
  assert.equal(st2.clipFrac, 0);
  assert.ok(Math.abs(st2.approxKl!) < 1e-6);
  assert.ok(st2.gradNorm > 0);
  await tr2.release();
});

Deno.test("train: score matches the inference decoder's log-softmax", async () => {
  const w = initWeights(cfg, "score", 0.2);
  const batch = seqs(3, "score");
  const tr = Trainer.create(cfg, w, { objective: { kind: "sft" }, threads: 1, tokenBudget: 20 });
  const sc = await tr.score(batch);
  await tr.release();
  const dec = buildDecoderGraph(cfg, w, { noCache: true });
  const sess = await createSession(dec.graph, { threads: 1 });
  for (let k = 0; k < batch.length; k++) {
    const t = batch[k].tokens, T = t.length;
    const bias = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) bias[i * T + j] = -1e9;
    const o = await sess.run({
      input_ids: new ort.Tensor("int64", BigInt64Array.from(t, BigInt), [1, T]),
      position_ids: new ort.Tensor("int64", BigInt64Array.from(t.map((_, i) => BigInt(i))), [1, T]),
      attention_bias: new ort.Tensor("float32", bias, [1, 1, 1, T, T]),
      logits_at: new ort.Tensor("int64", BigInt64Array.from(t.map((_, i) => BigInt(i))), [T]),
    });
    const lg = o.logits.data as Float32Array;
    for (let i = 1; i < T; i++) {
      const row = lg.subarray((i - 1) * 13, i * 13);
      const mx = Math.max(...row);
      const lse = mx + Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0));
      assert.ok(Math.abs(row[t[i]] - lse - sc[k].logp[i]) < 1e-5, `seq ${k} token ${i}`);
    }
  }
  await sess.release();
});

Deno.test("train: identical runs give identical checkpoint bytes, also across a resume", async () => {
  const w = initWeights(cfg, "det");
  const batches = [seqs(5, "d0"), seqs(5, "d1"), seqs(5, "d2"), seqs(5, "d3")];
  const run = async (from: number, init: Parameters<typeof Trainer.create>[1]) => {
    const tr = Trainer.create(cfg, init, {
      objective: { kind: "sft" },
      threads: 2,
      tokenBudget: 40,
    });
    for (let i = from; i < batches.length; i++) {
      await tr.trainStep(
        batches[i],
        lrAt({ kind: "cosine", lr: 1e-2, totalSteps: 4, warmupSteps: 1 }, i),
      );
    }
    const st = tr.state();
    await tr.release();
    return st;
  };
  const a = checkpointBytes(await run(0, w));
  const b = checkpointBytes(await run(0, w));
  assert.deepEqual(a.weights, b.weights);
  assert.deepEqual(a.optimizer, b.optimizer);
  // Stop after two steps, save, parse, resume.
  const half = Trainer.create(cfg, w, { objective: { kind: "sft" }, threads: 2, tokenBudget: 40 });
  for (let i = 0; i < 2; i++) {
    await half.trainStep(
      batches[i],
      lrAt({ kind: "cosine", lr: 1e-2, totalSteps: 4, warmupSteps: 1 }, i),
    );
  }
  const saved = checkpointBytes(half.state());
  await half.release();
  const resumed = parseCheckpoint(cfg, saved, "ckpt");
  assert.equal(resumed.step, 2);
  const c = checkpointBytes(await run(2, resumed));
  assert.deepEqual(c.weights, a.weights);
  assert.deepEqual(c.optimizer, a.optimizer);
});

Deno.test("train: schedules, AdamW scalars, micro-batch split", () => {
  assert.equal(lrAt({ kind: "constant", lr: 1e-3 }, 100), 1e-3);
  assert.equal(lrAt({ kind: "constant", lr: 1e-3, warmupSteps: 4 }, 1), 5e-4);
  const cos = { kind: "cosine" as const, lr: 1, totalSteps: 11, warmupSteps: 1 };
  assert.equal(lrAt(cos, 0), 1);
  assert.ok(Math.abs(lrAt(cos, 6) - 0.5) < 1e-12);
  assert.ok(Math.abs(lrAt(cos, 11)) < 1e-12);
  const s = adamScalars(DEFAULT_ADAMW, 0.1, 1);
  assert.ok(Math.abs(s.adam_step_size - 1) < 1e-12);
  assert.ok(Math.abs(s.adam_decay - 0.999) < 1e-12);
  const mk = (n: number) => ({ tokens: new Array(n).fill(1), lossMask: new Array(n).fill(1) });
  const parts = microBatches([mk(10), mk(10), mk(30), mk(5), mk(5)], 40);
  assert.deepEqual(parts.map((p) => p.map((x) => x.tokens.length)), [[10, 10], [30], [5, 5]]);
});

Deno.test("train: bad sequences are ArpoErrors naming the sequence", async () => {
  const tr = Trainer.create(cfg, initWeights(cfg, "bad"), {
    objective: { kind: "pg" },
    threads: 1,
  });
  await assert.rejects(
    () => tr.trainStep([{ tokens: [1, 2, 3], lossMask: [0, 1] }], 1e-3),
    /sequence 0: lossMask has 2 entries for 3 tokens/,
  );
  await assert.rejects(
    () => tr.trainStep([{ tokens: [1, 2, 3], lossMask: [0, 1, 1] }], 1e-3),
    /sequence 0 has no oldLogp/,
  );
  await tr.release();
});

Deno.test("train: a two-layer decoder learns to copy (attention trains end to end)", async () => {
  // Without attention to the first half the second half is unpredictable (loss ≥ ln 8 ≈ 2.08).
  const copyCfg = parseHfConfig({
    model_type: "llama",
    vocab_size: 12,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    tie_word_embeddings: true,
  }, "copy");
  const tr = Trainer.create(copyCfg, initWeights(copyCfg, "copy"), {
    objective: { kind: "sft" },
    threads: 1,
  });
  const s = new Stream(["copy-task"]);
  let first = 0, last = 0;
  for (let step = 0; step < 150; step++) {
    const batch = Array.from({ length: 16 }, () => {
      const x = Array.from({ length: 8 }, () => 2 + s.int(8));
      const tokens = [1, ...x, 10, ...x];
      return { tokens, lossMask: tokens.map((_, i) => (i > 9 ? 1 : 0)) };
    });
    const st = await tr.trainStep(batch, 1e-2);
    if (step === 0) first = st.loss;
    last = st.loss;
  }
  assert.ok(first > 2, `initial loss ${first}`);
  assert.ok(last < 0.1, `copy loss after 150 steps: ${last}`);
  await tr.release();
});
