/**
 * Token-level F1 and exact match against one or more accepted answers (aliases), with SQuAD
 * normalization; the score is the maximum over the aliases, as in the ARPO reference
 * (`get_f1_score`) and the HotpotQA evaluation.
 */
import { answerTokens, normalizeAnswer } from "./normalize.ts";

/** Precision, recall and F1 of one prediction against one gold answer. */
export interface F1Parts {
  /** Harmonic mean of precision and recall. */
  f1: number;
  /** Shared tokens over the prediction's tokens. */
  precision: number;
  /** Shared tokens over the gold answer's tokens. */
  recall: number;
}

// HotpotQA / the ARPO reference: a yes/no/noanswer prediction or gold only scores if both are equal.
const SPECIAL = new Set(["yes", "no", "noanswer"]);

/**
 * Token F1 of a prediction against a single gold string.
 *
 * @param prediction The predicted answer.
 * @param gold One accepted answer.
 * @returns F1, precision and recall over the normalized tokens.
 *
 * @example
 * ```ts
 * import { tokenF1Single } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const { f1, precision, recall } = tokenF1Single("the Eiffel Tower", "Eiffel Tower in Paris");
 * assert.deepEqual([precision, recall], [1, 0.5]);
 * assert.equal(f1, 2 / 3);
 * ```
 */
export function tokenF1Single(prediction: string, gold: string): F1Parts {
  const np = normalizeAnswer(prediction), ng = normalizeAnswer(gold);
  const zero = { f1: 0, precision: 0, recall: 0 };
  if ((SPECIAL.has(np) || SPECIAL.has(ng)) && np !== ng) return zero;
  const p = answerTokens(prediction), g = answerTokens(gold);
  if (p.length === 0 || g.length === 0) return zero;
  const counts = new Map<string, number>();
  for (const t of g) counts.set(t, (counts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of p) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      same++;
      counts.set(t, c - 1);
    }
  }
  if (same === 0) return zero;
  const precision = same / p.length, recall = same / g.length;
  return { f1: (2 * precision * recall) / (precision + recall), precision, recall };
}

function aliases(golds: string | readonly string[]): readonly string[] {
  return typeof golds === "string" ? [golds] : golds;
}

/**
 * Token F1, maximum over the accepted answers (0 when there are none).
 *
 * @param prediction The predicted answer.
 * @param golds The accepted answer, or answers (aliases).
 * @returns The best F1 over the aliases.
 *
 * @example
 * ```ts
 * import { tokenF1 } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(tokenF1("Eiffel Tower", ["the Eiffel Tower", "Tour Eiffel"]), 1);
 * assert.equal(tokenF1("Eiffel", "the Eiffel Tower"), 2 / 3);
 * ```
 */
export function tokenF1(prediction: string, golds: string | readonly string[]): number {
  let best = 0;
  for (const g of aliases(golds)) best = Math.max(best, tokenF1Single(prediction, g).f1);
  return best;
}

/**
 * 1 when the normalized prediction equals a normalized accepted answer, else 0.
 *
 * @param prediction The predicted answer.
 * @param golds The accepted answer, or answers (aliases).
 * @returns 1 or 0.
 *
 * @example
 * ```ts
 * import { exactMatch } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(exactMatch("The Eiffel Tower!", ["eiffel tower", "tour Eiffel"]), 1);
 * assert.equal(exactMatch("Paris", "eiffel tower"), 0);
 * ```
 */
export function exactMatch(prediction: string, golds: string | readonly string[]): number {
  const np = normalizeAnswer(prediction);
  return aliases(golds).some((g) => normalizeAnswer(g) === np) ? 1 : 0;
}
