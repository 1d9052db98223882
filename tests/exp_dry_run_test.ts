// `exp --dry-run` (run/runner.ts planManifest): the run id a real run gets, and per stage whether
// it would be reused, computed or resumed, computing nothing and writing no run record.
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest } from "../src/manifest/mod.ts";
import { planManifest, runManifest } from "../src/run/runner.ts";
import { stages } from "./fixtures/stages/fixture_stages.ts";
import { cli, rm, scratchFixtures } from "./fixtures/helpers.ts";
import { Store } from "../src/store/store.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";

Deno.test("exp --dry-run: computed, reused and resumed stages, nothing computed", async () => {
  const dir = await scratchFixtures();
  const store = new Store(join(dir, "store"));
  const manifest = join(dir, "manifests", "basic.yaml");
  const view = (set: string[] = []) => loadManifest(manifest, { stages, overrides: set });
  try {
    const before = await planManifest({ store, view: await view(), stages });
    assert.deepEqual(before.stages.map((s) => s.action), ["computed", "computed"]);
    assert.ok(before.stages[0].key);
    // `draw` reads every earlier stage: its key waits for `first`'s outputs
    assert.equal(before.stages[1].key, null);
    assert.deepEqual(before.stages[1].after, ["first"]);
    assert.equal(await store.readMeta("runs", before.runId), undefined, "no record written");
    assert.equal(await store.readMeta("index/stages", before.stages[0].key!), undefined);

    const ran = await runManifest({ store, view: await view(), stages });
    assert.equal(ran.runId, before.runId, "the dry run's id is the run's");
    assert.equal(ran.record.stages.first.key, before.stages[0].key);

    const after = await planManifest({ store, view: await view(), stages });
    assert.deepEqual(after.stages.map((s) => s.action), ["reused", "reused"]);
    assert.equal(after.stages[1].key, ran.record.stages.second.key);
    const forced = await planManifest({ store, view: await view(), stages, force: true });
    assert.deepEqual(forced.stages.map((s) => s.action), ["computed", "computed"]);

    // an interrupted attempt left a checkpoint: resumed from its step
    const changed = await planManifest({
      store,
      view: await view(["stages.first.steps=3"]),
      stages,
    });
    assert.equal(changed.stages[0].action, "computed");
    await store.writeMeta("checkpoints", changed.stages[0].key!, { step: 2, state: {}, meta: {} });
    const resumed = await planManifest({
      store,
      view: await view(["stages.first.steps=3"]),
      stages,
    });
    assert.equal(resumed.stages[0].action, "resumed");
    assert.equal(resumed.stages[0].step, 2);

    const r = await cli(["exp", manifest, "--store", store.root, "--dry-run"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^first\s+draw\s+reused\s+[0-9a-f]{12}$/m);
    assert.match(r.stdout, new RegExp(`^run ${ran.runId}$`, "m"));
    assert.match(r.stdout, /dry run: 0 to compute, 0 to resume, 2 reused; nothing was computed/);
    const j = await cli([
      "exp",
      manifest,
      "--store",
      store.root,
      "--dry-run",
      "--json",
      "--set",
      "stages.first.steps=3",
    ]);
    assert.equal(j.code, 0, j.stderr);
    const plan = JSON.parse(j.stdout);
    assert.deepEqual(plan.stages.map((s: { action: string }) => s.action), ["resumed", "computed"]);
  } finally {
    await rm(dir);
  }
});

Deno.test("exp --dry-run: a stage whose `from:` names a stage still to be computed", async () => {
  // arpo-vs-grpo's rl stages read `from: sft`; before sft has run its weights are unknown, which
  // must plan as "computed after sft", not fail as "a stage that produced no weights".
  const dir = await Deno.makeTempDir({ prefix: "arpo-dry-from-" });
  try {
    const store = new Store(join(dir, "store"));
    const view = await loadManifest("experiments/arpo-vs-grpo.yaml", { stages: BUILTIN_STAGES });
    const plan = await planManifest({ store, view, stages: BUILTIN_STAGES });
    const rl = plan.stages.find((s) => s.name === "rl_grpo")!;
    assert.equal(rl.action, "computed");
    assert.deepEqual(rl.after, ["sft"]);
    assert.equal(plan.stages[0].name, "sft");
    assert.ok(plan.stages[0].key);
  } finally {
    await rm(dir);
  }
});
