/**
 * The ARPO tag protocol as the reward reads it (ARPO.md §1, §5; the reference's `validate_format`):
 * format rules, the answer span, and which tools a response used.
 */
import { boxedSpans, lastBoxed } from "./boxed.ts";

/** Whether a response follows the tag protocol, and if not, why. */
export type FormatCheck = { ok: true } | { ok: false; reason: string };

function count(text: string, needle: string): number {
  let n = 0;
  for (let i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + needle.length)) n++;
  return n;
}

/**
 * The format rules of ARPO.md §5, in the reference's order: `<think>`/`</think>` balanced and
 * present; exactly one `<answer>` and one `</answer>`; every `<tag>` of a tool followed by
 * `</tag>`, then `<result>`, then `</result>`; `<answer>` before `</answer>`; the answer holds a
 * `\boxed{…}` that closes.
 *
 * @param text A response.
 * @param toolTags The tags of the tools whose calls are checked.
 * @returns `{ ok: true }`, or `{ ok: false, reason }` for the first rule broken.
 *
 * @example
 * ```ts
 * import { checkFormat } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const response = "<think>Look it up.</think><search>capital of France</search>" +
 *   "<result>Paris</result><answer>It is \\boxed{Paris}.</answer>";
 * assert.deepEqual(checkFormat(response, ["search"]), { ok: true });
 * assert.deepEqual(checkFormat("Paris", []), { ok: false, reason: "no <think> … </think> block" });
 * ```
 */
export function checkFormat(
  text: string,
  toolTags: readonly string[] = ["search", "python"],
): FormatCheck {
  const opens = count(text, "<think>"), closes = count(text, "</think>");
  if (opens !== closes) return { ok: false, reason: "<think> and </think> are not paired" };
  if (opens === 0) return { ok: false, reason: "no <think> … </think> block" };
  if (count(text, "<answer>") !== 1 || count(text, "</answer>") !== 1) {
    return { ok: false, reason: "needs exactly one <answer> and one </answer>" };
  }
  for (const tag of toolTags) {
    const open = `<${tag}>`, close = `</${tag}>`;
    let pos = 0;
    for (;;) {
      const callPos = text.indexOf(open, pos);
      if (callPos < 0) break;
      const callEnd = text.indexOf(close, callPos);
      const resPos = text.indexOf("<result>", callPos);
      const resEnd = resPos < 0 ? -1 : text.indexOf("</result>", resPos);
      if (callEnd < 0 || resPos < 0 || resEnd < 0) {
        return {
          ok: false,
          reason: `${open} call without ${close}, <result> and </result> after it`,
        };
      }
      if (!(callPos < callEnd && callEnd < resPos && resPos < resEnd)) {
        return {
          ok: false,
          reason: `${open} … ${close} and <result> … </result> are out of order`,
        };
      }
      pos = resEnd;
    }
  }
  const a = text.indexOf("<answer>"), b = text.indexOf("</answer>");
  if (a > b) return { ok: false, reason: "</answer> comes before <answer>" };
  const inner = text.slice(a + "<answer>".length, b);
  if (!inner.includes("\\boxed{") || !inner.includes("}")) {
    return { ok: false, reason: "the answer has no \\boxed{…}" };
  }
  const spans = boxedSpans(inner);
  const lastStart = inner.lastIndexOf("\\boxed");
  if (spans.length === 0 || spans[spans.length - 1].start !== lastStart) {
    return { ok: false, reason: "the last \\boxed{ in the answer is not closed" };
  }
  return { ok: true };
}

/**
 * Text between `<answer>` and `</answer>` (the first pair), or null.
 *
 * @param text A response.
 * @returns The answer's text, untrimmed, or null when there is no answer span.
 *
 * @example
 * ```ts
 * import { answerSpan } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(answerSpan("<think>…</think><answer> 42 </answer>"), " 42 ");
 * assert.equal(answerSpan("42"), null);
 * ```
 */
export function answerSpan(text: string): string | null {
  const a = text.indexOf("<answer>");
  if (a < 0) return null;
  const b = text.indexOf("</answer>", a);
  return b < 0 ? null : text.slice(a + "<answer>".length, b);
}

/**
 * Content of the last `\boxed{…}` inside the answer span, or null.
 *
 * @param text A response.
 * @returns The boxed answer, or null.
 *
 * @example
 * ```ts
 * import { boxedAnswer } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(boxedAnswer("\\boxed{1}<answer>It is \\boxed{2}.</answer>"), "2");
 * assert.equal(boxedAnswer("<answer>2</answer>"), null);
 * ```
 */
export function boxedAnswer(text: string): string | null {
  const inner = answerSpan(text);
  if (inner === null) return null;
  const spans = boxedSpans(inner);
  return spans.length === 0 ? null : spans[spans.length - 1].content;
}

/**
 * Tool tags the response called, in the order given. A call is `<tag>…</tag>` followed by a
 * `<result>`, outside any result block: a tag inside a tool's output, or inside another call's
 * body (code that prints "<search>"), is not a call.
 *
 * @param text A response.
 * @param toolTags The tags to look for.
 * @returns The tags called at least once, in the order of `toolTags`.
 *
 * @example
 * ```ts
 * import { toolsUsed } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const response = "<think>…</think><python>print(6 * 7)</python><result>42</result>" +
 *   "<answer>\\boxed{42}</answer>";
 * assert.deepEqual(toolsUsed(response, ["search", "python"]), ["python"]);
 * ```
 */
export function toolsUsed(
  text: string,
  toolTags: readonly string[] = ["search", "python"],
): string[] {
  if (toolTags.length === 0) return [];
  const esc = toolTags.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const re = new RegExp(
    `<result>[\\s\\S]*?</result>|<(${esc.join("|")})>[\\s\\S]*?</\\1>\\s*(?=<result>)`,
    "g",
  );
  const used = new Set<string>();
  for (const m of text.matchAll(re)) if (m[1] !== undefined) used.add(m[1]);
  return toolTags.filter((t) => used.has(t));
}

/**
 * The final answer a metric reward scores: the last `\boxed{…}` in `<answer>`, else the last
 * `\boxed{…}` anywhere, else the trimmed `<answer>` text; null when there is none of these.
 *
 * @param text A response.
 * @returns The final answer, or null.
 *
 * @example
 * ```ts
 * import { finalAnswer } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(finalAnswer("<answer>It is \\boxed{4}.</answer>"), "4");
 * assert.equal(finalAnswer("so \\boxed{4}"), "4");
 * assert.equal(finalAnswer("<answer> Paris </answer>"), "Paris");
 * assert.equal(finalAnswer("no answer"), null);
 * ```
 */
export function finalAnswer(text: string): string | null {
  const inAnswer = boxedAnswer(text);
  if (inAnswer !== null) return inAnswer;
  const any = lastBoxed(text);
  if (any !== null) return any;
  const span = answerSpan(text);
  return span === null ? null : span.trim();
}
