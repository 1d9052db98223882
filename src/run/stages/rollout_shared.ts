/**
 * What the rollout-driven stages (eval, probe, the rl stage's rollout half) share: picking the
 * benchmark's tasks, the reward, the policy weights, the tool runtime, and rolling out a list of
 * tasks in chunks. Chunking only bounds memory: rollouts do not depend on batch composition, so
 * the artefacts are the same for any chunk size.
 */
import { ArpoError, describeError } from "../../errors.ts";
import type { Reward, Task } from "../../plugin/contracts.ts";
import type { Policy } from "../../policy/types.ts";
import type { Stream } from "../../rng.ts";
import type { ToolCallOptions, ToolRuntime } from "../../tools/types.ts";
import {
  type QuestionRollout,
  renderPrompt,
  type RolloutConfig,
  type RolloutStats,
  type RolloutTimings,
  runRollout,
} from "../../rollout/mod.ts";
import type { LoadedPlugin } from "../../plugin/loaded.ts";
import type { PolicyRequest, StageContext } from "../stages.ts";
import { StageTools } from "./stage_tools.ts";

// The stage tool runtime lives in stage_tools.ts; re-exported for the stages that import it here.
export {
  parseToolCallLines,
  StageTools,
  stageTools,
  toolCacheEnabled,
  type ToolCallLine,
} from "./stage_tools.ts";

/**
 * Sequences a `runRollout` call starts with (questions × M, rounded down to whole questions):
 * bounds the policy's batch and KV memory.
 */
export const ROLLOUT_SEQUENCES = 128;

/**
 * A task's prompt tokens, or an ArpoError naming the question when the prompt leaves no position
 * to generate in (issue 13: a 400-character prompt ran with `max_position: 64`).
 */
function promptWithin(task: Task, tokens: number[], policy: Policy): number[] {
  const max = policy.maxPositions;
  if (max !== undefined && tokens.length >= max) {
    throw new ArpoError(
      `the prompt of question '${task.id}' is ${tokens.length} tokens, but the ` +
        `model handles ${max} positions (policy.init.max_position, or max_position_embeddings ` +
        `in the model's config.json); shorten the prompt or give the model a longer context.`,
    );
  }
  return tokens;
}

/** The benchmark's tasks of `split`, the first `questions` of them (or all). */
export async function selectTasks(
  ctx: StageContext,
  benchmark: string,
  split: string,
  questions: number | "all",
): Promise<Task[]> {
  const where = `stage '${ctx.name}'`;
  const b = ctx.plugins.benchmarks.get(benchmark);
  if (!b) {
    const known = [...ctx.plugins.benchmarks.keys()].join(", ") || "(none)";
    throw new ArpoError(
      `${where}: benchmark '${benchmark}' is not among the manifest's benchmarks (${known}).`,
    );
  }
  if (!b.plugin.splits.includes(split)) {
    throw new ArpoError(
      `${where}: benchmark '${benchmark}' has no split '${split}'; its splits are ` +
        `${b.plugin.splits.join(", ")}.`,
    );
  }
  let tasks: Task[];
  try {
    tasks = await b.plugin.tasks(split);
  } catch (e) {
    if (e instanceof ArpoError) throw e;
    throw new ArpoError(
      `${where}: benchmark '${benchmark}' failed to list split '${split}': ${describeError(e)}`,
      { cause: e },
    );
  }
  const seen = new Set<string>();
  for (const t of tasks) {
    if (seen.has(t.id)) {
      throw new ArpoError(
        `${where}: benchmark '${benchmark}' split '${split}' has two tasks with id '${t.id}'; ` +
          `task ids must be unique (they key random streams and artefacts).`,
      );
    }
    seen.add(t.id);
  }
  if (tasks.length === 0) {
    throw new ArpoError(`${where}: benchmark '${benchmark}' split '${split}' has no tasks.`);
  }
  return questions === "all" ? tasks : tasks.slice(0, questions);
}

/** The named reward, or the only one the manifest declares when none is named. */
export function selectReward(
  ctx: StageContext,
  name: string | undefined,
  required: boolean,
): LoadedPlugin<Reward> | undefined {
  const rewards = ctx.plugins.rewards;
  if (name !== undefined) {
    const r = rewards.get(name);
    if (!r) {
      throw new ArpoError(
        `stage '${ctx.name}': reward '${name}' is not among the manifest's rewards ` +
          `(${[...rewards.keys()].join(", ") || "none"}).`,
      );
    }
    return r;
  }
  if (rewards.size === 1) return [...rewards.values()][0];
  if (required) {
    throw new ArpoError(
      `stage '${ctx.name}': name the reward to use (reward: …); the manifest declares ` +
        `${rewards.size === 0 ? "none" : [...rewards.keys()].join(", ")}.`,
    );
  }
  return undefined;
}

/**
 * The policy this stage runs: the weights of the earlier stage it reads (options.ts
 * `weightsSource`, the stage kind's `reads`), else the manifest's policy; `extra` adds to the
 * request (`tokenizer: "optional"` for a stage that uses no text).
 */
export async function stagePolicy(
  ctx: StageContext,
  extra: Omit<PolicyRequest, "weights"> = {},
): Promise<Policy> {
  const weights = Object.values(ctx.inputs).map((i) => i.outputs.weights)
    .find((w) => w !== undefined);
  return await (weights === undefined ? ctx.policy(extra) : ctx.policy({ ...extra, weights }));
}

export interface ChunkedRollout {
  questions: QuestionRollout[];
  stats: RolloutStats;
  timings: RolloutTimings;
}

/** Roll out `tasks` in chunks, reporting progress and timings to the stage. */
export async function rolloutTasks(
  ctx: StageContext,
  policy: Policy,
  tools: ToolRuntime,
  config: RolloutConfig,
  tasks: readonly Task[],
  rng: Stream,
  label: string,
  maxSequences = ROLLOUT_SEQUENCES,
): Promise<ChunkedRollout> {
  const out: ChunkedRollout = {
    questions: [],
    stats: {
      rounds: 0,
      generateCalls: 0,
      generatedTokens: 0,
      tokensForwarded: 0,
      scratchTokens: 0,
      toolCalls: 0,
    },
    timings: { totalMs: 0, generateMs: 0, toolMs: 0, bookkeepingMs: 0, toolCalls: [] },
  };
  const step = Math.max(1, Math.floor(maxSequences / config.rollouts));
  const total = tasks.length * config.rollouts;
  for (let i = 0; i < tasks.length; i += step) {
    ctx.signal.throwIfAborted();
    const chunk = tasks.slice(i, i + step);
    const requests = chunk.map((task) => ({
      task,
      promptTokens: promptWithin(
        task,
        renderPrompt(task, policy.tokenizer).tokens,
        policy,
      ),
    }));
    // Progress only (never reaches an artefact): trajectories finished and tool calls made so far.
    let finished = 0, calls = 0, callsShown = 0;
    // A stage's runtime records the calls of this rollout under its label (stage_tools.ts).
    const scoped = tools instanceof StageTools ? tools.scope(label) : tools;
    const counted = countToolCalls(scoped, () => calls++);
    const report = (n: number) => {
      ctx.progress({
        within: { done: i * config.rollouts + n, total, unit: "rollouts" },
        rollouts: n - finished,
        toolCalls: calls - callsShown,
      });
      finished = n;
      callsShown = calls;
    };
    const res = await runRollout(requests, {
      policy,
      tools: counted,
      config,
      rng,
      onRound: (r) => report(Math.min(r.finished, chunk.length * config.rollouts)),
    });
    if (tools instanceof StageTools) tools.collect(label, res.questions);
    out.questions.push(...res.questions);
    for (const k of Object.keys(out.stats) as (keyof RolloutStats)[]) out.stats[k] += res.stats[k];
    out.timings.totalMs += res.timings.totalMs;
    out.timings.generateMs += res.timings.generateMs;
    out.timings.toolMs += res.timings.toolMs;
    out.timings.bookkeepingMs += res.timings.bookkeepingMs;
    for (const t of res.timings.toolCalls) {
      out.timings.toolCalls.push({ ...t, question: t.question + i });
    }
    const done = Math.min(tasks.length, i + step);
    const made = res.questions.reduce((n, q) => n + q.tree.trajectories.length, 0);
    ctx.progress({
      within: { done: done * config.rollouts, total, unit: "rollouts" },
      rollouts: Math.max(0, made - finished),
      toolCalls: calls - callsShown,
      message: `${label}: ${done}/${tasks.length} questions`,
    });
  }
  ctx.timing(`${label}.generate_ms`, out.timings.generateMs);
  ctx.timing(`${label}.tools_ms`, out.timings.toolMs);
  ctx.timing(`${label}.bookkeeping_ms`, out.timings.bookkeepingMs);
  // Where tool results came from depends on the cache's state: timings, outside identity.
  const sources = { live: 0, cached: 0, replayed: 0 };
  for (const t of out.timings.toolCalls) sources[t.source]++;
  for (const [k, n] of Object.entries(sources)) ctx.timing(`tool_calls.${k}`, n);
  ctx.timing("tool_calls.ms", out.timings.toolCalls.reduce((a, t) => a + t.durationMs, 0));
  return out;
}

/** The same runtime, calling `onCall` before each tool call (for progress: tool calls/s). */
function countToolCalls(tools: ToolRuntime, onCall: () => void): ToolRuntime {
  return new Proxy(tools, {
    get(target, prop) {
      if (prop === "call") {
        return (tag: string, input: string, opts?: ToolCallOptions) => {
          onCall();
          return target.call(tag, input, opts);
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}
