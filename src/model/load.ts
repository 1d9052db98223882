/**
 * Model directories (Hugging Face layout) and models initialized here, both as one in-memory
 * `DecoderModel`: parsed config, validated F32 weights under HF names, and a digest.
 */
import { join } from "node:path";
import { ArpoError, describeError } from "../errors.ts";
import { type DecoderConfig, parseHfConfig, toHfConfig } from "./config.ts";
import {
  defaultReadFile,
  type ReadFile,
  readModelWeights,
  serializeSafetensors,
  type TensorMap,
} from "./safetensors.ts";
import { checkMemory } from "./memory.ts";
import { initWeights, validateWeights, weightsDigest } from "./weights.ts";

export interface DecoderModel {
  config: DecoderConfig;
  weights: TensorMap;
  /** sha256 over config and weights. */
  digest: string;
  /** The directory it came from, if any. */
  dir?: string;
}

export const MODEL_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json"] as const;

/** Whether a model directory has a tokenizer (tokenizer.json); token-id commands need none. */
export function hasTokenizer(dir: string): Promise<boolean> {
  return isFile(join(dir, "tokenizer.json"));
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/**
 * Check that a directory has what a model needs: config.json, weights (model.safetensors or an
 * index), and, unless `requireTokenizer` is false, tokenizer.json and tokenizer_config.json.
 */
export async function checkModelDir(dir: string, requireTokenizer = true): Promise<void> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(dir);
  } catch {
    throw new ArpoError(`model directory ${dir} does not exist`);
  }
  if (!st.isDirectory) throw new ArpoError(`model path ${dir} is not a directory`);
  const need = requireTokenizer ? MODEL_FILES : (["config.json"] as const);
  const missing: string[] = [];
  for (const f of need) if (!(await isFile(join(dir, f)))) missing.push(f);
  if (
    !(await isFile(join(dir, "model.safetensors"))) &&
    !(await isFile(join(dir, "model.safetensors.index.json")))
  ) missing.push("model.safetensors (or model.safetensors.index.json)");
  if (missing.length) {
    throw new ArpoError(
      `model directory ${dir} is missing ${missing.join(", ")}: a model directory needs ` +
        `config.json and model.safetensors${
          requireTokenizer ? ", tokenizer.json and tokenizer_config.json" : ""
        }`,
    );
  }
}

/** Check a model directory (checkModelDir) and read its config.json; no weights are read. */
export async function readModelConfig(
  dir: string,
  opts: { readFile?: ReadFile; requireTokenizer?: boolean } = {},
): Promise<DecoderConfig> {
  const readFile = opts.readFile ?? defaultReadFile;
  await checkModelDir(dir, opts.requireTokenizer ?? true);
  const cfgPath = join(dir, "config.json");
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(await readFile(cfgPath)));
  } catch (e) {
    if (e instanceof ArpoError) throw e;
    throw new ArpoError(`${cfgPath} is not valid JSON: ${describeError(e)}`, { cause: e });
  }
  return parseHfConfig(raw, cfgPath);
}

/**
 * Read config.json + weights of a model directory (the tokenizer is loaded separately); with
 * `config`, the directory was checked and its config read already (readModelConfig).
 */
export async function loadModelDir(
  dir: string,
  opts: {
    readFile?: ReadFile;
    requireTokenizer?: boolean;
    config?: DecoderConfig;
    /** The weights go to a session that consumes them: the memory check's estimate (memory.ts). */
    consumeWeights?: boolean;
  } = {},
): Promise<DecoderModel> {
  const readFile = opts.readFile ?? defaultReadFile;
  const config = opts.config ?? await readModelConfig(dir, opts);
  // Before minutes of reading weights that cannot fit.
  await checkMemory(dir, undefined, opts.consumeWeights ? "consumed" : "kept");
  const tensors = await readModelWeights(dir, readFile);
  const weights = validateWeights(config, tensors, `${dir} (weights vs config.json)`);
  return { config, weights, digest: weightsDigest(config, weights), dir };
}

/** A fresh model with seeded random weights. */
export function initModel(config: DecoderConfig, seed: number | string): DecoderModel {
  const weights = initWeights(config, seed);
  return { config, weights, digest: weightsDigest(config, weights) };
}

/** Write config.json and model.safetensors (F32) into `dir` (tokenizer files are separate). */
export async function saveModel(model: DecoderModel, dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    join(dir, "config.json"),
    JSON.stringify(toHfConfig(model.config), null, 2) + "\n",
  );
  await Deno.writeFile(
    join(dir, "model.safetensors"),
    serializeSafetensors(model.weights, { format: "pt" }),
  );
}
