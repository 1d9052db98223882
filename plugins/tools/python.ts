/**
 * `python`: runs model-written Python 3 code in a sandbox (src/tools/sandbox.ts: bubblewrap with
 * its own user, mount, PID and network namespaces, a minimal read-only view of /usr, a seccomp
 * filter, a fresh in-memory scratch directory, a clean environment, CPU/memory/process/file/disk
 * limits over the whole process tree). As in the ARPO reference, a bare final expression is
 * printed (its repr, unless None), so `<python>2**10</python>` returns `1024`. The result is
 * stdout on success and a trimmed traceback on failure.
 *
 * The time limit is CPU time (deterministic: the same answer on a loaded machine). The
 * wall-clock limit is only a guard; when it fires the tool throws a TimeoutError, which the tool
 * runtime retries and then reports as an infrastructure failure, never as the tool's answer.
 *
 * Without a working sandbox the tool refuses to load; `sandbox: none` must be chosen explicitly
 * to run code unsandboxed.
 */
import { dirname } from "node:path";
import {
  defineTool,
  PythonWorker,
  resolveSandbox,
  runSandboxed,
  type SandboxResult,
  SandboxUnavailableError,
  WorkerFailure,
  z,
} from "arpo-lab";

/**
 * Runs in the child: reads the program from stdin, seeds `random` (argv[1]) so the same code prints
 * the same thing on every run, prints the value of a final bare expression, and on an exception
 * prints a traceback without this wrapper's frames, limited to the last three.
 */
const WRAPPER = String.raw`
import ast, linecache, os, random, sys, textwrap, traceback
random.seed(int(sys.argv[1]))
del sys.argv[1:]
def _arpo_run():
    src = textwrap.dedent(sys.stdin.read())
    sys.stdin.close()
    sys.stdin = open(os.devnull)
    name = "<code>"
    linecache.cache[name] = (len(src), None, src.splitlines(True), name)
    try:
        tree = ast.parse(src, name)
    except SyntaxError as e:
        sys.stderr.write("".join(traceback.format_exception_only(type(e), e)))
        return 1
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    g = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(tree, name, "exec"), g)
        if last is not None:
            value = eval(compile(last, name, "eval"), g)
            if value is not None:
                print(repr(value))
    except SystemExit:
        raise
    except BaseException as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != name:
            tb = tb.tb_next
        sys.stdout.flush()
        sys.stderr.write("".join(traceback.format_exception(type(e), e, tb, limit=-3)))
        return 1
    return 0
sys.exit(_arpo_run())
`;

const Options = z.object({
  /** Time limit per call, seconds of CPU time over all the code's processes (see cpu_s). */
  timeout_s: z.number().positive().max(3600).default(10),
  /**
   * Memory limit, MiB: the address space of each process (a 4 GB allocation fails with
   * MemoryError) and the resident memory of all the code's processes together.
   */
  memory_mb: z.number().int().min(64).max(1024 * 1024).default(1024),
  /** CPU-time limit, seconds (default: timeout_s). The deterministic limit. */
  cpu_s: z.number().positive().max(3600).optional(),
  /**
   * Wall-clock guard, seconds (default: 3 × the CPU limit + 5). It depends on the machine's
   * load: a call that reaches it is retried, then reported as an infrastructure failure.
   */
  wall_s: z.number().positive().max(4 * 3600).optional(),
  /** Scratch space for all files together, MiB (an in-memory tmpfs; ENOSPC past it). */
  disk_mb: z.number().positive().max(64 * 1024).default(64),
  /** Processes and threads the code may have at once. */
  max_processes: z.number().int().min(1).max(4096).default(32),
  /** Largest file the code may write, MiB. */
  max_file_mb: z.number().positive().max(1024 * 1024).default(16),
  /** stdout/stderr kept per call; past it the program is stopped and the text says so. */
  max_output_bytes: z.number().int().min(64).max(64 * 1024 * 1024).default(16384),
  /**
   * auto or bwrap: bubblewrap; none runs code unsandboxed and must be chosen explicitly;
   * unshare (the retired mechanism) is refused with a message.
   */
  sandbox: z.enum(["auto", "unshare", "bwrap", "none"]).default("auto"),
  /**
   * Interpreter, looked up in the sandbox's PATH (/usr/local/bin:/usr/bin:/bin) unless a path;
   * an absolute path outside /usr is made visible read-only with its installation prefix.
   */
  python: z.string().min(1).default("python3"),
  /**
   * Serve calls from one persistent sandboxed fork server with the wrapper's modules imported
   * once (each call still gets its own namespaces, limits and scratch directory, and the same
   * output as a process of its own); on a failure of the server a call runs in its own process.
   */
  worker: z.boolean().default(true),
}).strict();

/** The modules WRAPPER imports: the worker imports them once, before any call. */
const WRAPPER_MODULES = ["ast", "linecache", "os", "random", "sys", "textwrap", "traceback"];

/**
 * An interpreter outside /usr (e.g. /opt/python/bin/python3) must bring its installation prefix
 * into the sandbox's view (read-only).
 */
function interpreterPrefix(python: string): string[] {
  if (!python.startsWith("/")) return [];
  let real = python;
  try {
    real = Deno.realPathSync(python);
  } catch { /* missing: the start-up check says so */ }
  if (real.startsWith("/usr/")) return [];
  const prefix = dirname(dirname(real));
  return prefix === "/"
    ? []
    : [...new Set([prefix, dirname(dirname(python))])].filter((p) => p !== "/");
}

/** The last `max` characters of a traceback, cut at a line start. */
function trimTail(text: string, max: number): string {
  const t = text.trimEnd();
  if (t.length <= max) return t;
  const cut = t.slice(t.length - max);
  const nl = cut.indexOf("\n");
  return "…\n" + (nl >= 0 ? cut.slice(nl + 1) : cut);
}

export default defineTool({
  description: "Python 3 code runner in a sandbox (no network); prints stdout or a traceback.",
  options: Options,
  async create(o, ctx) {
    let mechanism;
    try {
      mechanism = await resolveSandbox(o.sandbox);
    } catch (e) {
      if (e instanceof SandboxUnavailableError) {
        throw new SandboxUnavailableError(`tool '${ctx.name}': ${e.message}`);
      }
      throw e;
    }
    // Not -I: the environment is already clean, and PYTHONHASHSEED must reach the interpreter
    // so that printing a set gives the same order on every run. -s: no user site-packages.
    const seed = ctx.stream("random-seed").nextUint32();
    const argv = [o.python, "-s", "-c", WRAPPER, String(seed)];
    const env = {
      PYTHONHASHSEED: "0",
      PYTHONDONTWRITEBYTECODE: "1",
      PYTHONIOENCODING: "utf-8",
      // One thread per numeric library: thread pools sized to the machine hit max_processes.
      OMP_NUM_THREADS: "1",
      OPENBLAS_NUM_THREADS: "1",
      MKL_NUM_THREADS: "1",
    };
    const cpuSeconds = o.cpu_s ?? o.timeout_s;
    const guardMs = (o.wall_s ?? 3 * cpuSeconds + 5) * 1000;
    const limits = {
      cpuSeconds,
      memoryBytes: o.memory_mb * 1024 * 1024,
      maxProcesses: o.max_processes,
      maxFileBytes: Math.floor(o.max_file_mb * 1024 * 1024),
      diskBytes: Math.floor(o.disk_mb * 1024 * 1024),
    };
    const readOnlyPaths = interpreterPrefix(o.python);
    // Check once that the interpreter starts inside the sandbox, so a wrong `python:` fails now.
    const check = await runSandboxed({
      argv: [o.python, "-s", "-c", "import sys; print(sys.version_info[0])"],
      env,
      mode: mechanism,
      limits: { ...limits, wallMs: 30_000 },
      readOnlyPaths,
    });
    if (!check.success || check.stdout.trim() !== "3") {
      const why = (check.stderr || check.stdout).trim().split("\n").slice(-2).join(" ") ||
        `exit status ${check.code ?? check.signal}`;
      throw new Error(
        `tool '${ctx.name}': the interpreter '${o.python}' does not run as Python 3 inside the ` +
          `'${mechanism}' sandbox (${why}). Set \`python:\` to an interpreter readable by an ` +
          `unprivileged user, e.g. /usr/bin/python3.`,
      );
    }
    ctx.log(`sandbox: ${mechanism}`);
    // Started on the first call, so a tool that is never called starts no server.
    let worker: Promise<PythonWorker | undefined> | undefined;
    // Under either isolating mechanism (bwrap or unshare); `none` has nothing to keep.
    const workerOnce = () =>
      worker ??= o.worker && mechanism !== "none"
        ? PythonWorker.start({
          python: o.python,
          wrapper: WRAPPER,
          preload: WRAPPER_MODULES,
          env,
          readOnlyPaths,
          mechanism,
        }).then((w) => {
          ctx.log(`python worker started (${mechanism}): one sandbox serves every call`);
          return w;
        }, (e: Error) => {
          ctx.log(`python worker unavailable (${e.message}); one process per call`);
          return undefined;
        })
        : Promise.resolve(undefined);
    return {
      tag: "python",
      description: "Execute Python 3 code and see what it prints (a bare last expression is " +
        "printed). No network access.",
      deterministic: true,
      async call(code, call) {
        const wallMs = Math.min(guardMs, call.timeoutMs);
        let r: SandboxResult | undefined;
        const w = await workerOnce();
        if (w) {
          try {
            r = await w.run({
              code,
              seed,
              limits: { ...limits, wallMs },
              maxOutputBytes: o.max_output_bytes,
              signal: call.signal,
            });
          } catch (e) {
            if (!(e instanceof WorkerFailure)) throw e;
            ctx.log(`python worker failed (${e.message}); this call runs in its own process`);
          }
        }
        r ??= await runSandboxed({
          argv,
          env,
          stdin: code,
          mode: mechanism,
          limits: { ...limits, wallMs },
          readOnlyPaths,
          maxOutputBytes: o.max_output_bytes,
          signal: call.signal,
        });
        if (r.aborted) throw new Error("execution was cancelled");
        if (r.timedOut) {
          // The name tells the runtime this was a timeout (it counts them apart from errors).
          const e = new Error(`execution timed out after ${+(wallMs / 1000).toFixed(3)}s`);
          e.name = "TimeoutError";
          throw e;
        }
        if (r.stdoutTruncated || r.stderrTruncated) {
          const text = r.stdoutTruncated ? r.stdout : r.stderr;
          return `${text}\n[output truncated: more than ${o.max_output_bytes} bytes; ` +
            "the program was stopped]";
        }
        if (r.success) return r.stdout.trimEnd();
        if (r.signal === "SIGXCPU" || r.limitExceeded === "cpu") {
          throw new Error(`execution exceeded the CPU-time limit (${limits.cpuSeconds}s)`);
        }
        if (r.limitExceeded === "memory") {
          throw new Error(
            `execution exceeded the memory limit (${o.memory_mb} MiB for all its processes)`,
          );
        }
        if (r.signal === "SIGXFSZ") {
          throw new Error(`a file exceeded the size limit (${o.max_file_mb} MiB)`);
        }
        const err = r.stderr.trim();
        if (err) throw new Error(trimTail(err, 2000));
        if (r.signal) throw new Error(`the program was killed (${r.signal})`);
        // sys.exit(n) with nothing on stderr: show what it printed and the status.
        const out = r.stdout.trimEnd();
        throw new Error(`${out ? out + "\n" : ""}exit status ${r.code}`);
      },
      async close() {
        const w = await worker;
        worker = undefined;
        await w?.close();
      },
    };
  },
});
