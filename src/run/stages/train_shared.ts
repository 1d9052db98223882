/**
 * What the training stages (sft, rl) share: the trainable model a stage starts from, a policy over
 * new weights, and checkpoint save/load through the stage's CheckpointApi (weights and AdamW state
 * as store objects).
 */
import { ArpoError } from "../../errors.ts";
import type { Json } from "../../store/canonical.ts";
import type { DecoderModel } from "../../model/load.ts";
import type { TensorMap } from "../../model/safetensors.ts";
import { weightsDigest } from "../../model/weights.ts";
import { OnnxPolicy } from "../../policy/onnx_policy.ts";
import type { TokenizerLike } from "../../model/tokenizer.ts";
import { checkpointParts, parseCheckpoint } from "../../train/checkpoint.ts";
import type { TrainerState } from "../../train/trainer.ts";
import type { StageContext } from "../stages.ts";
import { stagePolicy } from "./rollout_shared.ts";

/**
 * The model (config, weights) and tokenizer the stage trains: the latest earlier weights. With
 * `text: false` (token data only) a `policy.model` directory without tokenizer files loads with
 * token ids only.
 */
export async function trainableModel(
  ctx: StageContext,
  opts: { text?: boolean } = {},
): Promise<{ model: DecoderModel; tokenizer: TokenizerLike }> {
  const p = await stagePolicy(ctx, {
    session: "none",
    ...(opts.text === false ? { tokenizer: "optional" as const } : {}),
  });
  if (!(p instanceof OnnxPolicy)) {
    throw new ArpoError(
      `stage '${ctx.name}': training needs the ONNX decoder policy (a policy.model directory or ` +
        `policy.init); this run's policy backend cannot be trained here`,
    );
  }
  // The stage only needs the weights (the default factory builds no session for them). A session
  // another factory built (ORT's copy of the weights and packed matrices, ~2x the weights) would
  // otherwise stay alive, unused, through every step; the runner's dispose at the stage's end
  // finds it released and ignores that.
  await p.dispose();
  return { model: p.model, tokenizer: p.tokenizer };
}

/** A fresh policy over new weights (the rollout engine's view of the trained model). */
export async function policyWithWeights(
  ctx: StageContext,
  model: DecoderModel,
  tokenizer: TokenizerLike,
  weights: TensorMap,
): Promise<OnnxPolicy> {
  return await OnnxPolicy.create(
    { config: model.config, weights, digest: weightsDigest(model.config, weights) },
    tokenizer,
    { threads: ctx.manifest.runtime.threads, device: ctx.manifest.runtime.device },
  );
}

/** Store the trainer state and record it as the stage's checkpoint after `step`. */
export async function saveTrainCheckpoint(
  ctx: StageContext,
  step: number,
  state: TrainerState,
  extra: Record<string, string>,
  meta: Record<string, Json>,
): Promise<{ weights: string; optimizer: string }> {
  // Written from the state's buffers: a serialized copy would be 3× the weights.
  const b = checkpointParts(state);
  const weights = await ctx.store.putParts(b.weights);
  const optimizer = await ctx.store.putParts(b.optimizer);
  await ctx.checkpoint.save(step, { ...extra, weights, optimizer }, meta);
  return { weights, optimizer };
}

/** The last checkpoint's trainer state and bookkeeping, or undefined. */
export async function loadTrainCheckpoint(ctx: StageContext, model: DecoderModel) {
  const c = await ctx.checkpoint.load();
  if (!c) return undefined;
  const weights = await ctx.store.getBytes(c.state.weights);
  const optimizer = await ctx.store.getBytes(c.state.optimizer);
  const state = parseCheckpoint(
    model.config,
    { weights, optimizer },
    `stage '${ctx.name}' checkpoint`,
  );
  return { step: c.step, state, stateDigests: c.state, meta: c.meta };
}
