import assert from "node:assert/strict";
import type { Benchmark, ChatMessage, Reward, Task, Tool } from "arpo-lab";
import arith from "../plugins/benchmarks/arith.ts";
import arpo from "../plugins/rewards/arpo.ts";
import { localPluginContext } from "../src/plugin/local.ts";

const SMALL = { sizes: { train: 150, rl: 60, test: 80 } };

async function load(opts: unknown, seed = 1, name = "arith"): Promise<Benchmark> {
  return await arith(opts, localPluginContext({ name, seed })) as Benchmark;
}

/** Independent check of the value: JS BigInt arithmetic has Python's precedence for + - *. */
function bigEval(expr: string): bigint {
  assert.match(expr, /^[\d +*-]+$/);
  return new Function(`return ${expr.replace(/\d+/g, "$&n")};`)() as bigint;
}

function question(t: Task): string {
  const m = t.prompt as ChatMessage[];
  return m[m.length - 1].content;
}

Deno.test("arith: deterministic per seed, independent of the plugin's name", async () => {
  const a = await load(SMALL, 1), b = await load(SMALL, 1, "other"), c = await load(SMALL, 2);
  for (const split of ["train", "rl", "test"]) {
    assert.deepEqual(await a.tasks(split), await b.tasks(split));
    assert.notDeepEqual(await a.tasks(split), await c.tasks(split));
  }
  const fixed = await load({ ...SMALL, seed: 5 }, 99);
  assert.deepEqual(
    await fixed.tasks("test"),
    await (await load({ ...SMALL, seed: 5 }, 1)).tasks("test"),
  );
});

Deno.test("arith: splits never share a computation; sizes; the test split ignores train size", async () => {
  const b = await load(SMALL);
  const seen = new Map<string, string>();
  for (const split of b.splits) {
    const tasks = await b.tasks(split);
    assert.equal(tasks.length, SMALL.sizes[split as keyof typeof SMALL.sizes]);
    for (const t of tasks) {
      const e = String(t.meta!.expression);
      assert.ok(!seen.has(e), `${e} in ${split} and ${seen.get(e)}`);
      seen.set(e, split);
    }
  }
  const bigger = await load({ sizes: { train: 400, rl: 60, test: 80 } });
  assert.deepEqual(await bigger.tasks("test"), await b.tasks("test"));
});

Deno.test("arith: values are exact, operands have the asked digits, forms follow the options", async () => {
  const b = await load({ ...SMALL, digits: [4, 4] });
  const formsBySplit: Record<string, Set<string>> = {};
  for (const split of b.splits) {
    formsBySplit[split] = new Set();
    for (const t of await b.tasks(split)) {
      const e = String(t.meta!.expression);
      assert.equal(t.answers[0], bigEval(e).toString(), e);
      for (const num of e.match(/\d+/g)!) assert.equal(num.length, 4);
      formsBySplit[split].add(String(t.meta!.form));
      assert.ok(question(t).length > 0);
    }
  }
  assert.deepEqual([...formsBySplit.train].sort(), ["product", "sum_of_products"]);
  // rl/test draw from all six forms, including those the demonstrations never show
  for (const f of ["word", "distractor", "chain", "mixed"]) assert.ok(formsBySplit.test.has(f), f);
  const words = await load({ ...SMALL, forms: ["word"], demo_forms: ["distractor"] });
  for (const t of await words.tasks("test")) assert.equal(t.meta!.form, "word");
  for (const t of await words.tasks("train")) {
    assert.equal(t.meta!.form, "distractor");
    // the distractor numbers are in the question but not in the expression
    assert.ok(question(t).match(/\d+/g)!.length > String(t.meta!.expression).match(/\d+/g)!.length);
  }
});

for (const style of ["full", "short"] as const) {
  Deno.test(`arith: ${style} demonstrations follow the tag protocol and score 1 under the arpo reward`, async () => {
    const b = await load({ ...SMALL, demo_style: style });
    const reward = await arpo({}, localPluginContext({ name: "arpo" })) as Reward;
    const tasks = await b.tasks("train");
    const demos = await b.demonstrations!("train");
    assert.equal(demos.length, tasks.length);
    for (let i = 0; i < demos.length; i++) {
      const d = demos[i], t = tasks[i];
      assert.equal(d.taskId, t.id);
      assert.deepEqual(d.prompt, t.prompt);
      const expr = String(t.meta!.expression);
      // the <result> text is exactly what print(expr) writes
      assert.ok(
        d.response.includes(
          `<python>print(${expr})</python> <result>\n${bigEval(expr)}\n</result>`,
        ),
        d.response,
      );
      const r = reward.score({ task: t, response: d.response, answers: t.answers, toolCalls: [] });
      assert.equal(r.reward, 1, JSON.stringify(r));
      assert.equal(r.parts.used_tools, "python");
      if (style === "short") assert.ok(d.response.startsWith("<think>Use Python.</think>"));
    }
  });
}

Deno.test("arith: bad options and impossible sizes are refused", async () => {
  await assert.rejects(() => load({ digits: [5, 3] }), /min ≤ max/);
  await assert.rejects(() => load({ forms: ["poems"] }));
  await assert.rejects(
    () =>
      load({
        digits: [1, 1],
        terms: [2, 2],
        forms: ["product"],
        sizes: { train: 0, rl: 0, test: 200 },
      }),
    /cannot draw 200 distinct test problems/,
  );
  const b = await load(SMALL);
  assert.throws(() => b.tasks("dev"), /no split 'dev'/);
});

Deno.test("arith: demonstration results are exactly what the python tool prints", async () => {
  const hasPython = await new Deno.Command("python3", {
    args: ["-c", "pass"],
    stdout: "null",
    stderr: "null",
  })
    .output().then((o) => o.success, () => false);
  if (!hasPython) {
    console.log("skipped: python3 is not installed");
    return;
  }
  const python = (await import("../plugins/tools/python.ts")).default;
  // the expressions are our own generated arithmetic, so running them unsandboxed is safe
  const tool = await python({ sandbox: "none" }, localPluginContext({ name: "python" })) as Tool;
  const ctx = { signal: new AbortController().signal, timeoutMs: 10_000 };
  const b = await load({ ...SMALL, forms: ["mixed", "chain", "word"] });
  const demos = [
    ...(await b.demonstrations!("train")).slice(0, 5),
    ...(await b.demonstrations!("test")).slice(0, 5),
  ];
  for (const d of demos) {
    const m = d.response.match(/<python>([\s\S]*?)<\/python> <result>\n([\s\S]*?)\n<\/result>/)!;
    assert.equal(await tool.call(m[1], ctx), m[2], m[1]);
  }
  await tool.close?.();
});
