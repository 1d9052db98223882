/**
 * The server policy against `arpo serve` end to end, on a tiny model written here: an eval stage
 * through the server gives the same tokens as the in-process ONNX policy at temperature 0; the
 * server run records its answers, and `verify` replays them with the server gone; generate-level
 * stops, sampling seeds and batching; a checkpoint served as RUN:STAGE; an rl update with a server
 * policy is refused when the manifest is validated.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest } from "../src/manifest/mod.ts";
import { initConfig } from "../src/policy/load.ts";
import { policyInitSchema, policyServerSchema } from "../src/manifest/policy.ts";
import { initModel, saveModel } from "../src/model/load.ts";
import { loadTokenizer, saveTokenizer } from "../src/model/tokenizer.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { runManifest } from "../src/run/runner.ts";
import { verifyRun } from "../src/run/reexec.ts";
import { loadTarget } from "../src/serve/load.ts";
import { startServer } from "../src/serve/server.ts";
import { ServerPolicy } from "../src/policy/server_policy.ts";
import { Stream } from "../src/rng.ts";
import type { Store } from "../src/store/store.ts";
import { ArpoError } from "../src/errors.ts";
import { REPO, rm, scratchStore } from "./fixtures/helpers.ts";

/** A tiny qwen2 model with the byte tokenizer in `dir`. */
async function tinyModel(dir: string): Promise<void> {
  const tok = await loadTokenizer({});
  const init = policyInitSchema.parse({
    hidden_size: 32,
    layers: 2,
    heads: 2,
    kv_heads: 2,
    intermediate_size: 64,
    max_position: 2048,
  });
  await saveModel(initModel(initConfig(init, tok), 7), dir);
  await saveTokenizer(tok, dir);
}

const BENCH = `plugins:
  benchmarks:
    - use: arith
      with: { sizes: { train: 4, rl: 4, test: 6 } }
`;
const EVAL = `  - eval: { benchmark: arith, questions: 6, rollout: { rollouts: 2 }, ` +
  `sampling: { temperature: 0, max_tokens: 24 } }\n`;

async function manifest(dir: string, name: string, policy: string, stages = EVAL) {
  const path = join(dir, `${name}.yaml`);
  await Deno.writeTextFile(
    path,
    `name: e2e\nseed: 3\npolicy: ${policy}\n${BENCH}stages:\n${stages}`,
  );
  return await loadManifest(path, { stages: BUILTIN_STAGES });
}

/** Token ids of every node of every stored tree of a rollout batch. */
async function treeTokens(store: Store, index: string): Promise<number[][]> {
  const idx = await store.getJson<{ questions: { tree: string }[] }>(index);
  const out: number[][] = [];
  for (const q of idx.questions) {
    const text = new TextDecoder().decode(await store.getBytes(q.tree));
    for (const line of text.split("\n").filter(Boolean)) {
      const o = JSON.parse(line);
      if (Array.isArray(o.tokens)) out.push(o.tokens);
    }
  }
  return out;
}

async function serve(target: string, store: Store) {
  const t = await loadTarget(target, { store, threads: 1 });
  const server = await startServer({ ...t, port: 0 });
  return { ...t, server, url: server.url };
}

Deno.test("eval through arpo serve = in-process ONNX at temperature 0; verify replays without the server", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-serve-" });
  const store = await scratchStore();
  await tinyModel(join(dir, "model"));
  const s = await serve(join(dir, "model"), store);
  try {
    const local = await runManifest({
      store,
      view: await manifest(dir, "local", "{ model: ./model }"),
    });
    const view = await manifest(
      dir,
      "server",
      `{ server: { url: "${s.url}", model: model, max_concurrency: 3, retries: 1 } }`,
    );
    const remote = await runManifest({ store, view });
    const a = local.record.stages.eval, b = remote.record.stages.eval;
    const ta = await treeTokens(store, a.outputs.rollouts);
    const tb = await treeTokens(store, b.outputs.rollouts);
    assert.equal(ta.length, 6 * 2, "6 questions × 2 trajectories");
    assert.deepEqual(tb, ta, "same tokens through the server");
    const ra = await store.getJson<{ per_question: unknown }>(a.outputs.results);
    const rb = await store.getJson<{ per_question: unknown }>(b.outputs.results);
    assert.deepEqual(rb.per_question, ra.per_question);
    // The record says what the policy was, and that it is not bit-reproducible.
    const p = b.metrics.policy as Record<string, unknown>;
    assert.equal(p.backend, "server");
    assert.equal(p.bit_reproducible, false);
    assert.equal(p.entropy, "exact", "arpo serve returns exact entropies");
    assert.equal((p.tokenizer as { checked_with_server: boolean }).checked_with_server, true);
    assert.ok(b.outputs.policy_responses && b.outputs.policy_tokenizer);
    assert.ok(s.server.stats.maxBatch > 1, "concurrent requests shared a decode");
    assert.ok(s.server.stats.decodes < s.server.stats.requests);

    // The server goes away; verify answers every request from the recording.
    await s.server.close();
    const v = await verifyRun(store, remote.runId);
    assert.deepEqual(v.divergences, []);
    // A fresh run on the same store with the server gone fails clearly, naming it.
    await assert.rejects(
      () => runManifest({ store, view, force: true }),
      (e) => e instanceof ArpoError && e.message.includes(`policy server ${s.url}`),
    );
  } finally {
    await s.server.close().catch(() => {});
    await s.policy.dispose();
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("ServerPolicy on arpo serve: stops, forks and seeded sampling agree with the ONNX policy", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-serve-" });
  const store = await scratchStore();
  await tinyModel(join(dir, "model"));
  const s = await serve(join(dir, "model"), store);
  try {
    const config = policyServerSchema.parse({ url: s.url, model: "model", max_concurrency: 2 });
    const sp = await ServerPolicy.connect({ config, tokenizer: s.tokenizer });
    const onnx = s.policy; // the served policy itself, used in-process
    const prompt = s.tokenizer.encode("12 + 30 = ");
    const greedy = { temperature: 0, topP: 1, topK: 0 };
    // Greedy, then a stop string taken from the greedy text's middle, then a stop id.
    const ref = await onnx.generate(
      [{ seq: onnx.create(prompt, new Stream([1])), stop: { maxTokens: 12 } }],
      greedy,
    );
    const text = s.tokenizer.decode(ref[0].tokens.slice(3, 5).map((t) => t.id));
    const stopId = ref[0].tokens[6].id;
    for (
      const stop of [{ maxTokens: 12 }, { maxTokens: 12, strings: [text] }, {
        maxTokens: 12,
        tokenIds: [stopId],
      }]
    ) {
      const [x] = await onnx.generate(
        [{ seq: onnx.create(prompt, new Stream([1])), stop }],
        greedy,
        { topLogprobs: 3 },
      );
      const [y] = await sp.generate(
        [{ seq: sp.create(prompt, new Stream([1])), stop }],
        greedy,
        { topLogprobs: 3 },
      );
      assert.deepEqual(y.tokens.map((t) => t.id), x.tokens.map((t) => t.id));
      assert.deepEqual(y.stop, x.stop);
      assert.equal(x.stop.reason, stop.strings ? "string" : stop.tokenIds ? "token" : "length");
      for (let i = 0; i < x.tokens.length; i++) {
        assert.ok(Math.abs(y.tokens[i].entropy - x.tokens[i].entropy) < 1e-4);
        assert.deepEqual(y.tokens[i].top!.map((e) => e[0]), x.tokens[i].top!.map((e) => e[0]));
      }
    }
    // A second round (a tool result appended): the server forks its cached prefix and forwards
    // only the new tokens; the tokens are those of the in-process sequence continued.
    const result = s.tokenizer.encode(" <result>\n42\n</result> ");
    const two = async (p: typeof onnx | ServerPolicy) => {
      const seq = p.create(prompt, new Stream([9]));
      const a = await p.generate([{ seq, stop: { maxTokens: 6 } }], greedy);
      p.append(seq, result);
      const b = await p.generate([{ seq, stop: { maxTokens: 6 } }], greedy);
      return [...a[0].tokens, ...b[0].tokens].map((t) => t.id);
    };
    const cached0 = s.server.stats.cachedTokens;
    assert.deepEqual(await two(sp), await two(onnx));
    assert.equal(
      s.server.stats.cachedTokens - cached0,
      prompt.length + 5,
      "round 2 reused the first round's prompt and its 6 answer tokens but the last",
    );
    // Sampling: a seed per (stream, position): the same streams give the same tokens, forks of
    // one prefix with other streams are new requests on the shared prefix.
    const hot = { temperature: 1, topP: 1, topK: 0 };
    const root = sp.create(prompt, new Stream([5, "root"]));
    const kids = [0, 1, 2].map((i) => sp.fork(root, new Stream([5, "kid", i])));
    const r1 = await sp.generate(kids.map((seq) => ({ seq, stop: { maxTokens: 8 } })), hot);
    const again = [0, 1, 2].map((i) => sp.fork(root, new Stream([5, "kid", i])));
    const r2 = await sp.generate(again.map((seq) => ({ seq, stop: { maxTokens: 8 } })), hot);
    assert.deepEqual(
      r2.map((r) => r.tokens.map((t) => t.id)),
      r1.map((r) => r.tokens.map((t) => t.id)),
    );
    assert.deepEqual(sp.tokens(kids[0]).slice(0, prompt.length), prompt);
    assert.equal(
      sp.recording.size(),
      3 + 2 + 3,
      "3 greedy, 2 rounds, 3 sampled requests (repeats answered once)",
    );
    await assert.rejects(
      () => sp.score(),
      /teacher-forced scoring \(training\) needs the ONNX policy/,
    );
    await assert.rejects(
      () => sp.generate([{ seq: root, stop: { maxTokens: 2 } }], greedy, { topLogprobs: 30 }),
      /30 top log-probabilities are needed .* policy\.server\.top_logprobs is 20/,
    );
    // A model name the server does not serve.
    await assert.rejects(
      () => ServerPolicy.connect({ config: { ...config, model: "qwen" }, tokenizer: s.tokenizer }),
      /model 'qwen' is not served \(it serves: model\)/,
    );
  } finally {
    await s.server.close();
    await s.policy.dispose();
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("probe and an ARPO rl dry run on a server policy; verify replays them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-serve-" });
  const store = await scratchStore();
  await tinyModel(join(dir, "model"));
  const s = await serve(join(dir, "model"), store);
  try {
    const stages = `  - probe: { benchmark: arith, questions: 2, max_distance: 8, ` +
      `sampling: { max_tokens: 16 } }\n` +
      `  - rl: { benchmark: arith, reward: em, dry_run: true, steps: 1, questions_per_step: 2, ` +
      `minibatch: 2, rollout: { algorithm: arpo, rollouts: 4, initial: 2 }, ` +
      `sampling: { max_tokens: 16 } }\n`;
    const path = join(dir, "dry.yaml");
    await Deno.writeTextFile(
      path,
      `name: dry\nseed: 3\npolicy: { server: { url: "${s.url}", model: model, retries: 0 } }\n` +
        BENCH + `  rewards:\n    - { use: exact_match, as: em }\nstages:\n${stages}`,
    );
    const r = await runManifest({
      store,
      view: await loadManifest(path, { stages: BUILTIN_STAGES }),
    });
    for (const st of ["probe", "rl"]) {
      assert.ok(r.record.stages[st].outputs.policy_responses, `${st} recorded its answers`);
      assert.equal((r.record.stages[st].metrics.policy as { entropy: string }).entropy, "exact");
    }
    await s.server.close();
    const v = await verifyRun(store, r.runId);
    assert.deepEqual(v.divergences, []);
  } finally {
    await s.server.close().catch(() => {});
    await s.policy.dispose();
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("RUN:STAGE serves a checkpoint: the eval after sft, in-process and through the server, agree", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-serve-" });
  const store = await scratchStore();
  await tinyModel(join(dir, "model"));
  const sft = `  - sft: { benchmarks: [arith], epochs: 1, batch_size: 4, lr: 0.05 }\n` +
    `  - eval: { benchmark: arith, questions: 6, rollout: { rollouts: 1 }, ` +
    `sampling: { temperature: 0, max_tokens: 24 } }\n`;
  const local = await runManifest({
    store,
    view: await manifest(dir, "sft", "{ model: ./model }", sft),
  });
  await assert.rejects(
    () => loadTarget(`${local.runId.slice(0, 10)}:eval`, { store }),
    /stage 'eval' \(eval\) of run .* produced no weights/,
  );
  const s = await serve(`${local.runId.slice(0, 10)}:sft`, store);
  try {
    assert.equal(s.name, `${local.runId.slice(0, 12)}:sft`);
    const evalOnly = `  - eval: { benchmark: arith, questions: 6, rollout: { rollouts: 1 }, ` +
      `sampling: { temperature: 0, max_tokens: 24 } }\n`;
    const remote = await runManifest({
      store,
      view: await manifest(
        dir,
        "remote",
        `{ server: { url: "${s.url}", model: "${s.name}", retries: 0 } }`,
        evalOnly,
      ),
    });
    const a = local.record.stages.eval.outputs.rollouts;
    const b = remote.record.stages.eval.outputs.rollouts;
    assert.deepEqual(await treeTokens(store, b), await treeTokens(store, a));
    const served = await (await fetch(`${s.url}/v1/models`)).json();
    const idx = await store.getJson<{ policy: string }>(a);
    assert.equal(served.data[0].arpo.digest, idx.policy, "the served weights are the checkpoint's");
  } finally {
    await s.server.close();
    await s.policy.dispose();
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("an rl update with a server policy is refused at validation; the dry run is allowed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-serve-" });
  try {
    const server = `{ server: { url: "http://127.0.0.1:9", model: m } }`;
    const rl = `  - rl: { benchmark: arith, reward: em, steps: 1 }\n`;
    const plugins = BENCH + `  rewards:\n    - { use: exact_match, as: em }\n`;
    const path = join(dir, "rl.yaml");
    await Deno.writeTextFile(path, `name: r\npolicy: ${server}\n${plugins}stages:\n${rl}`);
    await assert.rejects(
      () => loadManifest(path, { stages: BUILTIN_STAGES }),
      (e) =>
        e instanceof ArpoError && /rl\.yaml:\d+:\d+/.test(e.message) &&
        /stage 'rl' \(rl\) updates the policy's weights/.test(e.message) &&
        /dry_run: true/.test(e.message),
    );
    await Deno.writeTextFile(
      path,
      `name: r\npolicy: ${server}\n${plugins}stages:\n  - rl: { benchmark: arith, reward: em, ` +
        `steps: 1, dry_run: true }\n`,
    );
    const m = await loadManifest(path, { stages: BUILTIN_STAGES });
    assert.ok("server" in m.manifest.policy);
  } finally {
    await rm(dir);
  }
});

Deno.test("arpo serve CLI: banner, /health, vLLM-style 400s, 404, stops on SIGTERM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-serve-" });
  await tinyModel(join(dir, "model"));
  const proc = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      join(REPO, "src/cli/main.ts"),
      "serve",
      join(dir, "model"),
      "--port",
      "0",
      "--name",
      "tiny",
      "--threads",
      "1",
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ARPO_PRELOAD: "" },
  }).spawn();
  const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let banner = "";
    while (!/on (http:\/\/\S+)/.test(banner)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`arpo serve exited early: ${banner}`);
      banner += value;
    }
    assert.match(banner, /^serving tiny \([0-9a-f]{12}, cpu\) on http:\/\/127\.0\.0\.1:\d+/);
    const url = /on (http:\/\/\S+)/.exec(banner)![1];
    assert.equal((await fetch(`${url}/health`)).status, 200);
    const post = (path: string, body: unknown) =>
      fetch(url + path, { method: "POST", body: JSON.stringify(body) });
    const bad = await post("/v1/completions", { prompt: [1, 2], stream: true });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error.message, /'stream' is not supported/);
    const many = await post("/v1/completions", { prompt: [1, 2], logprobs: 21 });
    assert.match((await many.json()).error.message, /'logprobs' must be a number in \[0, 20\]/);
    const other = await post("/v1/completions", { model: "gpt-4", prompt: [1] });
    assert.match((await other.json()).error.message, /model 'gpt-4' is not served/);
    const oob = await post("/v1/completions", { prompt: [1, 99999] });
    assert.match((await oob.json()).error.message, /token ids in \[0, 259\)/);
    const ok = await post("/v1/completions", { prompt: "12+", max_tokens: 3, temperature: 0 });
    const j = await ok.json();
    assert.equal(j.choices[0].finish_reason, "length");
    assert.equal(j.usage.completion_tokens, 3);
    assert.equal((await fetch(`${url}/v1/nothing`)).status, 404);
    proc.kill("SIGTERM");
    const st = await proc.status;
    assert.equal(st.code, 0);
    const err = new TextDecoder().decode(await new Response(proc.stderr).arrayBuffer());
    assert.match(err, /stopped: \d+ requests in \d+ batched decodes/);
  } finally {
    reader.releaseLock();
    try {
      proc.kill("SIGKILL");
    } catch {
      // already exited
    }
    await proc.status;
    await rm(dir);
  }
});
