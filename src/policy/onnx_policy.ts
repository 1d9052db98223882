/**
 * The Policy backend on the ONNX decoder built here (model/decoder_graph.ts).
 *
 * Each sequence holds its tokens, an immutable snapshot of its KV cache (model/kv_cache.ts) covering
 * a prefix of them, and its own random stream. `generate` loads the requested sequences' caches into
 * one slab, forwards what is pending (prompt, appended tool output, the last sampled token) in
 * chunks, then runs one batched decode step per token for all active rows, and saves each row's
 * cache back when it stops. Fork shares the parent's snapshot: the child forwards nothing the
 * parent already did.
 */
import { ArpoError } from "../errors.ts";
import type { Stream } from "../rng.ts";
import type { DecoderModel } from "../model/load.ts";
import { BufferPool, EMPTY_CACHE, KvSlab, type SeqCache } from "../model/kv_cache.ts";
import { MASK_NEG } from "../model/decoder_graph.ts";
import { WEBGPU_MIN_TOKENS, webgpuBucket } from "../onnx/webgpu.ts";
import {
  DecoderRuntime,
  type ForwardOutput,
  type HeadOutput,
  type RuntimeOptions,
} from "../model/runtime.ts";
import { checkGenerateRequests } from "./requests.ts";
import { inverseTemperature, sampleFromProbs, uniformAt } from "./sampling.ts";
import type {
  GeneratedToken,
  GenerateOptions,
  GenerateRequest,
  GenerateResult,
  Policy,
  PolicyStats,
  SamplingParams,
  SeqId,
} from "./types.ts";
import type { TokenizerLike } from "../model/tokenizer.ts";

interface SeqState {
  tokens: number[];
  cache: SeqCache;
  stream: Stream;
}

export interface OnnxPolicyOptions extends RuntimeOptions {
  /** Most new tokens per row in one forward call while prefilling (bounds the mask size). */
  prefillChunk?: number;
  /** Token budget (rows × padded length) of one teacher-forced scoring call. */
  scoreBudget?: number;
}

interface Row {
  req: GenerateRequest;
  seq: SeqState;
  pending: number[];
  generated: GeneratedToken[];
  stopIds: Set<number>;
  stopStrings: readonly string[];
  window: number;
  result?: GenerateResult["stop"];
}

export class OnnxPolicy implements Policy {
  readonly vocabSize: number;
  readonly digest: string;
  readonly maxPositions: number;
  readonly stats: PolicyStats = { tokensForwarded: 0, forwardCalls: 0 };
  readonly #seqs = new Map<SeqId, SeqState>();
  readonly #pool = new BufferPool(4 * 2 * 64);
  #nextId = 1;
  readonly #prefillChunk: number;
  readonly #scoreBudget: number;
  /**
   * Pad rows, new tokens and sampled positions up to buckets (webgpu only: the provider compiles
   * a pipeline per shape class; the CPU path keeps its exact shapes and bytes).
   */
  readonly #bucketed: boolean;

  /** The session; undefined for a weights-only policy (`weightsOnly`). */
  readonly #runtime: DecoderRuntime | undefined;

  private constructor(
    readonly model: DecoderModel,
    readonly tokenizer: TokenizerLike,
    runtime: DecoderRuntime | undefined,
    opts: OnnxPolicyOptions,
  ) {
    this.vocabSize = model.config.vocabSize;
    this.digest = model.digest;
    this.maxPositions = model.config.maxPositionEmbeddings;
    this.#prefillChunk = opts.prefillChunk ?? 256;
    this.#scoreBudget = opts.scoreBudget ?? 4096;
    this.#runtime = runtime;
    this.#bucketed = runtime?.provider === "webgpu";
  }

  /** The decoder session this policy runs on. */
  get runtime(): DecoderRuntime {
    if (!this.#runtime) {
      throw new ArpoError(
        "policy: this policy holds weights only (loaded for training, without a session); " +
          "it cannot generate or score",
      );
    }
    return this.#runtime;
  }

  static #checkTokenizer(model: DecoderModel, tokenizer: TokenizerLike): void {
    if (tokenizer.vocabSize > model.config.vocabSize) {
      throw new ArpoError(
        `tokenizer has ${tokenizer.vocabSize} ids but the model's vocab_size is ` +
          `${model.config.vocabSize}${model.dir ? ` (${model.dir})` : ""}`,
      );
    }
  }

  /**
   * A policy over `model` without an inference session, for stages that only train from its
   * weights: building a session costs ~3.4× the weights at its peak and tens of seconds on
   * released model sizes, for nothing such a stage uses.
   */
  static weightsOnly(model: DecoderModel, tokenizer: TokenizerLike): OnnxPolicy {
    OnnxPolicy.#checkTokenizer(model, tokenizer);
    return new OnnxPolicy(model, tokenizer, undefined, {});
  }

  /** Slab rows for n sequences. */
  #rowsFor(n: number): number {
    return this.#bucketed ? webgpuBucket(n) : n;
  }

  static async create(
    model: DecoderModel,
    tokenizer: TokenizerLike,
    opts: OnnxPolicyOptions = {},
  ): Promise<OnnxPolicy> {
    OnnxPolicy.#checkTokenizer(model, tokenizer);
    const runtime = await DecoderRuntime.create(model.config, model.weights, opts);
    // Consumed weights are gone (their buffers detached): the policy's model has none.
    const kept = opts.consumeWeights ? { ...model, weights: new Map() } : model;
    return new OnnxPolicy(kept, tokenizer, runtime, opts);
  }

  get device(): string {
    return this.runtime.provider;
  }

  #get(seq: SeqId): SeqState {
    const s = this.#seqs.get(seq);
    if (!s) throw new ArpoError(`policy: unknown or released sequence ${seq}`);
    return s;
  }

  #checkTokens(tokens: readonly number[], what: string): void {
    const V = this.vocabSize;
    for (const t of tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= V) {
        throw new ArpoError(
          `policy: ${what} holds token id ${t}, outside the vocabulary [0, ${V})`,
        );
      }
    }
  }

  create(tokens: readonly number[], stream: Stream): SeqId {
    this.#checkTokens(tokens, "a new sequence");
    const id = this.#nextId++;
    this.#seqs.set(id, { tokens: [...tokens], cache: EMPTY_CACHE, stream });
    return id;
  }

  append(seq: SeqId, tokens: readonly number[]): void {
    this.#checkTokens(tokens, `append to sequence ${seq}`);
    this.#get(seq).tokens.push(...tokens);
  }

  fork(seq: SeqId, stream: Stream): SeqId {
    const p = this.#get(seq);
    const id = this.#nextId++;
    // The snapshot is immutable: sharing it is the fork.
    this.#seqs.set(id, { tokens: [...p.tokens], cache: p.cache, stream });
    return id;
  }

  tokens(seq: SeqId): readonly number[] {
    return this.#get(seq).tokens;
  }

  release(seq: SeqId): void {
    this.#seqs.delete(seq);
  }

  /** Cached positions of a sequence (for tests and benchmarks). */
  cachedLength(seq: SeqId): number {
    return this.#get(seq).cache.len;
  }

  async generate(
    requests: readonly GenerateRequest[],
    params: SamplingParams,
    options: GenerateOptions = {},
  ): Promise<GenerateResult[]> {
    checkGenerateRequests(requests, (seq) => this.#get(seq).tokens.length);
    const eos = this.tokenizer.eosTokenIds;
    const rows: Row[] = [];
    const results = new Map<GenerateRequest, GenerateResult>();
    for (const req of requests) {
      const seq = this.#get(req.seq);
      const strings = (req.stop.strings ?? []).filter((s) => s.length > 0);
      const row: Row = {
        req,
        seq,
        // At least the last token is always forwarded: its logits give the next token.
        pending: seq.tokens.slice(Math.min(seq.cache.len, seq.tokens.length - 1)),
        generated: [],
        stopIds: new Set([...eos, ...(req.stop.tokenIds ?? [])]),
        stopStrings: strings,
        window: 4 * Math.max(0, ...strings.map((s) => s.length)) + 4,
      };
      if (req.stop.maxTokens <= 0) {
        results.set(req, { seq: req.seq, tokens: [], stop: { reason: "length" } });
        continue;
      }
      rows.push(row);
    }
    const V = this.vocabSize;
    if (rows.length > 0) {
      const invT = inverseTemperature(params.temperature);
      const greedy = !(params.temperature > 0);
      const top = options.topLogprobs ?? 0;
      // Plain sampling and greedy run entirely in the graph's sampling head; top-k / top-p
      // filtering and top log-probs need the probability rows in JS.
      const inGraph = top === 0 &&
        (greedy || (!(params.topK > 0) && !(params.topP > 0 && params.topP < 1)));
      const head: HeadOutput[] = !inGraph
        ? ["probs", "entropy"]
        : greedy
        ? ["argmax_id", "argmax_logprob", "entropy"]
        : ["sampled_id", "sampled_logprob", "entropy"];
      const uniformOf = greedy
        ? undefined
        : (r: Row) => uniformAt(r.seq.stream, r.seq.tokens.length);
      await this.#run(rows, head, invT, uniformOf, (r, out, j) => {
        let tok: GeneratedToken;
        if (!inGraph) {
          tok = sampleFromProbs(
            out.probs!,
            j * V,
            V,
            params,
            greedy ? 0 : uniformAt(r.seq.stream, r.seq.tokens.length),
            out.entropy![j],
            top,
          );
        } else if (greedy) {
          tok = {
            id: Number(out.argmaxId![j]),
            logprob: out.argmaxLogprob![j],
            entropy: out.entropy![j],
          };
        } else {
          tok = {
            id: Number(out.sampledId![j]),
            logprob: out.sampledLogprob![j],
            entropy: out.entropy![j],
          };
        }
        r.seq.tokens.push(tok.id);
        r.generated.push(tok);
        options.onToken?.(r.req.seq, tok);
        r.pending = [tok.id];
        r.result = this.#stopped(r, tok.id);
        if (r.result === undefined) return false;
        options.onResult?.({ seq: r.req.seq, tokens: r.generated, stop: r.result });
        return true;
      });
    }
    for (const r of rows) {
      results.set(r.req, { seq: r.req.seq, tokens: r.generated, stop: r.result! });
    }
    return requests.map((r) => results.get(r)!);
  }

  /**
   * Next-token logits (copies, one per sequence) after forwarding everything pending; nothing is
   * sampled. The sequences' caches then cover all their tokens.
   */
  async logits(seqs: readonly SeqId[]): Promise<Float32Array[]> {
    const V = this.vocabSize;
    const rows: Row[] = seqs.map((id) => {
      const seq = this.#get(id);
      if (seq.tokens.length === 0) throw new ArpoError(`policy.logits: sequence ${id} is empty`);
      return {
        req: { seq: id, stop: { maxTokens: 0 } },
        seq,
        pending: seq.tokens.slice(Math.min(seq.cache.len, seq.tokens.length - 1)),
        generated: [],
        stopIds: new Set(),
        stopStrings: [],
        window: 0,
      };
    });
    if (new Set(seqs).size !== seqs.length) {
      throw new ArpoError(`policy.logits: duplicate sequence`);
    }
    const out = new Map<Row, Float32Array>();
    await this.#run(rows, ["logits"], 1, undefined, (r, res, j) => {
      out.set(r, res.logits!.slice(j * V, (j + 1) * V));
      r.pending = [];
      return true;
    });
    return rows.map((r) => out.get(r)!);
  }

  /**
   * The batched forward loop. Forwards each row's pending tokens (in chunks), and whenever a row's
   * last pending token has been forwarded calls `decide` with its logits; `decide` returns true
   * when the row is finished (its cache is then saved back to the sequence).
   */
  async #run(
    all: Row[],
    head: readonly HeadOutput[],
    invT: number,
    uniformOf: ((r: Row) => number) | undefined,
    decide: (r: Row, out: ForwardOutput, j: number) => boolean,
  ): Promise<void> {
    const cfg = this.model.config;
    let rows = all;
    let slab = new KvSlab(
      cfg,
      this.#rowsFor(rows.length),
      Math.max(...rows.map((r) => r.seq.tokens.length)) + 1,
      this.#pool,
    );
    rows.forEach((r, i) => slab.load(i, r.seq.cache, r.seq.tokens.length - r.pending.length));
    const active = new Set(rows);
    try {
      while (active.size > 0) {
        // slab.rows is rows.length on the CPU; on webgpu the rows beyond are padding.
        const B = slab.rows;
        let T = 1;
        for (const r of rows) {
          if (active.has(r)) T = Math.max(T, Math.min(r.pending.length, this.#prefillChunk));
        }
        if (this.#bucketed) {
          T = Math.min(
            Math.max(WEBGPU_MIN_TOKENS, webgpuBucket(T)),
            Math.max(T, this.#prefillChunk),
          );
        }
        const P = slab.cap;
        const S = P + T;
        const inputIds = new BigInt64Array(B * T);
        const positionIds = new BigInt64Array(B * T);
        const bias = new Float32Array(B * T * S).fill(MASK_NEG);
        const counts = new Int32Array(B);
        const want: number[] = []; // row indices that sample this step
        const at: bigint[] = [];
        rows.forEach((r, b) => {
          const n = active.has(r) ? Math.min(r.pending.length, T) : 0;
          counts[b] = n;
          const L = slab.lens[b];
          for (let t = 0; t < T; t++) {
            const o = (b * T + t) * S;
            if (t < n) {
              inputIds[b * T + t] = BigInt(r.pending[t]);
              positionIds[b * T + t] = BigInt(L + t);
              bias.fill(0, o, o + L);
              bias.fill(0, o + P, o + P + t + 1);
            } else bias[o + P + t] = 0; // padding attends to itself only (no NaN rows)
          }
          if (n > 0 && n === r.pending.length) {
            want.push(b);
            at.push(BigInt(b * T + n - 1));
          }
        });
        for (let b = rows.length; b < B; b++) {
          for (let t = 0; t < T; t++) bias[(b * T + t) * S + P + t] = 0; // padding rows
        }
        if (at.length === 0) {
          // Only long prefills this step: still need one logits row for the graph.
          at.push(0n);
        }
        if (this.#bucketed) { while (at.length < webgpuBucket(at.length)) at.push(0n); }
        const out = await this.runtime.forward({
          B,
          T,
          P,
          inputIds,
          positionIds,
          bias,
          logitsAt: BigInt64Array.from(at),
          pastKeys: slab.keys,
          pastValues: slab.values,
          invTemperature: new Float32Array(at.length).fill(invT),
          // float32 in the graph: keep u below 1 after rounding (24-bit resolution is plenty).
          uniform: uniformOf
            ? Float32Array.from(
              { length: at.length },
              (_, k) => k < want.length ? Math.min(uniformOf(rows[want[k]]), 1 - 2 ** -24) : 0,
            )
            : undefined,
        }, head);
        let fwd = 0;
        for (let b = 0; b < B; b++) fwd += counts[b];
        this.stats.tokensForwarded += fwd;
        this.stats.forwardCalls++;
        const identity = Array.from({ length: B }, (_, i) => i);
        slab.append(out.newKeys, out.newValues, T, identity, counts);
        rows.forEach((r, b) => {
          if (counts[b] > 0) r.pending = r.pending.slice(counts[b]);
        });
        want.forEach((b, j) => {
          const r = rows[b];
          if (decide(r, out, j)) {
            active.delete(r);
            r.seq.cache = slab.save(b);
          }
        });
        // Compact when at most half the slab's rows are still decoding.
        if (active.size > 0 && active.size <= rows.length / 2) {
          const keep = rows.filter((r) => active.has(r));
          const next = new KvSlab(cfg, this.#rowsFor(keep.length), slab.cap, this.#pool);
          rows.forEach((r, b) => {
            if (active.has(r)) next.copyRow(slab, b, keep.indexOf(r));
          });
          slab.dispose();
          slab = next;
          rows = keep;
        }
      }
    } finally {
      slab.dispose();
    }
  }

  /** Per layer a [B, kvH, 1, hd] block of zeros (a masked cache slot). */
  #zeroSlot(B: number): Float32Array[] {
    const c = this.model.config;
    return Array.from(
      { length: c.numLayers },
      () => new Float32Array(B * c.numKvHeads * c.headDim),
    );
  }

  #stopped(r: Row, id: number): GenerateResult["stop"] | undefined {
    if (r.stopIds.has(id)) return { reason: "token", tokenId: id };
    if (r.stopStrings.length > 0) {
      // Ids past the tokenizer's range (padded model vocabularies) have no text.
      const tail = r.generated.slice(-r.window).map((t) => t.id).filter((t) =>
        t < this.tokenizer.vocabSize
      );
      const text = this.tokenizer.decode(tail);
      for (const s of r.stopStrings) if (text.includes(s)) return { reason: "string", text: s };
    }
    if (r.generated.length >= r.req.stop.maxTokens) return { reason: "length" };
    return undefined;
  }

  async score(
    items: readonly { tokens: readonly number[]; from: number }[],
    temperature = 1,
  ): Promise<{ logprobs: Float32Array; entropies: Float32Array }[]> {
    const L = this.model.config.numLayers;
    const out: { logprobs: Float32Array; entropies: Float32Array }[] = new Array(items.length);
    items.forEach((it, i) => {
      if (!Number.isInteger(it.from) || it.from < 1 || it.from > it.tokens.length) {
        throw new ArpoError(
          `policy.score: item ${i} has from=${it.from}; expected 1 ≤ from ≤ ${it.tokens.length}`,
        );
      }
      this.#checkTokens(it.tokens, `score item ${i}`);
    });
    // Longest first so padding inside a batch stays small; results go back by index.
    const order = items.map((_, i) => i).sort((a, b) =>
      items[b].tokens.length - items[a].tokens.length
    );
    const empty = Array.from({ length: L }, () => new Float32Array(0));
    for (let s = 0; s < order.length;) {
      const T = items[order[s]].tokens.length - 1; // the last token is never an input
      const batch: number[] = [];
      while (
        s < order.length && (batch.length + 1) * Math.max(T, 1) <= Math.max(this.#scoreBudget, T)
      ) {
        batch.push(order[s++]);
      }
      // Padded up to buckets on webgpu (rows and positions beyond the batch attend to themselves).
      const B = this.#rowsFor(batch.length);
      const Tn = this.#bucketed ? webgpuBucket(Math.max(T, 1)) : Math.max(T, 1);
      const inputIds = new BigInt64Array(B * Tn);
      const positionIds = new BigInt64Array(B * Tn);
      // webgpu: one masked cache slot, since the provider crashes on empty [B, kvH, 0, hd] feeds.
      const Ps = this.#bucketed ? 1 : 0, S = Ps + Tn;
      const bias = new Float32Array(B * Tn * S).fill(MASK_NEG);
      const at: bigint[] = [], targets: bigint[] = [];
      batch.forEach((i, b) => {
        const tk = items[i].tokens, n = tk.length - 1;
        for (let t = 0; t < Tn; t++) {
          const o = (b * Tn + t) * S + Ps;
          if (t < n) {
            inputIds[b * Tn + t] = BigInt(tk[t]);
            positionIds[b * Tn + t] = BigInt(t);
            bias.fill(0, o, o + t + 1);
          } else bias[o + t] = 0;
        }
        for (let t = items[i].from - 1; t < n; t++) {
          at.push(BigInt(b * Tn + t));
          targets.push(BigInt(tk[t + 1]));
        }
      });
      for (let b = batch.length; b < B; b++) {
        for (let t = 0; t < Tn; t++) bias[(b * Tn + t) * S + Ps + t] = 0;
      }
      if (at.length === 0) {
        at.push(0n);
        targets.push(0n);
      }
      if (this.#bucketed) {
        while (at.length < webgpuBucket(at.length)) {
          at.push(0n);
          targets.push(0n);
        }
      }
      const invT = inverseTemperature(temperature);
      const res = await this.runtime.forward({
        B,
        T: Tn,
        P: Ps,
        inputIds,
        positionIds,
        bias,
        logitsAt: BigInt64Array.from(at),
        pastKeys: Ps ? this.#zeroSlot(B) : empty,
        pastValues: Ps ? this.#zeroSlot(B) : empty,
        invTemperature: new Float32Array(at.length).fill(invT),
        targetIds: BigInt64Array.from(targets),
      }, ["target_logprob", "entropy"]);
      const lp = res.targetLogprob!, ent = res.entropy!;
      this.stats.forwardCalls++;
      let j = 0;
      for (const i of batch) {
        const tk = items[i].tokens, n = tk.length - 1;
        this.stats.tokensForwarded += n;
        const m = tk.length - items[i].from;
        const logprobs = new Float32Array(m), entropies = new Float32Array(m);
        for (let k = 0; k < m; k++, j++) {
          logprobs[k] = lp[j];
          entropies[k] = ent[j];
        }
        out[i] = { logprobs, entropies };
      }
    }
    return out;
  }

  #disposed = false;

  /** Release the session (a second call does nothing: a stage may release it before the runner). */
  async dispose(): Promise<void> {
    this.#seqs.clear();
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#runtime?.release();
  }
}
