/**
 * `deno task arpo diff <a> <b>`: which inputs differ (manifest keys, plugins, data, model…) and
 * outputs, then the stage metrics that differ (stages matched by name) with b − a.
 */
import { readRecord, resolveRunId } from "../../store/records.ts";
import { diffRuns } from "../../run/diff.ts";
import { asFingerprint, sameNumerics } from "../../run/numerics_fingerprint.ts";
import { ArpoError } from "../../errors.ts";
import { openStore, parse } from "./_common.ts";
import { fmtNum, plannedStages, table } from "./_runs.ts";
import type { Json } from "../../store/canonical.ts";
import type { RunRecord } from "../../store/records.ts";

export const summary = "compare two runs' inputs and outputs (exit 1 when they differ)";

const USAGE = "deno task arpo diff <run-a> <run-b> [--store DIR] [--json]";

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse("diff", USAGE, args, { json: { type: "boolean" } });
  if (positionals.length !== 2) {
    throw new ArpoError(`diff: expected two run ids\nusage: ${USAGE}`, { exitCode: 2 });
  }
  const store = openStore(values.store);
  const a = await readRecord(store, await resolveRunId(store, positionals[0]));
  const b = await readRecord(store, await resolveRunId(store, positionals[1]));
  const diffs = diffRuns(a, b);
  const metrics = metricDiffs(a, b);
  const na = asFingerprint(a.numerics), nb = asFingerprint(b.numerics);
  // Whether the two computed alike (null when a record has no fingerprint).
  const alike = na && nb ? sameNumerics(na, nb) : null;
  if (values.json) {
    console.log(
      JSON.stringify(
        { a: a.id, b: b.id, differences: diffs, metrics, sameNumerics: alike },
        null,
        2,
      ),
    );
  } else {
    console.log(`--- ${a.id.slice(0, 12)} ${a.name}\n+++ ${b.id.slice(0, 12)} ${b.name}`);
    if (!diffs.length) console.log("no differences");
    for (const d of diffs) {
      const v = (x: unknown) => (x === undefined ? "(absent)" : JSON.stringify(x));
      console.log(`${d.section.padEnd(9)} ${d.path || "(root)"}: ${v(d.a)} → ${v(d.b)}`);
    }
    if (alike !== null) {
      console.log(
        alike
          ? "numerics  computed alike (same engine, provider, threads and canary digest)"
          : "numerics  computed under different numerics: equal inputs may still give outputs " +
            "that differ in rounding (arpo verify judges those statistically)",
      );
    }
    if (metrics.length) {
      console.log("metrics (per stage)");
      const rows = metrics.map((m) => [
        m.stage,
        m.metric,
        fmtNum(m.a),
        fmtNum(m.b),
        typeof m.a === "number" && typeof m.b === "number" ? signed(m.b - m.a) : "",
      ]);
      for (const l of table([["stage", "metric", "a", "b", "b − a"], ...rows], "  ")) {
        console.log(l);
      }
    }
  }
  return diffs.length ? 1 : 0;
}

export interface MetricDiff {
  stage: string;
  metric: string;
  a: Json | undefined;
  b: Json | undefined;
}

/** Record metrics that differ, per stage (by name; a stage only one run has shows as absent). */
export function metricDiffs(a: RunRecord, b: RunRecord): MetricDiff[] {
  const names = [...plannedStages(a), ...plannedStages(b)].map((s) => s.name);
  const out: MetricDiff[] = [];
  for (const stage of [...new Set(names)]) {
    const ma = a.stages[stage]?.metrics ?? {}, mb = b.stages[stage]?.metrics ?? {};
    for (const metric of [...new Set([...Object.keys(ma), ...Object.keys(mb)])]) {
      if (JSON.stringify(ma[metric]) !== JSON.stringify(mb[metric])) {
        out.push({ stage, metric, a: ma[metric], b: mb[metric] });
      }
    }
  }
  return out;
}

function signed(x: number): string {
  return (x > 0 ? "+" : x < 0 ? "−" : "±") + fmtNum(Math.abs(x));
}
