/**
 * Correctness is the benchmark's, never reward ≥ 1 (src/eval/correct.ts): the default judge,
 * format failures and missing answers, each built-in benchmark's `correct`, and the eval stage's
 * accuracy, pass@k and per-question verdicts — a sample with F1 0.9 plus the 0.1 multi-tool bonus
 * (reward 1.0) is not correct; `\boxed{N.0}` for N on arith is, whatever the reward says.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Benchmark, PluginFactory, Reward, Task, Tool } from "arpo-lab";
import { ArpoError, defaultCorrect } from "arpo-lab";
import { judgeResponse } from "../src/eval/correct.ts";
import { localPluginContext } from "../src/plugin/local.ts";
import { evalOptionsSchema, runEval } from "../src/run/stages/eval.ts";
import arith, { arithCorrect } from "../plugins/benchmarks/arith.ts";
import kbqa from "../plugins/benchmarks/kbqa.ts";
import jsonl from "../plugins/benchmarks/jsonl.ts";
import parquet from "../plugins/benchmarks/parquet.ts";
import hotpotqa from "../plugins/benchmarks/hotpotqa.ts";
import twowiki from "../plugins/benchmarks/2wiki.ts";
import musique from "../plugins/benchmarks/musique.ts";
import bamboogle from "../plugins/benchmarks/bamboogle.ts";
import gsm8k from "../plugins/benchmarks/gsm8k.ts";
import math500 from "../plugins/benchmarks/math500.ts";
import aime24 from "../plugins/benchmarks/aime24.ts";
import aime25 from "../plugins/benchmarks/aime25.ts";
import arpoReward from "../plugins/rewards/arpo.ts";
import { stageContext } from "./fixtures/stage_context.ts";
import { type Script, ScriptedPolicy } from "./fixtures/rollout/scripted_policy.ts";

const FIX = fileURLToPath(new URL("./fixtures/benchmarks/", import.meta.url));
const DATA = fileURLToPath(new URL("../../shared/data/arpo/", import.meta.url));
const HAVE_DATA = existsSync(new URL("../../shared/data/arpo/rl/valid.parquet", import.meta.url));

async function load<P>(f: PluginFactory, opts: unknown, baseDir = FIX): Promise<P> {
  return await f(opts, localPluginContext({ name: "b", baseDir })) as P;
}

const task = (answers: string[], id = "t"): Task => ({ id, prompt: "?", answers });
const respond = (answer: string) => `<think>done</think><answer>It is \\boxed{${answer}}.</answer>`;

Deno.test("correctness: default is exact match after SQuAD normalization, any alias", () => {
  const t = task(["The Eiffel Tower", "Tour Eiffel"]);
  assert.ok(defaultCorrect("eiffel tower!", t));
  assert.ok(defaultCorrect("tour eiffel", t));
  assert.ok(!defaultCorrect("Eiffel", t)); // F1 0.67: partial credit is not correct
  assert.ok(!defaultCorrect("Tower Eiffel", t)); // token F1 1 but another answer: not correct
  const none: Pick<Benchmark, "correct"> = {};
  assert.deepEqual(judgeResponse(none, respond("Eiffel Tower"), t, []), {
    correct: true,
    answer: "Eiffel Tower",
  });
});

Deno.test("correctness: a format failure or a missing answer is incorrect without asking", () => {
  let asked = 0;
  const always: Pick<Benchmark, "correct"> = { correct: () => (asked++, true) };
  const t = task(["4"]);
  // no <think>, no \boxed, an unanswered tool call
  for (
    const r of [
      "<answer>\\boxed{4}</answer>",
      "<think>x</think><answer>4</answer>",
      "<think>x</think><python>print(4)</python><answer>\\boxed{4}</answer>",
      "",
    ]
  ) {
    const j = judgeResponse(always, r, t, ["python"]);
    assert.equal(j.correct, false, r);
    assert.equal(j.answer, null);
    assert.equal(typeof j.formatError, "string");
  }
  assert.equal(asked, 0);
  // The last \boxed{} in <answer> is what is judged.
  const seen: string[] = [];
  const record: Pick<Benchmark, "correct"> = { correct: (a) => (seen.push(a), a === "4") };
  const r = "<think>\\boxed{3}</think><answer>\\boxed{5}, no: \\boxed{4}</answer>";
  assert.equal(judgeResponse(record, r, t, []).correct, true);
  assert.deepEqual(seen, ["4"]);
});

Deno.test("correctness: a judge that throws or returns a non-boolean is an ArpoError", () => {
  const t = task(["4"], "q7");
  const throws: Pick<Benchmark, "correct"> = {
    correct: () => {
      throw new Error("boom");
    },
  };
  assert.throws(
    () => judgeResponse(throws, respond("4"), t, [], "mine"),
    (e: Error) =>
      e instanceof ArpoError &&
      /benchmark 'mine' threw in correct\(\) on task 'q7': boom/.test(e.message),
  );
  const number = { correct: () => 1 } as unknown as Pick<Benchmark, "correct">;
  assert.throws(
    () => judgeResponse(number, respond("4"), t, []),
    /returned 1 .* expected a boolean/,
  );
});

Deno.test("arith: mathematical equality, exact on integers of any length", () => {
  assert.ok(arithCorrect("1926.0", "1926"));
  assert.ok(arithCorrect("1,926", "1926"));
  assert.ok(arithCorrect("$1926$", "1926"));
  assert.ok(arithCorrect("\\frac{3852}{2}", "1926"));
  assert.ok(arithCorrect("-1926", "-1926"));
  assert.ok(!arithCorrect("1927", "1926"));
  assert.ok(!arithCorrect("1926.5", "1926"));
  assert.ok(!arithCorrect("19260", "1926"));
  // 25 digits: a float tolerance (or float parsing) would call these equal.
  const big = "1234567890123456789012345";
  assert.ok(arithCorrect(big, big));
  assert.ok(arithCorrect(`${big}.0`, big));
  assert.ok(!arithCorrect("1234567890123456789012346", big));
  assert.ok(!arithCorrect("1234567", "1234568")); // within 1e-6 relative, still wrong
});

Deno.test("built-in benchmarks declare their correctness", async () => {
  const a = await load<Benchmark>(arith, { sizes: { train: 1, rl: 1, test: 2 } });
  const [t0] = await a.tasks("test");
  assert.ok(a.correct!(`${t0.answers[0]}.0`, t0));
  assert.ok(!a.correct!(`${t0.answers[0]}1`, t0));
  const k = await load<Benchmark>(kbqa, {});
  const [q0] = await k.tasks("test");
  assert.ok(k.correct!(q0.answers[0].toUpperCase() + ".", q0));
  assert.ok(!k.correct!(`${q0.answers[0]} and more`, q0));
  // tiny.jsonl: "What is 2+2?" → 4; "Name a primary color." → red / blue / yellow.
  for (
    const [f, math] of [
      [jsonl, false],
      [hotpotqa, false],
      [twowiki, false],
      [musique, false],
      [bamboogle, false],
      [math500, true],
      [aime24, true],
      [aime25, true],
    ] as const
  ) {
    const b = await load<Benchmark>(f, { path: "tiny.jsonl", question_field: undefined });
    const [four, color] = await b.tasks("test");
    assert.equal(b.correct!("4.0", four), math, `${f.description}: 4.0`);
    assert.equal(b.correct!("\\frac{8}{2}", four), math, `${f.description}: 8/2`);
    assert.ok(b.correct!("4", four));
    assert.equal(b.correct!("the Blue!", color), !math, `${f.description}: the Blue!`);
  }
  const g = await load<Benchmark>(gsm8k, { path: "tiny.jsonl", answer_extract: "auto" });
  const eggs = (await g.tasks("test"))[2];
  assert.deepEqual(eggs.answers, ["1007"]);
  assert.ok(g.correct!("1,007", eggs) && g.correct!("1007.00", eggs));
  // The option overrides a preset's judge.
  const exact = await load<Benchmark>(math500, { path: "tiny.jsonl", judge: "exact" });
  assert.ok(!exact.correct!("4.0", (await exact.tasks("test"))[0]));
});

Deno.test({
  name: "parquet: judged per row by its ability (math: mathEqual, qa: exact match)",
  ignore: !HAVE_DATA,
  fn: async () => {
    const b = await load<Benchmark>(parquet, { path: "rl/valid.parquet", split: "valid" }, DATA);
    const tasks = await b.tasks("valid");
    const math = tasks.find((t) => t.meta?.ability === "math")!;
    const qa = tasks.find((t) => t.meta?.ability === "qa")!;
    assert.ok(b.correct!(`${math.answers[0]}.0`, math));
    assert.ok(!b.correct!(`${qa.answers[0]} ${qa.answers[0]}`, qa));
    assert.ok(b.correct!(qa.answers[0].toLowerCase(), qa));
    const exact = await load<Benchmark>(
      parquet,
      { path: "rl/valid.parquet", split: "valid", judge: "exact", limit: 120 },
      DATA,
    );
    const m = (await exact.tasks("valid")).find((t) => t.id === math.id)!;
    assert.ok(!exact.correct!(`${m.answers[0]}.0`, m));
  },
});

// ---------------------------------------------------------------------------------------------
// the eval stage

const GOLD = "a1 b2 c3 d4 e5 f6 g7 h8 i9 j10 k11";
const PARTIAL = "a1 b2 c3 d4 e5 f6 g7 h8 i9"; // precision 1, recall 9/11: F1 0.9

/**
 * QA prompts: search, then python (both tools: the 0.1 bonus), then the partial or the full
 * answer. Arith prompts: python, then the printed value written as `N.0` (token F1 0 against
 * `N`: SQuAD normalization makes it `N0`).
 */
const script: Script = (ctx) => {
  const results = ctx.response.split("<result>").length - 1;
  if (/question/.test(ctx.prompt)) {
    if (results === 0) return [{ text: "<think>look</think><search>it</search>", entropy: 1 }];
    if (results === 1) return [{ text: "<python>print(1)</python>", entropy: 1 }];
    const answer = /Partial/.test(ctx.prompt) ? PARTIAL : `The ${GOLD.toUpperCase()}!`;
    return [{ text: `<answer>\\boxed{${answer}}</answer><eos>`, entropy: 0.5 }];
  }
  if (results === 0) {
    const expr = /What is ([\d *+-]+)\?/.exec(ctx.prompt)![1];
    return [{ text: `<think>use python</think><python>print(${expr})</python>`, entropy: 1 }];
  }
  const value = /<result>\n(-?\d+)\n/.exec(ctx.response)![1];
  return [{ text: `<answer>\\boxed{${value}.0}</answer><eos>`, entropy: 0.5 }];
};

/** `print(a * b + c * d)`, exactly (BigInt). */
const python: Tool = {
  kind: "tool",
  tag: "python",
  description: "computes",
  call: (input) => {
    const expr = /^print\((.*)\)$/.exec(input.trim())?.[1] ?? "0";
    const sum = expr.split("+").map((p) => p.split("*").reduce((x, y) => x * BigInt(y.trim()), 1n))
      .reduce((x, y) => x + y, 0n);
    return String(sum);
  },
};
const search: Tool = { kind: "tool", tag: "search", description: "finds", call: () => "nothing" };

function evalCtx(benchmarks: Record<string, Benchmark>, reward: Reward) {
  return stageContext({
    kind: "eval",
    options: {},
    manifest: { stages: [] },
    seed: 1,
    tools: { search, python },
    rewards: { arpo: reward },
    benchmarks,
    policy: () => new ScriptedPolicy(script),
  });
}

type PerQuestion = { task_id: string; n: number; correct: number; sample_correct: boolean[] };

async function runOn(benchmark: string, benchmarks: Record<string, Benchmark>) {
  const reward = await load<Reward>(arpoReward, {});
  const opts = evalOptionsSchema.parse({
    benchmark,
    reward: "arpo",
    rollout: { algorithm: "grpo", rollouts: 2, initial: 2 },
    sampling: { temperature: 1, top_p: 1, top_k: 0, max_tokens: 300, max_tool_calls: 3 },
  });
  const { ctx, objects } = evalCtx(benchmarks, reward);
  const r = await runEval(ctx, opts);
  const results = JSON.parse(new TextDecoder().decode(objects.get(r.outputs.results)!));
  const index = JSON.parse(new TextDecoder().decode(objects.get(r.outputs.rollouts)!));
  return { r, results, index, objects };
}

Deno.test("eval stage: F1 0.9 + the 0.1 bonus (reward 1.0) is not correct; accuracy is the benchmark's", async () => {
  const qa: Benchmark = {
    kind: "benchmark",
    splits: ["test"],
    // no `correct`: the default, exact match after normalization
    tasks: () => [
      { id: "partial", prompt: "Partial question?", answers: [GOLD] },
      { id: "full", prompt: "Full question?", answers: [GOLD] },
    ],
  };
  const { r, results, index, objects } = await runOn("qa", { qa });
  // Every sample's reward is F1 + bonus: 0.9 + 0.1 = 1 on "partial", 1 + 0.1 on "full".
  const tree = (i: number) =>
    new TextDecoder().decode(objects.get(index.questions[i].tree)!).split("\n")
      .filter((l) => l.includes('"type":"trajectory"')).map((l) => JSON.parse(l));
  for (const t of tree(0)) {
    assert.equal(t.reward, 1);
    assert.equal(t.reward_parts.f1, 0.9);
    assert.equal(t.reward_parts.bonus, 0.1);
  }
  for (const t of tree(1)) assert.ok(Math.abs(t.reward - 1.1) < 1e-12);
  const perQ = results.per_question as PerQuestion[];
  assert.deepEqual(perQ.map((q) => [q.task_id, q.correct, q.sample_correct]), [
    ["partial", 0, [false, false]],
    ["full", 2, [true, true]],
  ]);
  assert.equal(results.summary.accuracy.estimate, 0.5);
  assert.equal(results.summary.pass_at["1"].estimate, 0.5);
  assert.equal(results.summary.pass_at["2"].estimate, 0.5);
  assert.ok(Math.abs(results.summary.mean_reward.estimate - 1.05) < 1e-12); // the reward's
  assert.equal(r.metrics!.accuracy, 0.5);
});

Deno.test("eval stage: on arith, \\boxed{N.0} for N is correct though the F1 reward gives 0", async () => {
  const bench = await load<Benchmark>(arith, {
    sizes: { train: 1, rl: 1, test: 3 },
    system: null,
    forms: ["product"],
  });
  const { r, results } = await runOn("arith", { arith: bench });
  const perQ = results.per_question as (PerQuestion & { rewards: number[] })[];
  assert.equal(perQ.length, 3);
  for (const q of perQ) {
    assert.deepEqual(q.sample_correct, [true, true], q.task_id);
    assert.deepEqual(q.rewards, [0, 0], q.task_id); // token F1 of "N.0" against "N" is 0
  }
  assert.equal(results.summary.accuracy.estimate, 1);
  assert.equal(results.summary.mean_reward.estimate, 0);
  assert.equal(r.metrics!.pass_at_2, 1);
});
