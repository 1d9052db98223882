/**
 * Writing reports next to the store: <store>/reports/<run-id>.html for one run,
 * <store>/reports/compare-<id12>-<id12>….html for a comparison. The HTML is a derived view, not
 * part of any run's identity, so it lives outside objects/ and is simply replaced when rebuilt.
 */
import { dirname, join } from "node:path";
import { ArpoError } from "../errors.ts";
import { readRecord } from "../store/records.ts";
import type { SweepRecord } from "../store/sweeps.ts";
import { atomicWrite, type Store } from "../store/store.ts";
import { type BuildOptions, buildReportData } from "./build.ts";
import type { ReportData, SweepInfo } from "./data.ts";
import { type RenderOptions, renderReport, renderSweepReport } from "./render.ts";

/** Where the report of these runs goes by default. */
export function reportPath(store: Store, runIds: readonly string[]): string {
  const name = runIds.length === 1
    ? runIds[0]
    : "compare-" + runIds.map((id) => id.slice(0, 12)).join("-");
  return join(store.root, "reports", `${name}.html`);
}

/**
 * Write HTML atomically: a temp file beside the target (same file system), then rename, so a
 * reader never sees half a report.
 */
export async function writeHtml(path: string, html: string): Promise<void> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true });
  await atomicWrite(dir, path, new TextEncoder().encode(html));
}

/**
 * Build and write the report of one or more runs (ids already resolved); returns the path and
 * the data it was rendered from. `arpo exp` calls this after a run, `arpo report` on demand.
 */
export async function writeRunReport(
  store: Store,
  runIds: readonly string[],
  opts: { out?: string; build?: BuildOptions; render?: RenderOptions } = {},
): Promise<{ path: string; data: ReportData[] }> {
  const data: ReportData[] = [];
  for (const id of runIds) {
    data.push(await buildReportData(store, await readRecord(store, id), opts.build));
  }
  const path = opts.out ?? reportPath(store, runIds);
  await writeHtml(path, renderReport(data, opts.render));
  return { path, data };
}

/** Where a sweep's report goes by default: <store>/reports/sweep-<sweep-id>.html. */
export function sweepReportPath(store: Store, sweepId: string): string {
  return join(store.root, "reports", `sweep-${sweepId}.html`);
}

/**
 * Build and write the report of a sweep: its complete runs overlaid by seed, training curves with
 * a min–max band over seeds, and the aggregate table of the record.
 */
export async function writeSweepReport(
  store: Store,
  sweep: SweepRecord,
  opts: { out?: string; build?: BuildOptions; render?: RenderOptions } = {},
): Promise<{ path: string; data: ReportData[] }> {
  const data: ReportData[] = [];
  for (const r of sweep.runs) {
    if (r.status !== "complete" || !r.runId) continue;
    data.push(await buildReportData(store, await readRecord(store, r.runId), opts.build));
  }
  if (!data.length) {
    throw new ArpoError(
      `sweep ${sweep.id.slice(0, 12)} has no complete run to report (status ${sweep.status}` +
        `${sweep.error ? `: ${sweep.error}` : ""})`,
    );
  }
  const info: SweepInfo = {
    id: sweep.id,
    name: sweep.name,
    status: sweep.status,
    seeds: sweep.seeds,
    runs: sweep.runs.map((r) => ({ seed: r.seed, id: r.runId, status: r.status })),
  };
  if (sweep.description) info.description = sweep.description;
  if (sweep.aggregate) info.aggregate = sweep.aggregate;
  const path = opts.out ?? sweepReportPath(store, sweep.id);
  await writeHtml(path, renderSweepReport(data, info, opts.render));
  return { path, data };
}
