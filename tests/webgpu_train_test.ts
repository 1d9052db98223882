// Training on `device: webgpu` against the CPU: one SFT step and one RL (clipped policy-gradient,
// with KL and entropy terms) step of the trainer from the same weights, whose loss, gradient
// norm and updated weights, and the m/v moments, match the CPU's within stated tolerances. The
// trainer binds its state as preallocated outputs, so this also checks that the WebGPU session
// writes them back. Skipped, saying why, where the provider cannot start.
import assert from "node:assert/strict";
import { initWeights } from "../src/model/weights.ts";
import { webgpuStartError } from "../src/onnx/session.ts";
import { Stream } from "../src/rng.ts";
import type { TrainSequence } from "../src/train/batch.ts";
import type { Objective } from "../src/train/objectives.ts";
import { Trainer, type TrainerState } from "../src/train/trainer.ts";
import { TINY_LLAMA, TINY_VOCAB } from "./fixtures/tiny_llama.ts";

/** Relative difference allowed in the loss and the gradient norm (f32, other summation order). */
const STAT_TOL = 1e-5;
/**
 * |Δw| allowed after one step, as a fraction of the learning rate. AdamW's first step moves a
 * weight by ≈ lr·g/|g|, so a rounding difference only matters where |g| is near AdamW's ε; on
 * lavapipe the largest differences measured were 2.3e-5 (SFT) and 7.1e-4 (RL) times lr.
 */
const WEIGHT_TOL = 1e-2;

const why = await webgpuStartError();
if (why) console.log(`webgpu tests skipped: the WebGPU provider cannot start here (${why})`);

const cfg = TINY_LLAMA;
const LR = 1e-2;

function batch(pg: boolean): TrainSequence[] {
  const s = new Stream(["webgpu-train-test", pg ? "pg" : "sft"]);
  return [9, 6, 11].map((len, i) => {
    const tokens = Array.from({ length: len }, () => s.int(TINY_VOCAB));
    const lossMask = tokens.map((_, j) => (j < 2 ? 0 : 1));
    if (!pg) return { tokens, lossMask };
    const logp = tokens.map(() => -1 - s.uniform());
    return {
      tokens,
      lossMask,
      advantages: i === 1 ? -0.5 : 1,
      oldLogp: logp,
      refLogp: logp.map((x) => x - 0.05),
    };
  });
}

async function step(device: "cpu" | "webgpu", objective: Objective): Promise<{
  loss: number;
  gradNorm: number;
  state: TrainerState;
}> {
  const tr = Trainer.create(cfg, initWeights(cfg, "webgpu-train"), {
    objective,
    threads: 1,
    device,
  });
  try {
    const st = await tr.trainStep(batch(objective.kind === "pg"), LR);
    return { loss: st.loss, gradNorm: st.gradNorm, state: tr.state() };
  } finally {
    await tr.release();
  }
}

function maxDiff(a: TrainerState["weights"], b: TrainerState["weights"]): number {
  let m = 0;
  for (const [name, t] of a) {
    const u = b.get(name)!.data;
    for (let i = 0; i < t.data.length; i++) m = Math.max(m, Math.abs(t.data[i] - u[i]));
  }
  return m;
}

for (
  const [label, objective] of [
    ["SFT", { kind: "sft" }],
    ["RL (pg with kl and entropy)", { kind: "pg", kl: true, entropy: true }],
  ] as [string, Objective][]
) {
  Deno.test({
    name: `webgpu trainer: one ${label} step updates the weights as the CPU does`,
    ignore: !!why,
    async fn() {
      const init = initWeights(cfg, "webgpu-train");
      const cpu = await step("cpu", objective);
      const gpu = await step("webgpu", objective);
      const rel = (x: number, y: number) => Math.abs(x - y) / Math.max(Math.abs(y), 1e-12);
      assert.ok(rel(gpu.loss, cpu.loss) <= STAT_TOL, `loss ${gpu.loss} vs ${cpu.loss}`);
      assert.ok(rel(gpu.gradNorm, cpu.gradNorm) <= STAT_TOL, `grad norm ${gpu.gradNorm}`);
      // The step moved the weights (the state was written back), by the CPU's amounts.
      const moved = maxDiff(gpu.state.weights, init);
      assert.ok(moved > LR / 2, `webgpu weights moved by at most ${moved}`);
      const dw = maxDiff(gpu.state.weights, cpu.state.weights);
      console.log(`${label}: max |Δw| webgpu vs cpu ${dw.toExponential(2)} (lr ${LR})`);
      assert.ok(dw <= WEIGHT_TOL * LR, `max |Δw| ${dw} > ${WEIGHT_TOL * LR}`);
      const dm = maxDiff(gpu.state.m, cpu.state.m);
      assert.ok(dm <= 1e-5 * Math.max(1, cpu.gradNorm), `max |Δm| ${dm}`);
    },
  });
}
