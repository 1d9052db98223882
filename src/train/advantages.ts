/**
 * From a question's rollout tree and per-trajectory rewards to training sequences with per-token
 * advantages (ARPO.md §3).
 *
 * - Group normalization: A_i = (r_i − mean r) / (std r + 1e-6), unbiased std, a group of one gets
 *   0 (groupAdvantages; the reference would give A = r, a baseline-free update this project does
 *   not copy). `setGroupAdvantages` writes them into a scored rollout's trajectories, so the
 *   stored trees carry them.
 * - Infrastructure failures (a trajectory marked `infrastructureFailure`: a tool call failed for
 *   the machine's reasons) are not samples of the policy: they are left out of the group, so the
 *   baseline and scale come from the other trajectories alone, they get no advantage, and
 *   `updateQuestion` leaves them out of the update (a failure rate that depends on machine load
 *   then changes how many samples a group has, never what they are worth).
 * - Soft attribution (default): one sequence per trajectory, every token with its trajectory's
 *   advantage; a shared prefix is counted once per trajectory that contains it.
 * - Hard attribution: a segment shared by d trajectories is learned once, with the mean of their
 *   d advantages (in the first trajectory, by index, that contains it; masked in the others, which
 *   still need it as context); tokens after a fork keep their own trajectory's advantage.
 */
import { ArpoError } from "../errors.ts";
import type { TrainSequence } from "./batch.ts";

/** A_i = (r_i − mean r) / (std r + ε) over one question's rewards (unbiased std; a group of one: 0). */
export function groupAdvantages(rewards: readonly number[], eps = 1e-6): number[] {
  const n = rewards.length;
  if (n <= 1) return rewards.map(() => 0);
  let mean = 0;
  for (const r of rewards) mean += r;
  mean /= n;
  let ss = 0;
  for (const r of rewards) ss += (r - mean) * (r - mean);
  const std = Math.sqrt(ss / (n - 1));
  return rewards.map((r) => (r - mean) / (std + eps));
}

/** The part of a scored rollout (rollout/agent_loop.ts QuestionRollout) advantages are set on. */
export interface ScoredQuestion {
  readonly tree: {
    readonly trajectories: readonly {
      reward?: number;
      advantage?: number;
      infrastructureFailure?: string;
    }[];
  };
}

/**
 * Set every trajectory's group advantage from the rewards of its question (unscored: 0), over
 * the trajectories without an infrastructure failure; those get none (`advantage` unset).
 */
export function setGroupAdvantages(questions: readonly ScoredQuestion[]): void {
  for (const q of questions) {
    const valid = q.tree.trajectories.filter((t) => t.infrastructureFailure === undefined);
    const adv = groupAdvantages(valid.map((t) => t.reward ?? 0));
    valid.forEach((t, i) => (t.advantage = adv[i]));
  }
}

export type Attribution = "soft" | "hard";

/** The part of a rollout tree (src/rollout/tree.ts RolloutTree) that training reads. */
export interface TreeLike {
  readonly promptTokens: readonly number[];
  readonly segments: readonly {
    id: number;
    /**
     * Segment kind (src/rollout/tree.ts SegmentKind): only `gen` tokens were sampled by the
     * policy; `eos` (a forced end of sequence) and `result` tokens were not. Without a kind, the
     * tokens with loss mask 1 count as sampled.
     */
    kind?: string;
    tokens: readonly number[];
    lossMask: readonly number[];
    logprobs?: readonly number[];
  }[];
  readonly trajectories: readonly {
    index: number;
    segments: readonly number[];
    /** Set on a trajectory that `updateQuestion` leaves out (see the module comment). */
    infrastructureFailure?: string;
    advantage?: number;
  }[];
}

/**
 * What the update learns from one question: the tree restricted to the trajectories without an
 * infrastructure failure, with their advantages (from setGroupAdvantages; unset: 0). The segments
 * stay: a kept trajectory still reads the prefix it shares with a left-out one.
 */
export function updateQuestion(tree: TreeLike): { tree: TreeLike; advantages: number[] } {
  const kept = tree.trajectories.filter((t) => t.infrastructureFailure === undefined);
  return {
    tree: { promptTokens: tree.promptTokens, segments: tree.segments, trajectories: kept },
    advantages: kept.map((t) => t.advantage ?? 0),
  };
}

export interface TreeSequence extends TrainSequence {
  /** Trajectory index within the tree. */
  trajectory: number;
  advantages: number[];
  /** Sampled (rollout-time) log-probabilities aligned with tokens; 0 on the prompt. */
  sampledLogp: number[];
  /**
   * 1 where the policy sampled the token (a `gen` segment), so `sampledLogp` is its real
   * log-probability; 0 on the prompt, tool results and forced tokens (a forced end of sequence),
   * whose `sampledLogp` is a 0 placeholder. Statistics only: what is learned is `lossMask`.
   */
  sampledMask: (0 | 1)[];
}

/** Whether token `i` of a segment was sampled by the policy (see TreeLike.segments.kind). */
function sampledAt(s: TreeLike["segments"][number], i: number): 0 | 1 {
  if (s.kind === undefined) return s.lossMask[i] ? 1 : 0;
  return s.kind === "gen" ? 1 : 0;
}

/**
 * Training sequences for one question: prompt + response of each trajectory, loss mask from the
 * segments (tool results 0), per-token advantages by `mode`. `advantages[i]` belongs to
 * `tree.trajectories[i]`.
 */
export function treeSequences(
  tree: TreeLike,
  advantages: readonly number[],
  mode: Attribution = "soft",
): TreeSequence[] {
  const trajs = tree.trajectories;
  if (advantages.length !== trajs.length) {
    throw new ArpoError(
      `advantages: ${advantages.length} advantages for ${trajs.length} trajectories`,
    );
  }
  const byId = new Map(tree.segments.map((s) => [s.id, s]));
  // Hard attribution: which trajectories hold each segment, and who learns it.
  const sharers = new Map<number, number[]>();
  trajs.forEach((t, k) => {
    for (const id of t.segments) {
      const l = sharers.get(id);
      if (l) l.push(k);
      else sharers.set(id, [k]);
    }
  });
  const P = tree.promptTokens.length;
  return trajs.map((t, k) => {
    const tokens = [...tree.promptTokens];
    const lossMask: number[] = new Array(P).fill(0);
    const adv: number[] = new Array(P).fill(0);
    const sampled: number[] = new Array(P).fill(0);
    const sampledMask: (0 | 1)[] = new Array(P).fill(0);
    for (const id of t.segments) {
      const s = byId.get(id);
      if (!s) throw new ArpoError(`advantages: trajectory ${t.index} names missing segment ${id}`);
      let a = advantages[k];
      let learn = true;
      if (mode === "hard") {
        const who = sharers.get(id)!;
        learn = who[0] === k;
        a = who.reduce((x, j) => x + advantages[j], 0) / who.length;
      }
      s.tokens.forEach((tok, i) => {
        tokens.push(tok);
        lossMask.push(learn ? s.lossMask[i] : 0);
        adv.push(a);
        sampled.push(s.logprobs?.[i] ?? 0);
        sampledMask.push(sampledAt(s, i));
      });
    }
    return {
      trajectory: t.index,
      tokens,
      lossMask,
      advantages: adv,
      sampledLogp: sampled,
      sampledMask,
    };
  });
}
