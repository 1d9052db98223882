/**
 * The `sft` stage: supervised fine-tuning on tool-use demonstrations (the benchmarks' own, or a
 * JSONL of conversations), token-mean cross-entropy on response tokens with tool results masked,
 * AdamW with the stage's schedule. Each epoch visits the demonstrations in a keyed shuffle.
 * Checkpoints (weights + AdamW state) every `CHECKPOINT_EVERY` steps and at the end; a killed
 * stage resumes from its last checkpoint and ends with the same bytes as an uninterrupted run.
 *
 * Outputs: `weights` (model.safetensors, HF names: later stages' policy), `optimizer`, `curve`
 * (loss per step), `report` (the loss curve as a StageReport for the HTML report, src/report/).
 * Defaults follow the paper's cold-start SFT (ARPO.md §4: lr 7e-6, 3 epochs, cosine) for a
 * pretrained `policy.model`; a model initialized here (`policy.init`, random weights) barely moves
 * at 7e-6, so its default lr is 1e-3. `steps:` is a budget of optimizer steps that replaces
 * `epochs` (the keyed epoch shuffles continue until it is spent).
 *
 * ```yaml
 * - sft: { benchmarks: [arith], epochs: 3 }
 * - sft: { benchmarks: [arith], steps: 60, batch_size: 16 }
 * ```
 */
import { resolve } from "node:path";
import { z } from "zod";
import { ArpoError } from "../../errors.ts";
import type { ResolvedManifest } from "../../manifest/mod.ts";
import type { Json } from "../../store/canonical.ts";
import type { Demonstration } from "../../plugin/contracts.ts";
import type { TrainSequence } from "../../train/batch.ts";
import { demonstrationSequence, parseConversations } from "../../train/sft_data.ts";
import { lrAt, type LrSchedule } from "../../train/optimizer.ts";
import { Trainer } from "../../train/trainer.ts";
import { STAGE_REPORT_FORMAT, type StageReport } from "../../report/data.ts";
import { defineStage, type StageContext, type StageResult } from "../stages.ts";
import { fromSchema, questionsSchema, weightsSource } from "./options.ts";
import {
  loadTrainCheckpoint,
  putWeights,
  saveTrainCheckpoint,
  trainableModel,
} from "./train_shared.ts";

/** The default lr for a pretrained model (the paper's cold-start SFT). */
export const PRETRAINED_LR = 7e-6;
/** The default lr for a model initialized here: random weights need far larger steps. */
export const INIT_LR = 1e-3;

/** `sft` options: demonstrations from manifest benchmarks, or a JSONL file of conversations. */
export const sftOptionsSchema = z.strictObject({
  benchmarks: z.array(z.string().min(1)).min(1).optional()
    .describe("manifest benchmarks whose demonstrations to train on"),
  data: z.string().min(1).optional()
    .describe("a JSONL file of conversations, relative to the manifest"),
  split: z.string().min(1).default("train")
    .describe("the benchmarks' split whose demonstrations are trained on"),
  from: fromSchema,
  questions: questionsSchema.default("all").describe("demonstrations per benchmark"),
  epochs: z.int().min(1).default(3)
    .describe("passes over the demonstrations, each in a keyed shuffle (ignored with `steps`)"),
  // Optional without a default, so manifests that do not set it keep their run ids and keys.
  steps: z.int().min(1).optional()
    .describe("optimizer steps to train, replacing `epochs` (shuffled epochs repeat as needed)"),
  lr: z.number().positive().optional().describe(
    "peak learning rate; default 7e-6 (PRETRAINED_LR) for a pretrained `policy.model`, 1e-3 " +
      "(INIT_LR) for a model initialized here (`policy.init`)",
  ),
  schedule: z.enum(["constant", "cosine"]).default("cosine")
    .describe("learning-rate schedule after warm-up (cosine decays to 0 at the last step)"),
  warmup: z.int().min(0).default(0).describe("warm-up steps"),
  batch_size: z.int().min(1).default(8).describe("demonstrations per optimizer step"),
  weight_decay: z.number().min(0).default(0.01).describe("AdamW weight decay"),
  grad_clip: z.number().positive().default(1.0).describe("global gradient-norm clip"),
}).superRefine((v, ctx) => {
  if ((v.benchmarks === undefined) === (v.data === undefined)) {
    ctx.addIssue({
      code: "custom",
      path: [],
      message: `exactly one of \`benchmarks\` or \`data\`, found ${
        v.benchmarks === undefined ? "neither" : "both"
      }`,
    });
  }
});

export type SftOptions = z.output<typeof sftOptionsSchema>;

export const CHECKPOINT_EVERY = 25;

async function demonstrations(ctx: StageContext, o: SftOptions): Promise<Demonstration[]> {
  if (o.data) {
    const path = resolve(ctx.baseDir, o.data);
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      throw new ArpoError(
        `stage '${ctx.name}': data: cannot read ${path}: ${(e as Error).message}`,
      );
    }
    const all = parseConversations(text, path);
    return o.questions === "all" ? all : all.slice(0, o.questions);
  }
  const out: Demonstration[] = [];
  for (const name of o.benchmarks ?? []) {
    const b = ctx.plugins.benchmarks.get(name);
    if (!b) {
      throw new ArpoError(
        `stage '${ctx.name}': benchmarks: '${name}' is not a benchmark of this manifest ` +
          `(declared: ${[...ctx.plugins.benchmarks.keys()].join(", ") || "none"})`,
      );
    }
    if (!b.plugin.demonstrations) {
      throw new ArpoError(`stage '${ctx.name}': benchmark '${name}' provides no demonstrations`);
    }
    const demos = await b.plugin.demonstrations(o.split);
    if (!demos.length) {
      throw new ArpoError(
        `stage '${ctx.name}': benchmark '${name}' has no demonstrations for split '${o.split}'`,
      );
    }
    out.push(...(o.questions === "all" ? demos : demos.slice(0, o.questions)));
  }
  return out;
}

/** Step i's batch: epoch-keyed shuffles of the sequence indices, cut into batches. */
export function sftSchedule(
  n: number,
  epochs: number,
  batch: number,
  shuffle: (e: number, xs: number[]) => number[],
  budget?: number,
): number[][] {
  const steps: number[][] = [];
  if (n === 0) return steps;
  for (let e = 0; budget === undefined ? e < epochs : steps.length < budget; e++) {
    const order = shuffle(e, [...Array(n).keys()]);
    for (let i = 0; i < n; i += batch) steps.push(order.slice(i, i + batch));
  }
  return budget === undefined ? steps : steps.slice(0, budget);
}

/** The lr the stage trains with: the option, else the default for the manifest's policy. */
export function sftLr(o: SftOptions, policy: ResolvedManifest["policy"]): number {
  return o.lr ?? ("init" in policy && policy.init !== undefined ? INIT_LR : PRETRAINED_LR);
}

/** The loss curve as the report's training series (no wall-clock values: the report is hashed). */
export function sftReport(curve: readonly Json[]): StageReport {
  const steps = curve.map((c) => {
    const e = c as { step: number; loss: number; grad_norm: number };
    return { step: e.step, loss: e.loss, gradNorm: e.grad_norm };
  });
  return { format: STAGE_REPORT_FORMAT, training: [{ algorithm: "sft", steps }] };
}

export async function runSft(ctx: StageContext, o: SftOptions): Promise<StageResult> {
  const { model, tokenizer } = await trainableModel(ctx);
  const seqs: TrainSequence[] = (await demonstrations(ctx, o)).map((d) =>
    demonstrationSequence(d, tokenizer)
  );
  const plan = sftSchedule(
    seqs.length,
    o.epochs,
    o.batch_size,
    (e, xs) => ctx.stream("epoch", e).shuffle(xs),
    o.steps,
  );
  const lr0 = sftLr(o, ctx.manifest.policy);
  const schedule: LrSchedule = o.schedule === "cosine"
    ? { kind: "cosine", lr: lr0, totalSteps: plan.length, warmupSteps: o.warmup }
    : { kind: "constant", lr: lr0, warmupSteps: o.warmup };
  const resumed = await loadTrainCheckpoint(ctx, model);
  const trainer = Trainer.create(model.config, resumed?.state ?? model.weights, {
    objective: { kind: "sft" },
    adamw: { weightDecay: o.weight_decay, maxGradNorm: o.grad_clip },
    threads: ctx.manifest.runtime.threads,
    device: ctx.manifest.runtime.device,
  });
  const curve: Json[] = ((resumed?.meta.curve as Json[] | undefined) ?? []).slice();
  const t0 = performance.now();
  try {
    for (let step = trainer.step; step < plan.length; step++) {
      ctx.signal.throwIfAborted();
      const lr = lrAt(schedule, step);
      const st = await trainer.trainStep(plan[step].map((i) => seqs[i]), lr);
      curve.push({ step: step + 1, loss: st.loss, lr, tokens: st.tokens, grad_norm: st.gradNorm });
      ctx.progress({
        step: step + 1,
        total: plan.length,
        message: `sft step ${step + 1}/${plan.length}`,
        metrics: { loss: st.loss, grad_norm: st.gradNorm },
      });
      if ((step + 1) % CHECKPOINT_EVERY === 0 && step + 1 < plan.length) {
        await saveTrainCheckpoint(ctx, step, trainer.state(), {}, { curve });
      }
    }
    ctx.timing("sft.train_ms", performance.now() - t0);
    const final = trainer.state();
    const saved = await saveTrainCheckpoint(ctx, plan.length - 1, final, {}, { curve });
    const weights = await putWeights(ctx, final.weights);
    const curveDigest = await ctx.store.putJson({ type: "sft_curve", steps: curve });
    const report = await ctx.store.putJson(sftReport(curve));
    const last = curve.at(-1) as { loss: number } | undefined;
    return {
      outputs: { weights, optimizer: saved.optimizer, curve: curveDigest, report },
      metrics: {
        steps: plan.length,
        demonstrations: seqs.length,
        first_loss: (curve[0] as { loss: number } | undefined)?.loss ?? null,
        final_loss: last?.loss ?? null,
      },
    };
  } finally {
    await trainer.release();
  }
}

/** The `sft` stage kind. */
export const sftStage = defineStage({
  kind: "sft",
  options: sftOptionsSchema,
  references: { benchmarks: { section: "benchmarks" } },
  reads: (o, earlier, name) => weightsSource(o.from, earlier, name),
  splits: (o) => ({
    trains: (o.benchmarks ?? []).map((benchmark) => ({ benchmark, split: o.split })),
  }),
  trains: () => true,
  run: runSft,
});
