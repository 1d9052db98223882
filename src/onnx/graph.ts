/**
 * A small explicit graph IR for building ONNX models from TypeScript.
 *
 * A Graph holds Values (typed edges with a dtype and a possibly symbolic shape) and Nodes (one ONNX
 * operator each, in the order they were added, which is always a topological order). Nothing is
 * hidden in closures: a pass such as reverse-mode autodiff can walk `graph.nodes` backwards, read
 * each node's op, attributes, inputs and outputs, and append new nodes with the same op helpers
 * (src/onnx/ops.ts). Serialization lives in src/onnx/serialize.ts.
 */

export type DType = "float32" | "float16" | "int64" | "int32" | "bool" | "uint8";
/** A dimension: a known size, or a symbolic name ("batch", "?" for unknown). */
export type Dim = number | string;
export type Shape = readonly Dim[];

export type TensorArray =
  | Float32Array
  | BigInt64Array
  | Int32Array
  | Uint8Array
  | Uint16Array;

/** Tensor data for initializers and constants. */
export interface TensorData {
  dtype: DType;
  dims: readonly number[];
  data: TensorArray;
}

/** ONNX attribute values, tagged so ints and floats stay distinct. */
export type Attr =
  | { kind: "int"; value: number }
  | { kind: "float"; value: number }
  | { kind: "ints"; value: readonly number[] }
  | { kind: "floats"; value: readonly number[] }
  | { kind: "string"; value: string }
  | { kind: "tensor"; value: TensorData }
  /**
   * A subgraph that returns one value of the enclosing graph (an `If` branch that selects it):
   * serialized as a GraphProto with one Identity. Its value is an implicit input of the node
   * (readsOf).
   */
  | { kind: "returns"; value: Value };

export const attr = {
  int: (value: number): Attr => ({ kind: "int", value }),
  float: (value: number): Attr => ({ kind: "float", value }),
  ints: (value: readonly number[]): Attr => ({ kind: "ints", value }),
  floats: (value: readonly number[]): Attr => ({ kind: "floats", value }),
  string: (value: string): Attr => ({ kind: "string", value }),
  tensor: (value: TensorData): Attr => ({ kind: "tensor", value }),
  returns: (value: Value): Attr => ({ kind: "returns", value }),
};

/**
 * The values a node reads: its inputs and the enclosing-graph values its subgraph attributes
 * return (which ONNX Runtime treats as the node's implicit inputs).
 *
 * @example
 * ```ts ignore
 * for (const v of readsOf(node)) live.add(v.id);
 * ```
 */
export function readsOf(n: Node): Value[] {
  const out: Value[] = [];
  for (const v of n.inputs) if (v) out.push(v);
  for (const a of Object.values(n.attrs)) if (a.kind === "returns") out.push(a.value);
  return out;
}

export type ValueKind = "input" | "initializer" | "node";

export class Value {
  constructor(
    readonly graph: Graph,
    readonly id: number,
    public name: string,
    readonly dtype: DType,
    /** null: rank unknown. */
    public shape: Shape | null,
    readonly kind: ValueKind,
    /** The node that computes this value (kind "node"). */
    readonly producer: Node | null,
  ) {}

  get rank(): number | null {
    return this.shape === null ? null : this.shape.length;
  }

  toString(): string {
    return `${this.name}: ${this.dtype}[${this.shape?.join(", ") ?? "?"}]`;
  }
}

export interface Node {
  readonly id: number;
  readonly name: string;
  readonly op: string;
  /** "" is the default ONNX domain; "com.microsoft" for ORT contrib ops. */
  readonly domain: string;
  /** null marks an omitted optional input. */
  readonly inputs: readonly (Value | null)[];
  readonly outputs: readonly Value[];
  readonly attrs: Readonly<Record<string, Attr>>;
}

export interface OutputSpec {
  dtype: DType;
  shape: Shape | null;
  name?: string;
}

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly values: Value[] = [];
  /** Initializer data by value id. */
  readonly initializers = new Map<number, TensorData>();
  readonly #names = new Set<string>();
  #nextNode = 0;

  constructor(public name = "graph") {}

  #uniqueName(base: string): string {
    let name = base;
    for (let i = 1; this.#names.has(name); i++) name = `${base}_${i}`;
    this.#names.add(name);
    return name;
  }

  #newValue(
    name: string,
    dtype: DType,
    shape: Shape | null,
    kind: ValueKind,
    producer: Node | null,
  ): Value {
    const v = new Value(this, this.values.length, name, dtype, shape, kind, producer);
    this.values.push(v);
    return v;
  }

  /** A graph input fed at run time. Its name must be unused. */
  input(name: string, dtype: DType, shape: Shape): Value {
    if (this.#names.has(name)) throw new Error(`graph ${this.name}: duplicate name '${name}'`);
    this.#names.add(name);
    const v = this.#newValue(name, dtype, [...shape], "input", null);
    this.inputs.push(v);
    return v;
  }

  /** A named initializer (weights). */
  initializer(name: string, t: TensorData): Value {
    if (this.#names.has(name)) throw new Error(`graph ${this.name}: duplicate name '${name}'`);
    checkTensor(t, name);
    this.#names.add(name);
    const v = this.#newValue(name, t.dtype, [...t.dims], "initializer", null);
    this.initializers.set(v.id, t);
    return v;
  }

  /** An anonymous constant (stored as an initializer). */
  constant(t: TensorData, hint = "const"): Value {
    checkTensor(t, hint);
    const v = this.#newValue(this.#uniqueName(hint), t.dtype, [...t.dims], "initializer", null);
    this.initializers.set(v.id, t);
    return v;
  }

  /** A float32 (or other dtype) scalar constant. */
  scalar(x: number, dtype: DType = "float32"): Value {
    return this.constant({ dtype, dims: [], data: makeArray(dtype, [x]) }, "scalar");
  }

  /** A 1-D int64 constant (shapes, axes, indices). */
  ints(xs: readonly number[]): Value {
    return this.constant(
      { dtype: "int64", dims: [xs.length], data: makeArray("int64", xs) },
      "ints",
    );
  }

  /** Add a node; returns its outputs. */
  node(
    op: string,
    inputs: readonly (Value | null)[],
    outputs: readonly OutputSpec[],
    attrs: Record<string, Attr> = {},
    opts: { domain?: string; name?: string } = {},
  ): Value[] {
    for (const v of inputs) {
      if (v && v.graph !== this) throw new Error(`${op}: input ${v.name} belongs to another graph`);
    }
    for (const [k, a] of Object.entries(attrs)) {
      if (a.kind === "returns" && a.value.graph !== this) {
        throw new Error(`${op}: attribute ${k} returns ${a.value.name} of another graph`);
      }
    }
    const id = this.#nextNode++;
    const name = this.#uniqueName(opts.name ?? `${op}_${id}`);
    const outs: Value[] = [];
    const node: Node = {
      id,
      name,
      op,
      domain: opts.domain ?? "",
      inputs: [...inputs],
      outputs: outs,
      attrs: { ...attrs },
    };
    for (const o of outputs) {
      outs.push(
        this.#newValue(
          this.#uniqueName(o.name ?? `${name}_out`),
          o.dtype,
          o.shape === null ? null : [...o.shape],
          "node",
          node,
        ),
      );
    }
    this.nodes.push(node);
    return outs;
  }

  /** Mark a value as a graph output, optionally renaming it (the name must be unused). */
  output(v: Value, name?: string): Value {
    if (v.graph !== this) throw new Error(`output ${v.name} belongs to another graph`);
    if (name !== undefined && name !== v.name) {
      if (v.kind !== "node") {
        // Inputs/initializers keep their names; route through an Identity.
        const [id] = this.node("Identity", [v], [{ dtype: v.dtype, shape: v.shape, name }]);
        if (id.name !== name) throw new Error(`graph ${this.name}: duplicate name '${name}'`);
        this.outputs.push(id);
        return id;
      }
      if (this.#names.has(name)) throw new Error(`graph ${this.name}: duplicate name '${name}'`);
      this.#names.delete(v.name);
      this.#names.add(name);
      v.name = name;
    }
    this.outputs.push(v);
    return v;
  }

  /** The nodes that read each value (by value id); useful for backward passes. */
  consumers(): Map<number, Node[]> {
    const m = new Map<number, Node[]>();
    for (const n of this.nodes) {
      for (const v of readsOf(n)) {
        const list = m.get(v.id);
        if (list) list.push(n);
        else m.set(v.id, [n]);
      }
    }
    return m;
  }
}

export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function makeArray(dtype: DType, xs: readonly number[]): TensorArray {
  switch (dtype) {
    case "float32":
      return Float32Array.from(xs);
    case "int64":
      return BigInt64Array.from(xs, (x) => BigInt(x));
    case "int32":
      return Int32Array.from(xs);
    case "bool":
    case "uint8":
      return Uint8Array.from(xs);
    case "float16":
      return Uint16Array.from(xs, f32ToF16);
  }
}

function checkTensor(t: TensorData, name: string): void {
  const n = elementCount(t.dims);
  if (t.data.length !== n) {
    throw new Error(
      `tensor ${name}: dims [${t.dims.join(", ")}] need ${n} elements, data has ${t.data.length}`,
    );
  }
}

/** float32 → IEEE half (round to nearest even). */
export function f32ToF16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}
