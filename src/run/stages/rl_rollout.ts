/**
 * The rl stage's rollout half. `rolloutStep` produces one training step's batch: the step's
 * questions (a keyed shuffle of the pool), rolled out with the stage's ARPO / GRPO config, scored,
 * with group advantages, stored as artefacts. The trainer's rl stage calls it every step before its
 * update; `runRlDryRun` runs every step without updating (`dry_run: true`), so rollouts can be
 * studied on their own.
 */
import { ArpoError } from "../../errors.ts";
import type { Json } from "../../store/canonical.ts";
import type { Reward, Task } from "../../plugin/contracts.ts";
import type { Policy } from "../../policy/types.ts";
import type { Stream } from "../../rng.ts";
import {
  type QuestionRollout,
  type RolloutConfig,
  rolloutConfig,
  type RolloutMetrics,
  scoreRollout,
  type StoredRollout,
  storeRollout,
} from "../../rollout/mod.ts";
import { setGroupAdvantages } from "../../train/advantages.ts";
import type { ChunkedRollout } from "./rollout_shared.ts";
import { STAGE_REPORT_FORMAT, type StageReport } from "../../report/data.ts";
import type { LoadedPlugin } from "../../plugin/loaded.ts";
import type { StageContext, StageResult } from "../stages.ts";
import type { RlOptions } from "./rl.ts";
import {
  rolloutTasks,
  selectReward,
  selectTasks,
  stagePolicy,
  type StageTools,
  stageTools,
} from "./rollout_shared.ts";

/** Step `step`'s questions: the first `perStep` of a shuffle of the pool keyed by the step. */
export function stepTasks(
  pool: readonly Task[],
  step: number,
  perStep: number,
  rng: Stream,
): Task[] {
  if (perStep > pool.length) {
    throw new ArpoError(
      `rl: questions_per_step is ${perStep} but the question pool has only ${pool.length} ` +
        `questions; lower questions_per_step or raise questions.`,
    );
  }
  return rng.child("questions", step).shuffle(pool).slice(0, perStep);
}

export interface RolloutStepResult extends ChunkedRollout {
  step: number;
  tasks: Task[];
  stored: StoredRollout;
  /**
   * Digest of the tool calls recorded since the last flush of `setup.tools` (this step's, plus
   * any other rollout in between): store it as the stage output `tool_calls_<step>`.
   */
  toolCalls: string;
}

/** Everything a step needs, resolved once per stage. */
export interface RlRolloutSetup {
  options: RlOptions;
  config: RolloutConfig;
  pool: Task[];
  reward: LoadedPlugin<Reward>;
  tools: StageTools;
}

export async function setupRlRollout(ctx: StageContext, o: RlOptions): Promise<RlRolloutSetup> {
  return {
    options: o,
    config: rolloutConfig(o.rollout, o.sampling),
    pool: await selectTasks(ctx, o.benchmark, o.split, o.questions),
    reward: selectReward(ctx, o.reward, true)!,
    tools: stageTools(ctx),
  };
}

/** One step's rollout batch with rewards and group advantages, stored. */
export async function rolloutStep(
  ctx: StageContext,
  policy: Policy,
  setup: RlRolloutSetup,
  step: number,
): Promise<RolloutStepResult> {
  const o = setup.options;
  const tasks = stepTasks(setup.pool, step, o.questions_per_step, ctx.stream("order"));
  ctx.progress({ step, total: o.steps }); // `step` steps done; this one's rollouts follow
  const res = await rolloutTasks(
    ctx,
    policy,
    setup.tools,
    setup.config,
    tasks,
    ctx.stream("rollout", step),
    `rollout step ${step}`,
  );
  scoreRollout(res.questions, setup.reward.plugin, policy.tokenizer, setup.reward.name);
  setGroupAdvantages(res.questions);
  const stored = await storeRollout(ctx.store, res, setup.config, policy.digest, {
    stage: ctx.name,
    step,
    benchmark: o.benchmark,
    split: o.split,
    reward: setup.reward.name,
  });
  const toolCalls = await setup.tools.flush(ctx.store);
  return { ...res, step, tasks, stored, toolCalls };
}

/**
 * Per-step numbers worth plotting. Branching (docs/BRANCHING.md): `decisions` = fork decisions
 * taken (budget-blocked ones included; GRPO takes none), `branches` = those that branched,
 * `branch_rate` = branches / decisions (0 with no decisions), `branch_rate_open` = branches over
 * the decisions that had budget left (the rule's own rate), `children` / `forks_per_question` =
 * trajectories created by forks, `delta_h_branched` / `delta_h_not_branched` = mean ΔH of the
 * branch and no_branch decisions (null when there are none). `infrastructure_failures`:
 * trajectories whose tool call failed for the machine's reasons, left out of the update and of
 * the group advantages (train/advantages.ts); present only when there are some, so the curve of
 * an ordinary run keeps its bytes. `tool_cap_ends`: trajectories the tool-call cap
 * (`sampling.max_tool_calls`) ended, present likewise only when the cap bound.
 */
export function stepSummary(
  questions: readonly QuestionRollout[],
  m: RolloutMetrics,
): Record<string, Json> {
  let zeroGroups = 0;
  for (const q of questions) {
    if (q.tree.trajectories.every((t) => (t.advantage ?? 0) === 0)) zeroGroups++;
  }
  const out: Record<string, Json> = {
    mean_reward: m.reward?.mean ?? null,
    reward_parts: m.reward?.parts ?? {},
    trajectories: m.trajectories,
    tool_calls_per_trajectory: m.toolCallsPerTrajectory.all,
    tool_errors: m.toolCalls.errors,
    tool_timeouts: m.toolCalls.timeouts,
    decisions: m.branching.decided,
    branches: m.branching.decisions.branch,
    branch_rate: m.branching.branchRate,
    branch_rate_open: m.branching.openBranchRate,
    children: m.branching.children,
    forks_per_question: m.branching.childrenPerQuestion,
    fillers: m.branching.fillers,
    delta_h_mean: m.deltaH.mean,
    delta_h_branched: m.branching.deltaHBranched,
    delta_h_not_branched: m.branching.deltaHNotBranched,
    mean_response_length: m.responseLength.mean,
    zero_advantage_groups: questions.length > 0 ? zeroGroups / questions.length : 0,
  };
  if (m.infrastructureFailures) out.infrastructure_failures = m.infrastructureFailures;
  if (m.endReasons.tool_cap) out.tool_cap_ends = m.endReasons.tool_cap;
  return out;
}

/** The step numbers worth a place on the progress line (the rest are in the artefacts). */
const PROGRESS_METRICS = [
  "tool_calls_per_trajectory",
  "branches",
  "branch_rate",
  "delta_h_mean",
  "delta_h_branched",
  "delta_h_not_branched",
];

/** Totals recorded only when nonzero (so earlier runs keep their bytes): absent means 0. */
export const ZERO_WHEN_ABSENT: ReadonlySet<string> = new Set(["tool_cap_rate"]);

/**
 * Totals over every step of a stage, from the step summaries (curve entries without them, such as
 * an evaluation before the first step, are skipped): `tool_calls_per_trajectory` = mean over all
 * trajectories of all steps, `branch_rate` = all branches / all decisions (0 with no decisions,
 * as GRPO), `infrastructure_failures` = trajectories of the steps and samples of the evaluations
 * (`eval`) lost to infrastructure failures (0 in an ordinary run), `tool_cap_rate` = share of
 * all trajectories that the tool-call cap ended (only when it ended some: other runs keep their
 * bytes).
 */
export function rolloutTotals(
  steps: readonly Json[],
): {
  tool_calls_per_trajectory: number;
  branch_rate: number;
  infrastructure_failures: number;
  tool_cap_rate?: number;
} {
  let trajectories = 0, calls = 0, decisions = 0, branches = 0, failures = 0, capped = 0;
  for (const e of steps as Record<string, Json>[]) {
    if (typeof e.infrastructure_failures === "number") failures += e.infrastructure_failures;
    if (typeof e.tool_cap_ends === "number") capped += e.tool_cap_ends;
    const ev = e.eval as Record<string, Json> | undefined;
    if (typeof ev?.infrastructure_failures === "number") failures += ev.infrastructure_failures;
    const n = e.trajectories, c = e.tool_calls_per_trajectory;
    if (typeof n === "number" && typeof c === "number") {
      trajectories += n;
      calls += c * n;
    }
    if (typeof e.decisions === "number" && typeof e.branches === "number") {
      decisions += e.decisions;
      branches += e.branches;
    }
  }
  return {
    tool_calls_per_trajectory: trajectories > 0 ? calls / trajectories : 0,
    branch_rate: decisions > 0 ? branches / decisions : 0,
    infrastructure_failures: failures,
    ...(capped > 0 && trajectories > 0 ? { tool_cap_rate: capped / trajectories } : {}),
  };
}

/**
 * `dry_run: true`: every step's rollouts, rewards and advantages, no update. Resumable. Output
 * `report` lists the step batches in step order: the HTML report (src/report/build.ts) draws the
 * per-step curves of an rl stage without `training` from those batches' metrics, which hold more
 * than the checkpointed step summaries (tool calls by tool), so no `training` is written here.
 */
export async function runRlDryRun(ctx: StageContext, o: RlOptions): Promise<StageResult> {
  const setup = await setupRlRollout(ctx, o);
  const policy = await stagePolicy(ctx);
  const done = await ctx.checkpoint.load();
  const state: Record<string, string> = { ...(done?.state ?? {}) };
  const steps: Json[] = ((done?.meta.steps as Json[] | undefined) ?? []).slice();
  for (let step = done ? done.step + 1 : 0; step < o.steps; step++) {
    ctx.signal.throwIfAborted();
    const r = await rolloutStep(ctx, policy, setup, step);
    const summary = stepSummary(r.questions, r.stored.metrics);
    state[`rollouts_${step}`] = r.stored.index;
    state[`tool_calls_${step}`] = r.toolCalls;
    steps.push({ step, rollouts: r.stored.index, ...summary });
    ctx.progress({
      step: step + 1,
      total: o.steps,
      reward: typeof summary.mean_reward === "number" ? summary.mean_reward : undefined,
      message: `dry-run step ${step + 1}/${o.steps}`,
      metrics: Object.fromEntries(
        Object.entries(summary).filter((e): e is [string, number] =>
          typeof e[1] === "number" && PROGRESS_METRICS.includes(e[0])
        ),
      ),
    });
    await ctx.checkpoint.save(step, state, { steps });
  }
  const batches = await ctx.store.putJson({ type: "rl_rollout_batches", dry_run: true, steps });
  const report: StageReport = {
    format: STAGE_REPORT_FORMAT,
    rollouts: Array.from({ length: o.steps }, (_, i) => state[`rollouts_${i}`]),
  };
  const last = steps.at(-1) as Record<string, Json> | undefined;
  return {
    outputs: { ...state, batches, report: await ctx.store.putJson(report) },
    metrics: {
      steps: o.steps,
      last_mean_reward: last?.mean_reward ?? null,
      last_tool_calls_per_trajectory: last?.tool_calls_per_trajectory ?? null,
      ...rolloutTotals(steps),
    },
  };
}
