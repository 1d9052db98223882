import assert from "node:assert/strict";
import type { Benchmark, ChatMessage, Document, Reward, Tool } from "arpo-lab";
import { LocalIndex, searchDocuments } from "arpo-lab";
import kbqa from "../plugins/benchmarks/kbqa.ts";
import arpo from "../plugins/rewards/arpo.ts";
import { localPluginContext } from "../src/plugin/local.ts";

const SMALL = { people: 120, sizes: { train: 120, rl: 60, test: 80 } };

async function load(opts: unknown, seed = 1, name = "kbqa"): Promise<Benchmark> {
  return await kbqa(opts, localPluginContext({ name, seed })) as Benchmark;
}

const bench = await load(SMALL);
const docs = await bench.documents!();
const index = new LocalIndex(docs);

Deno.test("kbqa: deterministic per seed (tasks, documents, demonstrations)", async () => {
  const again = await load(SMALL, 1, "renamed");
  const other = await load(SMALL, 2);
  assert.deepEqual(await again.documents!(), docs);
  assert.notDeepEqual(await other.documents!(), docs);
  for (const split of ["train", "rl", "test"]) {
    assert.deepEqual(await again.tasks(split), await bench.tasks(split));
    assert.deepEqual(await again.demonstrations!(split), await bench.demonstrations!(split));
  }
});

Deno.test("kbqa: splits are disjoint and sized; forms follow options", async () => {
  const seen = new Map<string, string>();
  for (const split of bench.splits) {
    const tasks = await bench.tasks(split);
    assert.equal(tasks.length, SMALL.sizes[split as keyof typeof SMALL.sizes]);
    for (const t of tasks) {
      const q = (t.prompt as ChatMessage[]).at(-1)!.content;
      assert.ok(!seen.has(q), `"${q}" in ${split} and ${seen.get(q)}`);
      seen.set(q, split);
    }
  }
  const trainForms = new Set((await bench.tasks("train")).map((t) => t.meta!.form));
  assert.deepEqual([...trainForms].sort(), ["birth_country", "company_city", "founding_gap"]);
  const testForms = new Set((await bench.tasks("test")).map((t) => t.meta!.form));
  assert.ok(testForms.has("company_country") && testForms.has("birth_capital"));
  // documents: unique ids, entities plus distractor mentions
  assert.equal(new Set(docs.map((d) => d.id)).size, docs.length);
  assert.equal(docs.filter((d) => d.id.startsWith("mention-")).length, SMALL.people);
});

/** Follow a search chain: each query retrieves its own document, which names the next query. */
function follow(queries: string[], topk: number): string[] {
  const texts: string[] = [];
  queries.forEach((q, i) => {
    const hits: Document[] = index.search(q, topk);
    const own = hits.find((d) => d.title === q);
    assert.ok(own, `query '${q}' must retrieve its own document`);
    const target = i + 1 < queries.length ? queries[i + 1] : null;
    if (target !== null) assert.ok(own!.text.includes(target), `${own!.text} ⇏ ${target}`);
    texts.push(own!.text);
  });
  return texts;
}

Deno.test("kbqa: every question is answerable from the documents in 2–3 searches", async () => {
  for (const split of bench.splits) {
    for (const t of await bench.tasks(split)) {
      const queries = t.meta!.queries as string[];
      assert.ok(queries.length >= 2 && queries.length <= 3, t.id);
      const texts = follow(queries, 3);
      const last = texts.at(-1)!;
      if (t.meta!.form === "founding_gap") {
        // the two years are in the two documents; the answer is their difference
        const born = Number(texts[0].match(/born in (\d{4})/)![1]);
        const founded = Number(texts[1].match(/founded in (\d{4})/)![1]);
        assert.equal(t.answers[0], String(Math.abs(founded - born)));
        assert.deepEqual(t.meta!.needs, ["search", "python"]);
      } else {
        assert.ok(last.includes(t.answers[0]), `${t.id}: '${t.answers[0]}' not in '${last}'`);
      }
    }
  }
});

Deno.test("kbqa: demonstrations show exactly the search results and score ≥ 1 (1.1 with python)", async () => {
  const reward = await arpo({}, localPluginContext({ name: "arpo" })) as Reward;
  for (const split of ["train", "test"]) {
    const tasks = await bench.tasks(split);
    const demos = await bench.demonstrations!(split);
    assert.equal(demos.length, tasks.length);
    for (let i = 0; i < demos.length; i++) {
      const t = tasks[i], d = demos[i];
      assert.equal(d.taskId, t.id);
      for (const q of t.meta!.queries as string[]) {
        const block = `<search>${q}</search> <result>\n${
          searchDocuments(index, q, { topk: 3 })
        }\n</result>`;
        assert.ok(d.response.includes(block), `${t.id}: result for '${q}' differs`);
      }
      const r = reward.score({ task: t, response: d.response, answers: t.answers, toolCalls: [] });
      const both = t.meta!.form === "founding_gap";
      assert.equal(r.reward, both ? 1.1 : 1, `${t.id}: ${JSON.stringify(r.parts)}`);
      assert.equal(r.parts.used_tools, both ? "search,python" : "search");
    }
  }
});

Deno.test("kbqa: topk and snippet options reach the demonstrations; bad sizes refused", async () => {
  const b = await load({ ...SMALL, top_k: 2, snippet_chars: 40 });
  const d = (await b.demonstrations!("train"))[0].response;
  const firstResult = d.slice(d.indexOf("<result>\n") + 9, d.indexOf("\n</result>"));
  assert.equal(firstResult.split("\n").length, 2);
  assert.ok(firstResult.includes(" …"));
  await assert.rejects(
    () => load({ people: 10, sizes: { train: 500, rl: 0, test: 0 } }),
    /add people/,
  );
  assert.throws(() => bench.tasks("valid"), /no split 'valid'/);
});

Deno.test("kbqa: demonstrations match the search tool's local backend exactly", async () => {
  const search = (await import("../plugins/tools/search.ts")).default;
  const tool = await search(
    { backend: "local", benchmark: "kbqa", top_k: 3, snippet_chars: 400 },
    localPluginContext({ name: "search", benchmarks: { kbqa: bench } }),
  ) as Tool;
  const ctx = { signal: new AbortController().signal, timeoutMs: 10_000 };
  const demos = await bench.demonstrations!("test");
  for (const d of demos.slice(0, 40)) {
    for (
      const m of d.response.matchAll(/<search>(.*?)<\/search> <result>\n([\s\S]*?)\n<\/result>/g)
    ) {
      assert.equal(await tool.call(m[1], ctx), m[2], `query '${m[1]}'`);
    }
  }
  await tool.close?.();
});
