// Model directories as people have them (issue 15): no tokenizer files for token-id commands,
// generation_config.json's defaults, `model prompt --chat`, `--json` on every subcommand.
import assert from "node:assert/strict";
import { join } from "node:path";
import { run } from "../src/cli/commands/model.ts";
import { ByteTokenizer, saveTokenizer } from "../src/model/tokenizer.ts";
import { fixtureDir, loadReference, maxAbsDiff } from "./model_fixtures.ts";

async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => lines.push(a.map(String).join(" "));
  try {
    const code = await fn();
    return { code, out: lines.join("\n") };
  } finally {
    console.log = orig;
  }
}

/** A copy of the tiny Qwen2 fixture (config.json + model.safetensors only: no tokenizer). */
async function copyFixture(): Promise<string> {
  const tmp = await Deno.makeTempDir();
  for (const f of ["config.json", "model.safetensors"]) {
    await Deno.copyFile(join(fixtureDir("tiny-qwen2"), f), join(tmp, f));
  }
  return tmp;
}

Deno.test("a directory without tokenizer files: info, logits and generate on token ids", async () => {
  const dir = await copyFixture();
  try {
    const info = JSON.parse((await capture(() => run(["info", dir, "--json"]))).out);
    assert.equal(info.tokenizer, null);
    assert.equal(info.architecture, "qwen2");

    const ref = await loadReference("tiny-qwen2");
    const row = ref.rows[0];
    const lg = JSON.parse(
      (await capture(() => run(["logits", dir, "--tokens", row.join(","), "--json"]))).out,
    );
    const V = ref.vocab, n = row.length;
    assert.ok(maxAbsDiff(lg.logits, ref.logits[0].subarray((n - 1) * V, n * V)) <= 1e-4);

    const gen = await capture(() =>
      run([
        "generate",
        dir,
        "--tokens",
        "1,2,3",
        "--max-tokens",
        "4",
        "--temperature",
        "0",
        "--json",
      ])
    );
    const g = JSON.parse(gen.out);
    assert.deepEqual(g.prompt_tokens, [1, 2, 3]);
    assert.ok(g.tokens.length >= 1 && g.tokens.length <= 4);
    assert.equal(g.text, null);
    // Greedy from the fixture's reference prompt continues as transformers did.
    const k = ref.greedy_prompt_rows[0];
    const prompt = ref.rows[k];
    const greedy = JSON.parse(
      (await capture(() =>
        run([
          "generate",
          dir,
          "--tokens",
          prompt.join(","),
          "--max-tokens",
          String(ref.greedy[0].length),
          "--temperature",
          "0",
          "--json",
        ])
      )).out,
    );
    assert.ok(greedy.tokens.length > 0);
    assert.deepEqual(greedy.tokens, ref.greedy[0].slice(0, greedy.tokens.length));

    // Text needs a tokenizer: a clear error naming the directory, exit code 2.
    await assert.rejects(
      () => run(["logits", dir, "--text", "hi"]),
      (e: Error) => e.message.includes(dir) && /has no tokenizer/.test(e.message),
    );
    await assert.rejects(() => run(["prompt", dir, "--prompt", "hi"]), /has no tokenizer/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("generation_config.json supplies the sampling defaults and EOS ids", async () => {
  const dir = await copyFixture();
  try {
    await Deno.writeTextFile(
      join(dir, "generation_config.json"),
      JSON.stringify({
        do_sample: true,
        temperature: 0.5,
        top_p: 0.9,
        top_k: 3,
        eos_token_id: [7, 9],
      }),
    );
    const g = JSON.parse(
      (await capture(() =>
        run(["generate", dir, "--tokens", "1,2", "--max-tokens", "3", "--json"])
      ))
        .out,
    );
    assert.deepEqual(
      { t: g.sampling.temperature, p: g.sampling.topP, k: g.sampling.topK },
      { t: 0.5, p: 0.9, k: 3 },
    );
    const info = JSON.parse((await capture(() => run(["info", dir, "--json"]))).out);
    assert.deepEqual(info.generation.eosTokenIds, [7, 9]);
    // A flag wins over the file; without do_sample: true the file means greedy (as transformers).
    const flag = JSON.parse(
      (await capture(() =>
        run(["generate", dir, "--tokens", "1", "--max-tokens", "1", "--top-k", "0", "--json"])
      )).out,
    );
    assert.equal(flag.sampling.topK, 0);
    await Deno.writeTextFile(
      join(dir, "generation_config.json"),
      JSON.stringify({ temperature: 0.9 }),
    );
    const greedy = JSON.parse(
      (await capture(() => run(["generate", dir, "--tokens", "1", "--max-tokens", "1", "--json"])))
        .out,
    );
    assert.equal(greedy.sampling.temperature, 0);
    await Deno.writeTextFile(
      join(dir, "generation_config.json"),
      JSON.stringify({ do_sample: true, top_k: "x" }),
    );
    await assert.rejects(
      () => run(["info", dir]),
      /generation_config\.json: 'top_k' must be a non-negative integer/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("model prompt prints the rendered chat template and its ids (text and --json)", async () => {
  const dir = await copyFixture();
  try {
    const tok = new ByteTokenizer({
      chatTemplate:
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
    });
    await saveTokenizer(tok, dir);
    const j = JSON.parse(
      (await capture(() =>
        run(["prompt", dir, "--prompt", "hi", "--chat", "--system", "be brief", "--json"])
      )).out,
    );
    assert.equal(j.text, "<|system|>be brief\n<|user|>hi\n<|assistant|>");
    assert.deepEqual(
      j.tokens,
      tok.encodeChat([{ role: "system", content: "be brief" }, {
        role: "user",
        content: "hi",
      }], true),
    );
    const text = await capture(() => run(["prompt", dir, "--prompt", "hi", "--chat"]));
    assert.ok(text.out.startsWith("<|user|>hi\n<|assistant|>\n--- "), text.out);
    const plain = JSON.parse(
      (await capture(() => run(["prompt", dir, "--prompt", "ab", "--json"]))).out,
    );
    assert.deepEqual(plain.tokens, tok.encode("ab"));
    await assert.rejects(
      () => run(["prompt", dir, "--prompt", "a", "--system", "s"]),
      /needs --chat/,
    );
    await assert.rejects(
      () => run(["prompt", dir, "--prompt", "a", "--top", "3"]),
      /unknown flag --top/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
