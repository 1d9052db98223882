/**
 * Tokenizers: the common interface, and `loadTokenizer`, the one entry point.
 *
 * Two implementations: a byte-level tokenizer for models trained here (tokenizer_byte.ts) and any
 * Hugging Face tokenizer.json through `@huggingface/tokenizers` (tokenizer_hf.ts). A model directory
 * stores either as the standard pair tokenizer.json + tokenizer_config.json; a byte tokenizer's files
 * are an ordinary Hugging Face ByteLevel BPE tokenizer (so Python transformers loads it too), and
 * `loadTokenizer` recognizes that shape and returns the native byte implementation.
 */
import { join } from "node:path";
import type { ChatMessage } from "../plugin/contracts.ts";
import { ArpoError, describeError } from "../errors.ts";
import { ByteTokenizer, type ByteTokenizerOptions, isByteTokenizerJson } from "./tokenizer_byte.ts";
import { HfTokenizer } from "./tokenizer_hf.ts";

export interface EncodeOptions {
  /**
   * Recognize special-token strings (`<|eos|>`, `<|im_end|>`) in the text as single special ids.
   * Default: false for the byte tokenizer, true for Hugging Face tokenizers (as transformers does).
   * Pass it explicitly where it matters: true for rendered chat templates, false for untrusted text
   * such as tool output, so it cannot inject an end-of-turn.
   */
  specials?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, PAD, `<|im_end|>`…) from the text. Default false. */
  skipSpecials?: boolean;
}

/**
 * Incremental decoding for streamed generation. `push` returns the text that became final with
 * this token; bytes of an incomplete UTF-8 character are held back until it completes (or is shown
 * to be invalid, then it becomes U+FFFD). The concatenation of all `push` results and `flush()`
 * equals `decode(ids)` of the same ids.
 */
export interface StreamDecoder {
  push(id: number): string;
  /** Text still held back (an incomplete trailing character decodes to U+FFFD). */
  flush(): string;
}

/** What policies, rollouts and training need from a tokenizer; `Tokenizer` is the full one. */
export interface TokenizerLike {
  readonly vocabSize: number;
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
  /** Ids that end generation (EOS, end-of-turn). */
  readonly eosTokenIds: readonly number[];
  /** BOS to prepend to a raw prompt, if the model uses one. */
  readonly bosTokenId?: number;
  /** Render chat messages with the model's chat template, when it has one. */
  applyChatTemplate?(messages: ChatMessage[], addGenerationPrompt: boolean): string;
}

export interface Tokenizer extends TokenizerLike {
  readonly kind: "byte" | "hf";
  /** Size of the id space (highest id + 1, added tokens included). */
  readonly vocabSize: number;
  readonly eosTokenIds: readonly number[];
  readonly bosTokenId?: number;
  readonly padTokenId?: number;
  /** Ids of all special tokens. */
  readonly specialTokenIds: readonly number[];
  /** sha256 identifying the tokenizer files (part of a run's identity). */
  readonly digest: string;
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  streamDecoder(options?: DecodeOptions): StreamDecoder;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** Present only when the tokenizer has a chat template. `extra` adds template variables. */
  applyChatTemplate?: (
    messages: ChatMessage[],
    addGenerationPrompt: boolean,
    extra?: Record<string, unknown>,
  ) => string;
  /** Render with the chat template and encode with specials recognized; ArpoError without one. */
  encodeChat(
    messages: ChatMessage[],
    addGenerationPrompt: boolean,
    extra?: Record<string, unknown>,
  ): number[];
  /** The files that reproduce this tokenizer in a model directory (name → text). */
  files(): Record<string, string>;
}

export const TOKENIZER_FILE = "tokenizer.json";
export const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";
export const GENERATION_CONFIG_FILE = "generation_config.json";
export const CHAT_TEMPLATE_FILE = "chat_template.jinja";

/**
 * A tokenizer from a model directory (tokenizer.json, optional tokenizer_config.json,
 * generation_config.json for extra EOS ids, chat_template.jinja), or a new byte tokenizer from
 * options.
 */
export async function loadTokenizer(source: string | ByteTokenizerOptions): Promise<Tokenizer> {
  if (typeof source !== "string") return new ByteTokenizer(source);
  const dir = source;
  const tokenizerPath = join(dir, TOKENIZER_FILE);
  const tokenizerText = await readText(tokenizerPath, true) as string;
  const configPath = join(dir, TOKENIZER_CONFIG_FILE);
  const configText = await readText(configPath, false);
  const generationText = await readText(join(dir, GENERATION_CONFIG_FILE), false);
  const templateText = await readText(join(dir, CHAT_TEMPLATE_FILE), false);

  const tokenizerJson = parseJsonObject(tokenizerText, tokenizerPath);
  const config = configText === undefined ? {} : parseJsonObject(configText, configPath);
  const generation = generationText === undefined
    ? undefined
    : parseJsonObject(generationText, join(dir, GENERATION_CONFIG_FILE));
  const files: Record<string, string> = { [TOKENIZER_FILE]: tokenizerText };
  if (configText !== undefined) files[TOKENIZER_CONFIG_FILE] = configText;
  if (templateText !== undefined) files[CHAT_TEMPLATE_FILE] = templateText;

  if (isByteTokenizerJson(tokenizerJson)) {
    const byte = ByteTokenizer.fromFiles(tokenizerJson, config, {
      dir,
      chatTemplate: templateText,
      generationConfig: generation,
    });
    if (byte) return byte;
  }
  return new HfTokenizer(tokenizerJson, config, {
    dir,
    files,
    chatTemplate: templateText,
    generationConfig: generation,
  });
}

/** Write a tokenizer's files into `dir` (created if missing). */
export async function saveTokenizer(tokenizer: Tokenizer, dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(tokenizer.files())) {
    await Deno.writeTextFile(join(dir, name), text);
  }
}

async function readText(path: string, required: boolean): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound && !required) return undefined;
    if (e instanceof Deno.errors.NotFound) {
      throw new ArpoError(
        `Tokenizer file ${path} does not exist: a model directory needs tokenizer.json ` +
          `(with tokenizer_config.json for special tokens and the chat template).`,
      );
    }
    throw new ArpoError(`Cannot read tokenizer file ${path}: ${describeError(e)}.`, { cause: e });
  }
}

/** Parse a JSON file that must hold an object; ArpoError naming the file otherwise. */
export function parseJsonObject(text: string, path: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ArpoError(`${path} is not valid JSON: ${describeError(e)}.`, { cause: e });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    const found = value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
    throw new ArpoError(`${path} must hold a JSON object, found ${found}.`);
  }
  return value as Record<string, unknown>;
}

export { ByteTokenizer, type ByteTokenizerOptions, HfTokenizer };
