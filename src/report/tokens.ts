/**
 * The tokenizer of a run's policy, for per-token views (`arpo samples --tokens`, the report's
 * token view): the byte tokenizer of a model initialized here, or the tokenizer files archived
 * with the run's model. A policy served elsewhere has none here: undefined.
 */
import { join } from "node:path";
import type { Json } from "../store/canonical.ts";
import type { RunRecord } from "../store/records.ts";
import type { Store } from "../store/store.ts";
import { loadTokenizer, type Tokenizer } from "../model/tokenizer.ts";
import { initTokenizer } from "../policy/load.ts";
import type { TokenTexts } from "./samples.ts";

const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "generation_config.json",
  "chat_template.jinja",
];

export async function runTokenizer(store: Store, rec: RunRecord): Promise<Tokenizer | undefined> {
  const m = rec.identity.manifest as Record<string, Json>;
  const policy = (m?.policy ?? { init: {} }) as Record<string, Json>;
  if (policy.init !== undefined && policy.init !== null || Object.keys(policy).length === 0) {
    return await initTokenizer({ words: (policy.init as { words?: string[] } | null)?.words });
  }
  const files = rec.modelFiles ?? {};
  if (!files["tokenizer.json"]) return undefined;
  const dir = await Deno.makeTempDir({ prefix: "arpo-tok-" });
  try {
    for (const f of TOKENIZER_FILES) {
      if (files[f]) {
        await Deno.writeFile(join(dir, f), await store.getBytes(files[f], `model file ${f}`));
      }
    }
    return await loadTokenizer(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Per-token texts through a streaming decoder (a multi-byte character lands on its last token). */
export function tokenTexts(tokenizer: Tokenizer): TokenTexts {
  return (ids) => {
    const dec = tokenizer.streamDecoder();
    const out = ids.map((id) => (id < tokenizer.vocabSize ? dec.push(id) : `[${id}]`));
    const rest = dec.flush();
    if (rest && out.length) out[out.length - 1] += rest;
    return out;
  };
}
