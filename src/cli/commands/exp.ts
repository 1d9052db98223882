/**
 * `deno task exp <manifest>`: run a manifest (progress on stderr), write its HTML report, then
 * print the stage table, key metrics, the run id and where its record and report are.
 */
import { loadManifest, parseManifest, type ResolvedManifest } from "../../manifest/mod.ts";
import { optionDefaults } from "../../manifest/option_table.ts";
import { splitOverlapWarnings } from "../../run/split_overlap.ts";
import type { StageKind } from "../../run/stages.ts";
import { loadExtensions } from "../../run/builtin.ts";
import { createReporter } from "../../run/progress.ts";
import { planManifest, runManifest } from "../../run/runner.ts";
import { parseSeedList, runSweep } from "../../run/sweep.ts";
import type { LogLevel, ProgressStyle } from "../../run/progress.ts";
import { ArpoError } from "../../errors.ts";
import { join } from "node:path";
import type { RunRecord } from "../../store/records.ts";
import type { Store } from "../../store/store.ts";
import {
  identityWithoutSeed,
  SWEEP_FORMAT,
  sweepIdOf,
  type SweepRecord,
} from "../../store/sweeps.ts";
import { keyMetrics, stageTable, table } from "./_runs.ts";
import { aggregateTable, aggregateTitle, fmtSeeds } from "./_sweeps.ts";
import {
  interruptSignal,
  LOG_LEVELS,
  oneOf,
  openStore,
  parse,
  PROGRESS_STYLES,
} from "./_common.ts";

export const summary = "run a manifest (reusing finished stages); prints the run id";

const USAGE = "arpo exp <manifest.yaml> [--store DIR] [--set key=value]… [--force] [--json] " +
  "[--progress auto|plain|none] [--log-level quiet|info|debug] [--no-report] [--seeds LIST] " +
  "[--dry-run]";

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse("exp", USAGE, args, {
    json: { type: "boolean" },
    force: { type: "boolean" },
    set: { type: "string", multiple: true },
    progress: { type: "string" },
    "log-level": { type: "string" },
    "no-report": { type: "boolean", help: "do not write the HTML report" },
    seeds: {
      type: "string",
      arg: "LIST",
      help: "run once per seed (e.g. 1,2,3 or 1-5 or 1-3,7) and aggregate over seeds",
    },
    "dry-run": {
      type: "boolean",
      help: "print the run id and, per stage, reused / computed / resumed; computes nothing",
    },
  }, { notes: summary });
  if (positionals.length !== 1) {
    throw new ArpoError(
      `exp: expected one manifest file, found ${positionals.length}\nusage: ${USAGE}`,
      {
        exitCode: 2,
      },
    );
  }
  const progress = oneOf("progress", values.progress, PROGRESS_STYLES, "auto");
  const level = oneOf("log-level", values["log-level"], LOG_LEVELS, "info");
  if (values["dry-run"]) {
    return await dryRun(positionals[0], {
      set: values.set ?? [],
      seeds: values.seeds,
      store: values.store,
      force: values.force === true,
      json: values.json === true,
    });
  }
  if (values.seeds !== undefined) {
    return await runSeeds(positionals[0], values.seeds, {
      set: values.set ?? [],
      store: values.store,
      force: values.force === true,
      json: values.json === true,
      noReport: values["no-report"] === true,
      progress,
      level,
    });
  }
  const ext = await loadExtensions();
  const loaded = await loadManifest(positionals[0], {
    overrides: values.set ?? [],
    stages: ext.stages,
  });
  if (level !== "quiet") warnSplits(loaded.manifest, ext.stages);
  const store = openStore(values.store);
  await store.sweepTmp();
  const intr = interruptSignal();
  const reporter = createReporter(values.json ? "none" : progress, level);
  try {
    const r = await runManifest({
      store,
      view: loaded,
      ...ext,
      force: values.force,
      signal: intr.signal,
      reporter,
    });
    const report = values["no-report"] ? undefined : await writeReport(store, r.runId);
    const tracked = await writeTrackers(store, r.record, loaded.manifest);
    if (values.json) {
      console.log(JSON.stringify(
        {
          runId: r.runId,
          record: r.recordPath,
          store: store.root,
          status: r.record.status,
          computed: r.computed,
          reused: r.reused,
          stages: r.record.stages,
          report: report ?? null,
          tensorboard: tracked ?? null,
        },
        null,
        2,
      ));
    } else {
      for (const l of stageTable(r.record, "")) console.log(l);
      const key = await keyMetrics(store, r.record);
      if (key.length) console.log(["", ...key].join("\n"));
      console.log("");
      console.log(`run ${r.runId}`);
      console.log(`record ${r.recordPath}`);
      if (report) console.log(`report ${report}`);
      if (tracked) console.log(`tensorboard ${tracked}`);
      console.log(
        `stages: ${r.computed.length} computed${
          r.computed.length ? ` (${r.computed.join(", ")})` : ""
        }, ` +
          `${r.reused.length} reused${r.reused.length ? ` (${r.reused.join(", ")})` : ""}`,
      );
    }
    return 0;
  } finally {
    reporter.done(); // never leave a half-drawn progress line under an error message
    intr.dispose();
  }
}

/**
 * `exp M --dry-run`: load the plugins and the model as a run would (so the run id is the real
 * one), then say per stage what running would do; nothing is computed and no record written.
 */
async function dryRun(
  manifestPath: string,
  o: { set: string[]; seeds: string | undefined; store: unknown; force: boolean; json: boolean },
): Promise<number> {
  const ext = await loadExtensions();
  const seeds = o.seeds === undefined ? [undefined] : parseSeedList(o.seeds);
  const store = openStore(o.store);
  const plans = [];
  let sweepId: string | undefined;
  for (const seed of seeds) {
    const view = await loadManifest(manifestPath, {
      overrides: seed === undefined ? o.set : [...o.set, `seed=${seed}`],
      stages: ext.stages,
    });
    if (seed === seeds[0]) warnSplits(view.manifest, ext.stages);
    const { identity, ...plan } = await planManifest({ store, view, ...ext, force: o.force });
    if (seed === seeds[0] && seed !== undefined) {
      // The id `exp --seeds` would record: the first seed's identity without its seed.
      sweepId = sweepIdOf({
        format: SWEEP_FORMAT,
        base: identityWithoutSeed(identity),
        seeds: seeds as number[],
      });
    }
    plans.push({ seed: view.manifest.seed, ...plan });
  }
  if (o.json) {
    console.log(
      JSON.stringify(o.seeds === undefined ? plans[0] : { sweepId, runs: plans }, null, 2),
    );
    return 0;
  }
  for (const p of plans) {
    if (plans.length > 1) console.log(`seed ${p.seed}`);
    const rows = p.stages.map((s) => [
      s.name,
      s.kind,
      s.action === "resumed"
        ? `resumed (from step ${s.step})`
        : s.after
        ? `computed (after ${s.after.join(", ")})`
        : s.action,
      s.key ? s.key.slice(0, 12) : "-",
    ]);
    for (const l of table([["stage", "kind", "would be", "key"], ...rows])) console.log(l);
    const n = (a: string) => p.stages.filter((s) => s.action === a).length;
    console.log(`\nrun ${p.runId}`);
    console.log(
      `dry run: ${n("computed")} to compute, ${n("resumed")} to resume, ${n("reused")} reused; ` +
        "nothing was computed",
    );
    if (plans.length > 1) console.log("");
  }
  if (sweepId !== undefined) console.log(`sweep ${sweepId}`);
  return 0;
}

/** Warnings (stderr) for stages that train on a split another stage measures. */
function warnSplits(manifest: ResolvedManifest, kinds: readonly StageKind[]): void {
  for (const w of splitOverlapWarnings(manifest, kinds)) console.error(`warning: ${w}`);
}

/**
 * `runtime.trackers`: the run's metrics as TensorBoard event files under <store>/tensorboard/
 * (the directory to give `tensorboard --logdir`); a failure there is a warning.
 */
async function writeTrackers(
  store: Store,
  rec: RunRecord,
  manifest: ResolvedManifest,
): Promise<string | undefined> {
  if (!manifest.runtime.trackers?.includes("tensorboard")) return undefined;
  try {
    const { writeTensorboard } = await import("../../trackers/tensorboard.ts");
    const dir = join(store.root, "tensorboard");
    await writeTensorboard(store, rec, dir);
    return dir;
  } catch (e) {
    console.error(
      `warning: the TensorBoard events of run ${rec.id.slice(0, 12)} were not written: ${
        e instanceof Error ? e.message : String(e)
      }`,
    );
    return undefined;
  }
}

/** The run's HTML report (src/report/); a failure there is a warning, not a failed run. */
async function writeReport(store: Store, runId: string): Promise<string | undefined> {
  try {
    const { writeRunReport } = await import("../../report/write.ts");
    return (await writeRunReport(store, [runId], { build: await reportDefaults() })).path;
  } catch (e) {
    console.error(
      `warning: the report of run ${runId.slice(0, 12)} was not written: ${
        e instanceof Error ? e.message : String(e)
      }`,
    );
    return undefined;
  }
}

/** The stage kinds' option defaults, so the report folds settings left at them away. */
async function reportDefaults() {
  return { defaults: optionDefaults((await loadExtensions()).stages) };
}

/** The key path of a `--set` override, as written before `=`. */
const overrideKey = (o: string) => o.slice(0, Math.max(0, o.indexOf("="))).trim();

/**
 * `exp M --seeds LIST`: the manifest once per seed (like `--set seed=N`), the sweep record, the
 * sweep report, and the aggregate table (or `--json`, the sweep summary).
 */
async function runSeeds(
  manifestPath: string,
  seedsText: string,
  o: {
    set: string[];
    store: unknown;
    force: boolean;
    json: boolean;
    noReport: boolean;
    progress: ProgressStyle;
    level: LogLevel;
  },
): Promise<number> {
  const seeds = parseSeedList(seedsText);
  const clash = o.set.find((s) => overrideKey(s) === "seed");
  if (clash !== undefined) {
    throw new ArpoError(
      `exp: --seeds ${seedsText} sets the seed of every run, and --set ${clash} sets it too; ` +
        `give one of them (a single seed: --set seed=N; several: --seeds ${seedsText})`,
      { exitCode: 2 },
    );
  }
  const ext = await loadExtensions();
  // The first load reads and checks the file (errors name it); the other seeds parse its text.
  const first = await loadManifest(manifestPath, {
    overrides: [...o.set, `seed=${seeds[0]}`],
    stages: ext.stages,
  });
  if (o.level !== "quiet") warnSplits(first.manifest, ext.stages);
  const store = openStore(o.store);
  await store.sweepTmp();
  const intr = interruptSignal();
  const reporter = createReporter(o.json ? "none" : o.progress, o.level);
  const say = o.level !== "quiet";
  try {
    const r = await runSweep({
      store,
      seeds,
      overrides: o.set,
      view: (seed) =>
        seed === seeds[0] ? first : parseManifest(first.text, manifestPath, {
          overrides: [...o.set, `seed=${seed}`],
          stages: ext.stages,
          baseDir: first.baseDir,
        }),
      onSeed: (seed, i, n) => {
        reporter.done();
        if (say) console.error(`seed ${seed} (${i + 1} of ${n})`);
      },
      ...ext,
      force: o.force,
      signal: intr.signal,
      reporter,
    });
    const report = o.noReport ? undefined : await writeSweepReportSafe(store, r.record);
    for (const x of r.runs) await writeTrackers(store, x.result.record, first.manifest);
    const runs = r.runs.map(({ seed, result }) => ({
      seed,
      runId: result.runId,
      record: result.recordPath,
      status: result.record.status,
      computed: result.computed,
      reused: result.reused,
    }));
    if (o.json) {
      console.log(JSON.stringify(
        {
          sweepId: r.sweepId,
          record: r.recordPath,
          store: store.root,
          name: r.record.name,
          status: r.record.status,
          seeds: r.record.seeds,
          runs,
          computed: runs.flatMap((x) => x.computed.map((s) => `${x.seed}:${s}`)),
          aggregate: r.record.aggregate ?? null,
          report: report ?? null,
        },
        null,
        2,
      ));
      return 0;
    }
    for (
      const l of table([
        ["seed", "run", "status", "computed", "reused"],
        ...runs.map((x) => [
          String(x.seed),
          x.runId.slice(0, 12),
          x.status,
          x.computed.join(", ") || "-",
          x.reused.join(", ") || "-",
        ]),
      ])
    ) console.log(l);
    if (r.record.aggregate) {
      console.log("");
      console.log(aggregateTitle(r.record.aggregate));
      for (const l of aggregateTable(r.record.aggregate, "")) console.log(l);
    }
    const computed = runs.reduce((a, x) => a + x.computed.length, 0);
    const reused = runs.reduce((a, x) => a + x.reused.length, 0);
    console.log("");
    console.log(`sweep ${r.sweepId}`);
    console.log(`seeds ${fmtSeeds(r.record.seeds)}`);
    console.log(`record ${r.recordPath}`);
    if (report) console.log(`report ${report}`);
    console.log(`stages: ${computed} computed, ${reused} reused (over ${runs.length} runs)`);
    return 0;
  } finally {
    reporter.done();
    intr.dispose();
  }
}

/** The sweep's HTML report; a failure there is a warning, not a failed sweep. */
async function writeSweepReportSafe(
  store: Store,
  sweep: SweepRecord,
): Promise<string | undefined> {
  try {
    const { writeSweepReport } = await import("../../report/write.ts");
    return (await writeSweepReport(store, sweep, { build: await reportDefaults() })).path;
  } catch (e) {
    console.error(
      `warning: the report of sweep ${sweep.id.slice(0, 12)} was not written: ${
        e instanceof Error ? e.message : String(e)
      }`,
    );
    return undefined;
  }
}
