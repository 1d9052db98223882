/**
 * The sft and rl stages driven with a hand-built StageContext: a real (tiny, freshly initialized)
 * ONNX policy with the byte tokenizer, an in-memory store, a tool, a reward and a benchmark with
 * demonstrations written as plugins are. Checks: the SFT loss falls, outputs are deterministic,
 * a stage resumed from a checkpoint ends with the same bytes, and the rl stage runs rollouts →
 * advantages → updates and checkpoints every step.
 */
import { type Ckpt, stageContext } from "./fixtures/stage_context.ts";
import assert from "node:assert/strict";
import { runSft, sftOptionsSchema } from "../src/run/stages/sft.ts";
import { rlOptionsSchema, runRl } from "../src/run/stages/rl.ts";
import type { Benchmark, Demonstration, Reward, Task, Tool } from "../src/plugin/contracts.ts";
import { loadPolicyModel } from "../src/policy/load.ts";
import { policyInitSchema } from "../src/manifest/policy.ts";
import { OnnxPolicy } from "../src/policy/onnx_policy.ts";
import { demonstrationSequence } from "../src/train/sft_data.ts";

const tasks: Task[] = Array.from({ length: 8 }, (_, i) => ({
  id: `t${i}`,
  prompt: `${i}+${i}?`,
  answers: [String(2 * i)],
}));
const demos: Demonstration[] = tasks.map((t, i) => ({
  taskId: t.id,
  prompt: t.prompt,
  response: `<python>${i}+${i}</python> <result>\n${2 * i}\n</result><answer>\\boxed{${
    2 * i
  }}</answer>`,
}));
const python: Tool = {
  kind: "tool",
  tag: "python",
  description: "adds",
  call: (input) => String(input.split("+").reduce((a, b) => a + Number(b), 0)),
};
// Varies with whatever a barely trained model writes, so advantages are not all zero.
const reward: Reward = {
  kind: "reward",
  score: (s) => ({
    reward: s.answers.some((a) => s.response.includes(a)) ? 1 : (s.response.length % 3) / 3,
    parts: {},
  }),
};
const bench: Benchmark = {
  kind: "benchmark",
  splits: ["train", "test"],
  tasks: () => tasks,
  demonstrations: () => demos,
};

const init = policyInitSchema.parse({
  architecture: "llama",
  hidden_size: 32,
  layers: 2,
  heads: 4,
  kv_heads: 2,
  intermediate_size: 64,
  max_position: 256,
});

/** A hand-built context; `options` as the stage's schema produced them (the runner's job). */
async function makeCtx(
  kind: string,
  options: object,
  opts: { checkpoint?: Ckpt; objects?: Map<string, Uint8Array>; inputs?: Record<string, unknown> } =
    {},
) {
  const { model, tokenizer } = await loadPolicyModel({ init }, { baseDir: ".", seed: 3 });
  const policies: OnnxPolicy[] = [];
  const { ctx, objects, saved } = stageContext({
    kind,
    options,
    manifest: { runtime: { threads: 1, device: "cpu" } },
    seed: 3,
    tools: { python },
    rewards: { r: reward },
    benchmarks: { toy: bench },
    ...opts,
    policy: async () => {
      const p = await OnnxPolicy.create(model, tokenizer, { threads: 1 });
      policies.push(p);
      return p;
    },
  });
  const close = async () => {
    for (const p of policies) await p.dispose();
  };
  return { ctx, objects, saved, close, tokenizer };
}

const sftOpts = sftOptionsSchema.parse({
  benchmarks: ["toy"],
  split: "train",
  questions: "all",
  epochs: 7, // 28 steps: one mid-run checkpoint at step 25
  lr: 1e-2,
  schedule: "cosine",
  warmup: 2,
  batch_size: 2,
  weight_decay: 0.01,
  grad_clip: 1.0,
});

Deno.test("sft data: tool results are masked, the response and EOS are learned", async () => {
  const { tokenizer, close } = await makeCtx("sft", sftOpts);
  const s = demonstrationSequence(demos[3], tokenizer);
  const text = (mask: number) =>
    tokenizer.decode(s.tokens.filter((_, i) => s.lossMask[i] === mask && i > 0));
  assert.ok(text(0).includes("<result>\n6\n</result>"));
  assert.ok(!text(1).includes("<result>"));
  assert.ok(text(1).includes("\\boxed{6}"));
  assert.ok(tokenizer.eosTokenIds.includes(s.tokens.at(-1)!));
  assert.equal(s.lossMask.at(-1), 1);
  await close();
});

Deno.test("sft stage: loss falls, deterministic outputs, resume gives the same bytes", async () => {
  const a = await makeCtx("sft", sftOpts);
  const ra = await runSft(a.ctx, sftOpts);
  const curve = JSON.parse(new TextDecoder().decode(a.objects.get(ra.outputs.curve)!)).steps;
  assert.equal(curve.length, 28);
  assert.ok(
    curve.at(-1).loss < 0.6 * curve[0].loss,
    `loss ${curve[0].loss} → ${curve.at(-1).loss}`,
  );
  assert.ok(a.saved.length >= 2 && a.saved[0].step === 24);
  const b = await makeCtx("sft", sftOpts);
  const rb = await runSft(b.ctx, sftOpts);
  assert.deepEqual(rb.outputs, ra.outputs);
  // Resume from the mid-run checkpoint (objects carried over, as the store would).
  const c = await makeCtx("sft", sftOpts, { checkpoint: a.saved[0], objects: a.objects });
  const rc = await runSft(c.ctx, sftOpts);
  assert.deepEqual(rc.outputs, ra.outputs);
  for (const x of [a, b, c]) await x.close();
});

Deno.test("rl stage: rollouts → advantages → clipped-surrogate updates, checkpoint per step, resumable", async () => {
  const opts = rlOptionsSchema.parse({
    benchmark: "toy",
    split: "train",
    questions: "all",
    reward: "r",
    rollout: { algorithm: "grpo", rollouts: 4, initial: 4 },
    sampling: { temperature: 1, top_p: 1, top_k: 0, max_tokens: 24, max_tool_calls: 1 },
    steps: 2,
    questions_per_step: 3,
    lr: 1e-3,
    schedule: "constant",
    warmup: 0,
    weight_decay: 0.01,
    grad_clip: 1.0,
    clip: { low: 0.2, high: 0.2, dual: 3 },
    kl_coef: 0.1,
    entropy_coef: 0,
    epochs: 1,
    minibatch: 2,
    attribution: "soft",
    eval_every: 0,
    eval_split: "test",
    eval_questions: 4,
    dry_run: false,
  });
  const a = await makeCtx("rl", opts);
  const ra = await runRl(a.ctx, opts);
  assert.ok(
    ra.outputs.weights && ra.outputs.optimizer && ra.outputs.rollouts_0 && ra.outputs.rollouts_1,
  );
  assert.deepEqual(a.saved.map((s) => s.step).slice(0, 2), [0, 1]);
  const curve = JSON.parse(new TextDecoder().decode(a.objects.get(ra.outputs.curve)!)).steps;
  assert.equal(curve.length, 2);
  // 3 questions in mini-batches of 2 → 2 updates per step, each with statistics.
  assert.equal(curve[0].updates.length, 2);
  // Temperature 1: the trainer's recomputed log-probs equal the rollout's sampled ones.
  assert.ok(curve[0].logp_gap < 1e-3, `logp gap ${curve[0].logp_gap}`);
  const u = curve[0].updates[0];
  assert.ok(u.tokens > 0 && u.grad_norm > 0 && u.clip_frac === 0 && Math.abs(u.approx_kl) < 1e-5);
  const c = await makeCtx("rl", opts, { checkpoint: a.saved[0], objects: a.objects });
  const rc = await runRl(c.ctx, opts);
  assert.deepEqual(rc.outputs, ra.outputs);
  for (const x of [a, c]) await x.close();
});
