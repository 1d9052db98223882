/**
 * Run an untrusted program in a sandbox (used by the python tool; reusable by third-party tools
 * through mod.ts). Deno's permission flags do not constrain child processes, so the sandbox is
 * built from standard Linux tools:
 *
 * - `unshare` (util-linux): new network, mount, PID, IPC and UTS namespaces. The network namespace
 *   has only a downed loopback, so no socket reaches anything, 127.0.0.1 included. In the mount
 *   namespace the root is remounted read-only, the scratch directory is bind-mounted read-write
 *   onto itself and /dev/shm is a private tmpfs, so the scratch directory is the only place a write
 *   persists (and it is removed afterwards). A fresh /proc shows only the sandbox's processes.
 * - `setpriv`: as root, switches to a fresh unprivileged uid (RLIMIT_NPROC is not enforced for
 *   root, and root could undo the mounts); in every case drops all capabilities and sets
 *   no_new_privs. Without root, a user namespace maps the caller to root inside it, and dropping
 *   the capability bounding set removes that root's powers before the program runs.
 * - `prlimit`: CPU seconds, address space, process count, file size and open files.
 * - The environment is cleared (PATH and a few locale/home variables only), the working directory
 *   is a fresh scratch directory, and a wall-clock timer sends SIGTERM then SIGKILL. Killing
 *   `unshare` kills the namespace's init (`--kill-child`), and with it every process inside.
 *
 * `bwrap` (bubblewrap) is used when asked for and installed. `none` runs the program directly
 * (clean environment, scratch cwd, timeout) and must be chosen explicitly.
 */
import { join } from "node:path";
import { tmpdir } from "node:os";

/** The sandbox asked for: `auto` picks unshare, else bwrap; `none` must be chosen explicitly. */
export type SandboxMode = "auto" | "unshare" | "bwrap" | "none";
/** The sandbox a run actually used. */
export type SandboxMechanism = "unshare" | "bwrap" | "none";

/** Resource limits of one sandboxed run. */
export interface SandboxLimits {
  /** Wall-clock limit in milliseconds (SIGTERM, then SIGKILL after `killGraceMs`). */
  wallMs: number;
  /** CPU-time limit in seconds (RLIMIT_CPU). */
  cpuSeconds: number;
  /** Address-space limit in bytes (RLIMIT_AS). */
  memoryBytes: number;
  /** Process/thread limit (RLIMIT_NPROC, counted per uid). */
  maxProcesses: number;
  /** Largest file the program may write, in bytes (RLIMIT_FSIZE). */
  maxFileBytes: number;
  /** Open file descriptors (RLIMIT_NOFILE). */
  maxOpenFiles: number;
}

/** The limits a run gets for every field its request leaves out. */
export const DEFAULT_LIMITS: SandboxLimits = {
  wallMs: 10_000,
  cpuSeconds: 10,
  memoryBytes: 1024 * 1024 * 1024,
  maxProcesses: 32,
  maxFileBytes: 16 * 1024 * 1024,
  maxOpenFiles: 256,
};

/** What to run in the sandbox, and how. */
export interface SandboxRequest {
  /** Program and arguments; the program is looked up in the sandbox's PATH. */
  argv: string[];
  /** Bytes written to the program's stdin (then closed). */
  stdin?: string | Uint8Array;
  /** Default "auto": unshare, else bwrap; never `none` unless asked for. */
  mode?: SandboxMode;
  /** Limits to change; the others are DEFAULT_LIMITS. */
  limits?: Partial<SandboxLimits>;
  /** Per stream (stdout, stderr); past it the program is killed and the text marked truncated. */
  maxOutputBytes?: number;
  /** Extra environment variables on top of the clean environment. */
  env?: Record<string, string>;
  /** Files written into the scratch directory before the program starts (relative paths). */
  files?: Record<string, string | Uint8Array>;
  /** Abort from outside (e.g. the tool runtime's per-call timeout). */
  signal?: AbortSignal;
  /** Milliseconds between SIGTERM and SIGKILL. Default 500. */
  killGraceMs?: number;
}

/** How a sandboxed run ended and what it printed. */
export interface SandboxResult {
  /** The sandbox the run used. */
  mechanism: SandboxMechanism;
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  /** Name of the signal that killed the program (e.g. "SIGKILL"), or null. */
  signal: string | null;
  /** Exit code 0, and neither timed out nor aborted. */
  success: boolean;
  /** The program's standard output (UTF-8 decoded, capped). */
  stdout: string;
  /** The program's standard error (UTF-8 decoded, capped). */
  stderr: string;
  /** stdout passed `maxOutputBytes` and was cut (the program was killed). */
  stdoutTruncated: boolean;
  /** stderr passed `maxOutputBytes` and was cut (the program was killed). */
  stderrTruncated: boolean;
  /** The wall-clock limit passed and the program was killed. */
  timedOut: boolean;
  /** The caller's signal aborted the run. */
  aborted: boolean;
  /** Wall time in milliseconds (a timing; never hash it). */
  durationMs: number;
}

/**
 * No sandbox mechanism works on this machine (or the one asked for does not).
 *
 * @example Report a missing sandbox instead of running unsandboxed
 * ```ts
 * import { resolveSandbox, SandboxUnavailableError } from "arpo-lab";
 *
 * try {
 *   console.log(`sandbox: ${await resolveSandbox("auto")}`);
 * } catch (e) {
 *   if (!(e instanceof SandboxUnavailableError)) throw e;
 *   console.log(e.message); // why, and how to allow running without one
 * }
 * ```
 */
export class SandboxUnavailableError extends Error {
  /**
   * An error saying why no sandbox can be used.
   *
   * @param message Why, and what to install or configure.
   */
  constructor(message: string) {
    super(message);
    this.name = "SandboxUnavailableError";
  }
}

/** Variables a sandboxed program sees (plus HOME/TMPDIR pointing at its scratch directory). */
const SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

function cleanEnv(scratch: string, extra?: Record<string, string>): Record<string, string> {
  return {
    PATH: SAFE_PATH,
    HOME: scratch,
    TMPDIR: scratch,
    LANG: "C.UTF-8",
    LC_ALL: "C.UTF-8",
    ...extra,
  };
}

/**
 * Runs inside the new namespaces as (namespace) root: set up the mounts, enter the scratch
 * directory, drop privileges and run the limited program. `$2` is the uid to switch to, or `-`
 * to keep the current one (user-namespace mode). The shell stays as the namespace's PID 1
 * instead of exec'ing: changing credentials clears the parent-death signal that `--kill-child`
 * set, so the shell (which keeps it) is what dies with `unshare`, and the kernel then kills every
 * process left in the namespace.
 * (A background job's stdin is /dev/null in sh, hence the copy of stdin on fd 3.)
 */
const UNSHARE_SCRIPT = `set -e
s=$1; u=$2; shift 2
mount --bind "$s" "$s"
mount -o remount,bind,ro /
mount -t tmpfs -o size=16m,nosuid,nodev,mode=1777 arpo-shm /dev/shm
cd "$s"
exec 3<&0
set +e
if [ "$u" = "-" ]; then
  setpriv --no-new-privs --inh-caps=-all --bounding-set=-all -- "$@" <&3 3<&- &
else
  setpriv --reuid="$u" --regid="$u" --clear-groups --no-new-privs --inh-caps=-all \\
    --bounding-set=-all -- "$@" <&3 3<&- &
fi
wait $!
exit $?
`;

function isRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    return false;
  }
}

/** Absolute path of an executable on the parent's PATH (the safe PATH when PATH is unset). */
export function findExecutable(name: string): string | undefined {
  if (name.includes("/")) return name;
  const dirs = (Deno.env.get("PATH") ?? SAFE_PATH).split(":").filter(Boolean);
  for (const d of dirs) {
    const p = join(d, name);
    try {
      const st = Deno.statSync(p);
      if (st.isFile && st.mode !== null && (st.mode & 0o111) !== 0) return p;
    } catch { /* not here */ }
  }
  return undefined;
}

/** A fresh unprivileged uid for one sandbox (root mode), so process counts are per call. */
function freshUid(): number {
  const b = new Uint32Array(1);
  crypto.getRandomValues(b); // not for any artefact: only picks an unused uid
  return 1_500_000_000 + (b[0] % 500_000_000);
}

function prlimitArgs(l: SandboxLimits): string[] {
  return [
    `--cpu=${Math.max(1, Math.ceil(l.cpuSeconds))}`,
    `--as=${Math.floor(l.memoryBytes)}`,
    `--nproc=${Math.max(1, Math.floor(l.maxProcesses))}`,
    `--fsize=${Math.floor(l.maxFileBytes)}`,
    `--nofile=${Math.max(16, Math.floor(l.maxOpenFiles))}`,
  ];
}

interface Launch {
  command: string;
  args: string[];
  /** uid that must own the scratch directory, when it differs from ours. */
  chownTo?: number;
}

function buildLaunch(
  mech: SandboxMechanism,
  scratch: string,
  argv: string[],
  limits: SandboxLimits,
): Launch {
  if (mech === "none") {
    // No isolation; resource limits still apply when prlimit exists.
    const p = findExecutable("prlimit");
    return p
      ? { command: p, args: [...prlimitArgs(limits), "--", ...argv] }
      : { command: argv[0], args: argv.slice(1) };
  }
  const root = isRoot();
  const uid = root ? freshUid() : undefined;
  const inner = ["prlimit", ...prlimitArgs(limits), "--", ...argv];
  if (mech === "unshare") {
    const ns = ["--net", "--mount", "--pid", "--ipc", "--uts", "--fork", "--kill-child"];
    return {
      command: findExecutable("unshare") ?? "unshare",
      args: [
        ...(root ? [] : ["--user", "--map-root-user"]),
        ...ns,
        "--mount-proc",
        "--",
        "/bin/sh",
        "-c",
        UNSHARE_SCRIPT,
        "arpo-sandbox",
        scratch,
        uid === undefined ? "-" : String(uid),
        ...inner,
      ],
      chownTo: uid,
    };
  }
  // bwrap: read-only view of / (as with unshare), fresh /dev, /proc and /dev/shm, the scratch
  // directory writable.
  const drop = uid === undefined
    ? ["setpriv", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
    : [
      "setpriv",
      `--reuid=${uid}`,
      `--regid=${uid}`,
      "--clear-groups",
      "--no-new-privs",
      "--inh-caps=-all",
      "--bounding-set=-all",
      "--",
    ];
  return {
    command: findExecutable("bwrap") ?? "bwrap",
    args: [
      "--unshare-net",
      "--unshare-pid",
      "--unshare-ipc",
      "--unshare-uts",
      ...(root ? [] : ["--unshare-user"]),
      "--die-with-parent",
      "--new-session",
      "--ro-bind",
      "/",
      "/",
      "--dev",
      "/dev",
      "--proc",
      "/proc",
      "--tmpfs",
      "/dev/shm",
      "--bind",
      scratch,
      scratch,
      "--chdir",
      scratch,
      "--",
      ...drop,
      ...inner,
    ],
    chownTo: uid,
  };
}

// ---------------------------------------------------------------------------------------------
// availability

const probes = new Map<SandboxMechanism, Promise<string | null>>();

/** Run `true` through a mechanism once; null when it works, else the reason. Cached. */
function probe(mech: "unshare" | "bwrap"): Promise<string | null> {
  let p = probes.get(mech);
  if (!p) {
    p = (async () => {
      const tool = mech === "unshare" ? "unshare" : "bwrap";
      for (const t of [tool, "setpriv", "prlimit"]) {
        if (!findExecutable(t)) return `\`${t}\` is not installed`;
      }
      try {
        const r = await execute(mech, {
          argv: ["true"],
          limits: { wallMs: 10_000 },
        });
        if (r.success) return null;
        const why = r.stderr.trim().split("\n").slice(-2).join(" ") ||
          `exit status ${r.code ?? r.signal}`;
        return `\`${tool}\` failed: ${why}`;
      } catch (e) {
        return `\`${tool}\` failed: ${e instanceof Error ? e.message : String(e)}`;
      }
    })();
    probes.set(mech, p);
  }
  return p;
}

/**
 * The mechanism a mode resolves to on this machine, or a SandboxUnavailableError saying why and
 * how to allow running without one.
 *
 * @param mode The sandbox asked for (default `auto`).
 * @returns The mechanism runSandboxed would use.
 * @throws {SandboxUnavailableError} When no mechanism the mode allows works here.
 *
 * @example
 * ```ts
 * import { resolveSandbox } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await resolveSandbox("none"), "none"); // `none` always resolves
 * ```
 */
export async function resolveSandbox(mode: SandboxMode = "auto"): Promise<SandboxMechanism> {
  if (mode === "none") return "none";
  if (mode === "unshare" || mode === "bwrap") {
    const why = await probe(mode);
    if (why === null) return mode;
    throw new SandboxUnavailableError(
      `the '${mode}' sandbox is not usable on this machine (${why}). Use \`sandbox: auto\` to ` +
        "pick any working mechanism, or set `with: { sandbox: none }` on the tool to run " +
        "model-written code without a sandbox (only on a machine you can afford to lose).",
    );
  }
  const reasons: string[] = [];
  for (const m of ["unshare", "bwrap"] as const) {
    const why = await probe(m);
    if (why === null) return m;
    reasons.push(`${m}: ${why}`);
  }
  throw new SandboxUnavailableError(
    `no sandbox mechanism works on this machine (${reasons.join("; ")}). Model-written code ` +
      "is not run unsandboxed unless you say so: install util-linux's unshare/setpriv/prlimit " +
      "(and allow user namespaces when not root) or bubblewrap, or set " +
      "`with: { sandbox: none }` on the tool explicitly.",
  );
}

// ---------------------------------------------------------------------------------------------
// running

/**
 * Run a program in the sandbox the request's mode resolves to. Throws SandboxUnavailableError.
 *
 * @param req The program, its input and files, the mode and the limits.
 * @returns How the run ended and what it printed; a failing program is a result, not an error.
 * @throws {SandboxUnavailableError} When no mechanism the mode allows works here.
 *
 * @example Run model-written Python with a time limit
 * ```ts
 * import { runSandboxed, SandboxUnavailableError } from "arpo-lab";
 *
 * try {
 *   const r = await runSandboxed({
 *     argv: ["python3", "main.py"],
 *     files: { "main.py": "print(6 * 7)" },
 *     limits: { wallMs: 5_000 },
 *   });
 *   console.log(r.success ? r.stdout : `failed (${r.code ?? r.signal}): ${r.stderr}`);
 * } catch (e) {
 *   if (!(e instanceof SandboxUnavailableError)) throw e;
 * }
 * ```
 */
export async function runSandboxed(req: SandboxRequest): Promise<SandboxResult> {
  const mech = await resolveSandbox(req.mode ?? "auto");
  return await execute(mech, req);
}

async function collect(
  stream: ReadableStream<Uint8Array>,
  cap: number,
  onOverflow: () => void,
): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  const parts: Uint8Array[] = [];
  let n = 0;
  let truncated = false;
  for await (const chunk of stream) {
    const room = cap - n;
    if (chunk.length <= room) {
      parts.push(chunk);
      n += chunk.length;
      continue;
    }
    if (room > 0) {
      parts.push(chunk.subarray(0, room));
      n = cap;
    }
    if (!truncated) {
      truncated = true;
      onOverflow();
    }
  }
  const bytes = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    bytes.set(p, o);
    o += p.length;
  }
  return { bytes, truncated };
}

async function removeScratch(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    // A program may leave unreadable directories behind (chmod 000): open them up and retry.
    const fix = async (p: string) => {
      try {
        await Deno.chmod(p, 0o700);
        for await (const e of Deno.readDir(p)) if (e.isDirectory) await fix(join(p, e.name));
      } catch { /* best effort */ }
    };
    await fix(path);
    await Deno.remove(path, { recursive: true }).catch(() => {});
  }
}

const SIGNAL_NAMES: Record<number, string> = {
  1: "SIGHUP",
  2: "SIGINT",
  4: "SIGILL",
  6: "SIGABRT",
  7: "SIGBUS",
  8: "SIGFPE",
  9: "SIGKILL",
  11: "SIGSEGV",
  13: "SIGPIPE",
  14: "SIGALRM",
  15: "SIGTERM",
  24: "SIGXCPU",
  25: "SIGXFSZ",
};

async function execute(mech: SandboxMechanism, req: SandboxRequest): Promise<SandboxResult> {
  const limits: SandboxLimits = { ...DEFAULT_LIMITS, ...req.limits };
  const cap = req.maxOutputBytes ?? 64 * 1024;
  const grace = req.killGraceMs ?? 500;
  const scratch = await Deno.makeTempDir({ dir: tmpdir(), prefix: "arpo-sbx-" });
  const t0 = performance.now();
  let timedOut = false;
  let aborted = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Deno.chmod(scratch, 0o700);
    for (const [rel, content] of Object.entries(req.files ?? {})) {
      if (rel.startsWith("/") || rel.split("/").includes("..")) {
        throw new Error(`sandbox file name '${rel}' must be relative, without '..'`);
      }
      const p = join(scratch, rel);
      await Deno.mkdir(join(p, ".."), { recursive: true });
      if (typeof content === "string") await Deno.writeTextFile(p, content);
      else await Deno.writeFile(p, content);
    }
    const launch = buildLaunch(mech, scratch, req.argv, limits);
    if (launch.chownTo !== undefined) {
      const own = async (p: string) => {
        await Deno.chown(p, launch.chownTo!, launch.chownTo!);
        if ((await Deno.stat(p)).isDirectory) {
          for await (const e of Deno.readDir(p)) await own(join(p, e.name));
        }
      };
      await own(scratch);
    }
    if (req.signal?.aborted) {
      return {
        mechanism: mech,
        code: null,
        signal: null,
        success: false,
        stdout: "",
        stderr: "",
        stdoutTruncated: false,
        stderrTruncated: false,
        timedOut: false,
        aborted: true,
        durationMs: performance.now() - t0,
      };
    }
    const child = new Deno.Command(launch.command, {
      args: launch.args,
      cwd: scratch,
      clearEnv: true,
      env: cleanEnv(scratch, req.env),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let exited = false;
    const kill = (sig: Deno.Signal) => {
      if (exited) return;
      try {
        child.kill(sig);
      } catch { /* already gone */ }
    };
    const stop = () => {
      kill("SIGTERM");
      // Last resort for programs that trap SIGTERM (and for unshare, which ignores it).
      if (killTimer === undefined) killTimer = setTimeout(() => kill("SIGKILL"), grace);
    };
    timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, limits.wallMs);
    const onAbort = () => {
      aborted = true;
      stop();
    };
    req.signal?.addEventListener("abort", onAbort, { once: true });
    const overflow = () => kill("SIGKILL");
    const outP = collect(child.stdout, cap, overflow);
    const errP = collect(child.stderr, cap, overflow);
    // Write stdin without blocking on a program that never reads it.
    const writer = child.stdin.getWriter();
    const input = typeof req.stdin === "string"
      ? new TextEncoder().encode(req.stdin)
      : req.stdin ?? new Uint8Array();
    writer.write(input).then(() => writer.close()).catch(() => {});
    const status = await child.status;
    exited = true;
    clearTimeout(timer);
    clearTimeout(killTimer);
    req.signal?.removeEventListener("abort", onAbort);
    const [out, err] = await Promise.all([outP, errP]);
    const dec = new TextDecoder();
    // Inside unshare the shell reports a program killed by signal N as exit status 128+N.
    let code: number | null = status.signal ? null : status.code;
    let signal: string | null = status.signal ?? null;
    if (mech === "unshare" && code !== null && code > 128 && code < 128 + 65) {
      signal = SIGNAL_NAMES[code - 128] ?? `signal ${code - 128}`;
      code = null;
    }
    return {
      mechanism: mech,
      code,
      signal,
      success: status.success && !timedOut && !aborted,
      stdout: dec.decode(out.bytes),
      stderr: dec.decode(err.bytes),
      stdoutTruncated: out.truncated,
      stderrTruncated: err.truncated,
      timedOut,
      aborted,
      durationMs: performance.now() - t0,
    };
  } finally {
    clearTimeout(timer);
    clearTimeout(killTimer);
    await removeScratch(scratch);
  }
}
