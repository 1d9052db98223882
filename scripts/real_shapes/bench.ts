/**
 * Measure a model directory made by make_model.py (random weights in a released model's shapes):
 *
 *   deno run -A scripts/real_shapes/bench.ts infer DIR [--threads 2] [--decode 16]
 *   deno run -A scripts/real_shapes/bench.ts train DIR [--threads 2] [--seq 64]
 *
 * `infer`: load time (config + safetensors + ONNX Runtime session), peak RSS (VmHWM) after load
 * and after decoding, max |Δ| of the logits at every position of reference.json's tokens against
 * transformers' (reference.f32), greedy decode tokens/s (batch 1, KV cache). `train`: one SFT step
 * at batch 1 × `--seq` tokens (AdamW; a warm-up step, then the median of 2), its time and the
 * process's peak RSS. One JSON line on stdout. Run each in its own process: the peaks are its own.
 * The directory has no tokenizer: everything runs on token ids.
 */
import { parseArgs } from "node:util";
import { loadModelDir } from "../../src/model/load.ts";
import { DecoderRuntime } from "../../src/model/runtime.ts";
import { TokenIdsOnly } from "../../src/model/tokenizer_ids.ts";
import { OnnxPolicy } from "../../src/policy/onnx_policy.ts";
import { stream } from "../../src/rng.ts";
import { Trainer } from "../../src/train/trainer.ts";

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
  const rt = await DecoderRuntime.create(model.config, model.weights, { threads });
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
  const policy = await OnnxPolicy.create(model, tok, { threads });
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
} else {
  console.error("usage: bench.ts infer|train DIR");
  Deno.exit(2);
}
