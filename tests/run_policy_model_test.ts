import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest } from "../src/manifest/mod.ts";
import { verifyRun } from "../src/run/reexec.ts";
import { runManifest } from "../src/run/runner.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import type { PolicyFactory, PolicyFactoryInput } from "../src/run/stages.ts";
import type { Policy } from "../src/policy/types.ts";
import { exportRun, importArchive } from "../src/store/archive.ts";
import { stages as fixtureStages } from "./fixtures/stages/fixture_stages.ts";
import { rm, scratchFixtures, scratchStore } from "./fixtures/helpers.ts";

const stages = [...BUILTIN_STAGES, ...fixtureStages];
/** The manifest at `path`, with the fixture stage kinds. */
const load = (path: string) => loadManifest(path, { stages });

Deno.test("run: the model directory is archived, digested into the id and materialized for reruns", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  const other = await scratchStore();
  try {
    const model = join(dir, "manifests", "model");
    await Deno.mkdir(join(model, "sub"), { recursive: true });
    await Deno.writeTextFile(join(model, "config.json"), '{"layers":1}');
    await Deno.writeTextFile(join(model, "sub", "weights.bin"), "0123");
    const path = join(dir, "manifests", "m.yaml");
    await Deno.writeTextFile(
      path,
      "name: m\npolicy: { model: ./model }\nstages:\n  - modelfiles\n",
    );
    const a = await runManifest({ store, view: await load(path), stages });
    assert.deepEqual(Object.keys(a.record.modelFiles ?? {}).sort(), [
      "config.json",
      "sub/weights.bin",
    ]);
    assert.ok(a.record.identity.model);
    const files = await store.getJson(a.record.stages.modelfiles.outputs.files);
    assert.deepEqual(files, { "config.json": '{"layers":1}', "sub/weights.bin": "0123" });

    const tar = join(dir, "m.tar");
    await exportRun(store, a.runId, tar);
    await Deno.writeTextFile(join(model, "sub", "weights.bin"), "4567");
    const b = await runManifest({ store, view: await load(path), stages });
    assert.notEqual(b.runId, a.runId, "new weights, new run id");

    await rm(model);
    await importArchive(other, tar);
    const v = await verifyRun(other, a.runId, { stages });
    assert.deepEqual(v.divergences, [], "the archived model is what the re-execution sees");
  } finally {
    await rm(dir, join(store.root, ".."), join(other.root, ".."));
  }
});

Deno.test("run: ctx.policy() goes to the run's policy factory, once per request, disposed after", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  const made: PolicyFactoryInput[] = [];
  let disposed = 0;
  const policyFactory: PolicyFactory = (input) => {
    made.push(input);
    return Promise.resolve({
      digest: `fake-${input.request.weights ?? "base"}`,
      dispose: () => {
        disposed++;
        return Promise.resolve();
      },
    } as unknown as Policy);
  };
  try {
    const path = join(dir, "manifests", "p.yaml");
    await Deno.writeTextFile(path, "name: p\nstages:\n  - usepolicy\n");
    const r = await runManifest({ store, view: await load(path), stages, policyFactory });
    assert.deepEqual(await store.getJson(r.record.stages.usepolicy.outputs.digest), [
      "fake-base",
      true,
      "fake-w",
    ]);
    assert.equal(made.length, 2);
    assert.equal(disposed, 2);
    assert.equal(made[0].modelPath, undefined);
    assert.equal(made[0].manifest.name, "p");
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("plugins: ctx.cached computes once per (plugin, options, data, key)", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  const g = globalThis as { __cachedComputes?: number };
  g.__cachedComputes = 0;
  try {
    const path = join(dir, "manifests", "c.yaml");
    await Deno.writeTextFile(
      path,
      "name: c\nplugins:\n  tools:\n    - use: ../plugins/cached_tool.ts\n      with: { file: data/qa.json }\n",
    );
    await runManifest({ store, view: await load(path), stages });
    await runManifest({ store, view: await load(path), stages });
    assert.equal(g.__cachedComputes, 1, "second run served from the store");
    await Deno.writeTextFile(join(dir, "manifests", "data", "qa.json"), "[]");
    await runManifest({ store, view: await load(path), stages });
    assert.equal(g.__cachedComputes, 2, "changed data, recomputed");
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("run: without a policy factory, ctx.policy() builds the manifest's policy", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    const path = join(dir, "manifests", "d.yaml");
    await Deno.writeTextFile(
      path,
      "name: d\npolicy:\n  init: { hidden_size: 16, layers: 1, heads: 2, kv_heads: 2, " +
        "intermediate_size: 32, max_position: 64 }\nstages:\n  - usepolicy: { weights: false }\n",
    );
    const r = await runManifest({ store, view: await load(path), stages });
    const [digest, same] = await store.getJson<[string, boolean]>(
      r.record.stages.usepolicy.outputs.digest,
    );
    assert.match(digest, /^[0-9a-f]{64}$/);
    assert.equal(same, true);
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});
