/**
 * Seeds as an axis through the CLI, fast: the real eval and rl dry-run stages with the scripted
 * policy (tests/fixtures/terminal/preload.ts) stand in for a model. `exp --seeds` (record, runs,
 * aggregate, report with bands, "computes nothing" the second time), `show`, `ls`, `compare`
 * and `report` on a sweep, sweep id prefixes, and the errors for bad input.
 * tests/sweep_quickstart_test.ts does the same end to end on the real quickstart manifest.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CLIENT_JS, SWEEP_CLIENT_JS } from "../src/report/client.ts";
import { cli, FIXTURES, interruptCli, rm } from "./fixtures/helpers.ts";

const env = { ARPO_PRELOAD: join(FIXTURES, "terminal", "preload.ts") };
const CALC = fileURLToPath(new URL("./fixtures/rollout/plugins/calc.ts", import.meta.url));

const MANIFEST = `name: sweep-fixture
description: two evals around an rl dry run, scripted policy
seed: 3
plugins:
  tools:
    - use: ${CALC}
      as: python
  rewards:
    - use: exact_match
  benchmarks:
    - use: arith
      with: { sizes: { train: 4, rl: 6, test: 4 } }
stages:
  - eval: { name: eval_a, benchmark: arith, questions: 4, rollout: { rollouts: 2, initial: 2 }, sampling: { max_tokens: 300 } }
  - rl:
      benchmark: arith
      split: rl
      steps: 3
      questions_per_step: 2
      minibatch: 2
      dry_run: true
      rollout: { algorithm: arpo, rollouts: 4, initial: 2, entropy_norm: log_vocab, entropy_weight: 2 }
      sampling: { max_tokens: 300 }
  - eval: { benchmark: arith, questions: 4, rollout: { rollouts: 2, initial: 2 }, sampling: { max_tokens: 300 } }
`;

interface Metric {
  metric: string;
  mean: number;
  lo: number;
  hi: number;
  iqm: number;
  iqmLo: number;
  iqmHi: number;
  perSeed: (number | null)[];
  resampled: string;
  scores?: number;
}

/** The aggregate table's lines of exp's or show's output (presentation only, no paths). */
const tableLines = (out: string) =>
  out.split("\n").filter((l) => /^\s*(eval_a|eval|rl)\s+\S+\s+[-\d.]+\s+\[/.test(l));

Deno.test("sweep: exp --seeds, show, ls, compare and report on a sweep", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-sweep-" });
  const store = join(dir, "s");
  const manifest = join(dir, "m.yaml");
  await Deno.writeTextFile(manifest, MANIFEST);
  try {
    let id = "";
    let first: Record<string, unknown> = {};
    let planned = "";
    await t.step("exp --seeds 1,2 --dry-run names the sweep it would record", async () => {
      const r = await cli(["exp", manifest, "--store", store, "--seeds", "1,2", "--dry-run"], {
        env,
      });
      assert.equal(r.code, 0, r.stderr);
      planned = /^sweep ([0-9a-f]{64})$/m.exec(r.stdout)?.[1] ?? "";
      assert.match(planned, /^[0-9a-f]{64}$/, r.stdout);
      const j = JSON.parse(
        (await cli(["exp", manifest, "--store", store, "--seeds", "1,2", "--dry-run", "--json"], {
          env,
        })).stdout,
      );
      assert.equal(j.sweepId, planned);
      assert.equal(j.runs.length, 2);
      assert.ok(!("identity" in j.runs[0]), "the plan's identity stays out of the output");
      // Other seeds are another sweep.
      const other = await cli(["exp", manifest, "--store", store, "--seeds", "1-3", "--dry-run"], {
        env,
      });
      assert.notEqual(/^sweep ([0-9a-f]{64})$/m.exec(other.stdout)?.[1], planned);
    });
    await t.step("exp --seeds 1,2 runs once per seed and records the sweep", async () => {
      const r = await cli(["exp", manifest, "--store", store, "--seeds", "1,2", "--json"], { env });
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      first = j;
      id = j.sweepId;
      assert.match(id, /^[0-9a-f]{64}$/);
      assert.equal(id, planned, "the sweep the dry run named");
      assert.equal(j.record, join(store, "sweeps", `${id}.json`));
      assert.deepEqual(j.seeds, [1, 2]);
      assert.equal(j.status, "complete");
      assert.match(r.stderr, /^seed 1 \(1 of 2\)$/m);
      assert.match(r.stderr, /^seed 2 \(2 of 2\)$/m);
      // Two runs, different seeds, everything computed.
      assert.equal(j.runs.length, 2);
      assert.notEqual(j.runs[0].runId, j.runs[1].runId);
      for (const [i, run] of j.runs.entries()) {
        assert.equal(run.seed, i + 1);
        assert.deepEqual(run.computed, ["eval_a", "rl", "eval"]);
        const rec = JSON.parse(await Deno.readTextFile(join(store, "runs", `${run.runId}.json`)));
        assert.equal(rec.identity.manifest.seed, i + 1, "the manifest with seed = N");
        assert.equal(rec.status, "complete");
      }
      // The sweep record.
      const rec = JSON.parse(await Deno.readTextFile(j.record));
      assert.equal(rec.format, "arpo-sweep/1");
      assert.equal(rec.id, id);
      assert.deepEqual(rec.identity.seeds, [1, 2]);
      assert.equal(rec.identity.base.manifest.seed, undefined, "identity without the seed");
      assert.deepEqual(rec.runs.map((x: { runId: string }) => x.runId), [
        j.runs[0].runId,
        j.runs[1].runId,
      ]);
      assert.deepEqual(rec.aggregate, j.aggregate);
      // The aggregate: every numeric stage metric, mean, per-seed values, interval, IQM.
      const agg = j.aggregate;
      assert.deepEqual(agg.seeds, [1, 2]);
      assert.equal(agg.confidence, 0.95);
      assert.deepEqual(agg.stages.map((s: { stage: string }) => s.stage), ["eval_a", "rl", "eval"]);
      for (const s of agg.stages) {
        for (const m of s.metrics as Metric[]) {
          const vals = m.perSeed.filter((v): v is number => v !== null);
          assert.equal(m.perSeed.length, 2, `${s.stage}.${m.metric}`);
          assert.ok(Math.abs(m.mean - (vals[0] + vals[1]) / 2) < 1e-12, `${s.stage}.${m.metric}`);
          assert.ok(m.lo <= m.mean + 1e-12 && m.mean <= m.hi + 1e-12, JSON.stringify(m));
          assert.ok(m.iqmLo <= m.iqm + 1e-12 && m.iqm <= m.iqmHi + 1e-12, JSON.stringify(m));
        }
      }
      const acc = (agg.stages[0].metrics as Metric[]).find((m) => m.metric === "accuracy")!;
      assert.equal(acc.resampled, "seeds×questions", "eval accuracy: per-question scores");
      assert.equal(acc.scores, 8, "2 seeds × 4 questions");
      const rl = (agg.stages[1].metrics as Metric[]).find((m) => m.metric === "last_mean_reward")!;
      assert.equal(rl.resampled, "seeds", "rl metrics: seeds only");
      // The sweep report: every seed's curve, the mean, a min–max band.
      assert.equal(j.report, join(store, "reports", `sweep-${id}.html`));
      const html = await Deno.readTextFile(j.report);
      for (const sec of ["overview", "seeds", "stages", "training", "evaluation"]) {
        assert.ok(html.includes(`<section id="${sec}">`), sec);
      }
      assert.ok(html.includes('id="aggregate-table"'));
      const specs = JSON.parse(
        /<script type="application\/json" id="arpo-plots">(.*?)<\/script>/s.exec(html)![1],
      );
      const reward = specs.find((s: { id: string }) => s.id === "reward");
      assert.deepEqual(reward.series.map((s: { label: string }) => s.label), [
        "seed 1 · rl",
        "seed 2 · rl",
        "mean · rl",
        "min · rl",
        "max · rl",
      ]);
      assert.deepEqual(reward.bands, [{ upper: 4, lower: 3, fill: reward.series[0].color + "33" }]);
      assert.match(reward.note, /band: min–max over seeds/);
      assert.ok(html.includes(SWEEP_CLIENT_JS), "the page script with band support");
    });

    await t.step("the same command again: the same sweep id, nothing computed", async () => {
      const r = await cli(["exp", manifest, "--store", store, "--seeds", "1-2", "--json"], { env });
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.equal(j.sweepId, id);
      assert.deepEqual(j.computed, []);
      for (const run of j.runs) assert.deepEqual(run.computed, []);
      assert.deepEqual(j.aggregate, first.aggregate, "the same numbers");
      const o = await cli(["exp", manifest, "--store", store, "--seeds", "2,1", "--json"], { env });
      assert.equal(JSON.parse(o.stdout).sweepId, id, "order of the seeds does not matter");
    });

    await t.step("the printed table is the same in a fresh store", async () => {
      const a = await cli(["exp", manifest, "--store", store, "--seeds", "1,2"], { env });
      const b = await cli(["exp", manifest, "--store", join(dir, "fresh"), "--seeds", "1,2"], {
        env,
      });
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      assert.match(a.stdout, /^stage +metric +mean +95% CI +IQM +per seed \(1, 2\) +resampled$/m);
      assert.match(a.stdout, new RegExp(`^sweep ${id}$`, "m"));
      assert.match(a.stdout, /^stages: 0 computed, 6 reused \(over 2 runs\)$/m);
      assert.match(b.stdout, /^stages: 6 computed, 0 reused/m);
      assert.ok(tableLines(a.stdout).length > 10);
      assert.deepEqual(tableLines(a.stdout), tableLines(b.stdout));
    });

    await t.step("a third seed: another sweep, only that seed computed", async () => {
      const r = await cli(["exp", manifest, "--store", store, "--seeds", "1-3", "--json"], { env });
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.notEqual(j.sweepId, id);
      assert.deepEqual(j.computed, ["3:eval_a", "3:rl", "3:eval"]);
    });

    await t.step("show <sweep-prefix>: runs by seed, status, aggregate", async () => {
      const s = await cli(["show", id.slice(0, 8), "--store", store], { env });
      assert.equal(s.code, 0, s.stderr);
      assert.match(s.stdout, new RegExp(`^sweep +${id}$`, "m"));
      assert.match(s.stdout, /^status +complete$/m);
      assert.match(s.stdout, /^seeds +1, 2 \(2\)$/m);
      assert.match(s.stdout, /^ {2}seed +run +status +stages +headline$/m);
      assert.match(s.stdout, /^ {2}1 +[0-9a-f]{12} +complete +3 +eval accuracy [\d.]+$/m);
      assert.match(s.stdout, /^ {2}2 +[0-9a-f]{12} +complete +3 +eval accuracy [\d.]+$/m);
      assert.match(s.stdout, /^aggregate over 2 seeds \(1, 2\): mean, 95% CI from a stratified/m);
      assert.match(
        s.stdout,
        /^ {2}eval +accuracy +[\d.]+ +\[[\d.]+, [\d.]+\] +[\d.]+ +[\d.]+, [\d.]+ +seeds×questions \(8\)$/m,
      );
      assert.match(s.stdout, new RegExp(`^report +${store}/reports/sweep-${id}\\.html$`, "m"));
      const sj = JSON.parse((await cli(["show", id, "--store", store, "--json"], { env })).stdout);
      assert.equal(sj.id, id);
      assert.equal(sj.format, "arpo-sweep/1");
      assert.deepEqual(sj.aggregate, first.aggregate);
      // A run of the sweep is still shown as a run.
      const runId = (first.runs as { runId: string }[])[0].runId;
      const r = await cli(["show", runId.slice(0, 10), "--store", store], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^run +${runId}$`, "m"));
    });

    await t.step("ls lists the sweeps after the runs", async () => {
      const l = await cli(["ls", "--store", store], { env });
      assert.equal(l.code, 0, l.stderr);
      assert.match(l.stdout, /^run +date \(UTC\) +status +stages +name +headline$/m);
      assert.match(l.stdout, /^sweep +date \(UTC\) +status +seeds +name +headline/m);
      assert.match(
        l.stdout,
        new RegExp(
          `^${
            id.slice(0, 12)
          } +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d +complete +1, 2 +sweep-fixture +` +
            `eval accuracy [\\d.]+ \\[[\\d.]+, [\\d.]+\\]$`,
          "m",
        ),
      );
      assert.match(l.stdout, / complete +1-3 +sweep-fixture /);
      const lj = JSON.parse((await cli(["ls", "--store", store, "--json"], { env })).stdout);
      const sweeps = lj.filter((x: { type: string }) => x.type === "sweep");
      assert.equal(sweeps.length, 2);
      assert.ok(sweeps.some((x: { id: string; seeds: number[] }) => x.id === id));
      assert.equal(lj.filter((x: { type: string }) => x.type === "run").length, 3);
    });

    await t.step("compare <sweep>:eval_a eval: paired over seeds × questions", async () => {
      const c = await cli([
        "compare",
        `${id.slice(0, 8)}:eval_a`,
        "eval",
        "--store",
        store,
        "--json",
      ], {
        env,
      });
      assert.equal(c.code, 0, c.stderr);
      const j = JSON.parse(c.stdout);
      assert.equal(j.type, "sweep");
      assert.equal(j.a.sweep, id);
      assert.equal(j.b.sweep, id);
      assert.equal(j.a.stage, "eval_a");
      assert.equal(j.b.stage, "eval");
      assert.deepEqual(j.seeds, [1, 2]);
      assert.equal(j.questions, 8);
      assert.equal(j.confidence, 0.95);
      assert.deepEqual(j.metrics.map((m: { metric: string }) => m.metric), [
        "accuracy",
        "mean_reward",
      ]);
      for (const m of j.metrics) {
        assert.ok(Math.abs(m.difference - (m.b - m.a)) < 1e-12, JSON.stringify(m));
        assert.ok(m.lo <= m.difference + 1e-12 && m.difference <= m.hi + 1e-12, JSON.stringify(m));
        assert.equal(m.perSeed.length, 2);
        const mean = (m.perSeed[0].difference + m.perSeed[1].difference) / 2;
        assert.ok(Math.abs(mean - m.difference) < 1e-12);
        assert.equal(m.perSeed[0].questions, 4);
      }
      const again = await cli(
        ["compare", `${id}:eval_a`, `${id.slice(0, 12)}:eval`, "--store", store, "--json"],
        { env },
      );
      assert.deepEqual(JSON.parse(again.stdout).metrics, j.metrics, "deterministic");
      const text = await cli(["compare", `${id.slice(0, 8)}:eval_a`, "eval", "--store", store], {
        env,
      });
      assert.equal(text.code, 0, text.stderr);
      assert.match(
        text.stdout,
        /2 seeds, 8 paired questions of arith; paired stratified bootstrap/,
      );
      assert.match(
        text.stdout,
        /^ {2}accuracy +[\d.]+ +[\d.]+ +[+-][\d.]+ +\[-?[\d.]+, -?[\d.]+\]/m,
      );
      assert.match(text.stdout, /^ {4}accuracy +seed 1: [+-][\d.]+, seed 2: [+-][\d.]+$/m);
      // Not an eval stage; a sweep against a run.
      const rl = await cli(["compare", `${id.slice(0, 8)}:rl`, "eval", "--store", store], { env });
      assert.equal(rl.code, 1);
      assert.match(rl.stderr, /stage 'rl' .* is a rl stage with no eval results/);
      const runId = (first.runs as { runId: string }[])[0].runId;
      const mixed = await cli(
        ["compare", `${id.slice(0, 8)}:eval_a`, `${runId}:eval`, "--store", store],
        { env },
      );
      assert.equal(mixed.code, 2);
      assert.match(mixed.stderr, /is a sweep and .* a run/);
    });

    await t.step("report <sweep> -o FILE", async () => {
      const out = join(dir, "sweep.html");
      const r = await cli(["report", id.slice(0, 8), "-o", out, "--store", store], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), out);
      const html = await Deno.readTextFile(out);
      assert.ok(html.includes("<title>arpo sweep — sweep-fixture ("));
      assert.ok(html.includes('<section id="seeds">'));
      const two = await cli(["report", id.slice(0, 8), id.slice(0, 8), "--store", store], { env });
      assert.equal(two.code, 2);
      assert.match(two.stderr, /give one sweep id/);
    });

    await t.step("bad input: one-paragraph errors, non-zero exit, nothing run", async () => {
      const cases: [string[], number, RegExp][] = [
        [["--seeds", ""], 2, /--seeds "": the list is empty/],
        [["--seeds", "1,x"], 2, /--seeds "1,x": 'x' is neither a seed \(e\.g\. 3\) nor a range/],
        [["--seeds", "1-2", "--set", "seed=5"], 2, /--seeds 1-2 sets the seed .*--set seed=5/],
      ];
      for (const [args, code, re] of cases) {
        const r = await cli(["exp", manifest, "--store", join(dir, "bad"), ...args], { env });
        assert.equal(r.code, code, r.stderr);
        assert.match(r.stderr, re);
        assert.equal(r.stderr.trim().split("\n").length, 1, "one paragraph");
        assert.doesNotMatch(r.stderr, /^\s+at /m);
      }
      assert.ok(!existsSync(join(dir, "bad", "runs")), "nothing run");
      const u = await cli(["show", "fffff", "--store", store], { env });
      assert.equal(u.code, 1);
      assert.match(u.stderr, /no run or sweep matches 'fffff'/);
      assert.ok(u.stderr.includes(id.slice(0, 12)), "lists the sweeps");
      const noSweeps = await cli(["report", "fffff", "--store", join(dir, "fresh2")], { env });
      assert.equal(noSweeps.code, 1);
      assert.match(noSweeps.stderr, /no run matches 'fffff'/);
    });
  } finally {
    await rm(dir);
  }
});

Deno.test("sweep report script: CLIENT_JS unchanged, band support only in sweep pages", () => {
  assert.ok(!CLIENT_JS.includes("opts.bands"));
  assert.ok(SWEEP_CLIENT_JS.includes("opts.bands"));
  assert.ok(SWEEP_CLIENT_JS.startsWith(CLIENT_JS.slice(0, 200)));
  // Both parse as JavaScript (no browser needed to catch a syntax error).
  new Function(CLIENT_JS);
  new Function(SWEEP_CLIENT_JS);
});

Deno.test("sweep: Ctrl-C in the second seed records 'interrupted'; the same command resumes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-sweep-" });
  const store = join(dir, "s");
  const manifest = join(dir, "m.yaml");
  await Deno.writeTextFile(manifest, MANIFEST);
  try {
    const { code, stderr: err } = await interruptCli(
      ["exp", manifest, "--store", store, "--seeds", "1,2", "--progress", "plain", "--no-report"],
      /^seed 2 \(2 of 2\)$[^]*^rl {2}1\/3/m,
      { env: { ...env, ARPO_TEST_GENERATE_MS: "40" } },
    );
    assert.equal(code, 130, err);
    assert.match(err, /sweep seed 2 \(2 of 2\): run [0-9a-f]{12}, stage 'rl' was interrupted/);
    assert.doesNotMatch(err, /^\s+at /m);

    const ids = [...Deno.readDirSync(join(store, "sweeps"))].map((e) => e.name.slice(0, -5));
    assert.equal(ids.length, 1);
    const rec = JSON.parse(await Deno.readTextFile(join(store, "sweeps", `${ids[0]}.json`)));
    assert.equal(rec.status, "interrupted");
    assert.deepEqual(rec.runs.map((r: { status: string }) => r.status), [
      "complete",
      "interrupted",
    ]);
    assert.deepEqual(rec.aggregate.seeds, [1], "the aggregate of the complete runs");
    const show = await cli(["show", ids[0].slice(0, 8), "--store", store], { env });
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^status +interrupted: seed 2 \(2 of 2\)/m);
    assert.match(show.stdout, /^ {2}2 +- +interrupted +0 +error: /m);

    const again = await cli(["exp", manifest, "--store", store, "--seeds", "1,2", "--json"], {
      env,
    });
    assert.equal(again.code, 0, again.stderr);
    const j = JSON.parse(again.stdout);
    assert.equal(j.sweepId, ids[0]);
    assert.equal(j.status, "complete");
    assert.deepEqual(j.runs[0].computed, [], "seed 1 reused");
    assert.match(again.stderr, /stage rl \(rl\): resumed/);
    assert.deepEqual(j.aggregate.seeds, [1, 2]);
  } finally {
    await rm(dir);
  }
});
