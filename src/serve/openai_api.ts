/**
 * The vLLM-compatible HTTP subset `arpo serve` answers, as one request handler:
 *
 * - `GET /health` (200 when up), `GET /v1/models` (the one served model; an `arpo` field adds the
 *   weights digest and the model's vocabulary size),
 * - `POST /v1/completions`: `prompt` as text or token ids, `max_tokens`, `temperature`, `top_p`,
 *   `top_k`, `seed`, `stop`, `stop_token_ids`, `n`, `logprobs` (≤ `maxLogprobs`, like vLLM's
 *   `--max-logprobs`), `include_stop_str_in_output`, `return_token_ids`,
 *   `return_tokens_as_token_ids`; answered in vLLM's format, plus `entropies` per choice (exact,
 *   full vocabulary: what the server policy uses instead of the top-k estimate),
 * - `POST /v1/chat/completions` (the model's chat template; `logprobs` / `top_logprobs`),
 * - `POST /tokenize`, `POST /detokenize` (vLLM's), `GET /arpo/tokenizer` (the tokenizer files).
 *
 * Unsupported options (`stream`, `echo`, `best_of`, beam search) are a 400 naming them.
 */
import type { GeneratedToken, GenerateResult, SamplingParams } from "../policy/types.ts";
import type { Tokenizer } from "../model/tokenizer.ts";
import type { ChatMessage } from "../plugin/contracts.ts";
import type { Batcher, Job } from "./batcher.ts";

export interface Served {
  /** The model name clients use. */
  name: string;
  tokenizer: Tokenizer;
  /** Weights digest. */
  digest: string;
  vocabSize: number;
  maxModelLen: number;
  /** Most top log-probabilities a request may ask for (vLLM's --max-logprobs default, 20). */
  maxLogprobs: number;
}

class BadRequest extends Error {}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

function error(status: number, message: string): Response {
  const type = status === 404
    ? "NotFoundError"
    : status === 400
    ? "BadRequestError"
    : "InternalServerError";
  return json(status, {
    error: { message, type, code: status },
    object: "error",
    message,
    type,
    code: status,
  });
}

/** A request handler over `batcher` serving `served`. */
export function openaiHandler(
  served: Served,
  batcher: Batcher,
): (req: Request) => Promise<Response> {
  let counter = 0;
  return async (req) => {
    const path = new URL(req.url).pathname.replace(/\/+$/, "");
    try {
      if (req.method === "GET" && path === "/health") return new Response(null, { status: 200 });
      if (req.method === "GET" && path === "/v1/models") return json(200, models(served));
      if (req.method === "GET" && path === "/arpo/tokenizer") {
        return json(200, { kind: served.tokenizer.kind, files: served.tokenizer.files() });
      }
      if (req.method !== "POST") return error(404, `no route ${req.method} ${path}`);
      const body = await readBody(req);
      const n = ++counter;
      switch (path) {
        case "/tokenize":
          return json(200, tokenize(served, body));
        case "/detokenize":
          return json(200, { prompt: served.tokenizer.decode(ids(body.tokens, "tokens", served)) });
        case "/v1/completions":
          return json(200, await completions(served, batcher, body, n));
        case "/v1/chat/completions":
          return json(200, await chat(served, batcher, body, n));
      }
      return error(404, `no route POST ${path}`);
    } catch (e) {
      if (e instanceof BadRequest) return error(400, e.message);
      return error(500, e instanceof Error ? e.message : String(e));
    }
  };
}

function models(s: Served) {
  return {
    object: "list",
    data: [{
      id: s.name,
      object: "model",
      created: 0,
      owned_by: "arpo-lab",
      root: s.name,
      max_model_len: s.maxModelLen,
      arpo: { digest: s.digest, vocab_size: s.vocabSize },
    }],
  };
}

async function readBody(req: Request): Promise<Record<string, unknown>> {
  let v: unknown;
  try {
    v = await req.json();
  } catch {
    throw new BadRequest("the request body is not JSON");
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new BadRequest("the request body must be a JSON object");
  }
  return v as Record<string, unknown>;
}

function ids(v: unknown, what: string, s: Served): number[] {
  if (!Array.isArray(v) || v.some((t) => !Number.isInteger(t) || t < 0 || t >= s.vocabSize)) {
    throw new BadRequest(`'${what}' must be a list of token ids in [0, ${s.vocabSize})`);
  }
  return v as number[];
}

function tokenize(s: Served, body: Record<string, unknown>) {
  let tokens: number[];
  if (typeof body.prompt === "string") {
    // The tokenizer's default, as vLLM's /tokenize (transformers: added tokens recognized).
    tokens = s.tokenizer.encode(body.prompt);
    if (body.add_special_tokens === true && s.tokenizer.bosTokenId !== undefined) {
      tokens = [s.tokenizer.bosTokenId, ...tokens];
    }
  } else if (Array.isArray(body.messages)) {
    tokens = s.tokenizer.encode(chatPrompt(s, body.messages), { specials: true });
  } else throw new BadRequest("'prompt' (a string) or 'messages' is required");
  return { count: tokens.length, max_model_len: s.maxModelLen, tokens };
}

function numberOr(v: unknown, name: string, dflt: number, min = -Infinity, max = Infinity): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    throw new BadRequest(
      `'${name}' must be a number in [${min}, ${max}], found ${JSON.stringify(v)}`,
    );
  }
  return v;
}

function intOr(v: unknown, name: string, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER) {
  const x = numberOr(v, name, dflt, min, max);
  if (!Number.isInteger(x)) throw new BadRequest(`'${name}' must be an integer, found ${x}`);
  return x;
}

function stops(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  throw new BadRequest("'stop' must be a string or a list of strings");
}

function refuse(body: Record<string, unknown>, keys: string[]): void {
  for (const k of keys) {
    const v = body[k];
    if (v !== undefined && v !== null && v !== false && v !== 1) {
      throw new BadRequest(`'${k}' is not supported by arpo serve`);
    }
  }
}

/** Sampling fields shared by both endpoints. */
function jobOf(
  s: Served,
  body: Record<string, unknown>,
  prompt: number[],
  topLogprobs: number,
  seed: number | string,
): Job {
  const temperature = numberOr(body.temperature, "temperature", 1, 0, 100);
  const topK = intOr(body.top_k, "top_k", -1, -1);
  const params: SamplingParams = {
    temperature,
    topP: numberOr(body.top_p, "top_p", 1, 0, 1),
    topK: topK < 0 ? 0 : topK,
  };
  const left = s.maxModelLen - prompt.length;
  if (left < 1) {
    throw new BadRequest(
      `the prompt has ${prompt.length} tokens; this model's maximum context length is ` +
        `${s.maxModelLen}`,
    );
  }
  const maxTokens = intOr(body.max_tokens ?? body.max_completion_tokens, "max_tokens", 16, 1);
  const stopIds = body.stop_token_ids === undefined || body.stop_token_ids === null
    ? []
    : ids(body.stop_token_ids, "stop_token_ids", s);
  return {
    prompt,
    params,
    maxTokens: Math.min(maxTokens, left),
    stopStrings: stops(body.stop),
    stopTokenIds: stopIds,
    topLogprobs,
    seed,
  };
}

/** The request's seed key: its `seed`, else a per-server counter (different draws per request). */
function seedOf(body: Record<string, unknown>, n: number, i: number): number | string {
  if (body.seed === undefined || body.seed === null) return `request-${n}-${i}`;
  return `${intOr(body.seed, "seed", 0, Number.MIN_SAFE_INTEGER)}-${i}`;
}

/** vLLM caps log-probs at -9999 (JSON has no -Infinity). */
function lp(x: number): number {
  return Number.isFinite(x) ? Math.max(x, -9999) : -9999;
}

/** Where generation ends in the text (the stop string cut unless asked to keep it). */
function outputText(s: Served, r: GenerateResult, keepStop: boolean): string {
  const text = s.tokenizer.decode(
    r.tokens.map((t) => t.id).filter((t) => t < s.tokenizer.vocabSize),
  );
  if (r.stop.reason !== "string" || keepStop) return text;
  const at = text.indexOf(r.stop.text);
  return at >= 0 ? text.slice(0, at) : text;
}

function finish(r: GenerateResult): { finish_reason: string; stop_reason: string | number | null } {
  if (r.stop.reason === "length") return { finish_reason: "length", stop_reason: null };
  if (r.stop.reason === "string") return { finish_reason: "stop", stop_reason: r.stop.text };
  return { finish_reason: "stop", stop_reason: r.stop.tokenId };
}

function tokenText(s: Served, id: number, asIds: boolean): string {
  return asIds ? `token_id:${id}` : id < s.tokenizer.vocabSize ? s.tokenizer.decode([id]) : "";
}

async function completions(
  s: Served,
  batcher: Batcher,
  body: Record<string, unknown>,
  n: number,
) {
  refuse(body, ["stream", "echo", "best_of", "use_beam_search", "suffix", "logit_bias"]);
  if (body.model !== undefined && body.model !== s.name) {
    throw new BadRequest(
      `model '${String(body.model)}' is not served (this server serves '${s.name}')`,
    );
  }
  let prompt: number[];
  let p = body.prompt;
  if (Array.isArray(p) && p.length === 1 && (Array.isArray(p[0]) || typeof p[0] === "string")) {
    p = p[0];
  }
  if (typeof p === "string") prompt = s.tokenizer.encode(p, { specials: true });
  else if (Array.isArray(p)) prompt = ids(p, "prompt", s);
  else throw new BadRequest("'prompt' must be a string or a list of token ids (one prompt)");
  if (prompt.length === 0) throw new BadRequest("'prompt' is empty");
  const k = body.logprobs === undefined || body.logprobs === null
    ? -1
    : intOr(body.logprobs, "logprobs", 0, 0, s.maxLogprobs);
  const count = intOr(body.n, "n", 1, 1, 16);
  const asIds = body.return_tokens_as_token_ids === true;
  const keepStop = body.include_stop_str_in_output === true;
  const results = await Promise.all(
    Array.from(
      { length: count },
      (_, i) => batcher.submit(jobOf(s, body, prompt, Math.max(k, 0), seedOf(body, n, i))),
    ),
  );
  let completion = 0;
  const choices = results.map((r, i) => {
    completion += r.tokens.length;
    const choice: Record<string, unknown> = {
      index: i,
      text: outputText(s, r, keepStop),
      logprobs: k >= 0 ? completionLogprobs(s, r.tokens, asIds) : null,
      ...finish(r),
      entropies: r.tokens.map((t) => t.entropy),
    };
    if (body.return_token_ids === true) {
      choice.token_ids = r.tokens.map((t) => t.id);
      choice.prompt_token_ids = prompt;
    }
    return choice;
  });
  return {
    ...envelope(`cmpl-${n}`, "text_completion", s, prompt.length * count, completion),
    choices,
  };
}

/**
 * The fields every OpenAI response carries. `created` is the protocol's wall-clock stamp: it goes
 * to the client only, never into an artefact (the backend records tokens, not responses' times).
 */
function envelope(id: string, object: string, s: Served, promptTokens: number, completion: number) {
  return {
    id,
    object,
    created: Math.floor(Date.now() / 1000),
    model: s.name,
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completion,
      total_tokens: promptTokens + completion,
    },
  };
}

/** vLLM's completions logprobs: top entries plus the sampled token. */
function completionLogprobs(s: Served, tokens: readonly GeneratedToken[], asIds: boolean) {
  const out = {
    tokens: [] as string[],
    token_logprobs: [] as number[],
    top_logprobs: [] as Record<string, number>[],
    text_offset: [] as number[],
  };
  let offset = 0;
  for (const t of tokens) {
    const text = tokenText(s, t.id, asIds);
    out.tokens.push(text);
    out.token_logprobs.push(lp(t.logprob));
    const top: Record<string, number> = { [text]: lp(t.logprob) };
    for (const [id, v] of t.top ?? []) top[tokenText(s, id, asIds)] = lp(v);
    out.top_logprobs.push(top);
    out.text_offset.push(offset);
    offset += text.length;
  }
  return out;
}

function chatPrompt(s: Served, messages: unknown[]): string {
  const apply = s.tokenizer.applyChatTemplate;
  if (!apply) throw new BadRequest("the served model has no chat template; use /v1/completions");
  const msgs = messages.map((m, i) => {
    const o = m as { role?: unknown; content?: unknown };
    if (typeof o?.role !== "string" || typeof o.content !== "string") {
      throw new BadRequest(`messages[${i}] needs a string 'role' and 'content'`);
    }
    return { role: o.role, content: o.content } as ChatMessage;
  });
  return apply.call(s.tokenizer, msgs, true);
}

async function chat(s: Served, batcher: Batcher, body: Record<string, unknown>, n: number) {
  refuse(body, ["stream", "tools", "functions", "logit_bias", "response_format"]);
  if (body.model !== undefined && body.model !== s.name) {
    throw new BadRequest(
      `model '${String(body.model)}' is not served (this server serves '${s.name}')`,
    );
  }
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    throw new BadRequest("'messages' must be a non-empty list");
  }
  const prompt = s.tokenizer.encode(chatPrompt(s, body.messages), { specials: true });
  const want = body.logprobs === true;
  const k = want ? intOr(body.top_logprobs, "top_logprobs", 0, 0, s.maxLogprobs) : 0;
  const count = intOr(body.n, "n", 1, 1, 16);
  const results = await Promise.all(
    Array.from(
      { length: count },
      (_, i) => batcher.submit(jobOf(s, body, prompt, k, seedOf(body, n, i))),
    ),
  );
  let completion = 0;
  const enc = new TextEncoder();
  const choices = results.map((r, i) => {
    completion += r.tokens.length;
    const content = want
      ? r.tokens.map((t) => {
        const token = tokenText(s, t.id, false);
        return {
          token,
          logprob: lp(t.logprob),
          bytes: [...enc.encode(token)],
          top_logprobs: (t.top ?? []).map(([id, v]) => {
            const tt = tokenText(s, id, false);
            return { token: tt, logprob: lp(v), bytes: [...enc.encode(tt)] };
          }),
        };
      })
      : undefined;
    return {
      index: i,
      message: { role: "assistant", content: outputText(s, r, false) },
      logprobs: content ? { content } : null,
      finish_reason: finish(r).finish_reason,
      stop_reason: finish(r).stop_reason,
      entropies: r.tokens.map((t) => t.entropy),
    };
  });
  return {
    ...envelope(`chatcmpl-${n}`, "chat.completion", s, prompt.length * count, completion),
    choices,
  };
}
