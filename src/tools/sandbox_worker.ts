/**
 * A persistent sandbox for Python programs (issue 14): one sandbox built as in sandbox.ts (by
 * bubblewrap or by the `unshare` mechanism, whichever `auto` picks) runs a fork server, so that a call costs a fork instead of a sandbox and an
 * interpreter start. Each call is as isolated as a one-process sandbox (docs/SECURITY.md):
 *
 * - The server forks a child per call. The child reads its own request (the server never holds a
 *   call's input or output, so nothing of one call is in the memory the next one is forked
 *   from) and clones the call's init (PID 1) straight into fresh user, mount, PID, network and
 *   IPC namespaces. The init mounts a fresh scratch tmpfs, /dev/shm and /proc and starts the
 *   program (PID 2), which takes the call's rlimits, drops every capability, sets no_new_privs
 *   and loads the same seccomp filter the one-process sandbox loads (which also forbids further
 *   namespaces). Four processes per call: the child, the init, the program and one stand-in.
 * - The program is the one-process sandbox's wrapper run in a fresh `__main__`, with the modules
 *   the server loaded for itself removed from `sys.modules`, the same argv, environment, working
 *   directory, PIDs and process count (PID 3 is skipped and PID 4 idles, as the watchdog's
 *   shells leave them), so a program prints the same thing in both
 *   (tests/tools_sandbox_worker_test.ts).
 * - This process enforces the same limits on each call's tree as on a one-process sandbox (the
 *   guard on CPU time and memory, the wall-clock guard), killing the call's init to stop it.
 *
 * The server itself runs without the seccomp filter (it needs namespaces): only its own code runs
 * there, and the calls cannot reach it (other PID and network namespaces, no shared descriptor).
 * The python tool serves its calls from one by default (plugins/tools/python.ts, `worker`).
 */
import { spawn } from "node:child_process";
import {
  abortedResult,
  acquireSlot,
  DEFAULT_LIMITS,
  type IsolatingMechanism,
  killChildren,
  releaseSlot,
  resolveSandbox,
  sandboxLaunch,
  type SandboxLimits,
  type SandboxResult,
  SIGNAL_NAMES,
  treeUsage,
} from "./sandbox.ts";

/** The fork server (Python; argv: preload modules, wrapper source, the one-process argv). */
const SERVER = String.raw`import sys
# What the one-process sandbox's interpreter has loaded when the program starts: its start-up
# modules and the wrapper's imports. Everything this server adds is dropped in each call.
for _m in sys.argv[1].split(","):
    __import__(_m)
KEEP = set(sys.modules)
import atexit, base64, ctypes, fcntl, json, os, resource, select, signal, socket, struct, types
WRAPPER, ORIG_ARGV = sys.argv[2], json.loads(sys.argv[3])
PROGRAM = compile(WRAPPER, "<string>", "exec")
# The standard streams as the one-process sandbox's interpreter makes them (its stdio are pipes,
# like ours): rebuilt with the same settings in each call.
STREAMS = [(f.encoding, f.errors, f.line_buffering) for f in (sys.stdin, sys.stdout, sys.stderr)]
libc = ctypes.CDLL(None, use_errno=True)
FILTER = b""
while True:
    _b = os.read(3, 65536)
    if not _b:
        break
    FILTER += _b
os.close(3)
SCRATCH = os.getcwd()
LOCK = SCRATCH + "/.arpo-lock"
os.close(os.open(LOCK, os.O_CREAT | os.O_WRONLY, 0o600))
NEW = 0x10000000 | 0x00020000 | 0x20000000 | 0x08000000 | 0x40000000


def check(r, what):
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def read_exact(fd, n):
    parts, got = [], 0
    while got < n:
        b = os.read(fd, n - got)
        if not b:
            raise EOFError
        parts.append(b)
        got += len(b)
    return b"".join(parts)


LOCK_FD = []  # a call's own open of the lock file, made before its scratch tmpfs hides it


def frame(cid, obj):
    """One reply on the server's stdout, under a lock (calls write concurrently)."""
    data = json.dumps(obj).encode()
    fd = LOCK_FD[0] if LOCK_FD else os.open(LOCK, os.O_WRONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        view = memoryview(struct.pack("<II", cid, len(data)) + data)
        while view:
            view = view[os.write(1, view):]
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        if not LOCK_FD:
            os.close(fd)


def drop_and_confine(lim):
    for r, v in (("RLIMIT_CPU", (lim["cpu"], lim["cpu"] + 1)), ("RLIMIT_AS", (lim["as"],) * 2),
                 ("RLIMIT_NPROC", (lim["nproc"],) * 2), ("RLIMIT_FSIZE", (lim["fsize"],) * 2),
                 ("RLIMIT_NOFILE", (lim["nofile"],) * 2)):
        resource.setrlimit(getattr(resource, r), v)
    cap = 0
    while libc.prctl(24, cap, 0, 0, 0) == 0:  # PR_CAPBSET_DROP
        cap += 1
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    check(libc.capset(hdr, data), "capset")
    check(libc.prctl(38, 1, 0, 0, 0), "no_new_privs")

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    prog = Prog(len(FILTER) // 8, FILTER)
    check(libc.prctl(22, 2, ctypes.byref(prog), 0, 0), "seccomp")


def run_user(req, in_r, out_w, err_w, setup_w):
    """In the call's PID 2: the one-process sandbox's program, from here on."""
    try:
        drop_and_confine(req["limits"])
    except BaseException as e:
        os.write(setup_w, f"{type(e).__name__}: {e}".encode())
        os._exit(125)
    os.dup2(in_r, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.closerange(3, 65536)
    os.chdir(SCRATCH)
    for m in list(sys.modules):
        if m not in KEEP:
            del sys.modules[m]
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    sys.argv = ["-c", str(req["seed"])]
    sys.orig_argv = ORIG_ARGV + [str(req["seed"])]
    sys.stdin, sys.stdout, sys.stderr = (
        open(fd, mode, encoding=enc, errors=err, closefd=False, buffering=1 if line else -1)
        for fd, mode, (enc, err, line) in zip((0, 1, 2), "rww", STREAMS)
    )
    code = 0
    try:
        exec(PROGRAM, main.__dict__)
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code & 0xFF
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException as e:
        # As the interpreter reports an uncaught exception: without this function's frame.
        e.__traceback__ = e.__traceback__.tb_next
        sys.excepthook(type(e), e, e.__traceback__)
        code = 1
    try:
        th = sys.modules.get("threading")
        if th is not None:
            th._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        code = 120
    os._exit(code)


def init(req, in_r, out_w, err_w, setup_w):
    """The call's PID 1, in its new namespaces (bwrap's init in the one-process sandbox)."""
    os.close(1)
    os.close(LOCK_FD[0])
    check(libc.mount(b"proc", b"/proc", b"proc", 2 | 4 | 8, None), "mount /proc")
    go_r, go_w = os.pipe()
    user = os.fork()
    if user == 0:
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)
        os.close(go_w)
        # The program starts once the init's set-up below is done.
        if os.read(go_r, 1) != b"1":
            os._exit(125)
        os.close(go_r)
        run_user(req, in_r, out_w, err_w, setup_w)
    os.close(go_r)
    # PIDs 3 and 4 as the one-process sandbox's watchdog shells take them (the same PIDs for the
    # program's children, the same process count): 3 is skipped (the next PID after 3 is 4),
    # and 4 is a child of the init that stays, idle.
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write("3")
    if os.fork() == 0:
        os.closerange(0, 65536)
        while True:
            signal.pause()
    check(libc.mount(b"/proc/sys", b"/proc/sys", None, 4096 | 16384, None), "bind /proc/sys")
    check(libc.mount(None, b"/proc/sys", None, 32 | 4096 | 1 | 2 | 4 | 8, None), "ro /proc/sys")
    os.write(go_w, b"1")
    os.close(go_w)
    os.close(in_r)
    os.close(out_w)
    os.close(err_w)
    os.close(setup_w)
    while True:
        pid, status = os.wait()
        if pid == user:
            os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status)
                     else 128 + os.WTERMSIG(status))


def set_up_namespaces(lim):
    """In the call's init, inside its fresh namespaces: loopback up, scratch and /dev/shm."""
    # The loopback interface up, as bwrap leaves it: 127.0.0.1 reaches only the call itself.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as lo:
        fcntl.ioctl(lo.fileno(), 0x8914, struct.pack("16sH14x", b"lo", 1))  # SIOCSIFFLAGS IFF_UP
    check(libc.mount(b"tmpfs", SCRATCH.encode(), b"tmpfs", 2 | 4,
                     f"size={lim['disk']},mode=0755".encode()), "mount scratch")
    check(libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", 2 | 4,
                     f"size={lim['shm']},mode=1777".encode()), "mount /dev/shm")


# clone(2) by number: a child born in the new namespaces, so that no process outside the call
# ever enters them (a process that did would count against the call's process limit).
CLONE_NR = {"x86_64": 56, "aarch64": 220}.get(os.uname().machine)


def clone_into_namespaces():
    """Like fork, but the child is PID 1 of new user, mount, PID, network and IPC namespaces."""
    if CLONE_NR is None:
        raise OSError(f"no clone(2) number known for {os.uname().machine}")
    L = ctypes.c_long
    pid = libc.syscall(L(CLONE_NR), L(NEW | signal.SIGCHLD), L(0), L(0), L(0), L(0))
    if pid < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"clone: {os.strerror(e)}")
    return pid


def map_ids(pid):
    """The child's user namespace maps this process's own uid and gid, and nothing else."""
    with open(f"/proc/{pid}/setgroups", "w") as f:
        f.write("deny")
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(f"{os.getuid()} {os.getuid()} 1")
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(f"{os.getgid()} {os.getgid()} 1")


def call(cid, n, done_w):
    """A child of the server: reads its own request, makes its namespaces, runs and reports."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    LOCK_FD.append(os.open(LOCK, os.O_WRONLY))
    req = json.loads(read_exact(0, n))
    os.close(0)
    os.close(done_w)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    setup_r, setup_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = clone_into_namespaces()
    if pid == 0:
        # The call's init: it waits until its ids are mapped, then sets up and starts the call.
        for fd in (in_w, out_r, err_r, setup_r, go_w):
            os.close(fd)
        try:
            if os.read(go_r, 1) == b"1":
                os.close(go_r)
                set_up_namespaces(req["limits"])
                init(req, in_r, out_w, err_w, setup_w)
        except BaseException as e:
            os.write(setup_w, f"{type(e).__name__}: {e}".encode())
        os._exit(125)
    os.close(go_r)
    try:
        map_ids(pid)
        os.write(go_w, b"1")
    finally:
        os.close(go_w)
    for fd in (in_r, out_w, err_w, setup_w):
        os.close(fd)
    frame(cid, {"start": pid})
    cap = req["max_output"]
    bufs = {out_r: bytearray(), err_r: bytearray()}
    trunc = {out_r: False, err_r: False}
    stdin = memoryview(req["code"].encode("utf-8", "surrogatepass"))
    os.set_blocking(in_w, False)
    writing = [in_w] if stdin else []
    if not stdin:
        os.close(in_w)
    live = [out_r, err_r]
    while live or writing:
        rd, wr, _ = select.select(live, writing, [])
        if wr:
            try:
                stdin = stdin[os.write(in_w, stdin[:65536]):]
            except BrokenPipeError:
                stdin = stdin[:0]
            if not stdin:
                writing = []
                os.close(in_w)
        for fd in rd:
            b = os.read(fd, 65536)
            if not b:
                live.remove(fd)
                os.close(fd)
                continue
            room = cap - len(bufs[fd])
            bufs[fd] += b[:max(room, 0)]
            if len(b) > room and not trunc[fd]:
                trunc[fd] = True
                os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    failed = b""
    while True:
        b = os.read(setup_r, 4096)
        if not b:
            break
        failed += b
    if failed:
        raise OSError(failed.decode(errors="replace"))
    frame(cid, {
        "stdout": base64.b64encode(bufs[out_r]).decode(),
        "stderr": base64.b64encode(bufs[err_r]).decode(),
        "stdoutTruncated": trunc[out_r],
        "stderrTruncated": trunc[err_r],
        "code": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
        "signal": None if os.WIFEXITED(status) else os.WTERMSIG(status),
    })
    os._exit(0)


signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
# Objects made so far are never collected: the collector then leaves their pages unwritten in
# the forked calls (fewer copy-on-write faults per call).
import gc
gc.freeze()
frame(0, {"ready": True})
while True:
    try:
        cid, n = struct.unpack("<II", read_exact(0, 8))
    except EOFError:
        os._exit(0)
    done_r, done_w = os.pipe()
    if os.fork() == 0:
        os.close(done_r)
        try:
            call(cid, n, done_w)
        except BaseException as e:
            frame(cid, {"error": f"{type(e).__name__}: {e}"})
        os._exit(1)
    os.close(done_w)
    os.read(done_r, 1)  # the child has read its request
    os.close(done_r)
`;

/** What every call of a worker shares: the interpreter, the wrapper and the environment. */
export interface PythonWorkerOptions {
  /** Interpreter, as for runSandboxed's argv[0]. */
  python: string;
  /** The program each call runs (`python -s -c WRAPPER SEED` in the one-process sandbox). */
  wrapper: string;
  /** Modules the wrapper imports first; loaded once in the server. */
  preload: string[];
  /** The environment (on top of the sandbox's clean one). */
  env?: Record<string, string>;
  /** As SandboxRequest.readOnlyPaths. */
  readOnlyPaths?: string[];
  /** The sandbox the server runs in (default: what `auto` resolves to here). */
  mechanism?: IsolatingMechanism;
}

/** One call: the program's stdin (the code), the seed argument and the limits. */
export interface PythonWorkerCall {
  /** The program, given to the wrapper on stdin. */
  code: string;
  /** The wrapper's seed argument (argv[1] in the one-process sandbox). */
  seed: number;
  /** This call's limits (DEFAULT_LIMITS for what is not given). */
  limits?: Partial<SandboxLimits>;
  /** stdout/stderr kept; past it the program is stopped. */
  maxOutputBytes?: number;
  /** Aborts the call. */
  signal?: AbortSignal;
}

/**
 * The worker failed (not the program): the caller should run the call another way.
 *
 * @example
 * ```ts
 * import { WorkerFailure } from "arpo-lab";
 * const e = new WorkerFailure("the python worker ended");
 * console.log(e.name); // "WorkerFailure"
 * ```
 */
export class WorkerFailure extends Error {
  /**
   * A failure of the worker itself.
   *
   * @param message What went wrong.
   */
  constructor(message: string) {
    super(message);
    this.name = "WorkerFailure";
  }
}

interface Pending {
  resolve(frame: Record<string, unknown>): void;
  reject(e: Error): void;
  /** Host PID of the call's init, once known. */
  init?: number;
  /** The call's init in the worker's PID namespace (from the start frame). */
  start?: number;
  onStart?: () => void;
}

const SHM_BYTES = 16 * 1024 * 1024;

/** Host PID of the process below `root` whose PID in the worker's namespace is `nsPid`. */
function hostPid(root: number, nsPid: number): number | undefined {
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    try {
      const status = Deno.readTextFileSync(`/proc/${pid}/status`);
      const ns = status.match(/^NSpid:\s+(.+)$/m)?.[1].trim().split(/\s+/).map(Number) ?? [];
      if (ns.length >= 3 && ns[1] === nsPid) return pid;
      const kids = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim();
      if (kids) { for (const k of kids.split(" ")) stack.push(Number(k)); }
    } catch { /* gone */ }
  }
  return undefined;
}

/**
 * A running fork server. Start it with PythonWorker.start; close it when done (while no call is in
 * flight it does not keep the program from exiting, so a forgotten close does not hang a script).
 *
 * @example
 * ```ts ignore
 * import { PythonWorker } from "arpo-lab";
 * const w = await PythonWorker.start({
 *   python: "python3",
 *   wrapper: "import sys\nexec(sys.stdin.read())",
 *   preload: ["sys"],
 * });
 * const r = await w.run({ code: "print(6 * 7)", seed: 0 });
 * console.log(r.stdout); // "42\n"
 * await w.close();
 * ```
 */
export class PythonWorker {
  readonly #child: ReturnType<typeof spawn>;
  readonly #mechanism: IsolatingMechanism;
  readonly #pending = new Map<number, Pending>();
  #next = 1;
  #buf = new Uint8Array(0);
  #dead: Error | undefined;
  #watchdog: { destroy(): void } | null;

  private constructor(
    child: ReturnType<typeof spawn>,
    watchdog: { destroy(): void } | null,
    mechanism: IsolatingMechanism,
  ) {
    this.#child = child;
    this.#mechanism = mechanism;
    this.#watchdog = watchdog;
  }

  /**
   * Start a worker and wait until it is ready.
   *
   * @param o The interpreter, wrapper and environment every call shares.
   * @returns The worker.
   * @throws {WorkerFailure} When the server does not start (or no sandbox works here).
   */
  static async start(o: PythonWorkerOptions): Promise<PythonWorker> {
    let mech = o.mechanism;
    if (mech === undefined) {
      try {
        mech = await resolveSandbox("auto") as IsolatingMechanism;
      } catch (e) {
        throw new WorkerFailure(`no sandbox for the python worker: ${(e as Error).message}`);
      }
    }
    const limits = { ...DEFAULT_LIMITS, diskBytes: 1024 * 1024 };
    const origArgv = [o.python, "-s", "-c", o.wrapper];
    const req = { argv: [], env: o.env, readOnlyPaths: o.readOnlyPaths };
    const launch = sandboxLaunch(mech, req, limits, {
      confine: false,
      inner: [
        o.python,
        "-s",
        "-c",
        SERVER,
        o.preload.join(","),
        o.wrapper,
        JSON.stringify(origArgv),
      ],
    });
    const child = spawn(launch.command, launch.args, {
      cwd: launch.cwd,
      // The sandbox gives the server exactly its clean environment (bwrap's --clearenv).
      env: { PATH: Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin" },
      stdio: ["pipe", "pipe", "pipe", "pipe", "pipe"],
    });
    const filter = child.stdio[3] as unknown as NodeJS.WritableStream;
    filter.on("error", () => {});
    filter.end(launch.extraFds[0]);
    const watchdog = child.stdio[4] as unknown as {
      destroy(): void;
      on(e: string, f: () => void): void;
    };
    watchdog.on("error", () => {});
    const w = new PythonWorker(child, watchdog, mech);
    let stderr = "";
    child.stderr!.on("data", (d: Uint8Array) => {
      if (stderr.length < 4000) stderr += new TextDecoder().decode(d);
    });
    const ready = new Promise<void>((resolve, reject) => {
      w.#pending.set(0, { resolve: () => resolve(), reject });
    });
    child.stdout!.on("data", (d: Uint8Array) => w.#onData(d));
    child.once(
      "close",
      () => w.#fail(new WorkerFailure(`the python worker ended: ${stderr.trim()}`)),
    );
    child.once(
      "error",
      (e) => w.#fail(new WorkerFailure(`the python worker did not start: ${e.message}`)),
    );
    child.stdin!.on("error", () => {});
    await ready;
    return w;
  }

  #fail(e: Error): void {
    this.#dead ??= e;
    for (const p of this.#pending.values()) p.reject(this.#dead);
    this.#pending.clear();
    this.#holdWhileBusy();
  }

  /**
   * Keep the program alive only while a call (or the start) is in flight: an idle worker that
   * nobody closed must not stop a script from exiting, as a process-per-call tool would not.
   */
  #holdWhileBusy(): void {
    const busy = this.#pending.size > 0;
    const handles = [
      this.#child,
      ...this.#child.stdio,
    ] as ({ ref?(): void; unref?(): void } | null)[];
    for (const h of handles) {
      if (busy) h?.ref?.();
      else h?.unref?.();
    }
  }

  #onData(d: Uint8Array): void {
    const b = new Uint8Array(this.#buf.length + d.length);
    b.set(this.#buf);
    b.set(d, this.#buf.length);
    let o = 0;
    while (b.length - o >= 8) {
      const v = new DataView(b.buffer, b.byteOffset + o);
      const id = v.getUint32(0, true);
      const n = v.getUint32(4, true);
      if (b.length - o - 8 < n) break;
      const frame = JSON.parse(new TextDecoder().decode(b.subarray(o + 8, o + 8 + n)));
      o += 8 + n;
      const p = this.#pending.get(id);
      if (!p) continue;
      if (typeof frame.start === "number") {
        p.start = frame.start;
        p.init = hostPid(this.#child.pid!, frame.start);
        p.onStart?.();
        continue;
      }
      this.#pending.delete(id);
      this.#holdWhileBusy();
      if (typeof frame.error === "string") p.reject(new WorkerFailure(frame.error));
      else p.resolve(frame);
    }
    this.#buf = b.slice(o);
  }

  /**
   * Run one call: the one-process sandbox's result for the same program and limits.
   *
   * @param c The code, seed, limits and abort signal.
   * @returns How the program ended and what it printed.
   * @throws {WorkerFailure} When the worker (not the program) failed.
   */
  async run(c: PythonWorkerCall): Promise<SandboxResult> {
    const t0 = performance.now();
    const limits: SandboxLimits = { ...DEFAULT_LIMITS, ...c.limits };
    if (this.#dead) throw this.#dead;
    if (!(await acquireSlot(c.signal))) return abortedResult(this.#mechanism, t0);
    const timers: ReturnType<typeof setTimeout>[] = [];
    let guard: ReturnType<typeof setInterval> | undefined;
    try {
      const id = this.#next++;
      const cpu = Math.max(1, Math.ceil(limits.cpuSeconds));
      const payload = new TextEncoder().encode(JSON.stringify({
        code: c.code,
        seed: c.seed,
        max_output: c.maxOutputBytes ?? 64 * 1024,
        limits: {
          cpu,
          as: Math.floor(limits.memoryBytes),
          nproc: Math.max(1, Math.floor(limits.maxProcesses)),
          fsize: Math.floor(limits.maxFileBytes),
          nofile: Math.max(16, Math.floor(limits.maxOpenFiles)),
          disk: Math.max(4096, Math.floor(limits.diskBytes)),
          shm: Math.min(SHM_BYTES, limits.diskBytes),
        },
      }));
      let timedOut = false;
      let wasAborted = false;
      let limitExceeded: SandboxResult["limitExceeded"] = null;
      let stopWanted = false;
      const p: Pending = { resolve: () => {}, reject: () => {} };
      const kill = () => {
        stopWanted = true;
        if (p.start === undefined) return; // killed as soon as it starts (onStart)
        p.init ??= hostPid(this.#child.pid!, p.start);
        if (p.init === undefined) {
          // Not found on the host: stopping the whole worker is the only sure way.
          this.close().catch(() => {});
          return;
        }
        try {
          Deno.kill(p.init, "SIGKILL");
        } catch { /* gone */ }
      };
      const done = new Promise<Record<string, unknown>>((resolve, reject) => {
        p.resolve = resolve;
        p.reject = reject;
      });
      p.onStart = () => {
        if (stopWanted) kill();
        guard = setInterval(() => {
          if (p.init === undefined) return;
          const u = treeUsage(p.init);
          if (u.cpuSeconds > limits.cpuSeconds) limitExceeded = "cpu";
          else if (u.memoryBytes > limits.memoryBytes) limitExceeded = "memory";
          if (limitExceeded !== null) {
            clearInterval(guard);
            kill();
          }
        }, 50);
      };
      this.#pending.set(id, p);
      this.#holdWhileBusy();
      const header = new Uint8Array(8);
      new DataView(header.buffer).setUint32(0, id, true);
      new DataView(header.buffer).setUint32(4, payload.length, true);
      this.#child.stdin!.write(header);
      this.#child.stdin!.write(payload);
      timers.push(setTimeout(() => {
        timedOut = true;
        kill();
      }, limits.wallMs));
      const onAbort = () => {
        wasAborted = true;
        kill();
      };
      c.signal?.addEventListener("abort", onAbort, { once: true });
      let f: Record<string, unknown>;
      try {
        f = await done;
      } finally {
        c.signal?.removeEventListener("abort", onAbort);
      }
      const dec = (k: string) =>
        new TextDecoder().decode(Uint8Array.from(atob(f[k] as string), (ch) => ch.charCodeAt(0)));
      // Like bwrap: the call's init reports a program killed by signal N as 128+N.
      let code = f.code as number | null;
      let signal: string | null = f.signal === null
        ? null
        : SIGNAL_NAMES[f.signal as number] ?? `signal ${f.signal}`;
      if (code !== null && code > 128 && code < 128 + 65) {
        signal = SIGNAL_NAMES[code - 128] ?? `signal ${code - 128}`;
        code = null;
      }
      // As in sandbox.ts: output past the cap means killed, whether or not it had exited first.
      if (f.stdoutTruncated === true || f.stderrTruncated === true) {
        [code, signal] = [null, "SIGKILL"];
      }
      return {
        mechanism: this.#mechanism,
        code,
        signal,
        success: code === 0 && !timedOut && !wasAborted && limitExceeded === null,
        stdout: dec("stdout"),
        stderr: dec("stderr"),
        stdoutTruncated: f.stdoutTruncated === true,
        stderrTruncated: f.stderrTruncated === true,
        timedOut,
        aborted: wasAborted,
        limitExceeded,
        durationMs: performance.now() - t0,
      };
    } finally {
      for (const t of timers) clearTimeout(t);
      clearInterval(guard);
      releaseSlot();
    }
  }

  /** Stop the worker (every call still running ends as a WorkerFailure). */
  async close(): Promise<void> {
    this.#watchdog?.destroy();
    this.#watchdog = null;
    const live = this.#child.exitCode === null && this.#child.signalCode === null;
    if (live && this.#child.pid !== undefined) {
      killChildren(this.#child.pid);
    }
    try {
      this.#child.kill("SIGKILL");
    } catch { /* gone */ }
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      await new Promise((r) => this.#child.once("close", r));
    }
    this.#fail(new WorkerFailure("the python worker was closed"));
  }
}
