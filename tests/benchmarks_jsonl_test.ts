import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Benchmark, ChatMessage, PluginFactory, Task } from "arpo-lab";
import { ArpoError, systemPrompt } from "arpo-lab";
import { localPluginContext } from "../src/plugin/local.ts";
import jsonl from "../plugins/benchmarks/jsonl.ts";
import parquet from "../plugins/benchmarks/parquet.ts";

const FIX = fileURLToPath(new URL("./fixtures/benchmarks/", import.meta.url));
const DATA = fileURLToPath(new URL("../../shared/data/arpo/", import.meta.url));
const HAVE_DATA = existsSync(new URL("../../shared/data", import.meta.url));

async function load(
  f: PluginFactory<"benchmark">,
  opts: unknown,
  baseDir = FIX,
): Promise<Benchmark> {
  return await f(opts, localPluginContext({ name: "b", baseDir })) as Benchmark;
}

function question(t: Task): string {
  const msgs = t.prompt as ChatMessage[];
  return msgs[msgs.length - 1].content;
}

Deno.test("jsonl: field fallbacks, answer kinds, #### extraction, chat prompt", async () => {
  const b = await load(jsonl, { path: "tiny.jsonl" });
  assert.deepEqual(b.splits, ["test"]);
  const tasks = await b.tasks("test");
  assert.equal(tasks.length, 3);
  assert.deepEqual(tasks.map(question), [
    "What is 2+2?",
    "Name a primary color.",
    "How many eggs?",
  ]);
  assert.deepEqual(tasks.map((t) => t.answers), [["4"], ["red", "blue", "yellow"], ["1007"]]);
  assert.deepEqual(tasks.map((t) => t.id), ["1", "2", "4"]); // line numbers (no id field)
  const msgs = tasks[0].prompt as ChatMessage[];
  assert.equal(msgs[0].role, "system");
  assert.equal(msgs[0].content, systemPrompt());
  assert.ok(msgs[0].content.includes("<search>") && msgs[0].content.includes("\\boxed{}"));
  const limited = await load(jsonl, { path: "tiny.jsonl", limit: 2, split: "dev", system: null });
  assert.equal((await limited.tasks("dev")).length, 2);
  assert.equal(((await limited.tasks("dev"))[0].prompt as ChatMessage[]).length, 1);
  assert.throws(() => limited.tasks("test"), /no split 'test'/);
});

Deno.test("jsonl: bad files and options are ArpoErrors naming file, line and field", async () => {
  await assert.rejects(() => load(jsonl, { path: "bad_answer.jsonl" }), (e: Error) => {
    assert.ok(e instanceof ArpoError);
    assert.match(e.message, /bad_answer\.jsonl:2: field 'answer'/);
    return true;
  });
  await assert.rejects(
    () => load(jsonl, { path: "bad_json.jsonl" }),
    /bad_json\.jsonl:2: not valid JSON/,
  );
  await assert.rejects(() => load(jsonl, { path: "missing.jsonl" }), /cannot read data file/);
  await assert.rejects(
    () => load(jsonl, { path: "tiny.jsonl", question_field: "nope" }),
    /tiny\.jsonl:1: no question.*'nope'/,
  );
  await assert.rejects(() => load(jsonl, { path: "tiny.jsonl", answer_extract: "gsm8k" }), /####/);
  await assert.rejects(() => load(jsonl, {}), /path/);
});

// file, rows, and a few [index, answers] checks read off the files by hand
const REAL: [string, number, [number, string[]][]][] = [
  ["gsm8k", 1319, [[0, ["18"]], [1, ["3"]]]],
  ["math500", 500, [[0, ["\\left( 3, \\frac{\\pi}{2} \\right)"]], [1, ["p - q"]]]],
  ["aime24", 30, [[0, ["204"]]]],
  ["aime25", 30, [[0, ["70"]], [1, ["588"]]]],
  ["hotpotqa", 200, [[0, ["Frank Lowy"]], [1, ["1.95 m"]], [3, ["yes"]]]],
  ["2wiki", 200, [[2, ["Bernard-Roger, Count of Bigorre"]]]],
  ["musique", 200, [[1, ["Emperor Zhaozong of Tang", "Li Jie", "Li Ye"]]]],
  ["bamboogle", 125, [[0, ["james madison"]], [1, ["Titan IIIE"]]]],
];

Deno.test("presets load the real eval files", async (t) => {
  if (!HAVE_DATA) {
    console.log("skipped: ../shared/data is absent (public eval sets are not part of the repo)");
    return;
  }
  for (const [name, rows, checks] of REAL) {
    await t.step(name, async () => {
      const mod = await import(`../plugins/benchmarks/${name}.ts`);
      const b = await load(mod.default, { path: `eval/${name}.jsonl` }, DATA);
      const tasks = await b.tasks("test");
      assert.equal(tasks.length, rows);
      assert.equal(new Set(tasks.map((x) => x.id)).size, rows, "ids are unique");
      for (const [i, answers] of checks) assert.deepEqual(tasks[i].answers, answers);
      for (const task of tasks) assert.ok(question(task).length > 10, task.id);
    });
  }
});

Deno.test("parquet: verl layout of rl/valid.parquet (180 rows), backspace repaired", async () => {
  if (!HAVE_DATA) {
    console.log("skipped: ../shared/data is absent");
    return;
  }
  const b = await load(parquet, { path: "rl/valid.parquet", split: "valid" }, DATA);
  const tasks = await b.tasks("valid");
  assert.equal(tasks.length, 180);
  assert.equal(new Set(tasks.map((t) => t.id)).size, 180);
  const first = tasks[0];
  assert.deepEqual(first.answers, ["Eleanor Of Lancaster"]);
  assert.equal(question(first), "Who is older, William Henry Rodes Green or Eleanor Of Lancaster?");
  assert.equal(first.meta?.data_source, "DR_grpo_mix");
  const sys = (first.prompt as ChatMessage[])[0];
  assert.equal(sys.role, "system");
  assert.ok(!sys.content.includes("\u0008"));
  assert.ok(sys.content.includes("\\boxed{answer here}"));
  assert.deepEqual(tasks[170].answers, ["\\dfrac{17}{50}"]);
  assert.equal((tasks[170].meta?.extra_info as Record<string, unknown>).index, 170);
  JSON.stringify(tasks); // meta is JSON (no bigint)
  const raw = await load(
    parquet,
    { path: "rl/valid.parquet", repair_backspace: false, limit: 5 },
    DATA,
  );
  const rawTasks = await raw.tasks("test");
  assert.equal(rawTasks.length, 5);
  assert.ok((rawTasks[0].prompt as ChatMessage[])[0].content.includes("\u0008oxed"));
});

Deno.test("parquet: a non-parquet file is an ArpoError", async () => {
  await assert.rejects(
    () => load(parquet, { path: "tiny.jsonl" }),
    /tiny\.jsonl: not a readable parquet/,
  );
});
