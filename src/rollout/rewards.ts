/**
 * Scoring a finished rollout: every trajectory gets its reward (and parts) from a Reward plugin,
 * written into the trees, so the artefacts carry them. Group advantages are the trainer's
 * (train/advantages.ts `setGroupAdvantages`).
 */
import { ArpoError, describeError } from "../errors.ts";
import type { Reward, RewardResult } from "../plugin/contracts.ts";
import type { TokenizerLike } from "../model/tokenizer.ts";
import type { QuestionRollout } from "./agent_loop.ts";
import type { RolloutTree, TrajectoryNode } from "./tree.ts";

/** The decoded response a reward sees: prompt excluded, results included, trailing EOS dropped. */
export function responseText(
  tree: RolloutTree,
  t: TrajectoryNode,
  tokenizer: TokenizerLike,
): string {
  const ids = tree.flatten(t).responseTokens;
  let n = ids.length;
  while (n > 0 && tokenizer.eosTokenIds.includes(ids[n - 1])) n--;
  return tokenizer.decode(ids.slice(0, n));
}

/** Score every trajectory. `rewardName` names the plugin in errors. */
export function scoreRollout(
  questions: readonly QuestionRollout[],
  reward: Reward,
  tokenizer: TokenizerLike,
  rewardName = "reward",
): void {
  for (const q of questions) {
    for (const t of q.tree.trajectories) {
      let r: RewardResult;
      try {
        r = reward.score({
          task: q.task,
          response: responseText(q.tree, t, tokenizer),
          answers: q.task.answers,
          toolCalls: q.tree.toolCallRecords(t),
        });
      } catch (e) {
        throw new ArpoError(
          `reward plugin "${rewardName}" failed on task "${q.task.id}" (trajectory ${t.index}): ` +
            describeError(e),
          { cause: e },
        );
      }
      if (typeof r?.reward !== "number" || !Number.isFinite(r.reward)) {
        throw new ArpoError(
          `reward plugin "${rewardName}" returned reward ${JSON.stringify(r?.reward)} for task ` +
            `"${q.task.id}" (trajectory ${t.index}); expected a finite number.`,
        );
      }
      t.reward = r.reward;
      t.rewardParts = r.parts ?? {};
    }
  }
}
