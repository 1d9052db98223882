/**
 * Training graphs: the decoder forward (weights as graph inputs, HF names), an objective, the
 * derived backward pass and an in-graph AdamW update, all standard ONNX ops (ONNX Runtime has no
 * training API). Built once per (model config, objective); every size is symbolic, so any batch
 * shape runs through the same session.
 *
 * - "fused": forward + backward + clip + AdamW in one run (a mini-batch that fits one micro-batch);
 *   the weights come in twice over the same memory: per tensor for the forward (views into the
 *   flat buffer) and per AdamW group as the state.weights.<g> the update reads;
 * - "grads": forward + backward, outputs gradients (micro-batches; summed in TS);
 * - update graph: global grad-norm clip + AdamW on given (summed) gradients;
 * - score graph: forward only, log-probabilities and entropies of the targets (old / reference
 *   log-prob recomputation).
 *
 * Batch inputs (N = number of learned tokens in the batch):
 *   input_ids int64 [B, T], position_ids int64 [B, T], attention_bias float [B, 1, 1, T, T],
 *   logits_at int64 [N] (flat positions whose next token is learned), targets int64 [N],
 *   loss_mask float [N], loss_scale float [] (1 / tokens in the whole mini-batch), plus the
 *   objective's inputs (objectives.ts). The pg graphs and the score graph also take
 *   inv_temperature float [] (1/T of the rollout temperature, `inverseTemperature`): they score
 *   softmax(logits / T), the distribution the rollouts were sampled from.
 */
import { Graph, type Value } from "../onnx/graph.ts";
import * as op from "../onnx/ops.ts";
import { gradients } from "../onnx/autodiff.ts";
import type { DecoderConfig } from "../model/config.ts";
import { buildDecoderGraph } from "../model/decoder_graph.ts";
import { expectedShapes } from "../model/weights.ts";
import { appendObjective, type Objective, rowEntropy, temperedLogits } from "./objectives.ts";
import { type FlatLayout, flatLayout } from "./flat_state.ts";

/** Scalar hyperparameter inputs of the AdamW update (computed in TS per step). */
export const ADAM_INPUTS = [
  "adam_decay", // 1 − lr·weight_decay (decoupled decay)
  "adam_step_size", // lr / (1 − β1^t)
  "adam_inv_sqrt_bc2", // 1 / sqrt(1 − β2^t)
  "adam_beta1",
  "adam_beta2",
  "adam_eps",
  "max_grad_norm", // ≤ 0 is fed as +∞ (no clipping)
] as const;

export interface TrainGraph {
  graph: Graph;
  /** Parameter names in a fixed order (expectedShapes order). */
  paramNames: string[];
  mode: "fused" | "grads";
  objective: Objective;
  /**
   * The objective's log-probabilities of the targets [N] (tempered for pg). Not a graph output:
   * a caller that wants them (a test) adds one before building a session.
   */
  logp: Value;
}

function decoderForward(cfg: DecoderConfig) {
  const dec = buildDecoderGraph(cfg, null, { weights: "inputs", noCache: true });
  const names = [...expectedShapes(cfg).keys()];
  for (const n of names) {
    if (!dec.weightInputs.has(n)) throw new Error(`decoder graph has no weight input '${n}'`);
  }
  // The decoder marks its logits as a graph output; training graphs replace the output list.
  dec.graph.outputs.length = 0;
  return { dec, names };
}

/** The three parts of the optimizer state: inputs `state.<k>.<group>`, outputs `new.<k>.<group>`. */
export const FLAT_STATE = ["weights", "m", "v"] as const;

/**
 * Append global-norm clipping and AdamW over the flat state in groups (flat_state.ts): per group
 * g, inputs state.weights.g, state.m.g, state.v.g (the group's elements of the flat buffers) and
 * outputs new.weights.g, new.m.g, new.v.g; the ADAM_INPUTS scalars; grad_norm (before clipping).
 * `grads` are the gradients of the layout's parameters, in its order.
 *
 * Every new.* output is select(finite, updated, old) (an If, ops.ts), `finite` being true when
 * grad_norm and each value of `mustBeFinite` (the loss) are finite: a step that diverges leaves
 * the state as it was, which is what lets the trainer bind its state buffers as both inputs and
 * outputs (an in-place update). The select copies values unchanged, so a finite step's bits are
 * those of the update (as with the Where it replaced, about 3× slower on ORT's CPU).
 *
 * The squared norm is summed per tensor and then across tensors, exactly as with the per-tensor
 * update this replaced (one ReduceSum per gradient, one Sum): a reduction over a concatenated
 * gradient would add in another order and round differently. The update itself is elementwise,
 * so running it over a group's concatenated gradient gives every element the same operations,
 * and the same bits, as running it per tensor.
 */
export function appendAdamW(
  g: Graph,
  layout: FlatLayout,
  grads: readonly Value[],
  mustBeFinite: readonly Value[] = [],
): void {
  const h = Object.fromEntries(ADAM_INPUTS.map((k) => [k, g.input(k, "float32", [])])) as Record<
    (typeof ADAM_INPUTS)[number],
    Value
  >;
  const squares = grads.map((gr) => op.reduceSum(op.mul(gr, gr), [], false));
  const sq = squares.length === 1
    ? squares[0]
    : g.node("Sum", squares, [{ dtype: "float32", shape: [] }])[0];
  const norm = op.sqrt(sq);
  g.output(norm, "grad_norm");
  // torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), clamped to 1.
  const coef = op.min(op.div(h.max_grad_norm, op.add(norm, 1e-6)), 1);
  const oneMinusB1 = op.sub(1, h.adam_beta1), oneMinusB2 = op.sub(1, h.adam_beta2);
  // x − x is 0 exactly when x is finite (NaN for ±∞ and NaN).
  const finite = [norm, ...mustBeFinite].map((x) =>
    g.node("Equal", [op.sub(x, x), g.scalar(0)], [{ dtype: "bool", shape: [] }])[0]
  ).reduce((a, b) => g.node("And", [a, b], [{ dtype: "bool", shape: [] }])[0]);
  layout.groups.forEach((grp, k) => {
    const n = grp.stop - grp.start;
    const parts = grads.slice(grp.first, grp.end).map((gr) => op.reshape(gr, [-1]));
    const flat = parts.length === 1 ? parts[0] : op.concat(parts, 0);
    flat.shape = [n];
    const [w, m, v] = FLAT_STATE.map((s) => g.input(`state.${s}.${k}`, "float32", [n]));
    const gc = op.mul(flat, coef);
    const m2 = op.add(op.mul(m, h.adam_beta1), op.mul(gc, oneMinusB1));
    const v2 = op.add(op.mul(v, h.adam_beta2), op.mul(op.mul(gc, gc), oneMinusB2));
    const denom = op.add(op.mul(op.sqrt(v2), h.adam_inv_sqrt_bc2), h.adam_eps);
    const w2 = op.sub(op.mul(w, h.adam_decay), op.mul(op.div(m2, denom), h.adam_step_size));
    g.output(op.select(finite, w2, w), `new.weights.${k}`);
    g.output(op.select(finite, m2, m), `new.m.${k}`);
    g.output(op.select(finite, v2, v), `new.v.${k}`);
  });
}

/** Forward + objective + backward (+ AdamW when mode is "fused"). */
export function buildTrainGraph(
  cfg: DecoderConfig,
  objective: Objective,
  mode: "fused" | "grads",
  layout: FlatLayout = flatLayout(cfg),
): TrainGraph {
  const { dec, names } = decoderForward(cfg);
  const g = dec.graph;
  g.name = `train_${objective.kind}_${mode}`;
  const obj = appendObjective(g, dec.logits, objective);
  const scale = g.input("loss_scale", "float32", []);
  const loss = op.mul(obj.lossSum, scale);
  const ws = names.map((n) => dec.weightInputs.get(n)!);
  const grads = gradients(g, loss, ws);
  g.output(loss, "loss");
  for (const [k, v] of Object.entries(obj.stats)) g.output(v, k);
  if (mode === "grads") {
    grads.forEach((gv, i) => g.output(gv, `grad.${names[i]}`));
  } else {
    appendAdamW(g, layout, grads, [loss]);
  }
  return { graph: g, paramNames: names, mode, objective, logp: obj.logp };
}

/**
 * Clip + AdamW on gradients fed as inputs grad.<name> (after micro-batch accumulation), over the
 * flat state.
 */
export function buildUpdateGraph(
  cfg: DecoderConfig,
  l: FlatLayout = flatLayout(cfg),
): { graph: Graph; paramNames: string[] } {
  const g = new Graph("adamw_update");
  appendAdamW(g, l, l.names.map((name, i) => g.input(`grad.${name}`, "float32", l.shapes[i])));
  return { graph: g, paramNames: l.names };
}

/**
 * Forward only: log-probabilities (`logp`) and entropies (`entropy`) at the selected tokens under
 * softmax(logits · inv_temperature).
 */
export function buildScoreGraph(cfg: DecoderConfig): { graph: Graph; paramNames: string[] } {
  const { dec, names } = decoderForward(cfg);
  const g = dec.graph;
  g.name = "score";
  const targets = g.input("targets", "int64", ["selected"]);
  const lsm = op.logSoftmax(temperedLogits(g, dec.logits), -1);
  g.output(op.reshape(op.gatherElements(lsm, op.unsqueeze(targets, [1]), 1), [-1]), "logp");
  g.output(rowEntropy(lsm), "entropy");
  return { graph: g, paramNames: names };
}
