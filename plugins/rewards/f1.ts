/**
 * Token F1 (SQuAD normalization, max over aliases) of the final answer: the last `\boxed{}` in
 * `<answer>`, else the last `\boxed{}` anywhere, else the `<answer>` text; none of these → 0.
 * Read from the model's own text (`modelText`): what a tool printed is not the answer.
 */
import { defineReward, finalAnswer, modelText, tokenF1, z } from "arpo-lab";

export default defineReward({
  description: "token F1 of the final answer against the accepted answers",
  options: z.object({}).strict(),
  create: () => ({
    score(sample) {
      const found = finalAnswer(modelText(sample));
      const f1 = found === null ? 0 : tokenF1(found, sample.answers);
      return { reward: f1, parts: { f1, answer: found ?? "", found: found !== null } };
    },
  }),
});
