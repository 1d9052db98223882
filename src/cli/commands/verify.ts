/**
 * `deno task arpo verify <run>`: re-execute the run from its archive into a scratch store and
 * compare every output digest, judged by the numerics fingerprints (run/reexec.ts):
 *
 * - same fingerprint, different bytes: a determinism bug; exit 1 naming the first divergent
 *   output;
 * - other numerics (native): says so first, re-executes, and compares each eval metric with the
 *   archived one (paired over questions, bootstrap interval); exit 0 only when every metric
 *   replicates ("replicated, not bit-identical");
 * - a portable run: bit-identical on any machine, or exit 1.
 */
import { resolveRunId } from "../../store/records.ts";
import { loadExtensions } from "../../run/builtin.ts";
import { createReporter } from "../../run/progress.ts";
import { type NumericsCheck, type VerifyResult, verifyRun } from "../../run/reexec.ts";
import { describeNumerics } from "../../run/numerics_fingerprint.ts";
import type { MetricReplication } from "../../run/replication.ts";
import { table } from "./_runs.ts";
import { interruptSignal, openStore, parseReexec, REEXEC_FLAGS_USAGE } from "./_common.ts";

export const summary = "re-execute a run into a scratch store and compare every output digest";

const USAGE = "deno task arpo verify <run-id-prefix> [--store DIR] [--json] [--keep] " +
  REEXEC_FLAGS_USAGE;

export async function run(args: string[]): Promise<number> {
  const { values, runId, liveTools, progress, level } = parseReexec("verify", USAGE, args, {
    keep: "keep the scratch store the run was re-executed into (its path is printed)",
  });
  const ext = await loadExtensions();
  const store = openStore(values.store);
  const id = await resolveRunId(store, runId);
  const intr = interruptSignal();
  try {
    const r = await verifyRun(store, id, {
      ...ext,
      keep: values.keep === true,
      signal: intr.signal,
      liveTools,
      reporter: createReporter(values.json ? "none" : progress, level),
      // Said before the re-execution, which may take a while.
      onNumerics: values.json ? undefined : (c) => {
        for (const l of numericsLines(id, c)) console.log(l);
      },
    });
    if (values.json) {
      console.log(JSON.stringify({ ...r, identical: r.divergences.length === 0 }, null, 2));
    } else {
      for (const l of verdictLines(id, r)) console.log(l);
    }
    if (values.keep) console.log(`scratch store kept at ${r.scratch}`);
    return r.verdict === "identical" || r.verdict === "replicated" ? 0 : 1;
  } finally {
    intr.dispose();
  }
}

/** What the fingerprints say, before re-executing. */
function numericsLines(id: string, c: NumericsCheck): string[] {
  const v = (x: unknown) =>
    typeof x === "string" && /^[0-9a-f]{64}$/.test(x) ? x.slice(0, 16) : JSON.stringify(x);
  const diffs = c.differences.map((d) => `${d.field} ${v(d.a)} → ${v(d.b)}`).join("; ");
  const lines: string[] = [];
  if (c.mode === "portable") {
    lines.push(
      `run ${id}: portable numerics — every output must be bit-identical on any machine` +
        (diffs ? ` (archived under other numerics: ${diffs})` : ""),
    );
  } else if (c.other.length) {
    lines.push(
      `run ${id}: numerics differ from the archived run's (${diffs}); stages computed under ` +
        `other numerics: ${c.other.join(", ")}. Bit-identity is not expected: re-executing and ` +
        "comparing each eval metric statistically",
    );
  } else if (c.unknown.length) {
    lines.push(
      `run ${id}: the record has no numerics fingerprint for ${c.unknown.join(", ")} (made ` +
        "before fingerprints were recorded); bit-identity is required",
    );
  }
  lines.push(`numerics here: ${describeNumerics(c.here)}`);
  return lines;
}

const f3 = (x: number) => (Object.is(x, -0) ? 0 : x).toFixed(3);

function metricTable(rows: MetricReplication[]): string[] {
  return table([
    ["stage", "metric", "archived", "re-executed", "difference", "95% CI", ""],
    ...rows.map((m) => [
      m.stage,
      m.metric,
      f3(m.a),
      f3(m.b),
      (m.difference >= 0 ? "+" : "") + f3(m.difference),
      `[${f3(m.lo)}, ${f3(m.hi)}]`,
      m.replicates ? "replicates" : "SHIFTED",
    ]),
  ], "  ");
}

/** The conclusion, after re-executing. */
function verdictLines(id: string, r: VerifyResult): string[] {
  const more = (n: number) => (n > 1 ? ` (${n - 1} more difference(s))` : "");
  switch (r.verdict) {
    case "identical":
      return [`run ${id}: verified — all ${r.outputs} output digests identical on re-execution`];
    case "determinism-bug": {
      const why = r.numerics.mode === "portable"
        ? "a portable run must give the same bytes on any machine"
        : "same numerics fingerprint and the same inputs, different bytes: a determinism bug";
      return [`run ${id}: NOT reproduced — ${r.bugs[0].message} (${why})${more(r.bugs.length)}`];
    }
    case "replicated":
      return [
        `run ${id}: replicated, not bit-identical — ${r.drift.length} output(s) differ, as ` +
        "other numerics may make them; " +
        (r.metrics.length
          ? `every eval metric replicates (paired over questions, ` +
            `${Math.round(r.metrics[0].confidence * 100)}% bootstrap interval of ` +
            "re-executed − archived contains 0)"
          : "every eval stage re-executed to the same bytes"),
        ...(r.metrics.length ? metricTable(r.metrics) : []),
      ];
    case "not-replicated": {
      const shifted = r.metrics.filter((m) => !m.replicates);
      const why = shifted.length
        ? shifted.map((m) =>
          `${m.stage} ${m.metric} shifted by ${f3(m.difference)} [${f3(m.lo)}, ${f3(m.hi)}]`
        ).join("; ")
        : r.unjudged.join("; ");
      return [
        `run ${id}: NOT replicated under other numerics — ${why}` +
        (shifted.length ? " (the interval excludes 0)" : ""),
        ...(r.metrics.length ? metricTable(r.metrics) : []),
      ];
    }
  }
}
