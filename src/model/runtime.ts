/**
 * A decoder on an ONNX Runtime session: builds the KV-cache graph (decoder_graph.ts) once and runs
 * forward steps given plain typed arrays. The cache itself lives in the caller (kv_cache.ts).
 */
import { createSession, type Device, ort, type Provider, type Session } from "../onnx/session.ts";
import type { DecoderConfig } from "./config.ts";
import { buildDecoderGraph } from "./decoder_graph.ts";
import type { TensorMap } from "./safetensors.ts";
import { serializeModelExternal } from "../onnx/serialize.ts";
import type { Graph, TensorData } from "../onnx/graph.ts";

export interface ForwardInput {
  /** Rows, new tokens per row, cached slots per row (all rows padded to these). */
  B: number;
  T: number;
  P: number;
  inputIds: BigInt64Array; // [B*T]
  positionIds: BigInt64Array; // [B*T]
  /** Additive attention bias [B*T*(P+T)]. */
  bias: Float32Array;
  /** Flat indices (b*T + t) of the positions whose logits are wanted. */
  logitsAt: BigInt64Array;
  /** Per layer: keys and values [B, kvH, P, hd]. */
  pastKeys: Float32Array[];
  pastValues: Float32Array[];
  /** 1/T per requested position; needed when fetching probs, log_z or entropy. */
  invTemperature?: Float32Array;
  /** Token ids whose log-probability is wanted per requested position (target_logprob). */
  targetIds?: BigInt64Array;
  /** One uniform in [0, 1) per requested position (sampled_id). */
  uniform?: Float32Array;
}

/** Which per-position outputs to fetch (default: logits only). */
export type HeadOutput =
  | "logits"
  | "probs"
  | "log_z"
  | "entropy"
  | "target_logprob"
  | "sampled_id"
  | "sampled_logprob"
  | "argmax_id"
  | "argmax_logprob";

export interface ForwardOutput {
  /** [N, V] for the N requested positions (when fetched). */
  logits?: Float32Array;
  /** softmax(logits / T) [N, V] (when fetched). */
  probs?: Float32Array;
  /** logsumexp(logits / T) [N] (when fetched). */
  logZ?: Float32Array;
  /** Entropy of softmax(logits / T) [N] (when fetched). */
  entropy?: Float32Array;
  /** log softmax(logits / T)[target] [N] (when fetched). */
  targetLogprob?: Float32Array;
  sampledId?: BigInt64Array;
  sampledLogprob?: Float32Array;
  argmaxId?: BigInt64Array;
  argmaxLogprob?: Float32Array;
  /** Per layer: keys and values [B, kvH, T, hd] of the new tokens. */
  newKeys: Float32Array[];
  newValues: Float32Array[];
}

export interface RuntimeOptions {
  threads?: number;
  device?: Device;
  onFallback?: (message: string) => void;
  /** See SessionOptions.spinning. */
  spinning?: boolean;
  /**
   * The session may take the weights' memory: the buffers behind `weights` are freed (detached)
   * once the graph holds what it needs of them, before ONNX Runtime builds its session, and the
   * graph's own matrices once it has. For a caller that loaded the weights for this session only;
   * the map is unusable afterwards. Peak memory of a load: 2.2–2.6× the weights instead of 3.2–3.6×.
   */
  consumeWeights?: boolean;
}

/** Free an ArrayBuffer's memory now (its views become empty). */
function detach(b: ArrayBufferLike): void {
  if (b instanceof ArrayBuffer && !b.detached) b.transfer(0);
}

/**
 * Give the graph its own copies of the initializers that are still views of the weights' buffers
 * (`theirs`: norms, biases, untied tables), then free those buffers: the graph holds all ORT will
 * read.
 */
function takeWeights(graph: Graph, theirs: ReadonlySet<ArrayBufferLike>): void {
  for (const [id, t] of graph.initializers) {
    if (t.data.buffer && theirs.has(t.data.buffer)) {
      graph.initializers.set(id, { ...t, data: t.data.slice() } as TensorData);
    }
  }
  for (const b of theirs) detach(b);
}

export class DecoderRuntime {
  readonly #session: Session;
  readonly #feedNames: { keys: string[]; values: string[] };
  /** Time spent inside session.run (ms), for the benchmark's overhead ratio. */
  sessionMs = 0;
  runs = 0;
  /** Sees the feeds of every forward call (the benchmark replays them as bare session.run calls). */
  onFeeds?: (feeds: Record<string, ort.Tensor>, fetches: string[]) => void;
  readonly #fetchKv: string[];

  private constructor(readonly config: DecoderConfig, session: Session) {
    this.#session = session;
    const L = config.numLayers;
    this.#feedNames = {
      keys: Array.from({ length: L }, (_, i) => `past_key_${i}`),
      values: Array.from({ length: L }, (_, i) => `past_value_${i}`),
    };
    this.#fetchKv = Array.from({ length: L }, (_, i) => [`new_key_${i}`, `new_value_${i}`]).flat();
  }

  static async create(
    config: DecoderConfig,
    weights: TensorMap,
    opts: RuntimeOptions = {},
  ): Promise<DecoderRuntime> {
    // Weights go to ORT as external data from memory: the protobuf holds none of them, so no
    // 2 GB limit and no copy of the weights inside it. ORT copies them into its own buffers, so
    // the graph's own (transposed) matrices are freed once the session exists (below).
    const { graph } = buildDecoderGraph(config, weights, { samplingHead: true });
    const theirs = new Set<ArrayBufferLike>([...weights.values()].map((t) => t.data.buffer));
    if (opts.consumeWeights) takeWeights(graph, theirs);
    const model = serializeModelExternal(graph);
    const session = await createSession(model, {
      threads: opts.threads,
      device: opts.device ?? "cpu",
      onFallback: opts.onFallback,
      spinning: opts.spinning,
      label: `the ${config.architecture} decoder`,
    });
    // ORT has its own copies now: free the graph's own (transposed) matrices at once, not at the
    // next collection (an rl stage builds a rollout session per step). The weights' buffers are
    // the caller's unless consumed (then already freed).
    for (const e of model.externalData) if (!theirs.has(e.data.buffer)) detach(e.data.buffer);
    return new DecoderRuntime(config, session);
  }

  get provider(): Provider {
    return this.#session.provider;
  }

  get fallback(): string | undefined {
    return this.#session.fallback;
  }

  /** The ORT session and feeds for a forward call (the benchmark times bare session.run on these). */
  feeds(x: ForwardInput): Record<string, ort.Tensor> {
    const c = this.config, kvH = c.numKvHeads, hd = c.headDim;
    const { B, T, P } = x;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", x.inputIds, [B, T]),
      position_ids: new ort.Tensor("int64", x.positionIds, [B, T]),
      attention_bias: new ort.Tensor("float32", x.bias, [B, 1, 1, T, P + T]),
      logits_at: new ort.Tensor("int64", x.logitsAt, [x.logitsAt.length]),
    };
    feeds.inv_temperature = new ort.Tensor(
      "float32",
      x.invTemperature ?? new Float32Array(x.logitsAt.length).fill(1),
      [x.logitsAt.length],
    );
    feeds.uniform = new ort.Tensor(
      "float32",
      x.uniform ?? new Float32Array(x.logitsAt.length),
      [x.logitsAt.length],
    );
    feeds.target_ids = new ort.Tensor(
      "int64",
      x.targetIds ?? new BigInt64Array(x.logitsAt.length),
      [x.logitsAt.length],
    );
    for (let i = 0; i < c.numLayers; i++) {
      feeds[this.#feedNames.keys[i]] = new ort.Tensor("float32", x.pastKeys[i], [B, kvH, P, hd]);
      feeds[this.#feedNames.values[i]] = new ort.Tensor("float32", x.pastValues[i], [
        B,
        kvH,
        P,
        hd,
      ]);
    }
    return feeds;
  }

  get session(): Session {
    return this.#session;
  }

  /** Output names to fetch for these head outputs (plus the new keys/values). */
  fetches(head: readonly HeadOutput[]): string[] {
    return [...head, ...this.#fetchKv];
  }

  async forward(
    x: ForwardInput,
    head: readonly HeadOutput[] = ["logits"],
  ): Promise<ForwardOutput> {
    const feeds = this.feeds(x);
    const fetches = this.fetches(head);
    this.onFeeds?.(feeds, fetches);
    const t0 = performance.now();
    const out = await this.#session.ort.run(feeds, fetches);
    this.sessionMs += performance.now() - t0;
    this.runs++;
    const L = this.config.numLayers;
    const newKeys: Float32Array[] = [], newValues: Float32Array[] = [];
    for (let i = 0; i < L; i++) {
      newKeys.push(out[`new_key_${i}`].data as Float32Array);
      newValues.push(out[`new_value_${i}`].data as Float32Array);
    }
    const f = (k: string) => out[k]?.data as Float32Array | undefined;
    return {
      logits: f("logits"),
      probs: f("probs"),
      logZ: f("log_z"),
      entropy: f("entropy"),
      targetLogprob: f("target_logprob"),
      sampledId: out.sampled_id?.data as BigInt64Array | undefined,
      sampledLogprob: f("sampled_logprob"),
      argmaxId: out.argmax_id?.data as BigInt64Array | undefined,
      argmaxLogprob: f("argmax_logprob"),
      newKeys,
      newValues,
    };
  }

  release(): Promise<void> {
    return this.#session.release();
  }
}
