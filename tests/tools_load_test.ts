/**
 * Tool results do not depend on machine load (issue 13, point 6): the python tool's time limit
 * is CPU time, so a call near its limit gives the same result on a quiet machine and under CPU
 * burners; the wall-clock limit is only a guard, retried once and then reported as an
 * infrastructure failure that is neither cached nor replayed as the tool's answer.
 */
import assert from "node:assert/strict";
import python from "../plugins/tools/python.ts";
import {
  createToolRuntime,
  replayFromRecords,
  type ToolCache,
  toolCallKey,
} from "../src/tools/runtime.ts";
import { storeToolCache } from "../src/run/tool_cache.ts";
import type { Tool } from "../src/plugin/contracts.ts";
import type { ToolCallOutcome } from "../src/tools/types.ts";
import { rm, scratchStore } from "./fixtures/helpers.ts";
import { testContext } from "./fixtures/tools/context.ts";
import { workingMechanisms } from "./fixtures/tools/sandbox_mechanisms.ts";

// The python cases run under each sandbox mechanism that works here.
const MECHS = await workingMechanisms();
if (MECHS.length === 0) console.log("tools_load_test: no sandbox here, python cases skipped");

/** A ToolCache in memory that remembers every put. */
function memoryCache(): ToolCache & { puts: string[] } {
  const m = new Map<string, string>();
  const puts: string[] = [];
  return {
    puts,
    get: (k) => Promise.resolve(m.get(k)),
    put: (k, v) => {
      puts.push(v);
      m.set(k, v);
      return Promise.resolve();
    },
  };
}

/**
 * CPU burners (one per core), bounded by `timeout` so they end even if this test dies; stopped by
 * the returned function.
 */
function startBurners(): () => Promise<void> {
  const n = navigator.hardwareConcurrency;
  const kids = Array.from({ length: n }, () =>
    new Deno.Command("timeout", {
      args: ["60", "sh", "-c", "while :; do :; done"],
      stdout: "null",
      stderr: "null",
    }).spawn());
  return async () => {
    for (const k of kids) {
      try {
        // TERM, not KILL: `timeout` forwards TERM to its child, while a KILLed `timeout` leaves
        // the shell loop running as an orphan.
        k.kill("SIGTERM");
      } catch { /* gone */ }
    }
    await Promise.all(kids.map((k) => k.status));
  };
}

// Sleeps a while and spins until it has used `cpu` seconds of CPU time, then prints a
// value: its result is fixed by CPU time, never by how long the machine took to give it.
const near = (cpu: number) =>
  `import time
time.sleep(0.3)
while time.process_time() < ${cpu}:
    pass
print("done", 18 * 107)`;

for (const mech of MECHS) {
  Deno.test({
    name:
      `load [${mech}]: a python call near its CPU limit gives the same result quiet and under burners`,
    fn: async () => {
      // The default wall-clock guard (3 × 0.5 + 5 s) would do; a wide one keeps the test
      // meaningful on a CI machine that is loaded already: the limit that decides is CPU time.
      const tool = await python(
        { timeout_s: 0.5, wall_s: 60, sandbox: mech },
        testContext({ name: "python" }),
      );
      const rt = createToolRuntime([{ name: "python", tool, digest: "a".repeat(64) }]);
      const cases = [near(0.35), near(5)]; // under the 0.5 s limit; over it
      const quiet: ToolCallOutcome[] = [];
      for (const c of cases) quiet.push(await rt.call("python", c));
      assert.equal(quiet[0].output, "done 1926");
      assert.equal(quiet[1].output, "Error: execution exceeded the CPU-time limit (0.5s)");
      const stop = startBurners();
      let loaded: ToolCallOutcome[];
      try {
        // Two of each at once, with a burner on every core.
        loaded = await Promise.all([...cases, ...cases].map((c, i) =>
          // A different site each, so the runtime does not share one live call.
          createToolRuntime([{ name: "python", tool, digest: "b".repeat(64) }]).call(
            "python",
            c + `\n# ${i}`,
          )
        ));
      } finally {
        await stop();
      }
      for (const [i, o] of loaded.entries()) {
        const q = quiet[i % 2];
        assert.deepEqual(
          [o.output, o.error, o.timedOut, o.infrastructureFailure],
          [q.output, q.error, q.timedOut, undefined],
          `call ${i} under load (${o.durationMs.toFixed(0)} ms, quiet ${
            q.durationMs.toFixed(0)
          } ms)`,
        );
      }
      console.log(
        `near-limit call: quiet ${quiet[0].durationMs.toFixed(0)} ms, under burners ${
          loaded.map((o) => o.durationMs.toFixed(0)).join("/")
        } ms — same results`,
      );
      await rt.close();
    },
  });

  Deno.test({
    name:
      `load [${mech}]: the wall-clock guard retries once, then reports an infrastructure failure`,
    fn: async () => {
      const tool = await python(
        { timeout_s: 1, wall_s: 0.5, sandbox: mech },
        testContext({ name: "python" }),
      );
      const cache = memoryCache();
      const records: unknown[] = [];
      const rt = createToolRuntime([{ name: "python", tool, digest: "c".repeat(64) }], {
        cache,
        onRecord: (r) => records.push(r),
        retryDelayMs: 10,
      });
      const o = await rt.call("python", "import time\ntime.sleep(30)");
      assert.equal(o.output, "Error: execution timed out after 0.5s");
      assert.equal(o.timedOut, true);
      assert.equal(o.attempts, 2);
      assert.equal(
        o.infrastructureFailure,
        "wall-clock guard fired twice (execution timed out after 0.5s)",
      );
      assert.deepEqual(cache.puts, [], "never cached");
      // Asked again: live again (nothing recorded as the answer).
      const again = await rt.call("python", "import time\ntime.sleep(30)");
      assert.deepEqual([again.source, again.attempts], ["live", 2]);
      // A replay built from these records does not hand the failure back as the answer.
      const replay = replayFromRecords(rt.records());
      assert.equal(
        await replay.get(toolCallKey("c".repeat(64), "import time\ntime.sleep(30)")),
        undefined,
      );
      assert.equal(records.length, 2);
      await rt.close();
    },
  });
}

Deno.test("load: a call that times out once and then answers is a normal (cached) result", async () => {
  let n = 0;
  const flaky: Tool = {
    kind: "tool",
    tag: "flaky",
    description: "hangs on its first call",
    call: () => (++n === 1 ? new Promise<string>(() => {}) : "ok"),
  };
  const cache = memoryCache();
  const rt = createToolRuntime([{ name: "flaky", tool: flaky, digest: "d".repeat(64) }], {
    cache,
    timeoutMs: 50,
    retryDelayMs: 1,
  });
  const o = await rt.call("flaky", "x");
  assert.deepEqual([o.output, o.timedOut, o.attempts, o.infrastructureFailure], [
    "ok",
    false,
    2,
    undefined,
  ]);
  assert.equal(cache.puts.length, 1);
  // A tool that never answers: two attempts, an infrastructure failure, nothing cached.
  const stuck: Tool = {
    kind: "tool",
    tag: "stuck",
    description: "never answers",
    call: () => new Promise<string>(() => {}),
  };
  const rt2 = createToolRuntime([{ name: "stuck", tool: stuck, digest: "e".repeat(64) }], {
    cache,
    timeoutMs: 50,
    retryDelayMs: 1,
  });
  const s = await rt2.call("stuck", "x");
  assert.deepEqual([s.output, s.attempts], ["Error: stuck timed out after 0.05s", 2]);
  assert.equal(
    s.infrastructureFailure,
    "wall-clock guard fired twice (stuck timed out after 0.05s)",
  );
  assert.equal(cache.puts.length, 1);
});

Deno.test("load: the store's tool cache never writes a timed-out result", async () => {
  const store = await scratchStore();
  try {
    const cache = storeToolCache(store);
    const key = toolCallKey("f".repeat(64), "in");
    await cache.put(
      key,
      JSON.stringify({ text: "python timed out after 1s", error: true, timedOut: true }),
    );
    assert.equal(await cache.get(key), undefined);
    await cache.put(key, JSON.stringify({ text: "1926", error: false }));
    assert.equal(await cache.get(key), JSON.stringify({ text: "1926", error: false }));
  } finally {
    await rm(store.root);
  }
});
