/**
 * A stage that lost tool calls to infrastructure failures (the wall-clock guard fired on every
 * attempt: the machine decided, not the model) is recorded with its count but not put in the
 * stage index, so the next run computes it again instead of reusing a load-dependent result.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadManifest } from "../src/manifest/mod.ts";
import { runManifest } from "../src/run/runner.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { rm, scratchStore } from "./fixtures/helpers.ts";
import { scriptedPolicyFactory } from "./fixtures/run_tools/script.ts";

const MANIFEST = fileURLToPath(new URL("./fixtures/run_tools/infra.yaml", import.meta.url));
const g = globalThis as { __infraFail?: boolean };

Deno.test("runner: a stage with infrastructure failures is recorded, not indexed, and recomputed", async () => {
  const store = await scratchStore();
  const stages = BUILTIN_STAGES;
  const policyFactory = scriptedPolicyFactory(false);
  try {
    const view = await loadManifest(MANIFEST, { stages });
    g.__infraFail = true;
    const a = await runManifest({ store, view, policyFactory });
    const lost = a.record.stages.eval.metrics.infrastructure_failures;
    assert.ok(typeof lost === "number" && lost > 0, `infrastructure_failures ${lost}`);
    const key = a.record.stages.eval.key;
    assert.equal(await store.readMeta("index/stages", key), undefined, "not indexed");

    g.__infraFail = false;
    const b = await runManifest({ store, view, policyFactory });
    assert.equal(b.runId, a.runId);
    assert.deepEqual(b.computed, ["eval"], "computed again, not reused");
    assert.equal(b.record.stages.eval.metrics.infrastructure_failures, 0);
    assert.ok(await store.readMeta("index/stages", key), "a clean result is indexed");

    const c = await runManifest({ store, view, policyFactory });
    assert.deepEqual(c.computed, [], "and then reused");
  } finally {
    g.__infraFail = false;
    await rm(store.root);
  }
});
