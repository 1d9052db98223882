/**
 * The `unshare` sandbox mechanism: the same sandbox as bubblewrap's, built without bubblewrap,
 * for machines that have only what Debian installs everywhere (util-linux, bash, python3). A small
 * Python launcher does, with the same system calls and in the same order, what bwrap does for the
 * options sandbox.ts gives it (bubblewrap.c, setup_newroot and bind_mount), so that a program sees
 * the same view under both (tests/tools_sandbox_test.ts compares them):
 *
 * - the launcher sets its parent-death signal (and stops if its parent is already gone), sets
 *   no_new_privs, reads the seccomp filter and the request's files from their descriptors, and
 *   calls unshare(2) for new user (its uid as root there), mount, PID, network, IPC, UTS and
 *   cgroup namespaces, then forks the namespace's PID 1 and waits for it (exit status: PID 2's,
 *   or 128 + the signal, as bwrap's);
 * - PID 1 brings the loopback up, mounts a tmpfs, pivots into it and builds the new root there
 *   from the old one (read-only recursive binds that keep each mount's locked flags and add
 *   nosuid/nodev, symlinks, a fresh /proc with bwrap's read-only covers, bwrap's minimal /dev with
 *   its own devpts, size-limited tmpfs, files), remounts it read-only, sets the hostname, detaches
 *   the old root and pivots again; then (when confined) limits user namespaces to the one it makes
 *   next, makes a second user namespace that maps the caller's uid back (the program's uid is the
 *   caller's, as under bwrap), checks that no further one can be made, drops every capability,
 *   starts a new session and forks the program (PID 2); it stays as the init, with default signal
 *   handling (so the program cannot signal it), no capabilities, the seccomp filter, and not
 *   dumpable (so the program cannot write into its memory either), and exits with the program's
 *   status, which takes the whole PID namespace with it;
 * - PID 2 resets the signal dispositions Python changed, sets its parent-death signal, closes
 *   every descriptor but stdio and the watchdog's (and, unconfined, the filter for the worker),
 *   loads the seccomp filter as its last step and executes the program with exactly the clean
 *   environment (plus PWD, as bwrap sets it).
 *
 * The launcher is trusted code run by the host's python3 (`-I -S`: no site, no environment);
 * model-written code only ever runs in PID 2's program. The cost over bwrap is one interpreter
 * start per sandbox (the persistent worker pays it once).
 */

/** One step of building the filesystem view, in bwrap's option order. */
export type ViewOp =
  | ["ro-bind", string, string]
  | ["ro-bind-try", string, string]
  | ["symlink", string, string]
  | ["proc", string]
  | ["dev", string]
  | ["tmpfs", string, number]
  | ["remount-ro", string]
  | ["dir", string]
  | ["file", number, string];

/**
 * Everything the launcher needs. The environment and the program's argv follow the JSON in the
 * launcher's argv, one argument each (an argument may hold 128 KiB, the whole list 2 MiB, as for
 * bwrap's own argv); the rest is JSON, read as a Python literal.
 */
export interface UnshareConfig {
  /** The runner's PID: the launcher stops if its parent is not it any more. */
  ppid: number;
  /** Seccomp filter (read from descriptor 3) and user namespaces disabled for the program. */
  confine: boolean;
  /** pivot_root's syscall number on this architecture. */
  pivotRoot: number;
  ops: ViewOp[];
  hostname: string;
  /** The program's exact environment (PWD is added, as bwrap does). */
  env: Record<string, string>;
  chdir: string;
  argv: string[];
  /** Descriptors above stdio the program keeps (the watchdog's; unconfined also the filter). */
  keep: number[];
}

/** pivot_root(2)'s number (x86_64: asm/unistd_64.h; aarch64: asm-generic). */
export const PIVOT_ROOT_NR: Record<string, number> = { x86_64: 155, aarch64: 41 };

/** The launcher (Python 3.8+, standard library only, run with `-I -S`). */
export const UNSHARE_LAUNCHER = String.raw`import ctypes, os, sys, _signal
# The configuration is JSON.stringify's output (sandbox.ts), whose grammar is a subset of Python's
# literals once true/false/null are named: evaluated without builtins it can only be that value,
# and it spares the launcher the json module's imports (re, enum: a third of its start-up).
C = eval(sys.argv[1], {"__builtins__": {}, "true": True, "false": False, "null": None})
ENV = dict(kv.split("=", 1) for kv in sys.argv[2:2 + C["envCount"]])
ARGV = sys.argv[2 + C["envCount"]:]
libc = ctypes.CDLL(None, use_errno=True)
P = ctypes.c_char_p
libc.mount.argtypes = (P, P, P, ctypes.c_ulong, P)
libc.umount2.argtypes = (P, ctypes.c_int)
libc.prctl.argtypes = (ctypes.c_int,) + (ctypes.c_ulong,) * 4
libc.syscall.argtypes = (ctypes.c_long, P, P)
RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT, BIND, REC, SILENT = 1, 2, 4, 8, 32, 4096, 16384, 32768
PRIVATE, SLAVE = 1 << 18, 1 << 19
FLAGS = {b"ro": RDONLY, b"nosuid": NOSUID, b"nodev": NODEV, b"noexec": NOEXEC,
         b"noatime": 1024, b"nodiratime": 2048, b"relatime": 1 << 21}
NEWNS, NEWCGROUP, NEWUTS, NEWIPC = 0x20000, 0x2000000, 0x4000000, 0x8000000
NEWUSER, NEWPID, NEWNET = 0x10000000, 0x20000000, 0x40000000
fse = os.fsencode


def die(msg):
    try:
        os.write(2, f"arpo-sandbox: {msg}\n".encode(errors="replace"))
    finally:
        os._exit(1)


def ok(r, what):
    if r != 0:
        die(f"{what}: {os.strerror(ctypes.get_errno())}")


def prctl(op, a=0):
    return libc.prctl(op, a, 0, 0, 0)


def slurp(fd):
    parts = []
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            break
        parts.append(b)
    os.close(fd)
    return b"".join(parts)


def write_at(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC, dir_fd=PROC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def no_caps():
    ok(libc.capset((ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()), "capset")


def seccomp():
    if FILTER is None:
        return
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    buf = ctypes.create_string_buffer(FILTER, len(FILTER))
    prog = Prog(len(FILTER) // 8, ctypes.cast(buf, ctypes.c_void_p))
    ok(libc.prctl(22, 2, ctypes.addressof(prog), 0, 0), "seccomp")  # PR_SET_SECCOMP, FILTER
    SECCOMP_KEEP.append((buf, prog))


SECCOMP_KEEP = []


def close_except(keep):
    for fd in [int(n) for n in os.listdir("/proc/self/fd")]:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def default_signals():
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    for s in range(1, 65):
        try:
            _signal.signal(s, _signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass


def unescape(b):
    out, i = bytearray(), 0
    while i < len(b):
        if b[i] == 92 and i + 4 <= len(b) and b[i + 1:i + 4].isdigit():
            out.append(int(b[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(b[i])
            i += 1
    return os.fsdecode(bytes(out))


def mounts_at(path):
    """The mount at path (the topmost) and, after it, those below it: (mount point, flags)."""
    fd = os.open("self/mountinfo", os.O_RDONLY | os.O_CLOEXEC, dir_fd=PROC)
    tab = []
    for line in slurp(fd).split(b"\n"):
        f = line.split(b" ")
        if len(f) > 5:
            fl = 0
            for t in f[5].split(b","):
                fl |= FLAGS.get(t, 0)
            tab.append((unescape(f[4]), fl))
    top = [i for i, (mp, _) in enumerate(tab) if mp == path]
    if not top:
        return []
    below = {}
    for mp, fl in tab[top[-1] + 1:]:
        if mp.startswith(path.rstrip("/") + "/"):
            below[mp] = fl
    return [tab[top[-1]]] + list(below.items())


def bind(src, dest, ro, devices=False, recursive=True):
    """bwrap's bind_mount: bind, then remount with the mount's own flags + nosuid/nodev/ro."""
    if src is not None:
        ok(libc.mount(fse(src), fse(dest), None, SILENT | BIND | (REC if recursive else 0), None),
           f"Can't bind mount {src} on {dest}")
    real = os.path.realpath(dest)
    tab = mounts_at(real)
    if not tab:
        die(f"Can't find the mount at {dest}")
    for i, (mp, cur) in enumerate(tab if recursive else tab[:1]):
        new = cur | (0 if devices else NODEV) | NOSUID | (RDONLY if ro else 0)
        if new != cur:
            r = libc.mount(b"none", fse(mp), None, SILENT | BIND | REMOUNT | new, None)
            if r != 0 and (i == 0 or ctypes.get_errno() != 13):  # EACCES: unreachable anyway
                ok(r, f"Can't remount {mp} readonly" if ro else f"Can't remount {mp}")


def parents(path, mode=0o700):
    """Missing parent directories, as bwrap makes them: 0700 for binds and symlinks (whose
    permission bits it leaves at 0, so least-astonishment removes group and other), else 0755."""
    cur = ""
    for c in path.split("/")[1:-1]:
        if c:
            cur += "/" + c
            try:
                os.mkdir(cur, mode)
            except FileExistsError:
                pass


def ensure_dir(path):
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        if not os.path.isdir(path):
            die(f"Can't mkdir {path}: not a directory")


def ensure_file(path):
    if os.path.lexists(path) and not os.path.isdir(path) and not os.path.islink(path):
        return
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444))


def tmpfs(dest, size):
    opts = f"mode=0755,size={size}" if size else "mode=0755"
    ok(libc.mount(b"tmpfs", fse(dest), b"tmpfs", NOSUID | NODEV, opts.encode()),
       f"Can't mount tmpfs on {dest}")


def new_root(p):
    return "/newroot/" + p.lstrip("/")


def setup(op):
    kind = op[0]
    dest = new_root(op[2] if kind in ("ro-bind", "ro-bind-try", "symlink", "file") else op[1])
    if kind in ("ro-bind", "ro-bind-try"):
        src = SOURCES.get(op[1])
        if src is None:
            return
        parents(dest)
        if os.path.isdir(src):
            ensure_dir(dest)
        else:
            ensure_file(dest)
        bind(src, dest, True)
    elif kind == "symlink":
        parents(dest)
        try:
            os.symlink(op[1], dest)
        except FileExistsError:
            if not os.path.islink(dest) or os.readlink(dest) != op[1]:
                die(f"Can't make symlink at {op[2]}: destination exists")
    elif kind == "proc":
        parents(dest)
        ensure_dir(dest)
        ok(libc.mount(b"proc", fse(dest), b"proc", NOSUID | NOEXEC | NODEV, None),
           f"Can't mount proc on {dest}")
        for sub in ("sys", "sysrq-trigger", "irq", "bus"):
            p = f"{dest}/{sub}"
            if os.access(p, os.W_OK):
                bind(p, p, True)
    elif kind == "dev":
        parents(dest)
        ensure_dir(dest)
        tmpfs(dest, 0)
        for n in ("null", "zero", "full", "random", "urandom", "tty"):
            os.close(os.open(f"{dest}/{n}", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o444))
            bind(f"/oldroot/dev/{n}", f"{dest}/{n}", False, devices=True)
        for i, n in enumerate(("stdin", "stdout", "stderr")):
            os.symlink(f"/proc/self/fd/{i}", f"{dest}/{n}")
        os.symlink("/proc/self/fd", f"{dest}/fd")
        os.symlink("/proc/kcore", f"{dest}/core")
        os.mkdir(f"{dest}/shm", 0o755)
        os.mkdir(f"{dest}/pts", 0o755)
        ok(libc.mount(b"devpts", fse(f"{dest}/pts"), b"devpts", NOSUID | NOEXEC,
                      b"newinstance,ptmxmode=0666,mode=620"), f"Can't mount devpts on {dest}/pts")
        os.symlink("pts/ptmx", f"{dest}/ptmx")
        if TTY:
            ensure_file(f"{dest}/console")
            bind("/oldroot" + TTY, f"{dest}/console", False, devices=True)
    elif kind == "tmpfs":
        parents(dest, 0o755)
        ensure_dir(dest)
        tmpfs(dest, op[2])
    elif kind == "remount-ro":
        bind(None, dest, True, recursive=False)
    elif kind == "dir":
        parents(dest, 0o755)
        ensure_dir(dest)
    elif kind == "file":
        parents(dest, 0o755)
        fd = os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        view = memoryview(FILES[op[1]])
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
    else:
        die(f"unknown step {kind}")


# --- the launcher, outside the namespaces ---
prctl(1, 9)  # PR_SET_PDEATHSIG SIGKILL: dies with the runner
if os.getppid() != C["ppid"]:
    os._exit(1)  # the runner is gone already
ok(prctl(38, 1), "prctl(PR_SET_NO_NEW_PRIVS)")
FILTER = slurp(3) if C["confine"] else None
FILES = {op[1]: slurp(op[1]) for op in C["ops"] if op[0] == "file"}
# Sources resolved in the host's view, as bwrap does before it pivots; a missing -try is skipped.
SOURCES = {}
for op in C["ops"]:
    if op[0] in ("ro-bind", "ro-bind-try"):
        real = os.path.realpath(op[1])
        if os.path.exists(real):
            SOURCES[op[1]] = "/oldroot" + real
        elif op[0] == "ro-bind":
            die(f"Can't find source path {op[1]}: No such file or directory")
TTY = os.ttyname(1) if os.isatty(1) else None
UID, GID = os.getuid(), os.getgid()
PROC = os.open("/proc", os.O_PATH | os.O_CLOEXEC)
flags = NEWUSER | NEWNS | NEWPID | NEWNET | NEWIPC | NEWUTS
if os.path.exists("/proc/self/ns/cgroup"):
    flags |= NEWCGROUP
if libc.unshare(flags) != 0:
    e = ctypes.get_errno()
    if e in (1, 13, 22):
        die("No permissions to create a new user namespace: unprivileged user namespaces are "
            "disabled or restricted on this machine (sysctl kernel.unprivileged_userns_clone, "
            "user.max_user_namespaces, or an AppArmor/SELinux policy)")
    if e == 28:
        die("Creating new namespace failed: nesting depth or max_*_namespaces exceeded (ENOSPC)")
    die(f"Creating new namespace failed: {os.strerror(e)}")
write_at("self/uid_map", f"0 {UID} 1\n")
try:
    write_at("self/setgroups", "deny\n")
except FileNotFoundError:
    pass
write_at("self/gid_map", f"0 {GID} 1\n")
alive_r, alive_w = os.pipe()
init = os.fork()
if init:
    os.close(alive_r)
    no_caps()
    _, st = os.waitpid(init, 0)
    os._exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st))

# --- PID 1 of the new PID namespace, root of the new user namespace ---
os.close(alive_w)
prctl(1, 9)  # dies with the launcher
os.set_blocking(alive_r, False)
try:
    if os.read(alive_r, 1) == b"":
        os._exit(1)  # the launcher died before the line above
except BlockingIOError:
    pass
os.close(alive_r)
sock = libc.socket(2, 2 | 0o2000000, 0)  # AF_INET, SOCK_DGRAM | SOCK_CLOEXEC
ifr = ctypes.create_string_buffer(b"lo".ljust(16, b"\0") + (1).to_bytes(2, "little"), 40)
ok(libc.ioctl(sock, 0x8914, ifr), "loopback: SIOCSIFFLAGS")  # IFF_UP: 127.0.0.1 and ::1
os.close(sock)
old_umask = os.umask(0)
ok(libc.mount(None, b"/", None, SILENT | SLAVE | REC, None), "Failed to make / slave")
ok(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", NODEV | NOSUID, None), "Failed to mount tmpfs")
os.chdir("/tmp")
os.mkdir("newroot", 0o755)
ok(libc.mount(b"newroot", b"newroot", None, SILENT | BIND | REC, None), "setting up newroot bind")
os.mkdir("oldroot", 0o755)
ok(libc.syscall(C["pivotRoot"], b"/tmp", b"oldroot"), "pivot_root")
os.chdir("/")
for op in C["ops"]:
    setup(op)
ok(libc.sethostname(C["hostname"].encode(), len(C["hostname"].encode())), "Can't set hostname")
ok(libc.mount(b"oldroot", b"oldroot", None, SILENT | REC | PRIVATE, None),
   "Failed to make old root rprivate")
ok(libc.umount2(b"oldroot", 2), "unmount old root")  # MNT_DETACH
top = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
os.chdir("/newroot")
ok(libc.syscall(C["pivotRoot"], b".", b"."), "pivot_root(/newroot)")
os.fchdir(top)
ok(libc.umount2(b".", 2), "umount old root")
os.close(top)
os.chdir("/")
if C["confine"]:
    # The namespace made next is the last this one may hold: the program cannot make any.
    write_at("sys/user/max_user_namespaces", "1")
ok(libc.unshare(NEWUSER), "unshare user ns")
cap = 0
while prctl(24, cap) == 0:  # PR_CAPBSET_DROP
    cap += 1
write_at("self/uid_map", f"{UID} 0 1\n")
write_at("self/gid_map", f"{GID} 0 1\n")
if C["confine"] and libc.unshare(NEWUSER) == 0:
    die("creation of new user namespaces was not disabled as requested")
no_caps()
ok(prctl(4, 1), "can't set dumpable")  # PR_SET_DUMPABLE
os.umask(old_umask)
os.chdir(C["chdir"])
ENV["PWD"] = C["chdir"]
os.setsid()
program = os.fork()
if program:
    # The init: no descriptor but stdio, no capabilities, default signal handling (a signal
    # from inside the namespace cannot stop it), the filter; it ends with the program.
    close_except({0, 1, 2})
    prctl(1, 9)
    # Not dumpable: the program (same uid) cannot open its memory through /proc/1/mem, so the
    # runner's guard can leave its (fixed) resident memory out of the program's total.
    prctl(4, 0)
    default_signals()
    seccomp()
    while True:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == program:
            os._exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st))

# --- PID 2: the program ---
default_signals()
prctl(1, 9)
close_except({0, 1, 2, *C["keep"]})
seccomp()
try:
    os.execvpe(ARGV[0], ARGV, ENV)
except OSError as e:
    die(f"execvp {ARGV[0]}: {e.strerror}")
`;

/** The launcher's command line for `config`, run by the host's `python`. */
export function unshareCommand(python: string, config: UnshareConfig): string[] {
  const { env, argv, ...rest } = config;
  const vars = Object.entries(env).map(([k, v]) => {
    if (k === "" || k.includes("=") || k.includes("\0")) {
      throw new Error(`sandbox environment variable name '${k}' is not valid`);
    }
    return `${k}=${v}`;
  });
  return [
    python,
    "-I",
    "-S",
    "-c",
    UNSHARE_LAUNCHER,
    JSON.stringify({ ...rest, envCount: vars.length }),
    ...vars,
    ...argv,
  ];
}
