/**
 * Demonstrations → SFT training sequences. The prompt is rendered exactly as rollouts render it
 * (rollout/prompt.ts); the response is tokenized piecewise so that each ` <result>…</result>` span
 * (what the tool runtime inserts during rollouts) is its own token run with loss mask 0; an EOS
 * token is appended and learned, so the policy learns to stop.
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

/**
 * A JSONL file of conversations: each line either {"prompt": string | messages, "response":
 * string} or {"messages": [...]} whose last message is the assistant's response.
 */
export function parseConversations(text: string, where: string): Demonstration[] {
  const out: Demonstration[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const at = `${where}:${i + 1}`;
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new ArpoError(`${at}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new ArpoError(
        `${at}: expected a JSON object with 'prompt' and 'response' or 'messages'`,
      );
    }
    const id = typeof v.id === "string" ? v.id : `line-${i + 1}`;
    if (Array.isArray(v.messages)) {
      const msgs = v.messages as ChatMessage[];
      const lastMsg = msgs.at(-1);
      if (!lastMsg || lastMsg.role !== "assistant" || typeof lastMsg.content !== "string") {
        throw new ArpoError(`${at}: 'messages' must end with an assistant message (the response)`);
      }
      if (msgs.length < 2) {
        throw new ArpoError(`${at}: 'messages' needs a prompt before the response`);
      }
      out.push({ taskId: id, prompt: msgs.slice(0, -1), response: lastMsg.content });
      return;
    }
    if (
      (typeof v.prompt !== "string" && !Array.isArray(v.prompt)) || typeof v.response !== "string"
    ) {
      throw new ArpoError(
        `${at}: expected 'prompt' (string or messages) and 'response' (string), or 'messages'`,
      );
    }
    out.push({ taskId: id, prompt: v.prompt as string | ChatMessage[], response: v.response });
  });
  if (!out.length) throw new ArpoError(`${where}: no conversations`);
  return out;
}
