/**
 * 1 when the final answer is mathematically equal to an accepted answer (LaTeX-aware, see
 * `mathEqual`), else 0. The final answer is the last `\boxed{}` in `<answer>`, else the last
 * `\boxed{}` anywhere, else the `<answer>` text; none of these → 0. Read from the model's own
 * text (`modelText`): what a tool printed is not the answer.
 */
import { defineReward, finalAnswer, mathEqual, modelText, z } from "arpo-lab";

export default defineReward({
  description: "1 when the final answer equals an accepted answer mathematically, else 0",
  options: z.object({
    /** Relative tolerance of numeric comparison. */
    rel_tol: z.number().positive().default(1e-6),
  }).strict(),
  create: (o) => ({
    score(sample) {
      const found = finalAnswer(modelText(sample));
      const ok = found !== null &&
        sample.answers.some((g) => mathEqual(found, g, { relTol: o.rel_tol }));
      const v = ok ? 1 : 0;
      return { reward: v, parts: { math_equal: v, answer: found ?? "", found: found !== null } };
    },
  }),
});
