/**
 * Training checkpoints: the weights as a Hugging Face-compatible model.safetensors and the AdamW
 * state (first/second moments, step) as a second safetensors file. Both writers sort tensor names
 * and the metadata is canonical, so the same state always gives the same bytes.
 */
import { ArpoError } from "../errors.ts";
import type { DecoderConfig } from "../model/config.ts";
import {
  parseSafetensors,
  safetensorsParts,
  serializeSafetensors,
  type TensorMap,
} from "../model/safetensors.ts";
import { validateWeights } from "../model/weights.ts";
import type { TrainerState } from "./trainer.ts";

export interface CheckpointBytes {
  /** model.safetensors (F32, HF names). */
  weights: Uint8Array;
  /** optimizer.safetensors: exp_avg.<name>, exp_avg_sq.<name>; metadata step. */
  optimizer: Uint8Array;
}

export function checkpointBytes(state: TrainerState): CheckpointBytes {
  return {
    weights: serializeSafetensors(state.weights, WEIGHTS_META),
    optimizer: serializeSafetensors(optimizerTensors(state), optimizerMeta(state)),
  };
}

/**
 * The two files of `checkpointBytes` as pieces over the state's own buffers (safetensorsParts),
 * for a store to write without a copy of the state.
 */
export function checkpointParts(
  state: TrainerState,
): { weights: Uint8Array[]; optimizer: Uint8Array[] } {
  return {
    weights: safetensorsParts(state.weights, WEIGHTS_META),
    optimizer: safetensorsParts(optimizerTensors(state), optimizerMeta(state)),
  };
}

const WEIGHTS_META = { format: "pt" };

function optimizerMeta(state: TrainerState): Record<string, string> {
  return { format: "arpo-adamw", step: String(state.step) };
}

/** exp_avg.<name> and exp_avg_sq.<name>, the moments under PyTorch AdamW's names. */
function optimizerTensors(state: TrainerState): TensorMap {
  const opt: TensorMap = new Map();
  for (const [k, t] of state.m) opt.set(`exp_avg.${k}`, t);
  for (const [k, t] of state.v) opt.set(`exp_avg_sq.${k}`, t);
  return opt;
}

/** Parse checkpoint bytes back into a trainer state; `where` names the checkpoint in errors. */
export function parseCheckpoint(
  cfg: DecoderConfig,
  bytes: CheckpointBytes,
  where: string,
): TrainerState {
  const weights = validateWeights(
    cfg,
    parseSafetensors(bytes.weights, `${where}/model.safetensors`),
    where,
  );
  const optWhere = `${where}/optimizer.safetensors`;
  const opt = parseSafetensors(bytes.optimizer, optWhere);
  const n = bytes.optimizer.byteLength >= 8
    ? Number(new DataView(bytes.optimizer.buffer, bytes.optimizer.byteOffset).getBigUint64(0, true))
    : 0;
  const header = JSON.parse(new TextDecoder().decode(bytes.optimizer.subarray(8, 8 + n)));
  const step = Number(header.__metadata__?.step);
  if (!Number.isInteger(step) || step < 0) {
    throw new ArpoError(`${optWhere}: metadata 'step' must be a non-negative integer`);
  }
  const m: TensorMap = new Map(), v: TensorMap = new Map();
  for (const name of weights.keys()) {
    const a = opt.get(`exp_avg.${name}`), b = opt.get(`exp_avg_sq.${name}`);
    if (!a || !b) throw new ArpoError(`${optWhere}: moments of '${name}' are missing`);
    m.set(name, a);
    v.set(name, b);
  }
  return { step, weights, m, v };
}
