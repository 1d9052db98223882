/**
 * runSandboxed, the reusable helper behind the python tool (exported from mod.ts), under every
 * mechanism that works here; `auto` falling back from bubblewrap to `unshare`; and both
 * mechanisms giving a program the same view of its sandbox.
 */
import assert from "node:assert/strict";
import { resolveSandbox, runSandboxed, SandboxUnavailableError } from "../mod.ts";
import { hiding, workingMechanisms } from "./fixtures/tools/sandbox_mechanisms.ts";

const MECHS = await workingMechanisms();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Host processes whose command line contains `marker`. */
function leftOver(marker: string): number {
  let n = 0;
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${e.name}/cmdline`).includes(marker)) n++;
    } catch { /* gone */ }
  }
  return n;
}
if (MECHS.length === 0) {
  console.log("tools_sandbox_test: no sandbox mechanism here, sandboxed cases skipped");
}

for (const mech of MECHS) {
  Deno.test(`runSandboxed [${mech}]: files, stdin, extra env, exit codes and signals`, async () => {
    const r = await runSandboxed({
      argv: [
        "sh",
        "-c",
        'cat data/in.txt; echo " $GREETING"; cat; echo "$HOME" | grep -c arpo-sbx; exit 3',
      ],
      files: { "data/in.txt": "from a file" },
      stdin: "from stdin\n",
      env: { GREETING: "hello" },
      mode: mech,
    });
    assert.equal(r.stdout, "from a file hello\nfrom stdin\n1\n", r.stderr);
    assert.deepEqual([r.code, r.signal, r.success, r.timedOut], [3, null, false, false]);
    assert.equal(r.mechanism, mech);
    const k = await runSandboxed({ argv: ["sh", "-c", "kill -SEGV $$"], mode: mech });
    assert.deepEqual([k.code, k.signal], [null, "SIGSEGV"]);
    const big = await runSandboxed({
      argv: ["sh", "-c", "yes error >&2"],
      maxOutputBytes: 1000,
      mode: mech,
    });
    assert.equal(big.stderr, "error\n".repeat(200).slice(0, 1000));
    assert.equal(big.stderrTruncated, true);
    await assert.rejects(
      runSandboxed({ argv: ["true"], files: { "../x": "no" }, mode: mech }),
      /relative/,
    );
    // Long arguments and variables pass as they are (each its own argument on the way in).
    const long = "x".repeat(100_000);
    const l = await runSandboxed({
      argv: ["sh", "-c", 'echo ${#1} ${#LONG} "$2"', "sh", long, "a b\nc"],
      env: { LONG: long },
      mode: mech,
    });
    assert.equal(l.stdout, "100000 100000 a b\nc\n", l.stderr);
  });

  Deno.test(`runSandboxed [${mech}]: an abort signal stops the program`, async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const r = await runSandboxed({
      argv: ["sleep", "30"],
      signal: ac.signal,
      killGraceMs: 100,
      mode: mech,
    });
    assert.deepEqual([r.aborted, r.timedOut, r.success], [true, false, false]);
    const pre = await runSandboxed({
      argv: ["sleep", "30"],
      signal: AbortSignal.abort(),
      mode: mech,
    });
    assert.equal(pre.aborted, true);
    // Aborts during the sandbox's start-up end the run too (bwrap's child, stopped before its
    // parent-death signal, once kept stdout open for ever), and leave no process behind.
    for (const ms of [0, 1, 2, 3, 5, 8, 13, 21, 34]) {
      const early = new AbortController();
      const marker = `${ms}.${Deno.pid}7`;
      setTimeout(() => early.abort(), ms);
      let guard: ReturnType<typeof setTimeout> | undefined;
      const r = await Promise.race([
        runSandboxed({ argv: ["sleep", marker], signal: early.signal, mode: mech }),
        new Promise<"stuck">((res) => guard = setTimeout(() => res("stuck"), 20_000)),
      ]);
      clearTimeout(guard);
      assert.notEqual(r, "stuck", `aborted after ${ms} ms: the run never ended`);
      for (let i = 0; i < 100 && leftOver(marker) > 0; i++) await sleep(20);
      assert.equal(leftOver(marker), 0, `aborted after ${ms} ms: processes left`);
    }
  });
}

Deno.test("runSandboxed: mode none is a plain child with a clean environment", async () => {
  Deno.env.set("ARPO_SANDBOX_TEST_VAR", "visible?");
  try {
    const r = await runSandboxed({
      argv: ["sh", "-c", "echo ${ARPO_SANDBOX_TEST_VAR:-clean}; pwd"],
      mode: "none",
    });
    assert.equal(r.mechanism, "none");
    assert.match(r.stdout, /^clean\n.*arpo-sbx-/);
    const t = await runSandboxed({ argv: ["sleep", "30"], mode: "none", limits: { wallMs: 200 } });
    assert.equal(t.timedOut, true);
  } finally {
    Deno.env.delete("ARPO_SANDBOX_TEST_VAR");
  }
});

Deno.test({
  name: "resolveSandbox: auto prefers bwrap and falls back to unshare when bwrap is unavailable",
  ignore: !MECHS.includes("unshare"),
  fn: async () => {
    if (MECHS.includes("bwrap")) assert.equal(await resolveSandbox("auto"), "bwrap");
    await hiding(["bwrap"], async () => {
      assert.equal(await resolveSandbox("auto"), "unshare");
      assert.equal(await resolveSandbox(), "unshare");
      const r = await runSandboxed({ argv: ["sh", "-c", "echo $HOME"] });
      assert.deepEqual([r.mechanism, r.stdout], ["unshare", "/tmp/arpo-sbx\n"]);
      await assert.rejects(
        resolveSandbox("bwrap"),
        (e: Error) =>
          e instanceof SandboxUnavailableError &&
          /the 'bwrap' sandbox does not work/.test(e.message),
      );
    });
    await hiding(["bwrap", "unshare"], async () => {
      await assert.rejects(
        resolveSandbox("auto"),
        (e: Error) =>
          e instanceof SandboxUnavailableError &&
          /^no sandbox mechanism works on this machine \(bwrap: hidden .*; unshare: hidden /
            .test(e.message) &&
          /apt-get install bubblewrap/.test(e.message) && /sandbox: none/.test(e.message),
      );
      assert.equal(await resolveSandbox("none"), "none");
    });
    // Nothing is hidden any more: the cached probes answer again.
    assert.equal(await resolveSandbox("unshare"), "unshare");
  },
});

/**
 * What a program can learn about its sandbox: identity, environment, the filesystem view (modes,
 * owners, mounts and their flags), capabilities, seccomp, limits, PIDs, descriptors, namespaces.
 * The uid is written `me` (under root each sandbox gets a fresh one).
 */
const VIEW = String.raw`me=$(id -u)
show() { sed "s/\b$me\b/me/g"; }
echo "== id"; id | show; hostname; umask; pwd
echo "== env"; env | sort
for d in / /dev /tmp /tmp/arpo-sbx /dev/shm /dev/pts /etc; do
  echo "== $d"
  find "$d" -mindepth 1 -maxdepth 1 -printf '%M %U:%G %p -> %l\n' | sort | show
done
echo "== status"; grep -E '^(Cap|NoNewPrivs|Seccomp|Uid|Gid|Groups)' /proc/self/status | show
echo "== limits"; ulimit -a
echo "== pids"; cd /proc; for f in [0-9]*; do printf '%s ' "$f"; done; echo; cd "$OLDPWD" # no fork
echo "== fds"; ls /proc/self/fd | tr '\n' ' '; echo
echo "== maps"; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups | show
echo "== mounts"; awk '{print $5, $6, $9, $(NF)}' /proc/self/mountinfo | sed 's/size=[0-9]*k/size=K/' | show
echo "== userns"; cat /proc/sys/user/max_user_namespaces
echo "== net"; awk 'NR>2{print $1}' /proc/net/dev; ls /sys 2>&1 | sed 's/^ls: //'
echo "== cgroup"; cat /proc/self/cgroup
echo "== files"; ls -ln data | awk '{print $1, $5, $NF}'
echo "== init"; kill -KILL 1; sleep 0.2; ls /proc | grep -c '^1$'`;

Deno.test({
  name: "bwrap and unshare give a program the same view of its sandbox",
  ignore: MECHS.length < 2,
  fn: async () => {
    const run = (mode: "bwrap" | "unshare") =>
      runSandboxed({
        argv: ["bash", "view.sh"],
        files: { "view.sh": VIEW, "data/a.txt": "aaa", "data/b/c.txt": "c" },
        env: { EXTRA: "1" },
        mode,
        limits: { diskBytes: 8 << 20, maxProcesses: 20, wallMs: 60_000 },
      });
    const [b, u] = [await run("bwrap"), await run("unshare")];
    assert.equal(b.success, true, b.stderr);
    assert.equal(u.success, true, u.stderr);
    assert.equal(u.stderr, b.stderr);
    assert.equal(u.stdout, b.stdout);
    // The view is the one docs/SECURITY.md describes (spot checks).
    assert.match(u.stdout, /^CapEff:\s+0+$/m);
    assert.match(u.stdout, /^CapBnd:\s+0+$/m);
    assert.match(u.stdout, /^NoNewPrivs:\s+1$/m);
    assert.match(u.stdout, /^Seccomp:\s+2$/m);
    assert.match(u.stdout, /^\/ ro,nosuid,nodev/m);
    assert.match(u.stdout, /^\/usr ro,nosuid,nodev/m);
    assert.match(u.stdout, /^\/tmp\/arpo-sbx rw,nosuid,nodev,relatime tmpfs rw,size=K/m);
    assert.match(u.stdout, /== pids\n1 2 4 \n/); // init, program, the watchdog
    assert.match(u.stdout, /== net\nlo:\ncannot access '\/sys'/);
    assert.match(u.stdout, /== init\n1\n$/); // the program cannot kill its init
  },
});
