/**
 * The tool cache in runs: a store-backed cache keyed by (tool digest, input) serves repeated
 * calls of deterministic tools across runs; `runtime.tool_cache` switches it off, for all tools or
 * per tool; the hashed rollout trees and the `tool_calls` output do not depend on whether results
 * were live or cached (that goes to the record's timings only).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadManifest } from "../src/manifest/mod.ts";
import { runManifest } from "../src/run/runner.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { parseTreeLines } from "../src/rollout/artifacts.ts";
import { parseToolCallLines, toolCacheEnabled } from "../src/run/stages/stage_tools.ts";
import { storeToolCache, toolCacheScope } from "../src/run/tool_cache.ts";
import { toolCallKey } from "../src/tools/runtime.ts";
import type { Store } from "../src/store/store.ts";
import { rm, scratchStore } from "./fixtures/helpers.ts";
import { scriptedPolicyFactory } from "./fixtures/run_tools/script.ts";

const MANIFEST = fileURLToPath(new URL("./fixtures/run_tools/cache.yaml", import.meta.url));
const stages = BUILTIN_STAGES;
/** The scripted policy without the search step. */
const policyFactory = scriptedPolicyFactory(false);
const live = () =>
  (globalThis as { __runToolsLive?: Record<string, number> }).__runToolsLive ??= {};
const text = async (store: Store, d: string) => new TextDecoder().decode(await store.getBytes(d));

async function treeDigests(store: Store, index: string): Promise<string[]> {
  const idx = JSON.parse(await text(store, index)) as { questions: { tree: string }[] };
  return idx.questions.map((q) => q.tree);
}

Deno.test("tool cache: a forced second run is served from the store and gives the same bytes", async () => {
  const store = await scratchStore();
  try {
    const view = await loadManifest(MANIFEST, { stages });
    assert.equal(view.manifest.runtime.tool_cache, true, "on by default");
    live().python = 0;
    const a = await runManifest({ store, view, policyFactory });
    // 3 questions × 2 trajectories, the same input per question: 3 live calls (the second
    // trajectory's identical concurrent call shares the first one's).
    assert.equal(live().python, 3);
    assert.equal(a.record.timings["eval.tool_calls.live"], 3);
    assert.equal(a.record.timings["eval.tool_calls.cached"], 3);

    const b = await runManifest({ store, view, policyFactory, force: true });
    assert.deepEqual(b.computed, ["eval"]);
    assert.equal(live().python, 3, "no live call: every result came from the store's cache");
    assert.equal(b.record.timings["eval.tool_calls.live"], 0);
    assert.equal(b.record.timings["eval.tool_calls.cached"], 6);
    // Identical artefacts: trees, results and the tool-call record.
    assert.deepEqual(b.record.stages.eval.outputs, a.record.stages.eval.outputs);
    const trees = await treeDigests(store, a.record.stages.eval.outputs.rollouts);
    assert.equal(trees.length, 3);
    assert.deepEqual(await treeDigests(store, b.record.stages.eval.outputs.rollouts), trees);
    // The trees carry no cache flags at all.
    for (const d of trees) {
      const rec = parseTreeLines(await text(store, d));
      assert.equal(rec.toolCalls.length, 2);
      for (const c of rec.toolCalls) {
        assert.ok(!("cached" in c) && !("replayed" in c) && !("attempts" in c), JSON.stringify(c));
      }
    }
    // The cache entry is where the runner's cache says, under the tool's digest.
    const digest = a.record.identity.plugins.python;
    const scope = toolCacheScope(view.manifest, a.record.identity.data);
    const hit = await storeToolCache(store, scope).get(toolCallKey(digest, "0*7"));
    assert.deepEqual(JSON.parse(hit!), { text: "0", error: false });
  } finally {
    await rm(store.root);
  }
});

Deno.test("tool cache: the tool_calls output lists every call in tree order, deterministic fields only", async () => {
  const store = await scratchStore();
  try {
    const view = await loadManifest(MANIFEST, { stages });
    const a = await runManifest({ store, view, policyFactory });
    const lines = parseToolCallLines(await text(store, a.record.stages.eval.outputs.tool_calls));
    assert.deepEqual(
      lines.map((l) => [l.task_id, l.path, l.call, l.input, l.output]),
      [
        ["q0", "0", 1, "0*7", "0"],
        ["q0", "1", 1, "0*7", "0"],
        ["q1", "0", 1, "1*7", "7"],
        ["q1", "1", 1, "1*7", "7"],
        ["q2", "0", 1, "2*7", "14"],
        ["q2", "1", 1, "2*7", "14"],
      ],
    );
    for (const l of lines) {
      assert.deepEqual(Object.keys(l).sort(), [
        "call",
        "error",
        "input",
        "key",
        "output",
        "path",
        "rollout",
        "tag",
        "task_id",
        "timed_out",
        "tool",
        "truncated",
        "type",
      ]);
      assert.equal(l.key, toolCallKey(a.record.identity.plugins.python, l.input));
      assert.deepEqual([l.tool, l.tag, l.rollout, l.error, l.timed_out], [
        "python",
        "python",
        "eval",
        false,
        false,
      ]);
    }
  } finally {
    await rm(store.root);
  }
});

Deno.test("tool cache: runtime.tool_cache false (or false for the tool) calls live every run", async () => {
  for (const set of ["runtime.tool_cache=false", "runtime.tool_cache={python: false}"]) {
    const store = await scratchStore();
    try {
      const view = await loadManifest(MANIFEST, { stages, overrides: [set] });
      live().python = 0;
      const a = await runManifest({ store, view, policyFactory });
      const b = await runManifest({ store, view, policyFactory, force: true });
      assert.equal(live().python, 6, `${set}: live on both runs`);
      assert.equal(b.record.timings["eval.tool_calls.live"], 3, set);
      assert.deepEqual(b.record.stages.eval.outputs, a.record.stages.eval.outputs, set);
    } finally {
      await rm(store.root);
    }
  }
});

Deno.test("tool cache: toolCacheEnabled reads the manifest setting", () => {
  assert.equal(toolCacheEnabled(undefined, "python"), true);
  assert.equal(toolCacheEnabled(true, "python"), true);
  assert.equal(toolCacheEnabled(false, "python"), false);
  assert.equal(toolCacheEnabled({ python: false }, "python"), false);
  assert.equal(toolCacheEnabled({ python: false }, "search"), true);
  assert.equal(toolCacheEnabled({ search: true }, "search"), true);
});

Deno.test("tool cache: entries are written behind, as atomic JSON files under cache/tools; bad keys are refused", async () => {
  const store = await scratchStore();
  try {
    const cache = storeToolCache(store);
    const key = toolCallKey("d".repeat(64), "in");
    assert.equal(await cache.get(key), undefined);
    await cache.put(key, JSON.stringify({ text: "out", error: false }));
    // Written behind: the entry answers at once, from memory until its file has landed.
    assert.equal(await cache.get(key), JSON.stringify({ text: "out", error: false }));
    await cache.flush();
    const path = store.metaPath("cache", `tools/${key}`);
    assert.ok((await Deno.stat(path)).isFile);
    // A fresh cache over the same store reads the file.
    assert.equal(
      await storeToolCache(store).get(key),
      JSON.stringify({ text: "out", error: false }),
    );
    // No temp file left behind.
    const tmp = [...Deno.readDirSync(store.tmpDir)];
    assert.deepEqual(tmp, []);
    await assert.rejects(() => cache.get("../../etc/passwd"), /not a sha256 digest/);
  } finally {
    await rm(store.root);
  }
});
