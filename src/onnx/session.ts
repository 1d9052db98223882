/**
 * ONNX Runtime sessions: the one place that chooses the engine and the execution provider.
 *
 * The engine follows the numerics in effect (numerics_mode.ts; the runner sets the manifest's
 * `runtime.numerics` per stage): `native` runs onnxruntime-node with the provider chosen by
 * `device`, `portable` runs onnxruntime-web's WebAssembly build (numerics_wasm.ts) whatever the
 * device. `auto` tries the GPU providers (cuda, then webgpu on a real GPU adapter: never a
 * software one such as llvmpipe, which only `device: webgpu` asks for) and falls back to CPU,
 * saying why; a device asked for explicitly that cannot start is an ArpoError. On webgpu, a graph
 * the provider cannot take falls back to CPU alone, and nodes it has no kernel for are named
 * (webgpu_placement.ts), each with a warning line. The engine, provider and adapter actually used
 * are returned so the run record can hold them. Both engines share one Tensor class
 * (`ort.Tensor`), and `Session.ort` is an InferenceSession either way.
 */
import { createHash } from "node:crypto";
import * as ort from "onnxruntime-node";
import { ArpoError, describeError } from "../errors.ts";
import { CapiSession, capiUnavailable } from "./capi_session.ts";
import { Graph } from "./graph.ts";
import * as op from "./ops.ts";
import { currentNumerics, type Numerics, type NumericsScope } from "./numerics_mode.ts";
import { PORTABLE_ENGINE, wasmEngine } from "./numerics_wasm.ts";
import { type SerializedModel, serializeModel, type SerializeOptions } from "./serialize.ts";
import { ensureRuntimeDir, webgpuAdapter, webgpuExclusive } from "./webgpu.ts";
import { captureStderr, describeMissing, parsePlacement } from "./webgpu_placement.ts";

export type Device = "auto" | "cpu" | "cuda" | "webgpu";
/** `wasm`: the portable engine (onnxruntime-web's WebAssembly build, on the CPU). */
export type Provider = "cpu" | "cuda" | "webgpu" | "wasm";
/** The ONNX Runtime package that runs a session. */
export type Engine = "onnxruntime-node" | typeof PORTABLE_ENGINE;
export type OptimizationLevel = "disabled" | "basic" | "extended" | "all";

// ORT logs failed provider loads at error level before throwing; the exception (which `auto`
// reports in its fallback message) says the same, so keep the console quiet. Errors still throw.
if (ort.env.logLevel === undefined || ort.env.logLevel === "warning") ort.env.logLevel = "fatal";

export const DEVICES: readonly Device[] = ["auto", "cpu", "cuda", "webgpu"];

export interface SessionOptions {
  /** intraOpNumThreads; 0 or undefined lets ORT decide. */
  threads?: number;
  device?: Device;
  optimization?: OptimizationLevel;
  /**
   * Called with a one-line message when `auto` falls back to CPU, and with each webgpu warning
   * (a graph on CPU, ops without a WebGPU kernel). Default: console.error, once per message.
   */
  onFallback?: (message: string) => void;
  /** What the session is for, used in error messages. */
  label?: string;
  /**
   * Let intra-op threads spin-wait between runs (ORT's default). Off frees the cores for the JS
   * work between decode steps; which is faster depends on the load of the machine.
   */
  spinning?: boolean;
  /**
   * ORT's memory pattern (default on): plans one block for all intermediates per input shape. A
   * session whose shapes change on every run (training batches) gains nothing from it and its
   * arena grows by a differently sized block per shape; off allocates tensor by tensor.
   */
  memoryPattern?: boolean;
  /**
   * Preallocated outputs (a fetch given as a tensor) are written in place and returned as that
   * same tensor, without onnxruntime-node's copy of each: a trainer's state, 3× the weights per
   * step otherwise. On the CPU the session then runs on ONNX Runtime's C API (capi_session.ts:
   * the same library, options and bits); elsewhere, or where that API cannot be used, this is
   * onnxruntime-node's usual session.
   */
  inPlaceOutputs?: boolean;
  /**
   * The engine, instead of the numerics in effect (`withNumerics`): `{mode: "portable",
   * threads}` runs onnxruntime-web whatever `device` and `threads` say.
   */
  numerics?: NumericsScope;
}

export interface Session {
  readonly ort: ort.InferenceSession;
  /** Execution provider actually used. */
  readonly provider: Provider;
  /** The engine that runs it: onnxruntime-node (native numerics) or onnxruntime-web (portable). */
  readonly engine: Engine;
  readonly numerics: Numerics;
  /** Why `auto` did not use a GPU provider, or why a webgpu graph runs on CPU. */
  readonly fallback?: string;
  /** webgpu: the adapter it runs on (the Vulkan device name, e.g. "NVIDIA H200"). */
  readonly adapter?: string;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

/** Providers this onnxruntime-node build knows about (bundled or installable). */
export function knownProviders(): { name: string; bundled: boolean }[] {
  return ort.listSupportedBackends().map((b) => ({ name: b.name, bundled: b.bundled }));
}

function baseOptions(opts: SessionOptions): ort.InferenceSession.SessionOptions {
  const o: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: opts.optimization ?? "all",
    logSeverityLevel: 3,
  };
  if (opts.threads && opts.threads > 0) {
    o.intraOpNumThreads = opts.threads;
    o.interOpNumThreads = 1;
  }
  if (opts.spinning === false) {
    o.extra = { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } };
  }
  if (opts.memoryPattern === false) o.enableMemPattern = false;
  return o;
}

async function tryCreate(
  model: SerializedModel,
  provider: Provider,
  opts: SessionOptions,
): Promise<ort.InferenceSession> {
  const known = ort.listSupportedBackends().map((b) => b.name);
  if (!known.includes(provider)) {
    throw new Error(`this onnxruntime-node build has no '${provider}' provider`);
  }
  if (provider === "webgpu") return await createWebgpu(model, opts);
  if (provider === "cpu" && opts.inPlaceOutputs && !model.externalData.length) {
    if (capiUnavailable() === undefined) {
      // The members Session.ort is used by: run, release, inputNames, outputNames.
      return CapiSession.create(model.model, opts) as unknown as ort.InferenceSession;
    }
  }
  return await ort.InferenceSession.create(model.model, {
    ...baseOptions(opts),
    executionProviders: [provider],
    ...externalOption(model),
  });
}

const warned = new Set<string>();

function warn(opts: SessionOptions, message: string): void {
  if (opts.onFallback) return opts.onFallback(message);
  if (warned.has(message)) return;
  warned.add(message);
  console.error(message);
}

/** Graph structures (digest of the protobuf, weights being external) already checked. */
const placementChecked = new Set<string>();

/**
 * A webgpu session. The first time a graph structure is seen, a session is first created at
 * ORT's verbose log level with stderr captured (webgpu_placement.ts), to name the nodes left
 * without a WebGPU kernel, and released: the WebGPU provider logs every program it starts at that
 * level, run options notwithstanding, so the session that runs is created quiet.
 */
async function createWebgpu(
  model: SerializedModel,
  opts: SessionOptions,
): Promise<ort.InferenceSession> {
  ensureRuntimeDir();
  const create = (verbose: boolean) =>
    ort.InferenceSession.create(model.model, {
      ...baseOptions(opts),
      ...(verbose ? { logSeverityLevel: 0, logVerbosityLevel: 0 } : {}),
      executionProviders: ["webgpu"],
      ...externalOption(model),
    });
  const key = createHash("sha256").update(model.model).digest("hex");
  if (!placementChecked.has(key)) {
    // Under the lock: fd 2 is the process's, so two threads must not capture at once.
    const log = await webgpuExclusive(async () => {
      const { value: probe, log } = await captureStderr(() => create(true));
      await probe.release();
      return log;
    });
    placementChecked.add(key);
    const p = log === undefined ? undefined : parsePlacement(log);
    if (p?.missing.size) {
      const n = [...p.missing.values()].reduce((a, x) => a + x.length, 0);
      warn(
        opts,
        `webgpu: ${opts.label ?? "model"}: no WebGPU kernel for ${describeMissing(p.missing)}; ` +
          `${n} of ${p.onGpu + p.onCpu} nodes run on the CPU (host copies around them)`,
      );
    }
  }
  return exclusive(await webgpuExclusive(() => create(false)));
}

/** A webgpu session whose runs and release hold the process's WebGPU lock (webgpuExclusive). */
function exclusive(session: ort.InferenceSession): ort.InferenceSession {
  type Call = (...a: unknown[]) => Promise<unknown>;
  return new Proxy(session, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (prop === "run" || prop === "release") {
        return (...a: unknown[]) => webgpuExclusive(() => (v as Call).apply(target, a));
      }
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

let webgpuProbe: Promise<string | undefined> | undefined;

/**
 * Why the webgpu provider cannot start here (a one-MatMul graph), or undefined when it can.
 *
 * @example
 * ```ts
 * const why = await webgpuStartError();
 * console.log(why ?? "webgpu works here");
 * ```
 */
export function webgpuStartError(): Promise<string | undefined> {
  webgpuProbe ??= (async () => {
    try {
      ensureRuntimeDir();
      const g = new Graph("webgpu_probe");
      const x = g.input("x", "float32", [2, 2]);
      g.output(op.matmul(x, x), "y");
      await webgpuExclusive(async () => {
        const s = await ort.InferenceSession.create(serializeModel(g), {
          executionProviders: ["webgpu"],
          logSeverityLevel: 3,
        });
        await s.release();
      });
      return undefined;
    } catch (e) {
      // ORT's message names a source line; what the Vulkan loader sees says why in words.
      const { why: vulkan } = webgpuAdapter();
      return (vulkan ? `${vulkan}; ` : "") + describeError(e).split("\n")[0];
    }
  })();
  return webgpuProbe;
}

/** Initializers held outside the protobuf, handed to ORT from memory (not copied here). */
function externalOption(m: SerializedModel): { externalData?: ort.ExternalDataFileType[] } {
  return m.externalData.length ? { externalData: m.externalData } : {};
}

/**
 * Create a session from a Graph, serialized model bytes, or a model whose weights are external
 * data (`serializeModelExternal`: no 2 GB protobuf limit).
 */
export async function createSession(
  model: Uint8Array | Graph | SerializedModel,
  opts: SessionOptions = {},
  serializeOpts?: SerializeOptions,
): Promise<Session> {
  const bytes: SerializedModel = model instanceof Uint8Array
    ? { model, externalData: [] }
    : "externalData" in model
    ? model
    : { model: serializeModel(model, serializeOpts), externalData: [] };
  const device = opts.device ?? "cpu";
  const label = opts.label ?? "model";
  const numerics = opts.numerics ?? currentNumerics();
  if (numerics.mode === "portable") return await portableSession(bytes, numerics.threads, opts);
  if (!DEVICES.includes(device)) {
    throw new ArpoError(
      `unknown device '${device}' for ${label}: expected one of ${DEVICES.join(", ")}`,
    );
  }
  let session: ort.InferenceSession | undefined;
  let provider: Provider = "cpu";
  let fallback: string | undefined;
  if (device === "auto") {
    const why: string[] = [];
    for (const p of ["cuda", "webgpu"] as const) {
      if (p === "webgpu") {
        // A software adapter is a correctness device, far slower than the CPU path: never chosen
        // unless asked for by name.
        const { adapter, why: none } = webgpuAdapter();
        if (!adapter || adapter.software) {
          why.push(
            `webgpu: ${
              adapter
                ? `only a software adapter (${adapter.name}); ask for it with device: webgpu`
                : none
            }`,
          );
          continue;
        }
      }
      try {
        session = await tryCreate(bytes, p, opts);
        provider = p;
        break;
      } catch (e) {
        why.push(`${p}: ${describeError(e).split("\n")[0]}`);
      }
    }
    if (!session) {
      fallback = `device auto: no GPU execution provider could start (${
        why.join("; ")
      }); running ${label} on CPU`;
      warn(opts, fallback);
    }
  } else if (device !== "cpu") {
    try {
      session = await tryCreate(bytes, device, opts);
      provider = device;
    } catch (e) {
      const startError = device === "webgpu" ? await webgpuStartError() : "cannot tell";
      if (startError === undefined) {
        // The provider works here but not for this graph: this graph alone runs on CPU.
        fallback = `webgpu: ${label} could not run on the WebGPU provider (${
          describeError(e).split("\n")[0]
        }); running it on CPU`;
        warn(opts, fallback);
      } else {
        throw new ArpoError(
          `device '${device}' was requested for ${label} but its execution provider could not ` +
            `start: ${describeError(e).split("\n")[0]}. Use device: cpu (or auto to fall back ` +
            `to CPU automatically).`,
          { cause: e },
        );
      }
    }
  }
  if (!session) {
    try {
      session = await tryCreate(bytes, "cpu", opts);
      provider = "cpu";
    } catch (e) {
      throw new ArpoError(`ONNX Runtime could not load ${label}: ${describeError(e)}`, {
        cause: e,
      });
    }
  }
  const s = session;
  return {
    ort: s,
    provider,
    engine: "onnxruntime-node",
    numerics: "native",
    fallback,
    ...(provider === "webgpu" ? { adapter: webgpuAdapter().adapter?.name ?? "unknown" } : {}),
    inputNames: s.inputNames,
    outputNames: s.outputNames,
    run: (feeds) => s.run(feeds) as Promise<Record<string, ort.Tensor>>,
    release: () => s.release(),
  };
}

/**
 * `session` with onnxruntime-node's meaning of preallocated outputs: a fetch given as a CPU
 * tensor receives the output's values. onnxruntime-web leaves such a tensor as it was (it
 * computes into its own memory; a trainer that binds its next state as fetches would read stale
 * weights), so those outputs are fetched as new tensors and copied into the caller's.
 */
function withPreallocatedOutputs(session: ort.InferenceSession): ort.InferenceSession {
  type Run = (...a: unknown[]) => Promise<ort.InferenceSession.ReturnType>;
  const run = async (
    feeds: ort.InferenceSession.FeedsType,
    fetches?: ort.InferenceSession.FetchesType | ort.InferenceSession.RunOptions,
    options?: ort.InferenceSession.RunOptions,
  ): Promise<ort.InferenceSession.ReturnType> => {
    const given = fetches !== null && typeof fetches === "object" && !Array.isArray(fetches) &&
        !(fetches instanceof ort.Tensor)
      ? fetches as Record<string, unknown>
      : undefined;
    const into = new Map<string, ort.Tensor>();
    for (const name of session.outputNames) {
      const t = given?.[name];
      if (t instanceof ort.Tensor) into.set(name, t);
    }
    if (!into.size) return await (session.run as Run)(feeds, fetches, options);
    const asked = Object.fromEntries(
      Object.entries(given!).map(([k, v]) => [k, into.has(k) ? null : v]),
    );
    const out = await (session.run as Run)(feeds, asked, options);
    const res: Record<string, ort.OnnxValue> = { ...out };
    for (const [name, t] of into) {
      const got = out[name];
      if (got.type !== t.type || got.data.length !== t.data.length) {
        throw new ArpoError(
          `output '${name}' is ${got.type}[${got.dims.join(", ")}] but the tensor given for ` +
            `it is ${t.type}[${t.dims.join(", ")}]`,
        );
      }
      (t.data as Float32Array).set(got.data as Float32Array);
      res[name] = t;
    }
    return res;
  };
  return new Proxy(session, {
    get(target, prop) {
      if (prop === "run") return run;
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** A session on the portable engine (the WebAssembly build: CPU, `threads` threads). */
async function portableSession(
  bytes: SerializedModel,
  threads: number,
  opts: SessionOptions,
): Promise<Session> {
  const label = opts.label ?? "model";
  const engine = await wasmEngine(threads, ort.Tensor);
  let s: ort.InferenceSession;
  try {
    s = await engine.ort.InferenceSession.create(bytes.model, {
      ...externalOption(bytes),
      executionProviders: ["wasm"],
      graphOptimizationLevel: opts.optimization ?? "all",
      logSeverityLevel: 3,
      ...(opts.memoryPattern === false ? { enableMemPattern: false } : {}),
    });
  } catch (e) {
    throw new ArpoError(
      `the portable engine (${PORTABLE_ENGINE}, WebAssembly) could not load ${label}: ` +
        describeError(e).split("\n")[0],
      { cause: e },
    );
  }
  return {
    ort: withPreallocatedOutputs(s),
    provider: "wasm",
    engine: PORTABLE_ENGINE,
    numerics: "portable",
    inputNames: s.inputNames,
    outputNames: s.outputNames,
    run: (feeds) => s.run(feeds) as Promise<Record<string, ort.Tensor>>,
    release: () => s.release(),
  };
}

export { ort };
