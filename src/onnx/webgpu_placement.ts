/**
 * Which nodes of a graph the WebGPU provider could not take. ONNX Runtime decides placement while
 * a session is created and tells only its log (native stderr; the JS API has no placement query),
 * so session creation runs with the log at info level and fd 2 redirected to a temporary file
 * (libc dup/dup2 through Deno's FFI), which is then parsed and every line that is not ONNX
 * Runtime's is written back to stderr. Nodes ONNX Runtime places on the CPU on purpose (shape
 * arithmetic) are not reported: only those whose log line says the WebGPU kernel was not found
 * and that end up on the CPU.
 */

export interface Placement {
  /** Op type → node names that have no WebGPU kernel and run on the CPU. */
  missing: Map<string, string[]>;
  /** Nodes placed on the WebGPU provider. */
  onGpu: number;
  /** Nodes placed on the CPU (missing kernels and shape arithmetic). */
  onCpu: number;
}

const NOT_FOUND = /webgpu kernel not found in registries for Op type: (\S+) node name: (.*)$/;
const PLACED = /Node\(s\) placed on \[(\w+)\]\. Number of nodes: (\d+)/;
const LISTED = /VerifyEachNodeIsAssignedToAnEp\]\s+(\S+) \((.*)\)$/;
// ORT colours its lines with ANSI escapes.
// deno-lint-ignore no-control-regex
const ORT_LINE = /^(\x1b\[[0-9;]*m)?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[[VIWEF]:onnxruntime/;

/** The placement ONNX Runtime logged while creating one session (log at info level or finer). */
export function parsePlacement(log: string): Placement {
  const notFound = new Map<string, string>();
  const cpu: [string, string][] = [];
  let onGpu = 0, onCpu = 0, list: "cpu" | "other" | undefined;
  for (const line of log.split("\n")) {
    const nf = NOT_FOUND.exec(line);
    if (nf) notFound.set(nf[2].trim(), nf[1]);
    const p = PLACED.exec(line);
    if (p) {
      list = p[1] === "CPUExecutionProvider" ? "cpu" : "other";
      if (list === "cpu") onCpu += Number(p[2]);
      else onGpu += Number(p[2]);
      continue;
    }
    const l = LISTED.exec(line);
    if (l && list === "cpu") cpu.push([l[1], l[2]]);
    else if (!l) list = undefined;
  }
  const missing = new Map<string, string[]>();
  for (const [opType, node] of cpu) {
    if (!notFound.has(node)) continue;
    const names = missing.get(opType) ?? [];
    names.push(node);
    missing.set(opType, names);
  }
  return { missing, onGpu, onCpu };
}

/** "LogSoftmax, Sum ×15, OneHot": op types with their node counts. */
export function describeMissing(missing: Map<string, string[]>): string {
  return [...missing].map(([op, nodes]) => nodes.length > 1 ? `${op} ×${nodes.length}` : op)
    .join(", ");
}

let queue: Promise<unknown> = Promise.resolve();

/**
 * Run `fn` with native stderr going to a temporary file; returns its result and what was
 * written. Captures are serialized (a second one would restore the first one's file as fd 2).
 * Without FFI permission or libc, `fn` runs as is and the log is undefined.
 */
export function captureStderr<T>(fn: () => Promise<T>): Promise<{ value: T; log?: string }> {
  const run = queue.then(() => capture(fn), () => capture(fn));
  queue = run.catch(() => {});
  return run;
}

async function capture<T>(fn: () => Promise<T>): Promise<{ value: T; log?: string }> {
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return { value: await fn() };
  let libc;
  try {
    libc = Deno.dlopen(
      "libc.so.6",
      {
        dup: { parameters: ["i32"], result: "i32" },
        dup2: { parameters: ["i32", "i32"], result: "i32" },
        close: { parameters: ["i32"], result: "i32" },
        open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
      } as const,
    );
  } catch {
    return { value: await fn() };
  }
  const path = await Deno.makeTempFile({ prefix: "arpo-ort-log-" });
  const O_WRONLY = 1, O_TRUNC = 512;
  const fd = libc.symbols.open(new TextEncoder().encode(path + "\0"), O_WRONLY | O_TRUNC, 0o600);
  const saved = fd >= 0 ? libc.symbols.dup(2) : -1;
  if (fd < 0 || saved < 0 || libc.symbols.dup2(fd, 2) < 0) {
    if (fd >= 0) libc.symbols.close(fd);
    if (saved >= 0) libc.symbols.close(saved);
    libc.close();
    await Deno.remove(path).catch(() => {});
    return { value: await fn() };
  }
  libc.symbols.close(fd);
  try {
    const value = await fn();
    return { value, log: await restore() };
  } catch (e) {
    await restore();
    throw e;
  }

  async function restore(): Promise<string> {
    libc!.symbols.dup2(saved, 2);
    libc!.symbols.close(saved);
    libc!.close();
    const log = await Deno.readTextFile(path).catch(() => "");
    await Deno.remove(path).catch(() => {});
    // Whatever else wrote to stderr meanwhile (Dawn, Mesa, this process) goes where it was going.
    const other = log.split("\n").filter((l) => l.length > 0 && !ORT_LINE.test(l));
    if (other.length) Deno.stderr.writeSync(new TextEncoder().encode(other.join("\n") + "\n"));
    return log;
  }
}
