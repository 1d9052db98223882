import assert from "node:assert/strict";
import { join } from "node:path";
import { ArpoError } from "../src/errors.ts";
import { loadManifest } from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { DataAccess } from "../src/plugin/context.ts";
import { loadPlugins } from "../src/plugin/load.ts";
import { builtinNames } from "../src/plugin/resolve.ts";
import { stages as fixtureStages } from "./fixtures/stages/fixture_stages.ts";
import { rm, scratchFixtures, scratchStore } from "./fixtures/helpers.ts";

/** Load the plugins of a manifest written into the scratch fixtures' manifests/ dir. */
async function load(yaml: string) {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  const path = join(dir, "manifests", "m.yaml");
  await Deno.writeTextFile(path, yaml);
  const cleanup = () => rm(dir, join(store.root, ".."));
  try {
    const m = await loadManifest(path, { stages: [...BUILTIN_STAGES, ...fixtureStages] });
    const plugins = await loadPlugins(m, { store, data: new DataAccess(store, m.baseDir) });
    return { plugins, path, store, cleanup };
  } catch (e) {
    await cleanup();
    (e as { manifestPath?: string }).manifestPath = path;
    throw e;
  }
}

function rejectsWith(...parts: (string | RegExp)[]) {
  return (e: Error & { manifestPath?: string }) => {
    assert.ok(e instanceof ArpoError, `expected ArpoError, got ${e}`);
    for (const p of parts) {
      const s = typeof p === "string"
        ? p.replace("$M", (e as { manifestPath?: string }).manifestPath ?? "")
        : p;
      if (typeof s === "string") assert.ok(e.message.includes(s), `'${s}' not in: ${e.message}`);
      else assert.match(e.message, s);
    }
    assert.doesNotMatch(e.message, /^\s+at /m, "no stack trace in the message");
    return true;
  };
}

const HEAD = "name: t\nseed: 1\nplugins:\n";

Deno.test("plugins: fixture plugins load, with digests, data digests and documentsOf", async () => {
  const { plugins, store, cleanup } = await load(
    HEAD + `  tools:
    - use: ../plugins/docs_tool.ts
      with: { benchmark: qa }
    - use: ../plugins/echo_tool.ts
      with: { loud: true }
  rewards:
    - use: ../plugins/len_reward.ts
  benchmarks:
    - use: ../plugins/tiny_bench.ts
      as: qa
      with: { file: data/qa.json }
`,
  );
  try {
    assert.deepEqual([...plugins.tools.keys()], ["docs_tool", "echo_tool"]);
    const echo = plugins.tools.get("echo_tool")!.plugin;
    const sig = { signal: new AbortController().signal, timeoutMs: 100 };
    assert.equal(await echo.call("hi", sig), "echo: HI");
    assert.equal(await plugins.tools.get("docs_tool")!.plugin.call("two plus two", sig), "4");
    const tasks = await plugins.benchmarks.get("qa")!.plugin.tasks("train");
    assert.equal(tasks.length, 3);
    assert.equal(Object.keys(plugins.digests).length, 4);
    const echoSrc = plugins.sources["echo_tool"];
    assert.equal(echoSrc.kind, "files");
    if (echoSrc.kind === "files") {
      assert.deepEqual(Object.keys(echoSrc.files).sort(), ["echo_tool.ts", "lib/text.ts"]);
      for (const d of Object.values(echoSrc.files)) assert.equal(await store.check(d), "ok");
    }
  } finally {
    await cleanup();
  }
});

Deno.test("plugins: an unknown short name lists the built-ins present", async () => {
  await assert.rejects(
    () => load(HEAD + "  rewards:\n    - use: no_such_reward\n"),
    rejectsWith("$M:5:", "unknown plugin 'no_such_reward'", ...builtinNames("rewards")),
  );
});

Deno.test("plugins: a plugin path that does not exist names the path and line", async () => {
  await assert.rejects(
    () => load(HEAD + "  tools:\n    - use: ./missing_tool.ts\n"),
    rejectsWith("$M:5:", "missing_tool.ts does not exist"),
  );
});

Deno.test("plugins: a local import that does not exist names the importing file", async () => {
  await assert.rejects(
    () => load(HEAD + "  tools:\n    - use: ../plugins/missing_import.ts\n"),
    rejectsWith("$M:5:", "missing_import.ts imports './lib/nowhere.ts'"),
  );
});

Deno.test("plugins: wrong shapes are reported with plugin, file and what is missing", async () => {
  await assert.rejects(
    () => load(HEAD + "  tools:\n    - use: ../plugins/not_a_function.ts\n"),
    rejectsWith(
      "$M:5:",
      "tool 'not_a_function'",
      "not_a_function.ts",
      "default export is a object",
    ),
  );
  await assert.rejects(
    () => load(HEAD + "  tools:\n    - use: ../plugins/no_call.ts\n"),
    rejectsWith("$M:5:", "tool 'no_call'", "lacks 'call' (function, found undefined)"),
  );
  await assert.rejects(
    () => load(HEAD + "  tools:\n    - use: ../plugins/len_reward.ts\n"),
    rejectsWith("$M:5:", "it is a reward plugin, but it is listed under plugins.tools"),
  );
  await assert.rejects(
    () => load(HEAD + "  tools:\n    - use: ../plugins/syntax_error.ts\n"),
    rejectsWith(
      "$M:5:",
      "tool 'syntax_error'",
      "the module failed to load: SyntaxError",
      "plugins/syntax_error.ts:2:26",
    ),
  );
});

Deno.test("plugins: options that fail the plugin's schema point at the option's line", async () => {
  await assert.rejects(
    () =>
      load(
        HEAD + `  tools:
    - use: ../plugins/echo_tool.ts
      with:
        prefix: 3
        lound: true
`,
      ),
    rejectsWith(
      "$M:7:",
      "with.prefix",
      "$M:8:",
      "with.lound: unknown option (options: prefix, loud, tag)",
      "tool 'echo_tool'",
      "invalid options",
    ),
  );
});

Deno.test("plugins: a plugin that throws while loading or running is named", async () => {
  await assert.rejects(
    () => load(HEAD + "  tools:\n    - use: ../plugins/throws_on_load.ts\n      as: widget\n"),
    rejectsWith("$M:5:", "tool 'widget'", "threw while loading: cannot start the widget server"),
  );
  const { plugins, cleanup } = await load(
    HEAD + "  rewards:\n    - use: ../plugins/len_reward.ts\n",
  );
  try {
    const r = plugins.rewards.get("len_reward")!.plugin;
    assert.throws(
      () =>
        r.score({
          task: { id: "q1", prompt: "p", answers: [] },
          response: "BOOM",
          answers: [],
          toolCalls: [],
        }),
      rejectsWith("reward 'len_reward'", "task 'q1'", "reward exploded on BOOM"),
    );
  } finally {
    await cleanup();
  }
});

Deno.test("plugins: a benchmark data file that does not exist names the plugin and path", async () => {
  await assert.rejects(
    () =>
      load(
        HEAD +
          "  benchmarks:\n    - use: ../plugins/tiny_bench.ts\n      with: { file: nope.json }\n",
      ),
    rejectsWith("benchmark 'tiny_bench'", "cannot read data file 'nope.json'"),
  );
});

Deno.test("plugins: duplicate names ask for 'as:'", async () => {
  await assert.rejects(
    () =>
      load(
        HEAD + "  tools:\n    - use: ../plugins/echo_tool.ts\n    - use: ../plugins/echo_tool.ts\n",
      ),
    rejectsWith("$M:6:", "echo_tool", "as:"),
  );
});
