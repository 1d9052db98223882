/**
 * The `rl` stage: ARPO / GRPO policy optimization (ARPO.md §3–§4). Every step: roll out the step's
 * questions with the current policy (rl_rollout.ts: trees, rewards, group advantages, stored),
 * update the policy on them (train/rl_update.ts: attribution, recomputed behaviour and reference
 * log-probs, `epochs` passes of mini-batch updates), and rebuild the rollout policy on the new
 * weights. Evaluation on `eval_split` every `eval_every` steps (one sample per question, sampled
 * with `eval_sampling`, whose defaults are the eval stage's: temperature 0.6 / top_p 0.95 as the
 * paper evaluates). Checkpoint after every step; a resumed stage ends with the same bytes.
 *
 * `dry_run: true` delegates to rl_rollout.ts (rollouts and advantages, no update).
 *
 * Outputs: `rollouts_<step>` (rollout_batch indexes), `weights`, `optimizer`, `curve`, and `report`
 * (per-step training metrics as a StageReport for the HTML report, src/report/).
 *
 * Defaults follow ARPO.md §2 and §4 (the reference's clip 0.2/0.2, dual clip 3, lr 1e-6, one PPO
 * epoch, KL and entropy coefficients 0, rollout temperature 1.0 / top_p 1.0), except the budgets
 * (M, N, questions per step), which are scaled down to what a small CPU run can afford.
 *
 * ```yaml
 * - rl:
 *     benchmark: arith
 *     steps: 20
 *     rollout: { algorithm: arpo, rollouts: 8, initial: 4, entropy_weight: 0.2 }
 * ```
 */
import { z } from "zod";
import type { Json } from "../../store/canonical.ts";
import type { Task } from "../../plugin/contracts.ts";
import { judgeResponse } from "../../eval/correct.ts";
import {
  independentRollouts,
  rewardSample,
  rolloutConfig,
  rolloutSettingsSchema,
  samplingSettingsSchema,
  scoreRollout,
} from "../../rollout/mod.ts";
import type { OnnxPolicy } from "../../policy/onnx_policy.ts";
import type { Policy } from "../../policy/types.ts";
import type { DecoderModel } from "../../model/load.ts";
import type { TokenizerLike } from "../../model/tokenizer.ts";
import { lrAt, type LrSchedule } from "../../train/optimizer.ts";
import { rlUpdate, updateMean } from "../../train/rl_update.ts";
import { updateQuestion } from "../../train/advantages.ts";
import { Trainer, type TrainerState } from "../../train/trainer.ts";
import { STAGE_REPORT_FORMAT, type StageReport, type StepMetrics } from "../../report/data.ts";
import { stepFromMetrics } from "../../report/from_rollout.ts";
import { defineStage, type StageContext, type StageResult } from "../stages.ts";
import { fromSchema, questionsSchema, weightsSource } from "./options.ts";
import {
  type RlRolloutSetup,
  rolloutStep,
  rolloutTotals,
  runRlDryRun,
  setupRlRollout,
  stepSummary,
} from "./rl_rollout.ts";
import { rolloutTasks, selectTasks } from "./rollout_shared.ts";
import {
  loadTrainCheckpoint,
  policyWithWeights,
  saveTrainCheckpoint,
  trainableModel,
} from "./train_shared.ts";

/** Clipped-surrogate ranges (ARPO.md §4). */
const clipSchema = z.strictObject({
  low: z.number().min(0).default(0.2).describe("ε_low"),
  high: z.number().min(0).default(0.2).describe("ε_high"),
  dual: z.number().min(1).default(3.0).describe("c: dual-clip bound for negative advantages"),
});

/**
 * `objective:` — AEPO's policy-update parts, usable with any rollout algorithm. Optional: a stage
 * without it has the options (and key) it always had.
 */
const objectiveSchema = z.strictObject({
  clip: z.enum(["standard", "entropy_balanced"]).default("standard")
    .describe(
      "upper clip bound: `standard` 1+ε_high; `entropy_balanced` (AEPO) (1+ε_high)·r/sg(r), so " +
        "a clipped token with positive advantage keeps gradient scaled by (1+ε_high)/r",
    ),
  entropy_advantage: z.number().min(0).default(0)
    .describe(
      "λ of AEPO's entropy-aware advantage A·(1 + λ·z(H)), z the token entropy standardized " +
        "over the micro-batch, detached (AEPO: 0.2); 0 = off",
    ),
});

/** `rl` options. */
export const rlOptionsSchema = z.strictObject({
  benchmark: z.string().min(1).describe("the manifest benchmark to train on"),
  from: fromSchema,
  split: z.string().min(1).default("train").describe("the benchmark split trained on"),
  questions: questionsSchema.default("all").describe("size of the training question pool"),
  reward: z.string().min(1).describe("the manifest reward that scores trajectories"),
  rollout: rolloutSettingsSchema({ algorithm: "arpo", rollouts: 8, initial: 4 }).prefault({})
    .describe("how the trajectories of a question are sampled (branching)"),
  sampling: samplingSettingsSchema({ temperature: 1.0, top_p: 1.0 }).prefault({})
    .describe("token sampling of the rollouts"),
  steps: z.int().min(1).default(10).describe("RL steps (rollouts, then one update each)"),
  questions_per_step: z.int().min(1).default(16).describe("questions sampled per step"),
  lr: z.number().positive().default(1e-6).describe("peak learning rate (the paper's 1e-6)"),
  schedule: z.enum(["constant", "cosine"]).default("constant")
    .describe("learning-rate schedule after warm-up"),
  warmup: z.int().min(0).default(0).describe("warm-up steps"),
  weight_decay: z.number().min(0).default(0.01).describe("AdamW weight decay"),
  grad_clip: z.number().positive().default(1.0).describe("global gradient-norm clip"),
  clip: clipSchema.prefault({}).describe("clipped-surrogate ranges"),
  kl_coef: z.number().min(0).default(0).describe("weight of the KL penalty to the start policy"),
  entropy_coef: z.number().min(0).default(0).describe("weight of the entropy bonus"),
  objective: objectiveSchema.optional()
    .describe("AEPO's objective parts (docs/AEPO.md); absent: the standard clipped surrogate"),
  epochs: z.int().min(1).default(1).describe("PPO epochs over each step's rollouts"),
  minibatch: z.int().min(1).default(4).describe("questions per mini-batch update"),
  attribution: z.enum(["soft", "hard"]).default("soft").describe("advantage attribution (§3)"),
  eval_every: z.int().min(0).default(0).describe("evaluate on eval_split every n steps; 0 = never"),
  eval_split: z.string().min(1).default("test").describe("the split evaluated during training"),
  eval_questions: questionsSchema.default(50).describe("questions per evaluation during training"),
  eval_sampling: samplingSettingsSchema({ temperature: 0.6, top_p: 0.95 }).prefault({})
    .describe("sampling of the evaluation inside training (defaults: the eval stage's)"),
  dry_run: z.boolean().default(false).describe("produce rollouts and advantages, no update"),
}).superRefine((v, ctx) => {
  if (v.minibatch > v.questions_per_step) {
    ctx.addIssue({
      code: "custom",
      path: ["minibatch"],
      message: `at most questions_per_step (${v.questions_per_step}), found ${v.minibatch}`,
    });
  }
});

export type RlOptions = z.output<typeof rlOptionsSchema>;

/**
 * Accuracy and mean reward of one sample per question. Correctness is the benchmark's (as in the
 * eval stage, src/eval/correct.ts: format, then the benchmark's `correct` on the boxed answer),
 * never reward ≥ 1; the mean reward is the reward's. Samples with an infrastructure failure are
 * left out of both (as in the eval stage) and counted as `infrastructure_failures`, which appears
 * only when there are some (the curve is a hashed output).
 */
async function evaluate(
  ctx: StageContext,
  policy: Policy,
  tasks: readonly Task[],
  step: number,
  setup: RlRolloutSetup,
): Promise<{ accuracy: number; mean_reward: number; infrastructure_failures?: number }> {
  const cfg = rolloutConfig(independentRollouts(1), setup.options.eval_sampling);
  const res = await rolloutTasks(
    ctx,
    policy,
    setup.tools,
    cfg,
    tasks,
    ctx.stream("eval", step),
    `eval@${step}`,
  );
  scoreRollout(res.questions, setup.reward.plugin, policy.tokenizer, setup.reward.name);
  const name = setup.options.benchmark;
  const benchmark = ctx.plugins.benchmarks.get(name)!.plugin; // selectTasks checked it
  const rewards: number[] = [];
  let correct = 0, failures = 0;
  for (const q of res.questions) {
    const t = q.tree.trajectories[0];
    if (t?.infrastructureFailure !== undefined) {
      failures++;
      continue;
    }
    rewards.push(t?.reward ?? 0);
    if (t === undefined) continue;
    const sample = rewardSample(q.tree, t, policy.tokenizer);
    if (judgeResponse(benchmark, sample, q.task, setup.tools.tags, name).correct) correct++;
  }
  const out: { accuracy: number; mean_reward: number; infrastructure_failures?: number } = {
    accuracy: correct / Math.max(1, rewards.length),
    mean_reward: rewards.reduce((a, b) => a + b, 0) / Math.max(1, rewards.length),
  };
  if (failures > 0) out.infrastructure_failures = failures;
  return out;
}

/**
 * The report's training series: for each curve entry (step k = after k updates), the metrics of
 * the rollout batch update k trained on (read back from the store, so a resumed stage reports its
 * earlier steps too), the token-weighted means of its updates (grad norm: plain mean) and the
 * evaluation accuracy where one ran (step 0: before training). No wall-clock values: the report is
 * a hashed output, and the stage keeps no per-step times outside its timings.
 */
export async function rlReport(
  ctx: StageContext,
  algorithm: string,
  curve: readonly Json[],
  rollouts: Record<string, string>,
): Promise<StageReport> {
  const steps: StepMetrics[] = [];
  for (const c of curve as Record<string, Json>[]) {
    const step = c.step as number;
    const batch = rollouts[`rollouts_${step - 1}`];
    const out: StepMetrics = batch === undefined
      ? { step }
      : stepFromMetrics(step, (await ctx.store.getJson<Record<string, Json>>(batch)).metrics);
    const updates = Array.isArray(c.updates) ? c.updates : [];
    const stats = {
      loss: updateMean(updates, "loss"),
      gradNorm: updateMean(updates, "grad_norm", false),
      entropy: updateMean(updates, "entropy"),
      clipFraction: updateMean(updates, "clip_frac"),
      approxKl: updateMean(updates, "approx_kl"),
    };
    for (const [k, v] of Object.entries(stats) as [keyof typeof stats, number | undefined][]) {
      if (v !== undefined) out[k] = v;
    }
    const ev = c.eval as { accuracy?: number } | undefined;
    if (typeof ev?.accuracy === "number") out.accuracy = ev.accuracy;
    steps.push(out);
  }
  const order = Object.keys(rollouts).map((k) => Number(k.slice("rollouts_".length)))
    .sort((a, b) => a - b);
  return {
    format: STAGE_REPORT_FORMAT,
    training: [{ algorithm, steps }],
    rollouts: order.map((i) => rollouts[`rollouts_${i}`]),
  };
}

/** What training carries from step to step. */
interface RlRun {
  o: RlOptions;
  setup: RlRolloutSetup;
  model: DecoderModel;
  tokenizer: TokenizerLike;
  trainer: Trainer;
  /** The weights the stage started from: the KL term's reference. */
  reference: DecoderModel["weights"];
  schedule: LrSchedule;
  curve: Json[];
  rollouts: Record<string, string>;
  evalTasks: Task[];
  policy: OnnxPolicy;
  /** The policy was released for the update and not yet rebuilt (nothing to release). */
  policyReleased?: boolean;
  /** The first step to run: 0, or the one after the last checkpoint. */
  start: number;
  /** Wall time by part (timings, outside the identity). */
  ms: { rollout: number; score: number; update: number; eval: number };
}

export async function runRl(ctx: StageContext, o: RlOptions): Promise<StageResult> {
  if (o.dry_run) return await runRlDryRun(ctx, o);
  const run = await startRl(ctx, o);
  try {
    if (run.start === 0 && o.eval_every > 0) {
      run.curve.push({ step: 0, eval: await timedEval(ctx, run, 0) });
    }
    for (let step = run.start; step < o.steps; step++) {
      ctx.signal.throwIfAborted();
      run.curve.push(await rlStep(ctx, run, step));
      await saveTrainCheckpoint(ctx, step, run.trainer.stateView(), run.rollouts, {
        curve: run.curve,
      });
    }
    return await finishRl(ctx, run);
  } finally {
    if (!run.policyReleased) await run.policy.dispose();
    await run.trainer.release();
  }
}

/** The trainer (fresh, or resumed from the last checkpoint) and everything the steps share. */
async function startRl(ctx: StageContext, o: RlOptions): Promise<RlRun> {
  const setup = await setupRlRollout(ctx, o);
  const { model, tokenizer } = await trainableModel(ctx);
  const resumed = await loadTrainCheckpoint(ctx, model);
  const trainer = Trainer.create(model.config, resumed?.state ?? model.weights, {
    objective: {
      kind: "pg",
      kl: o.kl_coef > 0,
      entropy: o.entropy_coef > 0,
      ...(o.objective?.clip === "entropy_balanced" ? { clip: "entropy_balanced" as const } : {}),
      ...(o.objective?.entropy_advantage
        ? { entropyAdvantage: o.objective.entropy_advantage }
        : {}),
    },
    objectiveParams: {
      clipLow: o.clip.low,
      clipHigh: o.clip.high,
      dualClip: o.clip.dual,
      klCoef: o.kl_coef,
      entropyCoef: o.entropy_coef,
    },
    adamw: { weightDecay: o.weight_decay, maxGradNorm: o.grad_clip },
    // Log-probs of the policy that sampled: softmax(logits / T) (1 at T = 1 or greedy).
    temperature: o.sampling.temperature,
    threads: ctx.manifest.runtime.threads,
    device: ctx.manifest.runtime.device,
  });
  const rollouts: Record<string, string> = {};
  for (const [k, v] of Object.entries(resumed?.stateDigests ?? {})) {
    if (k.startsWith("rollouts_")) rollouts[k] = v;
  }
  return {
    o,
    setup,
    model,
    tokenizer,
    trainer,
    reference: model.weights,
    schedule: o.schedule === "cosine"
      ? { kind: "cosine", lr: o.lr, totalSteps: o.steps, warmupSteps: o.warmup }
      : { kind: "constant", lr: o.lr, warmupSteps: o.warmup },
    curve: ((resumed?.meta.curve as Json[] | undefined) ?? []).slice(),
    rollouts,
    evalTasks: o.eval_every > 0
      ? await selectTasks(ctx, o.benchmark, o.eval_split, o.eval_questions)
      : [],
    policy: await policyWithWeights(ctx, model, tokenizer, trainer.weights),
    start: resumed ? resumed.step + 1 : 0,
    ms: { rollout: 0, score: 0, update: 0, eval: 0 },
  };
}

/** One training step: roll out, update, rebuild the policy, evaluate if due; its curve entry. */
async function rlStep(ctx: StageContext, run: RlRun, step: number): Promise<Json> {
  const o = run.o;
  const t = performance.now();
  const r = await rolloutStep(ctx, run.policy, run.setup, step);
  run.ms.rollout += performance.now() - t;
  run.rollouts[`rollouts_${step}`] = r.stored.index;
  // The rollout policy is rebuilt from the updated weights anyway: release its sessions and KV
  // caches now, so the update (the stage's peak) does not hold them too.
  await run.policy.dispose();
  run.policyReleased = true;
  const lr = lrAt(run.schedule, step);
  const u = await rlUpdate(
    run.trainer,
    r.questions.map((q) => updateQuestion(q.tree)), // infrastructure failures left out
    {
      epochs: o.epochs,
      minibatch: o.minibatch,
      lr,
      attribution: o.attribution,
      reference: o.kl_coef > 0 ? run.reference : undefined,
      shuffle: ctx.stream("minibatches", step),
    },
  );
  run.ms.score += u.scoreMs;
  run.ms.update += u.updateMs;
  run.policy = await policyWithWeights(ctx, run.model, run.tokenizer, run.trainer.weights);
  run.policyReleased = false;
  const entry: Record<string, Json> = {
    step: step + 1,
    lr,
    ...stepSummary(r.questions, r.stored.metrics),
    logp_gap: u.logpGap,
    updates: u.updates,
  };
  if (o.eval_every > 0 && ((step + 1) % o.eval_every === 0 || step + 1 === o.steps)) {
    entry.eval = await timedEval(ctx, run, step + 1);
  }
  const lost = rolloutTotals([entry]).infrastructure_failures;
  if (lost > 0) {
    ctx.log(
      `${ctx.name} step ${step + 1}: ${lost} trajectories lost to infrastructure failures (left ` +
        `out of the update and the evaluation); this stage's outputs depend on the machine.`,
    );
  }
  ctx.progress({
    step: step + 1,
    total: o.steps,
    message: `rl step ${step + 1}/${o.steps}`,
    metrics: Object.fromEntries(
      Object.entries(entry).filter((e): e is [string, number] => typeof e[1] === "number"),
    ),
  });
  return entry;
}

async function timedEval(ctx: StageContext, run: RlRun, step: number): Promise<Json> {
  const t = performance.now();
  const e = await evaluate(ctx, run.policy, run.evalTasks, step, run.setup);
  run.ms.eval += performance.now() - t;
  return e;
}

/** The final weights, optimizer state, curve and report as outputs. */
async function finishRl(ctx: StageContext, run: RlRun): Promise<StageResult> {
  const { o, curve, rollouts } = run;
  for (const [k, v] of Object.entries(run.ms)) ctx.timing(`rl.${k}_ms`, v);
  const final: TrainerState = run.trainer.stateView();
  const saved = await saveTrainCheckpoint(ctx, o.steps - 1, final, rollouts, { curve });
  // The checkpoint's model.safetensors is the stage's weights output (the same bytes).
  const weights = saved.weights;
  const curveDigest = await ctx.store.putJson({ type: "rl_curve", steps: curve });
  const report = await ctx.store.putJson(
    await rlReport(ctx, run.setup.config.algorithm, curve, rollouts),
  );
  const last = curve.at(-1) as Record<string, Json> | undefined;
  const lastEval = [...curve].reverse().find((c) => (c as Record<string, Json>).eval) as
    | { eval: { accuracy: number } }
    | undefined;
  return {
    outputs: { ...rollouts, weights, optimizer: saved.optimizer, curve: curveDigest, report },
    metrics: {
      steps: o.steps,
      last_mean_reward: last?.mean_reward ?? null,
      eval_accuracy: lastEval?.eval.accuracy ?? null,
      // Over all steps: mean tool calls per trajectory, total branches / total decisions,
      // trajectories lost to infrastructure failures (rollouts and evaluations).
      ...rolloutTotals(curve),
    },
  };
}

/** The `rl` stage kind. */
export const rlStage = defineStage({
  kind: "rl",
  options: rlOptionsSchema,
  references: {
    benchmark: { section: "benchmarks", fill: true },
    reward: { section: "rewards", fill: true },
  },
  tools: true,
  reads: (o, earlier, name) => weightsSource(o.from, earlier, name),
  splits: (o) => ({
    trains: [{ benchmark: o.benchmark, split: o.split }],
    measures: o.eval_every > 0 ? [{ benchmark: o.benchmark, split: o.eval_split }] : [],
  }),
  // The dry run only rolls out; an update needs the model here (not policy.server).
  trains: (o) => !(o as RlOptions).dry_run,
  run: runRl,
});
