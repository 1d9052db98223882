/**
 * The default policy factory: the manifest's `policy:` through policy/load.ts (an ONNX decoder on
 * the manifest's runtime threads and device), or, for `request.weights`, the same architecture
 * and tokenizer with the weights of a training checkpoint (a model.safetensors in the store).
 * Imported lazily by the runner the first time a stage asks for a policy, so runs without one
 * never load ONNX Runtime. A run can be given another (RunOptions.policyFactory).
 */
import { parseSafetensors } from "../model/safetensors.ts";
import { validateWeights, weightsDigest } from "../model/weights.ts";
import { loadPolicy, loadPolicyModel } from "../policy/load.ts";
import { OnnxPolicy } from "../policy/onnx_policy.ts";
import type { PolicyFactory } from "./stages.ts";

export const defaultPolicyFactory: PolicyFactory = async (input) => {
  const { manifest, modelPath, request } = input;
  // A model path comes from the manifest or, on reruns, from the archive's materialized copy.
  const config = modelPath ? { model: modelPath } : manifest.policy;
  const runtime = { threads: manifest.runtime.threads, device: manifest.runtime.device };
  const w = request.weights;
  if (w === undefined) {
    return await loadPolicy(config, { baseDir: input.baseDir, ...runtime, seed: manifest.seed });
  }
  const { model, tokenizer } = await loadPolicyModel(config, {
    baseDir: input.baseDir,
    seed: manifest.seed,
  });
  const where = `checkpoint weights ${w.slice(0, 12)}`;
  const bytes = await input.store.getBytes(w);
  const weights = validateWeights(model.config, parseSafetensors(bytes, where), where);
  return await OnnxPolicy.create(
    { config: model.config, weights, digest: weightsDigest(model.config, weights) },
    tokenizer,
    runtime,
  );
};
