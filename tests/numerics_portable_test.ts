// The cross-machine test: the manifest tests/fixtures/portable_digests.json names, re-run with
// runtime.numerics: portable, must give every output digest committed there, whatever the CPU
// (on a machine unlike the one that produced them this test is the proof). Then `verify` of
// that run with a forged fingerprint (another machine's CPU and canary) and one tampered output:
// a portable run still requires bit-identity, and every other output re-executes to the same
// bytes with the thread count fixed.
import assert from "node:assert/strict";
import { join } from "node:path";
import { arpo, REPO, rm } from "./fixtures/helpers.ts";
import {
  DIGESTS,
  type PortableDigests,
  runPortableFixture,
} from "./fixtures/numerics/portable_run.ts";
import { Store } from "../src/store/store.ts";

const committed = JSON.parse(await Deno.readTextFile(DIGESTS)) as PortableDigests;

Deno.test("portable numerics: the fixture's output digests are the committed ones, and verify demands bit-identity on any machine", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-portable-" });
  const store = join(dir, "store");
  try {
    const run = await runPortableFixture(committed.manifest, committed.set, store);
    const fp = run.record.numerics as Record<string, unknown>;
    assert.equal(run.record.identity.manifest.runtime.numerics, "portable");
    assert.equal(fp.numerics, "portable");
    assert.equal(fp.engine, "onnxruntime-web");
    assert.equal(fp.provider, "wasm");
    assert.equal(fp.threads, 1);
    // The fixture makes real python tool calls (the recorded calls are among the digests).
    assert.ok((run.record.stages.eval.metrics.tool_calls_per_trajectory as number) > 0);
    const where = `${committed.manifest} (portable) on ${JSON.stringify(fp.cpu)}`;
    // The canary first: it isolates the engine from the code the fixture runs.
    assert.equal(
      fp.canary,
      committed.numerics.canary,
      `${where}: the portable canary differs from the committed machine's: the WebAssembly ` +
        "engine does not compute alike here (a portability bug, not a code change)",
    );
    assert.deepEqual(
      run.outputs,
      committed.outputs,
      `${where}: the portable outputs differ from ${DIGESTS} while the canary agrees. If a ` +
        "change to the decoder, trainer, rollout or plugins explains it, regenerate with " +
        "`deno run -A tests/fixtures/numerics/update_portable_digests.ts`; otherwise the " +
        "portable engine is not portable",
    );

    // The record as if another machine had made it, with one output tampered with.
    const path = join(store, "runs", `${run.runId}.json`);
    const rec = JSON.parse(await Deno.readTextFile(path));
    const other = {
      ...rec.numerics,
      cpu: { ...rec.numerics.cpu, vendor: "GenuineIntel", model: "elsewhere", isa: "avx2-fma" },
      canary: "0".repeat(64),
    };
    rec.numerics = other;
    for (const s of Object.values(rec.stages) as { numerics?: unknown }[]) s.numerics = other;
    const forged = await new Store(store).putJson({ not: "the sft curve" });
    rec.stages.sft.outputs.curve = forged;
    await Deno.writeTextFile(path, JSON.stringify(rec, null, 2));
    const v = await arpo(
      ["verify", run.runId.slice(0, 12), "--store", store, "--progress", "none", "--json"],
      REPO,
    );
    assert.equal(v.code, 1, v.stderr + v.stdout);
    const r = JSON.parse(v.stdout);
    assert.equal(r.verdict, "determinism-bug");
    assert.equal(r.numerics.mode, "portable");
    assert.deepEqual(r.numerics.other, ["sft", "eval", "rl"]);
    // Only the tampered output differs: everything else re-executed to the same bytes.
    assert.deepEqual(
      r.divergences.map((d: { stage: string; output: string }) => `${d.stage}.${d.output}`),
      ["sft.curve"],
    );
    assert.equal(r.divergences[0].recorded, forged);
    assert.equal(r.divergences[0].reexecuted, committed.outputs.sft.curve);
  } finally {
    await rm(dir);
  }
});
