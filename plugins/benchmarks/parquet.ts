/**
 * A parquet file in the verl RL layout as a benchmark: `prompt` (chat messages), `data_source`,
 * `reward_model.ground_truth` (a string or a list of aliases), `extra_info`, read with hyparquet.
 *
 * The ARPO release's files store the system prompt's `\boxed` with a literal backspace byte
 * (a Python "\b" escape that was never doubled). With `repair_backspace` (the default) every
 * U+0008 in a prompt becomes the two characters `\b`, which is what the authors meant; the byte
 * never belongs in text a model reads. Set it to false to serve the bytes exactly as stored.
 *
 * Correctness (what accuracy and pass@k count) is the `judge` option: `exact`, exact match after
 * SQuAD normalization against any alias; `math`, mathematical equivalence (`mathEqual`); `auto`
 * (the default), per row by its `ability`: `math` rows by mathEqual, the others (`qa`) by exact
 * match. The release's valid.parquet has 100 math and 80 qa rows.
 */
import { parquetReadObjects } from "hyparquet";
import {
  ArpoError,
  type ChatMessage,
  defineBenchmark,
  exactMatch,
  mathEqual,
  type Task,
  z,
} from "arpo-lab";

const ROLES = new Set(["system", "user", "assistant", "tool"]);

/** JSON-safe copy: bigint → number (or string beyond 2^53), typed arrays → arrays. */
export function toJson(v: unknown): unknown {
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : String(v);
  if (v instanceof Date) return v.toISOString();
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
  if (Array.isArray(v)) return v.map(toJson);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]));
  }
  return v;
}

export default defineBenchmark({
  description: "tasks from a verl-layout parquet file (prompt messages, reward_model.ground_truth)",
  options: z.object({
    path: z.string().min(1),
    split: z.string().min(1).default("test"),
    limit: z.number().int().positive().optional(),
    /** Only rows whose data_source is one of these. */
    data_sources: z.array(z.string()).optional(),
    repair_backspace: z.boolean().default(true),
    /** How answers are judged correct: `exact`, `math`, or `auto` (by each row's `ability`). */
    judge: z.enum(["auto", "exact", "math"]).default("auto"),
  }).strict(),
  async create(o, ctx) {
    const bytes = await ctx.readFile(o.path);
    let rows: Record<string, unknown>[];
    try {
      const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      rows = await parquetReadObjects({ file: file as ArrayBuffer });
    } catch (e) {
      throw new ArpoError(`${o.path}: not a readable parquet file (${(e as Error).message})`);
    }
    const fix = (s: string) => (o.repair_backspace ? s.replaceAll("\u0008", "\\b") : s);
    const tasks: Task[] = [];
    const mathTasks = new Set<string>(); // ids of the tasks judged by mathEqual
    const seen = new Set<string>();
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r];
      const where = `${o.path} row ${r}`;
      const source = row.data_source === undefined ? "" : String(row.data_source);
      if (o.data_sources && !o.data_sources.includes(source)) continue;
      if (!Array.isArray(row.prompt) || row.prompt.length === 0) {
        throw new ArpoError(
          `${where}: 'prompt' must be a list of chat messages, found ${typeof row.prompt}`,
        );
      }
      const prompt: ChatMessage[] = row.prompt.map((m: unknown, i: number) => {
        const msg = m as { role?: unknown; content?: unknown };
        if (
          typeof msg?.role !== "string" || !ROLES.has(msg.role) || typeof msg.content !== "string"
        ) {
          throw new ArpoError(
            `${where}: prompt[${i}] must be {role: system|user|assistant|tool, content: string}`,
          );
        }
        return { role: msg.role as ChatMessage["role"], content: fix(msg.content) };
      });
      const rm = row.reward_model as { ground_truth?: unknown } | null | undefined;
      const gt = rm?.ground_truth;
      const answers = typeof gt === "string" || typeof gt === "number" || typeof gt === "bigint"
        ? [String(gt)]
        : Array.isArray(gt) || ArrayBuffer.isView(gt)
        ? Array.from(gt as ArrayLike<unknown>).map(String)
        : null;
      if (!answers || answers.length === 0) {
        throw new ArpoError(
          `${where}: 'reward_model.ground_truth' must be a string, number or list; found ${
            JSON.stringify(toJson(gt)) ?? "nothing"
          }`,
        );
      }
      const extra = (toJson(row.extra_info) ?? {}) as Record<string, unknown>;
      let id = extra.index !== undefined ? String(extra.index) : String(r);
      if (seen.has(id)) id = `row${r}`;
      seen.add(id);
      const ability = toJson(row.ability) ?? null;
      if (o.judge === "math" || (o.judge === "auto" && ability === "math")) mathTasks.add(id);
      tasks.push({
        id,
        prompt,
        answers,
        meta: {
          data_source: source,
          ability,
          extra_info: extra,
          row: r,
        },
      });
      if (o.limit !== undefined && tasks.length >= o.limit) break;
    }
    return {
      splits: [o.split],
      tasks(split: string) {
        if (split !== o.split) {
          throw new ArpoError(`${ctx.name}: no split '${split}' (this file is split '${o.split}')`);
        }
        return tasks;
      },
      correct: (answer: string, task: Task) =>
        mathTasks.has(task.id)
          ? task.answers.some((a) => mathEqual(answer, a))
          : exactMatch(answer, task.answers) === 1,
    };
  },
});
