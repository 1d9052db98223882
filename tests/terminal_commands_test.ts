/**
 * What a user reads in the terminal, through the CLI with the real eval, probe and rl dry-run
 * stages (the scripted policy stands in for a model: tests/fixtures/terminal/preload.ts): exp's
 * stage table, key metrics and report path; show; ls; diff with metric differences; and Ctrl-C in
 * the middle of a stage, then the same command resuming to the outputs of an uninterrupted run.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cli, interruptCli, rm } from "./fixtures/helpers.ts";

const FX = fileURLToPath(new URL("./fixtures/terminal/", import.meta.url));
const MANIFEST = join(FX, "stages.yaml");
const env = { ARPO_PRELOAD: join(FX, "preload.ts") };

Deno.test("terminal: exp, show, ls and diff print stage tables and key metrics", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-term-" });
  const store = join(dir, "s");
  try {
    const a = await cli(["exp", MANIFEST, "--store", store, "--progress", "plain"], { env });
    assert.equal(a.code, 0, a.stderr);
    const id = /^run ([0-9a-f]{64})$/m.exec(a.stdout)![1];
    // The stage table, then each stage's key metrics, then id, record and report.
    assert.match(a.stdout, /^stage +kind +status +source +wall +metrics$/m);
    assert.match(a.stdout, /^eval +eval +done +computed +\S+ +accuracy [\d.]+, pass@2 [\d.]+/m);
    assert.match(a.stdout, /^rl +rl +done +computed +\S+ +steps 4, last reward/m);
    assert.match(a.stdout, /^ {2}accuracy +[\d.]+ {2}\[[\d.]+, [\d.]+\] 95% CI$/m);
    assert.match(a.stdout, /^ {2}pass@2 /m);
    assert.match(a.stdout, /^ {2}tool calls\/trajectory +[\d.]+ {2}\(errors 0/m);
    assert.match(a.stdout, /^rl \(rl\): dry run/m);
    assert.match(a.stdout, /^ {2}reward \(step 1 → 4\) +[\d.]+ → [\d.]+$/m);
    assert.match(a.stdout, /^ {2}branches\/question +[\d.]+ → [\d.]+$/m);
    const report = /^report (.+\.html)$/m.exec(a.stdout)![1];
    assert.ok(existsSync(report), report);
    // Plain progress: lines, no control codes; rates and the moving reward shown.
    assert.ok(!a.stderr.includes("\r") && !a.stderr.includes("\x1b"), "no control codes");
    assert.match(a.stderr, /^rl {2}4\/4 {2}100% .*rollouts\/s .*tool calls\/s {2}reward [\d.]+/m);
    assert.match(a.stderr, /^stage rl \(rl\): done in \S+s$/m);

    const again = await cli(["exp", MANIFEST, "--store", store, "--progress", "none"], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^eval +eval +done +reused +\(cached\)/m);
    assert.equal(
      again.stderr.trim(),
      ["eval", "probe", "rl"].map((s) => `stage ${s} (${s}): reused`).join("\n"),
    );

    const show = await cli(["show", id.slice(0, 8), "--store", store], { env });
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^date +\d{4}-\d\d-\d\d \d\d:\d\d UTC/m);
    assert.match(show.stdout, /^ {2}probe +probe +done +\w+ +\S+ +H after result 0-7/m);
    assert.match(show.stdout, /^metrics$/m);
    assert.match(show.stdout, /^ {4}accuracy +[\d.]+ {2}\[/m);
    assert.match(show.stdout, /^ {4}0-7 +[\d.]+ +[\d.]+$/m, "probe entropy windows");
    assert.equal(/^report +(\S+)$/m.exec(show.stdout)?.[1], report);
    const shown = JSON.parse((await cli(["show", id, "--store", store, "--json"], { env })).stdout);
    assert.equal(shown.report, report);

    const b = await cli(["exp", MANIFEST, "--store", store, "--set", "seed=4", "--json"], { env });
    assert.equal(b.code, 0, b.stderr);
    const id2 = JSON.parse(b.stdout).runId as string;

    const ls = await cli(["ls", "--store", store], { env });
    assert.equal(ls.code, 0, ls.stderr);
    const lines = ls.stdout.trim().split("\n");
    assert.match(lines[0], /^run +date \(UTC\) +status +stages +name +headline$/);
    assert.equal(lines.length, 3);
    for (const run of [id, id2]) {
      assert.match(
        ls.stdout,
        new RegExp(
          `^${run.slice(0, 12)} +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d +complete +3 +` +
            `terminal-stages +eval accuracy [\\d.]+$`,
          "m",
        ),
      );
    }
    const lj = JSON.parse((await cli(["ls", "--store", store, "--json"], { env })).stdout);
    assert.equal(lj[0].id, id2, "newest first");
    assert.ok(!Number.isNaN(Date.parse(lj[0].date)));

    const d = await cli(["diff", id, id2, "--store", store], { env });
    assert.equal(d.code, 1);
    assert.match(d.stdout, /^manifest +seed: 3 → 4$/m);
    assert.match(d.stdout, /^metrics \(per stage\)$/m);
    assert.match(d.stdout, /^ {2}stage +metric +a +b +b − a$/m);
    const dj = JSON.parse(
      (await cli(["diff", id, id2, "--store", store, "--json"], { env })).stdout,
    );
    assert.ok(dj.metrics.length > 0);
    for (const m of dj.metrics) {
      assert.notDeepEqual(m.a, m.b);
      if (typeof m.a === "number" && typeof m.b === "number") {
        const row = new RegExp(
          `^ {2}${m.stage} +${m.metric.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&")} `,
          "m",
        );
        assert.match(d.stdout, row);
      }
    }
    const same = await cli(["diff", id, id, "--store", store], { env });
    assert.equal(same.code, 0);
    assert.doesNotMatch(same.stdout, /metrics/);
  } finally {
    await rm(dir);
  }
});

Deno.test("terminal: Ctrl-C mid-stage records 'interrupted'; exp again resumes to identical outputs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-term-" });
  try {
    const store = join(dir, "s");
    // Slow generation, so the rl stage is interrupted between its steps' rollouts.
    const { code, stderr: err } = await interruptCli(
      ["exp", MANIFEST, "--store", store, "--progress", "plain", "--no-report"],
      /^rl {2}1\/4/m,
      { env: { ...env, ARPO_TEST_GENERATE_MS: "50" } },
    );
    assert.equal(code, 130, err);
    assert.match(err, /stage 'rl' was interrupted; run the same command again to resume/);
    assert.doesNotMatch(err, /^\s+at /m, "no stack trace");

    const ids = [...Deno.readDirSync(join(store, "runs"))].map((e) => e.name.slice(0, -5));
    assert.equal(ids.length, 1);
    const show = await cli(["show", ids[0], "--store", store], { env });
    assert.match(show.stdout, /^status +interrupted: /m);
    assert.match(show.stdout, /^ {2}eval +eval +done +computed/m);
    assert.match(show.stdout, /^ {2}rl +rl +interrupted +- +-/m);
    const ls = await cli(["ls", "--store", store], { env });
    assert.match(ls.stdout, / interrupted +2 +terminal-stages/);

    // The same command resumes: earlier stages reused, rl from its checkpoint (step 1 not redone).
    const again = await cli(["exp", MANIFEST, "--store", store, "--progress", "plain", "--json"], {
      env,
    });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /stage eval \(eval\): reused/);
    assert.match(again.stderr, /stage rl \(rl\): resumed/);
    assert.doesNotMatch(again.stderr, /^rl {2}1\/4/m);
    const resumed = JSON.parse(again.stdout);
    assert.equal(resumed.status, "complete");

    // An uninterrupted run of the same manifest elsewhere: same id, identical outputs.
    const other = join(dir, "other");
    const clean = await cli(["exp", MANIFEST, "--store", other, "--json", "--no-report"], { env });
    assert.equal(clean.code, 0, clean.stderr);
    const fresh = JSON.parse(clean.stdout);
    assert.equal(fresh.runId, resumed.runId);
    for (const s of ["eval", "probe", "rl"]) {
      assert.deepEqual(resumed.stages[s].outputs, fresh.stages[s].outputs, s);
      assert.deepEqual(resumed.stages[s].metrics, fresh.stages[s].metrics, s);
    }
  } finally {
    await rm(dir);
  }
});
