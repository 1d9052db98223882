/**
 * `\boxed{…}` extraction with brace matching (nested braces, escaped braces), as the MATH
 * reference's `last_boxed_only_string` + `remove_boxed`, which the ARPO reward uses.
 */

/** A `\boxed` occurrence: its content and where the whole `\boxed{…}` spans. */
export interface BoxedSpan {
  /** The text between the braces (or the token after `\boxed `). */
  content: string;
  /** Index of the backslash of `\boxed`. */
  start: number;
  /** Index just past the closing brace (or the token). */
  end: number;
}

/**
 * Every well-formed `\boxed{…}` (and `\fbox{…}`) in order; the space form `\boxed 5` takes the
 * token up to the next space or `$`. An unclosed brace ends the scan (that box is not returned).
 *
 * @param text Any text, e.g. a response.
 * @returns The boxes in order, with their content and span.
 *
 * @example Nested braces
 * ```ts
 * import { boxedSpans } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(boxedSpans("a \\boxed{1} b \\boxed{x^{2}}"), [
 *   { content: "1", start: 2, end: 11 },
 *   { content: "x^{2}", start: 14, end: 27 },
 * ]);
 * ```
 */
export function boxedSpans(text: string): BoxedSpan[] {
  const out: BoxedSpan[] = [];
  const re = /\\(?:boxed|fbox)(?![a-zA-Z])/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    let i = m.index + m[0].length;
    if (text[i] === " " && text[i + 1] !== "{") {
      // `\boxed 5`: the reference's space form
      const rest = text.slice(i + 1);
      const tok = rest.match(/^[^\s$]+/);
      if (tok) {
        out.push({ content: tok[0], start: m.index, end: i + 1 + tok[0].length });
        re.lastIndex = i + 1 + tok[0].length;
      }
      continue;
    }
    while (text[i] === " ") i++;
    if (text[i] !== "{") continue;
    const close = matchBrace(text, i);
    if (close < 0) break;
    out.push({ content: text.slice(i + 1, close), start: m.index, end: close + 1 });
    re.lastIndex = close + 1;
  }
  return out;
}

/**
 * Index of the `}` matching the `{` at `open`, or −1; `\{` and `\}` do not count.
 *
 * @param text The text.
 * @param open Index of an opening brace in `text`.
 * @returns Index of the matching closing brace, or −1 when it is not closed.
 *
 * @example
 * ```ts
 * import { matchBrace } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(matchBrace("{a{b}c} d", 0), 6);
 * assert.equal(matchBrace("{a{b}", 0), -1);
 * ```
 */
export function matchBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === "\\") {
      i++; // skip the escaped character
      continue;
    }
    if (c === "{") depth++;
    else if (c === "}") {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/**
 * Contents of every `\boxed{…}` in order.
 *
 * @param text Any text, e.g. a response.
 * @returns The contents of the boxes.
 *
 * @example
 * ```ts
 * import { extractBoxed } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(extractBoxed("\\boxed{1} and \\boxed{2}"), ["1", "2"]);
 * ```
 */
export function extractBoxed(text: string): string[] {
  return boxedSpans(text).map((s) => s.content);
}

/**
 * Content of the last `\boxed{…}`, or null when there is none or the last one is not closed
 * (the reference fails on an unclosed last box rather than falling back to an earlier one).
 *
 * @param text Any text, e.g. a response.
 * @returns The content of the last box, or null.
 *
 * @example
 * ```ts
 * import { lastBoxed } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(lastBoxed("first \\boxed{1}, then \\boxed{\\frac{1}{2}}"), "\\frac{1}{2}");
 * assert.equal(lastBoxed("\\boxed{1} then \\boxed{2"), null); // the last box is not closed
 * ```
 */
export function lastBoxed(text: string): string | null {
  const idx = Math.max(text.lastIndexOf("\\boxed"), text.lastIndexOf("\\fbox"));
  if (idx < 0) return null;
  const spans = boxedSpans(text.slice(idx));
  return spans.length > 0 && spans[0].start === 0 ? spans[0].content : null;
}
