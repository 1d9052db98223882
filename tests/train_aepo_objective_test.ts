/**
 * AEPO's objective parts (issue 18, src/train/objectives.ts): the entropy-balanced upper clip
 * bound and the entropy-aware advantage, hand-worked on a few tokens of logits, and their
 * gradients checked against central differences of a float64 surrogate in which every stopped
 * gradient (sg) is held at its value — the only finite-difference check that can see a detach:
 * differences of the graph's own loss would include what sg removes. Then through the whole
 * decoder: with every ratio clipped, each weight's entropy-balanced gradient is (1+ε_h)/r times
 * the unclipped one, the standard one is zero, and the loss itself is flat.
 */
import { centralDifference } from "./fixtures/finite_difference.ts";
import assert from "node:assert/strict";
import { Graph } from "../src/onnx/graph.ts";
import { gradients } from "../src/onnx/autodiff.ts";
import { createSession, ort } from "../src/onnx/session.ts";
import { appendObjective, type PolicyGradientObjective } from "../src/train/objectives.ts";
import { buildTrainGraph } from "../src/train/graphs.ts";
import { initWeights } from "../src/model/weights.ts";
import { packBatch, type TrainSequence } from "../src/train/batch.ts";
import { Stream } from "../src/rng.ts";
import { TINY_LLAMA, TINY_VOCAB } from "./fixtures/tiny_llama.ts";

const V = 3;
const f32 = (xs: number[], dims: number[]) =>
  new ort.Tensor("float32", Float32Array.from(xs), dims);
const scalar = (x: number) => f32([x], []);

interface Case {
  logits: number[][];
  targets: number[];
  mask: number[];
  adv: number[];
  /** log r per token: old_logp = logp − logRatio. */
  logRatio: number[];
}

function logSoftmax(row: readonly number[]): number[] {
  const m = Math.max(...row);
  const l = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
  return row.map((x) => x - l);
}
const entropyOf = (row: readonly number[]) =>
  -logSoftmax(row).reduce((s, l) => s + Math.exp(l) * l, 0);

/** The objective graph over a logits input, with its loss and d loss / d logits. */
async function objectiveSession(obj: PolicyGradientObjective) {
  const g = new Graph("aepo_objective");
  const logits = g.input("logits", "float32", ["selected", V]);
  const o = appendObjective(g, logits, obj);
  const [grad] = gradients(g, o.lossSum, [logits]);
  g.output(o.lossSum, "loss");
  g.output(grad, "grad");
  g.output(o.stats.clip_count, "clip_count");
  return await createSession(g, { threads: 1 });
}

function feeds(c: Case, clipHigh = 0.2) {
  const n = c.targets.length;
  const oldLogp = c.logits.map((row, i) => logSoftmax(row)[c.targets[i]] - c.logRatio[i]);
  return {
    logits: f32(c.logits.flat(), [n, V]),
    targets: new ort.Tensor("int64", BigInt64Array.from(c.targets, BigInt), [n]),
    loss_mask: f32(c.mask, [n]),
    old_logp: f32(oldLogp, [n]),
    advantages: f32(c.adv, [n]),
    clip_low: scalar(0.2),
    clip_high: scalar(clipHigh),
    dual_clip: scalar(3),
    inv_temperature: scalar(1),
  };
}

async function run(obj: PolicyGradientObjective, c: Case, clipHigh = 0.2) {
  const sess = await objectiveSession(obj);
  const out = await sess.run(feeds(c, clipHigh));
  await sess.release();
  return {
    loss: (out.loss.data as Float32Array)[0],
    grad: Array.from(out.grad.data as Float32Array),
    clipCount: (out.clip_count.data as Float32Array)[0],
  };
}

Deno.test("entropy-balanced clip: a clipped token with A > 0 keeps (1+ε_h)/r of its gradient", async () => {
  // One token, r = 1.5 > 1 + ε_h = 1.2, A = 2.
  const c: Case = {
    logits: [[0.3, -0.2, 1.1]],
    targets: [2],
    mask: [1],
    adv: [2],
    logRatio: [Math.log(1.5)],
  };
  const std = await run({ kind: "pg" }, c);
  const eb = await run({ kind: "pg", clip: "entropy_balanced" }, c);
  const unclipped = await run({ kind: "pg" }, c, 10); // ε_h = 10: r inside the range
  // Same value: −A·(1+ε_h) = −2.4 under both bounds (the unclipped one is −A·r = −3).
  assert.ok(Math.abs(std.loss + 2.4) < 1e-5 && Math.abs(eb.loss + 2.4) < 1e-5);
  assert.ok(Math.abs(unclipped.loss + 3) < 1e-5);
  assert.equal(std.clipCount, 1);
  assert.equal(eb.clipCount, 1);
  // Standard clipping: no gradient at all. Entropy-balanced: (1+ε_h)/r = 1.2/1.5 = 0.8 of the
  // unclipped one, coordinate by coordinate.
  assert.ok(std.grad.every((x) => x === 0));
  eb.grad.forEach((x, j) => {
    assert.ok(
      Math.abs(x - 0.8 * unclipped.grad[j]) < 1e-6,
      `logit ${j}: ${x} vs 0.8·${unclipped.grad[j]}`,
    );
  });
  assert.ok(Math.abs(unclipped.grad[2]) > 0.1);
  // By hand: d(−A·(1+ε_h)·e^{logp − sg(logp)}) / d logit_j = −2·1.2·(1[j = target] − p_j).
  const p = logSoftmax(c.logits[0]).map(Math.exp);
  eb.grad.forEach((x, j) => assert.ok(Math.abs(x - -2.4 * ((j === 2 ? 1 : 0) - p[j])) < 1e-6));
  // A < 0 with r < 1 − ε_l: the lower bound is unchanged (no gradient under either).
  const low = { ...c, adv: [-1], logRatio: [Math.log(0.5)] };
  assert.ok((await run({ kind: "pg", clip: "entropy_balanced" }, low)).grad.every((x) => x === 0));
  // Dual clip stays: A < 0, r = 4 > c = 3: loss −A·3 = 3, no gradient.
  const dual = await run({ kind: "pg", clip: "entropy_balanced" }, {
    ...c,
    adv: [-1],
    logRatio: [Math.log(4)],
  });
  assert.ok(Math.abs(dual.loss - 3) < 1e-5 && dual.grad.every((x) => x === 0));
});

// Tokens 0–1: uniform rows (H = ln 3); token 2: a peaked row (H ≈ 0.035); token 3 masked with yet
// another entropy, which must not enter the mean or the std.
const Z_CASE: Case = {
  logits: [[0, 0, 0], [1, 1, 1], [6, 0, 0], [2, 0, 0]],
  targets: [0, 1, 0, 2],
  mask: [1, 1, 1, 0],
  adv: [1, 2, 3, 5],
  logRatio: [0, 0, 0, 0],
};

Deno.test("entropy-aware advantage: Â = A·(1 + λ·z(H)) with z over the masked tokens, by hand", async () => {
  // H = (h, h, h′) with h > h′: mean (2h + h′)/3, unbiased std |h − h′|/√3, so
  // z = (1/√3, 1/√3, −2/√3) = (0.57735, 0.57735, −1.15470) whatever h and h′ are.
  // λ = 0.2: Â = 1·1.11547, 2·1.11547, 3·0.76906 = 1.11547, 2.23094, 2.30718 (Σ 5.65359).
  // At r = 1 every token's loss is −Â: Σ = −5.65359 (the plain advantages give −6).
  const plain = await run({ kind: "pg" }, Z_CASE);
  const weighted = await run({ kind: "pg", entropyAdvantage: 0.2 }, Z_CASE);
  assert.ok(Math.abs(plain.loss + 6) < 1e-5, `${plain.loss}`);
  assert.ok(Math.abs(weighted.loss + 5.65359) < 1e-4, `${weighted.loss}`);
  // Gradients: uniform rows scale by 1 + 0.2/√3, the peaked row by 1 − 0.4/√3; masked row 0.
  const k = [1 + 0.2 / Math.sqrt(3), 1 + 0.2 / Math.sqrt(3), 1 - 0.4 / Math.sqrt(3)];
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < V; j++) {
      const a = weighted.grad[i * V + j], b = k[i] * plain.grad[i * V + j];
      assert.ok(Math.abs(a - b) < 1e-5, `token ${i} logit ${j}: ${a} vs ${b} (detached z)`);
    }
  }
  assert.deepEqual(weighted.grad.slice(9), [0, 0, 0]);
  // One learned token (or equal entropies): std 0 → 1, z = 0, nothing changes.
  const one = { ...Z_CASE, mask: [1, 0, 0, 0] };
  assert.ok(Math.abs((await run({ kind: "pg", entropyAdvantage: 0.2 }, one)).loss + 1) < 1e-6);
});

/** The float64 surrogate: the objective with every sg(·) held at the base logits' value. */
function surrogate(
  c: Case,
  base: number[][],
  obj: PolicyGradientObjective,
  eps = 0.2,
): (logits: number[][]) => number {
  const n = c.targets.length;
  const baseLogp = base.map((row, i) => logSoftmax(row)[c.targets[i]]);
  const oldLogp = baseLogp.map((l, i) => l - c.logRatio[i]);
  const hs = base.map(entropyOf);
  let cnt = 0, mean = 0;
  for (let i = 0; i < n; i++) if (c.mask[i]) (cnt++, mean += hs[i]);
  mean /= cnt;
  let v = 0;
  for (let i = 0; i < n; i++) if (c.mask[i]) v += (hs[i] - mean) ** 2;
  const sd = Math.sqrt(v / Math.max(cnt - 1, 1)) || 1;
  const lambda = obj.entropyAdvantage ?? 0;
  return (logits) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      if (!c.mask[i]) continue;
      const logp = logSoftmax(logits[i])[c.targets[i]];
      const a = c.adv[i] * (1 + lambda * (hs[i] - mean) / sd);
      const r = Math.exp(logp - oldLogp[i]);
      const high = obj.clip === "entropy_balanced"
        ? (1 + eps) * Math.exp(logp - baseLogp[i])
        : 1 + eps;
      const l = Math.max(-a * r, -a * Math.max(Math.min(r, high), 1 - eps));
      s += a < 0 ? Math.min(l, -a * 3) : l;
    }
    return s;
  };
}

Deno.test("AEPO objective: gradients match central differences of the sg-held surrogate", async () => {
  // Ratios on both sides of the clip range and inside it, advantages of both signs.
  const s = new Stream(["aepo-objective", "grad"]);
  const n = 8;
  const c: Case = {
    logits: Array.from({ length: n }, () => Array.from({ length: V }, () => 1.5 * s.normal())),
    targets: Array.from({ length: n }, (_, i) => i % V),
    mask: [1, 1, 1, 1, 1, 1, 0, 1],
    adv: [1.3, -0.7, 0.9, 2.1, -1.6, 0.4, 3, -0.2],
    logRatio: [0.5, 0.4, -0.6, 0.05, -0.5, 0.3, 0.6, -0.04],
  };
  for (
    const obj of [
      { kind: "pg", clip: "entropy_balanced" },
      { kind: "pg", entropyAdvantage: 0.2 },
      { kind: "pg", clip: "entropy_balanced", entropyAdvantage: 0.5 },
    ] as PolicyGradientObjective[]
  ) {
    const { loss, grad } = await run(obj, c);
    const f = surrogate(c, c.logits, obj);
    assert.ok(Math.abs(f(c.logits) - loss) < 1e-4, `${JSON.stringify(obj)}: value`);
    let seen = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < V; j++) {
        const h = 1e-4;
        const at = (d: number) =>
          f(c.logits.map((row, a) => row.map((x, b) => (a === i && b === j ? x + d : x))));
        const num = (at(h) - at(-h)) / (2 * h);
        const ana = grad[i * V + j];
        assert.ok(
          Math.abs(num - ana) < 1e-4 + 1e-3 * Math.abs(num),
          `${JSON.stringify(obj)} [${i},${j}]: ${ana} vs ${num}`,
        );
        if (Math.abs(ana) > 1e-3) seen++;
      }
    }
    assert.ok(seen >= 9, `non-trivial gradients checked (${seen})`);
  }
});

Deno.test("AEPO objective: through the decoder, every clipped A > 0 token keeps (1+ε_h)/r", async () => {
  // All ratios r = 1.5 > 1.2, all advantages positive: the entropy-balanced gradient of every
  // weight is (1.2/1.5) = 0.8 times the unclipped one (ε_h = 10), the standard one is zero, and
  // the loss itself is flat (central differences 0) while its gradient is not.
  const cfg = TINY_LLAMA;
  const w = initWeights(cfg, "aepo-grad", 0.3);
  const s = new Stream(["aepo-objective", "decoder"]);
  const batch: TrainSequence[] = Array.from({ length: 3 }, (_, k) => {
    const len = 5 + s.int(4);
    const tokens = Array.from({ length: len }, () => s.int(TINY_VOCAB));
    return { tokens, lossMask: tokens.map((_, i) => (i < 2 ? 0 : 1)), advantages: k % 2 ? 1 : 0.5 };
  });
  const session = async (obj: PolicyGradientObjective) => {
    const tg = buildTrainGraph(cfg, obj, "grads");
    tg.graph.output(tg.logp, "logp");
    return { tg, sess: await createSession(tg.graph, { threads: 1 }) };
  };
  const feedsFor = (seqs: TrainSequence[], clipHigh: number) => {
    const packed = packBatch(seqs, { pg: true });
    const fd = packed.feeds;
    fd.loss_scale = scalar(1 / packed.tokens);
    fd.clip_low = scalar(0.2);
    fd.clip_high = scalar(clipHigh);
    fd.dual_clip = scalar(3);
    fd.inv_temperature = scalar(1);
    for (const [k, t] of w) fd[k] = new ort.Tensor("float32", t.data, t.shape);
    return packed;
  };
  const eb = await session({ kind: "pg", clip: "entropy_balanced" });
  // Pass 1: the log-probs; then old_logp = logp − ln 1.5 so that every ratio is 1.5.
  const zero = batch.map((b) => ({ ...b, oldLogp: b.tokens.map(() => 0) }));
  const p0 = feedsFor(zero, 0.2);
  const lp = (await eb.sess.run(p0.feeds)).logp.data as Float32Array;
  const seqs = zero.map((b) => ({ ...b, oldLogp: [...b.oldLogp] }));
  p0.where.forEach(([b, i], j) => (seqs[b].oldLogp[i] = lp[j] - Math.log(1.5)));
  const packed = feedsFor(seqs, 0.2);
  const out = await eb.sess.run(packed.feeds);
  const std = await session({ kind: "pg" });
  const outStd = await std.sess.run(packed.feeds);
  const wide = feedsFor(seqs, 10);
  const outWide = await std.sess.run(wide.feeds);
  let norm = 0, checked = 0;
  for (const name of eb.tg.paramNames) {
    const a = out[`grad.${name}`].data as Float32Array;
    const b = outWide[`grad.${name}`].data as Float32Array;
    const z = outStd[`grad.${name}`].data as Float32Array;
    for (let i = 0; i < a.length; i++) {
      norm += a[i] * a[i];
      assert.ok(Math.abs(a[i] - 0.8 * b[i]) <= 1e-6 + 1e-4 * Math.abs(b[i]), `${name}[${i}]`);
      assert.equal(z[i], 0, `standard clip: ${name}[${i}] has no gradient`);
      checked++;
    }
  }
  assert.ok(Math.sqrt(norm) > 1e-3 && checked > 1000, `gradient norm ${Math.sqrt(norm)}`);
  // The value is −A·1.2 per token, flat in the weights: its central difference is ~0.
  const lossAt = async () => ((await eb.sess.run(packed.feeds)).loss.data as Float32Array)[0];
  const name = eb.tg.paramNames[0];
  const num = await centralDifference(w.get(name)!.data, 0, 1e-2, lossAt);
  assert.ok(Math.abs(num) < 1e-4, `the clipped loss is flat (${num})`);
  await eb.sess.release();
  await std.sess.release();
});

Deno.test("rl options: `objective` stays out of a stage that does not ask for it (stage keys)", async () => {
  const { rlOptionsSchema } = await import("../src/run/stages/rl.ts");
  const base = { benchmark: "arith", reward: "arpo" };
  assert.ok(!("objective" in rlOptionsSchema.parse(base)));
  assert.deepEqual(rlOptionsSchema.parse({ ...base, objective: {} }).objective, {
    clip: "standard",
    entropy_advantage: 0,
  });
  assert.equal(
    rlOptionsSchema.safeParse({ ...base, objective: { clip: "higher" } }).success,
    false,
  );
});
