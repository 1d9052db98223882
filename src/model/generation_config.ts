/**
 * generation_config.json of a model directory: the EOS ids and the default sampling settings its
 * authors ship (Hugging Face's `GenerationConfig` fields that arpo uses).
 */
import { join } from "node:path";
import { ArpoError } from "../errors.ts";
import { GENERATION_CONFIG_FILE, parseJsonObject } from "./tokenizer.ts";

export interface GenerationDefaults {
  /** `eos_token_id`, a number or a list. */
  eosTokenIds?: number[];
  /** 0 unless `do_sample` is true (greedy, as transformers), else `temperature` (default 1). */
  temperature?: number;
  topP?: number;
  /** 0: no top-k cut. */
  topK?: number;
  maxNewTokens?: number;
}

function field(obj: Record<string, unknown>, key: string, path: string, int = false) {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || (int && !Number.isInteger(v)) || v < 0) {
    throw new ArpoError(
      `${path}: '${key}' must be a non-negative ${int ? "integer" : "number"}, found ` +
        JSON.stringify(v),
    );
  }
  return v;
}

/** The defaults of `dir`'s generation_config.json; `{}` when it has none. */
export async function readGenerationConfig(dir: string): Promise<GenerationDefaults> {
  const path = join(dir, GENERATION_CONFIG_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw new ArpoError(`${path}: cannot be read (${(e as Error).message})`);
  }
  const g = parseJsonObject(text, path);
  const out: GenerationDefaults = {};
  const eos = g.eos_token_id;
  if (eos !== undefined && eos !== null) {
    const ids = Array.isArray(eos) ? eos : [eos];
    if (!ids.every((x) => Number.isInteger(x) && x >= 0)) {
      throw new ArpoError(`${path}: 'eos_token_id' must be an id or a list of ids`);
    }
    out.eosTokenIds = ids as number[];
  }
  const sample = g.do_sample;
  if (sample !== undefined && typeof sample !== "boolean") {
    throw new ArpoError(`${path}: 'do_sample' must be true or false`);
  }
  // As in transformers: without `do_sample: true` generation is greedy.
  out.temperature = sample === true ? field(g, "temperature", path) ?? 1 : 0;
  if (sample === true) {
    out.topP = field(g, "top_p", path);
    out.topK = field(g, "top_k", path, true);
  }
  out.maxNewTokens = field(g, "max_new_tokens", path, true);
  return out;
}
