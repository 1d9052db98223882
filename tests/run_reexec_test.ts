import assert from "node:assert/strict";
import { join } from "node:path";
import { ArpoError } from "../src/errors.ts";
import { loadManifest } from "../src/manifest/mod.ts";
import { checkIntegrity, compareOutputs, reexecute, verifyRun } from "../src/run/reexec.ts";
import { runManifest } from "../src/run/runner.ts";
import { diffRuns } from "../src/run/diff.ts";
import { exportRun, importArchive } from "../src/store/archive.ts";
import { readRecord } from "../src/store/records.ts";
import { readTar, writeTar } from "../src/store/tar.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { hooks, stages as fixtureStages } from "./fixtures/stages/fixture_stages.ts";
import { rm, scratchFixtures, scratchStore } from "./fixtures/helpers.ts";

const stages = [...BUILTIN_STAGES, ...fixtureStages];

async function basicRun(
  dir: string,
  store: import("../src/store/store.ts").Store,
  set: string[] = [],
) {
  const m = await loadManifest(join(dir, "manifests", "basic.yaml"), { stages, overrides: set });
  return await runManifest({ store, view: m, stages });
}

Deno.test("verify: re-execution from the archive reproduces every output digest", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    const r = await basicRun(dir, store);
    // The plugin files change after the run: verify and rerun use the archived sources.
    await Deno.writeTextFile(join(dir, "plugins", "echo_tool.ts"), "export default 42;\n");
    const v = await verifyRun(store, r.runId, { stages });
    assert.deepEqual(v.divergences, []);
    assert.equal(v.reexecutedId, r.runId);
    assert.equal(v.outputs, 2);
    hooks.archivedKeys = [];
    const again = await reexecute(store, r.record, store, { stages });
    assert.deepEqual(hooks.archivedKeys, [r.record.stages.first.key, r.record.stages.second.key]);
    assert.equal(again.runId, r.runId);
    assert.deepEqual(again.computed, ["first", "second"]);
    assert.deepEqual(compareOutputs(r.record, again.record), []);
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("verify: data read through absolute paths under the manifest dir comes from the archive", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    const r = await basicRun(dir, store, ["plugins.benchmarks[0].with.absolute=true"]);
    assert.deepEqual(Object.keys(r.record.identity.data), ["data/qa.json"]);
    await rm(join(dir, "manifests"));
    const v = await verifyRun(store, r.runId, { stages });
    assert.deepEqual(v.divergences, []);
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("verify: a non-deterministic stage is caught, naming the first differing artefact", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    const path = join(dir, "manifests", "noisy.yaml");
    await Deno.writeTextFile(path, "name: noisy\nstages:\n  - draw: { steps: 1 }\n  - wallclock\n");
    const r = await runManifest({ store, view: await loadManifest(path, { stages }), stages });
    const v = await verifyRun(store, r.runId, { stages });
    assert.equal(v.divergences.length, 1);
    assert.equal(v.divergences[0].stage, "wallclock");
    assert.match(
      v.divergences[0].message,
      /stage 'wallclock' output 'noise' differs: recorded [0-9a-f]{64}/,
    );
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("verify: a tampered object is reported by digest and what it was", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    const r = await basicRun(dir, store);
    const d = r.record.identity.data["data/qa.json"];
    await Deno.chmod(store.objectPath(d), 0o644);
    await Deno.writeTextFile(store.objectPath(d), "[]");
    const bad = await checkIntegrity(store, r.record);
    assert.deepEqual(bad, [{ digest: d, what: "data file data/qa.json", state: "damaged" }]);
    await assert.rejects(
      () => verifyRun(store, r.runId, { stages }),
      (e: Error) =>
        e instanceof ArpoError && e.message.includes(d) && e.message.includes(r.runId) &&
        /data file data\/qa.json/.test(e.message) && /no longer match/.test(e.message),
    );
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("archive: export → import into another store works without the original files", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  const other = await scratchStore();
  try {
    const r = await basicRun(dir, store);
    const tar = join(dir, "run.tar");
    const n = await exportRun(store, r.runId, tar);
    assert.equal(n, 9); // 4 plugin files, 1 data file, 2 outputs, 2 stages' metrics
    const bytes = await Deno.readFile(tar);
    await exportRun(store, r.runId, tar);
    assert.deepEqual(await Deno.readFile(tar), bytes, "export is deterministic");
    await rm(join(dir, "plugins"), join(dir, "manifests"));

    assert.deepEqual(await importArchive(other, tar), [r.runId]);
    const rec = await readRecord(other, r.runId);
    assert.deepEqual(rec.stages, r.record.stages);
    assert.deepEqual(await checkIntegrity(other, rec), []);
    const v = await verifyRun(other, r.runId, { stages });
    assert.deepEqual(v.divergences, []);
  } finally {
    await rm(dir, join(store.root, ".."), join(other.root, ".."));
  }
});

Deno.test("archive: import checks every digest and adds nothing from a damaged archive", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  const other = await scratchStore();
  try {
    const r = await basicRun(dir, store);
    const tar = join(dir, "run.tar");
    await exportRun(store, r.runId, tar);
    const entries = readTar(await Deno.readFile(tar));
    const victim = entries.find((e) => e.name.startsWith("objects/"))!;
    victim.data = new TextEncoder().encode("flipped");
    await Deno.writeFile(tar, writeTar(entries));
    await assert.rejects(
      () => importArchive(other, tar),
      (e: Error) =>
        e instanceof ArpoError && e.message.includes(victim.name) &&
        /nothing was imported/.test(e.message),
    );
    assert.deepEqual(await other.listMeta("runs"), []);
    // a missing object is caught too
    await Deno.writeFile(tar, writeTar(entries.filter((e) => e !== victim)));
    await assert.rejects(
      () => importArchive(other, tar),
      (e: Error) => e instanceof ArpoError && /neither in the archive nor in/.test(e.message),
    );
    await Deno.writeFile(tar, new TextEncoder().encode("not a tar file at all"));
    await assert.rejects(() => importArchive(other, tar), ArpoError);
  } finally {
    await rm(dir, join(store.root, ".."), join(other.root, ".."));
  }
});

Deno.test("diff: names the manifest keys, plugin digests and data that differ", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    const a = await basicRun(dir, store);
    await Deno.writeTextFile(
      join(dir, "plugins", "len_reward.ts"),
      (await Deno.readTextFile(join(dir, "plugins", "len_reward.ts"))) + "\n",
    );
    const b = await basicRun(dir, store, ["seed=9"]);
    const d = diffRuns(a.record, b.record);
    const paths = d.map((x) => `${x.section}:${x.path}`);
    assert.ok(paths.includes("manifest:seed"));
    assert.ok(paths.includes("plugins:len_reward"));
    assert.ok(!paths.includes("plugins:echo_tool"));
    assert.ok(paths.some((p) => p.startsWith("outputs:")));
    assert.deepEqual(diffRuns(a.record, a.record), []);
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});
