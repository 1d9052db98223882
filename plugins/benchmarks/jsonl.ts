/**
 * Any JSONL file as a benchmark: one split of tasks, one task per line. The question is taken from
 * `question_field`, else the first of `question` / `problem` / `Question`; the answer from
 * `answer_field` (default `answer`) as a string, a number or a list of aliases. GSM8K solutions
 * keep only the final answer after `####`. The presets (gsm8k.ts, math500.ts, …) call
 * `jsonlBenchmark` with their defaults.
 *
 * Correctness (what accuracy and pass@k count) is the `judge` option: `exact`, exact match after
 * SQuAD normalization against any alias (the QA presets: hotpotqa, 2wiki, musique, bamboogle, and
 * plain `jsonl`); `math`, mathematical equivalence (`mathEqual`: `\boxed{0.5}` answers `\frac12`;
 * the math presets: gsm8k, math500, aime24, aime25).
 */
import {
  ArpoError,
  buildPrompt,
  defineBenchmark,
  exactMatch,
  mathEqual,
  type PluginFactory,
  promptTools,
  type Task,
  z,
} from "arpo-lab";

const QUESTION_FIELDS = ["question", "problem", "Question"];
const ID_FIELDS = ["id", "idx", "_id"];

/** Options of the jsonl benchmark and its presets. */
export const jsonlOptions = z.object({
  /** The JSONL file, relative to the manifest. */
  path: z.string().min(1),
  /** The name of the one split this file provides. */
  split: z.string().min(1).default("test"),
  question_field: z.string().optional(),
  answer_field: z.string().default("answer"),
  /** `auto`: keep the text after a `####` line when there is one (GSM8K); `gsm8k`: require it. */
  answer_extract: z.enum(["auto", "gsm8k", "none"]).default("auto"),
  /** Keep the first `limit` rows. */
  limit: z.number().int().positive().optional(),
  /** Tools the system prompt describes; `system` replaces the whole system prompt (null: none). */
  tools: z.array(z.string()).default(["search", "python"]),
  system: z.string().nullable().optional(),
  /**
   * How an answer is judged correct: `exact` (exact match after SQuAD normalization, any alias)
   * or `math` (mathematical equivalence, `mathEqual`).
   */
  judge: z.enum(["exact", "math"]).default("exact"),
}).strict();

export type JsonlOptions = z.output<typeof jsonlOptions>;

/** How a judge decides: whether `answer` is correct for one of `answers`. */
export const JUDGES: Record<JsonlOptions["judge"], (answer: string, answers: string[]) => boolean> =
  {
    exact: (answer, answers) => exactMatch(answer, answers) === 1,
    math: (answer, answers) => answers.some((a) => mathEqual(answer, a)),
  };

/** The final answer of a GSM8K solution ("… #### 18" → "18"), or null when it has no `####`. */
export function gsm8kFinal(solution: string): string | null {
  const i = solution.lastIndexOf("####");
  if (i < 0) return null;
  return solution.slice(i + 4).trim().replace(/,(?=\d{3}\b)/g, "");
}

function answersOf(v: unknown, o: JsonlOptions, where: string): string[] {
  const fail = (found: string): never => {
    throw new ArpoError(
      `${where}: field '${o.answer_field}' must be a non-empty string, a number or a list of ` +
        `them; found ${found}`,
    );
  };
  let list: string[];
  if (typeof v === "string") list = [v];
  else if (typeof v === "number" || typeof v === "bigint") list = [String(v)];
  else if (Array.isArray(v) && v.length > 0) {
    list = v.map((x) =>
      typeof x === "string" || typeof x === "number" ? String(x) : fail(JSON.stringify(v))
    );
  } else return fail(v === undefined ? "no such field" : JSON.stringify(v));
  if (o.answer_extract !== "none") {
    list = list.map((a) => {
      const f = gsm8kFinal(a);
      if (f === null && o.answer_extract === "gsm8k") {
        throw new ArpoError(`${where}: answer has no '#### <final answer>' line (GSM8K layout)`);
      }
      return f ?? a;
    });
  }
  list = list.map((a) => a.trim());
  if (list.some((a) => a.length === 0)) fail(JSON.stringify(v));
  return list;
}

/** Parse JSONL text into tasks. `source` names the file in errors. */
export function parseJsonlTasks(
  text: string,
  o: JsonlOptions,
  source: string,
  dataset: string,
): Task[] {
  const rows: { line: number; row: Record<string, unknown> }[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw.length === 0) continue;
    let row: unknown;
    try {
      row = JSON.parse(raw);
    } catch (e) {
      throw new ArpoError(`${source}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    if (row === null || typeof row !== "object" || Array.isArray(row)) {
      throw new ArpoError(
        `${source}:${i + 1}: expected a JSON object per line, found ${raw.slice(0, 60)}`,
      );
    }
    rows.push({ line: i + 1, row: row as Record<string, unknown> });
    if (o.limit !== undefined && rows.length >= o.limit) break;
  }
  if (rows.length === 0) throw new ArpoError(`${source}: no rows (an empty JSONL file)`);
  // ids from the file when they are present and unique, else line numbers
  const idField = ID_FIELDS.find((f) => rows.every((r) => r.row[f] !== undefined));
  const fileIds = idField ? rows.map((r) => String(r.row[idField])) : null;
  const useFileIds = fileIds !== null && new Set(fileIds).size === fileIds.length;
  const tools = promptTools(o.tools);
  return rows.map(({ line, row }, k) => {
    const where = `${source}:${line}`;
    const qField = o.question_field ?? QUESTION_FIELDS.find((f) => typeof row[f] === "string");
    const q = qField === undefined ? undefined : row[qField];
    if (typeof q !== "string" || q.trim().length === 0) {
      throw new ArpoError(
        `${where}: no question: expected a non-empty string in ` +
          `${
            o.question_field
              ? `'${o.question_field}'`
              : QUESTION_FIELDS.map((f) => `'${f}'`).join(" / ")
          }` +
          `; the row has fields ${Object.keys(row).join(", ")}`,
      );
    }
    const answers = answersOf(row[o.answer_field], o, where);
    const id = useFileIds ? fileIds![k] : String(line);
    return {
      id,
      prompt: buildPrompt(q, { tools, system: o.system }),
      answers,
      meta: { dataset, split: o.split, line, question: q },
    };
  });
}

/**
 * A jsonl benchmark factory with preset defaults (a preset's options are the jsonl options with
 * its defaults filled in; `path` stays required).
 */
export function jsonlBenchmark(
  dataset: string,
  defaults: Partial<Omit<JsonlOptions, "path">> = {},
): PluginFactory<"benchmark", JsonlOptions> {
  const schema = z.preprocess(
    (v) => (v && typeof v === "object" && !Array.isArray(v) ? { ...defaults, ...v } : v),
    jsonlOptions,
  );
  return defineBenchmark({
    description: `${dataset}: questions and answers from a JSONL file`,
    options: schema,
    async create(o, ctx) {
      const text = await ctx.readText(o.path);
      const tasks = parseJsonlTasks(text, o, o.path, dataset);
      const judge = JUDGES[o.judge];
      return {
        splits: [o.split],
        correct: (answer: string, task: Task) => judge(answer, task.answers),
        tasks(split: string) {
          if (split !== o.split) {
            throw new ArpoError(
              `${ctx.name}: no split '${split}' (this file is split '${o.split}')`,
            );
          }
          return tasks;
        },
      };
    },
  }) as PluginFactory<"benchmark", JsonlOptions>;
}

export default jsonlBenchmark("jsonl");
