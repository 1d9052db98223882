/**
 * The wire formats of OpenAI-compatible inference servers, token in / token out: building one
 * generation request per sequence in each dialect, and parsing what comes back into token ids
 * with log-probabilities. Pure functions (no I/O), so the formats are tested against fixtures
 * transcribed from the servers' documented protocols (tests/fixtures/servers/).
 *
 * - `vllm`: POST /v1/completions with `prompt` as token ids, `logprobs: k`, and vLLM's extras:
 *   `return_token_ids` (ids in `choices[].token_ids`), `return_tokens_as_token_ids` (tokens as
 *   `"token_id:{id}"` strings in the logprobs), `include_stop_str_in_output`, `top_k`,
 *   `stop_token_ids`, `skip_special_tokens: false`. vLLM's `logprobs.top_logprobs[i]` holds the
 *   top k plus the sampled token (k + 1 entries when it is not among them); log-probs are clamped
 *   at -9999. `arpo serve` speaks this dialect and adds `entropies` (exact, full vocabulary).
 * - `sglang`: POST /generate with `input_ids`, `sampling_params` (`max_new_tokens`, `stop`,
 *   `stop_token_ids`, `no_stop_trim`, `sampling_seed`), `return_logprob`, `top_logprobs_num`;
 *   the answer's `meta_info.output_token_logprobs` is `[[logprob, id, text|null], …]`,
 *   `output_top_logprobs` `[[[logprob, id, text|null], …], …]`, `finish_reason`
 *   `{type: "stop"|"length", matched?}`.
 * - `openai`: the plain OpenAI completions fields only; ids come from `token_ids`, from
 *   `"token_id:N"` tokens, or from the tokenizer's vocabulary when a token string is one of its
 *   entries (anything else is an error: token-exact rollouts need ids).
 */
import { ArpoError } from "../errors.ts";

/** Request dialect: vLLM (also `arpo serve`), SGLang's native /generate, plain OpenAI. */
export type ServerApi = "vllm" | "sglang" | "openai";

/** One generation request, dialect-free. */
export interface CompletionAsk {
  /** The served model name. */
  model: string;
  /** The whole sequence so far, as token ids. */
  prompt: readonly number[];
  /** Most tokens to generate. */
  maxTokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** 1 = off. */
  topP: number;
  /** 0 = off. */
  topK: number;
  /** The request's sampling seed. */
  seed: number;
  /** Stop strings (kept in the output). */
  stop: readonly string[];
  /** Stop token ids (EOS included). */
  stopTokenIds: readonly number[];
  /** Top log-probabilities per position (0: only the sampled token's). */
  topLogprobs: number;
}

/** One parsed position. */
export interface ParsedToken {
  /** The token id. */
  id: number;
  /** Its log-probability under the server's sampling distribution. */
  logprob: number;
  /** The top entries (id, logprob), most probable first, at most the k asked for. */
  top?: [number, number][];
  /** Exact full-vocabulary entropy, when the server returns it (`arpo serve`). */
  entropy?: number;
}

/** A parsed generation answer. */
export interface ParsedCompletion {
  /** The generated positions, in order. */
  tokens: ParsedToken[];
  /** Why the server stopped. */
  finish: "stop" | "length" | "other";
  /** What stop matched, when the server says (a stop string, or a token id). */
  matched?: string | number;
}

/**
 * The HTTP request (path and JSON body) of `ask` in dialect `api`.
 *
 * @example A vLLM request for token ids, with top-5 log-probabilities
 * ```ts
 * import { completionRequest } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const { path, body } = completionRequest("vllm", {
 *   model: "qwen", prompt: [1, 2, 3], maxTokens: 8, temperature: 0, topP: 1, topK: 0,
 *   seed: 7, stop: ["</python>"], stopTokenIds: [0], topLogprobs: 5,
 * });
 * assert.equal(path, "/v1/completions");
 * assert.deepEqual(body.prompt, [1, 2, 3]);
 * assert.equal(body.return_tokens_as_token_ids, true);
 * ```
 */
export function completionRequest(
  api: ServerApi,
  ask: CompletionAsk,
): { path: string; body: Record<string, unknown> } {
  if (api === "sglang") {
    const sampling: Record<string, unknown> = {
      max_new_tokens: ask.maxTokens,
      temperature: ask.temperature,
      top_p: ask.topP,
      top_k: ask.topK > 0 ? ask.topK : -1,
      stop: [...ask.stop],
      stop_token_ids: [...ask.stopTokenIds],
      // Keep the stop string in the output: the engine's tokens are the sequence's tokens.
      no_stop_trim: true,
      skip_special_tokens: false,
      spaces_between_special_tokens: false,
      sampling_seed: ask.seed,
    };
    return {
      path: "/generate",
      body: {
        input_ids: [...ask.prompt],
        sampling_params: sampling,
        return_logprob: true,
        top_logprobs_num: ask.topLogprobs,
      },
    };
  }
  const body: Record<string, unknown> = {
    model: ask.model,
    prompt: [...ask.prompt],
    max_tokens: ask.maxTokens,
    temperature: ask.temperature,
    top_p: ask.topP,
    seed: ask.seed,
    logprobs: ask.topLogprobs,
    n: 1,
    stream: false,
  };
  if (ask.stop.length) body.stop = [...ask.stop];
  if (api === "vllm") {
    body.top_k = ask.topK > 0 ? ask.topK : -1;
    body.stop_token_ids = [...ask.stopTokenIds];
    body.include_stop_str_in_output = true;
    body.skip_special_tokens = false;
    body.spaces_between_special_tokens = false;
    body.return_tokens_as_token_ids = true;
    body.return_token_ids = true;
  }
  return { path: "/v1/completions", body };
}

const TOKEN_ID_RE = /^token_id:(\d+)$/;

/**
 * The id of a `"token_id:123"` string (vLLM's `return_tokens_as_token_ids`), else undefined.
 *
 * @example
 * ```ts
 * import { tokenIdOf } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(tokenIdOf("token_id:151645"), 151645);
 * assert.equal(tokenIdOf("hello"), undefined);
 * ```
 */
export function tokenIdOf(token: string): number | undefined {
  const m = TOKEN_ID_RE.exec(token);
  return m ? Number(m[1]) : undefined;
}

/** Maps a token string that is not `token_id:N` to an id (the tokenizer's vocabulary). */
export type ResolveToken = (token: string) => number | undefined;

function fail(where: string, what: string): never {
  throw new ArpoError(`${where}: ${what}`);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function num(v: unknown, where: string, what: string): number {
  if (typeof v !== "number" || Number.isNaN(v)) {
    fail(where, `${what} is ${JSON.stringify(v)}, not a number`);
  }
  return v;
}

function idOf(token: unknown, resolve: ResolveToken | undefined, where: string): number {
  if (typeof token !== "string") fail(where, `token ${JSON.stringify(token)} is not a string`);
  const id = tokenIdOf(token) ?? resolve?.(token);
  if (id === undefined) {
    fail(
      where,
      `the server returned the token text ${JSON.stringify(token)}, which names no token id; ` +
        `token-exact rollouts need ids (vLLM: return_tokens_as_token_ids / ` +
        `--return-tokens-as-token-ids, or api: vllm)`,
    );
  }
  return id;
}

/** Top entries, most probable first (ties: lower id), at most k. */
function topOf(entries: [number, number][], k: number): [number, number][] {
  return entries.sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, k);
}

/**
 * Parse a completions answer (vllm / openai dialects, and `arpo serve`): `choices[0]` with
 * `token_ids` or `logprobs.tokens`, `logprobs.token_logprobs`, `logprobs.top_logprobs`
 * (`{token: logprob}` per position), `finish_reason`, `stop_reason`, and optional `entropies`.
 */
export function parseCompletions(
  json: unknown,
  k: number,
  where: string,
  resolve?: ResolveToken,
): ParsedCompletion {
  if (!isObj(json) || !Array.isArray(json.choices) || json.choices.length === 0) {
    fail(where, `expected a completions object with choices, found ${preview(json)}`);
  }
  const c = json.choices[0];
  if (!isObj(c)) fail(where, `choices[0] is ${preview(c)}, not an object`);
  const lp = c.logprobs;
  if (!isObj(lp) || !Array.isArray(lp.token_logprobs)) {
    fail(where, `choices[0].logprobs is missing: the request asked for log-probabilities`);
  }
  const logprobs = lp.token_logprobs as unknown[];
  const n = logprobs.length;
  let ids: number[];
  if (Array.isArray(c.token_ids)) {
    ids = c.token_ids.map((t, i) => num(t, where, `choices[0].token_ids[${i}]`));
  } else if (Array.isArray(lp.tokens)) {
    ids = lp.tokens.map((t) => idOf(t, resolve, where));
  } else fail(where, `choices[0] has neither token_ids nor logprobs.tokens`);
  if (ids.length !== n) {
    fail(where, `${ids.length} token ids but ${n} token_logprobs`);
  }
  const tops = Array.isArray(lp.top_logprobs) ? lp.top_logprobs : undefined;
  const ent = Array.isArray(c.entropies) ? c.entropies : undefined;
  if (ent && ent.length !== n) fail(where, `${ent.length} entropies for ${n} tokens`);
  const tokens: ParsedToken[] = ids.map((id, i) => {
    const tok: ParsedToken = {
      id,
      logprob: num(logprobs[i], where, `logprobs.token_logprobs[${i}]`),
    };
    const row = tops?.[i];
    if (isObj(row)) {
      tok.top = topOf(
        Object.entries(row).map(([t, v]) => [idOf(t, resolve, where), num(v, where, `top ${t}`)]),
        k,
      );
    }
    if (ent) tok.entropy = num(ent[i], where, `entropies[${i}]`);
    return tok;
  });
  const fr = c.finish_reason;
  const sr = c.stop_reason;
  const out: ParsedCompletion = {
    tokens,
    finish: fr === "stop" ? "stop" : fr === "length" ? "length" : "other",
  };
  if (typeof sr === "string" || typeof sr === "number") out.matched = sr;
  return out;
}

/** Parse an SGLang /generate answer (a list of one, or the object). */
export function parseSglang(json: unknown, k: number, where: string): ParsedCompletion {
  const o = Array.isArray(json) ? json[0] : json;
  if (!isObj(o) || !isObj(o.meta_info)) {
    fail(where, `expected an SGLang /generate object with meta_info, found ${preview(json)}`);
  }
  const meta = o.meta_info;
  const lps = meta.output_token_logprobs;
  if (!Array.isArray(lps)) {
    fail(where, `meta_info.output_token_logprobs is missing: the request set return_logprob`);
  }
  const triple = (e: unknown, what: string): [number, number] => {
    if (!Array.isArray(e) || e.length < 2) {
      fail(where, `${what} is ${preview(e)}, not [logprob, id, …]`);
    }
    return [num(e[1], where, `${what}[1] (id)`), num(e[0], where, `${what}[0] (logprob)`)];
  };
  const tops = Array.isArray(meta.output_top_logprobs) ? meta.output_top_logprobs : undefined;
  const tokens: ParsedToken[] = lps.map((e, i) => {
    const [id, logprob] = triple(e, `output_token_logprobs[${i}]`);
    const tok: ParsedToken = { id, logprob };
    const row = tops?.[i];
    if (Array.isArray(row)) {
      tok.top = topOf(row.map((r, j) => triple(r, `output_top_logprobs[${i}][${j}]`)), k);
    }
    return tok;
  });
  if (Array.isArray(o.output_ids) && o.output_ids.length === tokens.length) {
    o.output_ids.forEach((id, i) => {
      if (id !== tokens[i].id) {
        fail(where, `output_ids[${i}] = ${id} but output_token_logprobs says ${tokens[i].id}`);
      }
    });
  }
  const fr = isObj(meta.finish_reason) ? meta.finish_reason : {};
  const out: ParsedCompletion = {
    tokens,
    finish: fr.type === "stop" ? "stop" : fr.type === "length" ? "length" : "other",
  };
  if (typeof fr.matched === "string" || typeof fr.matched === "number") out.matched = fr.matched;
  return out;
}

/**
 * Parse the answer to `completionRequest(api, …)`: token ids with log-probabilities, the top `k`
 * entries per position, and why the server stopped. Errors name `where`.
 *
 * @example An SGLang `/generate` answer
 * ```ts
 * import { parseCompletion } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const r = parseCompletion("sglang", {
 *   text: "42",
 *   meta_info: {
 *     finish_reason: { type: "length" },
 *     output_token_logprobs: [[-0.1, 19, null], [-0.2, 17, null]],
 *     output_top_logprobs: [[[-0.1, 19, null]], [[-0.2, 17, null]]],
 *   },
 * }, 1, "server");
 * assert.deepEqual(r.tokens.map((t) => t.id), [19, 17]);
 * assert.equal(r.finish, "length");
 * ```
 */
export function parseCompletion(
  api: ServerApi,
  json: unknown,
  k: number,
  where: string,
  resolve?: ResolveToken,
): ParsedCompletion {
  return api === "sglang" ? parseSglang(json, k, where) : parseCompletions(json, k, where, resolve);
}

/** One position of a chat completion's `logprobs.content`. */
export interface ChatLogprob {
  token: string;
  logprob: number;
  top: [string, number][];
}

/**
 * The chat completions logprobs format (`choices[0].logprobs.content[]` of `{token, logprob,
 * bytes, top_logprobs: [{token, logprob, bytes}]}`): token strings, since chat is text out.
 */
export function parseChatLogprobs(json: unknown, where: string): ChatLogprob[] {
  if (!isObj(json) || !Array.isArray(json.choices) || !isObj(json.choices[0])) {
    fail(where, `expected a chat.completion object with choices, found ${preview(json)}`);
  }
  const lp = json.choices[0].logprobs;
  if (!isObj(lp) || !Array.isArray(lp.content)) {
    fail(where, `choices[0].logprobs.content is missing`);
  }
  return lp.content.map((e, i) => {
    if (!isObj(e) || typeof e.token !== "string") {
      fail(where, `logprobs.content[${i}] has no token`);
    }
    const top = Array.isArray(e.top_logprobs) ? e.top_logprobs : [];
    return {
      token: e.token,
      logprob: num(e.logprob, where, `logprobs.content[${i}].logprob`),
      top: top.map((t, j): [string, number] => {
        if (!isObj(t) || typeof t.token !== "string") {
          fail(where, `logprobs.content[${i}].top_logprobs[${j}] has no token`);
        }
        return [t.token, num(t.logprob, where, `top_logprobs[${j}].logprob`)];
      }),
    };
  });
}

/**
 * Entropy of one position estimated from its top-k log-probabilities, as vLLM-based code sees
 * it: −Σ p·log p over the top entries, plus the sampled token when it is not among them (the
 * formula of rollout/arpo.ts `topKEntropy`, which ARPO's reference mode uses on the same data).
 */
export function topKEntropyOf(
  id: number,
  logprob: number,
  top: readonly [number, number][],
): number {
  let h = 0;
  let seen = false;
  for (const [t, lp] of top) {
    if (t === id) seen = true;
    h -= Math.exp(lp) * lp;
  }
  if (!seen) h -= Math.exp(logprob) * logprob;
  return h;
}

function preview(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 160 ? `${s.slice(0, 160)}…` : s;
}
