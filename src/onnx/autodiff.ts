/**
 * Reverse-mode automatic differentiation over the Graph IR.
 *
 * `gradients(graph, loss, wrt)` walks `graph.nodes` backwards (they are in topological order) and
 * appends, for every node between the parameters and the loss, the standard ONNX nodes of its
 * vector-Jacobian product (rules in ./grad_rules.ts). ONNX Runtime has no training API and its
 * gradient ops are not in the npm build, so the backward pass has to be ordinary operators that
 * any execution provider runs. Shapes may be symbolic: rules that need sizes read them at run time
 * with Shape, so one training graph serves every batch shape.
 */
import { type Graph, type Node, readsOf, type Value } from "./graph.ts";
import * as op from "./ops.ts";
import { GRAD_RULES, NON_DIFFERENTIABLE, type RuleContext } from "./grad_rules.ts";

export interface GradientOptions {
  /** Cotangent of `loss` (same shape); default: ones (a scalar loss gets 1). */
  seed?: Value;
}

const FLOAT = new Set(["float32", "float16"]);

/**
 * Append the backward pass of `loss` with respect to each value of `wrt` and return the gradient
 * values (same order, same shapes). A value that the loss does not depend on gets zeros.
 */
export function gradients(
  graph: Graph,
  loss: Value,
  wrt: readonly Value[],
  opts: GradientOptions = {},
): Value[] {
  if (loss.graph !== graph) throw new Error("gradients: loss belongs to another graph");
  if (!FLOAT.has(loss.dtype)) throw new Error(`gradients: loss ${loss} is not floating point`);
  // Values that depend on some wrt value (forward reachability).
  const requires = new Set<number>(wrt.map((v) => v.id));
  const end = graph.nodes.length;
  for (let i = 0; i < end; i++) {
    const n = graph.nodes[i];
    if (NON_DIFFERENTIABLE.has(n.op)) continue;
    if (n.inputs.some((v) => v && requires.has(v.id))) {
      for (const o of n.outputs) if (FLOAT.has(o.dtype)) requires.add(o.id);
    }
  }
  const pending = new Map<number, Value[]>();
  const push = (v: Value, gv: Value) => {
    if (!requires.has(v.id)) return;
    if (gv.shape === null && v.shape !== null) gv.shape = [...v.shape];
    const list = pending.get(v.id);
    if (list) list.push(gv);
    else pending.set(v.id, [gv]);
  };
  const total = (v: Value): Value | null => {
    const list = pending.get(v.id);
    if (!list || list.length === 0) return null;
    if (list.length === 1) return list[0];
    const [s] = graph.node("Sum", list, [{ dtype: v.dtype, shape: v.shape }]);
    pending.set(v.id, [s]);
    return s;
  };
  const ctx: RuleContext = { graph, rankOf: rankResolver() };

  const seed = opts.seed ??
    (loss.shape && loss.shape.length === 0
      ? graph.scalar(1, loss.dtype)
      : op.constantOfShape(op.shapeOf(loss), 1, loss.dtype));
  if (!requires.has(loss.id)) {
    return wrt.map((w) => zerosLike(w));
  }
  push(loss, seed);
  // Only nodes before the loss's producer can contribute.
  const lossIndex = loss.producer ? graph.nodes.indexOf(loss.producer) : -1;
  for (let i = lossIndex; i >= 0; i--) {
    const n = graph.nodes[i];
    if (NON_DIFFERENTIABLE.has(n.op)) continue;
    if (!n.inputs.some((v) => v && requires.has(v.id))) continue;
    const gouts = n.outputs.map((o) => total(o));
    if (gouts.every((x) => x === null)) continue;
    const rule = GRAD_RULES[ruleKey(n)];
    if (!rule) {
      throw new Error(
        `gradients: no vector-Jacobian rule for ONNX op '${n.op}' (node ${n.name}); ` +
          `supported: ${Object.keys(GRAD_RULES).sort().join(", ")}`,
      );
    }
    const gins = rule(n, gouts, ctx, (k) => {
      const v = n.inputs[k];
      return v !== null && requires.has(v.id);
    });
    n.inputs.forEach((v, k) => {
      const gv = gins[k];
      if (v && gv) push(v, gv);
    });
  }
  const result = wrt.map((w) => total(w) ?? zerosLike(w));
  pruneDead(graph, end, result);
  return result;
}

/**
 * Remove backward nodes (index ≥ `from`) whose outputs nothing uses: rules may build a value
 * that a later rule short-circuits (a transpose that another transpose cancels).
 */
function pruneDead(graph: Graph, from: number, keep: readonly Value[]): void {
  const live = new Set<number>(keep.map((v) => v.id));
  for (const v of graph.outputs) live.add(v.id);
  const kept: Node[] = [];
  for (let i = graph.nodes.length - 1; i >= from; i--) {
    const n = graph.nodes[i];
    if (!n.outputs.some((o) => live.has(o.id))) continue;
    kept.push(n);
    for (const v of readsOf(n)) live.add(v.id);
  }
  graph.nodes.splice(from, graph.nodes.length - from, ...kept.reverse());
}

function ruleKey(n: Node): string {
  return n.domain ? `${n.domain}:${n.op}` : n.op;
}

function zerosLike(v: Value): Value {
  if (v.shape && v.shape.every((d) => typeof d === "number")) {
    const dims = v.shape as number[];
    const [z] = v.graph.node("ConstantOfShape", [v.graph.ints(dims)], [{
      dtype: v.dtype,
      shape: dims,
    }], {
      value: { kind: "tensor", value: { dtype: v.dtype, dims: [1], data: new Float32Array([0]) } },
    });
    return z;
  }
  const z = op.constantOfShape(op.shapeOf(v), 0, v.dtype);
  z.shape = v.shape ? [...v.shape] : null;
  return z;
}

/**
 * Rank of a value even when the op helpers could not infer its shape (a Reshape to a runtime
 * shape): follows the shape tensor back through Shape/Concat/constants.
 */
function rankResolver(): (v: Value) => number {
  const memo = new Map<number, number>();
  const lengthOf = (s: Value): number => {
    // Length of a 1-D int64 shape tensor.
    if (s.shape && s.shape.length === 1 && typeof s.shape[0] === "number") return s.shape[0];
    const init = s.graph.initializers.get(s.id);
    if (init) return init.dims[0] ?? 1;
    const p = s.producer;
    if (p?.op === "Shape") {
      const r = rank(p.inputs[0]!);
      const norm = (x: number) => (x < 0 ? Math.max(0, x + r) : Math.min(x, r));
      const st = p.attrs.start?.kind === "int" ? norm(p.attrs.start.value) : 0;
      const en = p.attrs.end?.kind === "int" ? norm(p.attrs.end.value) : r;
      return Math.max(0, en - st);
    }
    if (p?.op === "Concat") return p.inputs.reduce((a, x) => a + lengthOf(x!), 0);
    throw new Error(`gradients: cannot tell the length of shape tensor ${s}`);
  };
  const rank = (v: Value): number => {
    if (v.shape) return v.shape.length;
    const m = memo.get(v.id);
    if (m !== undefined) return m;
    const p = v.producer;
    let r: number;
    if (!p) throw new Error(`gradients: rank of ${v} is unknown`);
    if (p.op === "Reshape") r = lengthOf(p.inputs[1]!);
    else if (p.op === "Expand") r = Math.max(rank(p.inputs[0]!), lengthOf(p.inputs[1]!));
    else if (p.op === "Gather") r = rank(p.inputs[0]!) - 1 + rank(p.inputs[1]!);
    else if (p.op === "ConstantOfShape") r = lengthOf(p.inputs[0]!);
    else {
      r = 0;
      // Elementwise ops, MatMul, Softmax…: the largest rank among the data inputs.
      for (const x of p.inputs) if (x && x.dtype !== "int64") r = Math.max(r, rank(x));
      if (p.op === "Where") r = Math.max(r, rank(p.inputs[0]!));
    }
    memo.set(v.id, r);
    return r;
  };
  return rank;
}
