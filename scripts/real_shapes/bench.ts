/**
 * Measure a model directory made by make_model.py (random weights in a released model's shapes):
 *
 *   deno run -A scripts/real_shapes/bench.ts infer DIR [--threads 2] [--decode 16]
 *   deno run -A scripts/real_shapes/bench.ts train DIR [--threads 2] [--seq 64]
 *   deno run -A scripts/real_shapes/bench.ts rl DIR [--threads 2] [--rollouts 2] [--new 32]
 *
 * `infer`: load time (config + safetensors + ONNX Runtime session, the session taking the weights'
 * memory as the runner's and `arpo model`'s do), RSS and peak RSS (VmHWM) after load, peak after
 * decoding, max |Δ| of the logits at every position of reference.json's tokens against
 * transformers' (reference.f32), greedy decode tokens/s (batch 1, KV cache). `train`: one SFT step
 * at batch 1 × `--seq` tokens (AdamW; a warm-up step, then the median of 2), its time and the
 * process's peak RSS. `rl`: one rl step at batch 1 as the rl stage takes it (run/stages/rl.ts
 * `rlStep`): the pg trainer over the weights, a rollout policy over the trainer's weights
 * sampling `--rollouts` continuations of `--new` tokens of reference.json's prompt (temperature
 * 1, no EOS stop), the policy released, the behaviour log-probs recomputed (`Trainer.score`) and
 * one clipped-surrogate update over the group (advantages ±1); the time of each part and the
 * peak RSS after each (VmHWM is monotone: each figure is the peak so far). One JSON line on stdout. Run each in its own process: the peaks are its own.
 * The directory has no tokenizer: everything runs on token ids.
 */
import { parseArgs } from "node:util";
import { loadModelDir } from "../../src/model/load.ts";
import { DecoderRuntime } from "../../src/model/runtime.ts";
import { TokenIdsOnly } from "../../src/model/tokenizer_ids.ts";
import { OnnxPolicy } from "../../src/policy/onnx_policy.ts";
import { stream } from "../../src/rng.ts";
import type { TrainSequence } from "../../src/train/batch.ts";
import { Trainer } from "../../src/train/trainer.ts";
import { weightsDigest } from "../../src/model/weights.ts";

function rssMb(): { rss: number; peak: number } {
  const s = Deno.readTextFileSync("/proc/self/status");
  const g = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)![1]) / 1024;
  return { rss: Math.round(g("VmRSS")), peak: Math.round(g("VmHWM")) };
}

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    threads: { type: "string", default: "2" },
    decode: { type: "string", default: "16" },
    seq: { type: "string", default: "64" },
    rollouts: { type: "string", default: "2" },
    new: { type: "string", default: "32" },
  },
});
const [mode, dir] = positionals;
const GREEDY = { temperature: 0, topP: 1, topK: 0 };
const threads = Number(values.threads);
const ref = JSON.parse(await Deno.readTextFile(`${dir}/reference.json`));
const tokens: number[] = ref.tokens;

if (mode === "infer") {
  const t0 = performance.now();
  const model = await loadModelDir(dir, { requireTokenizer: false });
  const tRead = performance.now();
  // As the runner and `arpo model` load a policy: the session takes the weights' memory.
  const rt = await DecoderRuntime.create(model.config, model.weights, {
    threads,
    consumeWeights: true,
  });
  const tLoad = performance.now();
  const afterLoad = rssMb();
  const T = tokens.length, L = model.config.numLayers, V = model.config.vocabSize;
  const bias = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) bias[i * T + j] = -1e9;
  const out = await rt.forward({
    B: 1,
    T,
    P: 0,
    inputIds: BigInt64Array.from(tokens, BigInt),
    positionIds: BigInt64Array.from(tokens.map((_, i) => BigInt(i))),
    bias,
    logitsAt: BigInt64Array.from(tokens.map((_, i) => BigInt(i))),
    pastKeys: Array.from({ length: L }, () => new Float32Array(0)),
    pastValues: Array.from({ length: L }, () => new Float32Array(0)),
  });
  await rt.release();
  const want = new Float32Array((await Deno.readFile(`${dir}/reference.f32`)).buffer);
  let maxDiff = 0;
  for (let i = 0; i < T * V; i++) maxDiff = Math.max(maxDiff, Math.abs(out.logits![i] - want[i]));
  const tok = new TokenIdsOnly(V, model.config.eosTokenIds ?? [], dir);
  const again = await loadModelDir(dir, { requireTokenizer: false }); // the first was consumed
  const policy = await OnnxPolicy.create(again, tok, { threads, consumeWeights: true });
  const n = Number(values.decode);
  const seq = policy.create(tokens, stream(0, "real-shapes"));
  await policy.generate([{ seq, stop: { maxTokens: 2 } }], GREEDY); // warm-up
  const seq2 = policy.create(tokens, stream(0, "real-shapes"));
  const t1 = performance.now();
  const [res] = await policy.generate([{ seq: seq2, stop: { maxTokens: n } }], GREEDY);
  const decodeS = (performance.now() - t1) / 1000;
  await policy.dispose();
  console.log(JSON.stringify({
    mode,
    shape: ref.shape,
    parameters: ref.parameters,
    weight_mb: Math.round(ref.parameters * 4 / 2 ** 20),
    read_s: +((tRead - t0) / 1000).toFixed(2),
    load_s: +((tLoad - t0) / 1000).toFixed(2),
    rss_after_load_mb: afterLoad.rss,
    peak_rss_load_mb: afterLoad.peak,
    logits_max_abs_diff: maxDiff,
    decode_tokens: res.tokens.length,
    decode_tok_s: +(res.tokens.length / decodeS).toFixed(2),
    peak_rss_mb: rssMb().peak,
  }));
} else if (mode === "train") {
  const model = await loadModelDir(dir, { requireTokenizer: false });
  const T = Number(values.seq);
  const seqTokens = Array.from({ length: T }, (_, i) => tokens[i % tokens.length] + i);
  const batch = [{ tokens: seqTokens, lossMask: seqTokens.map((_, i) => (i < 4 ? 0 : 1)) }];
  const tr = Trainer.create(model.config, model.weights, {
    objective: { kind: "sft" },
    threads,
    tokenBudget: 1 << 20,
    adamw: { weightDecay: 0.01, maxGradNorm: 1 },
  });
  const ms: number[] = [];
  let loss = NaN;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    loss = (await tr.trainStep(batch, 1e-5)).loss;
    if (i > 0) ms.push(performance.now() - t0);
  }
  await tr.release();
  ms.sort((a, b) => a - b);
  console.log(JSON.stringify({
    mode,
    shape: ref.shape,
    seq: T,
    step_ms: Math.round((ms[0] + ms[1]) / 2),
    loss,
    peak_rss_mb: rssMb().peak,
  }));
} else if (mode === "rl") {
  const t0 = performance.now();
  const model = await loadModelDir(dir, { requireTokenizer: false });
  const weightMb = +(
    [...model.weights.values()].reduce((a, t) => a + t.data.byteLength, 0) / 2 ** 20
  ).toFixed(1);
  const tr = Trainer.create(model.config, model.weights, {
    objective: { kind: "pg", kl: false, entropy: false },
    threads,
    adamw: { weightDecay: 0.01, maxGradNorm: 1 },
  });
  const tLoad = performance.now();
  const afterTrainer = rssMb();
  // The rollout policy over the trainer's weights, as policyWithWeights builds it.
  const w = tr.weights;
  const V = model.config.vocabSize;
  const policy = await OnnxPolicy.create(
    { config: model.config, weights: w, digest: weightsDigest(model.config, w) },
    new TokenIdsOnly(V, [], dir), // no EOS: every rollout runs the full --new tokens
    { threads },
  );
  const M = Number(values.rollouts), N = Number(values.new);
  const t1 = performance.now();
  const rng = stream(0, "real-shapes-rl");
  const reqs = Array.from({ length: M }, (_, i) => ({
    seq: policy.create(tokens, rng.child(i)),
    stop: { maxTokens: N },
  }));
  const gens = await policy.generate(reqs, { temperature: 1, topP: 1, topK: 0 });
  const tRollout = performance.now();
  const afterRollout = rssMb();
  await policy.dispose(); // as rlStep: the update does not hold the rollout sessions
  const seqs: TrainSequence[] = gens.map((g, i) => ({
    tokens: [...tokens, ...g.tokens.map((t) => t.id)],
    lossMask: [...tokens.map(() => 0), ...g.tokens.map(() => 1)],
    advantages: i % 2 === 0 ? 1 : -1,
  }));
  const t2 = performance.now();
  const old = await tr.score(seqs);
  seqs.forEach((s, i) => (s.oldLogp = Array.from(old[i].logp)));
  const tScore = performance.now();
  const st = await tr.trainStep(seqs, 1e-6);
  const tUpdate = performance.now();
  await tr.release();
  const peak = rssMb().peak;
  console.log(JSON.stringify({
    mode,
    shape: ref.shape,
    weight_mb: weightMb,
    rollouts: M,
    new_tokens: gens.map((g) => g.tokens.length),
    prompt_tokens: tokens.length,
    load_s: +((tLoad - t0) / 1000).toFixed(2),
    rollout_s: +((tRollout - t1) / 1000).toFixed(2),
    score_s: +((tScore - t2) / 1000).toFixed(2),
    update_s: +((tUpdate - tScore) / 1000).toFixed(2),
    step_s: +((tUpdate - t1) / 1000).toFixed(2),
    loss: st.loss,
    peak_rss_trainer_mb: afterTrainer.peak,
    peak_rss_rollout_mb: afterRollout.peak,
    peak_rss_mb: peak,
    peak_over_weights: +(peak / weightMb).toFixed(1),
  }));
} else {
  console.error("usage: bench.ts infer|train|rl DIR");
  Deno.exit(2);
}
