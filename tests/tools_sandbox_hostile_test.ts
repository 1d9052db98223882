/**
 * The sandbox against hostile programs (issue 13): Unix sockets on the host's filesystem, a 0600
 * file in the user's home, memory across 4 processes, disk fill, seccomp denials, and a process
 * tree that must die with its runner (SIGKILL, SIGTERM) leaving no scratch directory. Everything
 * runs under each mechanism that works here (bwrap, unshare), as the test's own user and, when
 * that is root, again as `nobody` (a child process under setpriv) — the two paths of the sandbox
 * (fresh uid under root; the caller's uid otherwise). The fixture's sandboxes use `auto`, made to
 * resolve to the mechanism under test by ARPO_SANDBOX_HIDE.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  findExecutable,
  launcherPython,
  runSandboxed,
  SANDBOX_CONCURRENCY,
} from "../src/tools/sandbox.ts";
import { type HostileResults, runHostileCases } from "./fixtures/tools/hostile_cases.ts";
import {
  type Mechanism,
  only,
  onlyEnv,
  workingMechanisms,
} from "./fixtures/tools/sandbox_mechanisms.ts";

const MECHS = await workingMechanisms();
if (MECHS.length === 0) console.log("tools_sandbox_hostile_test: no sandbox here, skipped");

const FIXTURE = new URL("./fixtures/tools/hostile_cases.ts", import.meta.url).pathname;
const NOBODY = 65534;

/** Everything each hostile program achieved must be nothing. */
function assertHeld(r: HostileResults, who: string): void {
  assert.equal(Object.keys(r.sockets).length, 3, `${who}: ${JSON.stringify(r.sockets)}`);
  for (const [path, how] of Object.entries(r.sockets)) {
    assert.notEqual(how, "CONNECTED", `${who}: connected to ${path}`);
  }
  assert.equal(r.accepted, 0, `${who}: a host listener accepted a connection`);
  assert.deepEqual(r.secretRead, [], `${who}: read the 0600 secret`);
  // Only the sandbox's own /tmp (the scratch directory) and the loader's /etc files are visible;
  // no home, /root, /home, /run, /var or /sys.
  assert.deepEqual(
    Object.keys(r.listed).sort(),
    ["/etc", "/tmp"],
    `${who}: ${JSON.stringify(r.listed)}`,
  );
  assert.deepEqual(r.listed["/tmp"], ["arpo-sbx"]);
  for (const name of r.listed["/etc"]) {
    assert.match(name, /^(alternatives|ld\.so\..*|localtime|python\d.*)$/, `${who}: /etc/${name}`);
  }
  assert.deepEqual(
    [r.memoryOver.success, r.memoryOver.limitExceeded],
    [false, "memory"],
    `${who}: 4 × 150 MB under a 256 MB limit: ${JSON.stringify(r.memoryOver)}`,
  );
  assert.equal(r.memoryUnder, "all children finished", who);
  const m = r.disk.match(/^stopped (\d+) 28$/); // ENOSPC
  assert.ok(m, `${who}: disk fill: ${r.disk}`);
  assert.ok(Number(m[1]) <= 32 << 20, `${who}: wrote ${m[1]} bytes with a 32 MiB disk limit`);
}

/** Host processes whose command line contains `marker` (and starts with `program`). */
function processesWith(marker: string, program = ""): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ");
      if (cmd.includes(marker) && cmd.startsWith(program)) pids.push(Number(e.name));
    } catch { /* gone */ }
  }
  return pids;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A deno binary and DENO_DIR an unprivileged user can use (deno may live under /root). */
async function unprivilegedDeno(): Promise<{ deno: string; dir: string } | string> {
  if (Deno.uid() !== 0) return "not root: this run is the unprivileged one";
  const dir = await Deno.makeTempDir({ prefix: "arpo-nobody-" });
  await Deno.chmod(dir, 0o755);
  const deno = join(dir, "deno");
  try {
    await Deno.link(Deno.execPath(), deno);
  } catch {
    await Deno.copyFile(Deno.execPath(), deno);
  }
  await Deno.mkdir(join(dir, "home"));
  await Deno.chown(join(dir, "home"), NOBODY, NOBODY);
  const probe = await new Deno.Command("setpriv", {
    args: [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", "--", deno, "--version"],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!probe.success) {
    await Deno.remove(dir, { recursive: true });
    return `deno does not run as nobody: ${new TextDecoder().decode(probe.stderr).trim()}`;
  }
  return { deno, dir };
}

/** `deno run` of the fixture under `mech`, as this user or (with `nobody`) as nobody. */
function fixtureCommand(
  mech: Mechanism,
  args: string[],
  nobody?: { deno: string; dir: string },
): Deno.Command {
  const home = nobody ? join(nobody.dir, "home") : undefined;
  const run = [
    "run",
    "-A",
    "--no-config",
    "--no-lock",
    FIXTURE,
    ...args,
  ];
  if (!nobody) {
    return new Deno.Command(Deno.execPath(), {
      args: run,
      env: onlyEnv(mech),
      stdout: "piped",
      stderr: "piped",
    });
  }
  return new Deno.Command("setpriv", {
    args: [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", "--", nobody.deno, ...run],
    clearEnv: true,
    env: {
      PATH: "/usr/local/bin:/usr/bin:/bin",
      HOME: home!,
      DENO_DIR: home!,
      NO_COLOR: "1",
      ...onlyEnv(mech),
    },
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * Start a runner with a sandboxed sleeping tree under `mech`, kill the runner, and check all is
 * gone. `early`: kill it as soon as bwrap (or the unshare launcher) appears, during the sandbox's
 * set-up (before its own parent-death signal is in place).
 */
async function killRunner(
  mech: Mechanism,
  signal: Deno.Signal,
  nobody?: { deno: string; dir: string },
  early = false,
  mode: "forktree" | "workertree" = "forktree",
) {
  const marker = `77.${Deno.pid}${Math.floor(performance.now())}`;
  const child = fixtureCommand(mech, [mode, marker], nobody).spawn();
  // The sandbox's first process on the host: bwrap, or the launcher's interpreter.
  const first = mech === "bwrap" ? findExecutable("bwrap")! : `${launcherPython()} -I -S -c`;
  try {
    if (early) {
      let seen = false;
      for (let i = 0; i < 5000 && !seen; i++) {
        seen = processesWith(marker, first).length > 0;
        if (!seen) await sleep(1);
      }
      assert.ok(seen, `no ${first} process appeared`);
      child.kill(signal);
      await child.status;
      // Whatever had started must go, and the tree must never come up.
      await sleep(500);
      for (let i = 0; i < 150 && processesWith(marker).length > 0; i++) await sleep(20);
      assert.deepEqual(processesWith(marker), [], `after ${signal} of the runner during set-up`);
      return;
    }
    let pids: number[] = [];
    for (let i = 0; i < 300 && pids.length < 8; i++) {
      await sleep(20);
      pids = processesWith(`sleep ${marker}`);
    }
    assert.equal(pids.length, 8, `the tree started (${pids.length} of 8 sleepers)`);
    if (mode === "forktree") {
      // Sandboxed by the mechanism under test (a worker's calls come through its stdin).
      assert.ok(processesWith(marker, first).length > 0, `no ${first} process`);
    }
    // The scratch directory exists only inside the sandbox's mount namespace (a tmpfs there).
    const state = `/proc/${pids[0]}/root/tmp/arpo-sbx/state.txt`;
    assert.equal(await Deno.readTextFile(state), marker);
    child.kill(signal);
    await child.status;
    for (let i = 0; i < 150 && processesWith(marker).length > 0; i++) await sleep(20);
    assert.deepEqual(processesWith(marker), [], `after ${signal} of the runner`);
    await assert.rejects(Deno.stat(state), Deno.errors.NotFound);
    // Nothing on the host's disk holds the scratch directory's file.
    for (const e of Deno.readDirSync("/tmp")) {
      if (!e.name.startsWith("arpo-sbx")) continue;
      const f = `/tmp/${e.name}/state.txt`;
      const t = await Deno.readTextFile(f).catch(() => "");
      assert.notEqual(t, marker, `${f} left behind`);
    }
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.output().catch(() => {});
  }
}

for (const mech of MECHS) {
  Deno.test({
    name:
      `sandbox hostile [${mech}]: sockets, home secrets, memory over 4 processes, disk fill (this user)`,
    fn: async () => {
      const home = Deno.env.get("HOME");
      let dir: string | undefined;
      // The user's real home when it is writable (the realistic case), else a stand-in.
      let base = home;
      try {
        if (!base) throw new Error("no HOME");
        const probe = join(base, `.arpo-hostile-${Deno.pid}`);
        await Deno.mkdir(probe);
        base = probe;
      } catch {
        base = dir = await Deno.makeTempDir({ prefix: "arpo-home-" });
      }
      try {
        assertHeld(await only(mech, () => runHostileCases(base)), `${mech}, uid ${Deno.uid()}`);
      } finally {
        await Deno.remove(dir ?? base, { recursive: true }).catch(() => {});
      }
    },
  });

  Deno.test({
    name: `sandbox hostile [${mech}]: the same corpus as an unprivileged user (nobody)`,
    fn: async () => {
      const nobody = await unprivilegedDeno();
      if (typeof nobody === "string") {
        console.log(`tools_sandbox_hostile_test: unprivileged run skipped: ${nobody}`);
        return;
      }
      try {
        const out = await fixtureCommand(mech, [join(nobody.dir, "home")], nobody).output();
        const text = new TextDecoder().decode(out.stdout).trim();
        assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
        const r: HostileResults = JSON.parse(text);
        assert.equal(r.uid, NOBODY);
        assertHeld(r, `${mech}, nobody`);
      } finally {
        await Deno.remove(nobody.dir, { recursive: true });
      }
    },
  });

  Deno.test({
    name:
      `sandbox hostile [${mech}]: a process tree dies with its runner (SIGKILL, SIGTERM), scratch and all`,
    fn: async () => {
      await killRunner(mech, "SIGKILL");
      await killRunner(mech, "SIGTERM");
      await killRunner(mech, "SIGKILL", undefined, true);
      await killRunner(mech, "SIGKILL", undefined, false, "workertree"); // a persistent worker's call
      const nobody = await unprivilegedDeno();
      if (typeof nobody === "string") {
        console.log(`tools_sandbox_hostile_test: unprivileged kill skipped: ${nobody}`);
        return;
      }
      try {
        await killRunner(mech, "SIGKILL", nobody);
      } finally {
        await Deno.remove(nobody.dir, { recursive: true });
      }
    },
  });

  Deno.test({
    name:
      `sandbox hostile [${mech}]: the seccomp filter denies namespaces, mounts and kernel surface`,
    fn: async () => {
      const r = await runSandboxed({
        mode: mech,
        argv: [
          "python3",
          "-c",
          `import ctypes, json, os, socket, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
out = {}
def sys(name, nr, *args):
    r = libc.syscall(nr, *args)
    out[name] = "ok" if r >= 0 else os.strerror(ctypes.get_errno())
# x86_64 numbers (the test runs the aarch64 table only on aarch64 machines)
X86 = {"unshare": 272, "mount": 165, "ptrace": 101, "keyctl": 250, "bpf": 321,
       "io_uring_setup": 425, "perf_event_open": 298, "userfaultfd": 323, "setns": 308}
A64 = {"unshare": 97, "mount": 40, "ptrace": 117, "keyctl": 219, "bpf": 280,
       "io_uring_setup": 425, "perf_event_open": 241, "userfaultfd": 282, "setns": 268}
import platform
table = X86 if platform.machine() == "x86_64" else A64
sys("unshare", table["unshare"], 0x10000000)
sys("mount", table["mount"], b"none", b"/tmp", b"tmpfs", 0, None)
sys("ptrace", table["ptrace"], 16, 1, 0, 0)
sys("keyctl", table["keyctl"], 0, 0, 0, 0)
sys("bpf", table["bpf"], 0, 0, 0)
sys("io_uring_setup", table["io_uring_setup"], 1, 0)
sys("perf_event_open", table["perf_event_open"], 0, 0, -1, -1, 0)
sys("userfaultfd", table["userfaultfd"], 0)
sys("setns", table["setns"], 0, 0)
for fam in ("AF_NETLINK", "AF_PACKET", "AF_VSOCK"):
    try:
        socket.socket(getattr(socket, fam), socket.SOCK_RAW if fam != "AF_VSOCK" else socket.SOCK_STREAM).close()
        out[fam] = "ok"
    except OSError as e:
        out[fam] = os.strerror(e.errno)
# What code needs keeps working.
t = threading.Thread(target=lambda: out.__setitem__("thread", "ok")); t.start(); t.join()
out["subprocess"] = subprocess.run(["echo", "ok"], capture_output=True, text=True).stdout.strip()
a, b = socket.socketpair(); a.close(); b.close(); out["socketpair"] = "ok"
if os.fork() == 0:
    os._exit(7)
out["fork"] = str(os.waitstatus_to_exitcode(os.wait()[1]))
try:
    os.wait()
    out["children"] = "an unexpected child"
except ChildProcessError:
    out["children"] = "none"
print(json.dumps(out))`,
        ],
      });
      const out = JSON.parse(r.stdout || `{"stderr": ${JSON.stringify(r.stderr)}}`);
      const EPERM = "Operation not permitted";
      const EAF = "Address family not supported by protocol";
      assert.deepEqual(out, {
        unshare: EPERM,
        mount: EPERM,
        ptrace: EPERM,
        keyctl: EPERM,
        bpf: EPERM,
        io_uring_setup: EPERM,
        perf_event_open: EPERM,
        userfaultfd: EPERM,
        setns: EPERM,
        AF_NETLINK: EAF,
        AF_PACKET: EAF,
        AF_VSOCK: EAF,
        thread: "ok",
        subprocess: "ok",
        socketpair: "ok",
        fork: "7",
        children: "none", // the sandbox's own helpers are not the program's children
      });
    },
  });

  Deno.test({
    name:
      `sandbox [${mech}]: no more than SANDBOX_CONCURRENCY sandboxes run at once; the rest wait`,
    fn: async () => {
      const marker = `0.4${Deno.pid}`;
      const n = 2 * SANDBOX_CONCURRENCY + 1;
      let most = 0;
      let done = false;
      const watch = (async () => {
        while (!done) {
          most = Math.max(most, processesWith(marker, "sleep").length);
          await sleep(10);
        }
      })();
      const rs = await Promise.all(
        Array.from({ length: n }, () => runSandboxed({ argv: ["sleep", marker], mode: mech })),
      );
      done = true;
      await watch;
      assert.deepEqual(rs.map((r) => r.success), Array(n).fill(true));
      assert.ok(most >= 1 && most <= SANDBOX_CONCURRENCY, `${most} sleepers at once`);
    },
  });
}
