// SFT from token ids with a tokenizer-less `policy.model` (issue 15 point 4): the JSONL forms
// Hugging Face / TRL write, their validation (file, line, field), an end-to-end run through the
// runner, and the refusals of stages that need text (at plan time, nothing stored).
import assert from "node:assert/strict";
import { join } from "node:path";
import { ArpoError } from "../src/errors.ts";
import { loadManifest } from "../src/manifest/mod.ts";
import { policyInitSchema } from "../src/manifest/policy.ts";
import { saveModel } from "../src/model/load.ts";
import { parseSafetensors } from "../src/model/safetensors.ts";
import { saveTokenizer } from "../src/model/tokenizer.ts";
import { loadPolicyModel } from "../src/policy/load.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { runManifest } from "../src/run/runner.ts";
import { checkTokenRecords, parseSftData, type SftRecord } from "../src/train/sft_data.ts";
import { rm, scratchStore } from "./fixtures/helpers.ts";

const F = "/d/tokens.jsonl";

function tokens(r: SftRecord) {
  assert.equal(r.kind, "tokens");
  return (r as Extract<SftRecord, { kind: "tokens" }>).sequence;
}

/** The ArpoError message of `fn`, which must throw one. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ArpoError, String(e));
    return e.message;
  }
  assert.fail("expected an ArpoError");
}

Deno.test("sft token data: the HF/TRL forms become sequences with their loss masks", () => {
  const rs = parseSftData(
    [
      '{"input_ids": [5, 6, 7, 8], "completion_mask": [0, 0, 1, 1]}',
      "",
      '{"id": "b", "input_ids": [5, 6, 7, 8], "assistant_masks": [0, 1, 0, 1], ' +
      '"attention_mask": [1, 1, 1, 1]}',
      '{"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]}',
      '{"input_ids": [5, 6, 7]}',
      '{"prompt": "2+2?", "response": "4"}',
    ].join("\n"),
    F,
  );
  assert.deepEqual(rs.map((r) => [r.kind, r.line]), [
    ["tokens", 1],
    ["tokens", 3],
    ["tokens", 4],
    ["tokens", 5],
    ["text", 6],
  ]);
  assert.deepEqual(tokens(rs[0]), { tokens: [5, 6, 7, 8], lossMask: [0, 0, 1, 1] });
  assert.deepEqual(tokens(rs[1]).lossMask, [0, 1, 0, 1]);
  assert.equal((rs[1] as { id: string }).id, "b");
  assert.deepEqual(tokens(rs[2]).lossMask, [0, 0, 1, 1], "labels -100 = not learned");
  assert.deepEqual(tokens(rs[3]).lossMask, [1, 1, 1], "no mask: every token learned");
  checkTokenRecords(rs, { vocabSize: 9, maxPositions: 4 }, F);
});

Deno.test("sft token data: bad lines name the file, line and field", () => {
  const bad = (line: string, re: RegExp) => {
    const msg = errorOf(() => parseSftData(`{"input_ids": [1, 2]}\n${line}`, F));
    assert.match(msg, /^\/d\/tokens\.jsonl:2: /, msg);
    assert.match(msg, re, msg);
  };
  bad(
    '{"input_ids": [1, 2, 3], "completion_mask": [0, 1]}',
    /completion_mask has 2 entries but input_ids has 3/,
  );
  bad('{"input_ids": [1, 2], "labels": [-100]}', /labels has 1 entries but input_ids has 2/);
  bad('{"input_ids": [1, 2], "labels": [-100, 9]}', /labels\[1\] is 9 but input_ids\[1\] is 2/);
  bad(
    '{"input_ids": [1, 2], "completion_mask": [0, 2]}',
    /completion_mask\[1\] is 2; entries must be 0 or 1/,
  );
  bad('{"input_ids": [1, 2], "completion_mask": [1, 0]}', /no token after the first is learned/);
  bad(
    '{"input_ids": [1, 2], "completion_mask": [0, 1], "labels": [1, 2]}',
    /at most one of .*completion_mask and labels/,
  );
  bad(
    '{"input_ids": [1, 2], "attention_mask": [1, 0]}',
    /attention_mask\[1\] is 0: give sequences without padding/,
  );
  bad('{"input_ids": [1, 2.5]}', /input_ids\[1\] is 2\.5, not an integer/);
  bad('{"input_ids": [1, -3]}', /input_ids\[1\] is -3/);
  bad('{"input_ids": [1]}', /input_ids has 1 token; training needs at least 2/);
  bad('{"input_ids": "1 2"}', /'input_ids' must be an array of integers/);
  bad(
    '{"input_ids": [1, 2], "response": "x"}',
    /token ids \('input_ids'\) or text \('response'\), not both/,
  );

  const rs = parseSftData('{"input_ids": [1, 2]}\n{"input_ids": [1, 2, 3, 40]}', F);
  const vocab = errorOf(() => checkTokenRecords(rs, { vocabSize: 40, maxPositions: 8 }, F));
  assert.match(
    vocab,
    /^\/d\/tokens\.jsonl:2: input_ids\[3\] is 40, outside the model's vocabulary \(vocab_size 40: ids 0–39\)/,
  );
  const long = errorOf(() => checkTokenRecords(rs, { vocabSize: 64, maxPositions: 3 }, F));
  assert.match(
    long,
    /^\/d\/tokens\.jsonl:2: input_ids has 4 tokens, more than the model's 3 positions/,
  );
});

const init = policyInitSchema.parse({
  architecture: "qwen2",
  hidden_size: 16,
  layers: 1,
  heads: 2,
  kv_heads: 1,
  intermediate_size: 32,
  max_position: 64,
});

/** A tiny model directory: config.json + model.safetensors, and the tokenizer if asked. */
async function modelDir(dir: string, withTokenizer: boolean): Promise<void> {
  const { model, tokenizer } = await loadPolicyModel({ init }, { baseDir: dir, seed: 5 });
  await saveModel(model, dir);
  if (withTokenizer) await saveTokenizer(tokenizer, dir);
}

/** Token lines with ids in the byte tokenizer's range (the model's vocab). */
const TOKEN_LINES = [
  '{"input_ids": [72, 105, 33, 0], "completion_mask": [0, 0, 1, 1]}',
  '{"input_ids": [50, 43, 50, 61, 52], "labels": [-100, -100, -100, 61, 52]}',
  '{"input_ids": [97, 98, 99, 100, 101, 102]}',
].join("\n") + "\n";

async function writeManifest(tmp: string, name: string, stages: string): Promise<string> {
  const path = join(tmp, `${name}.yaml`);
  await Deno.writeTextFile(
    path,
    `name: ${name}\nseed: 3\nruntime: { threads: 1 }\npolicy: { model: ./m }\nstages:\n${stages}`,
  );
  return path;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    try {
      for await (const e of Deno.readDir(d)) {
        if (e.isDirectory) await walk(join(d, e.name));
        else out.push(join(d, e.name));
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  };
  await walk(dir);
  return out;
}

Deno.test("sft token data: a policy.model directory without tokenizer files trains end to end", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "arpo-sfttok-" });
  const store = await scratchStore();
  try {
    await modelDir(join(tmp, "m"), false);
    await Deno.writeTextFile(join(tmp, "tokens.jsonl"), TOKEN_LINES);
    const path = await writeManifest(
      tmp,
      "tok",
      "  - sft: { data: tokens.jsonl, steps: 2, batch_size: 2, lr: 0.01 }\n",
    );
    const view = await loadManifest(path, { stages: BUILTIN_STAGES });
    const a = await runManifest({ store, view });
    assert.equal(a.record.status, "complete");
    const sft = a.record.stages.sft;
    assert.equal(sft.metrics.demonstrations, 3);
    assert.equal(sft.metrics.steps, 2);
    const curve = await store.getJson<{ steps: { loss: number; tokens: number }[] }>(
      sft.outputs.curve,
    );
    assert.equal(curve.steps.length, 2);
    for (const s of curve.steps) assert.ok(Number.isFinite(s.loss) && s.loss > 0);
    // Step 1's batch is two of the three lines; learned tokens: 2 + 2 + 5 in all.
    assert.ok(curve.steps.every((s) => s.tokens >= 2 && s.tokens <= 7), JSON.stringify(curve));
    const w = parseSafetensors(await store.getBytes(sft.outputs.weights), "weights");
    const before = parseSafetensors(
      await Deno.readFile(join(tmp, "m", "model.safetensors")),
      "init",
    );
    const name = "model.embed_tokens.weight";
    assert.notDeepEqual(w.get(name)!.data, before.get(name)!.data, "the weights moved");

    // The same lines with the tokenizer files present train the same bytes (nothing is encoded).
    await modelDir(join(tmp, "m"), true);
    const b = await runManifest({
      store,
      view: await loadManifest(path, { stages: BUILTIN_STAGES }),
    });
    assert.notEqual(b.runId, a.runId, "other model files, other run");
    assert.equal(b.record.stages.sft.outputs.weights, sft.outputs.weights);
  } finally {
    await rm(tmp, join(store.root, ".."));
  }
});

Deno.test("sft token data: stages that need text refuse a tokenizer-less directory before anything runs", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "arpo-sfttok-" });
  const store = await scratchStore();
  try {
    await modelDir(join(tmp, "m"), false);
    await Deno.writeTextFile(join(tmp, "tokens.jsonl"), TOKEN_LINES);
    await Deno.writeTextFile(
      join(tmp, "mixed.jsonl"),
      TOKEN_LINES + '{"prompt": "2+2?", "response": "4"}\n',
    );
    const bench = "plugins:\n  benchmarks:\n    - use: arith\n";
    // An eval after the token-data sft: refused when the run is planned, not after training.
    const evalPath = join(tmp, "e.yaml");
    await Deno.writeTextFile(
      evalPath,
      `name: e\nseed: 3\npolicy: { model: ./m }\n${bench}stages:\n` +
        "  - sft: { data: tokens.jsonl, steps: 1 }\n  - eval: { questions: 2 }\n",
    );
    const view = await loadManifest(evalPath, { stages: BUILTIN_STAGES });
    await assert.rejects(
      () => runManifest({ store, view }),
      (e) => {
        assert.ok(e instanceof ArpoError);
        const msg = e.message;
        assert.match(msg, /e\.yaml:3:\d+: policy\.model: /, msg);
        assert.ok(
          msg.includes(
            `the model directory ${join(tmp, "m")} has no tokenizer.json or tokenizer_config.json`,
          ),
          msg,
        );
        assert.ok(msg.includes("stage 'eval' (eval) needs the tokenizer"), msg);
        assert.ok(!msg.includes("'sft'"), `the token-data sft is not named: ${msg}`);
        assert.ok(msg.includes("Nothing was run."), msg);
        assert.equal(msg.split("\n").length, 1, "one paragraph");
        return true;
      },
    );
    assert.deepEqual(await filesUnder(store.root), [], "nothing written to the store");

    // sft on a benchmark's (text) demonstrations: refused the same way.
    const benchPath = join(tmp, "b.yaml");
    await Deno.writeTextFile(
      benchPath,
      `name: b\nseed: 3\npolicy: { model: ./m }\n${bench}stages:\n  - sft: { benchmarks: [arith] }\n`,
    );
    await assert.rejects(
      async () =>
        runManifest({ store, view: await loadManifest(benchPath, { stages: BUILTIN_STAGES }) }),
      (e) => e instanceof ArpoError && e.message.includes("stage 'sft' (sft) needs the tokenizer"),
    );

    // A text line among token lines: refused when the stage starts, before the model loads.
    const mixed = await writeManifest(tmp, "x", "  - sft: { data: mixed.jsonl, steps: 1 }\n");
    await assert.rejects(
      async () =>
        runManifest({ store, view: await loadManifest(mixed, { stages: BUILTIN_STAGES }) }),
      (e) => {
        const msg = (e as Error).message;
        assert.ok(
          msg.includes(`stage 'sft': ${join(tmp, "mixed.jsonl")}:4 is a text conversation`),
          msg,
        );
        assert.ok(msg.includes("has no tokenizer.json or tokenizer_config.json"), msg);
        return true;
      },
    );

    // Ids past the model's vocab: the line and field, before the model loads.
    await Deno.writeTextFile(join(tmp, "big.jsonl"), '{"input_ids": [1, 2, 300]}\n');
    const big = await writeManifest(tmp, "v", "  - sft: { data: big.jsonl, steps: 1 }\n");
    await assert.rejects(
      async () => runManifest({ store, view: await loadManifest(big, { stages: BUILTIN_STAGES }) }),
      (e) => {
        const msg = (e as Error).message;
        assert.match(
          msg,
          /big\.jsonl:1: input_ids\[2\] is 300, outside the model's vocabulary/,
          msg,
        );
        return true;
      },
    );
  } finally {
    await rm(tmp, join(store.root, ".."));
  }
});
