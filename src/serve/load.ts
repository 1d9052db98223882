/**
 * What `arpo serve` serves: a Hugging Face layout model directory, or the weights a stage of a run
 * in the store produced (`RUN:STAGE`, RUN a unique run-id prefix), built exactly as the run's own
 * stages would build it (run/policy.ts: the run's archived model or `init:` config, its seed, and
 * the checkpoint's weights).
 */
import { resolve } from "node:path";
import { ArpoError } from "../errors.ts";
import type { ResolvedManifest } from "../manifest/mod.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import type { Device } from "../onnx/session.ts";
import { loadPolicy } from "../policy/load.ts";
import type { OnnxPolicy } from "../policy/onnx_policy.ts";
import { materializeModel } from "../run/model.ts";
import { defaultPolicyFactory } from "../run/policy.ts";
import { stageStore } from "../run/stage_store.ts";
import { readRecord, resolveRunId } from "../store/records.ts";
import type { Store } from "../store/store.ts";

export interface LoadedTarget {
  policy: OnnxPolicy;
  tokenizer: Tokenizer;
  /** Default served model name. */
  name: string;
  maxModelLen: number;
}

/** `RUN:STAGE` (a run-id prefix, a stage name), or undefined for a directory. */
export function parseTarget(target: string): { run: string; stage: string } | undefined {
  const m = /^([0-9a-f]{1,64}):([A-Za-z0-9_-]+)$/i.exec(target);
  return m ? { run: m[1], stage: m[2] } : undefined;
}

export async function loadTarget(
  target: string,
  opts: { store: Store; threads?: number; device?: Device; signal?: AbortSignal },
): Promise<LoadedTarget> {
  const rs = parseTarget(target);
  let policy;
  let name: string;
  if (rs === undefined) {
    const dir = resolve(target);
    try {
      await Deno.stat(dir);
    } catch {
      throw new ArpoError(
        `serve: '${target}' is neither a model directory nor RUN:STAGE (a run id prefix and a ` +
          `stage name, e.g. 3fa2c1:rl)`,
      );
    }
    policy = await loadPolicy({ model: dir }, {
      baseDir: Deno.cwd(),
      threads: opts.threads,
      device: opts.device,
      consumeWeights: true,
    });
    name = dir.split("/").filter(Boolean).at(-1) ?? "model";
  } else {
    const id = await resolveRunId(opts.store, rs.run);
    const rec = await readRecord(opts.store, id);
    const st = rec.stages[rs.stage];
    if (!st) {
      throw new ArpoError(
        `serve: run ${id.slice(0, 12)} has no stage '${rs.stage}' (its stages: ` +
          `${Object.keys(rec.stages).join(", ") || "none"})`,
      );
    }
    const weights = st.outputs.weights;
    if (weights === undefined) {
      throw new ArpoError(
        `serve: stage '${rs.stage}' (${st.kind}) of run ${id.slice(0, 12)} produced no weights ` +
          `(outputs: ${Object.keys(st.outputs).join(", ") || "none"}); serve a stage that trains ` +
          `(sft, rl)`,
      );
    }
    const manifest = rec.identity.manifest as unknown as ResolvedManifest;
    if ("server" in manifest.policy) {
      throw new ArpoError(`serve: run ${id.slice(0, 12)} used a server policy; it has no model`);
    }
    const modelPath = rec.modelFiles
      ? await materializeModel(opts.store, rec.modelFiles)
      : undefined;
    const runtime = {
      ...manifest.runtime,
      threads: opts.threads ?? manifest.runtime.threads,
      device: opts.device ?? manifest.runtime.device,
    };
    const label = `run ${id.slice(0, 12)}, stage '${rs.stage}'`;
    policy = await defaultPolicyFactory({
      manifest: { ...manifest, runtime },
      baseDir: rec.baseDir,
      modelPath,
      request: { weights },
      store: stageStore(opts.store, label),
      signal: opts.signal ?? new AbortController().signal,
    }) as OnnxPolicy;
    name = `${id.slice(0, 12)}:${rs.stage}`;
  }
  const tokenizer = policy.tokenizer as Tokenizer;
  return {
    policy,
    tokenizer,
    name,
    maxModelLen: policy.model.config.maxPositionEmbeddings,
  };
}
