/**
 * The byte-level tokenizer for models trained here: ids 0–255 are the UTF-8 bytes, then the special
 * tokens (by default BOS=256, EOS=257, PAD=258, then any extra named specials).
 *
 * Stored form: an ordinary Hugging Face tokenizer.json (a ByteLevel BPE whose vocabulary maps the
 * GPT-2 byte alphabet character of byte b to id b, with no merges; specials as added tokens; a
 * TemplateProcessing post-processor that prepends BOS) plus a tokenizer_config.json naming the
 * roles. We chose this over a private format so a model directory trained here is a standard
 * Hugging Face directory: Python transformers and tokenizers load it and produce the same ids.
 * `isByteTokenizerJson` recognizes the shape so `loadTokenizer` returns this native implementation.
 */
import type { ChatMessage } from "../plugin/contracts.ts";
import { ArpoError } from "../errors.ts";
import { digestJson, sha256 } from "../store/hash.ts";
import { ChatTemplate, templateFromConfig } from "./chat_template.ts";
import type { DecodeOptions, EncodeOptions, StreamDecoder, Tokenizer } from "./tokenizer.ts";

export interface ByteTokenizerOptions {
  /** BOS token string; null for none. Default `<|bos|>`. */
  bos?: string | null;
  /** EOS token string; null for none. Default `<|eos|>`. */
  eos?: string | null;
  /** PAD token string; null for none. Default `<|pad|>`. */
  pad?: string | null;
  /** More named special tokens, given ids after BOS, EOS and PAD in this order. */
  extra?: readonly string[];
  /**
   * Strings that become single ordinary tokens (Hugging Face added tokens with `special: false`),
   * ids after the specials in this order. Unlike specials they are always recognized, in tool output
   * too (they carry no role), and decode to their text even with `skipSpecials`. They make the
   * sequences of a fixed protocol short: `<python>print(` as one token instead of 14 bytes.
   */
  words?: readonly string[];
  /** A Jinja chat template, if prompts for this model are chats. */
  chatTemplate?: string;
}

export const DEFAULT_BOS = "<|bos|>";
export const DEFAULT_EOS = "<|eos|>";
export const DEFAULT_PAD = "<|pad|>";

/**
 * GPT-2's byte → printable character map used by Hugging Face ByteLevel components: printable
 * Latin-1 bytes map to themselves, the rest to U+0100 onwards in byte order.
 */
export function byteLevelAlphabet(): string[] {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let next = 0;
  for (let b = 0; b < 256; b++) {
    out.push(String.fromCodePoint(printable(b) ? b : 256 + next++));
  }
  return out;
}

const ALPHABET = byteLevelAlphabet();
const ENCODER = new TextEncoder();

export class ByteTokenizer implements Tokenizer {
  readonly kind = "byte" as const;
  readonly vocabSize: number;
  readonly eosTokenIds: readonly number[];
  readonly bosTokenId?: number;
  readonly padTokenId?: number;
  readonly specialTokenIds: readonly number[];
  /** Special token strings in id order (id = 256 + index). */
  readonly specials: readonly string[];
  /** Word tokens in id order (id = 256 + specials.length + index). */
  readonly words: readonly string[];
  readonly digest: string;
  readonly applyChatTemplate?: (
    messages: ChatMessage[],
    addGenerationPrompt: boolean,
    extra?: Record<string, unknown>,
  ) => string;

  readonly #options: ByteTokenizerOptions;
  /** Ids and UTF-8 bytes of the added tokens: the specials, then the words. */
  readonly #addedIds: Map<string, number>;
  readonly #addedBytes: Uint8Array[];
  /** Specials and words, longest first: what `encode` with specials matches. */
  readonly #allPattern?: RegExp;
  /** Words alone, longest first: what `encode` without specials matches. */
  readonly #wordPattern?: RegExp;

  /**
   * `loaded` is for `fromFiles`: EOS ids from generation_config.json, and where the chat template
   * came from (for error messages).
   */
  constructor(
    options: ByteTokenizerOptions = {},
    loaded: { extraEos?: readonly number[]; templateOrigin?: string } = {},
  ) {
    const extraEos = loaded.extraEos ?? [];
    const bos = options.bos === undefined ? DEFAULT_BOS : options.bos;
    const eos = options.eos === undefined ? DEFAULT_EOS : options.eos;
    const pad = options.pad === undefined ? DEFAULT_PAD : options.pad;
    const specials: string[] = [];
    const add = (name: string | null, what: string) => {
      if (name === null) return undefined;
      if (typeof name !== "string" || name.length === 0) {
        throw new ArpoError(
          `Byte tokenizer: the ${what} token must be a non-empty string, found ` +
            `${JSON.stringify(name)}.`,
        );
      }
      if (specials.includes(name)) {
        throw new ArpoError(
          `Byte tokenizer: special token ${JSON.stringify(name)} is listed twice.`,
        );
      }
      specials.push(name);
      return 255 + specials.length;
    };
    this.bosTokenId = add(bos, "BOS");
    const eosId = add(eos, "EOS");
    this.padTokenId = add(pad, "PAD");
    for (const [i, name] of (options.extra ?? []).entries()) add(name, `extra[${i}]`);
    const words = [...(options.words ?? [])];
    for (const [i, word] of words.entries()) {
      if (typeof word !== "string" || word.length === 0) {
        throw new ArpoError(
          `Byte tokenizer: words[${i}] must be a non-empty string, found ${JSON.stringify(word)}.`,
        );
      }
      if (specials.includes(word) || words.indexOf(word) !== i) {
        throw new ArpoError(
          `Byte tokenizer: words[${i}] ${JSON.stringify(word)} is already a ${
            specials.includes(word) ? "special token" : "word (listed twice)"
          }.`,
        );
      }
    }

    this.#options = {
      bos,
      eos,
      pad,
      extra: [...(options.extra ?? [])],
      // Only when given, so that a tokenizer without words keeps its options (and digest).
      ...(words.length > 0 ? { words } : {}),
      ...(options.chatTemplate !== undefined ? { chatTemplate: options.chatTemplate } : {}),
    };
    this.specials = specials;
    this.words = words;
    this.vocabSize = 256 + specials.length + words.length;
    this.specialTokenIds = specials.map((_, i) => 256 + i);
    for (const id of extraEos) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new ArpoError(
          `Byte tokenizer: EOS id ${id} is outside the vocabulary (0..${this.vocabSize - 1}).`,
        );
      }
    }
    this.eosTokenIds = [...new Set([...(eosId === undefined ? [] : [eosId]), ...extraEos])];
    const added = [...specials, ...words];
    this.#addedIds = new Map(added.map((s, i) => [s, 256 + i]));
    this.#addedBytes = added.map((s) => ENCODER.encode(s));
    // Longest first, so a token that is a prefix of another never shadows it: leftmost-longest,
    // as Hugging Face matches added tokens.
    const pattern = (list: string[]) =>
      list.length === 0 ? undefined : new RegExp(
        [...list].sort((a, b) => b.length - a.length).map(escapeRegExp).join("|"),
        "g",
      );
    this.#allPattern = pattern(added);
    this.#wordPattern = pattern(words);
    if (options.chatTemplate !== undefined) {
      const template = new ChatTemplate(
        options.chatTemplate,
        {
          ...(bos !== null ? { bos_token: bos } : {}),
          ...(eos !== null ? { eos_token: eos } : {}),
          ...(pad !== null ? { pad_token: pad } : {}),
        },
        loaded.templateOrigin ?? "the byte tokenizer's options",
      );
      this.applyChatTemplate = (messages, addGenerationPrompt, extra) =>
        template.render(messages, addGenerationPrompt, extra);
    }
    this.digest = digestJson({
      kind: "byte",
      files: Object.fromEntries(
        Object.entries(this.files()).map(([name, text]) => [name, sha256(text)]),
      ),
    });
  }

  /**
   * Rebuild from the stored files. `config` is tokenizer_config.json (roles of the specials,
   * chat template); `generationConfig.eos_token_id` adds EOS ids. Undefined when the specials
   * are not stored in this class's id order (then the files load as a general HF tokenizer).
   */
  static fromFiles(
    tokenizerJson: Record<string, unknown>,
    config: Record<string, unknown>,
    where: { dir: string; chatTemplate?: string; generationConfig?: Record<string, unknown> },
  ): ByteTokenizer | undefined {
    const configPath = `${where.dir}/tokenizer_config.json`;
    const added = (tokenizerJson.added_tokens as
      | { id: number; content: string; special?: boolean }[]
      | undefined) ?? [];
    const specials = added.filter((t) => t.special !== false).map((t) => t.content);
    const words = added.filter((t) => t.special === false).map((t) => t.content);
    const role = (field: string): string | null => {
      const v = config[field];
      const name = typeof v === "string"
        ? v
        : v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string"
        ? (v as { content: string }).content
        : null;
      if (name !== null && !specials.includes(name)) {
        throw new ArpoError(
          `${configPath}: "${field}" is ${JSON.stringify(name)}, which is not one of the special ` +
            `tokens of tokenizer.json (${specials.map((s) => JSON.stringify(s)).join(", ")}).`,
        );
      }
      return name;
    };
    const bos = role("bos_token");
    const eos = role("eos_token");
    const pad = role("pad_token");
    // Stored order must be BOS, EOS, PAD, extras for ids to come out the same; check it.
    const roles = [bos, eos, pad].filter((s): s is string => s !== null);
    const extra = specials.filter((s) => !roles.includes(s));
    const template = where.chatTemplate ??
      templateFromConfig(config.chat_template, configPath);
    const tok = new ByteTokenizer(
      {
        bos,
        eos,
        pad,
        extra,
        ...(words.length > 0 ? { words } : {}),
        ...(template !== undefined ? { chatTemplate: template } : {}),
      },
      {
        extraEos: generationEos(where.generationConfig, `${where.dir}/generation_config.json`),
        templateOrigin: where.chatTemplate !== undefined
          ? `${where.dir}/chat_template.jinja`
          : configPath,
      },
    );
    // Ids follow the order BOS, EOS, PAD, extras; files in another order keep their ids only
    // through the general Hugging Face path.
    if (tok.specials.join("\u0000") !== specials.join("\u0000")) return undefined;
    return tok;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const pattern = options.specials ? this.#allPattern : this.#wordPattern;
    if (pattern === undefined) return Array.from(ENCODER.encode(text));
    const ids: number[] = [];
    let last = 0;
    for (const m of text.matchAll(pattern)) {
      if (m.index > last) {
        for (const b of ENCODER.encode(text.slice(last, m.index))) ids.push(b);
      }
      ids.push(this.#addedIds.get(m[0])!);
      last = m.index + m[0].length;
    }
    if (last < text.length) { for (const b of ENCODER.encode(text.slice(last))) ids.push(b); }
    return ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const s = this.streamDecoder(options);
    let out = "";
    for (const id of ids) out += s.push(id);
    return out + s.flush();
  }

  streamDecoder(options: DecodeOptions = {}): StreamDecoder {
    // A special token's text goes through the same UTF-8 stream: it starts with a non-continuation
    // byte, so a character cut by it becomes U+FFFD exactly as Hugging Face decoding does.
    const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
    const one = new Uint8Array(1);
    return {
      push: (id: number): string => {
        if (Number.isInteger(id) && id >= 0 && id < 256) {
          one[0] = id;
          return decoder.decode(one, { stream: true });
        }
        if (Number.isInteger(id) && id >= 256 && id < this.vocabSize) {
          if (options.skipSpecials && id < 256 + this.specials.length) return "";
          return decoder.decode(this.#addedBytes[id - 256], { stream: true });
        }
        throw new ArpoError(
          `Byte tokenizer cannot decode token id ${id}: ids are 0..${this.vocabSize - 1} ` +
            `(256 bytes + ${this.specials.length} special tokens` +
            (this.words.length > 0 ? ` + ${this.words.length} words).` : `).`),
        );
      },
      flush: () => decoder.decode(),
    };
  }

  tokenToId(token: string): number | undefined {
    const special = this.#addedIds.get(token);
    if (special !== undefined) return special;
    const b = ALPHABET.indexOf(token);
    return b >= 0 ? b : undefined;
  }

  /**
   * Specials and words by their text; bytes in the Hugging Face ByteLevel alphabet (as
   * tokenizer.json has them).
   */
  idToToken(id: number): string | undefined {
    if (Number.isInteger(id) && id >= 0 && id < 256) return ALPHABET[id];
    if (!Number.isInteger(id) || id < 256) return undefined;
    return this.specials[id - 256] ?? this.words[id - 256 - this.specials.length];
  }

  encodeChat(
    messages: ChatMessage[],
    addGenerationPrompt: boolean,
    extra?: Record<string, unknown>,
  ): number[] {
    if (!this.applyChatTemplate) {
      throw new ArpoError(
        "This byte tokenizer has no chat template; give the prompt as plain text, or set a " +
          "chat template when creating the tokenizer.",
      );
    }
    return this.encode(this.applyChatTemplate(messages, addGenerationPrompt, extra), {
      specials: true,
    });
  }

  /** The options that recreate this tokenizer. */
  get options(): ByteTokenizerOptions {
    return structuredClone(this.#options);
  }

  files(): Record<string, string> {
    const vocab: Record<string, number> = {};
    ALPHABET.forEach((c, b) => (vocab[c] = b));
    const byteLevel = {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: false,
      use_regex: false,
    };
    const bos = this.#options.bos ?? null;
    const postProcessor = bos === null ? byteLevel : {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: bos, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: bos, type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { [bos]: { id: bos, ids: [this.bosTokenId], tokens: [bos] } },
    };
    const tokenizerJson = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: [...this.specials, ...this.words].map((content, i) => ({
        id: 256 + i,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: i < this.specials.length,
      })),
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: postProcessor,
      decoder: byteLevel,
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: [],
      },
    };
    const roles = new Set([this.#options.bos, this.#options.eos, this.#options.pad]);
    const config: Record<string, unknown> = {
      tokenizer_class: "PreTrainedTokenizerFast",
      bos_token: this.#options.bos ?? null,
      eos_token: this.#options.eos ?? null,
      pad_token: this.#options.pad ?? null,
      additional_special_tokens: this.specials.filter((s) => !roles.has(s)),
      clean_up_tokenization_spaces: false,
      model_max_length: 1_000_000_000,
    };
    if (this.#options.chatTemplate !== undefined) config.chat_template = this.#options.chatTemplate;
    return {
      "tokenizer.json": JSON.stringify(tokenizerJson, null, 2) + "\n",
      "tokenizer_config.json": JSON.stringify(config, null, 2) + "\n",
    };
  }
}

/**
 * True when a parsed tokenizer.json is the byte tokenizer's shape: ByteLevel BPE, no normalizer, the
 * 256-entry identity byte vocabulary, no merges, and added tokens numbered from 256: the specials,
 * then the words (`special: false`).
 */
export function isByteTokenizerJson(json: Record<string, unknown>): boolean {
  const model = json.model as Record<string, unknown> | undefined;
  if (!model || model.type !== "BPE") return false;
  if (json.normalizer !== null && json.normalizer !== undefined) return false;
  const pre = json.pre_tokenizer as Record<string, unknown> | null;
  const dec = json.decoder as Record<string, unknown> | null;
  if (pre?.type !== "ByteLevel" || dec?.type !== "ByteLevel" || pre.add_prefix_space) return false;
  if (!Array.isArray(model.merges) || model.merges.length !== 0) return false;
  const vocab = model.vocab as Record<string, number> | undefined;
  if (!vocab || typeof vocab !== "object" || Object.keys(vocab).length !== 256) return false;
  if (!ALPHABET.every((c, b) => vocab[c] === b)) return false;
  const added = json.added_tokens;
  if (!Array.isArray(added)) return false;
  const firstWord = added.findIndex((t) => t?.special === false);
  return added.every((t, i) =>
    t && t.id === 256 + i && typeof t.content === "string" && t.content.length > 0 &&
    t.special === (firstWord < 0 || i < firstWord)
  );
}

/** EOS ids from generation_config.json's `eos_token_id` (a number or a list). */
export function generationEos(
  generationConfig: Record<string, unknown> | undefined,
  path: string,
): number[] {
  const v = generationConfig?.eos_token_id;
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((x) => Number.isInteger(x) && x >= 0)) {
    throw new ArpoError(
      `${path}: "eos_token_id" must be a token id or a list of token ids, found ${
        JSON.stringify(v)
      }.`,
    );
  }
  return list as number[];
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
