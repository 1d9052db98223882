/**
 * The built-in benchmarks and rewards load through the run's plugin loader (sources archived and
 * materialized in the store, local imports such as presets → ./jsonl.ts, npm imports such as
 * hyparquet), and the search tool serves kbqa's documents with the demonstrations' exact text.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadManifest } from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { DataAccess } from "../src/plugin/context.ts";
import { loadPlugins } from "../src/plugin/load.ts";
import { rm, scratchStore } from "./fixtures/helpers.ts";

const FIX = fileURLToPath(new URL("./fixtures/benchmarks/", import.meta.url));
const DATA = fileURLToPath(new URL("../../shared/data/arpo/", import.meta.url));
const HAVE_DATA = existsSync(new URL("../../shared/data", import.meta.url));

Deno.test("built-in benchmarks and rewards load through the run's plugin loader", async () => {
  const dir = await Deno.makeTempDir();
  const store = await scratchStore();
  try {
    await Deno.copyFile(join(FIX, "tiny.jsonl"), join(dir, "tiny.jsonl"));
    const parquet = HAVE_DATA
      ? `    - use: parquet\n      with: { path: ${join(DATA, "rl/valid.parquet")}, limit: 3 }\n`
      : "";
    if (!HAVE_DATA) console.log("parquet part skipped: ../shared/data is absent");
    const yaml = `name: t
seed: 3
plugins:
  tools:
    - use: search
      with: { backend: local, benchmark: kb, top_k: 3 }
  rewards:
    - use: arpo
    - use: math_equal
  benchmarks:
    - use: kbqa
      as: kb
      with: { people: 60, sizes: { train: 20, rl: 10, test: 10 } }
    - use: arith
      with: { sizes: { train: 5, rl: 5, test: 5 } }
    - use: gsm8k
      with: { path: tiny.jsonl, answer_extract: auto }
${parquet}stages: []
`;
    const path = join(dir, "m.yaml");
    await Deno.writeTextFile(path, yaml);
    const m = await loadManifest(path, { stages: BUILTIN_STAGES });
    const plugins = await loadPlugins(m, { store, data: new DataAccess(store, m.baseDir) });
    try {
      const kb = plugins.benchmarks.get("kb")!.plugin;
      const search = plugins.tools.get("search")!.plugin;
      const arpo = plugins.rewards.get("arpo")!.plugin;
      const ctx = { signal: new AbortController().signal, timeoutMs: 10_000 };
      const tasks = await kb.tasks("train");
      const demos = await kb.demonstrations!("train");
      for (let i = 0; i < demos.length; i++) {
        const d = demos[i];
        for (
          const mm of d.response.matchAll(
            /<search>(.*?)<\/search> <result>\n([\s\S]*?)\n<\/result>/g,
          )
        ) {
          assert.equal(await search.call(mm[1], ctx), mm[2]);
        }
        const r = arpo.score({
          task: tasks[i],
          response: d.response,
          answers: tasks[i].answers,
          toolCalls: [],
        });
        assert.ok(r.reward >= 1, JSON.stringify(r));
      }
      assert.equal((await plugins.benchmarks.get("arith")!.plugin.tasks("test")).length, 5);
      // the preset's local import (./jsonl.ts) came along; GSM8K '####' extraction applies
      const gsm = await plugins.benchmarks.get("gsm8k")!.plugin.tasks("test");
      assert.deepEqual(gsm.map((t) => t.answers), [["4"], ["red", "blue", "yellow"], ["1007"]]);
      if (HAVE_DATA) {
        const pq = await plugins.benchmarks.get("parquet")!.plugin.tasks("test");
        assert.equal(pq.length, 3);
      }
    } finally {
      await plugins.close();
    }
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});
