/**
 * Scoring a finished rollout: every trajectory gets its reward (and parts) from a Reward plugin,
 * written into the trees, so the artefacts carry them. A reward sees the trajectory as a
 * RewardSample whose `segments` say which text the model generated and which a tool returned, so
 * it can judge the model's own text (`modelText`). Trajectories marked with an infrastructure
 * failure are not scored. Group advantages are the trainer's (train/advantages.ts
 * `setGroupAdvantages`).
 */
import { ArpoError, describeError } from "../errors.ts";
import type { ResponseSegment, Reward, RewardResult, RewardSample } from "../plugin/contracts.ts";
import type { TokenizerLike } from "../model/tokenizer.ts";
import type { QuestionRollout } from "./agent_loop.ts";
import type { RolloutTree, TrajectoryNode } from "./tree.ts";

/** The response tokens of a trajectory by segment, trailing EOS dropped (from the last ones). */
function responsePieces(
  tree: RolloutTree,
  t: TrajectoryNode,
  tokenizer: TokenizerLike,
): { id: number; tokens: number[] }[] {
  const pieces = t.segments.map((id) => ({ id, tokens: [...tree.segments[id].tokens] }));
  for (let k = pieces.length - 1; k >= 0; k--) {
    const ids = pieces[k].tokens;
    while (ids.length > 0 && tokenizer.eosTokenIds.includes(ids[ids.length - 1])) ids.pop();
    if (ids.length > 0) break;
  }
  return pieces;
}

/** The decoded response a reward sees: prompt excluded, results included, trailing EOS dropped. */
export function responseText(
  tree: RolloutTree,
  t: TrajectoryNode,
  tokenizer: TokenizerLike,
): string {
  return tokenizer.decode(responsePieces(tree, t, tokenizer).flatMap((p) => p.tokens));
}

/**
 * A trajectory as a reward (and the benchmark's judge) sees it: the response, its tool calls, and
 * its segments (model text / tool results). Each segment's text is what its tokens add to the
 * decoded response (decoding growing prefixes), so the texts join to exactly `response`; where a
 * tokenizer decodes the end of a prefix differently once more tokens follow (a character split
 * across a segment boundary), the changed characters go to the later segment.
 */
export function rewardSample(
  tree: RolloutTree,
  t: TrajectoryNode,
  tokenizer: TokenizerLike,
): RewardSample {
  const pieces = responsePieces(tree, t, tokenizer);
  const texts: string[] = [];
  const all: number[] = [];
  let prev = "";
  for (const p of pieces) {
    all.push(...p.tokens);
    const text = tokenizer.decode(all);
    let same = 0;
    const n = Math.min(prev.length, text.length);
    while (same < n && prev.charCodeAt(same) === text.charCodeAt(same)) same++;
    for (let k = texts.length - 1, excess = prev.length - same; excess > 0 && k >= 0; k--) {
      const cut = Math.min(excess, texts[k].length);
      texts[k] = texts[k].slice(0, texts[k].length - cut);
      excess -= cut;
    }
    texts.push(text.slice(same));
    prev = text;
  }
  const resultCall = new Map(t.toolCalls.map((id, k) => [tree.toolCalls[id].result, k]));
  const segments = pieces.map((p, k): ResponseSegment => {
    if (tree.segments[p.id].kind !== "result") return { kind: "model", text: texts[k] };
    const call = resultCall.get(p.id);
    return call === undefined
      ? { kind: "result", text: texts[k] }
      : { kind: "result", text: texts[k], toolCall: call };
  });
  return {
    task: tree.task,
    response: prev,
    answers: tree.task.answers,
    toolCalls: tree.toolCallRecords(t),
    segments,
  };
}

/**
 * Score every trajectory, except those marked with an infrastructure failure (they keep no
 * reward: their text is not the policy's doing). `rewardName` names the plugin in errors.
 */
export function scoreRollout(
  questions: readonly QuestionRollout[],
  reward: Reward,
  tokenizer: TokenizerLike,
  rewardName = "reward",
): void {
  for (const q of questions) {
    for (const t of q.tree.trajectories) {
      if (t.infrastructureFailure !== undefined) continue;
      let r: RewardResult;
      try {
        r = reward.score(rewardSample(q.tree, t, tokenizer));
      } catch (e) {
        throw new ArpoError(
          `reward plugin "${rewardName}" failed on task "${q.task.id}" (trajectory ${t.index}): ` +
            describeError(e),
          { cause: e },
        );
      }
      if (typeof r?.reward !== "number" || !Number.isFinite(r.reward)) {
        throw new ArpoError(
          `reward plugin "${rewardName}" returned reward ${
            typeof r?.reward === "number" ? String(r.reward) : JSON.stringify(r?.reward)
          } for task ` +
            `"${q.task.id}" (trajectory ${t.index}); expected a finite number.`,
        );
      }
      t.reward = r.reward;
      t.rewardParts = r.parts ?? {};
    }
  }
}
