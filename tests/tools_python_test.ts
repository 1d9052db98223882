/**
 * The python tool: the reference's behaviour (bare final expression printed, tracebacks on
 * failure) and a hostile corpus, each case asserting both containment and a sensible result text.
 */
import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { join } from "node:path";
import python from "../plugins/tools/python.ts";
import { resolveSandbox, SandboxUnavailableError } from "../src/tools/sandbox.ts";
import { createToolRuntime } from "../src/tools/runtime.ts";
import type { Tool } from "../src/plugin/contracts.ts";
import { testContext } from "./fixtures/tools/context.ts";
import { hiding, workingMechanisms } from "./fixtures/tools/sandbox_mechanisms.ts";

let sandboxWhy: string | null = null;
try {
  await resolveSandbox("auto");
} catch (e) {
  sandboxWhy = e instanceof Error ? e.message : String(e);
  console.log(
    `tools_python_test: no sandbox on this machine, hostile corpus skipped: ${sandboxWhy}`,
  );
}
const ignore = sandboxWhy !== null;

async function make(options: Record<string, unknown> = {}): Promise<Tool> {
  return await python(options, testContext({ name: "python" }));
}

/** Call a tool as the runtime would; a throw becomes `Error: …` text. */
async function run(tool: Tool, code: string, timeoutMs = 30_000): Promise<string> {
  const ac = new AbortController();
  try {
    return await tool.call(code, { signal: ac.signal, timeoutMs });
  } catch (e) {
    return `Error: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/** Processes on the host whose command line contains `marker`. */
function processesWith(marker: string): number {
  let n = 0;
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ");
      if (cmd.includes(marker)) n++;
    } catch { /* gone */ }
  }
  return n;
}

Deno.test({
  name: "python: stdout, bare final expression, tracebacks",
  ignore,
  fn: async () => {
    const tool = await make();
    assert.equal(tool.tag, "python");
    assert.equal(await run(tool, "print(1 + 1)"), "2");
    assert.equal(await run(tool, "2 ** 10"), "1024");
    assert.equal(await run(tool, "\n    x = 3\n    x * 2\n"), "6"); // indented block, dedented
    assert.equal(await run(tool, "'abc'"), "'abc'"); // repr, like a REPL
    assert.equal(await run(tool, "print('hi')"), "hi"); // None is not printed
    assert.equal(await run(tool, "x = 1"), "");
    assert.equal(await run(tool, "import math\nmath.factorial(20)"), "2432902008176640000");
    const err = await run(tool, "def f(n):\n    return 1 / n\nprint('before')\nf(0)");
    assert.match(err, /^Error: Traceback \(most recent call last\):/);
    assert.match(err, /File "<code>", line 2, in f/);
    assert.match(err, /return 1 \/ n/);
    assert.match(err, /ZeroDivisionError: division by zero$/);
    assert.doesNotMatch(err, /_arpo_run|<string>/); // the wrapper's frames are hidden
    const syn = await run(tool, "print(1 +)");
    assert.match(syn, /^Error: .*SyntaxError: invalid syntax/s);
    const exit = await run(tool, "import sys\nprint('partial')\nsys.exit(3)");
    assert.equal(exit, "Error: partial\nexit status 3");
    // input() sees end-of-file instead of the program text
    assert.match(await run(tool, "input()"), /EOFError/);
    // Same code, same output: random is seeded from the experiment seed, string hashing fixed.
    const rnd =
      "import random\nprint(random.random(), {'apple', 'banana', 'cherry', 'date', 'fig'})";
    const first = await run(tool, rnd);
    assert.equal(await run(tool, rnd), first);
    assert.equal(await run(await make(), rnd), first);
    const other = await python({}, testContext({ name: "python", seed: 1 }));
    assert.notEqual(await run(other, rnd), first);
  },
});

// The hostile corpus runs under every mechanism that works here (bubblewrap where installed,
// and the unshare mechanism). More in tests/tools_sandbox_hostile_test.ts.
const MECHS = await workingMechanisms();

for (const mech of MECHS) {
  const mk = (o: Record<string, unknown> = {}) => make({ sandbox: mech, ...o });

  Deno.test({
    name: `python hostile [${mech}]: no network (127.0.0.1 and a DNS name)`,
    ignore,
    fn: async () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (listener.addr as Deno.NetAddr).port;
      let accepted = 0;
      const acceptLoop = (async () => {
        try {
          for await (const conn of listener) {
            accepted++;
            conn.close();
          }
        } catch { /* closed */ }
      })();
      const tool = await mk();
      const out = await run(
        tool,
        `import socket
def attempt(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "CONNECTED"
    except OSError as e:
        return "BLOCKED " + type(e).__name__
print("local", attempt("127.0.0.1", ${port}))
print("dns", attempt("example.com", 80))
try:
    socket.getaddrinfo("example.com", 443)
    print("resolve RESOLVED")
except OSError as e:
    print("resolve BLOCKED", type(e).__name__)`,
      );
      listener.close();
      await acceptLoop;
      assert.equal(accepted, 0);
      assert.match(out, /^local BLOCKED \w+$/m);
      assert.match(out, /^dns BLOCKED \w+$/m);
      assert.match(out, /^resolve BLOCKED \w+$/m);
    },
  });

  Deno.test({
    name: `python hostile [${mech}]: fork bomb is capped by the process limit and cleaned up`,
    ignore,
    fn: async () => {
      const tool = await mk({ max_processes: 16, timeout_s: 20 });
      const marker = `31.${Deno.pid}`;
      const out = await run(
        tool,
        `import os
n = 0
try:
    while True:
        if os.fork() == 0:
            os.execv("/bin/sleep", ["sleep", "${marker}"])
        n += 1
except OSError as e:
    print("fork refused after", n, type(e).__name__)`,
      );
      const m = out.match(/^fork refused after (\d+) BlockingIOError$/);
      assert.ok(m, `unexpected output: ${out}`);
      assert.ok(Number(m[1]) < 16, `forked ${m[1]} times with max_processes 16`);
      // The children die with the sandbox's PID namespace when the program ends.
      for (let i = 0; i < 50 && processesWith(marker) > 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(processesWith(marker), 0);
    },
  });

  Deno.test({
    name:
      `python hostile [${mech}]: a fork bomb ends at the CPU limit (spinning) or the wall guard (sleeping)`,
    ignore,
    fn: async () => {
      // Spinning: the CPU time of all its processes together reaches the limit.
      // A wide wall-clock guard: on a loaded machine the CPU limit must still be what decides.
      const spin = await mk({ max_processes: 8, timeout_s: 1.5, wall_s: 60 });
      const out = await run(
        spin,
        `import os
while True:
    try:
        os.fork()
    except OSError:
        pass`,
      );
      assert.equal(out, "Error: execution exceeded the CPU-time limit (1.5s)");
      // Mostly sleeping: only the wall-clock guard ends it.
      const sleepy = await mk({ max_processes: 8, timeout_s: 1.5, wall_s: 1.5 });
      const out2 = await run(
        sleepy,
        `import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)`,
      );
      assert.equal(out2, "Error: execution timed out after 1.5s");
    },
  });

  Deno.test({
    name:
      `python hostile [${mech}]: infinite loops end at the CPU limit, even when trapping signals`,
    ignore,
    fn: async () => {
      const tool = await mk({ timeout_s: 1, wall_s: 60 });
      const cpu = "Error: execution exceeded the CPU-time limit (1s)";
      assert.equal(await run(tool, "while True:\n    pass"), cpu);
      const trap = "import signal\nfor s in (signal.SIGTERM, signal.SIGXCPU):\n" +
        "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass";
      assert.match(
        await run(tool, trap),
        /^Error: (execution exceeded the CPU-time limit \(1s\)|the program was killed \(SIGKILL\))$/,
      );
      // The runtime's own (shorter) deadline wins over timeout_s.
      const slow = await mk({ timeout_s: 30 });
      assert.equal(
        await run(slow, "while True: pass", 800),
        "Error: execution timed out after 0.8s",
      );
    },
  });

  Deno.test({
    name: `python hostile [${mech}]: a 4 GB allocation fails with MemoryError`,
    ignore,
    fn: async () => {
      const tool = await mk({ memory_mb: 512 });
      const out = await run(tool, "x = bytearray(4 * 1024 ** 3)\nprint(len(x))");
      assert.match(out, /^Error: Traceback/);
      assert.match(out, /MemoryError/);
      // The same program survives the limit when it catches the error.
      assert.equal(
        await run(
          tool,
          "try:\n    x = bytearray(4 * 1024 ** 3)\nexcept MemoryError:\n    print('no')",
        ),
        "no",
      );
    },
  });

  Deno.test({
    name:
      `python hostile [${mech}]: writes outside the scratch directory fail and nothing persists`,
    ignore,
    fn: async () => {
      const tool = await mk();
      const escape = join(tmpdir(), `arpo-escape-${Deno.pid}`);
      const out = await run(
        tool,
        `import os
print("cwd", os.getcwd())
for p in [${JSON.stringify(escape)}, "../arpo-escape-${Deno.pid}", "/etc/arpo-escape", "/root/x"]:
    try:
        with open(p, "w") as f:
            f.write("escaped")
        print("WROTE", p)
    except OSError as e:
        print("refused", type(e).__name__)
with open("inside.txt", "w") as f:
    f.write("ok")
print("inside", open("inside.txt").read())`,
      );
      assert.doesNotMatch(out, /WROTE/);
      assert.equal(out.match(/^refused \w+$/gm)?.length, 4);
      assert.match(out, /^inside ok$/m);
      const cwd = out.match(/^cwd (.+)$/m)![1];
      await assert.rejects(Deno.stat(escape), Deno.errors.NotFound);
      await assert.rejects(
        Deno.stat(join(cwd, "..", `arpo-escape-${Deno.pid}`)),
        Deno.errors.NotFound,
      );
      await assert.rejects(Deno.stat("/etc/arpo-escape"), Deno.errors.NotFound);
      // The scratch directory is removed after the call.
      await assert.rejects(Deno.stat(cwd), Deno.errors.NotFound);
    },
  });

  Deno.test({
    name: `python hostile [${mech}]: the parent's environment is invisible`,
    ignore,
    fn: async () => {
      const secret = `s3cr3t-${Deno.pid}-arpo`;
      Deno.env.set("ARPO_TEST_SECRET", secret);
      try {
        const tool = await mk();
        const out = await run(
          tool,
          `import os
found = [k for k, v in os.environ.items() if ${JSON.stringify(secret)} in v]
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            if ${JSON.stringify(secret)}.encode() in open(f"/proc/{pid}/environ", "rb").read():
                found.append(pid)
        except OSError:
            pass
try:
    if ${JSON.stringify(secret)}.encode() in open("/proc/${Deno.pid}/environ", "rb").read():
        found.append("parent")
except OSError:
    pass
print("FOUND" if found else "NOTFOUND", sorted(os.environ))`,
        );
        assert.match(out, /^NOTFOUND /);
        assert.doesNotMatch(out, /ARPO_TEST_SECRET/);
      } finally {
        Deno.env.delete("ARPO_TEST_SECRET");
      }
    },
  });

  Deno.test({
    name: `python hostile [${mech}]: a huge print is capped and the program stopped`,
    ignore,
    fn: async () => {
      const tool = await mk({ max_output_bytes: 4096, timeout_s: 20 });
      const out = await run(tool, "while True:\n    print('y' * 1000)");
      assert.match(out, /\n\[output truncated: more than 4096 bytes; the program was stopped\]$/);
      assert.ok(out.length < 4096 + 100, `output of ${out.length} characters`);
      assert.ok(out.startsWith("yyyy"));
      const once = await run(tool, "print('z' * 10 ** 7)");
      assert.match(once, /^z{4096}\n\[output truncated/);
    },
  });
}

Deno.test({
  name: "python: an unavailable sandbox is refused with how to allow running without one",
  fn: async () => {
    let bwrapWorks = true;
    try {
      await resolveSandbox("bwrap");
    } catch (e) {
      bwrapWorks = false;
      assert.ok(e instanceof SandboxUnavailableError);
      assert.match(e.message, /with: \{ sandbox: none \}/);
    }
    if (!bwrapWorks) {
      await assert.rejects(
        make({ sandbox: "bwrap" }),
        (e: Error) =>
          e instanceof SandboxUnavailableError && /tool 'python'/.test(e.message) &&
          /sandbox: none/.test(e.message),
      );
    }
    if (ignore) {
      await assert.rejects(make(), /sandbox: none/);
    }
    // No mechanism at all (both hidden from the probe): the tool refuses to load.
    await hiding(["bwrap", "unshare"], async () => {
      await assert.rejects(
        make(),
        (e: Error) =>
          e instanceof SandboxUnavailableError &&
          /^tool 'python': no sandbox mechanism works on this machine \(bwrap: .*; unshare: /
            .test(e.message) &&
          /sandbox: none/.test(e.message),
      );
    });
    // Bad options are refused by the schema.
    await assert.rejects(make({ sandbox: "docker" }));
    await assert.rejects(make({ timeout_s: -1 }));
  },
});

Deno.test({
  name: "python: without bwrap, auto runs the code in the unshare sandbox",
  ignore: !MECHS.includes("unshare"),
  fn: async () => {
    await hiding(["bwrap"], async () => {
      const ctx = testContext({ name: "python" });
      const tool = await python({}, ctx);
      try {
        assert.ok(ctx.logs.includes("sandbox: unshare"), ctx.logs.join("\n"));
        assert.equal(await run(tool, "import os\nprint(os.getcwd())\n6 * 7"), "/tmp/arpo-sbx\n42");
      } finally {
        await tool.close?.();
      }
    });
  },
});

Deno.test({
  name: "python: sandbox none runs the code (explicit opt-out)",
  fn: async () => {
    const tool = await make({ sandbox: "none" });
    assert.equal(await run(tool, "import os\nprint(len(os.getcwd()) > 0)\n6 * 7"), "True\n42");
    assert.equal(await run(tool, "while True: pass", 500), "Error: execution timed out after 0.5s");
  },
});

Deno.test({
  name: "python: sandboxed start-up time (informational)",
  ignore,
  fn: async () => {
    const tool = await make();
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      assert.equal(await run(tool, "1"), "1");
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    console.log(`python call (sandboxed, trivial program): median ${times[10].toFixed(1)} ms`);
  },
});

Deno.test("python: a machine without sandbox tools is refused, never run unsandboxed", async () => {
  // A child process whose PATH has none of bwrap, bash, setpriv or prlimit.
  const dir = await Deno.makeTempDir({ prefix: "arpo-nosandbox-" });
  try {
    const script = join(dir, "probe.ts");
    const root = new URL("../", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import python from "${root}plugins/tools/python.ts";
import { resolveSandbox } from "${root}src/tools/sandbox.ts";
import { testContext } from "${root}tests/fixtures/tools/context.ts";
try {
  await resolveSandbox("auto");
  console.log("AVAILABLE");
} catch (e) {
  console.log(e.name + ": " + e.message);
}
try {
  await python({}, testContext({ name: "python" }));
  console.log("LOADED");
} catch (e) {
  console.log(e.name + ": " + e.message);
}
const tool = await python({ sandbox: "none" }, testContext({ name: "python" }));
console.log("none:", await tool.call("6 * 7", { signal: new AbortController().signal, timeoutMs: 10000 }));
`,
    );
    const out = await runWithPath(script, dir);
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const [avail, load, none] = text.trim().split("\n");
    assert.match(avail, /^SandboxUnavailableError: no sandbox mechanism works on this machine/);
    assert.match(avail, /\(bwrap: `bwrap` is not installed; unshare: `\w+` is not installed\)/);
    assert.match(avail, /`with: \{ sandbox: none \}`/);
    assert.match(load, /^SandboxUnavailableError: tool 'python': no sandbox mechanism/);
    // The explicit opt-out still runs (python3 is looked up on the child's own clean PATH).
    assert.equal(none, "none: 42");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "python: concurrent calls through the runtime are independent",
  ignore,
  fn: async () => {
    const tool = await make({ timeout_s: 20 });
    const rt = createToolRuntime([{ name: "python", tool, digest: "c".repeat(64) }]);
    const outs = await Promise.all(
      [1, 2, 3, 4].map((i) =>
        rt.call(
          "python",
          `import os\nopen("mine.txt", "w").write("${i}")\nprint(len(os.listdir(".")), open("mine.txt").read())`,
        )
      ),
    );
    // Each call has its own scratch directory (one file in it) and sees only its own write.
    assert.deepEqual(outs.map((o) => o.output), ["1 1", "1 2", "1 3", "1 4"]);
    assert.equal((await rt.call("python", "x = 1")).output, "python returned empty output.");
    await rt.close();
  },
});

Deno.test({
  name: "python: a machine with util-linux, bash and python3 but no bwrap runs code under unshare",
  ignore: !MECHS.includes("unshare"),
  fn: async () => {
    // A child process whose PATH has what a fresh Debian has, but no bwrap (no test switch).
    const dir = await Deno.makeTempDir({ prefix: "arpo-nobwrap-" });
    try {
      for (const t of ["bash", "sh", "prlimit", "setpriv", "python3"]) {
        const p = ["/usr/bin", "/bin"].map((d) => `${d}/${t}`).find((p) => {
          try {
            return Deno.statSync(p).isFile;
          } catch {
            return false;
          }
        });
        if (p) await Deno.symlink(p, join(dir, t));
      }
      const script = join(dir, "probe.ts");
      const root = new URL("../", import.meta.url).href;
      await Deno.writeTextFile(
        script,
        `import python from "${root}plugins/tools/python.ts";
import { resolveSandbox } from "${root}src/tools/sandbox.ts";
import { testContext } from "${root}tests/fixtures/tools/context.ts";
console.log(await resolveSandbox("auto"));
const ctx = testContext({ name: "python" });
const tool = await python({}, ctx);
console.log(ctx.logs.join(" "));
console.log(await tool.call("import os\\nprint(os.getcwd())\\n6 * 7", { signal: new AbortController().signal, timeoutMs: 30000 }));
`,
      );
      const out = await runWithPath(script, dir);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.deepEqual(new TextDecoder().decode(out.stdout).trim().split("\n"), [
        "unshare",
        "sandbox: unshare",
        "/tmp/arpo-sbx",
        "42",
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Run a Deno script in a clean environment whose PATH is only `dir` (the tools it may find). */
function runWithPath(script: string, dir: string): Promise<Deno.CommandOutput> {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", new URL("../deno.json", import.meta.url).pathname, script],
    clearEnv: true,
    env: {
      PATH: dir,
      HOME: Deno.env.get("HOME") ?? dir,
      ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
}
