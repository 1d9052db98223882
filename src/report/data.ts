/**
 * ReportData: the single input of the HTML report renderer (render.ts). The run side (stages,
 * build.ts reading run records) produces it; the renderer knows nothing about the store, stages
 * or rollout engines. Every section is optional so a partial or failed run still renders, and
 * every field is plain JSON so a ReportData can be written to a file and rendered later
 * (`arpo report --data FILE.json`).
 *
 * Naming: camelCase throughout. Numbers are plain numbers (null where a value is missing in a
 * series). Times are milliseconds.
 */
import type { ToolCallNode } from "../rollout/tree.ts";
import type { SweepAggregate } from "../store/sweeps.ts";
import type { Sample } from "./samples.ts";

export const REPORT_DATA_FORMAT = "arpo-report-data/1";

/** A scalar shown in tables (manifest settings, headline metrics). */
export type Scalar = string | number | boolean | null;

/**
 * A point estimate with an optional confidence interval. `BootstrapInterval` from
 * src/eval/bootstrap.ts is assignable to it as is.
 */
export interface Estimate {
  estimate: number;
  lo?: number;
  hi?: number;
  /** Confidence level of [lo, hi], e.g. 0.95. */
  confidence?: number;
  resamples?: number;
}

/** A value in a metrics table: a bare number or an estimate with its interval. */
export type MetricValue = number | Estimate;

export interface ReportData {
  /** REPORT_DATA_FORMAT; checked when a ReportData is read from a file. */
  format?: typeof REPORT_DATA_FORMAT;
  run: RunInfo;
  stages?: StageRow[];
  /** Per-step training curves, one series per rl stage. */
  training?: TrainingSeries[];
  /** Evaluation results, one table per eval stage. */
  evals?: EvalResult[];
  /** Token entropy by distance from the last tool result / from the response start. */
  entropy?: EntropyCurves[];
  /** Branch decisions at tool calls (ΔH, P, decision), one set per stage. */
  forks?: ForkSet[];
  /** Number of branches (forked trajectories) per question, one set per stage. */
  branching?: BranchingSet[];
  /** A few rollout trees for the browser. */
  trees?: ReportTree[];
  /** Every trajectory of the rollout stages, for the sample browser and the tool-error table. */
  samples?: Sample[];
  /** Samples not included (the page's size limit), counted per stage. */
  samplesLeftOut?: Record<string, number>;
}

export interface RunInfo {
  id: string;
  name: string;
  description?: string;
  /** running | complete | interrupted | failed (RunRecord.status), or anything the producer says. */
  status?: string;
  error?: string;
  manifest?: ManifestSummary;
  /** Wall time of the whole run (ms). */
  wallMs?: number;
}

export interface ManifestSummary {
  seed?: number;
  /** One line describing the policy (model path or init config). */
  policy?: string;
  plugins?: { name: string; use: string; digest?: string }[];
  /** Any other settings worth a row (e.g. "rl.rollout.algorithm": "arpo"). */
  settings?: Record<string, Scalar>;
  /** Keys of `settings` whose value is the stage kind's default (folded away in the report). */
  defaulted?: string[];
}

export type StageStatus = "done" | "reused" | "running" | "failed" | "interrupted" | "pending";

export interface StageRow {
  name: string;
  kind: string;
  key?: string;
  status?: StageStatus | string;
  wallMs?: number;
  /** A few headline metrics (scalars or estimates). */
  metrics?: Record<string, MetricValue | string>;
}

/** Wall time of one training step, split by activity (ms). */
export interface StepTime {
  generationMs?: number;
  toolsMs?: number;
  trainingMs?: number;
  totalMs?: number;
}

export interface StepMetrics {
  step: number;
  reward?: number;
  /** Mean of each reward part (e.g. format_ok, f1, bonus). */
  rewardParts?: Record<string, number>;
  accuracy?: number;
  toolCallsPerTrajectory?: number;
  toolCallsByTool?: Record<string, number>;
  toolErrors?: number;
  branchesPerQuestion?: number;
  responseLength?: number;
  entropy?: number;
  clipFraction?: number;
  approxKl?: number;
  loss?: number;
  gradNorm?: number;
  time?: StepTime;
}

export interface TrainingSeries {
  stage: string;
  /** e.g. "arpo" or "grpo". */
  algorithm?: string;
  steps: StepMetrics[];
}

export interface EvalBenchmark {
  benchmark: string;
  split?: string;
  questions?: number;
  /** Samples per question. */
  samples?: number;
  accuracy?: MetricValue;
  pass1?: MetricValue;
  passK?: { k: number; value: MetricValue };
  reward?: MetricValue;
  toolCallsPerTrajectory?: number;
  toolCallsByTool?: Record<string, number>;
  responseLength?: number;
  /** Further metrics (e.g. f1, em). */
  metrics?: Record<string, MetricValue>;
}

export interface EvalResult {
  stage: string;
  /** e.g. "before RL" / "after RL". */
  label?: string;
  benchmarks: EvalBenchmark[];
}

/** Mean entropy at each distance (index = distance in tokens); same shape as rollout metrics. */
export interface EntropyCurve {
  mean: number[];
  count?: number[];
}

export interface EntropyCurves {
  stage: string;
  label?: string;
  fromResult?: EntropyCurve;
  fromStart?: EntropyCurve;
}

export type ForkDecision = "branch" | "no_branch" | "budget" | "off";

export interface ForkPoint {
  deltaH: number;
  p: number;
  decision: ForkDecision | string;
}

export interface ForkSet {
  stage: string;
  label?: string;
  points: ForkPoint[];
}

export interface BranchingSet {
  stage: string;
  label?: string;
  /** Branches taken for each question. */
  perQuestion: number[];
}

export interface TreeSegment {
  id: number;
  parent: number | null;
  kind: "gen" | "result" | "eos" | string;
  trajectory: number;
  text: string;
  /** Number of tokens. */
  tokens?: number;
  /** Mean entropy over its sampled tokens. */
  meanEntropy?: number;
  stop?: string;
}

/**
 * A tool call of a browsed tree: the rollout tree's call (ToolCallNode, src/rollout/tree.ts) as
 * the report reads it from stored JSON, with the fields it shows (input and output may be cut).
 */
export type TreeToolCall =
  & Pick<ToolCallNode, "id" | "trajectory" | "segment" | "result" | "tool" | "input" | "output">
  & Partial<Pick<ToolCallNode, "error" | "timedOut">>
  & {
    /**
     * Shown as a flag. Trees read from rollout artefacts never have it set (where a result came
     * from is a timing, not part of the tree); a StageReport's own trees may set it.
     */
    cached?: boolean;
  };

export interface TreeFork {
  id: number;
  trajectory: number;
  toolCall: number;
  /** Result segment the children hang under. */
  at: number;
  deltaH: number;
  p: number;
  decision: ForkDecision | string;
  children: number[];
}

export interface TreeTrajectory {
  index: number;
  kind: string;
  parent: number | null;
  segments: number[];
  end?: string | null;
  toolCalls?: number;
  responseLength?: number;
  reward?: number;
  rewardParts?: Record<string, Scalar>;
  advantage?: number;
}

export interface ReportTree {
  stage: string;
  step?: number;
  taskId: string;
  question: string;
  answers?: string[];
  segments: TreeSegment[];
  toolCalls: TreeToolCall[];
  forks: TreeFork[];
  trajectories: TreeTrajectory[];
}

// ---------------------------------------------------------------------------------------------
// What a stage contributes (the run side's contract)

export const STAGE_REPORT_FORMAT = "arpo-report-stage/1";

/** A section item whose `stage` may be left out (it defaults to the stage that wrote it). */
export type StagePart<T extends { stage: string }> = Omit<T, "stage"> & { stage?: string };

/**
 * A stage's part of the report, stored as a stage output named `report` (canonical JSON, any
 * output name works: build.ts recognises the object by its `format`). A stage writes what it
 * knows: an `rl` stage its per-step training metrics, an `eval` stage its benchmark tables, a
 * `probe` stage its entropy curves; rollout trees and fork decisions may come from here or, for
 * stages that store rollout_batch indexes (src/rollout/artifacts.ts), are read from those.
 */
export interface StageReport {
  format: typeof STAGE_REPORT_FORMAT;
  training?: StagePart<TrainingSeries>[];
  evals?: StagePart<EvalResult>[];
  entropy?: StagePart<EntropyCurves>[];
  forks?: StagePart<ForkSet>[];
  branching?: StagePart<BranchingSet>[];
  trees?: StagePart<ReportTree>[];
  /**
   * Digests of rollout_batch indexes (src/rollout/artifacts.ts) this stage stored, e.g. one per
   * training step: the report reads their trees (fork decisions, branching, the browser), their
   * entropy curves, and, when `training` is absent, per-step rollout curves.
   */
  rollouts?: string[];
}

// ---------------------------------------------------------------------------------------------
// Sweeps (one manifest run once per seed): what the sweep report shows besides each seed's run

/** A sweep as its report shows it (store/sweeps.ts SweepRecord, the parts the page needs). */
export interface SweepInfo {
  id: string;
  name: string;
  description?: string;
  status?: string;
  seeds: number[];
  /** Each seed's run (id null: not started or failed before it had one). */
  runs: { seed: number; id: string | null; status: string }[];
  /** Mean, interval, IQM and per-seed values of every stage metric (SweepAggregate as is). */
  aggregate?: SweepAggregate;
}
