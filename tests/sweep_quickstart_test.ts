// A reduced `--seeds` sweep of the default experiment end to end: experiments/quickstart.yaml with
// tiny budgets (smaller still than tests/quickstart_test.ts's), two seeds, the real ONNX policy
// and sandboxed python tool; then `show`, `ls` and `compare` on the sweep, and the same command
// again computing nothing.
import assert from "node:assert/strict";
import { join } from "node:path";
import { arpo, rm } from "./fixtures/helpers.ts";
import { QUICKSTART, quickstartSets } from "./fixtures/quickstart.ts";

const SMALL = quickstartSets({
  sizes: { train: 32, rl: 8, test: 4 },
  questions: 4,
  probeQuestions: 2,
  steps: 1,
  maxTokens: 48,
});

interface Metric {
  metric: string;
  mean: number;
  lo: number;
  hi: number;
  iqm: number;
  perSeed: number[];
  resampled: string;
}

Deno.test("quickstart sweep (reduced, 2 seeds): record, aggregate, show, ls, compare", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-qs-sweep-" });
  const store = join(dir, "store");
  const manifest = QUICKSTART;
  const exp = ["exp", manifest, "--store", store, "--seeds", "1,2", "--progress", "none", "--json"];
  try {
    const run = await arpo([...exp, ...SMALL], dir);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const s = JSON.parse(run.stdout);
    const id: string = s.sweepId;
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.equal(s.status, "complete");

    // The sweep record and its two runs, with different seeds.
    const rec = JSON.parse(await Deno.readTextFile(join(store, "sweeps", `${id}.json`)));
    assert.equal(rec.format, "arpo-sweep/1");
    assert.deepEqual(rec.seeds, [1, 2]);
    assert.deepEqual(rec.runs.map((r: { status: string }) => r.status), ["complete", "complete"]);
    const runIds = rec.runs.map((r: { runId: string }) => r.runId);
    assert.notEqual(runIds[0], runIds[1]);
    for (const [i, rid] of runIds.entries()) {
      const r = JSON.parse(await Deno.readTextFile(join(store, "runs", `${rid}.json`)));
      assert.equal(r.identity.manifest.seed, i + 1);
      assert.deepEqual(Object.keys(r.stages), ["sft", "eval_sft", "rl", "eval", "probe"]);
    }

    // The aggregate table: mean, per-seed values, interval around the mean, IQM.
    const stages = s.aggregate.stages as { stage: string; metrics: Metric[] }[];
    assert.deepEqual(stages.map((x) => x.stage), ["sft", "eval_sft", "rl", "eval", "probe"]);
    for (const st of stages) {
      assert.ok(st.metrics.length > 0, st.stage);
      for (const m of st.metrics) {
        const where = `${st.stage}.${m.metric}: ${JSON.stringify(m)}`;
        assert.equal(m.perSeed.length, 2, where);
        assert.ok(Math.abs(m.mean - (m.perSeed[0] + m.perSeed[1]) / 2) < 1e-9, where);
        assert.ok(m.lo <= m.mean + 1e-12 && m.mean <= m.hi + 1e-12, where);
        assert.equal(typeof m.iqm, "number", where);
      }
    }
    const acc = stages.find((x) => x.stage === "eval")!.metrics.find((m) =>
      m.metric === "accuracy"
    )!;
    assert.equal(acc.resampled, "seeds×questions");
    assert.ok(s.report.endsWith(`sweep-${id}.html`));

    // The same command again computes nothing and gives the same sweep and numbers.
    const again = await arpo([...exp, ...SMALL], dir);
    assert.equal(again.code, 0, again.stderr);
    const s2 = JSON.parse(again.stdout);
    assert.equal(s2.sweepId, id);
    assert.deepEqual(s2.computed, []);
    assert.deepEqual(s2.aggregate, s.aggregate);

    const show = await arpo(["show", id.slice(0, 10), "--store", store], dir);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`^sweep +${id}$`, "m"));
    assert.match(show.stdout, /^status +complete$/m);
    for (const [i, rid] of runIds.entries()) {
      assert.match(
        show.stdout,
        new RegExp(`^ {2}${i + 1} +${rid.slice(0, 12)} +complete +5 `, "m"),
      );
    }
    assert.match(show.stdout, /^ {2}eval +accuracy +[\d.]+ +\[[\d.]+, [\d.]+\] +[\d.]+ +/m);

    const ls = await arpo(["ls", "--store", store], dir);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, new RegExp(`^${id.slice(0, 12)} .* complete +1, 2 +quickstart `, "m"));

    const cmp = await arpo(
      ["compare", `${id.slice(0, 12)}:eval_sft`, "eval", "--store", store, "--json"],
      dir,
    );
    assert.equal(cmp.code, 0, cmp.stderr);
    const c = JSON.parse(cmp.stdout);
    assert.deepEqual(c.seeds, [1, 2]);
    assert.equal(c.questions, 8, "2 seeds × 4 questions");
    for (const m of c.metrics) {
      assert.ok(Math.abs(m.difference - (m.b - m.a)) < 1e-12, JSON.stringify(m));
      assert.ok(m.lo <= m.difference + 1e-12 && m.difference <= m.hi + 1e-12, JSON.stringify(m));
      assert.equal(m.perSeed.length, 2);
    }
  } finally {
    await rm(dir);
  }
});
