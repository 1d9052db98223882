/**
 * Options that several built-in stage kinds share: how many questions (`questions:`) and which
 * weights a stage starts from (`from:`), with the rule that turns `from` into the one earlier
 * stage the stage reads.
 */
import { z } from "zod";
import { ArpoError } from "../../errors.ts";
import type { EarlierStage } from "../stages.ts";

/** `questions: 200` or `questions: all`. */
export const questionsSchema = z.union([z.int().min(1), z.literal("all")]);

/** `from: <stage>` or `from: policy`. */
export const fromSchema = z.string().min(1).optional().describe(
  "stage whose weights to start from ('policy': the manifest's policy); default: the latest earlier stage with weights",
);

/**
 * The earlier stage whose weights a stage starts from, as a `reads` list: `from: <stage>` names
 * it (`from: policy`: none, the manifest's policy), else the latest earlier stage that produced a
 * `weights` output (sft, rl), else none.
 */
export function weightsSource(
  from: string | undefined,
  earlier: readonly EarlierStage[],
  name: string,
): string[] {
  if (from === "policy") return [];
  if (from !== undefined) {
    const source = earlier.find((s) => s.name === from);
    if (!source) {
      throw new ArpoError(
        `stage '${name}': from: '${from}' must name an earlier stage (${
          earlier.map((s) => s.name).join(", ") || "there is none"
        }) or 'policy' for the manifest's policy.`,
      );
    }
    if (source.outputs.weights === undefined) {
      throw new ArpoError(
        `stage '${name}': from: '${from}' names a stage that produced no weights (only sft ` +
          `and rl stages do).`,
      );
    }
    return [from];
  }
  const latest = [...earlier].reverse().find((s) => s.outputs.weights !== undefined);
  return latest ? [latest.name] : [];
}
