/**
 * Typed op helpers over the Graph IR (opset 17 semantics). Each helper appends one ONNX node and
 * infers its output dtype and, where it can, its shape (symbolic dims pass through; "?" means
 * unknown). Scalars given as numbers become constants of the other operand's dtype.
 */
import {
  type Attr,
  attr,
  type Dim,
  type DType,
  type Graph,
  makeArray,
  type Shape,
  Value,
} from "./graph.ts";

export type Operand = Value | number;

function graphOf(...xs: Operand[]): Graph {
  for (const x of xs) if (x instanceof Value) return x.graph;
  throw new Error("op needs at least one Value operand");
}

function lift(g: Graph, x: Operand, dtype: DType): Value {
  return x instanceof Value ? x : g.constant({ dtype, dims: [], data: makeArray(dtype, [x]) }, "k");
}

function dtypeOf(...xs: Operand[]): DType {
  for (const x of xs) if (x instanceof Value) return x.dtype;
  return "float32";
}

/** Numpy-style broadcast of two shapes. */
export function broadcastShapes(a: Shape | null, b: Shape | null): Shape | null {
  if (a === null || b === null) return null;
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da === 1) out.push(db);
    else if (db === 1) out.push(da);
    else if (da === db) out.push(da);
    else if (typeof da === "number" && typeof db === "number") {
      throw new Error(`cannot broadcast [${a.join(", ")}] with [${b.join(", ")}]`);
    } else out.push(typeof da === "number" ? da : typeof db === "number" ? db : da);
  }
  return out;
}

function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

function unary(op: string, x: Value, attrs: Record<string, Attr> = {}): Value {
  return x.graph.node(op, [x], [{ dtype: x.dtype, shape: x.shape }], attrs)[0];
}

function binary(op: string, a: Operand, b: Operand, outDtype?: DType): Value {
  const g = graphOf(a, b);
  const dt = dtypeOf(a, b);
  const va = lift(g, a, dt), vb = lift(g, b, dt);
  if (va.dtype !== vb.dtype) throw new Error(`${op}: dtype mismatch ${va} vs ${vb}`);
  const shape = broadcastShapes(va.shape, vb.shape);
  return g.node(op, [va, vb], [{ dtype: outDtype ?? dt, shape }])[0];
}

export const add = (a: Operand, b: Operand): Value => binary("Add", a, b);
export const sub = (a: Operand, b: Operand): Value => binary("Sub", a, b);
export const mul = (a: Operand, b: Operand): Value => binary("Mul", a, b);
export const div = (a: Operand, b: Operand): Value => binary("Div", a, b);
export const pow = (a: Operand, b: Operand): Value => binary("Pow", a, b);
export const max = (a: Operand, b: Operand): Value => binary("Max", a, b);
export const min = (a: Operand, b: Operand): Value => binary("Min", a, b);
export const equal = (a: Operand, b: Operand): Value => binary("Equal", a, b, "bool");
export const less = (a: Operand, b: Operand): Value => binary("Less", a, b, "bool");
export const greater = (a: Operand, b: Operand): Value => binary("Greater", a, b, "bool");
export const and = (a: Value, b: Value): Value => binary("And", a, b, "bool");

export const neg = (x: Value): Value => unary("Neg", x);
export const sqrt = (x: Value): Value => unary("Sqrt", x);
export const reciprocal = (x: Value): Value => unary("Reciprocal", x);
export const exp = (x: Value): Value => unary("Exp", x);
export const log = (x: Value): Value => unary("Log", x);
export const sigmoid = (x: Value): Value => unary("Sigmoid", x);
export const tanh = (x: Value): Value => unary("Tanh", x);
export const relu = (x: Value): Value => unary("Relu", x);
export const cos = (x: Value): Value => unary("Cos", x);
export const sin = (x: Value): Value => unary("Sin", x);
export const abs = (x: Value): Value => unary("Abs", x);
export const not = (x: Value): Value => unary("Not", x);
export const identity = (x: Value): Value => unary("Identity", x);
/**
 * The value of x, with no gradient (torch's `.detach()`): an inference-mode Dropout, which ONNX
 * defines as the identity, and which autodiff treats as non-differentiable (grad_rules.ts). It is
 * the only use of Dropout in this project.
 */
export const stopGradient = (x: Value): Value => unary("Dropout", x);

/** MatMul with numpy broadcasting of batch dims. */
export function matmul(a: Value, b: Value): Value {
  if (a.dtype !== b.dtype) throw new Error(`MatMul: dtype mismatch ${a} vs ${b}`);
  let shape: Shape | null = null;
  if (a.shape && b.shape && a.shape.length >= 2 && b.shape.length >= 2) {
    const ka = a.shape[a.shape.length - 1], kb = b.shape[b.shape.length - 2];
    if (typeof ka === "number" && typeof kb === "number" && ka !== kb) {
      throw new Error(`MatMul: inner dims differ: ${a} × ${b}`);
    }
    const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2))!;
    shape = [...batch, a.shape[a.shape.length - 2], b.shape[b.shape.length - 1]];
  } else if (a.shape && b.shape && b.shape.length === 1) {
    shape = a.shape.slice(0, -1);
  }
  return a.graph.node("MatMul", [a, b], [{ dtype: a.dtype, shape }])[0];
}

function reducedShape(x: Value, axes: readonly number[], keepdims: boolean): Shape | null {
  if (!x.shape) return null;
  const r = x.shape.length;
  const ax = new Set(axes.map((a) => normAxis(a, r)));
  const out: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!ax.has(i)) out.push(d);
    else if (keepdims) out.push(1);
  });
  return out;
}

/** ReduceMean (opset 17: axes is an attribute). */
export function reduceMean(x: Value, axes: readonly number[], keepdims = true): Value {
  return x.graph.node(
    "ReduceMean",
    [x],
    [{ dtype: x.dtype, shape: reducedShape(x, axes, keepdims) }],
    { axes: attr.ints(axes), keepdims: attr.int(keepdims ? 1 : 0) },
  )[0];
}

/** ReduceLogSumExp (opset 17: axes is an attribute). */
export function reduceLogSumExp(x: Value, axes: readonly number[], keepdims = true): Value {
  return x.graph.node(
    "ReduceLogSumExp",
    [x],
    [{ dtype: x.dtype, shape: reducedShape(x, axes, keepdims) }],
    { axes: attr.ints(axes), keepdims: attr.int(keepdims ? 1 : 0) },
  )[0];
}

/** ReduceSum (opset 13+: axes is an input). */
export function reduceSum(x: Value, axes: readonly number[], keepdims = true): Value {
  return x.graph.node(
    "ReduceSum",
    [x, x.graph.ints(axes)],
    [{ dtype: x.dtype, shape: reducedShape(x, axes, keepdims) }],
    { keepdims: attr.int(keepdims ? 1 : 0) },
  )[0];
}

export const softmax = (x: Value, axis = -1): Value =>
  unary("Softmax", x, { axis: attr.int(axis) });
export const logSoftmax = (x: Value, axis = -1): Value =>
  unary("LogSoftmax", x, { axis: attr.int(axis) });

/** Gather along `axis` (embedding lookup: gather(table, ids, 0)). */
export function gather(data: Value, indices: Value, axis = 0): Value {
  let shape: Shape | null = null;
  if (data.shape && indices.shape) {
    const a = normAxis(axis, data.shape.length);
    shape = [...data.shape.slice(0, a), ...indices.shape, ...data.shape.slice(a + 1)];
  }
  return data.graph.node("Gather", [data, indices], [{ dtype: data.dtype, shape }], {
    axis: attr.int(axis),
  })[0];
}

/**
 * GatherElements: out[i][j] = data[index[i][j]][j] (axis 0) etc. Output shape = indices' shape.
 */
export function gatherElements(data: Value, indices: Value, axis: number): Value {
  return data.graph.node("GatherElements", [data, indices], [{
    dtype: data.dtype,
    shape: indices.shape,
  }], { axis: attr.int(axis) })[0];
}

/**
 * Reshape to a static target (0 copies the input dim, -1 is inferred), or to a runtime shape
 * Value. Shape inference copies symbolic dims for 0 entries.
 */
export function reshape(x: Value, target: readonly Dim[] | Value): Value {
  const g = x.graph;
  if (target instanceof Value) {
    return g.node("Reshape", [x, target], [{ dtype: x.dtype, shape: null }])[0];
  }
  const nums = target.map((d) => (typeof d === "number" ? d : -1));
  if (nums.filter((d) => d === -1).length > 1) {
    throw new Error(`Reshape: at most one -1/symbolic dim in static target [${target.join(", ")}]`);
  }
  const shape: Dim[] = target.map((d, i) => {
    if (d === 0) return x.shape?.[i] ?? "?";
    if (d === -1) return "?";
    return d;
  });
  return g.node("Reshape", [x, g.ints(nums)], [{ dtype: x.dtype, shape }])[0];
}

export function transpose(x: Value, perm: readonly number[]): Value {
  const shape = x.shape ? perm.map((p) => x.shape![p]) : null;
  return x.graph.node("Transpose", [x], [{ dtype: x.dtype, shape }], { perm: attr.ints(perm) })[0];
}

/** Static Slice: starts/ends/axes/steps are constants. */
export function slice(
  x: Value,
  starts: readonly number[],
  ends: readonly number[],
  axes?: readonly number[],
  steps?: readonly number[],
): Value {
  const g = x.graph;
  const ax = axes ?? starts.map((_, i) => i);
  const shape: Dim[] | null = x.shape ? [...x.shape] : null;
  if (shape) {
    ax.forEach((a, i) => {
      const k = normAxis(a, shape!.length);
      const d = shape![k];
      const st = steps?.[i] ?? 1;
      if (typeof d === "number" && st === 1) {
        const clamp = (v: number) => Math.max(0, Math.min(d, v < 0 ? v + d : v));
        shape![k] = Math.max(0, clamp(ends[i]) - clamp(starts[i]));
      } else if (st === 1 && starts[i] >= 0 && ends[i] >= 0 && ends[i] < 2 ** 31) {
        shape![k] = ends[i] - starts[i];
      } else shape![k] = "?";
    });
  }
  const inputs = [x, g.ints(starts), g.ints(ends), g.ints(ax)];
  if (steps) inputs.push(g.ints(steps));
  return g.node("Slice", inputs, [{ dtype: x.dtype, shape }])[0];
}

export function concat(xs: readonly Value[], axis: number): Value {
  const g = xs[0].graph;
  let shape: Dim[] | null = null;
  if (xs.every((x) => x.shape)) {
    const r = xs[0].shape!.length;
    const a = normAxis(axis, r);
    shape = [...xs[0].shape!];
    let total: Dim = 0;
    for (const x of xs) {
      const d = x.shape![a];
      total = typeof total === "number" && typeof d === "number" ? total + d : "?";
    }
    shape[a] = total;
  }
  return g.node("Concat", xs, [{ dtype: xs[0].dtype, shape }], { axis: attr.int(axis) })[0];
}

/** Split into pieces of the given sizes along an axis (opset 13+: sizes as input). */
export function split(x: Value, sizes: readonly number[], axis: number): Value[] {
  const g = x.graph;
  const outs = sizes.map((s) => {
    if (!x.shape) return { dtype: x.dtype, shape: null };
    const shape = [...x.shape];
    shape[normAxis(axis, shape.length)] = s;
    return { dtype: x.dtype, shape };
  });
  return g.node("Split", [x, g.ints(sizes)], outs, { axis: attr.int(axis) });
}

export function unsqueeze(x: Value, axes: readonly number[]): Value {
  let shape: Dim[] | null = null;
  if (x.shape) {
    const r = x.shape.length + axes.length;
    const ax = new Set(axes.map((a) => normAxis(a, r)));
    shape = [];
    let j = 0;
    for (let i = 0; i < r; i++) shape.push(ax.has(i) ? 1 : x.shape[j++]);
  }
  return x.graph.node("Unsqueeze", [x, x.graph.ints(axes)], [{ dtype: x.dtype, shape }])[0];
}

export function squeeze(x: Value, axes: readonly number[]): Value {
  let shape: Dim[] | null = null;
  if (x.shape) {
    const ax = new Set(axes.map((a) => normAxis(a, x.shape!.length)));
    shape = x.shape.filter((_, i) => !ax.has(i));
  }
  return x.graph.node("Squeeze", [x, x.graph.ints(axes)], [{ dtype: x.dtype, shape }])[0];
}

/**
 * `a` if the scalar `cond` is true, else `b`, whole (an `If` whose branches return them): the
 * same bits as Where(cond, a, b) with a scalar condition, at the cost of one copy, where ONNX
 * Runtime's CPU Where with a scalar condition takes several times an elementwise pass.
 *
 * @example
 * ```ts ignore
 * const next = op.select(finite, updated, old);
 * ```
 */
export function select(cond: Value, a: Value, b: Value): Value {
  if (cond.dtype !== "bool" || (cond.shape !== null && cond.shape.length !== 0)) {
    throw new Error(`select: the condition ${cond.name} must be a bool scalar`);
  }
  if (a.dtype !== b.dtype) throw new Error(`select: ${a.name} and ${b.name} differ in dtype`);
  const g = cond.graph;
  return g.node("If", [cond], [{ dtype: a.dtype, shape: a.shape ? [...a.shape] : null }], {
    then_branch: attr.returns(a),
    else_branch: attr.returns(b),
  })[0];
}

export function where(cond: Value, a: Operand, b: Operand): Value {
  const g = cond.graph;
  const dt = dtypeOf(a, b);
  const va = lift(g, a, dt), vb = lift(g, b, dt);
  const shape = broadcastShapes(cond.shape, broadcastShapes(va.shape, vb.shape));
  return g.node("Where", [cond, va, vb], [{ dtype: dt, shape }])[0];
}

const ONNX_DTYPE_CODE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
};

export function cast(x: Value, to: DType): Value {
  return x.graph.node("Cast", [x], [{ dtype: to, shape: x.shape }], {
    to: attr.int(ONNX_DTYPE_CODE[to]),
  })[0];
}

/** Expand to a runtime shape (int64 1-D Value) or static dims. */
export function expand(x: Value, shape: Value | readonly number[]): Value {
  const g = x.graph;
  const s = shape instanceof Value ? shape : g.ints(shape);
  const out = shape instanceof Value ? null : broadcastShapes(x.shape, shape);
  return g.node("Expand", [x, s], [{ dtype: x.dtype, shape: out }])[0];
}

/** Shape of x as a 1-D int64 tensor (optionally a start/end slice of it). */
export function shapeOf(x: Value, start?: number, end?: number): Value {
  const attrs: Record<string, Attr> = {};
  if (start !== undefined) attrs.start = attr.int(start);
  if (end !== undefined) attrs.end = attr.int(end);
  return x.graph.node("Shape", [x], [{ dtype: "int64", shape: ["?"] }], attrs)[0];
}

export function range(start: Value, limit: Value, delta: Value): Value {
  return start.graph.node("Range", [start, limit, delta], [{
    dtype: start.dtype,
    shape: ["?"],
  }])[0];
}

/** ConstantOfShape filled with a scalar of the given dtype. */
export function constantOfShape(shape: Value, fill: number, dtype: DType = "float32"): Value {
  return shape.graph.node("ConstantOfShape", [shape], [{ dtype, shape: null }], {
    value: attr.tensor({ dtype, dims: [1], data: makeArray(dtype, [fill]) }),
  })[0];
}
