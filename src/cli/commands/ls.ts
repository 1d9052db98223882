/**
 * `deno task arpo ls`: the runs in the store, newest first: name, date, status, headline metric;
 * then the sweeps (one manifest over several seeds), when there are any.
 */
import { readRecord } from "../../store/records.ts";
import { listSweeps, readSweep, sweepPath } from "../../store/sweeps.ts";
import { fmtSeeds, sweepHeadline } from "./_sweeps.ts";
import { openStore, parse } from "./_common.ts";
import { fmtDate, runDate, runHeadline, table } from "./_runs.ts";

export const summary =
  "list the runs and sweeps in the store (name, date, status, headline metric)";

const USAGE = "deno task arpo ls [--store DIR] [--json]";

export async function run(args: string[]): Promise<number> {
  const { values } = parse("ls", USAGE, args, { json: { type: "boolean" } });
  const store = openStore(values.store);
  const rows = [];
  for (const id of await store.listMeta("runs")) {
    // A damaged record (or one whose metrics fail their check, store/metrics.ts) is listed as
    // such, without its metrics, rather than hiding every other run.
    let problem: string | undefined;
    const rec = await readRecord(store, id).catch((e) => {
      problem = (e as Error).message;
      return undefined;
    });
    const mtime = (await Deno.stat(store.metaPath("runs", id))).mtime?.getTime() ?? 0;
    rows.push({
      id,
      name: rec?.name ?? "(unreadable record)",
      status: rec?.status ?? "invalid",
      stages: rec ? Object.keys(rec.stages).length : 0,
      date: runDate(rec, mtime),
      headline: rec
        ? runHeadline(rec)
        : `(fails its checks: deno task arpo show ${id.slice(0, 12)})`,
      ...(problem !== undefined ? { problem } : {}),
    });
  }
  rows.sort((a, b) => b.date.getTime() - a.date.getTime() || (a.id < b.id ? -1 : 1));
  const sweeps = [];
  for (const id of await listSweeps(store)) {
    const rec = await readSweep(store, id).catch(() => undefined);
    const t = rec?.timings?.started_unix_ms;
    sweeps.push({
      id,
      name: rec?.name ?? "(unreadable record)",
      status: rec?.status ?? "invalid",
      seeds: rec?.seeds ?? [],
      runs: rec?.runs.map((r) => r.runId) ?? [],
      date: new Date(
        typeof t === "number" ? t : (await Deno.stat(sweepPath(store, id))).mtime?.getTime() ?? 0,
      ),
      headline: rec ? sweepHeadline(rec) : "",
    });
  }
  sweeps.sort((a, b) => b.date.getTime() - a.date.getTime() || (a.id < b.id ? -1 : 1));
  if (values.json) {
    // Runs first (newest first), then sweeps; `type` tells them apart.
    console.log(JSON.stringify(
      [
        ...rows.map((r) => ({ type: "run", ...r, date: r.date.toISOString() })),
        ...sweeps.map((r) => ({ type: "sweep", ...r, date: r.date.toISOString() })),
      ],
      null,
      2,
    ));
    return 0;
  }
  if (!rows.length && !sweeps.length) {
    console.log(`no runs in ${store.root}`);
    return 0;
  }
  const lines = table([
    ["run", "date (UTC)", "status", "stages", "name", "headline"],
    ...rows.map((r) => [
      r.id.slice(0, 12),
      fmtDate(r.date),
      r.status,
      String(r.stages),
      r.name,
      r.headline,
    ]),
  ]);
  if (rows.length) { for (const l of lines) console.log(l); }
  if (sweeps.length) {
    if (rows.length) console.log("");
    const sl = table([
      ["sweep", "date (UTC)", "status", "seeds", "name", "headline (mean over seeds, CI)"],
      ...sweeps.map((r) => [
        r.id.slice(0, 12),
        fmtDate(r.date),
        r.status,
        fmtSeeds(r.seeds),
        r.name,
        r.headline,
      ]),
    ]);
    for (const l of sl) console.log(l);
  }
  return 0;
}
