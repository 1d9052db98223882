/**
 * The trainer: holds the weights and AdamW moments in TS, runs the training graphs (graphs.ts) on
 * ONNX Runtime and performs one optimizer update per `trainStep` over a mini-batch of sequences.
 *
 * A mini-batch that fits the token budget runs the fused graph (forward, backward, clip, AdamW:
 * one session run). A larger one is split into micro-batches; each runs the gradient graph with
 * loss_scale = 1 / (learned tokens of the whole mini-batch), the gradients are summed in TS in a
 * fixed order (deterministic), and the update graph applies clip + AdamW. Either way the loss is
 * the token-mean over the mini-batch (ARPO.md §4 "token-mean").
 *
 * The weights and both moments live in flat buffers (flat_state.ts) that stay put across steps:
 * ONNX Runtime updates them in place (each group's state buffers bound both as inputs and as
 * preallocated outputs; every read of the old values precedes the write in the graph, and a step
 * that diverges writes the old values back: graphs.ts appendAdamW). The forward reads per-tensor
 * views of the flat weights, so no state is copied in JS. On the CPU those two sessions run on
 * ONNX Runtime's C API (`inPlaceOutputs`, onnx/capi_session.ts), which hands the state back as
 * itself; onnxruntime-node's binding (other devices, or no FFI) returns a copy of every fetched
 * output as a new ArrayBuffer, which the trainer drops unread.
 */
import { ArpoError } from "../errors.ts";
import type { DecoderConfig } from "../model/config.ts";
import type { TensorMap } from "../model/safetensors.ts";
import { expectedShapes } from "../model/weights.ts";
import { createSession, type Device, ort, type Session } from "../onnx/session.ts";
import { learnedTokens, microBatches, packBatch, type TrainSequence } from "./batch.ts";
import { buildScoreGraph, buildTrainGraph, buildUpdateGraph, FLAT_STATE } from "./graphs.ts";
import { type FlatLayout, flatLayout, flatten, unflatten, views } from "./flat_state.ts";
import { DEFAULT_OBJECTIVE_PARAMS, type Objective, type ObjectiveParams } from "./objectives.ts";
import { adamScalars, type AdamWConfig, DEFAULT_ADAMW } from "./optimizer.ts";
import { inverseTemperature } from "../policy/sampling.ts";

export interface TrainerOptions {
  objective: Objective;
  adamw?: Partial<AdamWConfig>;
  objectiveParams?: Partial<ObjectiveParams>;
  /** Padded tokens (rows × longest sequence) per micro-batch. Default 16384. */
  tokenBudget?: number;
  /**
   * Most elements per AdamW group (flat_state.ts; default GROUP_ELEMENTS): fewer, larger groups
   * mean fewer nodes and larger temporaries. Any size gives the same bits.
   */
  adamGroupElements?: number;
  /** ORT intra-op threads (0: ORT decides). */
  threads?: number;
  device?: Device;
  /**
   * The rollout's sampling temperature: the pg objective and `score` compute log-probabilities
   * and entropies of softmax(logits / T), the policy that sampled (fed as 1/T,
   * `inverseTemperature`; 0 = greedy counts as 1). Default 1. The SFT loss ignores it.
   */
  temperature?: number;
  /**
   * Run the in-place update on ONNX Runtime's C API where it can (default true; see
   * SessionOptions.inPlaceOutputs). false keeps onnxruntime-node: the same bits, with 3 copies of
   * the state returned (and dropped) per step.
   */
  inPlaceOutputs?: boolean;
}

/** Optimizer state: everything a resumed run needs besides the config. */
export interface TrainerState {
  /** Optimizer steps taken. */
  step: number;
  weights: TensorMap;
  m: TensorMap;
  v: TensorMap;
}

export interface StepStats {
  /** 1-based optimizer step just taken. */
  step: number;
  lr: number;
  /** Token-mean loss of the mini-batch (before the update). */
  loss: number;
  /** Learned tokens in the mini-batch. */
  tokens: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Mean entropy (nats) of the policy at the learned tokens. */
  entropy: number;
  /** pg: fraction of tokens where the clipped term was active. */
  clipFrac?: number;
  /** pg: mean (logp_old − logp) over tokens (approximate KL to the behaviour policy). */
  approxKl?: number;
  /** pg with kl: mean k3 KL to the reference policy. */
  refKl?: number;
  microBatches: number;
}

export interface ScoreResult {
  /** log p(tokens[i] | tokens[..i]) for i ≥ 1; index 0 is 0. */
  logp: Float32Array;
  /** Entropy (nats) of the next-token distribution that predicted tokens[i]; index 0 is 0. */
  entropy: Float32Array;
}

const scalar = (x: number) => new ort.Tensor("float32", Float32Array.of(x), []);

function zeros(cfg: DecoderConfig): TensorMap {
  const m: TensorMap = new Map();
  for (const [name, shape] of expectedShapes(cfg)) {
    m.set(name, { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  }
  return m;
}

/** One set of flat optimizer state (weights, first and second moments), [P] each. */
type FlatState = Record<(typeof FLAT_STATE)[number], Float32Array>;

export class Trainer {
  readonly adamw: AdamWConfig;
  readonly objectiveParams: ObjectiveParams;
  readonly tokenBudget: number;
  #step: number;
  /** The state, updated in place by every step. */
  readonly #cur: FlatState;
  /** Views of #cur.weights by name (the forward's feeds, the `weights` getter). */
  readonly #curViews: TensorMap;
  #sessions = new Map<string, Session>();
  readonly #names: string[];
  readonly #layout: FlatLayout;

  private constructor(
    readonly cfg: DecoderConfig,
    step: number,
    state: FlatState,
    readonly opts: TrainerOptions,
  ) {
    this.adamw = { ...DEFAULT_ADAMW, ...opts.adamw };
    this.objectiveParams = { ...DEFAULT_OBJECTIVE_PARAMS, ...opts.objectiveParams };
    this.tokenBudget = opts.tokenBudget ?? 16384;
    this.#layout = flatLayout(cfg, opts.adamGroupElements);
    this.#names = this.#layout.names;
    this.#step = step;
    this.#cur = state;
    this.#curViews = views(this.#layout, state.weights);
  }

  /** A trainer starting from `weights` (copied) with zero moments, or from a saved state. */
  static create(
    cfg: DecoderConfig,
    init: TensorMap | TrainerState,
    opts: TrainerOptions,
  ): Trainer {
    const maps = init instanceof Map
      ? { weights: init, m: zeros(cfg), v: zeros(cfg) }
      : { weights: init.weights, m: init.m, v: init.v };
    const T = opts.temperature;
    if (T !== undefined && !(Number.isFinite(T) && T >= 0)) {
      throw new ArpoError(`trainer: temperature must be a finite number ≥ 0, found ${T}`);
    }
    for (const [name, shape] of expectedShapes(cfg)) {
      for (const label of FLAT_STATE) {
        const t = maps[label].get(name);
        if (!t || t.data.length !== shape.reduce((a, b) => a * b, 1)) {
          throw new ArpoError(
            `trainer: ${label} tensor '${name}' is missing or not of shape [${shape.join(", ")}]`,
          );
        }
      }
    }
    const l = flatLayout(cfg, opts.adamGroupElements);
    const state: FlatState = {
      weights: flatten(l, maps.weights),
      m: flatten(l, maps.m),
      v: flatten(l, maps.v),
    };
    return new Trainer(cfg, init instanceof Map ? 0 : init.step, state, opts);
  }

  get step(): number {
    return this.#step;
  }

  /**
   * Current weights: live views into the trainer's buffer (do not mutate). Every step updates
   * them in place, so copy what must outlive the next trainStep.
   */
  get weights(): TensorMap {
    return this.#curViews;
  }

  /**
   * The full state as live views of the trainer's buffers, no copy: valid until the next
   * trainStep, for writing a checkpoint at once (a copy is 3× the weights).
   */
  stateView(): TrainerState {
    const l = this.#layout, s = this.#cur;
    return { step: this.#step, weights: this.#curViews, m: views(l, s.m), v: views(l, s.v) };
  }

  /** A copy of the full state, for keeping past later steps. */
  state(): TrainerState {
    const l = this.#layout, s = this.#cur;
    return {
      step: this.#step,
      weights: unflatten(l, s.weights),
      m: unflatten(l, s.m),
      v: unflatten(l, s.v),
    };
  }

  async #session(kind: "fused" | "grads" | "update" | "score"): Promise<Session> {
    let s = this.#sessions.get(kind);
    if (s) return s;
    const graph = kind === "update"
      ? buildUpdateGraph(this.cfg, this.#layout).graph
      : kind === "score"
      ? buildScoreGraph(this.cfg).graph
      : buildTrainGraph(this.cfg, this.opts.objective, kind, this.#layout).graph;
    s = await createSession(graph, {
      threads: this.opts.threads,
      device: this.opts.device ?? "cpu",
      label: `${kind} graph`,
      // Batch shapes change every step: a memory pattern per shape only grows the arena.
      memoryPattern: false,
      // The state written in place comes back as itself, not as 3 copies of it (#runInPlace).
      inPlaceOutputs: (this.opts.inPlaceOutputs ?? true) && (kind === "fused" || kind === "update"),
    });
    this.#sessions.set(kind, s);
    return s;
  }

  #weightFeeds(feeds: Record<string, ort.Tensor>, prefix = "", map = this.#curViews): void {
    for (const name of this.#names) {
      const t = map.get(name)!;
      feeds[prefix + name] = new ort.Tensor("float32", t.data, t.shape);
    }
  }

  /** 1/T as the graphs' inv_temperature input. */
  #invTemperature(): ort.Tensor {
    return scalar(inverseTemperature(this.opts.temperature ?? 1));
  }

  #objectiveFeeds(feeds: Record<string, ort.Tensor>): void {
    const o = this.opts.objective, p = this.objectiveParams;
    if (o.kind !== "pg") return;
    feeds.inv_temperature = this.#invTemperature();
    feeds.clip_low = scalar(p.clipLow);
    feeds.clip_high = scalar(p.clipHigh);
    feeds.dual_clip = scalar(p.dualClip);
    if (o.kl) feeds.kl_coef = scalar(p.klCoef);
    if (o.entropy) feeds.entropy_coef = scalar(p.entropyCoef);
  }

  /** The flat state the update reads (group by group), and the AdamW scalars of this step. */
  #stateFeeds(feeds: Record<string, ort.Tensor>, adam: Record<string, number>): void {
    this.#layout.groups.forEach((g, i) => {
      for (const k of FLAT_STATE) {
        const part = this.#cur[k].subarray(g.start, g.stop);
        feeds[`state.${k}.${i}`] = new ort.Tensor("float32", part, [part.length]);
      }
    });
    for (const [k, x] of Object.entries(adam)) feeds[k] = scalar(x);
  }

  /**
   * Run an update graph with its new.* outputs written back into the state they were computed
   * from (preallocated fetches over the same views as the state.* feeds; copies onnxruntime-node
   * may return of them are left unread), every other output fetched as usual.
   */
  async #runInPlace(
    sess: Session,
    feeds: Record<string, ort.Tensor>,
  ): Promise<Record<string, ort.Tensor>> {
    const fetches: Record<string, ort.Tensor | null> = {};
    for (const name of sess.outputNames) fetches[name] = null;
    for (let i = 0; i < this.#layout.groups.length; i++) {
      for (const k of FLAT_STATE) fetches[`new.${k}.${i}`] = feeds[`state.${k}.${i}`];
    }
    return await sess.ort.run(feeds, fetches) as Record<string, ort.Tensor>;
  }

  /** One optimizer update on a mini-batch at learning rate `lr`. */
  async trainStep(seqs: readonly TrainSequence[], lr: number): Promise<StepStats> {
    const o = this.opts.objective;
    const need = { pg: o.kind === "pg", ref: o.kind === "pg" && !!o.kl };
    const total = seqs.reduce((a, s) => a + learnedTokens(s), 0);
    if (total === 0) {
      throw new ArpoError("trainer: the mini-batch has no learned tokens (all loss masks 0)");
    }
    const parts = microBatches(seqs, this.tokenBudget).filter((mb) =>
      mb.some((s) => learnedTokens(s) > 0)
    );
    const t = this.#step + 1;
    const adam = adamScalars(this.adamw, lr, t);
    const sums: Record<string, number> = {};
    const addStats = (out: Record<string, ort.Tensor>) => {
      for (
        const k of [
          "loss",
          "token_count",
          "entropy_sum",
          "clip_count",
          "approx_kl_sum",
          "ref_kl_sum",
        ]
      ) {
        if (out[k]) sums[k] = (sums[k] ?? 0) + (out[k].data as Float32Array)[0];
      }
    };
    let out: Record<string, ort.Tensor>;
    if (parts.length === 1) {
      const sess = await this.#session("fused");
      const feeds = packBatch(parts[0], need).feeds;
      feeds.loss_scale = scalar(1 / total);
      this.#objectiveFeeds(feeds);
      this.#weightFeeds(feeds);
      this.#stateFeeds(feeds, adam);
      out = await this.#runInPlace(sess, feeds);
      addStats(out);
    } else {
      const sess = await this.#session("grads");
      const acc = zeros(this.cfg);
      for (const mb of parts) {
        const feeds = packBatch(mb, need).feeds;
        feeds.loss_scale = scalar(1 / total);
        this.#objectiveFeeds(feeds);
        this.#weightFeeds(feeds);
        const o2 = await sess.run(feeds);
        addStats(o2);
        for (const name of this.#names) {
          const a = acc.get(name)!.data, gd = o2[`grad.${name}`].data as Float32Array;
          for (let i = 0; i < a.length; i++) a[i] += gd[i];
        }
      }
      if (!Number.isFinite(sums.loss)) {
        throw new ArpoError(
          `trainer: step ${t} produced a non-finite loss (${sums.loss}); the update was not ` +
            `applied (lower the learning rate?)`,
        );
      }
      const up = await this.#session("update");
      const feeds: Record<string, ort.Tensor> = {};
      this.#weightFeeds(feeds, "grad.", acc);
      this.#stateFeeds(feeds, adam);
      out = await this.#runInPlace(up, feeds);
    }
    const gradNorm = (out.grad_norm.data as Float32Array)[0];
    if (!Number.isFinite(gradNorm) || !Number.isFinite(sums.loss)) {
      // The graph wrote the old values back (appendAdamW's guard).
      throw new ArpoError(
        `trainer: step ${t} produced a non-finite loss (${sums.loss}) or gradient norm ` +
          `(${gradNorm}); the update was not applied (lower the learning rate?)`,
      );
    }
    this.#step = t;
    const tokens = sums.token_count;
    const stats: StepStats = {
      step: t,
      lr,
      loss: sums.loss,
      tokens,
      gradNorm,
      entropy: sums.entropy_sum / tokens,
      microBatches: parts.length,
    };
    if (o.kind === "pg") {
      stats.clipFrac = sums.clip_count / tokens;
      stats.approxKl = sums.approx_kl_sum / tokens;
      if (o.kl) stats.refKl = sums.ref_kl_sum / tokens;
    }
    return stats;
  }

  /**
   * Log-probabilities and entropies of every token given its prefix under `weights` (default:
   * the current weights) at the trainer's temperature, batched under the token budget:
   * old-log-prob recomputation before a policy update, or reference log-probs with a frozen copy
   * of the weights.
   */
  async score(
    seqs: readonly { tokens: readonly number[] }[],
    weights?: TensorMap,
  ): Promise<ScoreResult[]> {
    const sess = await this.#session("score");
    const full = seqs.map((s) => ({
      tokens: s.tokens,
      lossMask: s.tokens.map((_, i) => (i > 0 ? 1 : 0)),
    }));
    const res = seqs.map((s) => ({
      logp: new Float32Array(s.tokens.length),
      entropy: new Float32Array(s.tokens.length),
    }));
    let base = 0;
    for (const mb of microBatches(full, this.tokenBudget)) {
      const packed = packBatch(mb, {}, "score batch");
      const feeds: Record<string, ort.Tensor> = {};
      for (const k of ["input_ids", "position_ids", "attention_bias", "logits_at", "targets"]) {
        feeds[k] = packed.feeds[k];
      }
      feeds.inv_temperature = this.#invTemperature();
      this.#weightFeeds(feeds, "", weights ?? this.#curViews);
      const out = await sess.run(feeds);
      const lp = out.logp.data as Float32Array, en = out.entropy.data as Float32Array;
      packed.where.forEach(([b, i], k) => {
        res[base + b].logp[i] = lp[k];
        res[base + b].entropy[i] = en[k];
      });
      base += mb.length;
    }
    return res;
  }

  async release(): Promise<void> {
    for (const s of this.#sessions.values()) await s.release();
    this.#sessions.clear();
  }
}
