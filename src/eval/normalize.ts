/**
 * SQuAD answer normalization (the official SQuAD v1.1 evaluation script, as the ARPO reference's
 * `normalize_answer`): lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse
 * whitespace.
 */

// string.punctuation in Python: the 32 ASCII punctuation characters.
const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");

/**
 * Lowercase, strip punctuation and articles, collapse whitespace.
 *
 * @param s An answer.
 * @returns Its SQuAD-normalized form.
 *
 * @example
 * ```ts
 * import { normalizeAnswer } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(normalizeAnswer("The  Eiffel Tower!"), "eiffel tower");
 * ```
 */
export function normalizeAnswer(s: string): string {
  const lower = s.toLowerCase();
  let noPunct = "";
  for (const ch of lower) if (!PUNCTUATION.has(ch)) noPunct += ch;
  // SQuAD removes articles as whole words (Python's Unicode-aware \b(a|an|the)\b; JS's \b is
  // ASCII-only, so "ça" would lose its "a") and then joins on whitespace.
  const noArticles = noPunct.replace(
    /(?<![\p{L}\p{M}\p{N}_])(?:a|an|the)(?![\p{L}\p{M}\p{N}_])/gu,
    " ",
  );
  return noArticles.split(/\s+/).filter((t) => t.length > 0).join(" ");
}

/**
 * The normalized answer's tokens (whitespace split).
 *
 * @param s An answer.
 * @returns The tokens of its normalized form (none for an empty one).
 *
 * @example
 * ```ts
 * import { answerTokens } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(answerTokens("An apple, a day"), ["apple", "day"]);
 * ```
 */
export function answerTokens(s: string): string[] {
  const n = normalizeAnswer(s);
  return n.length === 0 ? [] : n.split(" ");
}
