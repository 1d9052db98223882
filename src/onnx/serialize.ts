/**
 * Graph IR → ONNX ModelProto bytes, through onnx-proto (protobufjs). Deno needs the default
 * import (the named import fails; see ../shared/PLATFORM.md).
 */
import p from "onnx-proto";
import type { Attr, DType, Graph, Shape, TensorData, Value } from "./graph.ts";

const { onnx } = p;

const DT: Record<DType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
  uint8: onnx.TensorProto.DataType.UINT8,
};

export interface SerializeOptions {
  /** Default-domain opset (17 or later). */
  opset?: number;
  producer?: string;
  /** Extra opset imports, e.g. { "com.microsoft": 1 } for contrib ops. */
  extraOpsets?: Record<string, number>;
}

/**
 * One initializer kept outside the protobuf (ONNX external data): ORT reads it from memory under
 * `path` (onnxruntime-node's `externalData` session option), so weights never pass through the
 * 2 GB protobuf and are not copied into it. `data` is a view of the tensor's own array.
 */
export interface ExternalTensor {
  path: string;
  data: Uint8Array;
}

/** Model bytes holding no weight data, plus the initializers they reference. */
export interface SerializedModel {
  model: Uint8Array;
  externalData: ExternalTensor[];
}

/**
 * Float initializers with at least this many elements go to external data (every weight matrix;
 * small constants such as shapes stay inline, where ORT's shape inference reads them).
 */
export const EXTERNAL_MIN_ELEMENTS = 1024;

function externalTensorProto(name: string, t: TensorData, path: string) {
  const d = t.data;
  return onnx.TensorProto.create({
    name,
    dims: [...t.dims],
    dataType: DT[t.dtype],
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      onnx.StringStringEntryProto.create({ key: "location", value: path }),
      onnx.StringStringEntryProto.create({ key: "offset", value: "0" }),
      onnx.StringStringEntryProto.create({ key: "length", value: String(d.byteLength) }),
    ],
  });
}

function tensorProto(name: string, t: TensorData) {
  const d = t.data;
  // Little-endian hosts only (x86-64/arm64): raw_data is the array's bytes.
  const raw = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  return onnx.TensorProto.create({
    name,
    dims: [...t.dims],
    dataType: DT[t.dtype],
    rawData: raw,
  });
}

function valueInfo(v: Value | { name: string; dtype: DType; shape: Shape | null }) {
  const shape = v.shape === null ? undefined : onnx.TensorShapeProto.create({
    dim: v.shape.map((d) =>
      typeof d === "number"
        ? onnx.TensorShapeProto.Dimension.create({ dimValue: d })
        : onnx.TensorShapeProto.Dimension.create({ dimParam: d === "?" ? undefined : d })
    ),
  });
  return onnx.ValueInfoProto.create({
    name: v.name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({ elemType: DT[v.dtype], shape }),
    }),
  });
}

/** `node`: the name of the node that holds the attribute (names its subgraph). */
function attrProto(name: string, a: Attr, node: string) {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.kind) {
    case "int":
      return onnx.AttributeProto.create({ name, type: T.INT, i: a.value });
    case "float":
      return onnx.AttributeProto.create({ name, type: T.FLOAT, f: a.value });
    case "ints":
      return onnx.AttributeProto.create({ name, type: T.INTS, ints: [...a.value] });
    case "floats":
      return onnx.AttributeProto.create({ name, type: T.FLOATS, floats: [...a.value] });
    case "string":
      return onnx.AttributeProto.create({
        name,
        type: T.STRING,
        s: new TextEncoder().encode(a.value),
      });
    case "tensor":
      return onnx.AttributeProto.create({ name, type: T.TENSOR, t: tensorProto("", a.value) });
    case "returns": {
      // One Identity of the enclosing graph's value; the output's name is unique to the branch.
      const out = `${node}/${name}/out`;
      const g = onnx.GraphProto.create({
        name: `${node}/${name}`,
        node: [onnx.NodeProto.create({
          name: `${node}/${name}/identity`,
          opType: "Identity",
          input: [a.value.name],
          output: [out],
        })],
        output: [valueInfo({ name: out, dtype: a.value.dtype, shape: a.value.shape })],
      });
      return onnx.AttributeProto.create({ name, type: T.GRAPH, g });
    }
  }
}

/** Serialize a graph to ONNX model bytes (every initializer inline: under 2 GB in all). */
export function serializeModel(graph: Graph, opts: SerializeOptions = {}): Uint8Array {
  return encodeModel(graph, opts, null);
}

/**
 * Serialize a graph with its large float initializers as external data (`SerializedModel`): the
 * protobuf stays small whatever the weights weigh, and the weights are not copied.
 */
export function serializeModelExternal(
  graph: Graph,
  opts: SerializeOptions = {},
): SerializedModel {
  const externalData: ExternalTensor[] = [];
  const model = encodeModel(graph, opts, externalData);
  return { model, externalData };
}

function encodeModel(
  graph: Graph,
  opts: SerializeOptions,
  external: ExternalTensor[] | null,
): Uint8Array {
  const opset = opts.opset ?? 17;
  if (opset < 17) throw new Error(`opset ${opset} < 17 is not supported`);
  const initializer = [];
  for (const v of graph.values) {
    const t = graph.initializers.get(v.id);
    if (!t) continue;
    if (external && t.dtype === "float32" && t.data.length >= EXTERNAL_MIN_ELEMENTS) {
      const path = `w${external.length}.bin`;
      const d = t.data;
      if (d.byteLength >= 2 ** 31) {
        throw new Error(
          `initializer '${v.name}' has ${d.byteLength} bytes: ONNX Runtime takes at most 2 GiB ` +
            `per tensor from memory (split it, e.g. an embedding by rows)`,
        );
      }
      external.push({ path, data: new Uint8Array(d.buffer, d.byteOffset, d.byteLength) });
      initializer.push(externalTensorProto(v.name, t, path));
    } else initializer.push(tensorProto(v.name, t));
  }
  const node = graph.nodes.map((n) =>
    onnx.NodeProto.create({
      name: n.name,
      opType: n.op,
      domain: n.domain || undefined,
      input: n.inputs.map((v) => (v ? v.name : "")),
      output: n.outputs.map((v) => v.name),
      attribute: Object.entries(n.attrs).map(([k, a]) => attrProto(k, a, n.name)),
    })
  );
  const g = onnx.GraphProto.create({
    name: graph.name,
    node,
    initializer,
    input: graph.inputs.map(valueInfo),
    output: graph.outputs.map(valueInfo),
  });
  const opsetImport = [onnx.OperatorSetIdProto.create({ domain: "", version: opset })];
  for (const [domain, version] of Object.entries(opts.extraOpsets ?? {})) {
    opsetImport.push(onnx.OperatorSetIdProto.create({ domain, version }));
  }
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: opts.producer ?? "arpo-lab",
    opsetImport,
    graph: g,
  });
  return onnx.ModelProto.encode(model).finish();
}
