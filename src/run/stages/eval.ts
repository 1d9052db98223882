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
  responseText,
  rolloutConfig,
  type RolloutMetrics,
  rolloutSettingsSchema,
  samplingSettingsSchema,
  scoreRollout,
  storeRollout,
} from "../../rollout/mod.ts";
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
  split: z.string().min(1).default("test"),
  questions: questionsSchema.default("all"),
  reward: z.string().min(1).optional().describe("the manifest reward that scores answers"),
  rollout: rolloutSettingsSchema({ algorithm: "grpo", rollouts: 4, initial: 4 }).prefault({}),
  sampling: samplingSettingsSchema({ temperature: 0.6, top_p: 0.95 }).prefault({}),
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

  const perQuestion = res.questions.map((q) => {
    const rewards = q.tree.trajectories.map((t) => t.reward ?? 0);
    const verdicts = q.tree.trajectories.map((t) =>
      judgeResponse(
        benchmark,
        responseText(q.tree, t, policy.tokenizer),
        q.task,
        tools.tags,
        o.benchmark,
      ).correct
    );
    return {
      task_id: q.task.id,
      n: verdicts.length,
      correct: verdicts.filter((c) => c).length,
      sample_correct: verdicts,
      rewards,
      tool_calls: q.tree.trajectories.map((t) => t.toolCalls.length),
    };
  });
  const summary: Record<string, Json> = {
    benchmark: o.benchmark,
    split: o.split,
    questions: tasks.length,
    samples_per_question: config.rollouts,
    algorithm: config.algorithm,
    tools: toolStats(m),
    response_length: { mean: m.responseLength.mean, max: m.responseLength.max },
  };
  const metrics: Record<string, Json> = {
    questions: tasks.length,
    tool_calls_per_trajectory: m.toolCallsPerTrajectory.all,
    tool_errors: m.toolCalls.errors,
    mean_response_length: m.responseLength.mean,
  };
  // Correctness is the benchmark's: accuracy and pass@k need no reward.
  const pass: Record<string, Json> = {};
  for (const k of passKs(config.rollouts)) {
    // Questions with fewer than k samples cannot enter pass@k (only with ARPO trees of < M).
    const vals = perQuestion.filter((q) => q.n >= k).map((q) => passAtK(q.n, q.correct, k));
    pass[String(k)] = ci(vals, ctx, `pass@${k}`);
  }
  const accPerQ = perQuestion.map((q) => q.correct / q.n);
  summary.pass_at = pass;
  summary.accuracy = ci(accPerQ, ctx, "accuracy");
  metrics.pass_at_1 = (pass["1"] as { estimate: Json }).estimate;
  metrics[`pass_at_${config.rollouts}`] =
    (pass[String(config.rollouts)] as { estimate: Json }).estimate;
  metrics.accuracy = (summary.accuracy as { estimate: Json }).estimate;
  if (reward) {
    const meanPerQ = perQuestion.map((q) => q.rewards.reduce((a, b) => a + b, 0) / q.n);
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
  run: runEval,
});
