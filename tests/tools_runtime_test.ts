/**
 * The tool runtime: timeouts, output cap, retries, cache by (tool digest, input), replay of
 * non-deterministic tools, records, and failures as `Error: …` text.
 */
import assert from "node:assert/strict";
import type { Tool, ToolCallContext } from "../src/plugin/contracts.ts";
import {
  capOutput,
  createToolRuntime,
  replayFromRecords,
  type ToolCache,
  toolCallKey,
} from "../src/tools/runtime.ts";

function tool(
  tag: string,
  call: (input: string, ctx: ToolCallContext) => Promise<string> | string,
  extra: Partial<Tool> = {},
): Tool {
  return { kind: "tool", tag, description: `the ${tag} tool`, call, ...extra };
}

function memoryCache(): ToolCache & { map: Map<string, string> } {
  const map = new Map<string, string>();
  return {
    map,
    get: (k) => Promise.resolve(map.get(k)),
    put: (k, v) => {
      map.set(k, v);
      return Promise.resolve();
    },
  };
}

const D1 = "a".repeat(64), D2 = "b".repeat(64);

Deno.test("runtime: tags, descriptions, plain calls and records", async () => {
  const rt = createToolRuntime([
    { name: "echo", tool: tool("echo", (s) => `you said ${s}`), digest: D1 },
    { name: "calc", tool: tool("python", (s) => String(eval(s))), digest: D2 },
  ]);
  assert.deepEqual(rt.tags, ["echo", "python"]);
  assert.deepEqual(rt.describe(), [
    { tag: "echo", description: "the echo tool" },
    { tag: "python", description: "the python tool" },
  ]);
  const o = await rt.call("python", "6*7");
  assert.equal(o.output, "42");
  assert.equal(o.tool, "calc");
  assert.equal(o.tag, "python");
  assert.deepEqual(
    [o.error, o.timedOut, o.truncated, o.source, o.attempts],
    [false, false, false, "live", 1],
  );
  assert.ok(o.durationMs >= 0);
  const u = await rt.call("browse", "x");
  assert.equal(u.output, "Error: unknown tool <browse>; available: <echo>, <python>");
  assert.equal(u.error, true);
  const recs = rt.records();
  assert.equal(recs.length, 2);
  assert.equal(recs[0].key, toolCallKey(D2, "6*7"));
  assert.equal(recs[0].source, "live");
  assert.equal(recs[0].input, "6*7");
  assert.equal(rt.drainRecords().length, 2);
  assert.equal(rt.records().length, 0);
  assert.throws(
    () =>
      createToolRuntime([
        { name: "a", tool: tool("x", () => ""), digest: D1 },
        { name: "b", tool: tool("x", () => ""), digest: D2 },
      ]),
    /'a' and 'b' both use the tag <x>/,
  );
});

Deno.test("runtime: throws become Error text, empty output is said", async () => {
  const rt = createToolRuntime([
    {
      name: "bad",
      tool: tool("bad", () => {
        throw new Error("disk on fire");
      }),
      digest: D1,
    },
    { name: "rej", tool: tool("rej", () => Promise.reject("plain string")), digest: D1 },
    { name: "nil", tool: tool("nil", () => "  \n"), digest: D1 },
    // deno-lint-ignore no-explicit-any
    { name: "num", tool: tool("num", () => 5 as any), digest: D1 },
  ]);
  const a = await rt.call("bad", "x");
  assert.equal(a.output, "Error: disk on fire");
  assert.equal(a.error, true);
  assert.equal((await rt.call("rej", "x")).output, "Error: plain string");
  const e = await rt.call("nil", "x");
  assert.equal(e.output, "nil returned empty output.");
  assert.equal(e.error, false);
  assert.equal((await rt.call("num", "x")).output, "Error: tool returned number, not text");
});

Deno.test("runtime: per-call timeout aborts the tool's signal", async () => {
  let sawAbort = false;
  const slow = tool("slow", (_s, ctx) =>
    new Promise((resolve) => {
      ctx.signal.addEventListener("abort", () => {
        sawAbort = true;
      });
      const t = setTimeout(() => resolve("late"), 2000);
      ctx.signal.addEventListener("abort", () => clearTimeout(t));
    }));
  // A tool that never settles and ignores its signal still times out.
  const stuck = tool("stuck", () => new Promise<string>(() => {}));
  const rt = createToolRuntime([
    { name: "slow", tool: slow, digest: D1, timeoutMs: 150 },
    { name: "stuck", tool: stuck, digest: D2 },
  ], { timeoutMs: 100 });
  const o = await rt.call("slow", "x");
  assert.equal(o.output, "Error: slow timed out after 0.15s");
  assert.deepEqual([o.error, o.timedOut], [true, true]);
  assert.ok(sawAbort);
  const s = await rt.call("stuck", "x");
  assert.equal(s.output, "Error: stuck timed out after 0.1s");
  // A tool's own TimeoutError counts as a timeout too.
  const own = createToolRuntime([{
    name: "py",
    tool: tool("py", () => {
      const e = new Error("execution timed out after 2s");
      e.name = "TimeoutError";
      throw e;
    }),
    digest: D1,
  }]);
  const p = await own.call("py", "x");
  assert.equal(p.output, "Error: execution timed out after 2s");
  assert.equal(p.timedOut, true);
});

Deno.test("runtime: output cap cuts the middle and says so", async () => {
  assert.deepEqual(capOutput("abcdef", 6), { text: "abcdef", truncated: false });
  const c = capOutput("0123456789", 4);
  assert.equal(c.text, "01\n[… 6 characters truncated …]\n89");
  assert.equal(c.truncated, true);
  const big = "H".repeat(500) + "M".repeat(10_000) + "T".repeat(500);
  const rt = createToolRuntime([{ name: "big", tool: tool("big", () => big), digest: D1 }], {
    maxOutputChars: 1000,
  });
  const o = await rt.call("big", "x");
  assert.equal(o.truncated, true);
  assert.ok(o.output.startsWith("H".repeat(500)));
  assert.ok(o.output.endsWith("T".repeat(500)));
  assert.match(o.output, /\[… 10000 characters truncated …\]/);
  assert.doesNotMatch(o.output, /M/);
});

Deno.test("runtime: retryable tools are retried, others are not", async () => {
  let flaky = 0, plain = 0, empty = 0;
  const rt = createToolRuntime([
    {
      name: "flaky",
      tool: tool("flaky", () => {
        if (++flaky < 3) throw new Error(`HTTP 503 (try ${flaky})`);
        return "ok";
      }, { retryable: true }),
      digest: D1,
    },
    {
      name: "plain",
      tool: tool("plain", () => {
        plain++;
        throw new Error("nope");
      }),
      digest: D1,
    },
    {
      name: "hollow",
      tool: tool("hollow", () => (++empty < 2 ? "" : "filled"), { retryable: true }),
      digest: D1,
    },
    {
      name: "down",
      tool: tool("down", () => {
        throw new Error("connection refused");
      }, { retryable: true }),
      digest: D1,
      retries: 1,
    },
  ], { retryDelayMs: 1 });
  const f = await rt.call("flaky", "q");
  assert.deepEqual([f.output, f.attempts, f.error], ["ok", 3, false]);
  const p = await rt.call("plain", "q");
  assert.deepEqual([p.output, p.attempts, plain], ["Error: nope", 1, 1]);
  const h = await rt.call("hollow", "q");
  assert.deepEqual([h.output, h.attempts], ["filled", 2]);
  const d = await rt.call("down", "q");
  assert.deepEqual([d.output, d.attempts, d.error], ["Error: connection refused", 2, true]);
});

Deno.test("runtime: cache keyed by (tool digest, input)", async () => {
  let calls = 0;
  const cache = memoryCache();
  const mk = (digest: string) =>
    createToolRuntime([{
      name: "count",
      tool: tool("count", (s) => `${s}#${++calls}`),
      digest,
    }], { cache, maxOutputChars: 8 });
  const rt = mk(D1);
  const a = await rt.call("count", "in");
  assert.equal(a.output, "in#1");
  const b = await rt.call("count", "in");
  assert.deepEqual([b.output, b.source, b.attempts], ["in#1", "cached", 0]);
  assert.equal((await rt.call("count", "other")).output, "other#2");
  // Another runtime over the same cache and digest: no new call. Another digest: a new call.
  assert.equal((await mk(D1).call("count", "in")).source, "cached");
  const c = await mk(D2).call("count", "in");
  assert.deepEqual([c.output, c.source], ["in#3", "live"]);
  // The raw text is cached and the cap applied on the way out.
  const long = await mk(D1).call("count", "longer input");
  assert.equal(long.truncated, true);
  assert.equal(
    JSON.parse(cache.map.get(toolCallKey(D1, "longer input"))!).text,
    "longer input#4",
  );
  assert.equal(rt.records().map((r) => r.source).join(","), "live,cached,live");
  // Timeouts and errors of retryable tools are not cached; other errors are.
  const errs = createToolRuntime([
    { name: "t", tool: tool("t", () => new Promise<string>(() => {})), digest: D1 },
    {
      name: "r",
      tool: tool("r", () => {
        throw new Error("503");
      }, { retryable: true }),
      digest: D1,
    },
    {
      name: "e",
      tool: tool("e", () => {
        throw new Error("bad input");
      }),
      digest: D2,
    },
  ], { cache, timeoutMs: 50, retries: 0 });
  const before = cache.map.size;
  await errs.call("t", "x1");
  await errs.call("r", "x2");
  assert.equal(cache.map.size, before);
  await errs.call("e", "x3");
  assert.equal(cache.map.size, before + 1);
  assert.equal((await errs.call("e", "x3")).output, "Error: bad input");
});

Deno.test("runtime: non-deterministic tools replay recorded results unless live", async () => {
  let n = 0;
  const web = () => tool("search", (q) => `live ${q} ${++n}`, { deterministic: false });
  const cache = memoryCache();
  const first = createToolRuntime([{ name: "web", tool: web(), digest: D1 }], { cache });
  const a1 = await first.call("search", "q1");
  const a2 = await first.call("search", "q1");
  // Not served from the cache: each call is live, and nothing is cached.
  assert.deepEqual([a1.output, a2.output, a2.source], ["live q1 1", "live q1 2", "live"]);
  assert.equal(cache.map.size, 0);
  const replay = replayFromRecords(first.records());
  const rerun = createToolRuntime([{ name: "web", tool: web(), digest: D1 }], { cache, replay });
  const r = await rerun.call("search", "q1");
  assert.deepEqual([r.output, r.source, r.attempts], ["live q1 1", "replayed", 0]);
  assert.equal(rerun.records()[0].source, "replayed");
  const miss = await rerun.call("search", "q2");
  assert.deepEqual([miss.output, miss.source], ["live q2 3", "live"]);
  const live = createToolRuntime([{ name: "web", tool: web(), digest: D1 }], {
    replay,
    live: true,
  });
  assert.equal((await live.call("search", "q1")).output, "live q1 4");
});

Deno.test("runtime: close reaches every tool, even after one fails", async () => {
  const closed: string[] = [];
  const rt = createToolRuntime([
    {
      name: "a",
      tool: tool("a", () => "", {
        close: () => {
          throw new Error("x");
        },
      }),
      digest: D1,
    },
    { name: "b", tool: tool("b", () => "", { close: () => void closed.push("b") }), digest: D1 },
  ]);
  await rt.close();
  assert.deepEqual(closed, ["b"]);
});

Deno.test("runtime: identical concurrent calls of a deterministic tool share one live call", async () => {
  let calls = 0;
  const slow = (extra: Partial<Tool> = {}) =>
    tool("slow", async (s) => {
      const n = ++calls;
      await new Promise((r) => setTimeout(r, 30));
      return `${s}:${n}`;
    }, extra);
  const rt = createToolRuntime([{ name: "slow", tool: slow(), digest: D1 }]);
  const outs = await Promise.all([
    rt.call("slow", "a"),
    rt.call("slow", "a"),
    rt.call("slow", "b"),
  ]);
  assert.deepEqual(outs.map((o) => o.output), ["a:1", "a:1", "b:2"]);
  assert.deepEqual(outs.map((o) => o.source), ["live", "cached", "live"]);
  assert.deepEqual(outs.map((o) => o.attempts), [1, 0, 1]);
  // Done calls are not remembered without a cache; non-deterministic tools never share.
  assert.equal((await rt.call("slow", "a")).output, "a:3");
  calls = 0;
  const nd = createToolRuntime([{
    name: "slow",
    tool: slow({ deterministic: false }),
    digest: D1,
  }]);
  const two = await Promise.all([nd.call("slow", "a"), nd.call("slow", "a")]);
  assert.equal(calls, 2);
  assert.deepEqual(two.map((o) => o.source), ["live", "live"]);
});

Deno.test("runtime: a call that starts while an identical call is still looking in the cache joins it", async () => {
  // A slow store (a cache file read) and a fast tool: the first call's lookup misses, its live
  // call ends and is put while the second call's own lookup would still be reading the store.
  let calls = 0;
  const map = new Map<string, string>();
  const cache: ToolCache = {
    get: async (k) => {
      const v = map.get(k); // what the store held when the read began
      await new Promise((r) => setTimeout(r, 40));
      return v;
    },
    put: (k, v) => {
      map.set(k, v);
      return Promise.resolve();
    },
  };
  const rt = createToolRuntime([{
    name: "fast",
    tool: tool("fast", (s) => `${s}:${++calls}`),
    digest: D1,
  }], { cache });
  const first = rt.call("fast", "q");
  await new Promise((r) => setTimeout(r, 20));
  const second = rt.call("fast", "q");
  const outs = await Promise.all([first, second]);
  assert.equal(calls, 1, "one live call for the two identical calls");
  assert.deepEqual(outs.map((o) => [o.output, o.source]), [["q:1", "live"], ["q:1", "cached"]]);
  // Later, the result comes from the cache.
  assert.deepEqual([(await rt.call("fast", "q")).source, calls], ["cached", 1]);
});
