// TensorBoard event files (src/trackers/): CRC32C and TFRecord framing, the Event/Summary protobuf,
// a run's scalars exported and read back; `runtime.trackers` stays outside the run id.
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest } from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { runManifest } from "../src/run/runner.ts";
import type { PolicyFactory } from "../src/run/stages.ts";
import { buildReportData } from "../src/report/build.ts";
import { crc32c, eventFile, maskedCrc32c, readEventFile } from "../src/trackers/tfevents.ts";
import { calcScript } from "./fixtures/rollout/calc_script.ts";
import { ScriptedPolicy } from "./fixtures/rollout/scripted_policy.ts";
import { cli, rm, scratchStore } from "./fixtures/helpers.ts";

const MANIFEST = new URL("./fixtures/rollout/manifests/rollout_stages.yaml", import.meta.url);

Deno.test("tfevents: CRC32C check values, framing, protobuf round trip, corruption found", () => {
  const enc = new TextEncoder();
  assert.equal(crc32c(enc.encode("123456789")), 0xe3069283, "the CRC-32C check value");
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa, "RFC 3720 B.4: 32 zero bytes");
  assert.equal(maskedCrc32c(new Uint8Array(0)), 0xa282ead8, "crc 0 rotated is 0, plus the mask");
  const bytes = eventFile([
    { tag: "rl/loss", step: 1, value: 0.5, wallTime: 101 },
    { tag: "rl/reward", step: 1, value: 0.25, wallTime: 101 },
    { tag: "rl/loss", step: 2, value: -1.5e-3, wallTime: 102 },
  ], 100);
  const ev = readEventFile(bytes);
  assert.equal(ev.length, 3);
  assert.equal(ev[0].fileVersion, "brain.Event:2");
  assert.equal(ev[0].wallTime, 100);
  assert.deepEqual(ev[1], {
    wallTime: 101,
    step: 1,
    scalars: [{ tag: "rl/loss", value: 0.5 }, { tag: "rl/reward", value: 0.25 }],
  });
  assert.equal(ev[2].step, 2);
  assert.ok(Math.abs(ev[2].scalars[0].value - -1.5e-3) < 1e-9, "float32");
  const bad = bytes.slice();
  bad[bad.length - 6] ^= 1;
  assert.throws(() => readEventFile(bad), /data CRC mismatch/);
  const badLen = bytes.slice();
  badLen[0] ^= 1;
  assert.throws(() => readEventFile(badLen), /length CRC mismatch/);
});

Deno.test("tensorboard: a run's curves and final metrics, exported and read back", async () => {
  const policyFactory: PolicyFactory = () => Promise.resolve(new ScriptedPolicy(calcScript));
  const store = await scratchStore();
  const out = await Deno.makeTempDir({ prefix: "arpo-tb-" });
  try {
    const path = new URL(MANIFEST).pathname;
    const plain = await runManifest({
      store,
      view: await loadManifest(path, { stages: BUILTIN_STAGES }),
      policyFactory,
    });
    const tracked = await runManifest({
      store,
      view: await loadManifest(path, {
        stages: BUILTIN_STAGES,
        overrides: ["runtime.trackers=[tensorboard]"],
      }),
      policyFactory,
    });
    assert.equal(tracked.runId, plain.runId, "trackers are outside the run id");
    assert.deepEqual(tracked.computed, [], "and outside the stage keys");

    const r = await cli([
      "export-metrics",
      plain.runId.slice(0, 8),
      "--store",
      store.root,
      "--tensorboard",
      out,
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    const events = readEventFile(await Deno.readFile(j.path));
    assert.match(j.path, /rollout-stages-[0-9a-f]{12}\/events\.out\.tfevents\.\d+\.arpo-/);
    const series = new Map<string, [number, number][]>();
    for (const e of events) {
      for (const s of e.scalars) {
        series.set(s.tag, [...(series.get(s.tag) ?? []), [e.step, s.value]]);
      }
    }
    assert.equal(j.tags, series.size);
    // the rl dry run's reward per step, as the report reads it
    const data = await buildReportData(store, plain.record);
    const rl = data.training!.find((t) => t.stage === "rl")!;
    const want = rl.steps.filter((s) => s.reward !== undefined).map((s) => [s.step, s.reward!]);
    const got = series.get("rl/reward")!;
    assert.equal(got.length, want.length);
    got.forEach(([st, v], i) => {
      assert.equal(st, want[i][0]);
      assert.ok(Math.abs(v - want[i][1]) < 1e-6);
    });
    const acc = plain.record.stages.eval.metrics.accuracy as number;
    assert.ok(Math.abs(series.get("eval/final/accuracy")![0][1] - acc) < 1e-6);
    // exporting again writes the same bytes (wall times come from the record)
    const again = await cli([
      "export-metrics",
      plain.runId,
      "--store",
      store.root,
      "--tensorboard",
      out,
      "--json",
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(
      await Deno.readFile(JSON.parse(again.stdout).path),
      await Deno.readFile(j.path),
    );
  } finally {
    await rm(store.root, out);
  }
});

Deno.test("tensorboard: exp with runtime.trackers writes <store>/tensorboard", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-tbexp-" });
  try {
    const fx = new URL("./fixtures/", import.meta.url).pathname;
    await Deno.writeTextFile(
      join(dir, "m.yaml"),
      (await Deno.readTextFile(join(fx, "manifests/basic.yaml")))
        .replaceAll("../plugins/", join(fx, "plugins") + "/")
        .replace("data/qa.json", join(fx, "manifests/data/qa.json")) +
        "runtime: { trackers: [tensorboard] }\n",
    );
    const store = join(dir, "store");
    const r = await cli(["exp", join(dir, "m.yaml"), "--store", store, "--progress", "none"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^tensorboard ${store}/tensorboard$`, "m"));
    const run = [...Deno.readDirSync(join(store, "tensorboard"))];
    assert.equal(run.length, 1);
    const files = [...Deno.readDirSync(join(store, "tensorboard", run[0].name))];
    const ev = readEventFile(
      await Deno.readFile(join(store, "tensorboard", run[0].name, files[0].name)),
    );
    assert.ok(
      ev.some((e) => e.scalars.some((s) => s.tag === "first/final/steps" && s.value === 2)),
    );
  } finally {
    await rm(dir);
  }
});
