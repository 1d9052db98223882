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
 * `data:` is a JSONL file, one example a line, in the forms Hugging Face / TRL users have
 * (train/sft_data.ts): text conversations, `{"prompt": …, "response": …}` or `{"messages": [...]}`
 * (rendered with the policy's chat template, EOS appended), or token ids as a tokenizer and TRL
 * produce them, trained exactly as given (no template, no EOS added):
 *
 * ```jsonl
 * {"input_ids": [9707, 11, 1879, 0], "completion_mask": [0, 0, 1, 1]}
 * {"input_ids": [9707, 11, 1879, 0], "assistant_masks": [0, 0, 1, 1]}
 * {"input_ids": [9707, 11, 1879, 0], "labels": [-100, -100, 1879, 0]}
 * {"input_ids": [9707, 11, 1879, 0]}
 * ```
 *
 * A mask of 1 (or a label other than -100, equal to the id: unshifted, as transformers takes
 * labels) means the token is learned; without a mask every token is. `attention_mask`, if given,
 * must be all 1 (batches are padded here). Ids must be below the model's vocab_size and a line
 * at most max_position_embeddings long; the error names the file, line and field. A stage whose
 * lines are all token ids needs no tokenizer, so `policy.model` may be a directory with only
 * config.json and weights (a trainer's checkpoint folder); text lines, `benchmarks:` and every
 * other stage kind need tokenizer.json and tokenizer_config.json, and such a run is refused
 * before anything loads.
 *
 * ```yaml
 * - sft: { benchmarks: [arith], epochs: 3 }
 * - sft: { benchmarks: [arith], steps: 60, batch_size: 16 }
 * - sft: { data: tokens.jsonl, steps: 100 }
 * ```
 */
import { join, resolve } from "node:path";
import { z } from "zod";
import { ArpoError } from "../../errors.ts";
import type { ResolvedManifest } from "../../manifest/mod.ts";
import type { Json } from "../../store/canonical.ts";
import type { Demonstration } from "../../plugin/contracts.ts";
import type { TrainSequence } from "../../train/batch.ts";
import type { DecoderModel } from "../../model/load.ts";
import {
  checkTokenRecords,
  demonstrationSequence,
  parseSftData,
  type SftRecord,
  type TokenBounds,
} from "../../train/sft_data.ts";
import { parseHfConfig } from "../../model/config.ts";
import { missingTokenizerFiles } from "../../policy/load.ts";
import { lrAt, type LrSchedule } from "../../train/optimizer.ts";
import { Trainer } from "../../train/trainer.ts";
import { STAGE_REPORT_FORMAT, type StageReport } from "../../report/data.ts";
import { defineStage, type StageContext, type StageResult } from "../stages.ts";
import { fromSchema, questionsSchema, weightsSource } from "./options.ts";
import { loadTrainCheckpoint, saveTrainCheckpoint, trainableModel } from "./train_shared.ts";

/** The default lr for a pretrained model (the paper's cold-start SFT). */
export const PRETRAINED_LR = 7e-6;
/** The default lr for a model initialized here: random weights need far larger steps. */
export const INIT_LR = 1e-3;

/** `sft` options: demonstrations from manifest benchmarks, or a JSONL file of conversations. */
export const sftOptionsSchema = z.strictObject({
  benchmarks: z.array(z.string().min(1)).min(1).optional()
    .describe("manifest benchmarks whose demonstrations to train on"),
  data: z.string().min(1).optional().describe(
    "a JSONL file relative to the manifest, one example a line: a conversation " +
      "({prompt, response} or {messages}) or token ids ({input_ids} with completion_mask, " +
      "assistant_masks or labels, as Hugging Face / TRL write them; needs no tokenizer)",
  ),
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
  // Optional without a default, so manifests that do not set it keep their run ids and bytes.
  group_by_length: z.int().min(2).optional().describe(
    "batches per length group: each epoch's shuffle is cut into groups of this many batches, " +
      "sorted by length inside a group and cut into batches, whose order in the group is shuffled " +
      "again, so a batch pads little (Hugging Face's `group_by_length` with its megabatch of 50); " +
      "unset: batches are plain slices of the shuffle",
  ),
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

/** The lines of the `data:` file (the first `questions` of them) and its path. */
async function dataRecords(
  ctx: StageContext,
  o: SftOptions & { data: string },
): Promise<{ path: string; records: SftRecord[] }> {
  const path = resolve(ctx.baseDir, o.data);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ArpoError(
      `stage '${ctx.name}': data: cannot read ${path}: ${(e as Error).message}`,
    );
  }
  const all = parseSftData(text, path);
  return { path, records: o.questions === "all" ? all : all.slice(0, o.questions) };
}

/**
 * Before the model loads: a text line with a `policy.model` directory that has no tokenizer is
 * refused, and token lines are checked against the directory's config.json when it parses.
 */
async function checkDataBeforeLoad(
  ctx: StageContext,
  path: string,
  records: readonly SftRecord[],
): Promise<void> {
  const dir = ctx.modelPath;
  if (dir === undefined || !("model" in ctx.manifest.policy)) return;
  const text = records.find((r) => r.kind === "text");
  const missing = text ? await missingTokenizerFiles(dir) : [];
  if (text && missing.length) {
    throw new ArpoError(
      `stage '${ctx.name}': ${path}:${text.line} is a text conversation, which needs the ` +
        `policy's tokenizer, but the model directory ${dir} has no ${missing.join(" or ")}; ` +
        `give every line as token ids ({"input_ids": […], "completion_mask": […]}) or copy the ` +
        `tokenizer files of the model the weights came from into the directory.`,
    );
  }
  let bounds: TokenBounds;
  try {
    const c = parseHfConfig(JSON.parse(await Deno.readTextFile(join(dir, "config.json"))));
    bounds = { vocabSize: c.vocabSize, maxPositions: c.maxPositionEmbeddings };
  } catch {
    return; // loading the model reports a bad config.json
  }
  checkTokenRecords(records, bounds, path);
}

async function benchmarkDemonstrations(
  ctx: StageContext,
  o: SftOptions,
): Promise<Demonstration[]> {
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

/**
 * How an epoch's batches are grouped by length: `batches` batches per group, `lengths[i]` the
 * token length of sequence i, `shuffle(e, g, batches)` the keyed order of group g's batches.
 */
export interface LengthGrouping {
  batches: number;
  lengths: readonly number[];
  shuffle: (e: number, g: number, xs: number[][]) => number[][];
}

/**
 * Step i's batch: epoch-keyed shuffles of the sequence indices, cut into batches; with
 * `grouping`, each group of `grouping.batches` batches' worth of the shuffle is sorted by length
 * (longest first, ties in shuffle order) before it is cut, and its batches are shuffled again
 * (padding is to the longest sequence of a micro-batch: batches of like lengths pad little).
 *
 * @example
 * ```ts
 * const id = (_e: number, xs: number[]) => xs;
 * sftSchedule(5, 1, 2, id); // [[0, 1], [2, 3], [4]]
 * ```
 */
export function sftSchedule(
  n: number,
  epochs: number,
  batch: number,
  shuffle: (e: number, xs: number[]) => number[],
  budget?: number,
  grouping?: LengthGrouping,
): number[][] {
  const steps: number[][] = [];
  if (n === 0) return steps;
  const cut = (xs: number[]) => {
    const out: number[][] = [];
    for (let i = 0; i < xs.length; i += batch) out.push(xs.slice(i, i + batch));
    return out;
  };
  for (let e = 0; budget === undefined ? e < epochs : steps.length < budget; e++) {
    const order = shuffle(e, [...Array(n).keys()]);
    if (!grouping) {
      steps.push(...cut(order));
      continue;
    }
    const size = batch * grouping.batches, len = grouping.lengths;
    for (let g = 0; g * size < n; g++) {
      const group = order.slice(g * size, (g + 1) * size);
      group.sort((a, b) => len[b] - len[a]); // stable: ties keep the shuffle's order
      steps.push(...grouping.shuffle(e, g, cut(group)));
    }
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

/** The stage's training sequences and model (a `data:` file is checked before the load). */
async function sftInputs(
  ctx: StageContext,
  o: SftOptions,
): Promise<{ model: DecoderModel; seqs: TrainSequence[] }> {
  if (o.data === undefined) {
    const demos = await benchmarkDemonstrations(ctx, o);
    const { model, tokenizer } = await trainableModel(ctx);
    return { model, seqs: demos.map((d) => demonstrationSequence(d, tokenizer)) };
  }
  const { path, records } = await dataRecords(ctx, { ...o, data: o.data });
  await checkDataBeforeLoad(ctx, path, records);
  const text = records.some((r) => r.kind === "text");
  const { model, tokenizer } = await trainableModel(ctx, { text });
  const c = model.config;
  checkTokenRecords(
    records,
    { vocabSize: c.vocabSize, maxPositions: c.maxPositionEmbeddings },
    path,
  );
  const seqs = records.map((r) =>
    r.kind === "tokens" ? r.sequence : demonstrationSequence(r.demonstration, tokenizer)
  );
  return { model, seqs };
}

export async function runSft(ctx: StageContext, o: SftOptions): Promise<StageResult> {
  const { model, seqs } = await sftInputs(ctx, o);
  const plan = sftSchedule(
    seqs.length,
    o.epochs,
    o.batch_size,
    (e, xs) => ctx.stream("epoch", e).shuffle(xs),
    o.steps,
    o.group_by_length === undefined ? undefined : {
      batches: o.group_by_length,
      lengths: seqs.map((s) => s.tokens.length),
      shuffle: (e, g, xs) => ctx.stream("length_group", e, g).shuffle(xs),
    },
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
        await saveTrainCheckpoint(ctx, step, trainer.stateView(), {}, { curve });
      }
    }
    ctx.timing("sft.train_ms", performance.now() - t0);
    const saved = await saveTrainCheckpoint(ctx, plan.length - 1, trainer.stateView(), {}, {
      curve,
    });
    // The checkpoint's model.safetensors is the stage's weights output (the same bytes).
    const weights = saved.weights;
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
  // `data:` lines are checked when the stage starts: token ids need no tokenizer, text does.
  needsTokenizer: (o) => o.benchmarks !== undefined,
  run: runSft,
});
