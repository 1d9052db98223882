/**
 * `arpo bench-data <benchmark> [--with JSON] [--split S] [--head N] [--seed N] [--demos] [--json]`:
 * build one benchmark plugin (built-in short name or path) and print its tasks, and with
 * `--demos` their demonstrations.
 */
import { ArpoError } from "../../errors.ts";
import { parse } from "./_common.ts";
import type { ChatMessage, Demonstration, Task } from "../../plugin/contracts.ts";
import { loadLocalPlugin } from "../../plugin/local.ts";

export const summary = "print a benchmark's tasks (and demonstrations) for a split";

const USAGE = "deno task arpo bench-data <benchmark> [--with JSON] [--split NAME] [--head N] " +
  "[--seed N] [--demos] [--json]";

/** Parse `--with` JSON into an options object. */
export function parseWith(flag: string | undefined, command: string): Record<string, unknown> {
  if (flag === undefined) return {};
  let v: unknown;
  try {
    v = JSON.parse(flag);
  } catch (e) {
    throw new ArpoError(`${command}: --with must be a JSON object; ${(e as Error).message}`, {
      exitCode: 2,
    });
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new ArpoError(`${command}: --with must be a JSON object, found ${flag}`, { exitCode: 2 });
  }
  return v as Record<string, unknown>;
}

function intFlag(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^-?\d+$/.test(v)) {
    throw new ArpoError(`bench-data: --${name} expects an integer, found '${v}'`, { exitCode: 2 });
  }
  return Number(v);
}

function showPrompt(p: string | ChatMessage[]): string {
  if (typeof p === "string") return `  prompt: ${p}`;
  return p.map((m) => {
    const text = m.role === "system" && m.content.length > 160
      ? `${m.content.slice(0, 157)}… (${m.content.length} chars)`
      : m.content;
    return `  [${m.role}] ${text.replace(/\n/g, "\n    ")}`;
  }).join("\n");
}

export async function run(args: string[]): Promise<number> {
  const { values: v, positionals } = parse("bench-data", USAGE, args, {
    with: { type: "string" },
    split: { type: "string", arg: "NAME", help: "the split (default: test, else the first)" },
    head: { type: "string", arg: "N", help: "print the first N tasks, -1 for all (default: 3)" },
    seed: { type: "string", arg: "N", help: "the seed the benchmark is built with (default: 0)" },
    demos: { type: "boolean", help: "print the tasks' demonstrations too" },
    json: { type: "boolean" },
  }, { store: false });
  if (positionals.length !== 1) {
    throw new ArpoError(`bench-data: expected one benchmark name or path\nusage: ${USAGE}`, {
      exitCode: 2,
    });
  }
  const use = positionals[0];
  const head = intFlag("head", v.head, 3);
  const seed = intFlag("seed", v.seed, 0);
  const bench = await loadLocalPlugin("benchmark", use, parseWith(v.with, "bench-data"), { seed });
  const split = v.split ?? (bench.splits.includes("test") ? "test" : bench.splits[0]);
  if (!bench.splits.includes(split)) {
    throw new ArpoError(
      `bench-data: benchmark '${use}' has no split '${split}' (splits: ${bench.splits.join(", ")})`,
    );
  }
  const all: Task[] = await bench.tasks(split);
  const tasks = head < 0 ? all : all.slice(0, head);
  let demos: Demonstration[] | undefined;
  if (v.demos) {
    if (!bench.demonstrations) {
      throw new ArpoError(`bench-data: benchmark '${use}' has no demonstrations`);
    }
    const byTask = new Map((await bench.demonstrations(split)).map((d) => [d.taskId, d]));
    demos = tasks.map((t) => byTask.get(t.id)).filter((d): d is Demonstration => !!d);
  }
  if (v.json) {
    console.log(JSON.stringify(
      {
        benchmark: use,
        splits: bench.splits,
        split,
        count: all.length,
        tasks,
        demonstrations: demos,
      },
      null,
      2,
    ));
    return 0;
  }
  console.log(`${use}: split '${split}' of ${bench.splits.join(", ")}; ${all.length} tasks`);
  for (const t of tasks) {
    console.log(`\n# ${t.id}\n${showPrompt(t.prompt)}`);
    console.log(`  answers: ${JSON.stringify(t.answers)}`);
    if (t.meta) console.log(`  meta: ${JSON.stringify(t.meta)}`);
    const d = demos?.find((x) => x.taskId === t.id);
    if (d) console.log(`  demonstration:\n    ${d.response.replace(/\n/g, "\n    ")}`);
  }
  return 0;
}
