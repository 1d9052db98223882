/** loadPolicy: model directories and `init:` policies, file tracking, and bad input. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadPolicy, loadPolicyArchitecture, loadPolicyModel } from "../src/policy/load.ts";
import { OnnxPolicy } from "../src/policy/onnx_policy.ts";
import { policyInitSchema } from "../src/manifest/policy.ts";
import { saveModel } from "../src/model/load.ts";
import { ByteTokenizer, saveTokenizer } from "../src/model/tokenizer.ts";
import { ArpoError } from "../src/errors.ts";
import { stream } from "../src/rng.ts";
import { fixtureDir, maxAbsDiff } from "./model_fixtures.ts";

async function copyFixture(name: string, into: string): Promise<void> {
  await Deno.mkdir(into, { recursive: true });
  for await (const e of Deno.readDir(fixtureDir(name))) {
    if (e.isFile) await Deno.copyFile(join(fixtureDir(name), e.name), join(into, e.name));
  }
  await saveTokenizer(new ByteTokenizer(), into);
}

/** A readFile that records each path read, relative to `root`. */
function trackedReads(
  root: string,
): { read: string[]; readFile: (path: string) => Promise<Uint8Array> } {
  const read: string[] = [];
  return {
    read,
    readFile: (path) => {
      read.push(path.slice(root.length + 1));
      return Deno.readFile(path);
    },
  };
}

Deno.test("loadPolicy: a model directory relative to the manifest, with every file read tracked", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await copyFixture("tiny-qwen3", join(tmp, "models", "q3"));
    const { read, readFile } = trackedReads(tmp);
    const p = await loadPolicy({ model: "models/q3" }, {
      baseDir: tmp,
      threads: 1,
      device: "cpu",
      readFile,
    });
    try {
      assert.equal(p.device, "cpu");
      assert.match(p.digest, /^[0-9a-f]{64}$/);
      assert.deepEqual(read.sort(), [
        "models/q3/config.json",
        "models/q3/model-00001-of-00002.safetensors",
        "models/q3/model-00002-of-00002.safetensors",
        "models/q3/model.safetensors.index.json",
        "models/q3/tokenizer.json",
        "models/q3/tokenizer_config.json",
      ]);
      const seq = p.create(p.tokenizer.encode("hi"), stream(0, "t"));
      const [r] = await p.generate([{ seq, stop: { maxTokens: 3 } }], {
        temperature: 1,
        topP: 1,
        topK: 0,
      });
      assert.equal(r.tokens.length, 3);
    } finally {
      await p.dispose();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("loadPolicy: an init policy equals the same model saved and loaded as a directory", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const init = policyInitSchema.parse({
      hidden_size: 32,
      layers: 2,
      heads: 4,
      kv_heads: 2,
      intermediate_size: 64,
    });
    const a = await loadPolicyModel({ init }, { baseDir: tmp, seed: 11 });
    assert.equal(a.model.config.vocabSize, a.tokenizer.vocabSize);
    assert.equal(a.model.config.architecture, "qwen2");
    await saveModel(a.model, join(tmp, "m"));
    await saveTokenizer(a.tokenizer, join(tmp, "m"));
    const b = await loadPolicyModel({ model: "m" }, { baseDir: tmp });
    assert.equal(b.model.digest, a.model.digest);
    const pa = await loadPolicy({ init }, { baseDir: tmp, seed: 11, threads: 1 });
    const pb = await loadPolicy({ model: "m" }, { baseDir: tmp, threads: 1 });
    const pc = await loadPolicy({ init }, { baseDir: tmp, seed: 12, threads: 1 });
    try {
      assert.equal(pa.digest, pb.digest);
      assert.notEqual(pa.digest, pc.digest);
      const ids = pa.tokenizer.encode("abc");
      const [la] = await pa.logits([pa.create(ids, stream(0, "x"))]);
      const [lb] = await pb.logits([pb.create(ids, stream(0, "x"))]);
      assert.equal(maxAbsDiff(la, lb), 0);
    } finally {
      await pa.dispose();
      await pb.dispose();
      await pc.dispose();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("loadPolicy: missing files, a broken tokenizer.json and an unavailable device are clear errors", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const dir = join(tmp, "m");
    await copyFixture("tiny-llama", dir);
    await assert.rejects(
      () => loadPolicy({ model: "m" }, { baseDir: tmp, device: "cuda" }),
      (e) => e instanceof ArpoError && /device 'cuda' was requested/.test(e.message),
    );
    await Deno.writeTextFile(join(dir, "tokenizer.json"), "{ not json");
    await assert.rejects(
      () => loadPolicy({ model: "m" }, { baseDir: tmp }),
      (e) => e instanceof ArpoError && /tokenizer\.json/.test(e.message),
    );
    await Deno.remove(join(dir, "tokenizer.json"));
    await assert.rejects(
      () => loadPolicy({ model: "m" }, { baseDir: tmp }),
      (e) => e instanceof ArpoError && /missing tokenizer\.json/.test(e.message),
    );
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify({ model_type: "gpt2" }));
    await saveTokenizer(new ByteTokenizer(), dir);
    await assert.rejects(
      () => loadPolicy({ model: "m" }, { baseDir: tmp }),
      (e) => e instanceof ArpoError && /unsupported architecture 'gpt2'/.test(e.message),
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("weights-only policy (training stages): the model and tokenizer, no session", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await copyFixture("tiny-qwen3", join(tmp, "q3"));
    const { model, tokenizer } = await loadPolicyModel({ model: "q3" }, { baseDir: tmp });
    const p = OnnxPolicy.weightsOnly(model, tokenizer);
    const full = await loadPolicy({ model: "q3" }, { baseDir: tmp, threads: 1 });
    try {
      assert.equal(p.digest, full.digest);
      assert.equal(p.model.weights, model.weights);
      assert.throws(() => p.runtime, /weights only .*cannot generate or score/);
      const seq = p.create(tokenizer.encode("hi"), stream(0, "w"));
      await assert.rejects(
        () => p.generate([{ seq, stop: { maxTokens: 1 } }], { temperature: 0, topP: 1, topK: 0 }),
        /weights only/,
      );
    } finally {
      await p.dispose();
      await p.dispose(); // a second release is a no-op, as for a policy with a session
      await full.dispose();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("loadPolicyArchitecture: the config and tokenizer of a directory, no weight file read", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await copyFixture("tiny-qwen3", join(tmp, "q3"));
    const { read, readFile } = trackedReads(tmp);
    const arch = await loadPolicyArchitecture({ model: "q3" }, { baseDir: tmp, readFile });
    assert.deepEqual(read.sort(), [
      "q3/config.json",
      "q3/tokenizer.json",
      "q3/tokenizer_config.json",
    ]);
    const { model, tokenizer } = await loadPolicyModel({ model: "q3" }, { baseDir: tmp });
    assert.deepEqual(arch.config, model.config);
    assert.equal(arch.tokenizer.vocabSize, tokenizer.vocabSize);
    assert.equal(arch.dir, join(tmp, "q3"));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
