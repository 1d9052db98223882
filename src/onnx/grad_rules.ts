/**
 * Vector-Jacobian rules, one per ONNX operator, for reverse-mode autodiff (./autodiff.ts).
 *
 * A rule gets the node, the cotangents of its outputs (null where an output does not reach the
 * loss) and returns one cotangent per input (null: no gradient). Rules emit standard ONNX ops only.
 * Where a size is symbolic the rule reads it at run time (Shape), so graphs stay shape-generic.
 * Broadcasting is undone by summing over the axes where the input had a static 1 (or was missing):
 * a symbolic input dimension is taken to equal the output's, which holds for every graph built
 * here (broadcast dims are always static 1s or absent ranks).
 */
import { attr, type Graph, type Node, type Value } from "./graph.ts";
import * as op from "./ops.ts";

export interface RuleContext {
  graph: Graph;
  /** Rank of a forward value (resolved through runtime reshapes when the shape is unknown). */
  rankOf: (v: Value) => number;
}

export type GradRule = (
  node: Node,
  gouts: readonly (Value | null)[],
  ctx: RuleContext,
  needs: (input: number) => boolean,
) => (Value | null)[];

/** Ops whose outputs carry no gradient (integer/boolean results, shape computations). */
export const NON_DIFFERENTIABLE: ReadonlySet<string> = new Set([
  "Shape",
  "Size",
  "Equal",
  "Less",
  "LessOrEqual",
  "Greater",
  "GreaterOrEqual",
  "And",
  "Or",
  "Not",
  "Range",
  "ConstantOfShape",
  "OneHot",
  "ArgMax",
  "ArgMin",
  "NonZero",
  // Only ever emitted by ops.stopGradient (inference-mode Dropout is the identity).
  "Dropout",
]);

// ---------------------------------------------------------------------------------------------
// helpers

function constInts(g: Graph, v: Value | null | undefined): number[] | null {
  if (!v) return null;
  const t = g.initializers.get(v.id);
  if (!t) return null;
  return Array.from(t.data as ArrayLike<number | bigint>, (x) => Number(x));
}

function constScalar(g: Graph, v: Value): number | null {
  const t = g.initializers.get(v.id);
  if (!t || t.data.length !== 1 || t.dtype !== "float32") return null;
  return (t.data as Float32Array)[0];
}

function isStatic(v: Value): v is Value & { shape: number[] } {
  return v.shape !== null && v.shape.every((d) => typeof d === "number");
}

/** Reshape `g` to the (run-time) shape of `x`. */
export function reshapeLike(g: Value, x: Value): Value {
  const y = isStatic(x) ? op.reshape(g, x.shape) : op.reshape(g, op.shapeOf(x));
  y.shape = x.shape ? [...x.shape] : null;
  return y;
}

/**
 * Undo numpy broadcasting: `g` has the shape of `out` (the broadcast result); return the sum of
 * `g` over the axes that `x` was broadcast along, shaped like `x`.
 */
export function unbroadcast(g: Value, x: Value, out: Value, ctx: RuleContext): Value {
  const rx = ctx.rankOf(x), ro = ctx.rankOf(out);
  const lead = ro - rx;
  const axes: number[] = [];
  for (let i = 0; i < lead; i++) axes.push(i);
  for (let j = 0; j < rx; j++) {
    const dx = x.shape?.[j];
    const dout = out.shape?.[j + lead];
    if (dx === 1 && dout !== 1) axes.push(j + lead);
  }
  if (axes.length === 0) return g;
  const r = op.reduceSum(g, axes, true);
  if (lead === 0) {
    r.shape = x.shape ? [...x.shape] : r.shape;
    return r;
  }
  return reshapeLike(r, x);
}

function lastTwoSwapped(x: Value, rank: number): Value {
  const perm = [...Array(rank).keys()];
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return op.transpose(x, perm);
}

/** [..., k] → [N, k] with k read at run time. */
function flatten2(x: Value): Value {
  return op.reshape(x, op.concat([x.graph.ints([-1]), op.shapeOf(x, -1)], 0));
}

function normAxes(axes: readonly number[], rank: number): number[] {
  return axes.map((a) => (a < 0 ? a + rank : a)).sort((a, b) => a - b);
}

/** Broadcast a reduced cotangent back over the reduced axes of x. */
function expandReduced(
  g: Value,
  x: Value,
  axes: number[] | null,
  keepdims: boolean,
  ctx: RuleContext,
): Value {
  const r = ctx.rankOf(x);
  const ax = axes === null || axes.length === 0 ? [...Array(r).keys()] : normAxes(axes, r);
  let gk = g;
  if (!keepdims) gk = op.unsqueeze(g, ax);
  const y = op.expand(gk, op.shapeOf(x));
  y.shape = x.shape ? [...x.shape] : null;
  return y;
}

/** Number of elements reduced (static when the reduced dims are, else computed at run time). */
function reducedCount(
  x: Value,
  axes: number[] | null,
  ctx: RuleContext,
  out: Value,
): Value | number {
  const r = ctx.rankOf(x);
  const ax = axes === null || axes.length === 0 ? [...Array(r).keys()] : normAxes(axes, r);
  if (x.shape && ax.every((a) => typeof x.shape![a] === "number")) {
    return ax.reduce((a, k) => a * (x.shape![k] as number), 1);
  }
  const g = x.graph;
  const size = (v: Value) =>
    op.cast(g.node("Size", [v], [{ dtype: "int64", shape: [] }])[0], "float32");
  return op.div(size(x), size(out));
}

function zerosOfShapeOf(x: Value): Value {
  const z = op.constantOfShape(op.shapeOf(x), 0, x.dtype);
  z.shape = x.shape ? [...x.shape] : null;
  return z;
}

// ---------------------------------------------------------------------------------------------
// rules

const same = (n: Node) => n.outputs[0];

/** Embedding tables up to this many rows take the deterministic one-hot gradient (see Gather). */
export const ONE_HOT_MAX_ROWS = 4096;

const unaryRule = (f: (g: Value, x: Value, y: Value) => Value): GradRule => (n, [g]) => [
  f(g!, n.inputs[0]!, same(n)),
];

export const GRAD_RULES: Record<string, GradRule> = {
  Identity: (_n, [g]) => [g],
  Neg: unaryRule((g) => op.neg(g)),
  Exp: unaryRule((g, _x, y) => op.mul(g, y)),
  Log: unaryRule((g, x) => op.div(g, x)),
  Sqrt: unaryRule((g, _x, y) => op.div(op.mul(g, 0.5), y)),
  Reciprocal: unaryRule((g, _x, y) => op.neg(op.mul(g, op.mul(y, y)))),
  Sigmoid: unaryRule((g, _x, y) => op.mul(g, op.mul(y, op.sub(1, y)))),
  Tanh: unaryRule((g, _x, y) => op.mul(g, op.sub(1, op.mul(y, y)))),
  Relu: unaryRule((g, x) => op.where(op.greater(x, 0), g, 0)),
  Sin: unaryRule((g, x) => op.mul(g, op.cos(x))),
  Cos: unaryRule((g, x) => op.neg(op.mul(g, op.sin(x)))),
  Abs: unaryRule((g, x) => op.where(op.less(x, 0), op.neg(g), g)),

  Add: (n, [g], ctx, needs) => {
    const [a, b] = n.inputs as Value[];
    return [
      needs(0) ? unbroadcast(g!, a, same(n), ctx) : null,
      needs(1) ? unbroadcast(g!, b, same(n), ctx) : null,
    ];
  },
  Sum: (n, [g], ctx, needs) =>
    n.inputs.map((x, k) => (needs(k) ? unbroadcast(g!, x!, same(n), ctx) : null)),
  Sub: (n, [g], ctx, needs) => {
    const [a, b] = n.inputs as Value[];
    return [
      needs(0) ? unbroadcast(g!, a, same(n), ctx) : null,
      needs(1) ? unbroadcast(op.neg(g!), b, same(n), ctx) : null,
    ];
  },
  Mul: (n, [g], ctx, needs) => {
    const [a, b] = n.inputs as Value[];
    return [
      needs(0) ? unbroadcast(op.mul(g!, b), a, same(n), ctx) : null,
      needs(1) ? unbroadcast(op.mul(g!, a), b, same(n), ctx) : null,
    ];
  },
  Div: (n, [g], ctx, needs) => {
    const [a, b] = n.inputs as Value[];
    const y = same(n);
    return [
      needs(0) ? unbroadcast(op.div(g!, b), a, y, ctx) : null,
      needs(1) ? unbroadcast(op.neg(op.div(op.mul(g!, y), b)), b, y, ctx) : null,
    ];
  },
  Pow: (n, [g], ctx, needs) => {
    const [a, b] = n.inputs as Value[];
    const y = same(n);
    let ga: Value | null = null;
    if (needs(0)) {
      const c = constScalar(ctx.graph, b);
      // d/da a^c = c·a^(c−1); the common c = 2 avoids a Pow.
      const local = c === 2 ? op.mul(a, 2) : c === 1 ? null : op.mul(b, op.pow(a, op.sub(b, 1)));
      ga = unbroadcast(local ? op.mul(g!, local) : g!, a, y, ctx);
    }
    const gb = needs(1) ? unbroadcast(op.mul(g!, op.mul(y, op.log(a))), b, y, ctx) : null;
    return [ga, gb];
  },
  Max: (n, [g], ctx, needs) => {
    const [a, b] = n.inputs as Value[];
    const takeA = op.greater(b, a); // ties go to a
    return [
      needs(0) ? unbroadcast(op.where(takeA, 0, g!), a, same(n), ctx) : null,
      needs(1) ? unbroadcast(op.where(takeA, g!, 0), b, same(n), ctx) : null,
    ];
  },
  Min: (n, [g], ctx, needs) => {
    const [a, b] = n.inputs as Value[];
    const takeB = op.less(b, a); // ties go to a
    return [
      needs(0) ? unbroadcast(op.where(takeB, 0, g!), a, same(n), ctx) : null,
      needs(1) ? unbroadcast(op.where(takeB, g!, 0), b, same(n), ctx) : null,
    ];
  },
  Where: (n, [g], ctx, needs) => {
    const [c, a, b] = n.inputs as Value[];
    return [
      null,
      needs(1) ? unbroadcast(op.where(c, g!, 0), a, same(n), ctx) : null,
      needs(2) ? unbroadcast(op.where(c, 0, g!), b, same(n), ctx) : null,
    ];
  },
  Cast: (n, [g]) => {
    const x = n.inputs[0]!;
    if (x.dtype !== "float32" && x.dtype !== "float16") return [null];
    return [g!.dtype === x.dtype ? g : op.cast(g!, x.dtype)];
  },

  MatMul: (n, [g], ctx, needs) => {
    const [a, b] = n.inputs as Value[];
    const y = same(n);
    const ra = ctx.rankOf(a), rb = ctx.rankOf(b), ry = ctx.rankOf(y);
    if (ra < 2 || rb < 2) throw new Error(`gradients: MatMul with a 1-D operand (${n.name})`);
    let ga: Value | null = null, gb: Value | null = null;
    if (needs(0)) ga = unbroadcast(op.matmul(g!, lastTwoSwapped(b, rb)), a, y, ctx);
    if (needs(1)) {
      if (rb === 2 && ra > 2) {
        // Weight of a batched activation: fold the batch dims into one GEMM (no batched
        // product followed by a reduction).
        const k = a.shape?.[ra - 1], m = y.shape?.[ry - 1];
        const a2 = typeof k === "number" ? op.reshape(a, [-1, k]) : flatten2(a);
        const g2 = typeof m === "number" ? op.reshape(g!, [-1, m]) : flatten2(g!);
        const bp = b.producer;
        if (
          bp?.op === "Transpose" && bp.attrs.perm?.kind === "ints" && bp.attrs.perm.value[0] === 1
        ) {
          // b = Wᵀ (an HF [out, in] linear weight): compute dW = g2ᵀ·a2 directly and hand back
          // its transpose, which the Transpose rule cancels (no transposed copy of dW).
          gb = op.transpose(op.matmul(op.transpose(g2, [1, 0]), a2), [1, 0]);
        } else gb = op.matmul(op.transpose(a2, [1, 0]), g2);
        gb.shape = b.shape ? [...b.shape] : null;
      } else {
        gb = unbroadcast(op.matmul(lastTwoSwapped(a, ra), g!), b, y, ctx);
      }
    }
    return [ga, gb];
  },

  ReduceSum: (n, [g], ctx) => {
    const x = n.inputs[0]!;
    const axes = constInts(ctx.graph, n.inputs[1]);
    if (n.inputs[1] && axes === null) throw new Error(`gradients: ReduceSum with runtime axes`);
    const keep = n.attrs.keepdims?.kind === "int" ? n.attrs.keepdims.value !== 0 : true;
    return [expandReduced(g!, x, axes, keep, ctx), null];
  },
  ReduceMean: (n, [g], ctx) => {
    const x = n.inputs[0]!;
    const axes = n.attrs.axes?.kind === "ints" ? [...n.attrs.axes.value] : null;
    const keep = n.attrs.keepdims?.kind === "int" ? n.attrs.keepdims.value !== 0 : true;
    const count = reducedCount(x, axes, ctx, same(n));
    const scaled = typeof count === "number" ? op.mul(g!, 1 / count) : op.div(g!, count);
    return [expandReduced(scaled, x, axes, keep, ctx)];
  },

  Softmax: (n, [g]) => {
    const y = same(n);
    const axis = n.attrs.axis?.kind === "int" ? n.attrs.axis.value : -1;
    const gy = op.mul(g!, y);
    return [op.sub(gy, op.mul(y, op.reduceSum(gy, [axis], true)))];
  },
  LogSoftmax: (n, [g]) => {
    const y = same(n);
    const axis = n.attrs.axis?.kind === "int" ? n.attrs.axis.value : -1;
    return [op.sub(g!, op.mul(op.exp(y), op.reduceSum(g!, [axis], true)))];
  },

  Gather: (n, [g], _ctx, needs) => {
    const [data, idx] = n.inputs as Value[];
    if (!needs(0)) return [null, null];
    const axis = n.attrs.axis?.kind === "int" ? n.attrs.axis.value : 0;
    if (axis !== 0) throw new Error(`gradients: Gather on axis ${axis} (${n.name}); only axis 0`);
    const [rows, width] = data.shape ?? [];
    if (
      data.shape?.length === 2 && typeof rows === "number" && typeof width === "number" &&
      rows <= ONE_HOT_MAX_ROWS && data.dtype === "float32"
    ) {
      // Small tables (byte-level vocabularies): oneHot(idx)ᵀ · g. ORT's multi-threaded ScatterND
      // adds repeated rows in a thread-dependent order, which made training bytes differ between
      // runs with 2 threads; a MatMul reduces in a fixed order.
      const g0 = data.graph;
      const [oh] = g0.node(
        "OneHot",
        [
          op.reshape(idx, [-1]),
          g0.constant(
            { dtype: "int64", dims: [], data: BigInt64Array.from([BigInt(rows)]) },
            "depth",
          ),
          g0.constant({ dtype: "float32", dims: [2], data: Float32Array.from([0, 1]) }, "onehot"),
        ],
        [{ dtype: "float32", shape: ["?", rows] }],
        { axis: attr.int(-1) },
      );
      return [op.matmul(op.transpose(oh, [1, 0]), op.reshape(g!, [-1, width])), null];
    }
    // Large tables: rows gathered several times (repeated token ids) add up through ScatterND.
    // With several intra-op threads its summation order can vary between runs.
    const [gd] = data.graph.node("ScatterND", [zerosOfShapeOf(data), op.unsqueeze(idx, [-1]), g!], [
      { dtype: data.dtype, shape: data.shape },
    ], { reduction: attr.string("add") });
    return [gd, null];
  },
  GatherElements: (n, [g], _ctx, needs) => {
    const [data, idx] = n.inputs as Value[];
    if (!needs(0)) return [null, null];
    const axis = n.attrs.axis?.kind === "int" ? n.attrs.axis.value : 0;
    const [gd] = data.graph.node("ScatterElements", [zerosOfShapeOf(data), idx, g!], [
      { dtype: data.dtype, shape: data.shape },
    ], { axis: attr.int(axis), reduction: attr.string("add") });
    return [gd, null];
  },

  Reshape: (n, [g]) => [reshapeLike(g!, n.inputs[0]!), null],
  Squeeze: (n, [g]) => [reshapeLike(g!, n.inputs[0]!), null],
  Unsqueeze: (n, [g]) => [reshapeLike(g!, n.inputs[0]!), null],
  Flatten: (n, [g]) => [reshapeLike(g!, n.inputs[0]!)],
  Expand: (n, [g], ctx) => [unbroadcast(g!, n.inputs[0]!, same(n), ctx), null],
  Transpose: (n, [g], ctx) => {
    const r = ctx.rankOf(n.inputs[0]!);
    const perm = n.attrs.perm?.kind === "ints"
      ? [...n.attrs.perm.value]
      : [...Array(r).keys()].reverse();
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    const gp = g!.producer;
    if (gp?.op === "Transpose" && gp.attrs.perm?.kind === "ints") {
      // Transpose of a transpose: compose, and drop both when they cancel.
      const p0 = gp.attrs.perm.value;
      const composed = inv.map((i) => p0[i]);
      if (composed.every((x, i) => x === i)) return [gp.inputs[0]];
      return [op.transpose(gp.inputs[0]!, composed)];
    }
    return [op.transpose(g!, inv)];
  },
  Slice: (n, [g], ctx) => {
    const x = n.inputs[0]!;
    const starts = constInts(ctx.graph, n.inputs[1]);
    const ends = constInts(ctx.graph, n.inputs[2]);
    const r = ctx.rankOf(x);
    const axes = n.inputs[3] ? constInts(ctx.graph, n.inputs[3]) : starts?.map((_, i) => i);
    const steps = n.inputs[4] ? constInts(ctx.graph, n.inputs[4]) : null;
    if (!starts || !ends || !axes || (steps && steps.some((s) => s !== 1))) {
      throw new Error(`gradients: Slice ${n.name} needs constant starts/ends/axes and step 1`);
    }
    const pads = new Array<number>(2 * r).fill(0);
    axes.forEach((a0, i) => {
      const a = a0 < 0 ? a0 + r : a0;
      const d = x.shape?.[a];
      if (typeof d !== "number") {
        throw new Error(`gradients: Slice ${n.name} on axis ${a} of symbolic size`);
      }
      const clamp = (v: number) => Math.max(0, Math.min(d, v < 0 ? v + d : v));
      const s = clamp(starts[i]), e = Math.max(s, clamp(ends[i]));
      pads[a] = s;
      pads[r + a] = d - e;
    });
    const [gx] = ctx.graph.node("Pad", [g!, ctx.graph.ints(pads)], [
      { dtype: x.dtype, shape: x.shape },
    ]);
    return [gx, null, null, null, null];
  },
  Concat: (n, [g], ctx, needs) => {
    const xs = n.inputs as Value[];
    const r = ctx.rankOf(xs[0]);
    const a0 = n.attrs.axis?.kind === "int" ? n.attrs.axis.value : 0;
    const a = a0 < 0 ? a0 + r : a0;
    const sizes = xs.map((x) => x.shape?.[a]);
    let parts: Value[];
    if (sizes.every((s) => typeof s === "number")) parts = op.split(g!, sizes as number[], a);
    else {
      const sizeV = op.concat(xs.map((x) => op.shapeOf(x, a, a + 1)), 0);
      parts = ctx.graph.node(
        "Split",
        [g!, sizeV],
        xs.map((x) => ({ dtype: x.dtype, shape: x.shape })),
        { axis: attr.int(a) },
      );
    }
    return parts.map((p, k) => (needs(k) ? p : null));
  },
  Split: (n, gouts, ctx) => {
    const x = n.inputs[0]!;
    const r = ctx.rankOf(x);
    const a0 = n.attrs.axis?.kind === "int" ? n.attrs.axis.value : 0;
    const parts = n.outputs.map((o, k) => gouts[k] ?? zerosOfShapeOf(o));
    const gx = op.concat(parts, a0 < 0 ? a0 + r : a0);
    gx.shape = x.shape ? [...x.shape] : null;
    return [gx, null];
  },
};
