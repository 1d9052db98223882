/**
 * What `exp --seeds`, `show`, `ls`, `compare` and `report` print about a sweep (not a command:
 * starts with _): the runs by seed, the aggregate table, the headline of a sweep, and telling a
 * sweep id prefix from a run id prefix. Presentation only: nothing here is recorded.
 */
import { existsSync } from "node:fs";
import { ArpoError } from "../../errors.ts";
import { readRecord, resolveRunId } from "../../store/records.ts";
import type { Store } from "../../store/store.ts";
import {
  listSweeps,
  matchSweeps,
  resolveSweepId,
  type SweepAggregate,
  type SweepRecord,
} from "../../store/sweeps.ts";
import { fmtNum, runHeadline, table } from "./_runs.ts";

/** A run or a sweep, named by an id or a unique prefix of one. */
export type Target = { kind: "run"; id: string } | { kind: "sweep"; id: string };

/**
 * Resolve a prefix among runs and sweeps. A prefix of exactly one sweep and no run is that sweep;
 * of runs only, resolveRunId decides (its errors list the runs, and the sweeps when there are
 * any); of both a run and a sweep, an ArpoError asking for more digits.
 */
export async function resolveTarget(store: Store, prefix: string): Promise<Target> {
  const sweeps = await matchSweeps(store, prefix);
  const p = prefix.trim().toLowerCase();
  const runs = (await store.listMeta("runs")).filter((i) => i.startsWith(p));
  if (sweeps.length && runs.length) {
    throw new ArpoError(
      `'${prefix}' is ambiguous in ${store.root}: it matches run${runs.length > 1 ? "s" : ""} ` +
        `${runs.map((i) => i.slice(0, 16)).join(", ")} and sweep${sweeps.length > 1 ? "s" : ""} ` +
        `${sweeps.map((i) => i.slice(0, 16)).join(", ")}; give more digits`,
    );
  }
  if (sweeps.length) return { kind: "sweep", id: await resolveSweepId(store, prefix) };
  try {
    return { kind: "run", id: await resolveRunId(store, prefix) };
  } catch (e) {
    const all = await listSweeps(store);
    if (!(e instanceof ArpoError) || !all.length) throw e;
    throw new ArpoError(
      `${e.message.replace(/^no run matches/, "no run or sweep matches")}; sweeps in the store: ` +
        `${all.slice(0, 20).map((i) => i.slice(0, 12)).join(", ")}` +
        (all.length > 20 ? `, … (${all.length} in all)` : ""),
    );
  }
}

/** The seeds as `1, 2, 3`, ranges folded: `1-5, 7`. */
export function fmtSeeds(seeds: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < seeds.length;) {
    let j = i;
    while (j + 1 < seeds.length && seeds[j + 1] === seeds[j] + 1) j++;
    out.push(j - i >= 2 ? `${seeds[i]}-${seeds[j]}` : seeds.slice(i, j + 1).join(", "));
    i = j + 1;
  }
  return out.join(", ");
}

/** The line above the aggregate table: what the numbers are. */
export function aggregateTitle(agg: SweepAggregate): string {
  return `over ${agg.seeds.length} seed${agg.seeds.length === 1 ? "" : "s"} ` +
    `(${fmtSeeds(agg.seeds)}): mean, ${Math.round(agg.confidence * 100)}% CI from a ` +
    `stratified bootstrap over seeds × questions (seeds only where a metric has no ` +
    `per-question scores; ${agg.resamples} resamples), IQM over the pooled seed × question scores`;
}

/** The aggregate table as lines: stage, metric, mean, CI, IQM, per-seed values, what was resampled. */
export function aggregateTable(agg: SweepAggregate, indent = "  "): string[] {
  const pct = `${Math.round(agg.confidence * 100)}% CI`;
  const rows = [[
    "stage",
    "metric",
    "mean",
    pct,
    "IQM",
    `per seed (${agg.seeds.join(", ")})`,
    "resampled",
  ]];
  for (const st of agg.stages) {
    for (const m of st.metrics) {
      rows.push([
        st.stage,
        m.metric,
        fmtNum(m.mean),
        `[${fmtNum(m.lo)}, ${fmtNum(m.hi)}]`,
        fmtNum(m.iqm),
        m.perSeed.map(fmtNum).join(", "),
        m.resampled === "seeds×questions" ? `seeds×questions (${m.scores})` : "seeds",
      ]);
    }
  }
  return table(rows, indent);
}

/** The sweep's headline: the last eval's accuracy (mean and CI), else the last rl reward. */
export function sweepHeadline(rec: SweepRecord): string {
  const agg = rec.aggregate;
  if (!agg) return "";
  const pick = (kind: string, metric: string) => {
    for (const st of [...agg.stages].reverse()) {
      if (st.kind !== kind) continue;
      const m = st.metrics.find((x) => x.metric === metric);
      if (m && m.mean !== null) {
        return `${st.stage} ${metric === "accuracy" ? "accuracy" : "reward"} ${fmtNum(m.mean)} ` +
          `[${fmtNum(m.lo)}, ${fmtNum(m.hi)}]`;
      }
    }
    return undefined;
  };
  return pick("eval", "accuracy") ?? pick("rl", "last_mean_reward") ?? "";
}

/** One row per seed: seed, run id, status, stages done, the run's headline. */
export async function sweepRunRows(store: Store, rec: SweepRecord): Promise<string[][]> {
  const rows = [["seed", "run", "status", "stages", "headline"]];
  for (const r of rec.runs) {
    const run = r.runId ? await readRecord(store, r.runId).catch(() => undefined) : undefined;
    rows.push([
      String(r.seed),
      r.runId ? r.runId.slice(0, 12) : "-",
      run?.status ?? r.status,
      run ? String(Object.keys(run.stages).length) : "0",
      run ? runHeadline(run) : (r.error ? `error: ${r.error.split("\n")[0]}` : ""),
    ]);
  }
  return rows;
}

/** The sweep's HTML report, when one was written. */
export async function sweepReportFor(store: Store, id: string): Promise<string | undefined> {
  const { sweepReportPath } = await import("../../report/write.ts");
  const path = sweepReportPath(store, id);
  return existsSync(path) ? path : undefined;
}
