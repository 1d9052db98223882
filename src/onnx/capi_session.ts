/**
 * A CPU session driven through ONNX Runtime's C API (Deno FFI), for runs that write outputs into
 * buffers the caller owns.
 *
 * onnxruntime-node copies every fetched output into a new ArrayBuffer, preallocated ones
 * included. A trainer that binds its weights and AdamW moments as preallocated outputs (the
 * in-place update, train/trainer.ts) therefore got 3× its state back as unread copies on every
 * step: +6 GB per update at the Qwen2.5-0.5B shape, freed only when V8 next collects. Here a
 * preallocated output is the caller's tensor, written by ONNX Runtime and returned as is.
 *
 * It is the same library as onnxruntime-node's (the libonnxruntime that package ships, opened by
 * path: the process holds one copy of it), the same model bytes and the same session options
 * (those of `baseOptions` in session.ts, mirrored field by field), so it runs the same kernels and
 * gives the same bits; tests/onnx_capi_session_test.ts checks that against onnxruntime-node.
 * Where FFI is not permitted, the library is not found or its version is not the binding's,
 * `capiUnavailable` says why and the caller keeps onnxruntime-node.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-node";

/** Session options the C API session honours (session.ts `baseOptions` maps the same fields). */
export interface CapiSessionOptions {
  /** intraOpNumThreads (and interOpNumThreads 1); 0 or undefined lets ORT decide. */
  threads?: number;
  optimization?: "disabled" | "basic" | "extended" | "all";
  /** false: intra- and inter-op threads do not spin between runs. */
  spinning?: boolean;
  /** false: no memory pattern (see session.ts). */
  memoryPattern?: boolean;
}

// Positions of the members of `struct OrtApi` (onnxruntime_c_api.h). The struct only ever grows at
// its end, so these hold for every API version from 13 on; API_VERSION asks for 13.
const API_VERSION = 13;
const IDX = {
  GetErrorMessage: 2,
  CreateEnv: 3,
  CreateSessionFromArray: 8,
  Run: 9,
  CreateSessionOptions: 10,
  DisableMemPattern: 17,
  SetSessionLogSeverityLevel: 22,
  SetSessionGraphOptimizationLevel: 23,
  SetIntraOpNumThreads: 24,
  SetInterOpNumThreads: 25,
  SessionGetInputCount: 30,
  SessionGetOutputCount: 31,
  SessionGetInputName: 36,
  SessionGetOutputName: 37,
  CreateTensorWithDataAsOrtValue: 49,
  GetTensorMutableData: 51,
  GetTensorElementType: 60,
  GetDimensionsCount: 61,
  GetDimensions: 62,
  GetTensorTypeAndShape: 65,
  CreateCpuMemoryInfo: 69,
  AllocatorFree: 76,
  GetAllocatorWithDefaultOptions: 78,
  ReleaseStatus: 93,
  ReleaseSession: 95,
  ReleaseValue: 96,
  ReleaseTensorTypeAndShapeInfo: 99,
  ReleaseSessionOptions: 100,
  AddSessionConfigEntry: 130,
} as const;

type Ptr = Deno.PointerValue;
type Fn = (...a: unknown[]) => unknown;

const GRAPH_LEVEL = { disabled: 0, basic: 1, extended: 2, all: 99 } as const;
const ELEMENT: Record<string, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
};
const ELEMENT_TYPE = Object.fromEntries(Object.entries(ELEMENT).map(([k, v]) => [v, k]));
const BYTES: Record<string, number> = {
  float32: 4,
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  int32: 4,
  int64: 8,
  bool: 1,
  float16: 2,
  float64: 8,
  uint32: 4,
  uint64: 8,
};

/** The C API, bound once per process. */
interface Capi {
  fn: Record<keyof typeof IDX, Fn>;
  /** Run, as a call on another thread (the event loop keeps going during a long step). */
  runAsync: (...a: unknown[]) => Promise<unknown>;
  env: Ptr;
  cpuInfo: Ptr;
  allocator: Ptr;
}

let bound: { capi?: Capi; why?: string } | undefined;

const enc = new TextEncoder();

/**
 * Bytes in an ArrayBuffer of their own. V8 keeps small typed arrays inside its heap, where a
 * collection may move them while Run works on another thread; an ArrayBuffer's store stays put.
 */
function pinned(bytes: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(new ArrayBuffer(Math.max(bytes, 8)));
}

function cstr(s: string): Uint8Array<ArrayBuffer> {
  const b = enc.encode(s + "\0"), p = pinned(b.length);
  p.set(b);
  return p;
}

function words(n: number): BigUint64Array<ArrayBuffer> {
  return new BigUint64Array(new ArrayBuffer(8 * Math.max(n, 1)));
}

/** Where onnxruntime-node's shared library is (its bin/ folder for this platform). */
function libraryPath(): string | undefined {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = dirname(require.resolve("onnxruntime-node/package.json"));
  } catch {
    return undefined;
  }
  const os = ({ linux: "linux", darwin: "darwin", windows: "win32" } as Record<string, string>)[
    Deno.build.os
  ];
  const arch = ({ x86_64: "x64", aarch64: "arm64" } as Record<string, string>)[Deno.build.arch];
  if (!os || !arch) return undefined;
  const dir = join(pkg, "bin", "napi-v6", os, arch);
  const name = Deno.build.os === "darwin"
    ? `libonnxruntime.${ort.env.versions.common}.dylib`
    : Deno.build.os === "windows"
    ? "onnxruntime.dll"
    : "libonnxruntime.so.1";
  return join(dir, name);
}

function bind(): { capi?: Capi; why?: string } {
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return { why: "FFI is not permitted (run with --allow-ffi or -A)" };
  }
  const path = libraryPath();
  if (!path) {
    return { why: `no onnxruntime-node library found for ${Deno.build.os}/${Deno.build.arch}` };
  }
  let lib;
  try {
    lib = Deno.dlopen(path, { OrtGetApiBase: { parameters: [], result: "pointer" } });
  } catch (e) {
    return { why: `${path} could not be opened: ${(e as Error).message}` };
  }
  const base = new Deno.UnsafePointerView(lib.symbols.OrtGetApiBase()!);
  const version = Deno.UnsafePointerView.getCString(
    new Deno.UnsafeFnPointer(base.getPointer(8)!, { parameters: [], result: "pointer" }).call()!,
  );
  if (version !== ort.env.versions.common) {
    return { why: `${path} is ONNX Runtime ${version}, the binding is ${ort.env.versions.common}` };
  }
  const api = new Deno.UnsafeFnPointer(base.getPointer(0)!, {
    parameters: ["u32"],
    result: "pointer",
  }).call(API_VERSION);
  if (!api) return { why: `ONNX Runtime ${version} has no C API version ${API_VERSION}` };
  const table = new Deno.UnsafePointerView(api);
  const P = "pointer", B = "buffer", U = "usize";
  const sig: Record<keyof typeof IDX, Deno.UnsafeCallbackDefinition> = {
    GetErrorMessage: { parameters: [P], result: P },
    CreateEnv: { parameters: ["i32", B, B], result: P },
    CreateSessionFromArray: { parameters: [P, B, U, P, B], result: P },
    Run: { parameters: [P, P, B, B, U, B, U, B], result: P },
    CreateSessionOptions: { parameters: [B], result: P },
    DisableMemPattern: { parameters: [P], result: P },
    SetSessionLogSeverityLevel: { parameters: [P, "i32"], result: P },
    SetSessionGraphOptimizationLevel: { parameters: [P, "i32"], result: P },
    SetIntraOpNumThreads: { parameters: [P, "i32"], result: P },
    SetInterOpNumThreads: { parameters: [P, "i32"], result: P },
    SessionGetInputCount: { parameters: [P, B], result: P },
    SessionGetOutputCount: { parameters: [P, B], result: P },
    SessionGetInputName: { parameters: [P, U, P, B], result: P },
    SessionGetOutputName: { parameters: [P, U, P, B], result: P },
    CreateTensorWithDataAsOrtValue: { parameters: [P, P, U, B, U, "i32", B], result: P },
    GetTensorMutableData: { parameters: [P, B], result: P },
    GetTensorElementType: { parameters: [P, B], result: P },
    GetDimensionsCount: { parameters: [P, B], result: P },
    GetDimensions: { parameters: [P, B, U], result: P },
    GetTensorTypeAndShape: { parameters: [P, B], result: P },
    CreateCpuMemoryInfo: { parameters: ["i32", "i32", B], result: P },
    AllocatorFree: { parameters: [P, P], result: P },
    GetAllocatorWithDefaultOptions: { parameters: [B], result: P },
    ReleaseStatus: { parameters: [P], result: "void" },
    ReleaseSession: { parameters: [P], result: "void" },
    ReleaseValue: { parameters: [P], result: "void" },
    ReleaseTensorTypeAndShapeInfo: { parameters: [P], result: "void" },
    ReleaseSessionOptions: { parameters: [P], result: "void" },
    AddSessionConfigEntry: { parameters: [P, B, B], result: P },
  };
  const fn = {} as Record<keyof typeof IDX, Fn>;
  for (const [name, i] of Object.entries(IDX) as [keyof typeof IDX, number][]) {
    const f = new Deno.UnsafeFnPointer(table.getPointer(i * 8)!, sig[name]);
    fn[name] = f.call.bind(f) as Fn;
  }
  const runAsync = new Deno.UnsafeFnPointer(table.getPointer(IDX.Run * 8)!, {
    ...sig.Run,
    nonblocking: true,
  });
  const capi = { fn, runAsync: runAsync.call.bind(runAsync) as Capi["runAsync"] } as Capi;
  // One OrtEnv per process: CreateEnv hands back onnxruntime-node's when it exists.
  capi.env = out(capi, (p) => fn.CreateEnv(3, cstr("arpo-lab"), p), "CreateEnv");
  capi.cpuInfo = out(capi, (p) => fn.CreateCpuMemoryInfo(1, 0, p), "CreateCpuMemoryInfo");
  capi.allocator = out(capi, (p) => fn.GetAllocatorWithDefaultOptions(p), "allocator");
  return { capi };
}

/** Throw ONNX Runtime's message when `status` is an error. */
function check(capi: Capi, status: unknown, what: string): void {
  if (status === null) return;
  const msg = Deno.UnsafePointerView.getCString(
    capi.fn.GetErrorMessage(status) as NonNullable<Ptr>,
  );
  capi.fn.ReleaseStatus(status);
  throw new Error(`${what}: ${msg}`);
}

/** Call `f` with a one-pointer out slot and return what it wrote there. */
function out(capi: Capi, f: (slot: BigUint64Array) => unknown, what: string): Ptr {
  const slot = words(1);
  check(capi, f(slot), what);
  return Deno.UnsafePointer.create(slot[0]);
}

function outNumber(capi: Capi, f: (slot: BigUint64Array) => unknown, what: string): number {
  const slot = words(1);
  check(capi, f(slot), what);
  return Number(slot[0]);
}

/**
 * The C API, or why it cannot be used here (no FFI permission, no library, another version).
 *
 * @example
 * ```ts
 * import { capiUnavailable } from "./capi_session.ts";
 * console.log(capiUnavailable() ?? "ONNX Runtime's C API is available");
 * ```
 */
export function capiUnavailable(): string | undefined {
  bound ??= bind();
  return bound.why;
}

function capi(): Capi {
  bound ??= bind();
  if (!bound.capi) throw new Error(`ONNX Runtime's C API is not available: ${bound.why}`);
  return bound.capi;
}

type Fetches = Record<string, ort.Tensor | null> | readonly string[];

/** Tensors smaller than this are staged (`pinned`); larger ones always live outside V8's heap. */
const STAGE_BELOW = 4096;

/**
 * A CPU session on ONNX Runtime's C API with onnxruntime-node's `run(feeds, fetches)` shape: a
 * fetch given as a tensor is written in place and returned as that same tensor; a null fetch (or
 * every output, when no fetches are given) comes back as a new tensor.
 *
 * @example
 * ```ts
 * import { CapiSession } from "./capi_session.ts";
 * import { Graph } from "./graph.ts";
 * import * as op from "./ops.ts";
 * import { serializeModel } from "./serialize.ts";
 * import { ort } from "./session.ts";
 *
 * const g = new Graph("inc");
 * const x = g.input("x", "float32", ["n"]);
 * g.output(op.add(x, 1), "y");
 * const s = CapiSession.create(serializeModel(g), { threads: 1 });
 * const t = new ort.Tensor("float32", new Float32Array(4), [4]);
 * await s.run({ x: t }, { y: t }); // t.data is now [1, 1, 1, 1], in its own buffer
 * await s.release();
 * ```
 */
export class CapiSession {
  #session: Ptr;
  #running = false;

  private constructor(
    session: Ptr,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {
    this.#session = session;
  }

  /** A session for `model` (protobuf bytes whose weights, if any, are inside it). */
  static create(model: Uint8Array, opts: CapiSessionOptions = {}): CapiSession {
    const c = capi();
    const so = out(c, (p) => c.fn.CreateSessionOptions(p), "CreateSessionOptions");
    try {
      const set = (status: unknown, what: string) => check(c, status, what);
      set(
        c.fn.SetSessionGraphOptimizationLevel(so, GRAPH_LEVEL[opts.optimization ?? "all"]),
        "graph optimization level",
      );
      set(c.fn.SetSessionLogSeverityLevel(so, 3), "log severity");
      if (opts.threads && opts.threads > 0) {
        set(c.fn.SetIntraOpNumThreads(so, opts.threads), "intra-op threads");
        set(c.fn.SetInterOpNumThreads(so, 1), "inter-op threads");
      }
      if (opts.spinning === false) {
        for (const k of ["session.intra_op.allow_spinning", "session.inter_op.allow_spinning"]) {
          set(c.fn.AddSessionConfigEntry(so, cstr(k), cstr("0")), k);
        }
      }
      if (opts.memoryPattern === false) set(c.fn.DisableMemPattern(so), "memory pattern");
      const session = out(
        c,
        (p) =>
          c.fn.CreateSessionFromArray(
            c.env,
            model,
            BigInt(model.byteLength),
            so,
            p,
          ),
        "CreateSessionFromArray",
      );
      const names = (count: keyof typeof IDX, name: keyof typeof IDX) => {
        const n = outNumber(c, (p) => c.fn[count](session, p), count);
        return Array.from({ length: n }, (_, i) => {
          const p = out(c, (slot) => c.fn[name](session, BigInt(i), c.allocator, slot), name)!;
          const s = Deno.UnsafePointerView.getCString(p);
          check(c, c.fn.AllocatorFree(c.allocator, p), "AllocatorFree");
          return s;
        });
      };
      return new CapiSession(
        session,
        names("SessionGetInputCount", "SessionGetInputName"),
        names("SessionGetOutputCount", "SessionGetOutputName"),
      );
    } finally {
      c.fn.ReleaseSessionOptions(so);
    }
  }

  /**
   * A value over the tensor's memory (ONNX Runtime reads or writes it there). A small tensor is
   * staged in a buffer of its own (`pinned`); `back` copies a written output back into it. The
   * caller keeps `mem` referenced until the value is released: the value does not own it.
   */
  #value(
    c: Capi,
    name: string,
    t: ort.Tensor,
  ): { value: Ptr; mem: Uint8Array; back?: () => void } {
    const type = ELEMENT[t.type];
    if (type === undefined || t.location !== "cpu") {
      throw new Error(`'${name}': a ${t.location} ${t.type} tensor cannot be passed by the C API`);
    }
    const data = t.data as ArrayBufferView;
    const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let mem = view as Uint8Array<ArrayBuffer>, back: (() => void) | undefined;
    if (data.byteLength < STAGE_BELOW) {
      mem = pinned(data.byteLength);
      mem.set(view);
      back = () => view.set(mem.subarray(0, view.length));
    }
    const dims = new BigInt64Array(new ArrayBuffer(8 * Math.max(t.dims.length, 1)));
    t.dims.forEach((d, i) => (dims[i] = BigInt(d)));
    const value = out(
      c,
      (p) =>
        c.fn.CreateTensorWithDataAsOrtValue(
          c.cpuInfo,
          Deno.UnsafePointer.of(mem),
          BigInt(data.byteLength),
          dims,
          BigInt(t.dims.length),
          type,
          p,
        ),
      `'${name}'`,
    );
    return { value, mem, back };
  }

  /** A new JS tensor with a copy of an output ONNX Runtime allocated. */
  #read(c: Capi, name: string, v: Ptr): ort.Tensor {
    const info = out(c, (p) => c.fn.GetTensorTypeAndShape(v, p), `output '${name}'`);
    let type: string, dims: number[];
    try {
      type = ELEMENT_TYPE[outNumber(c, (p) => c.fn.GetTensorElementType(info, p), name)];
      const rank = outNumber(c, (p) => c.fn.GetDimensionsCount(info, p), name);
      const d = new BigInt64Array(new ArrayBuffer(8 * Math.max(rank, 1)));
      check(c, c.fn.GetDimensions(info, d, BigInt(rank)), name);
      dims = Array.from(d.subarray(0, rank), Number);
    } finally {
      c.fn.ReleaseTensorTypeAndShapeInfo(info);
    }
    if (!type || type === "float16" || type === "float64") {
      throw new Error(`output '${name}' has an element type this session does not read`);
    }
    const count = dims.reduce((a, b) => a * b, 1);
    const bytes = count * BYTES[type];
    const copy = new ArrayBuffer(bytes);
    if (bytes > 0) {
      const p = out(c, (slot) => c.fn.GetTensorMutableData(v, slot), name)!;
      new Uint8Array(copy).set(new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, bytes)));
    }
    const Arr = {
      float32: Float32Array,
      uint8: Uint8Array,
      int8: Int8Array,
      uint16: Uint16Array,
      int16: Int16Array,
      int32: Int32Array,
      int64: BigInt64Array,
      bool: Uint8Array,
      uint32: Uint32Array,
      uint64: BigUint64Array,
    }[type]!;
    return new ort.Tensor(type as "float32", new Arr(copy) as Float32Array, dims);
  }

  /**
   * Run on `feeds`; `fetches` as onnxruntime-node takes them: names, or names mapped to a tensor
   * to write into or null (default: every output, new).
   * Tensors in feeds and fetches must stay untouched until the promise settles.
   */
  async run(
    feeds: Record<string, ort.Tensor>,
    fetches?: Fetches,
  ): Promise<Record<string, ort.Tensor>> {
    const c = capi();
    if (this.#session === null) throw new Error("the session was released");
    if (this.#running) throw new Error("a run of this session is already in flight");
    const inNames = this.inputNames.filter((n) => n in feeds);
    const missing = this.inputNames.filter((n) => !(n in feeds));
    if (missing.length) throw new Error(`Run: no feed for input(s) ${missing.join(", ")}`);
    const asked = Array.isArray(fetches)
      ? Object.fromEntries(fetches.map((n) => [n, null]))
      : fetches as Record<string, ort.Tensor | null> | undefined;
    for (const n of Object.keys(asked ?? {})) {
      if (!this.outputNames.includes(n)) throw new Error(`the graph has no output '${n}'`);
    }
    const outNames = this.outputNames.filter((n) => !asked || n in asked);
    const values: Ptr[] = [];
    const given = new Map<number, { tensor: ort.Tensor; back?: () => void }>();
    // Everything Run reads stays referenced here until it returns.
    const keep: unknown[] = [feeds, fetches];
    const ptrs = (xs: Ptr[]) => {
      const w = words(xs.length);
      xs.forEach((p, i) => (w[i] = BigInt(Deno.UnsafePointer.value(p))));
      return w;
    };
    const names = (xs: string[]) => {
      const bufs = xs.map(cstr);
      keep.push(bufs);
      return ptrs(bufs.map((b) => Deno.UnsafePointer.of(b)));
    };
    const outSlots = words(outNames.length);
    this.#running = true;
    try {
      const inValues = inNames.map((n) => {
        const v = this.#value(c, n, feeds[n]);
        values.push(v.value);
        keep.push(v.mem);
        return v.value;
      });
      outNames.forEach((n, i) => {
        const t = asked?.[n];
        if (!t) return;
        const v = this.#value(c, n, t);
        values.push(v.value);
        keep.push(v.mem);
        outSlots[i] = BigInt(Deno.UnsafePointer.value(v.value));
        given.set(i, { tensor: t, back: v.back });
      });
      const inNamePtrs = names(inNames), outNamePtrs = names(outNames);
      const inValuePtrs = ptrs(inValues);
      keep.push(inNamePtrs, outNamePtrs, inValuePtrs, outSlots);
      const status = await c.runAsync(
        this.#session,
        null,
        inNamePtrs,
        inValuePtrs,
        BigInt(inNames.length),
        outNamePtrs,
        BigInt(outNames.length),
        outSlots,
      );
      check(c, status, "Run");
      const res: Record<string, ort.Tensor> = {};
      outNames.forEach((n, i) => {
        const g = given.get(i);
        if (g) {
          g.back?.();
          res[n] = g.tensor;
          return;
        }
        const v = Deno.UnsafePointer.create(outSlots[i]);
        values.push(v);
        res[n] = this.#read(c, n, v);
      });
      return res;
    } finally {
      for (const v of values) c.fn.ReleaseValue(v);
      keep.length = 0;
      this.#running = false;
    }
  }

  release(): Promise<void> {
    if (this.#session !== null) capi().fn.ReleaseSession(this.#session);
    this.#session = null;
    return Promise.resolve();
  }
}
