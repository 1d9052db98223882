/**
 * The default policy factory: the manifest's `policy:` through policy/load.ts (an ONNX decoder on
 * the manifest's runtime threads and device), or, for `request.weights`, the same architecture
 * and tokenizer with the weights of a training checkpoint (a model.safetensors in the store), or,
 * for `policy.server`, the inference-server backend (policy/server_policy.ts): connected to the
 * server on a fresh run, answering from the stage's recorded responses on rerun/verify.
 * Imported lazily by the runner the first time a stage asks for a policy, so runs without one
 * never load ONNX Runtime. A run can be given another (RunOptions.policyFactory).
 */
import { isAbsolute, resolve } from "node:path";
import { ArpoError } from "../errors.ts";
import type { PolicyServer } from "../manifest/policy.ts";
import { parseSafetensors } from "../model/safetensors.ts";
import { loadTokenizer, type Tokenizer } from "../model/tokenizer.ts";
import { validateWeights, weightsDigest } from "../model/weights.ts";
import { loadPolicy, loadPolicyArchitecture, loadPolicyModel } from "../policy/load.ts";
import { OnnxPolicy } from "../policy/onnx_policy.ts";
import { publishedTokenizer, ServerPolicy, tokenizerFromFiles } from "../policy/server_policy.ts";
import { ResponseLog } from "../policy/server_record.ts";
import type { Policy } from "../policy/types.ts";
import type { PolicyFactory, PolicyFactoryInput } from "./stages.ts";

export const defaultPolicyFactory: PolicyFactory = async (input) => {
  const { manifest, modelPath, request } = input;
  if ("server" in manifest.policy) return await serverPolicy(manifest.policy.server, input);
  // A model path comes from the manifest or, on reruns, from the archive's materialized copy.
  const config = modelPath ? { model: modelPath } : manifest.policy;
  const runtime = { threads: manifest.runtime.threads, device: manifest.runtime.device };
  const w = request.weights;
  // `tokenizer: "optional"` (sft on token ids): a directory without tokenizer files loads too.
  const tokenizer = request.tokenizer === "optional" ? "optional" : "required";
  // `session: "none"` (a training stage): the weights and tokenizer, no inference session.
  const weightsOnly = request.session === "none";
  if (w === undefined && !weightsOnly) {
    // Stages that ask for a session only generate and score: it takes the weights' memory.
    return await loadPolicy(config, {
      baseDir: input.baseDir,
      ...runtime,
      seed: manifest.seed,
      tokenizer,
      consumeWeights: true,
    });
  }
  const from = { baseDir: input.baseDir, seed: manifest.seed };
  if (w === undefined) {
    const loaded = tokenizer === "optional"
      ? await loadPolicyModel(config, { ...from, tokenizer })
      : await loadPolicyModel(config, from);
    return OnnxPolicy.weightsOnly(loaded.model, loaded.tokenizer);
  }
  // Checkpoint weights: the policy's architecture and tokenizer, not its own weights.
  const arch = await loadPolicyArchitecture(config, { ...from, tokenizer });
  const where = `checkpoint weights ${w.slice(0, 12)}`;
  const bytes = await input.store.getBytes(w);
  const weights = validateWeights(arch.config, parseSafetensors(bytes, where), where);
  const checkpoint = { config: arch.config, weights, digest: weightsDigest(arch.config, weights) };
  if (weightsOnly) return OnnxPolicy.weightsOnly(checkpoint, arch.tokenizer);
  return await OnnxPolicy.create(checkpoint, arch.tokenizer, {
    ...runtime,
    consumeWeights: true,
  });
};

/** The server backend: replaying the stage's recording when there is one, else connected. */
async function serverPolicy(config: PolicyServer, input: PolicyFactoryInput): Promise<Policy> {
  if (input.request.weights !== undefined) {
    throw new ArpoError(
      `policy.server: a stage asked for checkpoint weights ${
        input.request.weights.slice(0, 12)
      }, ` +
        `but an inference server serves fixed weights; serve the checkpoint (arpo serve RUN:STAGE) ` +
        `and point policy.server at it`,
    );
  }
  if (input.recorded) {
    const where = `recorded policy responses ${input.recorded.responses.slice(0, 12)}`;
    const files = await input.store.getJson<{ files: Record<string, string> }>(
      input.recorded.tokenizer,
    );
    const tokenizer = await tokenizerFromFiles(files.files);
    const rec = ResponseLog.parse(await input.store.getBytes(input.recorded.responses), where);
    return ServerPolicy.replay(config, tokenizer, rec);
  }
  const tokenizer = await serverTokenizer(config, input.baseDir, input.signal);
  return await ServerPolicy.connect({ config, tokenizer, signal: input.signal });
}

/** `policy.server.tokenizer`: `byte`, a directory (relative to the manifest), or the server's. */
async function serverTokenizer(
  config: PolicyServer,
  baseDir: string,
  signal: AbortSignal,
): Promise<Tokenizer> {
  const t = config.tokenizer;
  if (t === undefined) return await publishedTokenizer(config, { signal });
  if (t === "byte") return await loadTokenizer({});
  return await loadTokenizer(isAbsolute(t) ? t : resolve(baseDir, t));
}
