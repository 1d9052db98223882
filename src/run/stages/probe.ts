/**
 * The `probe` stage: the paper's preliminary experiment (ARPO.md §6). Sample trajectories on a
 * benchmark (independent samples, no branching) and tabulate the mean token entropy as a function
 * of the distance in tokens from the most recent tool result, against the distance from the start
 * of the response (tokens before any tool result). Output `probe`: the table, window summaries
 * and plot data; output `rollouts`: the trees it was computed from; output `report`: the entropy
 * curves as a StageReport for the HTML report (src/report/).
 *
 * ```yaml
 * - probe: { benchmark: arith, questions: 50 }
 * ```
 */
import { z } from "zod";
import type { Json } from "../../store/canonical.ts";
import {
  type EntropyCurve,
  independentRollouts,
  metricsJson,
  rolloutConfig,
  rolloutMetrics,
  samplingSettingsSchema,
  storeRollout,
} from "../../rollout/mod.ts";
import { STAGE_REPORT_FORMAT, type StageReport } from "../../report/data.ts";
import { defineStage, type StageContext, type StageResult } from "../stages.ts";
import { fromSchema, questionsSchema, weightsSource } from "./options.ts";
import { rolloutTasks, selectTasks, stagePolicy, stageTools } from "./rollout_shared.ts";

/** `probe` options. */
export const probeOptionsSchema = z.strictObject({
  benchmark: z.string().min(1).describe("the manifest benchmark whose questions to probe"),
  from: fromSchema,
  split: z.string().min(1).default("test").describe("the benchmark split probed"),
  questions: questionsSchema.default(50).describe("questions probed (the first N)"),
  samples: z.int().min(1).default(1).describe("trajectories per question"),
  max_distance: z.int().min(1).default(64).describe("largest token distance tabulated"),
  sampling: samplingSettingsSchema({ temperature: 1.0, top_p: 1.0 }).prefault({})
    .describe("token sampling of the probed trajectories"),
});

export type ProbeOptions = z.output<typeof probeOptionsSchema>;

/** Count-weighted mean entropy over distances [lo, hi). */
export function windowMean(c: EntropyCurve, lo: number, hi: number): number | null {
  let s = 0, n = 0;
  for (let d = lo; d < Math.min(hi, c.mean.length); d++) {
    s += c.mean[d] * c.count[d];
    n += c.count[d];
  }
  return n > 0 ? s / n : null;
}

export interface ProbeTable {
  rows: {
    distance: number;
    after_result: number | null;
    n_after: number;
    from_start: number | null;
    n_start: number;
  }[];
  windows: { window: string; after_result: number | null; from_start: number | null }[];
  text: string;
}

export function probeTable(
  after: EntropyCurve,
  start: EntropyCurve,
  maxDistance: number,
): ProbeTable {
  const rows: ProbeTable["rows"] = [];
  for (let d = 0; d < maxDistance; d++) {
    rows.push({
      distance: d,
      after_result: (after.count[d] ?? 0) > 0 ? after.mean[d] : null,
      n_after: after.count[d] ?? 0,
      from_start: (start.count[d] ?? 0) > 0 ? start.mean[d] : null,
      n_start: start.count[d] ?? 0,
    });
  }
  const windows = [[0, 10], [10, 50], [50, maxDistance]]
    .filter(([lo, hi]) => lo < hi && lo < maxDistance)
    .map(([lo, hi]) => ({
      window: `${lo}-${Math.min(hi, maxDistance) - 1}`,
      after_result: windowMean(after, lo, hi),
      from_start: windowMean(start, lo, hi),
    }));
  const f = (x: number | null) => (x === null ? "     -" : x.toFixed(4).padStart(6));
  const lines = [
    "distance | entropy after tool result (n) | entropy from response start (n)",
    ...rows.map((r) =>
      `${String(r.distance).padStart(8)} | ${f(r.after_result)} (${r.n_after}) | ` +
      `${f(r.from_start)} (${r.n_start})`
    ),
    "",
    ...windows.map((w) =>
      `tokens ${w.window}: after result ${f(w.after_result)}, from start ${f(w.from_start)}`
    ),
  ];
  return { rows, windows, text: lines.join("\n") };
}

export async function runProbe(ctx: StageContext, o: ProbeOptions): Promise<StageResult> {
  const config = rolloutConfig(independentRollouts(o.samples), o.sampling);
  const tasks = await selectTasks(ctx, o.benchmark, o.split, o.questions);
  const policy = await stagePolicy(ctx);
  const tools = stageTools(ctx);
  const res = await rolloutTasks(ctx, policy, tools, config, tasks, ctx.stream("rollout"), "probe");
  const stored = await storeRollout(ctx.store, res, config, policy.digest, {
    stage: ctx.name,
    benchmark: o.benchmark,
    split: o.split,
  });
  const m = rolloutMetrics(res.questions.map((q) => q.tree), { maxDistance: o.max_distance });
  const table = probeTable(m.entropy.fromResult, m.entropy.fromStart, o.max_distance);
  ctx.log(
    `entropy by distance (first windows):\n${
      table.windows.map((w) => JSON.stringify(w)).join("\n")
    }`,
  );
  const probe = await ctx.store.putJson({
    type: "probe_results",
    benchmark: o.benchmark,
    split: o.split,
    questions: tasks.length,
    samples: o.samples,
    table: table.rows as unknown as Json,
    windows: table.windows as unknown as Json,
    text: table.text,
    plot: {
      x: table.rows.map((r) => r.distance),
      series: [
        { name: "after tool result", y: table.rows.map((r) => r.after_result) },
        { name: "from response start", y: table.rows.map((r) => r.from_start) },
      ],
      x_label: "distance (tokens)",
      y_label: "mean token entropy (nats)",
    },
    rollout_metrics: metricsJson(m),
    rollouts: stored.index,
  });
  const metrics: Record<string, Json> = { questions: tasks.length };
  for (const w of table.windows) {
    metrics[`entropy_after_result_${w.window}`] = w.after_result;
    metrics[`entropy_from_start_${w.window}`] = w.from_start;
  }
  const report: StageReport = {
    format: STAGE_REPORT_FORMAT,
    entropy: [{
      label: `${o.benchmark}/${o.split}`,
      fromResult: m.entropy.fromResult,
      fromStart: m.entropy.fromStart,
    }],
  };
  const reportDigest = await ctx.store.putJson(report);
  const toolCalls = await tools.flush(ctx.store);
  return {
    outputs: { probe, rollouts: stored.index, tool_calls: toolCalls, report: reportDigest },
    metrics,
  };
}

/** The `probe` stage kind. */
export const probeStage = defineStage({
  kind: "probe",
  options: probeOptionsSchema,
  references: { benchmark: { section: "benchmarks", fill: true } },
  tools: true,
  reads: (o, earlier, name) => weightsSource(o.from, earlier, name),
  run: runProbe,
});
