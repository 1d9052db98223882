// The "Writing a plugin" guide (docs/PLUGINS.md), executed: its code blocks marked
// ```ts file=NAME are written into a fresh directory outside the repository, exactly as a third
// party would have them, and loaded through the real manifest loader, plugin loader, tool runtime
// and CLI. If the guide's examples stop working, this fails.
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { ArpoError } from "../src/errors.ts";
import { loadManifest } from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import type { Benchmark, ChatMessage, Reward, Task, Tool } from "../src/plugin/contracts.ts";
import { DataAccess } from "../src/plugin/context.ts";
import { loadPlugins } from "../src/plugin/load.ts";
import { runManifest } from "../src/run/runner.ts";
import { sha256 } from "../src/store/hash.ts";
import { Store } from "../src/store/store.ts";
import { createToolRuntime, type ToolCache } from "../src/tools/runtime.ts";

const REPO = fileURLToPath(new URL("../", import.meta.url));
const GUIDE = join(REPO, "docs", "PLUGINS.md");
const TOOL = "calendar_tool.ts", REWARD = "boxed_reward.ts", BENCH = "date_bench.ts";
const DATA = "data/extra_dates.jsonl", MANIFEST = "dates.yaml";

/** The guide's code blocks whose info string carries `file=NAME`, by NAME. */
export function guideFiles(markdown: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of markdown.matchAll(/^```[\w-]+[ \t]+file=(\S+)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm)) {
    assert.ok(!out.has(m[1]), `docs/PLUGINS.md: two code blocks are marked file=${m[1]}`);
    out.set(m[1], m[2]);
  }
  return out;
}

interface Workspace {
  dir: string;
  files: Map<string, string>;
  store: Store;
  cleanup(): Promise<void>;
}

/** A temp dir outside the repository holding the guide's files, and a store next to it. */
async function workspace(): Promise<Workspace> {
  const files = guideFiles(await Deno.readTextFile(GUIDE));
  const dir = await Deno.makeTempDir({ prefix: "arpo-authoring-" });
  assert.ok(relative(REPO, dir).startsWith(".."), `${dir} must be outside the repository`);
  for (const [name, text] of files) {
    await Deno.mkdir(join(dir, name, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir, name), text);
  }
  const storeRoot = await Deno.makeTempDir({ prefix: "arpo-authoring-store-" });
  return {
    dir,
    files,
    store: new Store(join(storeRoot, "store")),
    cleanup: async () => {
      for (const p of [dir, storeRoot]) await Deno.remove(p, { recursive: true }).catch(() => {});
    },
  };
}

async function loadFrom(ws: Workspace, manifestPath: string) {
  const m = await loadManifest(manifestPath, { stages: BUILTIN_STAGES });
  const data = new DataAccess(ws.store, m.baseDir);
  const plugins = await loadPlugins(m, { store: ws.store, data });
  return { m, data, plugins };
}

/** The run id a manifest gets (a copy without stages: only the identity is wanted). */
async function runIdOf(ws: Workspace, manifestText: string): Promise<string> {
  const path = join(ws.dir, "identity.yaml");
  await Deno.writeTextFile(path, manifestText.replace(/^stages:[\s\S]*$/m, "stages: []\n"));
  const m = await loadManifest(path, { stages: BUILTIN_STAGES });
  assert.equal(m.manifest.stages.length, 0);
  const r = await runManifest({ store: ws.store, view: m });
  return r.runId;
}

function memoryCache(): ToolCache {
  const m = new Map<string, string>();
  return {
    get: (k) => Promise.resolve(m.get(k)),
    put: (k, v) => {
      m.set(k, v);
      return Promise.resolve();
    },
  };
}

const userText = (t: Task) =>
  typeof t.prompt === "string"
    ? t.prompt
    : (t.prompt as ChatMessage[]).filter((x) => x.role === "user").map((x) => x.content).join();

async function cli(args: string[], opts: { cwd?: string; store: Store; stdin?: string }) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", join(REPO, "src/cli/main.ts"), ...args],
    cwd: opts.cwd ?? REPO,
    env: { ARPO_STORE: opts.store.root, NO_COLOR: "1" },
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function noStack(text: string) {
  assert.doesNotMatch(text, /^\s+at .*:\d+:\d+\)?$/m, `a stack trace in:\n${text}`);
  assert.doesNotMatch(text, /Uncaught/, `an uncaught exception in:\n${text}`);
}

const RESPONSE = "<think>Ask the calendar.</think><calendar>2024-02-27 + 3</calendar> " +
  "<result>\n2024-03-01\n</result><answer>It is \\boxed{2024-03-01}.</answer>";

Deno.test("authoring: the guide's examples are complete files that import only arpo-lab", async () => {
  const files = guideFiles(await Deno.readTextFile(GUIDE));
  assert.deepEqual([...files.keys()].sort(), [TOOL, REWARD, DATA, BENCH, MANIFEST].sort());
  for (const name of [TOOL, REWARD, BENCH]) {
    const src = files.get(name)!;
    const specs = [...src.matchAll(/\b(?:import|export)\b[^;'"]*?\bfrom\s*["']([^"']+)["']/g)]
      .map((m) => m[1]);
    assert.deepEqual([...new Set(specs)], ["arpo-lab"], `${name} imports ${specs.join(", ")}`);
    assert.match(src, /^export default define(Tool|Reward|Benchmark)\(/m, name);
    assert.doesNotMatch(src, /Math\.random|Date\.now|new Date\(\)|performance\.now/, name);
  }
  // The plugins type-check as a third party's files would (against the repo's import map).
  const ws = await workspace();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "check",
        "--quiet",
        "--config",
        join(REPO, "deno.json"),
        ...[TOOL, REWARD, BENCH].map((f) => join(ws.dir, f)),
      ],
      cwd: ws.dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, `deno check failed:\n${new TextDecoder().decode(out.stderr)}`);
  } finally {
    await ws.cleanup();
  }
});

Deno.test("authoring: a manifest loads the three external plugins and they work together", async () => {
  const ws = await workspace();
  try {
    const { m, data, plugins } = await loadFrom(ws, join(ws.dir, MANIFEST));
    try {
      // The manifest, with its sft and eval stages referring to the plugins by their `as:` names.
      assert.deepEqual(m.manifest.stages.map((s) => s.kind), ["sft", "eval"]);
      assert.deepEqual([...plugins.tools.keys()], ["calendar"]);
      assert.deepEqual([...plugins.rewards.keys()], ["boxed"]);
      assert.deepEqual([...plugins.benchmarks.keys()], ["dates"]);
      for (const [name, entry] of [["calendar", TOOL], ["boxed", REWARD], ["dates", BENCH]]) {
        const src = plugins.sources[name];
        assert.equal(src.kind, "files");
        if (src.kind === "files") {
          assert.deepEqual(Object.keys(src.files), [entry], "an example is a single file");
          assert.equal(src.files[entry], sha256(ws.files.get(entry)!));
        }
      }
      // The benchmark's data file entered the identity through ctx.readText.
      assert.deepEqual(data.digests, { [DATA]: sha256(ws.files.get(DATA)!) });

      const tool: Tool = plugins.tools.get("calendar")!.plugin;
      const reward: Reward = plugins.rewards.get("boxed")!.plugin;
      const bench: Benchmark = plugins.benchmarks.get("dates")!.plugin;
      assert.equal(tool.tag, "calendar");

      // The tool, through the runtime that enforces caching, caps and errors-as-text.
      const runtime = createToolRuntime(
        [{ name: "calendar", tool, digest: plugins.digests["calendar"] }],
        { cache: memoryCache() },
      );
      const call = (input: string) => runtime.call("calendar", input);
      const known: [string, string][] = [
        ["2024-02-27 + 3", "2024-03-01"],
        ["2023-02-27 + 3", "2023-03-02"],
        ["2024-03-01 - 1", "2024-02-29"],
        ["2024-12-25 - 2024-01-01", "359 days"],
        ["2025-01-01 - 2024-01-01", "366 days"],
        ["weekday 2024-07-04", "Thursday"],
        ["weekday 2000-01-01", "Saturday"],
        ["weekday 1969-12-31", "Wednesday"],
      ];
      for (const [input, want] of known) {
        const o = await call(input);
        assert.equal(o.output, want, input);
        assert.equal(o.error, false);
        assert.equal(o.source, "live");
      }
      const again = await call("2024-02-27 + 3");
      assert.equal(
        again.source,
        "cached",
        "a deterministic tool's result is served from the cache",
      );
      assert.equal(again.output, "2024-03-01");
      for (
        const [input, want] of [
          ["2023-02-29 + 1", "Error: 2023-02-29 is not a calendar date"],
          ["2024-01-01 + 2024-01-02", "Error: two dates can be subtracted, not added"],
          ["2024-01-01 + 40000", "Error: offsets are limited to 36500 days"],
          ["what day is it", "Error: cannot read 'what day is it'"],
        ]
      ) {
        const o = await call(input);
        assert.equal(o.error, true, input);
        assert.ok(o.output.startsWith(want), `${input}: ${o.output}`);
      }
      const capped = await createToolRuntime(
        [{ name: "calendar", tool, digest: plugins.digests["calendar"], maxOutputChars: 4 }],
      ).call("calendar", "2024-12-25 - 2024-01-01");
      assert.equal(capped.truncated, true);
      assert.match(capped.output, /characters truncated/);

      // The benchmark: seeded splits that never share a question, plus the hand-written ones.
      assert.deepEqual([...bench.splits], ["train", "test"]);
      const train = await bench.tasks("train"), test = await bench.tasks("test");
      assert.equal(train.length, 100);
      assert.equal(test.length, 22);
      assert.equal(new Set([...train, ...test].map((t) => t.id)).size, 122);
      const trainQ = new Set(train.map(userText));
      assert.equal(trainQ.size, 100);
      assert.ok(test.every((t) => !trainQ.has(userText(t))), "train and test share a question");
      const system = (test[0].prompt as ChatMessage[])[0];
      assert.equal(system.role, "system");
      assert.match(system.content, /<calendar>/);
      const extras = test.filter((t) => t.id.startsWith("extra-"));
      assert.deepEqual(extras.map((t) => t.answers), [["2000-01-01"], ["366", "366 days"]]);
      await assert.rejects(async () => await bench.tasks("dev"), /has no split 'dev'/);
      // Same options and seed, same tasks.
      assert.deepEqual(await bench.tasks("test"), test);

      // Each demonstration's tool call gives exactly the result it shows, and the reward gives
      // the demonstration full marks.
      const demos = await bench.demonstrations!("train");
      assert.equal(demos.length, 100);
      const byId = new Map(train.map((t) => [t.id, t]));
      for (const d of demos) {
        const m = /<calendar>(.*?)<\/calendar> <result>\n(.*)\n<\/result>/.exec(d.response);
        assert.ok(m, d.response);
        const o = await call(m[1]);
        assert.equal(o.output, m[2], `demonstration of ${d.taskId}: ${m[1]}`);
        const task = byId.get(d.taskId)!;
        assert.deepEqual(d.prompt, task.prompt);
        const s = reward.score({
          task,
          response: d.response,
          answers: task.answers,
          toolCalls: [{ tool: "calendar", input: m[1], output: o.output }],
        });
        assert.equal(s.reward, 1, `${d.taskId}: ${JSON.stringify(s)}`);
      }
      // The hand-written "days from 2024-01-01 to 2025-01-01" agrees with the tool.
      assert.equal((await call("2025-01-01 - 2024-01-01")).output, "366 days");

      // The reward: correct, wrong, malformed, and the manifest's tool-error penalty (0.05).
      const sample = (response: string, answers: string[], errors = 0) => ({
        task: { id: "t", prompt: "", answers },
        response,
        answers,
        toolCalls: Array.from({ length: errors }, () => ({
          tool: "calendar",
          input: "x",
          output: "Error: x",
          error: true,
        })),
      });
      assert.deepEqual(reward.score(sample(RESPONSE, ["2024-03-01"])), {
        reward: 1,
        parts: { format_ok: true, correct: true, answer: "2024-03-01", tool_errors: 0 },
      });
      assert.equal(reward.score(sample(RESPONSE, ["2024-03-02"])).reward, 0);
      assert.equal(reward.score(sample(RESPONSE, ["2024-03-01"], 2)).reward, 1 - 2 * 0.05);
      const bad = reward.score(sample("<answer>\\boxed{2024-03-01}</answer>", ["2024-03-01"]));
      assert.equal(bad.reward, -1);
      assert.equal(bad.parts.format_ok, false);
      assert.match(String(bad.parts.reason), /think/);
      await runtime.close();
    } finally {
      await plugins.close();
    }
  } finally {
    await ws.cleanup();
  }
});

Deno.test("authoring: arpo tool, bench-data and score run the external plugins", async () => {
  const ws = await workspace();
  const p = (f: string) => join(ws.dir, f);
  try {
    // tool: result on stdout, timing on stderr; --json carries the plugin digest.
    const t = await cli(["tool", p(TOOL), "2024-02-27 + 3"], ws);
    assert.equal(t.code, 0, t.stderr);
    assert.equal(t.stdout, "2024-03-01\n");
    assert.match(t.stderr, /^\[calendar_tool <calendar>: [\d.]+ ms, live, 1 attempt\]$/m);
    const tj = await cli(
      ["tool", p(TOOL), "--with", '{"max_days": 10}', "--json", "2024-02-27 + 30"],
      ws,
    );
    assert.equal(tj.code, 1, "a call that ends in an error exits 1");
    const rec = JSON.parse(tj.stdout);
    assert.equal(rec.output, "Error: offsets are limited to 10 days");
    assert.equal(rec.error, true);
    // The CLI hashes the plugin exactly as a run does.
    const viaManifest = await loadFrom(ws, p(MANIFEST));
    await viaManifest.plugins.close();
    assert.equal(rec.digest, viaManifest.plugins.digests["calendar"]);
    // A ./relative path resolves against the working directory; the input may come from stdin.
    const rel = await cli(["tool", "./" + TOOL, "-"], {
      ...ws,
      cwd: ws.dir,
      stdin: "weekday 2024-07-04",
    });
    assert.equal(rel.code, 0, rel.stderr);
    assert.equal(rel.stdout, "Thursday\n");

    // bench-data: the same tasks as the manifest loader gives a benchmark of the same name/seed.
    const opts = '{"sizes": {"train": 5, "test": 3}}';
    const b = await cli(
      ["bench-data", p(BENCH), "--split", "test", "--head", "3", "--with", opts],
      ws,
    );
    assert.equal(b.code, 0, b.stderr);
    assert.ok(b.stdout.startsWith(`${p(BENCH)}: split 'test' of train, test; 3 tasks\n`), b.stdout);
    // The guide shows this very listing.
    assert.match(
      b.stdout,
      /^ {2}\[user\] What date is 985 days after 2039-04-11\? Answer as YYYY-MM-DD\.$/m,
    );
    assert.match(b.stdout, /^ {2}answers: \["2041-12-21"\]$/m);
    for (const id of ["test-0", "test-1", "test-2"]) {
      assert.match(b.stdout, new RegExp(`^# ${id}$`, "m"));
    }
    const bj = await cli(
      [
        "bench-data",
        p(BENCH),
        "--split",
        "train",
        "--head=-1",
        "--seed",
        "7",
        "--demos",
        "--with",
        opts,
        "--json",
      ],
      ws,
    );
    assert.equal(bj.code, 0, bj.stderr);
    const listing = JSON.parse(bj.stdout);
    assert.equal(listing.count, 5);
    assert.equal(listing.demonstrations.length, 5);
    await Deno.writeTextFile(
      p("by_name.yaml"),
      `name: by-name\nseed: 7\nplugins:\n  benchmarks:\n    - use: ./${BENCH}\n      with: ${opts}\n`,
    );
    const byName = await loadFrom(ws, p("by_name.yaml"));
    assert.deepEqual(
      listing.tasks,
      await byName.plugins.benchmarks.get("date_bench")!.plugin.tasks("train"),
    );

    // score: the reward and its parts, one --answer per alias.
    await Deno.writeTextFile(p("response.txt"), RESPONSE);
    const s = await cli(
      [
        "score",
        p(REWARD),
        "--response",
        p("response.txt"),
        "--answer",
        "March 1, 2024",
        "--answer",
        "2024-03-01",
      ],
      ws,
    );
    assert.equal(s.code, 0, s.stderr);
    assert.equal(
      s.stdout,
      "reward: 1\n  format_ok: true\n  correct: true\n  answer: 2024-03-01\n  tool_errors: 0\n",
    );
    const sj = await cli(
      [
        "score",
        p(REWARD),
        "--response",
        "-",
        "--answer",
        "x",
        "--with",
        '{"format_penalty": -0.5}',
        "--json",
      ],
      { ...ws, stdin: "no tags at all" },
    );
    assert.equal(sj.code, 0, sj.stderr);
    const scored = JSON.parse(sj.stdout);
    assert.equal(scored.reward, -0.5);
    assert.equal(scored.parts.format_ok, false);
  } finally {
    await ws.cleanup();
  }
});

Deno.test("authoring: editing an external plugin or its data changes its digest and the run id", async () => {
  const ws = await workspace();
  try {
    const manifest = ws.files.get(MANIFEST)!;
    const digests = async () => {
      const { plugins } = await loadFrom(ws, join(ws.dir, MANIFEST));
      await plugins.close();
      return plugins.digests;
    };
    const d0 = await digests();
    const id0 = await runIdOf(ws, manifest);

    // An edit to the tool's source: only the tool's digest moves, and the run id with it.
    const src = ws.files.get(TOOL)!;
    const edited = src.replace("date arithmetic; the body is", "calendar arithmetic; the body is");
    assert.notEqual(edited, src);
    await Deno.writeTextFile(join(ws.dir, TOOL), edited);
    const d1 = await digests();
    assert.notEqual(d1.calendar, d0.calendar);
    assert.equal(d1.boxed, d0.boxed);
    assert.equal(d1.dates, d0.dates);
    const id1 = await runIdOf(ws, manifest);
    assert.notEqual(id1, id0);

    // An edit to the data file the benchmark reads through ctx.readText: same digests, new run.
    await Deno.writeTextFile(join(ws.dir, TOOL), src);
    await Deno.writeTextFile(
      join(ws.dir, DATA),
      ws.files.get(DATA)! +
        '{"question": "What weekday was 2000-01-01?", "answers": ["Saturday"]}\n',
    );
    assert.deepEqual(await digests(), d0);
    const id2 = await runIdOf(ws, manifest);
    assert.notEqual(id2, id0);
    assert.notEqual(id2, id1);

    // Back to the original bytes: back to the original run id.
    await Deno.writeTextFile(join(ws.dir, DATA), ws.files.get(DATA)!);
    assert.equal(await runIdOf(ws, manifest), id0);
  } finally {
    await ws.cleanup();
  }
});

Deno.test("authoring: a plugin of the wrong shape is an error naming the plugin and its file", async () => {
  const ws = await workspace();
  const p = (f: string) => join(ws.dir, f);
  try {
    // The commonest mistake: exporting the tool object rather than the factory.
    await Deno.writeTextFile(
      p("plain_tool.ts"),
      `import type { Tool } from "arpo-lab";\n` +
        `const tool: Omit<Tool, "kind"> = { tag: "echo", description: "echo", call: (s) => s };\n` +
        `export default tool;\n`,
    );
    // A factory whose benchmark lacks 'splits', and a reward without 'score'.
    await Deno.writeTextFile(
      p("no_splits.ts"),
      `import { defineBenchmark } from "arpo-lab";\n` +
        `// deno-lint-ignore no-explicit-any\n` +
        `export default defineBenchmark({ create: () => ({ tasks: () => [] }) as any });\n`,
    );
    await Deno.writeTextFile(
      p("no_score.ts"),
      `import { defineReward } from "arpo-lab";\n` +
        `// deno-lint-ignore no-explicit-any\n` +
        `export default defineReward({ create: () => ({ scores: () => 1 }) as any });\n`,
    );
    const yaml = (list: string, file: string) =>
      `name: bad\nplugins:\n  ${list}:\n    - use: ./${file}\n`;
    const cases: [string, string, string, string][] = [
      [
        "tools",
        "plain_tool.ts",
        "tool 'plain_tool'",
        "its default export is a object; expected a plugin factory",
      ],
      [
        "benchmarks",
        "no_splits.ts",
        "benchmark 'no_splits'",
        "lacks 'splits' (array, found undefined)",
      ],
      ["rewards", "no_score.ts", "reward 'no_score'", "lacks 'score' (function, found undefined)"],
    ];
    for (const [list, file, label, what] of cases) {
      const mpath = p(`bad_${list}.yaml`);
      await Deno.writeTextFile(mpath, yaml(list, file));
      await assert.rejects(
        () => loadFrom(ws, mpath),
        (e: Error) => {
          assert.ok(e instanceof ArpoError, `expected an ArpoError, got ${e}`);
          for (const part of [`${mpath}:4:`, label, p(file), what]) {
            assert.ok(e.message.includes(part), `'${part}' not in: ${e.message}`);
          }
          noStack(e.message);
          return true;
        },
      );
    }

    // A syntax error is located in the author's file, not in the store's copy of it.
    await Deno.writeTextFile(
      p("syntax.ts"),
      `import { defineTool } from "arpo-lab";\n` +
        `export default defineTool({ create: () => ({ tag: "x", description: "y", call: (s) => s ) });\n`,
    );
    const spath = p("bad_syntax.yaml");
    await Deno.writeTextFile(spath, yaml("tools", "syntax.ts"));
    await assert.rejects(() => loadFrom(ws, spath), (e: Error) => {
      assert.ok(e instanceof ArpoError, `expected an ArpoError, got ${e}`);
      assert.ok(e.message.includes(`tool 'syntax'`), e.message);
      assert.ok(e.message.includes("the module failed to load: SyntaxError"), e.message);
      assert.ok(e.message.includes(`(at file://${p("syntax.ts")}:2:`), e.message);
      assert.ok(!e.message.includes(ws.store.root), e.message);
      return true;
    });

    // The same mistakes through the CLI: one error line naming the plugin file, no stack trace.
    const runs: [string[], string][] = [
      [["tool", p("plain_tool.ts"), "hi"], "its default export is a object"],
      [["bench-data", p("no_splits.ts")], "lacks 'splits'"],
      [["score", p("no_score.ts"), "--response", p(DATA), "--answer", "x"], "lacks 'score'"],
    ];
    for (const [args, what] of runs) {
      const r = await cli(args, ws);
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, /^error: /, r.stderr);
      assert.ok(r.stderr.includes(args[1]), `${args[1]} not in: ${r.stderr}`);
      assert.ok(r.stderr.includes(what), `'${what}' not in: ${r.stderr}`);
      noStack(r.stderr);
    }

    // A misspelt option is reported at its line in the manifest, with the options there are.
    const mpath = p("bad_options.yaml");
    await Deno.writeTextFile(
      mpath,
      `name: bad\nplugins:\n  tools:\n    - use: ./${TOOL}\n      as: calendar\n      with:\n        max_dayz: 3\n`,
    );
    await assert.rejects(() => loadFrom(ws, mpath), (e: Error) => {
      assert.ok(e instanceof ArpoError);
      assert.ok(
        e.message.includes(`${mpath}:7:19: with.max_dayz: unknown option (options: tag, max_days)`),
        e.message,
      );
      assert.ok(
        e.message.startsWith(
          `${mpath}:4:12: tool 'calendar' (use: ./${TOOL}) [${p(TOOL)}]: invalid`,
        ),
        e.message,
      );
      return true;
    });
  } finally {
    await ws.cleanup();
  }
});
