/**
 * The ARPO hierarchical reward (ARPO.md §5, the reference's `compute_score`):
 * format failure → −1; otherwise token F1 of the last `\boxed{}` in the answer against the
 * accepted answers (SQuAD normalization, max over aliases), plus a bonus (0.1) when F1 > 0 and
 * every one of the bonus tools (search and python) was called. Everything is read from the model's
 * own text (`modelText`): a tool's output can neither answer nor forge the format.
 */
import {
  boxedAnswer,
  checkFormat,
  defineReward,
  modelText,
  type RewardResult,
  tokenF1,
  toolsUsed,
  z,
} from "arpo-lab";

export default defineReward({
  description: "ARPO hierarchical reward: format −1, token F1 of \\boxed{} answer, +0.1 multi-tool",
  options: z.object({
    /** Tool tags whose calls the format check verifies (each followed by </tag><result></result>). */
    tools: z.array(z.string().regex(/^[A-Za-z][\w-]*$/)).default(["search", "python"]),
    /** Tags that must all have been called for the bonus. */
    bonus_tools: z.array(z.string().regex(/^[A-Za-z][\w-]*$/)).default(["search", "python"]),
    bonus: z.number().default(0.1),
    format_penalty: z.number().default(-1),
  }).strict(),
  create: (o) => ({
    score(sample): RewardResult {
      const tags = [...new Set([...o.tools, ...o.bonus_tools])];
      // Judged on the model's own text (results reduced to empty frames), like the reference
      // otherwise: a call is <tag>…</tag> then <result>.
      const own = modelText(sample);
      const used = toolsUsed(own, tags);
      const usedTools = tags.filter((t) => used.includes(t)).join(",");
      const fmt = checkFormat(own, o.tools);
      if (!fmt.ok) {
        return {
          reward: o.format_penalty,
          parts: {
            format_ok: false,
            f1: 0,
            bonus: 0,
            used_tools: usedTools,
            format_error: fmt.reason,
          },
        };
      }
      const answer = boxedAnswer(own) ?? "";
      const f1 = tokenF1(answer, sample.answers);
      const bonus = f1 > 0 && o.bonus_tools.every((t) => used.includes(t)) ? o.bonus : 0;
      return {
        reward: f1 + bonus,
        parts: { format_ok: true, f1, bonus, used_tools: usedTools, answer },
      };
    },
  }),
});
