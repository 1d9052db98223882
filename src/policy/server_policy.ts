/**
 * The Policy backend on an OpenAI-compatible inference server (vLLM, SGLang, `arpo serve`),
 * token in / token out. Sequences live here (their tokens and random streams); each `generate`
 * request becomes one HTTP request with the whole sequence as token ids, so an ARPO fork is a new
 * request on the shared prefix (the server's prefix cache makes it cheap). Requests run
 * concurrently up to `max_concurrency` (server_client.ts). The per-request seed is drawn from the
 * sequence's keyed stream at its current length, so it does not depend on scheduling.
 *
 * Stops are the ONNX backend's: after any stop id (EOS included), as soon as the decoded tail
 * contains a stop string, or at `maxTokens`; the server is asked to stop the same way and the
 * answer is cut here too, so a server that overshoots cannot change the tree. Entropy is the
 * server's exact full-vocabulary entropy when it returns one (`arpo serve`), else the top-k
 * estimate (server_protocol.ts `topKEntropyOf`); the recording's header says which.
 *
 * Every answer is recorded by request key (server_record.ts); a policy built with `replay`
 * answers from such a record and never contacts the server (rerun, verify).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ArpoError } from "../errors.ts";
import type { PolicyServer } from "../manifest/policy.ts";
import { loadTokenizer, type Tokenizer } from "../model/tokenizer.ts";
import type { Stream } from "../rng.ts";
import { digestJson } from "../store/hash.ts";
import { expandHeaders, ServerClient } from "./server_client.ts";
import {
  type CompletionAsk,
  completionRequest,
  parseCompletion,
  type ParsedCompletion,
  topKEntropyOf,
} from "./server_protocol.ts";
import { checkGenerateRequests } from "./requests.ts";
import { requestKey, ResponseLog, type ServerProvenance } from "./server_record.ts";
import type {
  GeneratedToken,
  GenerateOptions,
  GenerateRequest,
  GenerateResult,
  Policy,
  PolicyRecording,
  PolicyStats,
  SamplingParams,
  SeqId,
} from "./types.ts";

/** Text both tokenizers must encode alike (tags of the tool protocol, digits, unicode). */
const TOKENIZER_PROBE = "<think>12 + 30 = 42</think> <python>print(6*7)</python> " +
  "<result>\n42\n</result> <answer>\\boxed{42}</answer> Grüße, 東京!";

export interface ServerPolicyOptions {
  config: PolicyServer;
  tokenizer: Tokenizer;
  signal?: AbortSignal;
  /** For tests: the HTTP function and the first retry's backoff. */
  fetch?: typeof fetch;
  backoffMs?: number;
}

interface SeqState {
  tokens: number[];
  stream: Stream;
}

/** What `/v1/models` says about the served model. */
interface Served {
  /** `arpo serve`'s weights digest, else null. */
  digest: string | null;
  /** `arpo serve`'s model vocabulary size (padded ids included), else the tokenizer's. */
  vocabSize: number;
}

export class ServerPolicy implements Policy {
  readonly stats: PolicyStats = { tokensForwarded: 0, forwardCalls: 0 };
  readonly recording: PolicyRecording;
  readonly #seqs = new Map<SeqId, SeqState>();
  readonly #log: ResponseLog;
  #nextId = 1;

  private constructor(
    readonly config: PolicyServer,
    readonly tokenizer: Tokenizer,
    readonly vocabSize: number,
    readonly digest: string,
    readonly client: ServerClient | undefined,
    readonly provenance: Omit<ServerProvenance, "entropy">,
    log: ResponseLog,
  ) {
    this.#log = log;
    this.recording = {
      responses: () => this.#log.serialize(this.header()),
      tokenizerFiles: () => tokenizer.files(),
      summary: () => ({ ...this.header() }),
      size: () => this.#log.size,
    };
  }

  get device(): string {
    return `server ${this.provenance.url}${this.client ? "" : " (replayed)"}`;
  }

  /** The header of this policy's recording (what the run record says about it). */
  header(): ServerProvenance {
    return { ...this.provenance, entropy: this.#log.entropyKind() };
  }

  /** Connect: check the model is served and the tokenizers agree; ArpoError naming the server. */
  static async connect(opts: ServerPolicyOptions): Promise<ServerPolicy> {
    const { config, tokenizer } = opts;
    const client = new ServerClient({
      url: config.url,
      headers: expandHeaders(config.headers),
      timeoutS: config.timeout_s,
      maxConcurrency: config.max_concurrency,
      retries: config.retries,
      signal: opts.signal,
      fetch: opts.fetch,
      backoffMs: opts.backoffMs,
    });
    const served = await servedModel(client, config, tokenizer);
    const checked = await checkTokenizer(client, config, tokenizer);
    const digest = digestJson({
      server: config.model,
      api: config.api,
      served: served.digest,
      tokenizer: tokenizer.digest,
    });
    return new ServerPolicy(config, tokenizer, served.vocabSize, digest, client, {
      backend: "server",
      url: client.base,
      model: config.model,
      api: config.api,
      digest,
      bit_reproducible: false,
      top_k: config.top_logprobs,
      vocab_size: served.vocabSize,
      tokenizer: { digest: tokenizer.digest, checked_with_server: checked },
    }, new ResponseLog());
  }

  /** A policy answering from a recording only (no server). */
  static replay(
    config: PolicyServer,
    tokenizer: Tokenizer,
    recorded: { header: ServerProvenance; log: ResponseLog },
  ): ServerPolicy {
    const h = recorded.header;
    if (h.tokenizer.digest !== tokenizer.digest) {
      throw new ArpoError(
        `policy server ${h.url}: the recorded responses were made with tokenizer ` +
          `${h.tokenizer.digest.slice(0, 12)}, not ${tokenizer.digest.slice(0, 12)}`,
      );
    }
    const { entropy: _e, ...provenance } = h;
    return new ServerPolicy(
      config,
      tokenizer,
      h.vocab_size,
      h.digest,
      undefined,
      provenance,
      recorded.log,
    );
  }

  #get(seq: SeqId): SeqState {
    const s = this.#seqs.get(seq);
    if (!s) throw new ArpoError(`policy: unknown or released sequence ${seq}`);
    return s;
  }

  #checkTokens(tokens: readonly number[], what: string): void {
    for (const t of tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= this.vocabSize) {
        throw new ArpoError(
          `policy: ${what} holds token id ${t}, outside the vocabulary [0, ${this.vocabSize})`,
        );
      }
    }
  }

  create(tokens: readonly number[], stream: Stream): SeqId {
    this.#checkTokens(tokens, "a new sequence");
    const id = this.#nextId++;
    this.#seqs.set(id, { tokens: [...tokens], stream });
    return id;
  }

  append(seq: SeqId, tokens: readonly number[]): void {
    this.#checkTokens(tokens, `append to sequence ${seq}`);
    this.#get(seq).tokens.push(...tokens);
  }

  fork(seq: SeqId, stream: Stream): SeqId {
    const id = this.#nextId++;
    this.#seqs.set(id, { tokens: [...this.#get(seq).tokens], stream });
    return id;
  }

  tokens(seq: SeqId): readonly number[] {
    return this.#get(seq).tokens;
  }

  release(seq: SeqId): void {
    this.#seqs.delete(seq);
  }

  async generate(
    requests: readonly GenerateRequest[],
    params: SamplingParams,
    options: GenerateOptions = {},
  ): Promise<GenerateResult[]> {
    checkGenerateRequests(requests, (seq) => this.#get(seq).tokens.length);
    const want = options.topLogprobs ?? 0;
    if (want > this.config.top_logprobs) {
      throw new ArpoError(
        `policy server ${this.provenance.url}: ${want} top log-probabilities are needed ` +
          `(rollout.reference_top_k) but policy.server.top_logprobs is ${this.config.top_logprobs}`,
      );
    }
    return await Promise.all(requests.map((r) => this.#one(r, params, want, options)));
  }

  async #one(
    req: GenerateRequest,
    params: SamplingParams,
    want: number,
    options: GenerateOptions,
  ): Promise<GenerateResult> {
    const seq = this.#get(req.seq);
    if (req.stop.maxTokens <= 0) return { seq: req.seq, tokens: [], stop: { reason: "length" } };
    const strings = (req.stop.strings ?? []).filter((s) => s.length > 0);
    const stopIds = new Set([...this.tokenizer.eosTokenIds, ...(req.stop.tokenIds ?? [])]);
    const greedy = !(params.temperature > 0);
    const ask: CompletionAsk = {
      model: this.config.model,
      prompt: seq.tokens,
      maxTokens: req.stop.maxTokens,
      temperature: greedy ? 0 : params.temperature,
      topP: greedy ? 1 : params.topP > 0 && params.topP < 1 ? params.topP : 1,
      topK: greedy ? 0 : Math.max(0, params.topK),
      // One draw at the sequence's length: independent of batching and request order.
      seed: seq.stream.child("server_seed").at(seq.tokens.length) & 0x7fffffff,
      stop: strings,
      stopTokenIds: [...stopIds].sort((a, b) => a - b),
      topLogprobs: this.config.top_logprobs,
    };
    const { path, body } = completionRequest(this.config.api, ask);
    const key = requestKey(path, body);
    const what = `sequence ${req.seq}, ${seq.tokens.length} prompt tokens, request ${
      key.slice(0, 12)
    }`;
    let parsed = this.#log.get(key);
    if (!parsed) {
      if (!this.client) {
        throw new ArpoError(
          `policy server ${this.provenance.url}: no recorded response for ${what}; the replay ` +
            `diverged from the recorded run (rerun against the server to record it again)`,
        );
      }
      const json = await this.client.post(path, body, what);
      const where = `policy server ${this.client.base}: ${path} (${what})`;
      parsed = parseCompletion(
        this.config.api,
        json,
        this.config.top_logprobs,
        where,
        (t) => this.tokenizer.tokenToId(t),
      );
      this.#log.put(key, parsed);
    }
    this.stats.forwardCalls++;
    const out = this.#cut(req, parsed, strings, stopIds, want, what);
    this.stats.tokensForwarded += seq.tokens.length + out.tokens.length;
    for (const t of out.tokens) {
      seq.tokens.push(t.id);
      options.onToken?.(req.seq, t);
    }
    options.onResult?.(out);
    return out;
  }

  /** The answer cut at the first stop, as GeneratedTokens with entropies. */
  #cut(
    req: GenerateRequest,
    r: ParsedCompletion,
    strings: readonly string[],
    stopIds: ReadonlySet<number>,
    want: number,
    what: string,
  ): GenerateResult {
    const where = `policy server ${this.provenance.url} (${what})`;
    if (r.tokens.length === 0) throw new ArpoError(`${where}: the server returned no tokens`);
    const window = 4 * Math.max(0, ...strings.map((s) => s.length)) + 4;
    const tokens: GeneratedToken[] = [];
    for (const t of r.tokens) {
      if (!Number.isInteger(t.id) || t.id < 0 || t.id >= this.vocabSize) {
        throw new ArpoError(`${where}: token id ${t.id} is outside [0, ${this.vocabSize})`);
      }
      let entropy = t.entropy;
      if (entropy === undefined) {
        if (!t.top || t.top.length === 0) {
          throw new ArpoError(
            `${where}: the server returned neither entropies nor top log-probabilities; set ` +
              `policy.server.top_logprobs ≥ 1 (and the server's --max-logprobs at least as high)`,
          );
        }
        entropy = topKEntropyOf(t.id, t.logprob, t.top);
      }
      const tok: GeneratedToken = { id: t.id, logprob: t.logprob, entropy };
      if (want > 0) {
        if (!t.top) {
          throw new ArpoError(
            `${where}: ${want} top log-probabilities are needed and the server returned none`,
          );
        }
        tok.top = t.top.slice(0, want);
      }
      tokens.push(tok);
      if (stopIds.has(t.id)) {
        return { seq: req.seq, tokens, stop: { reason: "token", tokenId: t.id } };
      }
      if (strings.length) {
        const tail = tokens.slice(-window).map((x) => x.id).filter((x) =>
          x < this.tokenizer.vocabSize
        );
        const text = this.tokenizer.decode(tail);
        for (const s of strings) {
          if (text.includes(s)) {
            return { seq: req.seq, tokens, stop: { reason: "string", text: s } };
          }
        }
      }
      if (tokens.length >= req.stop.maxTokens) break;
    }
    if (tokens.length >= req.stop.maxTokens || r.finish === "length") {
      return { seq: req.seq, tokens, stop: { reason: "length" } };
    }
    // The server stopped on something this side does not count as a stop (its own EOS list).
    const last = tokens[tokens.length - 1].id;
    return typeof r.matched === "string"
      ? { seq: req.seq, tokens, stop: { reason: "string", text: r.matched } }
      : { seq: req.seq, tokens, stop: { reason: "token", tokenId: last } };
  }

  score(): Promise<{ logprobs: Float32Array; entropies: Float32Array }[]> {
    return Promise.reject(
      new ArpoError(
        `policy server ${this.provenance.url}: teacher-forced scoring (training) needs the ` +
          `ONNX policy (policy.model or policy.init); a server policy only samples`,
      ),
    );
  }

  dispose(): Promise<void> {
    this.#seqs.clear();
    return Promise.resolve();
  }
}

/** `/v1/models` lists `config.model` (else an error listing what it serves). */
async function servedModel(
  client: ServerClient,
  config: PolicyServer,
  tokenizer: Tokenizer,
): Promise<Served> {
  const json = await client.get("/v1/models", "list the served models") as {
    data?: { id?: unknown; arpo?: { digest?: unknown; vocab_size?: unknown } }[];
  };
  const data = Array.isArray(json?.data) ? json.data : [];
  const m = data.find((d) => d?.id === config.model);
  if (!m) {
    const ids = data.map((d) => String(d?.id)).join(", ") || "none";
    throw new ArpoError(
      `policy server ${client.base}: model '${config.model}' is not served (it serves: ${ids}); ` +
        `set policy.server.model to one of them`,
    );
  }
  const vocab = m.arpo?.vocab_size;
  return {
    digest: typeof m.arpo?.digest === "string" ? m.arpo.digest : null,
    vocabSize: typeof vocab === "number" && vocab >= tokenizer.vocabSize
      ? vocab
      : tokenizer.vocabSize,
  };
}

/**
 * Encode a probe text here and on the server (vLLM's and `arpo serve`'s `/tokenize`); different
 * ids are an error. False when the server has no such endpoint (SGLang, plain OpenAI).
 */
async function checkTokenizer(
  client: ServerClient,
  config: PolicyServer,
  tokenizer: Tokenizer,
): Promise<boolean> {
  if (config.api !== "vllm") return false;
  let json: unknown;
  try {
    json = await client.post(
      "/tokenize",
      { model: config.model, prompt: TOKENIZER_PROBE, add_special_tokens: false },
      "check the tokenizer",
    );
  } catch (e) {
    if (e instanceof ArpoError && /HTTP 404/.test(e.message)) return false;
    throw e;
  }
  const remote = (json as { tokens?: unknown })?.tokens;
  const local = tokenizer.encode(TOKENIZER_PROBE);
  if (!Array.isArray(remote) || JSON.stringify(remote) !== JSON.stringify(local)) {
    throw new ArpoError(
      `policy server ${client.base}: the server's tokenizer and this run's (digest ` +
        `${tokenizer.digest.slice(0, 12)}) encode a probe text differently ` +
        `(${JSON.stringify(remote).slice(0, 80)} vs ${JSON.stringify(local).slice(0, 80)}); ` +
        `point policy.server.tokenizer at the served model's tokenizer files`,
    );
  }
  return true;
}

/** A tokenizer from its files (`Tokenizer.files()`), e.g. recorded with a run or published. */
export async function tokenizerFromFiles(files: Record<string, string>): Promise<Tokenizer> {
  const dir = await mkdtemp(join(tmpdir(), "arpo-tokenizer-"));
  try {
    for (const [name, text] of Object.entries(files)) {
      if (!/^[A-Za-z0-9_.-]+$/.test(name)) {
        throw new ArpoError(`tokenizer file name '${name}' is not a plain file name`);
      }
      await writeFile(join(dir, name), text);
    }
    return await loadTokenizer(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The tokenizer `arpo serve` publishes at `/arpo/tokenizer`. */
export async function publishedTokenizer(
  config: PolicyServer,
  opts: { signal?: AbortSignal; fetch?: typeof fetch } = {},
): Promise<Tokenizer> {
  const client = new ServerClient({
    url: config.url,
    headers: expandHeaders(config.headers),
    timeoutS: config.timeout_s,
    maxConcurrency: 1,
    retries: config.retries,
    signal: opts.signal,
    fetch: opts.fetch,
  });
  let json: unknown;
  try {
    json = await client.get("/arpo/tokenizer", "fetch the tokenizer");
  } catch (e) {
    if (e instanceof ArpoError && /HTTP 404/.test(e.message)) {
      throw new ArpoError(
        `policy server ${client.base} publishes no tokenizer (only \`arpo serve\` does); set ` +
          `policy.server.tokenizer to a directory holding the served model's tokenizer.json`,
      );
    }
    throw e;
  }
  const files = (json as { files?: unknown })?.files;
  if (!files || typeof files !== "object") {
    throw new ArpoError(`policy server ${client.base}: /arpo/tokenizer holds no files`);
  }
  return await tokenizerFromFiles(files as Record<string, string>);
}
