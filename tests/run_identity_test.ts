import assert from "node:assert/strict";
import { join } from "node:path";
import { ArpoError } from "../src/errors.ts";
import { z } from "zod";
import { loadManifest, type StageSchema } from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { createReporter } from "../src/run/progress.ts";
import { runManifest } from "../src/run/runner.ts";
import { readRecord, runIdOf } from "../src/store/records.ts";
import type { Store } from "../src/store/store.ts";
import { hooks, stages as fixtureStages } from "./fixtures/stages/fixture_stages.ts";
import { rm, scratchFixtures, scratchStore } from "./fixtures/helpers.ts";

/** The built-in stage kinds and the fixture ones. */
const stages = [...BUILTIN_STAGES, ...fixtureStages];

async function run(
  dir: string,
  store: Store,
  o: { set?: string[]; force?: boolean; manifest?: string; schemas?: StageSchema[] } = {},
) {
  const m = await loadManifest(join(dir, "manifests", o.manifest ?? "basic.yaml"), {
    stages: o.schemas ?? stages,
    overrides: o.set ?? [],
  });
  hooks.runs = [];
  const r = await runManifest({ store, view: m, stages, force: o.force });
  return { ...r, ran: [...hooks.runs] };
}

Deno.test("run: the same manifest twice gives the same run id and computes nothing the second time", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    const a = await run(dir, store);
    assert.deepEqual(a.ran, ["first", "second"]);
    assert.deepEqual(a.computed, ["first", "second"]);
    const rec = await readRecord(store, a.runId);
    assert.equal(rec.status, "complete");
    assert.equal(runIdOf(rec.identity), a.runId);
    assert.deepEqual(Object.keys(rec.identity.data), ["data/qa.json"]);
    assert.equal(rec.identity.runtime.deno, Deno.version.deno);
    assert.ok(rec.timings.total_ms >= 0 && typeof rec.host.os === "string");

    const b = await run(dir, store);
    assert.equal(b.runId, a.runId);
    assert.deepEqual(b.ran, [], "no stage ran");
    assert.deepEqual(b.reused, ["first", "second"]);
    assert.deepEqual(b.record.stages.first.outputs, a.record.stages.first.outputs);

    const c = await run(dir, store, { force: true });
    assert.equal(c.runId, a.runId);
    assert.deepEqual(c.ran, ["first", "second"], "--force recomputes");
    assert.deepEqual(
      c.record.stages.second.outputs,
      a.record.stages.second.outputs,
      "deterministic",
    );
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("run: a manifest value or a plugin's source changes the run id; the store path does not", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  const other = await scratchStore();
  try {
    const a = await run(dir, store);
    const moved = await run(dir, other);
    assert.equal(moved.runId, a.runId, "another store, same id");

    const seed = await run(dir, store, { set: ["seed=8"] });
    assert.notEqual(seed.runId, a.runId);
    assert.deepEqual(seed.ran, ["first", "second"]);

    // Only the second stage's options changed: the first is reused.
    const opt = await run(dir, store, { set: ["stages[1].draw.draws=3"] });
    assert.notEqual(opt.runId, a.runId);
    assert.deepEqual(opt.ran, ["second"]);

    const src = join(dir, "plugins", "lib", "text.ts");
    await Deno.writeTextFile(src, (await Deno.readTextFile(src)) + "\n// edited\n");
    const edited = await run(dir, store);
    assert.notEqual(edited.runId, a.runId, "editing a plugin's local import changes the id");
    assert.notEqual(edited.record.identity.plugins.echo_tool, a.record.identity.plugins.echo_tool);
    assert.equal(edited.record.identity.plugins.qa, a.record.identity.plugins.qa);

    const data = join(dir, "manifests", "data", "qa.json");
    await Deno.writeTextFile(data, '[{ "q": "one", "a": "1" }]');
    const newData = await run(dir, store);
    assert.notEqual(newData.runId, edited.runId, "changed data changes the id");
  } finally {
    await rm(dir, join(store.root, ".."), join(other.root, ".."));
  }
});

Deno.test("run: progress style and log level are not part of the identity", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    const m = await loadManifest(join(dir, "manifests", "basic.yaml"), { stages });
    const ids = new Set<string>();
    for (const [style, level] of [["none", "quiet"], ["plain", "debug"]] as const) {
      const r = await runManifest({
        store,
        view: m,
        stages,
        force: true,
        reporter: createReporter(style, level),
      });
      ids.add(r.runId);
    }
    assert.equal(ids.size, 1);
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("run: an interrupted stage resumes from its last checkpoint with the same outputs", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  const ref = await scratchStore();
  try {
    const full = await run(dir, ref, { set: ["stages[0].draw.steps=4"] });
    const m = await loadManifest(join(dir, "manifests", "basic.yaml"), {
      stages,
      overrides: ["stages[0].draw.steps=4"],
    });
    const ac = new AbortController();
    const steps: number[] = [];
    hooks.onStep = (stage, step) => {
      steps.push(step);
      if (stage === "first" && step === 2) ac.abort();
    };
    await assert.rejects(
      () => runManifest({ store, view: m, stages, signal: ac.signal }),
      (e: Error) => e instanceof ArpoError && /interrupted/.test(e.message) && e.exitCode === 130,
    );
    const rec = await readRecord(store, full.runId);
    assert.equal(rec.status, "interrupted");
    steps.length = 0;
    const resumed = await runManifest({ store, view: m, stages });
    assert.deepEqual(steps, [3, 4, 1], "first resumes at step 3, then second runs");
    assert.equal(resumed.runId, full.runId);
    assert.deepEqual(resumed.record.stages, full.record.stages);
    assert.equal((await readRecord(store, full.runId)).status, "complete");
  } finally {
    hooks.onStep = undefined;
    await rm(dir, join(store.root, ".."), join(ref.root, ".."));
  }
});

Deno.test("run: a failing stage is reported by name and the record says failed", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    await Deno.writeTextFile(
      join(dir, "manifests", "fail.yaml"),
      "name: f\nstages:\n  - draw: { steps: 1 }\n  - fail: { message: out of widgets }\n",
    );
    let id = "";
    await assert.rejects(
      () => run(dir, store, { manifest: "fail.yaml" }),
      (e: Error) => {
        assert.ok(e instanceof ArpoError);
        assert.match(e.message, /stage 'fail' \(fail\) failed: out of widgets/);
        return true;
      },
    );
    for (const r of await store.listMeta("runs")) id = r;
    const rec = await readRecord(store, id);
    assert.equal(rec.status, "failed");
    assert.ok(rec.stages.draw, "the finished stage is recorded");
    assert.match(rec.error ?? "", /out of widgets/);
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("run: a stage kind with no implementation fails before anything is recorded", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    // The manifest loader knows the kind's schema; the run is given no implementation of it.
    const schemaOnly: StageSchema = { kind: "schema_only", options: z.strictObject({}) };
    await Deno.writeTextFile(
      join(dir, "manifests", "k.yaml"),
      "name: k\nstages:\n  - draw: { steps: 1 }\n  - schema_only\n",
    );
    await assert.rejects(
      () => run(dir, store, { manifest: "k.yaml", schemas: [...stages, schemaOnly] }),
      (e: Error) =>
        e instanceof ArpoError && /k\.yaml:4:\d+: stage 'schema_only'/.test(e.message) &&
        /no implementation of stage kind 'schema_only'.*draw/.test(e.message),
    );
    assert.deepEqual(await store.listMeta("runs"), []);
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("run: a second invocation that computes nothing leaves the record (and its timings) as they were", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    const a = await run(dir, store);
    const first = await Deno.readTextFile(store.metaPath("runs", a.runId));
    assert.ok(JSON.parse(first).timings["first_ms"] >= 0, "stage timings recorded");
    const b = await run(dir, store);
    assert.deepEqual(b.computed, []);
    assert.equal(await Deno.readTextFile(store.metaPath("runs", a.runId)), first);
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});
