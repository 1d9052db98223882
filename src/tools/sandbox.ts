/**
 * Run an untrusted program in a sandbox (used by the python tool; reusable by third-party tools
 * through mod.ts). Deno's permission flags do not constrain child processes, so the sandbox is
 * built from Linux namespaces plus a guard in this process, by one of two mechanisms of equal
 * strength: bubblewrap (`bwrap`, preferred where it works) or, where it is missing, `unshare`
 * (sandbox_unshare.ts: a Python launcher doing what bwrap does with the same system calls, from
 * util-linux, bash and python3 alone). `auto` takes the first that works. Both build the same
 * sandbox from one description (sandboxView), with the same seccomp filter, limits, watchdog and
 * guard. docs/SECURITY.md gives the threat model and what each layer stops; in short:
 *
 * - Namespaces: own user, mount, PID, network, IPC, UTS and cgroup namespaces. The network
 *   namespace has only its own loopback, so no IP socket reaches anything outside, and abstract
 *   Unix sockets (bound to a network namespace) are the sandbox's own.
 * - A minimal filesystem view: /usr (and the /bin, /lib… links or directories of the host) and a
 *   few loader/locale files of /etc, read-only; a fresh /proc and /dev; the scratch directory
 *   `/tmp/arpo-sbx`, a size-limited tmpfs (the only writable place besides /dev/shm). No /run,
 *   host /tmp, /home, /root, /var or /sys, so no Unix socket on the host's filesystem and no user
 *   file is reachable. The scratch directory
 *   lives only in the sandbox's memory: nothing is written to the host's disk, so nothing is left
 *   behind however the runner ends.
 * - Users: as root, the program runs under a fresh unprivileged uid (bwrap or the launcher is
 *   started under it), so it owns nothing on the host and the process limit counts only its own
 *   processes; in every case it has no capabilities and no_new_privs, and cannot create user
 *   namespaces.
 * - A seccomp filter (seccomp.ts) denies mounts, namespaces and kernel surface code never needs.
 * - Limits: CPU seconds (RLIMIT_CPU per process, and the sum over the process tree checked by the
 *   guard), address space per process, and the resident memory of the whole tree (the guard);
 *   processes (RLIMIT_NPROC, counted per user namespace); file size; open files; disk (the tmpfs
 *   sizes). The wall-clock limit is a guard against a stuck machine, not the primary limit.
 * - Concurrency: at most SANDBOX_CONCURRENCY sandboxes run at once in a process (twice the
 *   cores); further calls wait for a slot, and their wall-clock guard starts when they run.
 * - Parent death: bwrap (--die-with-parent) or the launcher has a parent-death signal and the
 *   program is in its own PID namespace, so when this process dies by any signal (SIGKILL
 *   included) the kernel kills the whole tree, and the tmpfs with the scratch directory goes with
 *   it; a watchdog inside covers the start-up, before the parent-death signal is set.
 *
 * `none` runs the program directly (clean environment, host scratch directory, rlimits when
 * `prlimit` exists, timeout) and must be chosen explicitly.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { sandboxSeccompFilter } from "./seccomp.ts";
import { PIVOT_ROOT_NR, unshareCommand, type ViewOp } from "./sandbox_unshare.ts";

/**
 * The sandbox asked for: `auto` uses bubblewrap where it works and the `unshare` mechanism
 * (the same sandbox without bubblewrap) otherwise; `bwrap` and `unshare` ask for one of them;
 * `none` runs unsandboxed and must be chosen explicitly.
 */
export type SandboxMode = "auto" | "unshare" | "bwrap" | "none";
/** The sandbox a run actually used. */
export type SandboxMechanism = "bwrap" | "unshare" | "none";
/** The mechanisms that isolate (all but `none`). */
export type IsolatingMechanism = Exclude<SandboxMechanism, "none">;

/** Resource limits of one sandboxed run. */
export interface SandboxLimits {
  /**
   * Wall-clock guard in milliseconds: past it the whole tree is killed (`timedOut`). It depends
   * on the machine's load, so callers treat it as an infrastructure failure, not a result.
   */
  wallMs: number;
  /**
   * CPU-time limit in seconds, the deterministic time limit: RLIMIT_CPU per process (SIGXCPU)
   * and the whole tree's CPU time (`limitExceeded: "cpu"`).
   */
  cpuSeconds: number;
  /**
   * Memory in bytes: the address space of each process (RLIMIT_AS: an allocation past it fails,
   * e.g. MemoryError) and the resident anonymous memory of all processes together (the guard
   * kills the tree past it: `limitExceeded: "memory"`).
   */
  memoryBytes: number;
  /** Processes and threads at once (RLIMIT_NPROC, counted within the sandbox's namespace). */
  maxProcesses: number;
  /** Largest file the program may write, in bytes (RLIMIT_FSIZE). */
  maxFileBytes: number;
  /** Open file descriptors (RLIMIT_NOFILE). */
  maxOpenFiles: number;
  /** Size of the scratch tmpfs (all files together), in bytes; /dev/shm has its own 16 MiB. */
  diskBytes: number;
}

/** The limits a run gets for every field its request leaves out. */
export const DEFAULT_LIMITS: SandboxLimits = {
  wallMs: 10_000,
  cpuSeconds: 10,
  memoryBytes: 1024 * 1024 * 1024,
  maxProcesses: 32,
  maxFileBytes: 16 * 1024 * 1024,
  maxOpenFiles: 256,
  diskBytes: 64 * 1024 * 1024,
};

/** What to run in the sandbox, and how. */
export interface SandboxRequest {
  /** Program and arguments; the program is looked up in the sandbox's PATH. */
  argv: string[];
  /** Bytes written to the program's stdin (then closed). */
  stdin?: string | Uint8Array;
  /** Default "auto" (bubblewrap, else `unshare`); never `none` unless asked for. */
  mode?: SandboxMode;
  /** Limits to change; the others are DEFAULT_LIMITS. */
  limits?: Partial<SandboxLimits>;
  /** Per stream (stdout, stderr); past it the program is killed and the text marked truncated. */
  maxOutputBytes?: number;
  /** Extra environment variables on top of the clean environment. */
  env?: Record<string, string>;
  /** Files written into the scratch directory before the program starts (relative paths). */
  files?: Record<string, string | Uint8Array>;
  /**
   * Host paths made visible read-only at the same place (e.g. an interpreter installed outside
   * /usr). They must be readable by an unprivileged user when the runner is root.
   */
  readOnlyPaths?: string[];
  /** Abort from outside (e.g. the tool runtime's per-call timeout). */
  signal?: AbortSignal;
  /** `none` only: milliseconds between SIGTERM and SIGKILL. Default 500. */
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
  /** Exit code 0, and neither timed out, aborted nor stopped at a limit. */
  success: boolean;
  /** The program's standard output (UTF-8 decoded, capped). */
  stdout: string;
  /** The program's standard error (UTF-8 decoded, capped). */
  stderr: string;
  /** stdout passed `maxOutputBytes` and was cut (the program was killed). */
  stdoutTruncated: boolean;
  /** stderr passed `maxOutputBytes` and was cut (the program was killed). */
  stderrTruncated: boolean;
  /** The wall-clock guard fired and the program was killed. */
  timedOut: boolean;
  /** The caller's signal aborted the run. */
  aborted: boolean;
  /**
   * The guard killed the tree at a limit over all its processes together: `cpu` (CPU seconds)
   * or `memory` (resident memory); null otherwise (a single process hitting RLIMIT_CPU ends
   * with signal SIGXCPU instead).
   */
  limitExceeded: "cpu" | "memory" | null;
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
/** The scratch directory inside the sandbox (on the sandbox's own tmpfs). */
export const SCRATCH = "/tmp/arpo-sbx";
const SHM_BYTES = 16 * 1024 * 1024;
const HOSTNAME = "arpo-sandbox";
/** How often the guard samples the tree's CPU time and memory. */
const GUARD_INTERVAL_MS = 50;
/**
 * Sandboxes running at once in this process, all callers together: twice the cores (a program
 * that waits should not hold a core's turn), so a round of 128 tool calls neither oversubscribes
 * the CPUs nor multiplies the memory limit by 128. Others wait (their guard starts when they run).
 */
export const SANDBOX_CONCURRENCY = Math.max(2, 2 * (navigator.hardwareConcurrency || 1));

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
 * Started by this process, then exec'ing bwrap (or the launcher): closes every inherited
 * descriptor above `$1` (Deno passes on what its own parent left open: a terminal, an agent
 * socket…), so the sandbox gets only stdio and the descriptors it reads its filter and files from.
 */
const CLOSE_FDS = `k=$1; shift
for f in /proc/$$/fd/*; do
  n=\${f##*/}
  if [ "$n" -gt "$k" ] && [ -e "/proc/$$/fd/$n" ]; then eval "exec $n>&-"; fi
done
exec "$@"`;

/**
 * The first program inside the sandbox: a watchdog that blocks reading descriptor `$1`, whose
 * other end this process holds open for the whole run and closes (or loses, by dying) to stop
 * it; it then kills every process of the sandbox. (Started from a subshell that exits at once, it
 * belongs to the sandbox's init, not to the program, which has no child it did not make.) It covers
 * what --die-with-parent cannot: bwrap sets the parent-death signal only after its set-up, so a
 * runner killed during a sandbox's start-up would otherwise leave that sandbox running.
 */
const WATCHDOG = `w=$1; shift
( ( exec </dev/null >/dev/null 2>&1; eval "read -r _ <&$w"; kill -KILL -1 ) & )
eval "exec $w<&-"
exec "$@"`;

function isRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    return false;
  }
}

/**
 * Absolute path of an executable on the parent's PATH (the safe PATH when PATH is unset), or on
 * `path` when given.
 */
export function findExecutable(name: string, path?: string): string | undefined {
  if (name.includes("/")) return name;
  const dirs = (path ?? Deno.env.get("PATH") ?? SAFE_PATH).split(":").filter(Boolean);
  for (const d of dirs) {
    const p = join(d, name);
    try {
      const st = Deno.statSync(p);
      if (st.isFile && st.mode !== null && (st.mode & 0o111) !== 0) return p;
    } catch { /* not here */ }
  }
  return undefined;
}

/** A fresh unprivileged uid for one sandbox (root mode), so it owns nothing on the host. */
function freshUid(): number {
  const b = new Uint32Array(1);
  crypto.getRandomValues(b); // not for any artefact: only picks an unused uid
  return 1_500_000_000 + (b[0] % 500_000_000);
}

function prlimitArgs(l: SandboxLimits): string[] {
  const cpu = Math.max(1, Math.ceil(l.cpuSeconds));
  return [
    // Soft limit: SIGXCPU (the program sees why); hard limit a second later: SIGKILL.
    `--cpu=${cpu}:${cpu + 1}`,
    `--as=${Math.floor(l.memoryBytes)}`,
    `--nproc=${Math.max(1, Math.floor(l.maxProcesses))}`,
    `--fsize=${Math.floor(l.maxFileBytes)}`,
    `--nofile=${Math.max(16, Math.floor(l.maxOpenFiles))}`,
  ];
}

/** The host's top-level program directories, as symlinks (merged /usr) or read-only binds. */
function systemDirs(): ViewOp[] {
  const ops: ViewOp[] = [["ro-bind", "/usr", "/usr"]];
  for (const d of ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]) {
    try {
      const st = Deno.lstatSync(`/${d}`);
      if (st.isSymlink) ops.push(["symlink", Deno.readLinkSync(`/${d}`), `/${d}`]);
      else if (st.isDirectory) ops.push(["ro-bind", `/${d}`, `/${d}`]);
    } catch { /* absent */ }
  }
  // The dynamic loader's cache, time zone, Debian's alternatives links and the interpreters'
  // own configuration (Debian's python3 reads /etc/python3.X): no users, hosts or secrets.
  const etc = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives"];
  try {
    for (const e of Deno.readDirSync("/etc")) if (/^python\d/.test(e.name)) etc.push(e.name);
  } catch { /* no /etc */ }
  for (const e of etc.sort()) ops.push(["ro-bind-try", `/etc/${e}`, `/etc/${e}`]);
  return ops;
}

/** A process to start: its command line and the descriptors it gets past stdio. */
export interface Launch {
  command: string;
  args: string[];
  /** Bytes to write on descriptors 3, 4, … (the seccomp filter, then the request's files). */
  extraFds: Uint8Array[];
  /** The watchdog's descriptor (after extraFds), held open for the run; none for `none`. */
  watchdog: boolean;
  /** Working directory of the launched process on the host. */
  cwd: string;
}

/** How a sandbox's launch differs for the persistent worker (sandbox_worker.ts). */
export interface LaunchOptions {
  /**
   * Load the seccomp filter and forbid user namespaces (default true). The worker's server needs
   * both for the namespaces it makes per call, and applies the same filter to each call itself.
   */
  confine?: boolean;
  /**
   * What runs after the watchdog (default: prlimit with the request's limits, then argv). Unless
   * confined, descriptor 3 holds the seccomp filter for it to read.
   */
  inner?: string[];
}
/** What both mechanisms build for a request: one description, so both give the same sandbox. */
interface SandboxView {
  /** The filesystem view, in bwrap's option order (the root is made read-only after it). */
  ops: ViewOp[];
  /** The program's exact environment. */
  env: Record<string, string>;
  /** The seccomp filter (descriptor 3), then the request's files (4, …). */
  extraFds: Uint8Array[];
  watchdogFd: number;
  confine: boolean;
  /** The command the sandbox starts: the watchdog, then `inner`. */
  argv: string[];
}

function sandboxView(req: SandboxRequest, limits: SandboxLimits, opts: LaunchOptions): SandboxView {
  const confine = opts.confine ?? true;
  const extraFds: Uint8Array[] = [sandboxSeccompFilter()];
  const files: ViewOp[] = [];
  const dirs = new Set<string>();
  for (const [rel, content] of Object.entries(req.files ?? {})) {
    if (rel.startsWith("/") || rel.split("/").includes("..") || rel === "") {
      throw new Error(`sandbox file name '${rel}' must be relative, without '..'`);
    }
    const parts = rel.split("/").filter(Boolean);
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
    files.push(["file", 3 + extraFds.length, `${SCRATCH}/${parts.join("/")}`]);
    extraFds.push(typeof content === "string" ? new TextEncoder().encode(content) : content);
  }
  const watchdogFd = 3 + extraFds.length;
  const ops: ViewOp[] = [
    ...systemDirs(),
    ...(req.readOnlyPaths ?? []).map((p): ViewOp => ["ro-bind", p, p]),
    ["proc", "/proc"],
    ["dev", "/dev"],
    ["tmpfs", "/dev/shm", Math.min(SHM_BYTES, limits.diskBytes)],
    ["remount-ro", "/dev"],
    ["tmpfs", SCRATCH, Math.max(4096, Math.floor(limits.diskBytes))],
    ...[...dirs].sort().map((d): ViewOp => ["dir", `${SCRATCH}/${d}`]),
    ...files,
  ];
  return {
    ops,
    env: cleanEnv(SCRATCH, req.env),
    extraFds,
    watchdogFd,
    confine,
    argv: [
      "sh",
      "-c",
      WATCHDOG,
      "arpo-sandbox",
      String(watchdogFd),
      ...(opts.inner ?? ["prlimit", ...prlimitArgs(limits), "--", ...req.argv]),
    ],
  };
}

/**
 * `inner` started by this process: under root first setpriv to a fresh unprivileged uid with no
 * capabilities, then (always) the bash step that closes inherited descriptors.
 */
function hostLaunch(view: SandboxView, inner: string[]): Launch {
  const bash = findExecutable("bash") ?? "/bin/bash";
  const closer = [bash, "-c", CLOSE_FDS, "arpo-sandbox", String(view.watchdogFd)];
  const launch = { extraFds: view.extraFds, watchdog: true, cwd: "/" };
  if (!isRoot()) return { ...launch, command: closer[0], args: [...closer.slice(1), ...inner] };
  const uid = String(freshUid());
  return {
    ...launch,
    command: findExecutable("setpriv") ?? "setpriv",
    args: [
      `--reuid=${uid}`,
      `--regid=${uid}`,
      "--clear-groups",
      "--inh-caps=-all",
      "--bounding-set=-all",
      "--",
      ...closer,
      ...inner,
    ],
  };
}

function renderBwrap(op: ViewOp): string[] {
  switch (op[0]) {
    case "tmpfs":
      return ["--size", String(op[2]), "--tmpfs", op[1]];
    case "file":
      return ["--file", String(op[1]), op[2]];
    default:
      return [`--${op[0]}`, ...op.slice(1).map(String)];
  }
}

/** The command line of a bubblewrap sandbox for `req` (used by execute and the worker). */
export function bwrapLaunch(
  req: SandboxRequest,
  limits: SandboxLimits,
  opts: LaunchOptions = {},
): Launch {
  const v = sandboxView(req, limits, opts);
  return hostLaunch(v, [
    findExecutable("bwrap") ?? "bwrap",
    "--unshare-all",
    "--unshare-user",
    ...(v.confine ? ["--disable-userns"] : []),
    "--die-with-parent",
    "--new-session",
    "--hostname",
    HOSTNAME,
    // Exactly the clean environment (not what bash and node:child_process add on the way).
    "--clearenv",
    ...Object.entries(v.env).flatMap(([k, val]) => ["--setenv", k, val]),
    ...v.ops.flatMap(renderBwrap),
    "--chdir",
    SCRATCH,
    "--remount-ro",
    "/",
    ...(v.confine ? ["--seccomp", "3"] : []),
    "--",
    ...v.argv,
  ]);
}

/** The command line of an `unshare` sandbox for `req` (sandbox_unshare.ts); same view as bwrap's. */
export function unshareLaunch(
  req: SandboxRequest,
  limits: SandboxLimits,
  opts: LaunchOptions = {},
): Launch {
  const v = sandboxView(req, limits, opts);
  const pivotRoot = PIVOT_ROOT_NR[Deno.build.arch];
  if (pivotRoot === undefined) throw new Error(`no pivot_root number for ${Deno.build.arch}`);
  return hostLaunch(
    v,
    unshareCommand(launcherPython() ?? "python3", {
      ppid: Deno.pid,
      confine: v.confine,
      pivotRoot,
      ops: [...v.ops, ["remount-ro", "/"]],
      hostname: HOSTNAME,
      env: v.env,
      chdir: SCRATCH,
      argv: v.argv,
      keep: v.confine ? [v.watchdogFd] : [3, v.watchdogFd],
    }),
  );
}

/**
 * The interpreter that runs the unshare launcher: the system's python3 (the sandbox's own PATH,
 * and the host's PATH only when the system has none), never e.g. a pyenv shim under /root that
 * the fresh uid could not run, and the same interpreter the sandbox's own PATH finds.
 */
export function launcherPython(): string | undefined {
  return findExecutable("python3", SAFE_PATH) ?? findExecutable("python3");
}

/** The launch of `mech`'s sandbox for `req` (used by execute and the worker). */
export function sandboxLaunch(
  mech: IsolatingMechanism,
  req: SandboxRequest,
  limits: SandboxLimits,
  opts: LaunchOptions = {},
): Launch {
  return mech === "bwrap" ? bwrapLaunch(req, limits, opts) : unshareLaunch(req, limits, opts);
}

// ---------------------------------------------------------------------------------------------
// availability

/** What each mechanism needs on the host's PATH (setpriv too when root). */
const REQUIRED: Record<IsolatingMechanism, string[]> = {
  bwrap: ["bwrap", "bash", "prlimit"],
  unshare: ["python3", "bash", "prlimit"],
};
/**
 * For tests only: a comma-separated list of mechanisms (`bwrap`, `unshare`) the probe reports as
 * not working, read on every resolveSandbox call (unless hideSandboxMechanismsForTests overrides it
 * in this isolate), so a test can see `auto` fall back (or fail)
 * on a machine that has them. Nothing else reads it.
 */
export const HIDE_ENV = "ARPO_SANDBOX_HIDE";
const probed = new Map<IsolatingMechanism, Promise<string | null>>();

let hiddenInProcess: readonly string[] | undefined;

/**
 * For tests only: hide mechanisms from the probe in this isolate (undefined: back to HIDE_ENV).
 * Tests use this instead of setting HIDE_ENV in their own process, because the environment is
 * shared by every test module that `deno test --parallel` runs in the same process.
 */
export function hideSandboxMechanismsForTests(mechs: readonly string[] | undefined): void {
  hiddenInProcess = mechs;
}

function hidden(mech: IsolatingMechanism): boolean {
  if (hiddenInProcess !== undefined) return hiddenInProcess.includes(mech);
  try {
    return (Deno.env.get(HIDE_ENV) ?? "").split(",").map((s) => s.trim()).includes(mech);
  } catch {
    return false; // no permission to read the environment: nothing is hidden
  }
}

/** Run `true` in `mech`'s sandbox once; null when it works, else the reason. Cached. */
function probe(mech: IsolatingMechanism): Promise<string | null> {
  if (hidden(mech)) return Promise.resolve(`hidden by ${HIDE_ENV} (tests)`);
  let p = probed.get(mech);
  if (p) return p;
  p = (async () => {
    for (const t of [...REQUIRED[mech], ...(isRoot() ? ["setpriv"] : [])]) {
      if (!(t === "python3" ? launcherPython() : findExecutable(t))) {
        return `\`${t}\` is not installed`;
      }
    }
    try {
      sandboxSeccompFilter();
    } catch (e) {
      return (e as Error).message;
    }
    try {
      const r = await execute(mech, { argv: ["true"], limits: { wallMs: 10_000 } });
      if (r.success) return null;
      const why = r.stderr.trim().split("\n").slice(-2).join(" ") ||
        `exit status ${r.code ?? r.signal}`;
      return `${mech === "bwrap" ? "`bwrap`" : "the launcher"} failed: ${why}`;
    } catch (e) {
      return `${mech} failed: ${e instanceof Error ? e.message : String(e)}`;
    }
  })();
  probed.set(mech, p);
  return p;
}

const OPT_OUT = "or set `with: { sandbox: none }` on the tool to run model-written code without " +
  "a sandbox (only on a machine you can afford to lose)";

/**
 * The mechanism a mode resolves to on this machine, or a SandboxUnavailableError saying why and
 * how to allow running without one.
 *
 * @param mode The sandbox asked for (default `auto`: bubblewrap where it works, else `unshare`).
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
  const tried = mode === "auto" ? (["bwrap", "unshare"] as const) : [mode];
  const why: string[] = [];
  for (const m of tried) {
    const w = await probe(m);
    if (w === null) return m;
    why.push(`${m}: ${w}`);
  }
  const what = mode === "auto"
    ? "no sandbox mechanism works on this machine"
    : `the '${mode}' sandbox does not work on this machine`;
  throw new SandboxUnavailableError(
    `${what} (${why.join("; ")}). Model-written code is not run unsandboxed unless you say so: ` +
      "install bubblewrap (`apt-get install bubblewrap`), or provide what the `unshare` " +
      "mechanism uses (bash, python3 and util-linux's prlimit/setpriv, all in a standard Debian " +
      "install); both need unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 " +
      "and user.max_user_namespaces > 0; Ubuntu's AppArmor restriction allows them only to " +
      "bwrap), " + OPT_OUT + ".",
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
 * @example Run model-written Python with a CPU-time limit
 * ```ts
 * import { runSandboxed, SandboxUnavailableError } from "arpo-lab";
 *
 * try {
 *   const r = await runSandboxed({
 *     argv: ["python3", "main.py"],
 *     files: { "main.py": "print(6 * 7)" },
 *     limits: { cpuSeconds: 5 },
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

/** Collects a stream up to `cap` bytes; past it calls `onOverflow` once. */
class Collector {
  readonly parts: Uint8Array[] = [];
  n = 0;
  truncated = false;
  constructor(readonly cap: number, readonly onOverflow: () => void) {}
  push(chunk: Uint8Array): void {
    const room = this.cap - this.n;
    if (chunk.length <= room) {
      this.parts.push(chunk);
      this.n += chunk.length;
      return;
    }
    if (room > 0) {
      this.parts.push(chunk.subarray(0, room));
      this.n = this.cap;
    }
    if (!this.truncated) {
      this.truncated = true;
      this.onOverflow();
    }
  }
  text(): string {
    const bytes = new Uint8Array(this.n);
    let o = 0;
    for (const p of this.parts) {
      bytes.set(p, o);
      o += p.length;
    }
    return new TextDecoder().decode(bytes);
  }
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

export const SIGNAL_NAMES: Record<number, string> = {
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
  31: "SIGSYS",
};

/** The children of `pid`'s main thread (where bwrap and the launcher fork). */
function childrenOf(pid: number): number[] {
  try {
    const kids = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim();
    return kids ? kids.split(" ").map(Number) : [];
  } catch {
    return [];
  }
}

function firstChild(pid: number): number | undefined {
  return childrenOf(pid)[0];
}

/**
 * SIGKILL the children of a sandbox's host process `pid` (bwrap or the unshare launcher, still
 * running): its child is the PID namespace's init, whose death takes the whole sandbox. Killing
 * bwrap alone is not enough early in its start-up: its child then waits on an eventfd for the uid
 * maps bwrap never writes, has no parent-death signal yet, and holds the sandbox's stdout open
 * for ever (seen with an abort 200 ms after the start on a loaded machine).
 */
export function killChildren(pid: number): void {
  for (const k of childrenOf(pid)) {
    try {
      Deno.kill(k, "SIGKILL");
    } catch { /* gone */ }
  }
}

/**
 * CPU seconds and resident anonymous bytes of a process tree (below `root`), from /proc; the
 * resident memory of `rssExempt` (the unshare mechanism's init) is left out.
 */
export function treeUsage(
  root: number,
  rssExempt?: number,
): { cpuSeconds: number; memoryBytes: number } {
  let ticks = 0;
  let kb = 0;
  const stack = [root];
  const seen = new Set<number>();
  while (stack.length > 0) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    let tasks: string[] = [String(pid)];
    try {
      if (pid !== root) {
        // utime, stime, cutime, cstime: the last two hold children it has reaped, so every
        // CPU second of the tree is counted once (the sandbox's init reaps the orphans).
        const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
        const status = Deno.readTextFileSync(`/proc/${pid}/status`);
        if (pid !== rssExempt) kb += Number(status.match(/^RssAnon:\s+(\d+)/m)?.[1] ?? 0);
        if (Number(status.match(/^Threads:\s+(\d+)/m)?.[1] ?? 1) > 1) {
          tasks = [...Deno.readDirSync(`/proc/${pid}/task`)].map((e) => e.name);
        }
      }
      for (const t of tasks) {
        const kids = Deno.readTextFileSync(`/proc/${pid}/task/${t}/children`).trim();
        if (kids) { for (const k of kids.split(" ")) stack.push(Number(k)); }
      }
    } catch { /* exited meanwhile */ }
  }
  // USER_HZ, the unit of /proc/<pid>/stat, is 100 on every Linux ABI.
  return { cpuSeconds: ticks / 100, memoryBytes: kb * 1024 };
}

let running = 0;
const waiting: (() => void)[] = [];

/** Wait for a free slot; false when `signal` aborted first. */
export function acquireSlot(signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  if (running < SANDBOX_CONCURRENCY) {
    running++;
    return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    const go = () => {
      signal?.removeEventListener("abort", quit);
      running++;
      resolve(true);
    };
    const quit = () => {
      const i = waiting.indexOf(go);
      if (i >= 0) waiting.splice(i, 1);
      resolve(false);
    };
    waiting.push(go);
    signal?.addEventListener("abort", quit, { once: true });
  });
}

export function releaseSlot(): void {
  running--;
  waiting.shift()?.();
}

/** The result of a call aborted before its program ran (started waiting at `t0`). */
export function abortedResult(mechanism: SandboxMechanism, t0: number): SandboxResult {
  return {
    mechanism,
    code: null,
    signal: null,
    success: false,
    stdout: "",
    stderr: "",
    stdoutTruncated: false,
    stderrTruncated: false,
    timedOut: false,
    aborted: true,
    limitExceeded: null,
    durationMs: performance.now() - t0,
  };
}

async function execute(mech: SandboxMechanism, req: SandboxRequest): Promise<SandboxResult> {
  const t0 = performance.now();
  if (!(await acquireSlot(req.signal))) return abortedResult(mech, t0);
  try {
    return await executeNow(mech, req, t0);
  } finally {
    releaseSlot();
  }
}

async function executeNow(
  mech: SandboxMechanism,
  req: SandboxRequest,
  t0: number,
): Promise<SandboxResult> {
  const limits: SandboxLimits = { ...DEFAULT_LIMITS, ...req.limits };
  const cap = req.maxOutputBytes ?? 64 * 1024;
  const grace = req.killGraceMs ?? 500;
  const env = cleanEnv(mech !== "none" ? SCRATCH : "", req.env);
  let hostScratch: string | undefined;
  const timers: ReturnType<typeof setTimeout>[] = [];
  let guard: ReturnType<typeof setInterval> | undefined;
  let releaseWatchdog = () => {};
  try {
    let launch: Launch;
    if (mech !== "none") launch = sandboxLaunch(mech, req, limits);
    else {
      // No isolation: a host scratch directory, removed afterwards.
      hostScratch = await Deno.makeTempDir({ dir: tmpdir(), prefix: "arpo-sbx-" });
      env.HOME = env.TMPDIR = hostScratch;
      await Deno.chmod(hostScratch, 0o700);
      for (const [rel, content] of Object.entries(req.files ?? {})) {
        if (rel.startsWith("/") || rel.split("/").includes("..")) {
          throw new Error(`sandbox file name '${rel}' must be relative, without '..'`);
        }
        const p = join(hostScratch, rel);
        await Deno.mkdir(join(p, ".."), { recursive: true });
        if (typeof content === "string") await Deno.writeTextFile(p, content);
        else await Deno.writeFile(p, content);
      }
      const p = findExecutable("prlimit");
      const argv = p ? [p, ...prlimitArgs(limits), "--", ...req.argv] : req.argv;
      launch = {
        command: argv[0],
        args: argv.slice(1),
        extraFds: [],
        watchdog: false,
        cwd: hostScratch,
      };
    }
    const base = {
      mechanism: mech,
      stdoutTruncated: false,
      stderrTruncated: false,
      limitExceeded: null,
    };
    if (req.signal?.aborted) {
      return {
        ...base,
        code: null,
        signal: null,
        success: false,
        stdout: "",
        stderr: "",
        timedOut: false,
        aborted: true,
        durationMs: performance.now() - t0,
      };
    }
    const child = spawn(launch.command, launch.args, {
      cwd: launch.cwd,
      env,
      stdio: [
        "pipe",
        "pipe",
        "pipe",
        ...launch.extraFds.map(() => "pipe" as const),
        ...(launch.watchdog ? ["pipe" as const] : []),
      ],
    });
    const watchdog = launch.watchdog
      ? child.stdio[3 + launch.extraFds.length] as unknown as { destroy(): void } | null
      : null;
    (watchdog as unknown as NodeJS.EventEmitter | null)?.on("error", () => {});
    releaseWatchdog = () => watchdog?.destroy();
    let exited = false;
    let timedOut = false;
    let aborted = false;
    let limitExceeded: SandboxResult["limitExceeded"] = null;
    const kill = (sig: NodeJS.Signals) => {
      if (exited) return;
      if (mech !== "none" && sig === "SIGKILL" && child.pid !== undefined) {
        killChildren(child.pid);
      }
      try {
        child.kill(sig);
      } catch { /* already gone */ }
    };
    // Killing bwrap (or the launcher) and its child, the PID namespace's init, kills every
    // process of the sandbox; releasing the watchdog stops a sandbox still in its set-up.
    const stop = () => {
      if (mech !== "none") {
        releaseWatchdog();
        return kill("SIGKILL");
      }
      kill("SIGTERM");
      timers.push(setTimeout(() => kill("SIGKILL"), grace));
    };
    const out = new Collector(cap, () => {
      releaseWatchdog();
      kill("SIGKILL");
    });
    const err = new Collector(cap, () => {
      releaseWatchdog();
      kill("SIGKILL");
    });
    child.stdout!.on("data", (d: Uint8Array) => out.push(d));
    child.stderr!.on("data", (d: Uint8Array) => err.push(d));
    const status = new Promise<{ code: number | null; signal: string | null }>(
      (resolve, reject) => {
        child.once("error", reject);
        child.once("close", (code, signal) => resolve({ code, signal }));
      },
    );
    launch.extraFds.forEach((bytes, i) => {
      const s = child.stdio[3 + i] as unknown as NodeJS.WritableStream | null;
      s?.on("error", () => {});
      s?.end(bytes);
    });
    timers.push(setTimeout(() => {
      timedOut = true;
      stop();
    }, limits.wallMs));
    const onAbort = () => {
      aborted = true;
      stop();
    };
    req.signal?.addEventListener("abort", onAbort, { once: true });
    if (mech !== "none" && child.pid !== undefined) {
      const pid = child.pid;
      // The unshare launcher's init is a (not dumpable, idle) Python process where bwrap's is a
      // small C one: its resident memory is not the program's, its CPU time is counted.
      let init: number | undefined;
      guard = setInterval(() => {
        if (mech === "unshare") init ??= firstChild(pid);
        const u = treeUsage(pid, init);
        if (u.cpuSeconds > limits.cpuSeconds) limitExceeded = "cpu";
        else if (u.memoryBytes > limits.memoryBytes) limitExceeded = "memory";
        if (limitExceeded !== null) {
          clearInterval(guard);
          stop();
        }
      }, GUARD_INTERVAL_MS);
    }
    // Write stdin without blocking on a program that never reads it.
    child.stdin!.on("error", () => {});
    child.stdin!.end(
      typeof req.stdin === "string"
        ? new TextEncoder().encode(req.stdin)
        : req.stdin ?? new Uint8Array(),
    );
    let st: { code: number | null; signal: string | null };
    try {
      st = await status;
    } finally {
      exited = true;
      clearInterval(guard);
      req.signal?.removeEventListener("abort", onAbort);
    }
    // bwrap (and the launcher) report a program killed by signal N as exit status 128+N.
    let code = st.signal ? null : st.code;
    let signal = st.signal;
    if (mech !== "none" && code !== null && code > 128 && code < 128 + 65) {
      signal = SIGNAL_NAMES[code - 128] ?? `signal ${code - 128}`;
      code = null;
    }
    // Past the output cap the program is killed; one that exited before the kill landed gets the
    // same result, so the outcome does not depend on timing.
    if (out.truncated || err.truncated) [code, signal] = [null, "SIGKILL"];
    return {
      ...base,
      code,
      signal,
      success: code === 0 && !timedOut && !aborted && limitExceeded === null,
      stdout: out.text(),
      stderr: err.text(),
      stdoutTruncated: out.truncated,
      stderrTruncated: err.truncated,
      timedOut,
      aborted,
      limitExceeded,
      durationMs: performance.now() - t0,
    };
  } finally {
    for (const t of timers) clearTimeout(t);
    clearInterval(guard);
    releaseWatchdog();
    if (hostScratch !== undefined) await removeScratch(hostScratch);
  }
}
