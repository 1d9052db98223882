/**
 * The pg train graph and the score graph compute log-probabilities of softmax(logits / T), the
 * distribution the rollouts were sampled from (input `inv_temperature` = 1/T from
 * `inverseTemperature`): values against log_softmax(logits / T) computed here from the inference
 * decoder's logits, the pg graph's gradients against central differences, at T = 0.6; and at
 * T = 1 (and T = 0, greedy) the trainer's bytes equal those of a trainer given no temperature.
 */
import { centralDifference } from "./fixtures/finite_difference.ts";
import assert from "node:assert/strict";
import { buildDecoderGraph } from "../src/model/decoder_graph.ts";
import { initWeights } from "../src/model/weights.ts";
import type { TensorMap } from "../src/model/safetensors.ts";
import { createSession, ort } from "../src/onnx/session.ts";
import { inverseTemperature } from "../src/policy/sampling.ts";
import { buildTrainGraph } from "../src/train/graphs.ts";
import { packBatch, type TrainSequence } from "../src/train/batch.ts";
import { Trainer } from "../src/train/trainer.ts";
import { checkpointBytes } from "../src/train/checkpoint.ts";
import { Stream } from "../src/rng.ts";
import { TINY_LLAMA, TINY_VOCAB } from "./fixtures/tiny_llama.ts";

const V = TINY_VOCAB;
const cfg = TINY_LLAMA;
const T = 0.6;

function seqs(n: number, key: string): TrainSequence[] {
  const s = new Stream(["temperature-test", key]);
  return Array.from({ length: n }, (_, k) => {
    const len = 4 + s.int(6);
    const tokens = Array.from({ length: len }, () => s.int(V));
    const lossMask = tokens.map((_, i) => (i < 2 || i === len - 2 ? 0 : 1));
    return { tokens, lossMask, advantages: k % 2 ? 1 : -0.5 };
  });
}

const scalar = (x: number) => new ort.Tensor("float32", Float32Array.of(x), []);

/** log_softmax(logits / temperature) of every next token, from the inference decoder's logits. */
async function independentLogp(w: TensorMap, batch: TrainSequence[], temperature: number) {
  const dec = buildDecoderGraph(cfg, w, { noCache: true });
  const sess = await createSession(dec.graph, { threads: 1 });
  const out: number[][] = [];
  for (const { tokens } of batch) {
    const n = tokens.length;
    const bias = new Float32Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) bias[i * n + j] = -1e9;
    const o = await sess.run({
      input_ids: new ort.Tensor("int64", BigInt64Array.from(tokens, BigInt), [1, n]),
      position_ids: new ort.Tensor("int64", BigInt64Array.from(tokens.map((_, i) => BigInt(i))), [
        1,
        n,
      ]),
      attention_bias: new ort.Tensor("float32", bias, [1, 1, 1, n, n]),
      logits_at: new ort.Tensor("int64", BigInt64Array.from(tokens.map((_, i) => BigInt(i))), [n]),
    });
    const lg = o.logits.data as Float32Array;
    const row = [0];
    for (let i = 1; i < n; i++) {
      const z = Array.from(lg.subarray((i - 1) * V, i * V), (x) => x / temperature);
      const mx = Math.max(...z);
      const lse = mx + Math.log(z.reduce((a, x) => a + Math.exp(x - mx), 0));
      row.push(z[tokens[i]] - lse);
    }
    out.push(row);
  }
  await sess.release();
  return out;
}

/** The pg "grads" graph (KL and entropy terms on) with its log-probs as an extra output. */
async function pgGraph() {
  const tg = buildTrainGraph(cfg, { kind: "pg", kl: true, entropy: true }, "grads");
  tg.graph.output(tg.logp, "logp");
  return { tg, sess: await createSession(tg.graph, { threads: 1 }) };
}

function pgFeeds(w: TensorMap, batch: TrainSequence[], temperature: number) {
  const packed = packBatch(batch, { pg: true, ref: true });
  const feeds = packed.feeds;
  feeds.loss_scale = scalar(1 / packed.tokens);
  feeds.clip_low = scalar(0.2);
  feeds.clip_high = scalar(0.2);
  feeds.dual_clip = scalar(3);
  feeds.kl_coef = scalar(0.3);
  feeds.entropy_coef = scalar(0.05);
  feeds.inv_temperature = scalar(inverseTemperature(temperature));
  for (const [k, t] of w) feeds[k] = new ort.Tensor("float32", t.data, t.shape);
  return packed;
}

Deno.test("temperature: train and score log-probs are log_softmax(logits / T) at T = 0.6", async () => {
  const w = initWeights(cfg, "temp-value", 0.3);
  const batch = seqs(4, "value");
  const want = await independentLogp(w, batch, T);
  const untempered = await independentLogp(w, batch, 1);
  // The score graph, through the trainer at the rollout temperature (micro-batched too).
  for (const tokenBudget of [16384, 16]) {
    const tr = Trainer.create(cfg, w, { objective: { kind: "pg" }, temperature: T, tokenBudget });
    const sc = await tr.score(batch);
    await tr.release();
    batch.forEach((s, k) => {
      for (let i = 1; i < s.tokens.length; i++) {
        assert.ok(
          Math.abs(sc[k].logp[i] - want[k][i]) < 1e-5,
          `score seq ${k} token ${i}: ${sc[k].logp[i]} vs ${want[k][i]}`,
        );
      }
    });
  }
  // The pg train graph's own log-probs at the learned positions.
  const { sess } = await pgGraph();
  const pg = batch.map((s, k) => ({ ...s, oldLogp: want[k], refLogp: untempered[k] }));
  const packed = pgFeeds(w, pg, T);
  const out = await sess.run(packed.feeds);
  await sess.release();
  const lp = out.logp.data as Float32Array;
  let far = 0;
  packed.where.forEach(([b, i], j) => {
    assert.ok(Math.abs(lp[j] - want[b][i]) < 1e-5, `train seq ${b} token ${i}`);
    far = Math.max(far, Math.abs(want[b][i] - untempered[b][i]));
  });
  assert.ok(far > 0.05, `T = 0.6 should change the log-probs (largest change ${far})`);
  // old_logp = the tempered log-probs: ratio 1, so the surrogate is −mean A and nothing clips.
  assert.ok(Math.abs((out.approx_kl_sum.data as Float32Array)[0]) < 1e-4);
  assert.equal((out.clip_count.data as Float32Array)[0], 0);
});

Deno.test("temperature: pg graph gradients at T = 0.6 match central differences", async () => {
  const w = initWeights(cfg, "temp-grad", 0.3);
  const batch = seqs(3, "grad");
  const base = await independentLogp(w, batch, T);
  // Ratios e^±0.05 (inside the clip range, away from its kinks); a reference 0.2 away.
  const pg = batch.map((s, k) => ({
    ...s,
    oldLogp: base[k].map((x, i) => x + (((i + k) % 2) ? 0.05 : -0.05)),
    refLogp: base[k].map((x) => x - 0.2),
  }));
  const { tg, sess } = await pgGraph();
  const packed = pgFeeds(w, pg, T);
  const out = await sess.run(packed.feeds);
  const lossAt = async () => (((await sess.run(packed.feeds)).loss.data) as Float32Array)[0];
  const h = 1e-2;
  let checked = 0;
  for (const name of tg.paramNames) {
    const d = w.get(name)!.data;
    const grad = out[`grad.${name}`].data as Float32Array;
    let scale = 0;
    for (const v of grad) scale = Math.max(scale, Math.abs(v));
    const s = new Stream(["temperature-probe", name]);
    for (let p = 0; p < Math.min(3, d.length); p++) {
      const j = s.int(d.length);
      const num = await centralDifference(d, j, h, lossAt), ana = grad[j];
      const tol = 2e-3 * Math.max(1, scale) + 2e-2 * Math.max(Math.abs(num), Math.abs(ana));
      assert.ok(Math.abs(num - ana) <= tol, `d loss / d ${name}[${j}]: ${ana} vs ${num}`);
      checked++;
    }
  }
  assert.ok(checked > 20);
  // The gradient depends on the temperature: at T = 1 it is another one.
  packed.feeds.inv_temperature = scalar(1);
  const at1 = await sess.run(packed.feeds);
  await sess.release();
  let diff = 0;
  for (const name of tg.paramNames) {
    const a = out[`grad.${name}`].data as Float32Array,
      b = at1[`grad.${name}`].data as Float32Array;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
  }
  assert.ok(diff > 1e-3, `gradients at T = 0.6 and T = 1 differ by only ${diff}`);
});

Deno.test("temperature: at T = 1 and T = 0 (greedy) the trainer's bytes are those without one", async () => {
  const w = initWeights(cfg, "temp-bytes");
  const run = async (temperature: number | undefined, objective: "sft" | "pg") => {
    const tr = Trainer.create(cfg, w, {
      objective: objective === "sft" ? { kind: "sft" } : { kind: "pg", kl: true, entropy: true },
      objectiveParams: { klCoef: 0.2, entropyCoef: 0.01 },
      threads: 2,
      tokenBudget: 24, // several micro-batches: the grads and update graphs
      ...(temperature === undefined ? {} : { temperature }),
    });
    const scores: number[] = [];
    for (let i = 0; i < 2; i++) {
      const batch = seqs(5, `b${i}`);
      const sc = await tr.score(batch);
      for (const r of sc) scores.push(...r.logp, ...r.entropy);
      await tr.trainStep(
        batch.map((s, k) => ({
          ...s,
          oldLogp: Array.from(sc[k].logp, (x) => x + 0.1 * Math.sin(x + k)),
          refLogp: Array.from(sc[k].logp, (x) => x - 0.2),
        })),
        1e-2,
      );
    }
    const bytes = checkpointBytes(tr.state());
    await tr.release();
    return { bytes, scores: Float32Array.from(scores) };
  };
  for (const objective of ["sft", "pg"] as const) {
    const none = await run(undefined, objective);
    for (const t of [1, 0]) {
      const got = await run(t, objective);
      assert.deepEqual(got.bytes.weights, none.bytes.weights, `${objective} T=${t}: weights`);
      assert.deepEqual(got.bytes.optimizer, none.bytes.optimizer, `${objective} T=${t}: moments`);
      assert.deepEqual(got.scores, none.scores, `${objective} T=${t}: scores`);
    }
  }
  // SFT learns the untempered distribution whatever the temperature (score() is tempered); pg
  // learns the tempered one.
  const sft1 = await run(1, "sft"), sft = await run(0.6, "sft");
  assert.deepEqual(sft.bytes.weights, sft1.bytes.weights);
  assert.notDeepEqual(sft.scores, sft1.scores);
  assert.notDeepEqual((await run(0.6, "pg")).bytes.weights, (await run(1, "pg")).bytes.weights);
  assert.throws(
    () => Trainer.create(cfg, w, { objective: { kind: "pg" }, temperature: -1 }),
    /temperature must be a finite number ≥ 0/,
  );
});
