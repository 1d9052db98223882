/**
 * `deno task arpo show <run>`: a run's inputs, its stage table (status, reused or computed, wall
 * time, headline metrics), key metrics per stage, outputs and report; reports damaged objects.
 */
import { readRecord, type RunRecord } from "../../store/records.ts";
import { asFingerprint, describeNumerics, sameNumerics } from "../../run/numerics_fingerprint.ts";
import { readSweep, sweepPath } from "../../store/sweeps.ts";
import type { Store } from "../../store/store.ts";
import { sweepAggregate } from "../../run/sweep.ts";
import { checkIntegrity } from "../../run/reexec.ts";
import { ArpoError } from "../../errors.ts";
import { openStore, parse, short } from "./_common.ts";
import { fmtDate, fmtMs, keyMetrics, reportFor, runDate, stageTable, table } from "./_runs.ts";
import {
  aggregateTable,
  aggregateTitle,
  fmtSeeds,
  resolveTarget,
  sweepReportFor,
  sweepRunRows,
} from "./_sweeps.ts";

export const summary =
  "show a run (manifest, plugins, data, model, stages, outputs; checks objects) or a sweep";

const USAGE = "deno task arpo show <run-or-sweep-id-prefix> [--store DIR] [--json]";

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse("show", USAGE, args, { json: { type: "boolean" } });
  if (positionals.length !== 1) {
    throw new ArpoError(`show: expected one run or sweep id\nusage: ${USAGE}`, { exitCode: 2 });
  }
  const store = openStore(values.store);
  const target = await resolveTarget(store, positionals[0]);
  if (target.kind === "sweep") return await showSweep(store, target.id, values.json === true);
  const id = target.id;
  const rec = await readRecord(store, id);
  const bad = await checkIntegrity(store, rec);
  if (values.json) {
    const report = await reportFor(store, rec);
    console.log(JSON.stringify({ ...rec, report: report ?? null, integrity: bad }, null, 2));
  } else {
    const m = rec.identity.manifest as Record<string, unknown>;
    console.log(`run      ${rec.id}`);
    console.log(`name     ${rec.name}${m.description ? ` — ${m.description}` : ""}`);
    console.log(`status   ${rec.status}${rec.error ? `: ${rec.error}` : ""}`);
    console.log(`record   ${store.metaPath("runs", id)}`);
    console.log(`seed     ${m.seed}`);
    const policy = (m.policy ?? {}) as Record<string, unknown>;
    const server = policy.server as { url?: string; model?: string } | undefined;
    console.log(
      `model    ${
        rec.identity.model ??
          (server
            ? `(server: ${server.model ?? "?"} at ${server.url ?? "?"}; not bit-reproducible)`
            : "(initialized: policy.init)")
      }`,
    );
    console.log(
      "runtime  " + Object.entries(rec.identity.runtime).map(([k, v]) => `${k} ${v}`).join(", "),
    );
    for (const l of numericsLines(rec)) console.log(l);
    console.log("plugins");
    for (const [name, d] of Object.entries(rec.identity.plugins)) {
      const src = rec.sources[name];
      const where = src?.kind === "npm"
        ? src.specifier
        : src
        ? `${src.entry}${localImportsNote(Object.keys(src.files).length - 1)}`
        : "";
      console.log(`  ${name.padEnd(16)} ${short(d)}  ${where}`);
    }
    const data = Object.entries(rec.identity.data);
    console.log(`data${data.length ? "" : "     (none)"}`);
    for (const [p, d] of data) console.log(`  ${short(d)}  ${p}`);
    const date = runDate(rec, (await Deno.stat(store.metaPath("runs", id))).mtime?.getTime() ?? 0);
    const total = rec.timings.total_ms;
    console.log(`date     ${fmtDate(date)} UTC${total ? `, wall ${fmtMs(total)}` : ""}`);
    console.log("stages");
    for (const l of stageTable(rec)) console.log(l);
    const key = await keyMetrics(store, rec);
    if (key.length) {
      console.log("metrics");
      for (const l of key) console.log(`  ${l}`);
    }
    console.log("outputs");
    for (const [name, s] of Object.entries(rec.stages)) {
      console.log(`  ${name}  key ${short(s.key)}`);
      for (const [o, d] of Object.entries(s.outputs)) console.log(`    ${o.padEnd(20)} ${d}`);
    }
    const report = await reportFor(store, rec);
    console.log(
      `report   ${report ?? `(none yet: deno task arpo report ${id.slice(0, 12)})`}`,
    );
  }
  if (bad.length) {
    for (const b of bad) {
      console.error(
        `error: run ${id.slice(0, 12)}: ${b.what} (object ${b.digest}) is ${b.state}` +
          (b.state === "damaged"
            ? ": its bytes no longer match its digest (tampering or disk damage)"
            : ""),
      );
    }
    return 1;
  }
  return 0;
}

/**
 * The numerics fingerprint of the record, and of each stage computed under other numerics (a
 * stage reused from a store another machine filled).
 */
function numericsLines(rec: RunRecord): string[] {
  const fp = asFingerprint(rec.numerics);
  const lines = [
    `numerics ${
      fp ? describeNumerics(fp) : "(not recorded: the run predates numerics fingerprints)"
    }`,
  ];
  for (const [name, st] of Object.entries(rec.stages)) {
    const s = asFingerprint(st.numerics);
    if (s && (!fp || !sameNumerics(s, fp))) {
      lines.push(`  stage ${name} was computed under other numerics: ${describeNumerics(s)}`);
    } else if (!s && st.reused && fp) {
      lines.push(`  stage ${name}: reused, with no record of the numerics it was computed with`);
    }
  }
  return lines;
}

function localImportsNote(n: number): string {
  return n ? ` (+${n} local import${n > 1 ? "s" : ""})` : "";
}

/**
 * A sweep: its manifest, seeds, status, the run of each seed and the aggregate over seeds (as
 * recorded; computed now from the complete runs when the record has none).
 */
async function showSweep(store: Store, id: string, json: boolean): Promise<number> {
  const rec = await readSweep(store, id);
  const agg = rec.aggregate ??
    (rec.runs.some((r) => r.status === "complete") ? await sweepAggregate(store, rec) : undefined);
  const report = await sweepReportFor(store, id);
  if (json) {
    console.log(JSON.stringify(
      { ...rec, aggregate: agg ?? null, recordPath: sweepPath(store, id), report: report ?? null },
      null,
      2,
    ));
    return 0;
  }
  console.log(`sweep    ${rec.id}`);
  console.log(`name     ${rec.name}${rec.description ? ` — ${rec.description}` : ""}`);
  console.log(`status   ${rec.status}${rec.error ? `: ${rec.error}` : ""}`);
  console.log(`record   ${sweepPath(store, id)}`);
  console.log(`manifest ${rec.manifestPath}`);
  if (rec.overrides.length) console.log(`set      ${rec.overrides.join(" ")}`);
  console.log(`seeds    ${fmtSeeds(rec.seeds)} (${rec.seeds.length})`);
  const started = rec.timings.started_unix_ms;
  if (typeof started === "number") {
    const total = rec.timings.total_ms;
    console.log(
      `date     ${fmtDate(new Date(started))} UTC${total ? `, wall ${fmtMs(total)}` : ""}`,
    );
  }
  console.log("runs");
  for (const l of table(await sweepRunRows(store, rec), "  ")) console.log(l);
  if (agg) {
    console.log(`aggregate ${aggregateTitle(agg)}`);
    for (const l of aggregateTable(agg, "  ")) console.log(l);
  }
  console.log(
    `report   ${report ?? `(none yet: deno task arpo report ${id.slice(0, 12)})`}`,
  );
  return 0;
}
