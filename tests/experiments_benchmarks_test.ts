// The public-benchmark manifests (experiments/benchmarks/): each validates, uses the paper's
// evaluation sampling, resolves its data files when ../shared/data is present, and a run without
// the user's model fails with one clear message and writes nothing to the store.
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest } from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { DataAccess } from "../src/plugin/context.ts";
import { loadPlugins } from "../src/plugin/load.ts";
import { policyInitSchema } from "../src/manifest/policy.ts";
import { saveModel } from "../src/model/load.ts";
import { saveTokenizer } from "../src/model/tokenizer.ts";
import { loadPolicyModel } from "../src/policy/load.ts";
import { resolveSandbox } from "../src/tools/sandbox.ts";
import { cli, REPO, rm, scratchStore } from "./fixtures/helpers.ts";

const DIR = join(REPO, "experiments", "benchmarks");
const SHARED = join(REPO, "..", "shared", "data");
const PLACEHOLDER = join(REPO, "models", "qwen2.5-3b-instruct");

/** Manifest name → rows in its data file, and the tools it declares, in order. */
const EXPECTED: Record<string, { rows: number; tools: string[]; reward: string }> = {
  gsm8k: { rows: 1319, tools: ["python"], reward: "math_equal" },
  math500: { rows: 500, tools: ["python"], reward: "math_equal" },
  aime24: { rows: 30, tools: ["python"], reward: "math_equal" },
  aime25: { rows: 30, tools: ["python"], reward: "math_equal" },
  hotpotqa: { rows: 200, tools: ["search", "python"], reward: "f1" },
  "2wiki": { rows: 200, tools: ["search", "python"], reward: "f1" },
  musique: { rows: 200, tools: ["search", "python"], reward: "f1" },
  bamboogle: { rows: 125, tools: ["search", "python"], reward: "f1" },
  "verl-valid": { rows: 180, tools: ["search", "python"], reward: "arpo" },
};

async function manifestFiles(): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(DIR)) if (e.name.endsWith(".yaml")) out.push(e.name);
  return out.sort();
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Every file under `dir` (none when it does not exist). */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  if (!(await exists(dir))) return out;
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...await filesUnder(p));
    else out.push(p);
  }
  return out;
}

Deno.test("experiments/benchmarks: one manifest per public set, each valid with eval sampling of the paper", async () => {
  const files = await manifestFiles();
  assert.deepEqual(files, Object.keys(EXPECTED).map((n) => `${n}.yaml`).sort());
  for (const f of files) {
    const view = await loadManifest(join(DIR, f), { stages: BUILTIN_STAGES });
    const m = view.manifest;
    const want = EXPECTED[f.replace(/\.yaml$/, "")];
    assert.equal(m.name, f.replace(/\.yaml$/, ""), f);
    assert.ok("model" in m.policy, `${f}: policy.model is the user's model`);
    assert.deepEqual(m.plugins.tools.map((t) => t.use), want.tools, f);
    const search = m.plugins.tools.find((t) => t.use === "search");
    if (search) assert.equal(search.with?.backend, "cache", `${f}: recorded search by default`);
    assert.equal(m.plugins.benchmarks.length, 1, f);
    assert.equal(m.stages.length, 1, f);
    const stage = m.stages[0];
    assert.equal(stage.kind, "eval", f);
    const o = stage.options as {
      benchmark: string;
      reward: string;
      rollout: { rollouts: number };
      sampling: { temperature: number; top_p: number };
    };
    assert.equal(o.benchmark, m.plugins.benchmarks[0].as, `${f}: evaluates its benchmark`);
    assert.equal(o.reward, want.reward, f);
    assert.ok(m.plugins.rewards.some((r) => r.as === o.reward), `${f}: reward is declared`);
    assert.equal(o.rollout.rollouts, 1, `${f}: pass@1 by default`);
    assert.equal(o.sampling.temperature, 0.6, f);
    assert.equal(o.sampling.top_p, 0.95, f);
  }
});

Deno.test("experiments/benchmarks: the model and data paths are overridable with --set", async () => {
  const view = await loadManifest(join(DIR, "gsm8k.yaml"), {
    stages: BUILTIN_STAGES,
    overrides: [
      "policy.model=/models/Qwen2.5-3B-Instruct",
      "plugins.benchmarks[0].with.path=/data/gsm8k.jsonl",
      "stages.eval.rollout.rollouts=8",
    ],
  });
  assert.deepEqual(view.manifest.policy, { model: "/models/Qwen2.5-3B-Instruct" });
  assert.equal(view.manifest.plugins.benchmarks[0].with?.path, "/data/gsm8k.jsonl");
  assert.equal(
    (view.manifest.stages[0].options as { rollout: { rollouts: number } })
      .rollout.rollouts,
    8,
  );
  const kb = await loadManifest(join(DIR, "hotpotqa.yaml"), {
    stages: BUILTIN_STAGES,
    overrides: ['plugins.tools[0].with={backend: http, url: "http://127.0.0.1:8000/retrieve"}'],
  });
  assert.equal(kb.manifest.plugins.tools[0].with?.backend, "http");
});

Deno.test("experiments/benchmarks: every manifest's data files load through its plugins", async () => {
  if (!(await exists(SHARED))) {
    console.log(`skipped: ${SHARED} is absent (public eval data is not part of the repo)`);
    return;
  }
  const cache = JSON.parse(
    await Deno.readTextFile(join(SHARED, "arpo", "search_cache.json")),
  ) as Record<string, string>;
  const store = await scratchStore();
  try {
    for (const f of await manifestFiles()) {
      const view = await loadManifest(join(DIR, f), { stages: BUILTIN_STAGES });
      const want = EXPECTED[f.replace(/\.yaml$/, "")];
      // The python tool starts a sandboxed interpreter to check itself; it reads no data file and
      // has its own tests, so it is left out here.
      const manifest = {
        ...view.manifest,
        plugins: {
          ...view.manifest.plugins,
          tools: view.manifest.plugins.tools.filter((t) => t.use !== "python"),
        },
      };
      const data = new DataAccess(store, view.baseDir);
      const plugins = await loadPlugins({ ...view, manifest }, { store, data });
      try {
        const [name, b] = [...plugins.benchmarks][0];
        const tasks = await b.plugin.tasks("test");
        assert.equal(tasks.length, want.rows, `${f}: benchmark '${name}' rows`);
        assert.ok(tasks.every((t) => t.answers.length > 0), `${f}: every task has an answer`);
        const files = Object.keys(data.digests).map((k) => k.split("/").slice(-2).join("/"));
        const expected = [view.manifest.plugins.benchmarks[0].with?.path as string];
        if (want.tools.includes("search")) expected.push("arpo/search_cache.json");
        for (const p of expected) {
          const tail = p.split("/").slice(-2).join("/");
          assert.ok(files.includes(tail), `${f}: read ${tail} (read: ${files.join(", ")})`);
        }
        const search = plugins.tools.get("search");
        if (search) {
          // A recorded query answers with its recorded result pages.
          const [query, recorded] = Object.entries(cache)[0];
          const call = { signal: new AbortController().signal, timeoutMs: 10_000 };
          const out = await search.plugin.call(query, call);
          const firstPage = recorded.split("\n")[0].slice(0, 40);
          assert.ok(out.includes(firstPage), `${f}: search result for '${query}': ${out}`);
        }
      } finally {
        await plugins.close();
      }
    }
  } finally {
    await rm(join(store.root, ".."));
  }
});

Deno.test("experiments/benchmarks: without the model, exp fails with one clear paragraph and writes nothing", async () => {
  const manifest = join(DIR, "gsm8k.yaml");
  const modelLine = (await Deno.readTextFile(manifest)).split("\n")
    .findIndex((l) => /^\s+model:/.test(l)) + 1;
  assert.ok(modelLine > 0);
  const tmp = await Deno.makeTempDir({ prefix: "arpo-bench-" });
  const store = join(tmp, "store");
  try {
    // The placeholder is what a fresh checkout has: nothing there (unless a user put a model).
    if (!(await exists(PLACEHOLDER))) {
      const r = await cli(["exp", manifest, "--store", store, "--progress", "none"]);
      assert.notEqual(r.code, 0);
      const msg = r.stderr.trim();
      assert.match(msg, new RegExp(`gsm8k\\.yaml:${modelLine}:\\d+: policy\\.model: `));
      assert.ok(msg.includes(`there is no model at ${PLACEHOLDER}`), msg);
      assert.ok(msg.includes("--set policy.model="), msg);
      assert.equal(msg.split("\n").filter((l) => l.trim()).length, 1, `one paragraph: ${msg}`);
      assert.doesNotMatch(msg, /\n\s+at /, "no stack trace");
      assert.deepEqual(await filesUnder(store), [], "nothing written to the store");
    } else {
      console.log(`note: ${PLACEHOLDER} exists; checking only the --set cases`);
    }

    const missing = join(tmp, "no-such-model");
    const r2 = await cli(["exp", manifest, "--store", store, "--set", `policy.model=${missing}`]);
    assert.notEqual(r2.code, 0);
    assert.ok(r2.stderr.includes(`there is no model at ${missing}`), r2.stderr);
    assert.ok(r2.stderr.includes("policy.model"), r2.stderr);

    const empty = join(tmp, "empty-model");
    await Deno.mkdir(empty);
    const r3 = await cli(["exp", manifest, "--store", store, "--set", `policy.model=${empty}`]);
    assert.notEqual(r3.code, 0);
    assert.ok(r3.stderr.includes(`the model directory ${empty} is empty`), r3.stderr);
    assert.deepEqual(await filesUnder(store), [], "nothing written to the store");
  } finally {
    await rm(tmp);
  }
});

Deno.test("experiments/benchmarks: a supplied model directory runs the manifest end to end", async () => {
  if (!(await exists(SHARED))) {
    console.log(`skipped: ${SHARED} is absent (public eval data is not part of the repo)`);
    return;
  }
  const tmp = await Deno.makeTempDir({ prefix: "arpo-bench-" });
  try {
    // A tiny random model saved in the Hugging Face layout stands in for the user's checkpoint.
    const init = policyInitSchema.parse({
      hidden_size: 32,
      layers: 1,
      heads: 4,
      kv_heads: 2,
      intermediate_size: 64,
      // hotpotqa's prompts (a system prompt with the tool protocol, byte-level) exceed 512.
      max_position: 2048,
    });
    const { model, tokenizer } = await loadPolicyModel({ init }, { baseDir: tmp, seed: 3 });
    const dir = join(tmp, "my-model");
    await saveModel(model, dir);
    await saveTokenizer(tokenizer, dir);
    const args = [
      "exp",
      join(DIR, "hotpotqa.yaml"),
      "--store",
      join(tmp, "store"),
      "--json",
      "--no-report",
      "--set",
      `policy.model=${dir}`,
      "--set",
      "stages.eval.questions=2",
      "--set",
      "stages.eval.sampling.max_tokens=16",
    ];
    try {
      await resolveSandbox("auto");
    } catch (e) {
      // Without a sandbox the python tool refuses to load; run the rest rather than run code
      // unsandboxed.
      console.log(`note: no python sandbox here (${(e as Error).message}); search tool only`);
      args.push(
        "--set",
        "plugins.tools=[{use: search, with: {backend: cache, file: " +
          "../../../shared/data/arpo/search_cache.json}}]",
      );
    }
    const r = await cli(args);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { status: string; record: string };
    assert.equal(out.status, "complete");
    const record = JSON.parse(await Deno.readTextFile(out.record)) as {
      modelFiles: Record<string, string>;
      identity: { data: Record<string, string>; model: string | null };
      stages: Record<string, { metrics?: Record<string, unknown> }>;
    };
    assert.deepEqual(Object.keys(record.modelFiles).sort(), [
      "config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    assert.ok(record.identity.model, "the supplied model is part of the run identity");
    const data = Object.keys(record.identity.data).join(" ");
    assert.match(data, /eval\/hotpotqa\.jsonl/);
    assert.match(data, /search_cache\.json/);
    assert.ok(record.stages.eval, "the eval stage ran");
  } finally {
    await rm(tmp);
  }
});
