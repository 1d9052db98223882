/**
 * `deno task exp <manifest>`: run a manifest (progress on stderr), write its HTML report, then
 * print the stage table, key metrics, the run id and where its record and report are.
 */
import { loadManifest } from "../../manifest/mod.ts";
import { loadExtensions } from "../../run/builtin.ts";
import { createReporter } from "../../run/progress.ts";
import { runManifest } from "../../run/runner.ts";
import { ArpoError } from "../../errors.ts";
import type { Store } from "../../store/store.ts";
import { keyMetrics, stageTable } from "./_runs.ts";
import {
  interruptSignal,
  LOG_LEVELS,
  oneOf,
  openStore,
  parse,
  PROGRESS_STYLES,
} from "./_common.ts";

export const summary = "run a manifest (reusing finished stages); prints the run id";

const USAGE = "deno task exp <manifest.yaml> [--store DIR] [--set key=value]… [--force] [--json] " +
  "[--progress auto|plain|none] [--log-level quiet|info|debug] [--no-report]";

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse("exp", USAGE, args, {
    json: { type: "boolean" },
    force: { type: "boolean" },
    set: { type: "string", multiple: true },
    progress: { type: "string" },
    "log-level": { type: "string" },
    "no-report": { type: "boolean" },
  });
  if (values.help) {
    console.log(`usage: ${USAGE}`);
    return 0;
  }
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
  const ext = await loadExtensions();
  const loaded = await loadManifest(positionals[0], {
    overrides: values.set ?? [],
    stages: ext.stages,
  });
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

/** The run's HTML report (src/report/); a failure there is a warning, not a failed run. */
async function writeReport(store: Store, runId: string): Promise<string | undefined> {
  try {
    const { writeRunReport } = await import("../../report/write.ts");
    return (await writeRunReport(store, [runId])).path;
  } catch (e) {
    console.error(
      `warning: the report of run ${runId.slice(0, 12)} was not written: ${
        e instanceof Error ? e.message : String(e)
      }`,
    );
    return undefined;
  }
}
