/**
 * A `policy.model` directory without tokenizer files (a trainer's checkpoint folder, a model
 * saved without them) serves only stages that use no text, such as sft on token-id data; a run
 * with any other stage is refused when it is planned, before plugins, weights or the store are
 * touched, so a missing tokenizer costs one message rather than a trained stage and a failed one.
 */
import { ArpoError } from "../errors.ts";
import type { StageConfig } from "../manifest/mod.ts";
import { missingTokenizerFiles } from "../policy/load.ts";
import type { StageKind } from "./stages.ts";

/**
 * Refuse the run when `dir` lacks tokenizer files and a stage needs them
 * (`StageKind.needsTokenizer`, true unless a kind says otherwise). `where` locates policy.model.
 */
export async function checkPolicyTokenizer(
  dir: string,
  stages: readonly StageConfig[],
  kinds: readonly StageKind[],
  where: string,
): Promise<void> {
  try {
    if (!(await Deno.stat(dir)).isDirectory) return;
  } catch {
    return; // checkModelPath reports a missing model
  }
  const missing = await missingTokenizerFiles(dir);
  if (!missing.length) return;
  const need = stages.filter((s, i) => kinds[i].needsTokenizer?.(s.options) ?? true);
  if (!need.length) return;
  const names = need.map((s) => `'${s.name}' (${s.kind})`);
  throw new ArpoError(
    `${where}: policy.model: the model directory ${dir} has no ${missing.join(" or ")}, but ` +
      `stage${names.length > 1 ? "s" : ""} ${names.join(", ")} need${
        names.length > 1 ? "" : "s"
      } the tokenizer (prompts, demonstrations or answers are text). Without tokenizer files ` +
      `only stages that use no text run, such as sft on token ids (\`data:\` lines with ` +
      `\`input_ids\`); copy tokenizer.json and tokenizer_config.json of the model the weights ` +
      `came from into the directory, or drop those stages. Nothing was run.`,
  );
}
