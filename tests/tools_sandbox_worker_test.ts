/**
 * The persistent python worker (src/tools/sandbox_worker.ts), in each sandbox mechanism that
 * works here: for the same program it gives what a one-process sandbox of the same mechanism
 * gives (output, exit, limits), nothing a call leaves behind is visible to the next or to a
 * concurrent one, and it dies with its runner (tests/tools_sandbox_hostile_test.ts).
 */
import assert from "node:assert/strict";
import { runSandboxed, type SandboxResult } from "../src/tools/sandbox.ts";
import { PythonWorker } from "../src/tools/sandbox_worker.ts";
import { type Mechanism, only, workingMechanisms } from "./fixtures/tools/sandbox_mechanisms.ts";

const MECHS = await workingMechanisms();
if (MECHS.length === 0) console.log("tools_sandbox_worker_test: no sandbox here, skipped");

/** A small stand-in for the python tool's wrapper: seed, read the code from stdin, run it. */
const WRAPPER = `import random, sys
random.seed(int(sys.argv[1]))
del sys.argv[1:]
src = sys.stdin.read()
sys.stdin.close()
exec(compile(src, "<code>", "exec"), {"__name__": "__main__"})`;
const PRELOAD = ["random", "sys"];
const ENV = { PYTHONHASHSEED: "0", PYTHONIOENCODING: "utf-8", PYTHONDONTWRITEBYTECODE: "1" };

const start = (mechanism: Mechanism) =>
  PythonWorker.start({
    python: "python3",
    wrapper: WRAPPER,
    preload: PRELOAD,
    env: ENV,
    mechanism,
  });
const oneProcess = (
  mode: Mechanism,
  code: string,
  limits = {},
  maxOutputBytes?: number,
  seed = 7,
) =>
  runSandboxed({
    argv: ["python3", "-s", "-c", WRAPPER, String(seed)],
    stdin: code,
    env: ENV,
    limits: { wallMs: 60_000, ...limits },
    maxOutputBytes,
    mode,
  });
const comparable = (r: SandboxResult) => ({
  stdout: r.stdout,
  stderr: r.stderr,
  code: r.code,
  signal: r.signal,
  success: r.success,
  stdoutTruncated: r.stdoutTruncated,
  stderrTruncated: r.stderrTruncated,
  timedOut: r.timedOut,
  limitExceeded: r.limitExceeded,
});

const CORPUS: [string, Record<string, number>?, number?][] = [
  ["print(18 * 107)"],
  ["import random\nprint(random.random(), {'apple', 'banana', 'cherry'})"],
  ["import os, sys\nprint(sorted(os.environ.items()), os.getcwd(), sys.argv, sys.orig_argv[-1])"],
  ["import os\nprint(os.getpid(), os.getppid(), sorted(p for p in os.listdir('/proc') if p.isdigit()))"],
  ["import os\npid = os.fork()\nif pid == 0:\n    os._exit(3)\nprint(pid, os.waitstatus_to_exitcode(os.wait()[1]))"],
  [
    "import os\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            import time; time.sleep(5); os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('refused after', n)",
    { maxProcesses: 12 },
  ],
  ["import sys\nsys.stdout.write('partial')\nsys.exit(4)"],
  ["1 / 0"],
  ["import atexit\natexit.register(print, 'bye')\nprint('hi')"],
  ["import threading\nt = threading.Thread(target=lambda: print('from a thread'))\nt.start()"],
  ["print(open('/etc/hostname').read())"],
  ["import os\nprint(sorted(os.listdir('.')), sorted(os.listdir('/dev/shm')), os.listdir('/'))"],
  ["while True:\n    pass", { cpuSeconds: 1 }],
  ["x = bytearray(2 * 1024 ** 3)", { memoryBytes: 256 << 20 }],
  [
    "import os, time\nfor i in range(3):\n    if os.fork() == 0:\n        b = b'x' * (120 << 20)\n        time.sleep(2)\n        os._exit(0)\ntime.sleep(2.5)",
    { memoryBytes: 256 << 20 },
  ],
  [
    "import os\nw = 0\ntry:\n    for i in range(100):\n        open(f'f{i}', 'wb').write(b'0' * (4 << 20)); w += 1\nexcept OSError as e:\n    print(w, e.errno)",
    { diskBytes: 16 << 20 },
  ],
  ["while True:\n    print('y' * 100)", undefined, 4096],
  ["import socket\ntry:\n    socket.create_connection(('127.0.0.1', 22), timeout=2)\nexcept OSError as e:\n    print(type(e).__name__)\ntry:\n    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)\nexcept OSError as e:\n    print(e.errno)"],
  ["import ctypes, os\nprint(ctypes.CDLL(None, use_errno=True).unshare(0x10000000), ctypes.get_errno())"],
  ["import sys\nsys.stdout.buffer.write(bytes(range(256)) * 300)\nprint('\\u00e9\\0end')"],
  ["import os, signal\nos.kill(os.getpid(), signal.SIGTERM)"],
  ["input()"],
  // The call cannot stop its init, nor reach the server (another PID namespace).
  ["import os, signal\nos.kill(1, signal.SIGKILL)\nprint(sorted(p for p in os.listdir('/proc') if p.isdigit()))"],
];

for (const mech of MECHS) {
  Deno.test({
    name: `worker [${mech}]: each program gives what a one-process sandbox gives`,
    fn: async () => {
      const w = await start(mech);
      try {
        for (const [code, limits, cap] of CORPUS) {
          const want = comparable(await oneProcess(mech, code, limits, cap));
          const got = comparable(
            await w.run({
              code,
              seed: 7,
              limits: { wallMs: 60_000, ...limits },
              maxOutputBytes: cap,
            }),
          );
          assert.deepEqual(got, want, code);
        }
      } finally {
        await w.close();
      }
    },
  });

  Deno.test({
    name: `worker [${mech}]: nothing one call leaves is visible to the next or to a concurrent one`,
    fn: async () => {
      const w = await start(mech);
      try {
        const first = await w.run({
          seed: 1,
          code: `import json, os, socket, subprocess
open("left.txt", "w").write("secret")
open("/dev/shm/left", "w").write("secret")
os.environ["LEFT"] = "secret"
json.left = "secret"
subprocess.Popen(["sh", "-c", "sleep 60 &"], start_new_session=True).wait()
s = socket.socket(socket.AF_UNIX)
s.bind("\\0arpo-left")
s.listen(1)
print("left", len([p for p in os.listdir("/proc") if p.isdigit()]))`,
        });
        // PIDs 1, 2 and 4 (init, program, the watchdog's stand-in) and the orphaned sleep.
        assert.equal(first.stdout.trim(), "left 4", first.stderr);
        const probe = `import json, os, socket
seen = sorted(os.listdir(".")) + sorted(os.listdir("/dev/shm"))
seen += [k for k in os.environ if k == "LEFT"] + [k for k in ("left",) if hasattr(json, k)]
seen += [p for p in os.listdir("/proc") if p.isdigit() and p not in ("1", "2", "4")]
try:
    socket.socket(socket.AF_UNIX).connect("\\0arpo-left")
    seen.append("socket")
except OSError:
    pass
print(seen)`;
        const next = await w.run({ seed: 1, code: probe });
        assert.equal(next.stdout.trim(), "[]", next.stderr);
        // Two calls at once: the second cannot reach the first's socket or files.
        const [a, b] = await Promise.all([
          w.run({
            seed: 1,
            code: `import socket, time
s = socket.socket(socket.AF_UNIX)
s.bind("\\0arpo-left")
s.listen(1)
open("left.txt", "w").write("x")
time.sleep(1.5)
print("held")`,
          }),
          (async () => {
            await new Promise((r) => setTimeout(r, 500));
            return await w.run({ seed: 1, code: probe });
          })(),
        ]);
        assert.equal(a.stdout.trim(), "held");
        assert.equal(b.stdout.trim(), "[]", b.stderr);
      } finally {
        await w.close();
      }
    },
  });

  Deno.test({
    name: `worker [${mech}]: 16 calls at once each get their own (large) output`,
    fn: async () => {
      const w = await start(mech);
      try {
        const rs = await Promise.all(
          Array.from(
            { length: 16 },
            (_, i) =>
              w.run({ seed: i, code: `import random\nprint(${i}, random.random(), "x" * 50000)` }),
          ),
        );
        for (const [i, r] of rs.entries()) {
          const code = `import random\nprint(${i}, random.random(), "x" * 50000)`;
          assert.equal(r.stdout, (await oneProcess(mech, code, {}, undefined, i)).stdout);
        }
      } finally {
        await w.close();
      }
    },
  });

  Deno.test({
    name:
      `worker [${mech}]: the wall-clock guard and an abort stop a call; the worker serves the next`,
    fn: async () => {
      const w = await start(mech);
      try {
        const t = await w.run({
          seed: 1,
          code: "import time\ntime.sleep(30)",
          limits: { wallMs: 300 },
        });
        assert.deepEqual([t.timedOut, t.success, t.signal], [true, false, "SIGKILL"]);
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 300);
        const a = await w.run({ seed: 1, code: "import time\ntime.sleep(30)", signal: ac.signal });
        assert.deepEqual([a.aborted, a.success], [true, false]);
        assert.equal(
          (await w.run({ seed: 1, code: "print('still here')" })).stdout,
          "still here\n",
        );
      } finally {
        await w.close();
      }
      await assert.rejects(w.run({ seed: 1, code: "1" }), /closed/);
    },
  });
}

Deno.test({
  name: "worker: started without a mechanism, it uses what auto picks (unshare without bwrap)",
  ignore: !MECHS.includes("unshare"),
  fn: async () => {
    const w = await only(
      "unshare",
      () => PythonWorker.start({ python: "python3", wrapper: WRAPPER, preload: PRELOAD }),
    );
    try {
      const r = await w.run({ code: "print(6 * 7)", seed: 0 });
      assert.deepEqual([r.mechanism, r.stdout, r.success], ["unshare", "42\n", true]);
    } finally {
      await w.close();
    }
  },
});

Deno.test({
  name: "worker: an idle worker nobody closed does not keep the program from exiting",
  ignore: MECHS.length === 0,
  fn: async () => {
    const mod = new URL("../src/tools/sandbox_worker.ts", import.meta.url).href;
    const script = `import { PythonWorker } from "${mod}";
const w = await PythonWorker.start(${
      JSON.stringify({ python: "python3", wrapper: WRAPPER, preload: PRELOAD, mechanism: MECHS[0] })
    });
const r = await w.run({ code: "import time\\ntime.sleep(0.3)\\nprint(6 * 7)", seed: 0 });
console.log(r.stdout.trim());
`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", script],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // The call's answer (42) comes; after it the idle worker lets the program end by itself.
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const out = await child.output();
    clearTimeout(killer);
    assert.equal(out.signal, null, "the program had to be killed: the idle worker held it");
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "42");
  },
});
