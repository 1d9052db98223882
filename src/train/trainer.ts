/**
 * The trainer: holds the weights and AdamW moments in TS, runs the training graphs (graphs.ts) on
 * ONNX Runtime and performs one optimizer update per `trainStep` over a mini-batch of sequences.
 *
 * A mini-batch that fits the token budget runs the fused graph (forward, backward, clip, AdamW:
 * one session run). A larger one is split into micro-batches; each runs the gradient graph with
 * loss_scale = 1 / (learned tokens of the whole mini-batch), the gradients are summed in TS in a
 * fixed order (deterministic), and the update graph applies clip + AdamW. Either way the loss is
 * the token-mean over the mini-batch (ARPO.md §4 "token-mean").
 */
import { ArpoError } from "../errors.ts";
import type { DecoderConfig } from "../model/config.ts";
import type { TensorMap } from "../model/safetensors.ts";
import { expectedShapes } from "../model/weights.ts";
import { createSession, type Device, ort, type Session } from "../onnx/session.ts";
import { learnedTokens, microBatches, packBatch, type TrainSequence } from "./batch.ts";
import { buildScoreGraph, buildTrainGraph, buildUpdateGraph } from "./graphs.ts";
import { DEFAULT_OBJECTIVE_PARAMS, type Objective, type ObjectiveParams } from "./objectives.ts";
import { adamScalars, type AdamWConfig, DEFAULT_ADAMW } from "./optimizer.ts";
import { inverseTemperature } from "../policy/sampling.ts";

export interface TrainerOptions {
  objective: Objective;
  adamw?: Partial<AdamWConfig>;
  objectiveParams?: Partial<ObjectiveParams>;
  /** Padded tokens (rows × longest sequence) per micro-batch. Default 16384. */
  tokenBudget?: number;
  /** ORT intra-op threads (0: ORT decides). */
  threads?: number;
  device?: Device;
  /**
   * The rollout's sampling temperature: the pg objective and `score` compute log-probabilities
   * and entropies of softmax(logits / T), the policy that sampled (fed as 1/T,
   * `inverseTemperature`; 0 = greedy counts as 1). Default 1. The SFT loss ignores it.
   */
  temperature?: number;
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

function cloneMap(t: TensorMap): TensorMap {
  const m: TensorMap = new Map();
  for (const [k, v] of t) m.set(k, { shape: [...v.shape], data: v.data.slice() });
  return m;
}

export class Trainer {
  readonly adamw: AdamWConfig;
  readonly objectiveParams: ObjectiveParams;
  readonly tokenBudget: number;
  #state: TrainerState;
  #sessions = new Map<string, Session>();
  readonly #names: string[];

  private constructor(
    readonly cfg: DecoderConfig,
    state: TrainerState,
    readonly opts: TrainerOptions,
  ) {
    this.adamw = { ...DEFAULT_ADAMW, ...opts.adamw };
    this.objectiveParams = { ...DEFAULT_OBJECTIVE_PARAMS, ...opts.objectiveParams };
    this.tokenBudget = opts.tokenBudget ?? 16384;
    this.#names = [...expectedShapes(cfg).keys()];
    this.#state = state;
  }

  /** A trainer starting from `weights` (copied) with zero moments, or from a saved state. */
  static create(
    cfg: DecoderConfig,
    init: TensorMap | TrainerState,
    opts: TrainerOptions,
  ): Trainer {
    const state: TrainerState = init instanceof Map
      ? { step: 0, weights: cloneMap(init), m: zeros(cfg), v: zeros(cfg) }
      : {
        step: init.step,
        weights: cloneMap(init.weights),
        m: cloneMap(init.m),
        v: cloneMap(init.v),
      };
    const T = opts.temperature;
    if (T !== undefined && !(Number.isFinite(T) && T >= 0)) {
      throw new ArpoError(`trainer: temperature must be a finite number ≥ 0, found ${T}`);
    }
    for (const [name, shape] of expectedShapes(cfg)) {
      for (
        const [label, map] of [["weights", state.weights], ["m", state.m], ["v", state.v]] as const
      ) {
        const t = map.get(name);
        if (!t || t.data.length !== shape.reduce((a, b) => a * b, 1)) {
          throw new ArpoError(
            `trainer: ${label} tensor '${name}' is missing or not of shape [${shape.join(", ")}]`,
          );
        }
      }
    }
    return new Trainer(cfg, state, opts);
  }

  get step(): number {
    return this.#state.step;
  }

  /** Current weights (live: do not mutate). */
  get weights(): TensorMap {
    return this.#state.weights;
  }

  /** A copy of the full state (for checkpoints). */
  state(): TrainerState {
    const s = this.#state;
    return { step: s.step, weights: cloneMap(s.weights), m: cloneMap(s.m), v: cloneMap(s.v) };
  }

  async #session(kind: "fused" | "grads" | "update" | "score"): Promise<Session> {
    let s = this.#sessions.get(kind);
    if (s) return s;
    const graph = kind === "update"
      ? buildUpdateGraph(this.cfg).graph
      : kind === "score"
      ? buildScoreGraph(this.cfg).graph
      : buildTrainGraph(this.cfg, this.opts.objective, kind).graph;
    s = await createSession(graph, {
      threads: this.opts.threads,
      device: this.opts.device ?? "cpu",
      label: `${kind} graph`,
    });
    this.#sessions.set(kind, s);
    return s;
  }

  #weightFeeds(feeds: Record<string, ort.Tensor>, prefix = "", map = this.#state.weights): void {
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
    const t = this.#state.step + 1;
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
      this.#weightFeeds(feeds, "m.", this.#state.m);
      this.#weightFeeds(feeds, "v.", this.#state.v);
      for (const [k, x] of Object.entries(adam)) feeds[k] = scalar(x);
      out = await sess.run(feeds);
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
      const up = await this.#session("update");
      const feeds: Record<string, ort.Tensor> = {};
      this.#weightFeeds(feeds);
      this.#weightFeeds(feeds, "grad.", acc);
      this.#weightFeeds(feeds, "m.", this.#state.m);
      this.#weightFeeds(feeds, "v.", this.#state.v);
      for (const [k, x] of Object.entries(adam)) feeds[k] = scalar(x);
      out = await up.run(feeds);
    }
    const take = (prefix: string): TensorMap => {
      const m: TensorMap = new Map();
      for (const name of this.#names) {
        const shape = this.#state.weights.get(name)!.shape;
        m.set(name, { shape, data: out[prefix + name].data as Float32Array });
      }
      return m;
    };
    const gradNorm = (out.grad_norm.data as Float32Array)[0];
    if (!Number.isFinite(gradNorm) || !Number.isFinite(sums.loss)) {
      throw new ArpoError(
        `trainer: step ${t} produced a non-finite loss (${sums.loss}) or gradient norm ` +
          `(${gradNorm}); the update was not applied (lower the learning rate?)`,
      );
    }
    this.#state = { step: t, weights: take("new."), m: take("new_m."), v: take("new_v.") };
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
      this.#weightFeeds(feeds, "", weights ?? this.#state.weights);
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
