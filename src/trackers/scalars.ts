/**
 * A run's metrics as scalar series for experiment trackers: every numeric field of each stage's
 * training curve (`<stage>/<metric>` at its step: loss, reward, KL, accuracy of the evaluations
 * during training, …; reward parts and per-tool counts as `<stage>/reward/<part>`,
 * `<stage>/tool_calls/<tool>`), and each stage's final metrics (`<stage>/final/<metric>`, at the
 * stage's last step, 0 for stages without steps).
 */
import type { RunRecord } from "../store/records.ts";
import type { Store } from "../store/store.ts";
import { buildReportData } from "../report/build.ts";
import type { StepMetrics } from "../report/data.ts";

/** One value of one series. */
export interface Scalar {
  tag: string;
  step: number;
  value: number;
}

const SNAKE: Record<string, string> = {
  toolCallsPerTrajectory: "tool_calls_per_trajectory",
  toolErrors: "tool_errors",
  branchesPerQuestion: "branches_per_question",
  responseLength: "response_length",
  clipFraction: "clip_fraction",
  approxKl: "approx_kl",
  gradNorm: "grad_norm",
};

const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

function stepScalars(stage: string, s: StepMetrics, out: Scalar[]): void {
  const put = (tag: string, v: unknown) => {
    if (finite(v)) out.push({ tag: `${stage}/${tag}`, step: s.step, value: v });
  };
  for (const [k, v] of Object.entries(s)) {
    if (k === "step") continue;
    if (k === "rewardParts" || k === "toolCallsByTool") {
      const group = k === "rewardParts" ? "reward" : "tool_calls";
      for (const [p, x] of Object.entries(v as Record<string, number>)) put(`${group}/${p}`, x);
    } else if (k === "time") {
      for (const [p, x] of Object.entries(v as Record<string, number>)) put(`time/${p}`, x);
    } else put(SNAKE[k] ?? k, v);
  }
}

/** Every scalar of the run, stage by stage, in step order within a series. */
export async function runScalars(store: Store, rec: RunRecord): Promise<Scalar[]> {
  const data = await buildReportData(store, rec, { treesPerStage: 0 });
  const out: Scalar[] = [];
  const lastStep = new Map<string, number>();
  for (const series of data.training ?? []) {
    for (const s of series.steps) {
      stepScalars(series.stage, s, out);
      lastStep.set(series.stage, Math.max(lastStep.get(series.stage) ?? 0, s.step));
    }
  }
  for (const [stage, s] of Object.entries(rec.stages)) {
    for (const [k, v] of Object.entries(s.metrics ?? {})) {
      if (finite(v)) {
        out.push({ tag: `${stage}/final/${k}`, step: lastStep.get(stage) ?? 0, value: v });
      }
    }
  }
  return out;
}
