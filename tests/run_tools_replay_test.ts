/**
 * Replay of non-deterministic tools: a run records every tool call as its `tool_calls` output;
 * `rerun` and `verify` hand each call site of a non-deterministic tool (an http search, here a
 * search whose answers drift) its recorded result, so the re-execution reproduces every digest,
 * unless `--live-tools` asks for live calls. Deterministic tools run (or come from the cache) as
 * usual.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadManifest } from "../src/manifest/mod.ts";
import { runManifest } from "../src/run/runner.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { compareOutputs, reexecute, verifyRun } from "../src/run/reexec.ts";
import { parseToolCallLines, replayRecordsOf, StageTools } from "../src/run/stages/stage_tools.ts";
import { replayFromRecords, toolCallKey } from "../src/tools/runtime.ts";
import type { Tool } from "../src/plugin/contracts.ts";
import type { Store } from "../src/store/store.ts";
import { REPO, rm, scratchStore } from "./fixtures/helpers.ts";
import { scriptedPolicyFactory } from "./fixtures/run_tools/script.ts";

const MANIFEST = fileURLToPath(new URL("./fixtures/run_tools/replay.yaml", import.meta.url));
const PRELOAD = fileURLToPath(new URL("./fixtures/run_tools/preload.ts", import.meta.url));
const stages = BUILTIN_STAGES;
/** The scripted policy with the search step. */
const policyFactory = scriptedPolicyFactory(true);
const live = () =>
  (globalThis as { __runToolsLive?: Record<string, number> }).__runToolsLive ??= {};
const text = async (store: Store, d: string) => new TextDecoder().decode(await store.getBytes(d));

Deno.test("replay: rerun replays the recorded search results; --live-tools calls live", async () => {
  const store = await scratchStore();
  try {
    const view = await loadManifest(MANIFEST, { stages });
    live().search = 0;
    const a = await runManifest({ store, view, policyFactory });
    // 3 questions × 2 trajectories, one search each, every one live (no cache for it).
    assert.equal(live().search, 6);
    const lines = parseToolCallLines(await text(store, a.record.stages.eval.outputs.tool_calls));
    const searches = lines.filter((l) => l.tag === "search");
    assert.equal(searches.length, 6);
    // The two trajectories of a question asked the same query and got different answers.
    assert.notEqual(searches[0].output, searches[1].output);
    assert.equal(searches[0].input, searches[1].input);
    // The long answer was cut for the model; the record keeps the tool's own text for replay.
    const long = searches.filter((l) => l.input.includes("long"));
    assert.equal(long.length, 2);
    for (const l of long) {
      assert.equal(l.truncated, true);
      assert.ok(l.raw !== undefined && l.raw.length > 9000 && l.raw !== l.output);
    }
    assert.ok(searches.filter((l) => !l.truncated).every((l) => l.raw === undefined));

    // rerun (same store): the search is replayed site by site, python comes from the cache.
    const r = await reexecute(store, a.record, store, { policyFactory });
    assert.equal(live().search, 6, "no live search on rerun");
    assert.equal(r.record.timings["eval.tool_calls.replayed"], 6);
    assert.equal(r.record.timings["eval.tool_calls.live"], 0);
    assert.deepEqual(compareOutputs(a.record, r.record), []);

    // --live-tools: the search runs live again; its answers drifted, so the outputs differ.
    const l = await reexecute(store, a.record, store, { policyFactory, liveTools: true });
    assert.equal(live().search, 12);
    assert.equal(l.record.timings["eval.tool_calls.replayed"], 0);
    const diff = compareOutputs(a.record, l.record);
    assert.ok(diff.some((d) => d.output === "tool_calls"), JSON.stringify(diff));
    assert.ok(diff.some((d) => d.output === "rollouts"), JSON.stringify(diff));
  } finally {
    await rm(store.root);
  }
});

Deno.test("replay: verify re-executes into a scratch store with the recorded calls", async () => {
  const store = await scratchStore();
  try {
    const view = await loadManifest(MANIFEST, { stages });
    const a = await runManifest({ store, view, policyFactory });
    const before = live().python ?? 0;
    const v = await verifyRun(store, a.runId, { policyFactory });
    assert.deepEqual(v.divergences, []);
    // The scratch store has no cache: the deterministic tool really ran again.
    assert.equal(live().python, before + 3);
    const vl = await verifyRun(store, a.runId, { policyFactory, liveTools: true });
    assert.ok(vl.divergences.length > 0);
    assert.equal(vl.divergences[0].stage, "eval");
  } finally {
    await rm(store.root);
  }
});

Deno.test("replay: the CLI's verify and rerun take --live-tools", async () => {
  const store = await scratchStore();
  const cli = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", join(REPO, "src/cli/main.ts"), ...args],
      cwd: REPO,
      env: { ARPO_PRELOAD: PRELOAD, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, out: dec.decode(out.stdout) + dec.decode(out.stderr) };
  };
  try {
    const e = await cli(["exp", MANIFEST, "--store", store.root, "--progress", "none"]);
    assert.equal(e.code, 0, e.out);
    const id = /run ([0-9a-f]{64})/.exec(e.out)?.[1];
    assert.ok(id, e.out);
    const v = await cli(["verify", id.slice(0, 12), "--store", store.root, "--progress", "none"]);
    assert.equal(v.code, 0, v.out);
    assert.match(v.out, /verified/);
    const vl = await cli([
      "verify",
      id.slice(0, 12),
      "--live-tools",
      "--store",
      store.root,
      "--progress",
      "none",
    ]);
    assert.equal(vl.code, 1, vl.out);
    assert.match(vl.out, /NOT reproduced/);
    const r = await cli(["rerun", id.slice(0, 12), "--live-tools", "--store", store.root]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /outputs differ from the archived run/);
    assert.match((await cli(["rerun", "--help"])).out, /--live-tools/);
  } finally {
    await rm(store.root);
  }
});

Deno.test("replay: each call site gets its own recorded result, timeouts included", async () => {
  let n = 0;
  const drift: Tool = {
    kind: "tool",
    tag: "search",
    description: "drifts",
    deterministic: false,
    call: (q) => `${q} #${++n}`,
  };
  const entry = { name: "search", tool: drift, digest: "d".repeat(64) };
  const key = toolCallKey(entry.digest, "q");
  const replay = replayFromRecords([
    { key, output: "q #1", error: false, timedOut: false, site: "a" },
    { key, output: "q #2", error: false, timedOut: false, site: "b" },
    { key, output: "search timed out after 1s", error: true, timedOut: true, site: "c" },
  ]);
  const rt = new StageTools([entry], { replay });
  const at = (site: string) => rt.call("search", "q", { site });
  assert.deepEqual((await at("b")).output, "q #2");
  assert.deepEqual((await at("a")).output, "q #1");
  const c = await at("c");
  assert.deepEqual([c.output, c.timedOut, c.source], [
    "Error: search timed out after 1s",
    true,
    "replayed",
  ]);
  // An unrecorded site: the first completed result of the key.
  assert.equal((await at("z")).output, "q #1");
  assert.equal(n, 0, "never called live");
  // Another input: live.
  assert.equal((await rt.call("search", "other", { site: "a" })).output, "other #1");
  // Lines round-trip into replay records with the sites StageTools.scope gives.
  const recs = replayRecordsOf([{
    type: "tool_call",
    rollout: "eval",
    task_id: "q0",
    path: "0",
    call: 1,
    tool: "search",
    tag: "search",
    key,
    input: "q",
    output: "shown",
    raw: "raw",
    error: false,
    timed_out: false,
    truncated: true,
  }]);
  assert.deepEqual(recs, [{
    key,
    output: "shown",
    raw: "raw",
    error: false,
    timedOut: false,
    site: JSON.stringify(["eval", JSON.stringify(["q0", "0", 1])]),
  }]);
});
