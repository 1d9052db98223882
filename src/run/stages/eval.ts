/**
 * The `eval` stage: M samples per question of a benchmark split (GRPO-style independent samples
 * unless the stage asks for `rollout.algorithm: arpo`), decoded with the stage's sampling options,
 * scored by a reward plugin. Outputs: the rollout trees (`rollouts`) and a results object
 * (`results`) with pass@1, pass@k and accuracy, mean reward (with a reward) with bootstrap
 * confidence intervals, reward parts and tool-call statistics.
 *
 * Correctness is the benchmark's, never the reward's (src/eval/correct.ts): a sample is correct
 * when its response follows the tag protocol (`checkFormat` with the stage's tools) and its final
 * answer (the last `\boxed{…}` in `<answer>`) passes the benchmark's `correct` (by default, exact
 * match after SQuAD normalization). A reward of 1.0 made of F1 0.9 and a 0.1 bonus is not correct;
 * `\boxed{1926.0}` for 1926 is, on a benchmark judged by mathematical equality. Accuracy and pass@k
 * count correct samples; `mean_reward` is the reward's mean. `per_question` lists per task the
 * samples (`n`), how many were correct (`correct`), each sample's verdict (`sample_correct`),
 * rewards and tool calls.
 * A sample whose tool call failed for infrastructure reasons (the machine, not the model: the
 * wall-clock guard fired twice) is no evidence about the policy: it is left out of accuracy,
 * pass@k and the mean reward (its question's `n` counts the other samples; a question left with
 * none drops out of the means, and pass@k only takes questions with at least k samples), shown
 * as null in `sample_correct` and `rewards`, and counted: `infrastructure_failures` in the
 * metrics (always), in `summary` and per question (when there are some). Counting them as wrong
 * would make accuracy depend on machine load; a run that has any is not reproducible (a warning
 * says so), so compare it only after a rerun without them.
 * Output `report`: the results table as a StageReport for the HTML report (src/report/).
 * Sampling defaults are the paper's evaluation settings (ARPO.md §4: temperature 0.6, top_p 0.95).
 *
 * ```yaml
 * - eval: { benchmark: arith, split: test, questions: 200 }
 * ```
 */
import { z } from "zod";
import type { Json } from "../../store/canonical.ts";
import { bootstrapCI } from "../../eval/bootstrap.ts";
import { judgeResponse } from "../../eval/correct.ts";
import { passAtK } from "../../eval/metrics.ts";
import {
  metricsJson,
  type QuestionRollout,
  rewardSample,
  rolloutConfig,
  type RolloutMetrics,
  rolloutSettingsSchema,
  samplingSettingsSchema,
  scoreRollout,
  storeRollout,
  type TrajectoryNode,
} from "../../rollout/mod.ts";
import type { Benchmark } from "../../plugin/contracts.ts";
import type { TokenizerLike } from "../../model/tokenizer.ts";
import { setGroupAdvantages } from "../../train/advantages.ts";
import {
  type Estimate,
  type EvalBenchmark,
  type MetricValue,
  STAGE_REPORT_FORMAT,
  type StageReport,
} from "../../report/data.ts";
import { defineStage, type StageContext, type StageResult } from "../stages.ts";
import { fromSchema, questionsSchema, weightsSource } from "./options.ts";
import {
  rolloutTasks,
  selectReward,
  selectTasks,
  stagePolicy,
  stageTools,
} from "./rollout_shared.ts";

/** `eval` options; no branching unless `rollout.algorithm: arpo` is asked for. */
export const evalOptionsSchema = z.strictObject({
  benchmark: z.string().min(1).describe("the manifest benchmark to evaluate on"),
  from: fromSchema,
  split: z.string().min(1).default("test").describe("the benchmark split evaluated"),
  questions: questionsSchema.default("all").describe("questions evaluated (the first N)"),
  reward: z.string().min(1).optional().describe("the manifest reward that scores answers"),
  rollout: rolloutSettingsSchema({ algorithm: "grpo", rollouts: 4, initial: 4 }).prefault({})
    .describe("how the samples of a question are drawn (M independent ones by default)"),
  sampling: samplingSettingsSchema({ temperature: 0.6, top_p: 0.95 }).prefault({})
    .describe("token sampling of the evaluation"),
});

export type EvalOptions = z.output<typeof evalOptionsSchema>;

/** A value with its bootstrap interval (JSON-safe: null bounds when undefined). */
function ci(values: number[], ctx: StageContext, key: string): Json {
  const b = bootstrapCI(values, { stream: ctx.stream("bootstrap", key) });
  const fin = (x: number) => (Number.isFinite(x) ? x : null);
  return { estimate: fin(b.estimate), lo: fin(b.lo), hi: fin(b.hi), confidence: b.confidence };
}

/** k values reported for pass@k: powers of two up to M, and M. */
export function passKs(m: number): number[] {
  const ks: number[] = [];
  for (let k = 1; k <= m; k *= 2) ks.push(k);
  if (ks.at(-1) !== m) ks.push(m);
  return ks;
}

export function toolStats(m: RolloutMetrics): Json {
  return {
    per_trajectory: m.toolCallsPerTrajectory.all,
    per_trajectory_by_tool: m.toolCallsPerTrajectory.byTool,
    total: m.toolCalls.total,
    errors: m.toolCalls.errors,
    timeouts: m.toolCalls.timeouts,
    truncated: m.toolCalls.truncated,
  };
}

/** A stored `ci` value as a report estimate; undefined when there was nothing to estimate. */
function estimate(v: Json | undefined): Estimate | undefined {
  const e = v as { estimate?: number | null; lo?: number | null; hi?: number | null } | undefined;
  if (!e || typeof e.estimate !== "number") return undefined;
  const out: Estimate = { estimate: e.estimate };
  if (typeof e.lo === "number") out.lo = e.lo;
  if (typeof e.hi === "number") out.hi = e.hi;
  const c = (v as { confidence?: Json }).confidence;
  if (typeof c === "number") out.confidence = c;
  return out;
}

/** The `results` summary as the report's evaluation table (one benchmark, labelled by stage). */
export function evalReport(label: string, summary: Record<string, Json>): StageReport {
  const tools = summary.tools as { per_trajectory: number; per_trajectory_by_tool: Json };
  const samples = summary.samples_per_question as number;
  const b: EvalBenchmark = {
    benchmark: summary.benchmark as string,
    split: summary.split as string,
    questions: summary.questions as number,
    samples,
    toolCallsPerTrajectory: tools.per_trajectory,
    toolCallsByTool: tools.per_trajectory_by_tool as Record<string, number>,
    responseLength: (summary.response_length as { mean: number }).mean,
  };
  const acc = estimate(summary.accuracy);
  if (acc) b.accuracy = acc;
  const pass = (summary.pass_at ?? {}) as Record<string, Json>;
  const p1 = estimate(pass["1"]);
  if (p1) b.pass1 = p1;
  const pk = estimate(pass[String(samples)]);
  if (pk && samples > 1) b.passK = { k: samples, value: pk };
  const rw = estimate(summary.mean_reward);
  if (rw) b.reward = rw;
  // pass@k between 1 and M (powers of two) go to the further metrics.
  const more: Record<string, MetricValue> = {};
  for (const [k, v] of Object.entries(pass)) {
    const e = estimate(v);
    if (e && k !== "1" && k !== String(samples)) more[`pass@${k}`] = e;
  }
  if (Object.keys(more).length) b.metrics = more;
  return { format: STAGE_REPORT_FORMAT, evals: [{ label, benchmarks: [b] }] };
}

/** One question's entry of `per_question` in the eval results. */
export interface QuestionResult {
  task_id: string;
  /** Samples judged: the question's trajectories less its infrastructure failures. */
  n: number;
  correct: number;
  /** Per trajectory: the benchmark's verdict; null for an infrastructure failure. */
  sample_correct: (boolean | null)[];
  /** Per trajectory: its reward (0 unscored); null for an infrastructure failure. */
  rewards: (number | null)[];
  tool_calls: number[];
  /** Trajectories with an infrastructure failure; only when there are some (bytes unchanged). */
  infrastructure_failures?: number;
}

/**
 * Every question's verdicts, judged by the benchmark on the model's own text (`rewardSample`
 * segments, `judgeResponse`); infrastructure failures are left unjudged (see the module comment).
 */
export function questionResults(
  questions: readonly QuestionRollout[],
  benchmark: Pick<Benchmark, "correct">,
  tokenizer: TokenizerLike,
  toolTags: readonly string[],
  names: { benchmark: string },
): QuestionResult[] {
  return questions.map((q) => {
    const failed = (t: TrajectoryNode) => t.infrastructureFailure !== undefined;
    const trajs = q.tree.trajectories;
    const verdicts = trajs.map((t) =>
      failed(t) ? null : judgeResponse(
        benchmark,
        rewardSample(q.tree, t, tokenizer),
        q.task,
        toolTags,
        names.benchmark,
      ).correct
    );
    const failures = trajs.filter(failed).length;
    const out: QuestionResult = {
      task_id: q.task.id,
      n: trajs.length - failures,
      correct: verdicts.filter((c) => c === true).length,
      sample_correct: verdicts,
      rewards: trajs.map((t) => (failed(t) ? null : t.reward ?? 0)),
      tool_calls: trajs.map((t) => t.toolCalls.length),
    };
    if (failures > 0) out.infrastructure_failures = failures;
    return out;
  });
}

export async function runEval(ctx: StageContext, o: EvalOptions): Promise<StageResult> {
  const config = rolloutConfig(o.rollout, o.sampling);
  const tasks = await selectTasks(ctx, o.benchmark, o.split, o.questions);
  const benchmark = ctx.plugins.benchmarks.get(o.benchmark)!.plugin; // selectTasks checked it
  const reward = selectReward(ctx, o.reward, false);
  const policy = await stagePolicy(ctx);
  const tools = stageTools(ctx);
  const res = await rolloutTasks(ctx, policy, tools, config, tasks, ctx.stream("rollout"), "eval");
  if (reward) {
    scoreRollout(res.questions, reward.plugin, policy.tokenizer, reward.name);
    setGroupAdvantages(res.questions); // eval trees carry them too, as rl batches do
  }
  const stored = await storeRollout(ctx.store, res, config, policy.digest, {
    stage: ctx.name,
    benchmark: o.benchmark,
    split: o.split,
    reward: reward?.name ?? null,
  });
  const m = stored.metrics;
  if (m.reward) ctx.progress({ reward: m.reward.mean });

  const perQuestion = questionResults(res.questions, benchmark, policy.tokenizer, tools.tags, {
    benchmark: o.benchmark,
  });
  const failures = perQuestion.reduce((n, q) => n + (q.infrastructure_failures ?? 0), 0);
  if (failures > 0) {
    ctx.log(
      `${ctx.name}: ${failures} sample(s) lost to infrastructure failures (left out of ` +
        `accuracy and pass@k); this stage's results depend on the machine, rerun it.`,
    );
  }
  const judged = perQuestion.filter((q) => q.n > 0);
  const summary: Record<string, Json> = {
    benchmark: o.benchmark,
    split: o.split,
    questions: tasks.length,
    samples_per_question: config.rollouts,
    algorithm: config.algorithm,
    tools: toolStats(m),
    response_length: { mean: m.responseLength.mean, max: m.responseLength.max },
  };
  if (failures > 0) summary.infrastructure_failures = failures;
  const metrics: Record<string, Json> = {
    questions: tasks.length,
    tool_calls_per_trajectory: m.toolCallsPerTrajectory.all,
    tool_errors: m.toolCalls.errors,
    mean_response_length: m.responseLength.mean,
    infrastructure_failures: failures,
  };
  // Correctness is the benchmark's: accuracy and pass@k need no reward.
  const pass: Record<string, Json> = {};
  for (const k of passKs(config.rollouts)) {
    // Questions with fewer than k samples cannot enter pass@k (only with ARPO trees of < M).
    const vals = judged.filter((q) => q.n >= k).map((q) => passAtK(q.n, q.correct, k));
    pass[String(k)] = ci(vals, ctx, `pass@${k}`);
  }
  const accPerQ = judged.map((q) => q.correct / q.n);
  summary.pass_at = pass;
  summary.accuracy = ci(accPerQ, ctx, "accuracy");
  metrics.pass_at_1 = (pass["1"] as { estimate: Json }).estimate;
  metrics[`pass_at_${config.rollouts}`] =
    (pass[String(config.rollouts)] as { estimate: Json }).estimate;
  metrics.accuracy = (summary.accuracy as { estimate: Json }).estimate;
  if (reward) {
    const meanPerQ = judged.map((q) => q.rewards.reduce((a: number, b) => a + (b ?? 0), 0) / q.n);
    summary.reward = reward.name;
    summary.mean_reward = ci(meanPerQ, ctx, "mean_reward");
    summary.reward_parts = m.reward?.parts ?? {};
    metrics.mean_reward = (summary.mean_reward as { estimate: Json }).estimate;
  }
  const results = await ctx.store.putJson({
    type: "eval_results",
    summary,
    per_question: perQuestion,
    rollout_metrics: metricsJson(m),
    rollouts: stored.index,
  });
  const report = await ctx.store.putJson(evalReport(ctx.name, summary));
  const toolCalls = await tools.flush(ctx.store);
  return { outputs: { rollouts: stored.index, results, tool_calls: toolCalls, report }, metrics };
}

/** The `eval` stage kind. */
export const evalStage = defineStage({
  kind: "eval",
  options: evalOptionsSchema,
  references: {
    benchmark: { section: "benchmarks", fill: true },
    reward: { section: "rewards", fill: true },
  },
  tools: true,
  reads: (o, earlier, name) => weightsSource(o.from, earlier, name),
  splits: (o) => ({ measures: [{ benchmark: o.benchmark, split: o.split }] }),
  run: runEval,
});
