/**
 * The Policy interface the rollout engine drives. Backends: the ONNX decoder built here
 * (policy/onnx_policy.ts) and an OpenAI-compatible inference server (policy/server_policy.ts).
 * A policy holds many independent sequences; each draws its samples from its own keyed stream,
 * so a sequence's tokens never depend on which other sequences share its batch.
 */
import type { Stream } from "../rng.ts";
import type { TokenizerLike } from "../model/tokenizer.ts";

export type SeqId = number;

export interface SamplingParams {
  /** 0 means greedy. */
  temperature: number;
  /** 1 disables nucleus sampling. */
  topP: number;
  /** 0 disables top-k filtering. */
  topK: number;
}

export interface StopCondition {
  /** Stop after emitting any of these ids (EOS is always included by the backend). */
  tokenIds?: readonly number[];
  /** Stop as soon as the decoded generated text ends with one of these strings (e.g. `</python>`). */
  strings?: readonly string[];
  /** Hard cap on tokens generated in this call. */
  maxTokens: number;
}

/** One generated position. */
export interface GeneratedToken {
  id: number;
  /** log p(id) under the sampling distribution softmax(logits / T) (T=1 when greedy). */
  logprob: number;
  /** Shannon entropy (nats) of softmax(logits / T) over the whole vocabulary. */
  entropy: number;
  /** Top-k log-probabilities (id, logprob), when asked for. */
  top?: [number, number][];
}

export interface GenerateResult {
  seq: SeqId;
  tokens: GeneratedToken[];
  /** Why generation stopped. */
  stop:
    | { reason: "token"; tokenId: number }
    | { reason: "string"; text: string }
    | { reason: "length" };
}

export interface GenerateRequest {
  seq: SeqId;
  stop: StopCondition;
}

export interface GenerateOptions {
  /** Also return the top-k log-probabilities at each position (the reference ARPO uses 10). */
  topLogprobs?: number;
  /** Called for every generated token as soon as it is sampled (streaming output). */
  onToken?: (seq: SeqId, token: GeneratedToken) => void;
  /**
   * Called once for a request as soon as it has stopped, with the result `generate` will return
   * for it, while other requests may still be decoding: the rollout starts a finished row's tool
   * call here. Optional for backends: one that calls it late, or not at all, changes nothing
   * but how much work overlaps.
   */
  onResult?: (result: GenerateResult) => void;
}

export interface PolicyStats {
  /** Tokens run through the model (prefill + decode), for showing what prefix reuse saves. */
  tokensForwarded: number;
  /** Decode steps (batched forward calls). */
  forwardCalls: number;
}

/**
 * What a backend whose answers cannot be recomputed here (an inference server) recorded. The
 * runner stores it with the stage (`policy_responses`, `policy_tokenizer`, metric `policy`), so
 * a rerun can answer from it without the backend.
 */
export interface PolicyRecording {
  /** The recorded answers (policy/server_record.ts format). */
  responses(): Uint8Array;
  /** The tokenizer's files, so a replay needs nothing but the store. */
  tokenizerFiles(): Record<string, string>;
  /** For the stage's metrics: what the backend was, that it is not bit-reproducible, entropy. */
  summary(): Record<string, unknown>;
  /** Answers recorded so far. */
  size(): number;
}

export interface Policy {
  readonly tokenizer: TokenizerLike;
  readonly vocabSize: number;
  /** Digest identifying the weights and architecture (part of the run identity). */
  readonly digest: string;
  /** Execution provider actually used ("cpu", "cuda", "webgpu"). */
  readonly device: string;
  /** The longest sequence (positions) the model handles, when the backend knows it. */
  readonly maxPositions?: number;

  /** A new sequence holding `tokens` as its prefix (forwarded lazily, at the next generate). */
  create(tokens: readonly number[], stream: Stream): SeqId;
  /** Append externally produced tokens (a tool result). */
  append(seq: SeqId, tokens: readonly number[]): void;
  /**
   * A child that shares the parent's prefix and KV cache and draws from `stream`. Forwards nothing;
   * the child continues without recomputing the prefix.
   */
  fork(seq: SeqId, stream: Stream): SeqId;
  /** All tokens of a sequence so far. */
  tokens(seq: SeqId): readonly number[];
  /** Free a sequence's cache. */
  release(seq: SeqId): void;

  /**
   * Generate for many sequences at once: prefill what is pending, then batched decode steps over
   * all still-active requests until each hits its stop condition.
   */
  generate(
    requests: readonly GenerateRequest[],
    params: SamplingParams,
    options?: GenerateOptions,
  ): Promise<GenerateResult[]>;

  /**
   * Teacher-forced log-probabilities of `tokens[from..]` given `tokens[..from]`, with entropies,
   * for many sequences (old log-probs before an update).
   */
  score(
    items: readonly { tokens: readonly number[]; from: number }[],
    temperature?: number,
  ): Promise<{ logprobs: Float32Array; entropies: Float32Array }[]>;

  readonly stats: PolicyStats;
  /** Set by backends that are not bit-reproducible here (see PolicyRecording). */
  readonly recording?: PolicyRecording;
  dispose(): Promise<void>;
}
