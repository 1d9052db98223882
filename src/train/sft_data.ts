/**
 * SFT training sequences from demonstrations and from the lines of an sft `data:` file.
 *
 * A demonstration's prompt is rendered exactly as rollouts render it (rollout/prompt.ts); the
 * response is tokenized piecewise so that each ` <result>…</result>` span (what the tool runtime
 * inserts during rollouts) is its own token run with loss mask 0; an EOS token is appended and
 * learned, so the policy learns to stop.
 *
 * A `data:` line is either a text conversation or token ids in the form Hugging Face tokenizers
 * and TRL produce (`input_ids`, with at most one of TRL's `completion_mask` / `assistant_masks`
 * or transformers' `labels`, -100 where not learned): token lines are trained exactly as given
 * (no template, no EOS appended), so they need no tokenizer.
 */
import { ArpoError } from "../errors.ts";
import type { ChatMessage, Demonstration, Task } from "../plugin/contracts.ts";
import type { TokenizerLike } from "../model/tokenizer.ts";
import { renderPrompt } from "../rollout/prompt.ts";
import type { TrainSequence } from "./batch.ts";

/** Tool results as the rollout engine inserts them (agent_loop.ts): masked out of the loss. */
const RESULT_SPAN = / ?<result>[\s\S]*?<\/result>/g;

export function demonstrationSequence(
  demo: Demonstration,
  tokenizer: TokenizerLike,
): TrainSequence {
  const task = { id: demo.taskId, prompt: demo.prompt, answers: [] } as unknown as Task;
  const prompt = renderPrompt(task, tokenizer).tokens;
  const tokens = [...prompt];
  const lossMask: number[] = prompt.map(() => 0);
  const push = (text: string, learn: number) => {
    if (!text) return;
    for (const t of tokenizer.encode(text)) {
      tokens.push(t);
      lossMask.push(learn);
    }
  };
  let last = 0;
  for (const m of demo.response.matchAll(RESULT_SPAN)) {
    push(demo.response.slice(last, m.index), 1);
    push(m[0], 0);
    last = m.index! + m[0].length;
  }
  push(demo.response.slice(last), 1);
  const eos = tokenizer.eosTokenIds[0];
  if (eos !== undefined) {
    tokens.push(eos);
    lossMask.push(1);
  }
  return { tokens, lossMask };
}

/** One line of an sft `data:` file (`line` counts from 1). */
export type SftRecord =
  | { kind: "text"; line: number; demonstration: Demonstration }
  | { kind: "tokens"; line: number; id: string; sequence: TrainSequence };

/** The per-token loss fields a token line may carry (at most one). */
export const TOKEN_MASK_FIELDS = ["completion_mask", "assistant_masks", "labels"] as const;

/** transformers' ignore index: a `labels` entry that is not learned. */
export const IGNORE_INDEX = -100;

const TEXT_FIELDS = ["prompt", "response", "messages"] as const;

/**
 * The lines of a JSONL file: conversations ({"prompt": string | messages, "response": string} or
 * {"messages": [...]} whose last message is the assistant's response) and token lines
 * ({"input_ids": [...]} with an optional mask field), in file order. Blank lines are skipped.
 *
 * @example
 * ```ts
 * const [r] = parseSftData('{"input_ids": [5, 6, 7], "completion_mask": [0, 1, 1]}', "d.jsonl");
 * // r.kind === "tokens", r.sequence.lossMask: [0, 1, 1]
 * ```
 */
export function parseSftData(text: string, where: string): SftRecord[] {
  const out: SftRecord[] = [];
  text.split("\n").forEach((raw, i) => {
    if (!raw.trim()) return;
    const line = i + 1;
    const at = `${where}:${line}`;
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw new ArpoError(`${at}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new ArpoError(
        `${at}: expected a JSON object with 'prompt' and 'response', 'messages', or 'input_ids'`,
      );
    }
    const id = typeof v.id === "string" ? v.id : `line-${line}`;
    if (v.input_ids !== undefined) {
      const text = TEXT_FIELDS.filter((k) => v[k] !== undefined);
      if (text.length) {
        throw new ArpoError(
          `${at}: a line holds token ids ('input_ids') or text (${
            text.map((k) => `'${k}'`).join(", ")
          }), not both`,
        );
      }
      out.push({ kind: "tokens", line, id, sequence: tokenSequence(v, at) });
      return;
    }
    out.push({ kind: "text", line, demonstration: conversation(v, id, at) });
  });
  if (!out.length) throw new ArpoError(`${where}: no conversations or token sequences`);
  return out;
}

function conversation(v: Record<string, unknown>, id: string, at: string): Demonstration {
  if (Array.isArray(v.messages)) {
    const msgs = v.messages as ChatMessage[];
    const lastMsg = msgs.at(-1);
    if (!lastMsg || lastMsg.role !== "assistant" || typeof lastMsg.content !== "string") {
      throw new ArpoError(`${at}: 'messages' must end with an assistant message (the response)`);
    }
    if (msgs.length < 2) {
      throw new ArpoError(`${at}: 'messages' needs a prompt before the response`);
    }
    return { taskId: id, prompt: msgs.slice(0, -1), response: lastMsg.content };
  }
  if (
    (typeof v.prompt !== "string" && !Array.isArray(v.prompt)) || typeof v.response !== "string"
  ) {
    throw new ArpoError(
      `${at}: expected 'prompt' (string or messages) and 'response' (string), 'messages', or ` +
        `token ids ('input_ids')`,
    );
  }
  return { taskId: id, prompt: v.prompt as string | ChatMessage[], response: v.response };
}

/** An array of integers, or an ArpoError naming the field and the first bad entry. */
function intArray(v: unknown, field: string, at: string): number[] {
  if (!Array.isArray(v)) throw new ArpoError(`${at}: '${field}' must be an array of integers`);
  v.forEach((x, i) => {
    if (!Number.isSafeInteger(x)) {
      throw new ArpoError(`${at}: ${field}[${i}] is ${JSON.stringify(x)}, not an integer`);
    }
  });
  return v as number[];
}

function tokenSequence(v: Record<string, unknown>, at: string): TrainSequence {
  const tokens = intArray(v.input_ids, "input_ids", at);
  const n = tokens.length;
  if (n < 2) {
    throw new ArpoError(
      `${at}: input_ids has ${n} token${n === 1 ? "" : "s"}; training needs at least 2 (each ` +
        `learned token is predicted from the ones before it)`,
    );
  }
  tokens.forEach((t, i) => {
    if (t < 0) throw new ArpoError(`${at}: input_ids[${i}] is ${t}, a token id must be ≥ 0`);
  });
  const sameLength = (xs: number[], field: string) => {
    if (xs.length !== n) {
      throw new ArpoError(
        `${at}: ${field} has ${xs.length} entries but input_ids has ${n}; they must align`,
      );
    }
  };
  if (v.attention_mask !== undefined) {
    const am = intArray(v.attention_mask, "attention_mask", at);
    sameLength(am, "attention_mask");
    const pad = am.findIndex((x) => x !== 1);
    if (pad >= 0) {
      throw new ArpoError(
        `${at}: attention_mask[${pad}] is ${am[pad]}: give sequences without padding (every ` +
          `attention_mask entry 1, or none); batches are padded when they are built`,
      );
    }
  }
  const given = TOKEN_MASK_FIELDS.filter((k) => v[k] !== undefined);
  if (given.length > 1) {
    throw new ArpoError(
      `${at}: give at most one of ${TOKEN_MASK_FIELDS.join(", ")}, found ${given.join(" and ")}`,
    );
  }
  const field = given[0];
  let lossMask: number[];
  if (field === undefined) {
    lossMask = tokens.map(() => 1); // language modelling: every token learned
  } else if (field === "labels") {
    const labels = intArray(v.labels, field, at);
    sameLength(labels, field);
    lossMask = labels.map((l, i) => {
      if (l === IGNORE_INDEX) return 0;
      if (l !== tokens[i]) {
        throw new ArpoError(
          `${at}: labels[${i}] is ${l} but input_ids[${i}] is ${tokens[i]}: labels are ` +
            `input_ids with ${IGNORE_INDEX} where a token is not learned (unshifted, as ` +
            `transformers takes them)`,
        );
      }
      return 1;
    });
  } else {
    lossMask = intArray(v[field], field, at);
    sameLength(lossMask, field);
    const bad = lossMask.findIndex((x) => x !== 0 && x !== 1);
    if (bad >= 0) {
      throw new ArpoError(`${at}: ${field}[${bad}] is ${lossMask[bad]}; entries must be 0 or 1`);
    }
  }
  if (!lossMask.some((x, i) => i > 0 && x === 1)) {
    throw new ArpoError(
      `${at}: no token after the first is learned (${field ?? "input_ids"} leaves nothing to ` +
        `train on; the first token has no prefix to be predicted from)`,
    );
  }
  return { tokens, lossMask };
}

/** What a token line must fit: the model's id range and context length. */
export interface TokenBounds {
  vocabSize: number;
  maxPositions: number;
}

/**
 * Check token lines against the model: ids below `vocabSize`, lengths within `maxPositions`;
 * an ArpoError naming the file, line and field of the first that does not fit.
 *
 * @example
 * ```ts
 * const rs = parseSftData('{"input_ids": [1, 2]}', "d.jsonl");
 * checkTokenRecords(rs, { vocabSize: 8, maxPositions: 16 }, "d.jsonl"); // fits
 * ```
 */
export function checkTokenRecords(
  records: readonly SftRecord[],
  bounds: TokenBounds,
  where: string,
): void {
  for (const r of records) {
    if (r.kind !== "tokens") continue;
    const at = `${where}:${r.line}`;
    const ids = r.sequence.tokens;
    if (ids.length > bounds.maxPositions) {
      throw new ArpoError(
        `${at}: input_ids has ${ids.length} tokens, more than the model's ` +
          `${bounds.maxPositions} positions (max_position_embeddings in config.json); split or ` +
          `truncate the sequence`,
      );
    }
    const i = ids.findIndex((t) => t >= bounds.vocabSize);
    if (i >= 0) {
      throw new ArpoError(
        `${at}: input_ids[${i}] is ${ids[i]}, outside the model's vocabulary (vocab_size ` +
          `${bounds.vocabSize}: ids 0–${bounds.vocabSize - 1}); were the ids made with another ` +
          `model's tokenizer?`,
      );
    }
  }
}
