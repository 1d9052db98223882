/**
 * 1 when the final answer equals an accepted answer after SQuAD normalization, else 0. The final
 * answer is the last `\boxed{}` in `<answer>`, else the last `\boxed{}` anywhere, else the
 * `<answer>` text; none of these → 0. Read from the model's own text (`modelText`): what a tool
 * printed is not the answer.
 */
import { defineReward, exactMatch, finalAnswer, modelText, z } from "arpo-lab";

export default defineReward({
  description: "1 when the final answer equals an accepted answer (SQuAD-normalized), else 0",
  options: z.object({}).strict(),
  create: () => ({
    score(sample) {
      const found = finalAnswer(modelText(sample));
      const em = found === null ? 0 : exactMatch(found, sample.answers);
      return { reward: em, parts: { exact_match: em, answer: found ?? "", found: found !== null } };
    },
  }),
});
