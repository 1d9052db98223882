/**
 * `deno task arpo model info|logits|generate|prompt <dir> …`: inspect and run a model directory
 * (Hugging Face layout) on ONNX Runtime. A directory without tokenizer files works wherever no
 * text is involved (token ids in and out); generation_config.json supplies the sampling defaults.
 */
import { ArpoError } from "../../errors.ts";
import { parameterCount } from "../../model/config.ts";
import { type GenerationDefaults, readGenerationConfig } from "../../model/generation_config.ts";
import { type DecoderModel, hasTokenizer, loadModelDir } from "../../model/load.ts";
import { loadTokenizer, type Tokenizer } from "../../model/tokenizer.ts";
import { TokenIdsOnly } from "../../model/tokenizer_ids.ts";
import { type Device, DEVICES } from "../../onnx/session.ts";
import { OnnxPolicy } from "../../policy/onnx_policy.ts";
import { rowStats, topIndices } from "../../policy/sampling.ts";
import type { GenerateResult } from "../../policy/types.ts";
import { stream } from "../../rng.ts";
import { parse } from "./_common.ts";

export const summary = "inspect a model directory, print its logits, generate, or show a prompt";

const USAGE = `usage:
  deno task arpo model info <dir> [--json]
  deno task arpo model logits <dir> (--text TEXT | --tokens 1,2,3) [--json] [--top N]
  deno task arpo model generate <dir> (--prompt TEXT [--chat] [--system TEXT] | --tokens 1,2,3)
      [--temperature T] [--top-p P] [--top-k K] [--seed N] [--max-tokens N] [--json]
  deno task arpo model prompt <dir> --prompt TEXT [--chat] [--system TEXT] [--json]
common: [--threads N] [--device auto|cpu|cuda|webgpu]
sampling defaults come from the directory's generation_config.json when it has one`;

const OPTIONS = {
  json: { type: "boolean", help: "print JSON on stdout instead of text (every subcommand)" },
  text: { type: "string", arg: "TEXT", help: "logits: the input text" },
  tokens: { type: "string", arg: "1,2,3", help: "logits, generate: the input token ids" },
  top: { type: "string", arg: "N", help: "logits: print the N likeliest tokens (default: 10)" },
  prompt: { type: "string", arg: "TEXT", help: "generate, prompt: the prompt" },
  chat: { type: "boolean", help: "generate, prompt: wrap the prompt in the chat template" },
  system: { type: "string", arg: "TEXT", help: "generate, prompt: a system message (with --chat)" },
  temperature: {
    type: "string",
    arg: "T",
    help: "generate: sampling temperature (default: generation_config.json, else 0.7)",
  },
  "top-p": { type: "string", arg: "P", help: "generate: nucleus mass (default: 1)" },
  "top-k": {
    type: "string",
    arg: "K",
    help: "generate: keep the K likeliest tokens, 0 for all (default: 0)",
  },
  seed: { type: "string", arg: "N", help: "generate: sampling seed (default: 0)" },
  "max-tokens": { type: "string", arg: "N", help: "generate: token budget (default: 128)" },
  threads: { type: "string", arg: "N", help: "ONNX Runtime threads, 0 for its default" },
  device: { type: "string", arg: "auto|cpu|cuda|webgpu", help: "execution device (default: cpu)" },
} as const;

/** The flags each subcommand takes (besides --threads and --device). */
const SUB_FLAGS: Record<string, string[]> = {
  info: ["json"],
  logits: ["json", "text", "tokens", "top"],
  generate: [
    "json",
    "prompt",
    "tokens",
    "chat",
    "system",
    "temperature",
    "top-p",
    "top-k",
    "seed",
    "max-tokens",
  ],
  prompt: ["json", "prompt", "chat", "system"],
};

function num(flag: string, v: string | undefined, dflt: number, int = false): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isFinite(x) || (int && !Number.isInteger(x))) {
    throw new ArpoError(
      `model: --${flag} expects ${int ? "an integer" : "a number"}, found '${v}'`,
      {
        exitCode: 2,
      },
    );
  }
  return x;
}

type Flags = ReturnType<typeof parseCommandLine>["values"];

function parseCommandLine(args: string[]) {
  return parse("model", USAGE.replace(/^usage:\n/, "\n"), args, OPTIONS, { store: false });
}

/** A flag given to a subcommand that does not take it (e.g. `generate --json`) is an error. */
function checkSubFlags(sub: string, values: Record<string, unknown>): void {
  const allowed = new Set([...SUB_FLAGS[sub], "threads", "device", "help"]);
  const bad = Object.keys(values).find((k) => values[k] !== undefined && !allowed.has(k));
  if (bad) {
    throw new ArpoError(
      `model ${sub}: unknown flag --${bad} for ${sub} (its flags: ${
        SUB_FLAGS[sub].map((f) => `--${f}`).join(", ")
      }, --threads, --device)`,
      { exitCode: 2 },
    );
  }
}

/** The subcommand and its one model directory, checked. */
function checkPositionals(positionals: string[]): { sub: string; dir: string } {
  const [sub, dir] = positionals;
  if (!Object.keys(SUB_FLAGS).includes(sub)) {
    throw new ArpoError(`model: unknown subcommand '${sub}'\n${USAGE}`, { exitCode: 2 });
  }
  if (!dir || positionals.length > 2) {
    throw new ArpoError(`model ${sub}: expected exactly one model directory\n${USAGE}`, {
      exitCode: 2,
    });
  }
  return { sub, dir };
}

/** The common runtime flags: --device and --threads. */
function runtimeFlags(values: Flags): { device: Device; threads: number } {
  const device = (values.device ?? "cpu") as Device;
  if (!DEVICES.includes(device)) {
    throw new ArpoError(`model: --device expects one of ${DEVICES.join(", ")}, found '${device}'`, {
      exitCode: 2,
    });
  }
  return { device, threads: num("threads", values.threads, 0, true) };
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args);
  if (!positionals[0]) {
    console.log(USAGE);
    return 2;
  }
  const { sub, dir } = checkPositionals(positionals);
  checkSubFlags(sub, values);
  const { device, threads } = runtimeFlags(values);
  if (sub === "prompt") return await runPrompt(await needTokenizer(dir, "model prompt"), values);
  // Every subcommand past this line gives the weights to its session (or reads them only).
  const model = await loadModelDir(dir, { requireTokenizer: false, consumeWeights: true });
  const generation = await readGenerationConfig(dir);
  const tokenizer = await dirTokenizer(model, generation);
  if (sub === "info") return runInfo(model, tokenizer, generation, values);
  const policy = await OnnxPolicy.create(model, tokenizer, {
    threads,
    device,
    consumeWeights: true,
  });
  try {
    if (sub === "logits") return await runLogits(policy, tokenizer, values);
    return await runGenerate(policy, tokenizer, generation, values);
  } finally {
    await policy.dispose();
  }
}

type DirTokenizer = Tokenizer | TokenIdsOnly;

/** The directory's tokenizer, or token ids only (EOS from generation_config.json / config.json). */
async function dirTokenizer(model: DecoderModel, gen: GenerationDefaults): Promise<DirTokenizer> {
  const dir = model.dir!;
  if (await hasTokenizer(dir)) return await loadTokenizer(dir);
  const cfg = model.config;
  const eos = [...new Set([...(cfg.eosTokenIds ?? []), ...(gen.eosTokenIds ?? [])])];
  return new TokenIdsOnly(cfg.vocabSize, eos, dir, cfg.bosTokenId);
}

async function needTokenizer(dir: string, what: string): Promise<Tokenizer> {
  if (!(await hasTokenizer(dir))) {
    throw new ArpoError(
      `${what}: model directory ${dir} has no tokenizer (tokenizer.json), which rendering a ` +
        `prompt needs`,
      { exitCode: 2 },
    );
  }
  return await loadTokenizer(dir);
}

/** The prompt ids of --prompt (raw, or with --chat through the chat template) and its text. */
function promptInput(
  tokenizer: DirTokenizer,
  values: Flags,
  sub: string,
): { text: string; ids: number[] } {
  if (values.prompt === undefined) {
    throw new ArpoError(`model ${sub}: give --prompt\n${USAGE}`, { exitCode: 2 });
  }
  if (values.system !== undefined && !values.chat) {
    throw new ArpoError(`model ${sub}: --system needs --chat`, { exitCode: 2 });
  }
  if (!values.chat) return { text: values.prompt, ids: tokenizer.encode(values.prompt) };
  if (tokenizer instanceof TokenIdsOnly) tokenizer.encode(values.prompt); // refuses, naming the dir
  const t = tokenizer as Tokenizer;
  const messages = [
    ...(values.system !== undefined ? [{ role: "system" as const, content: values.system }] : []),
    { role: "user" as const, content: values.prompt },
  ];
  if (!t.applyChatTemplate) {
    throw new ArpoError(`model ${sub}: --chat: this tokenizer has no chat template`, {
      exitCode: 2,
    });
  }
  return { text: t.applyChatTemplate(messages, true), ids: t.encodeChat(messages, true) };
}

/** `model prompt`: the rendered prompt (chat template with --chat) and its token ids. */
function runPrompt(tokenizer: Tokenizer, values: Flags): number {
  const { text, ids } = promptInput(tokenizer, values, "prompt");
  if (values.json) {
    console.log(JSON.stringify({ text, tokens: ids }));
    return 0;
  }
  console.log(text);
  console.log(`--- ${ids.length} tokens`);
  console.log(`[${ids.join(", ")}]`);
  return 0;
}

/** `model info`: architecture, sizes, tokenizer and digest. */
function runInfo(
  model: DecoderModel,
  tokenizer: DirTokenizer,
  generation: GenerationDefaults,
  values: Flags,
): number {
  const cfg = model.config;
  const info = {
    dir: model.dir,
    architecture: cfg.architecture,
    parameters: parameterCount(cfg),
    config: cfg,
    tokenizer: tokenizer instanceof TokenIdsOnly ? null : {
      kind: tokenizer.kind,
      vocabSize: tokenizer.vocabSize,
      bos: tokenizer.bosTokenId ?? null,
      eos: tokenizer.eosTokenIds,
      chatTemplate: "applyChatTemplate" in tokenizer &&
        typeof tokenizer.applyChatTemplate === "function",
    },
    generation,
    digest: model.digest,
  };
  if (values.json) {
    console.log(JSON.stringify(info, null, 2));
    return 0;
  }
  console.log(
    `${model.dir}: ${cfg.architecture}, ${(info.parameters / 1e6).toFixed(2)}M parameters`,
  );
  console.log(
    `  layers ${cfg.numLayers}, hidden ${cfg.hiddenSize}, heads ${cfg.numHeads} (kv ${cfg.numKvHeads}), ` +
      `head_dim ${cfg.headDim}, mlp ${cfg.intermediateSize}, vocab ${cfg.vocabSize}`,
  );
  console.log(
    `  rope theta ${cfg.ropeTheta} (${cfg.ropeScaling.type}${
      cfg.partialRotaryFactor !== 1 ? `, partial ${cfg.partialRotaryFactor}` : ""
    }), tied embeddings ${cfg.tieWordEmbeddings}, qkv bias ${cfg.attentionBias}, qk norm ${cfg.qkNorm}`,
  );
  console.log(
    `  tokenizer ${tokenizer.kind}, ${tokenizer.vocabSize} ids, eos [${tokenizer.eosTokenIds}]` +
      `${info.tokenizer?.chatTemplate ? ", chat template" : ""}`,
  );
  if (Object.keys(generation).length) {
    console.log(`  generation_config.json ${JSON.stringify(generation)}`);
  }
  console.log(`  digest ${model.digest}`);
  return 0;
}

/** The token ids `model logits` runs: --tokens 1,2,3 or the encoded --text. */
function logitsInput(tokenizer: DirTokenizer, values: Flags, sub = "logits"): number[] {
  let ids: number[];
  if (values.tokens !== undefined) {
    ids = values.tokens.split(",").map((s) => s.trim()).filter((s) => s.length).map((s) => {
      const x = Number(s);
      if (!Number.isInteger(x)) {
        throw new ArpoError(
          `model ${sub}: --tokens expects comma-separated integers, found '${s}'`,
          {
            exitCode: 2,
          },
        );
      }
      return x;
    });
  } else if (values.text !== undefined) ids = tokenizer.encode(values.text);
  else throw new ArpoError(`model logits: give --text or --tokens\n${USAGE}`, { exitCode: 2 });
  if (ids.length === 0) throw new ArpoError(`model logits: no tokens to run`, { exitCode: 2 });
  return ids;
}

/** `model logits`: the next-token logits after the input, as JSON or the top N. */
async function runLogits(
  policy: OnnxPolicy,
  tokenizer: DirTokenizer,
  values: Flags,
): Promise<number> {
  const ids = logitsInput(tokenizer, values);
  const [logits] = await policy.logits([policy.create(ids, stream(0, "cli"))]);
  if (values.json) {
    console.log(JSON.stringify({ tokens: ids, logits: Array.from(logits) }));
    return 0;
  }
  const V = logits.length;
  const st = rowStats(logits, 0, V, 1);
  const k = num("top", values.top, 10, true);
  console.log(`tokens [${ids.join(", ")}], next-token entropy ${st.entropy.toFixed(4)} nats`);
  for (const i of topIndices(logits, 0, V, k)) {
    console.log(
      `  ${String(i).padStart(7)}  logit ${logits[i].toFixed(4).padStart(9)}  logprob ${
        (logits[i] - st.logZ).toFixed(4).padStart(8)
      }  ${
        i < tokenizer.vocabSize && !(tokenizer instanceof TokenIdsOnly)
          ? JSON.stringify(tokenizer.decode([i]))
          : "(no text)"
      }`,
    );
  }
  return 0;
}

/** `model generate`: stream a completion to stdout, a summary to stderr (or one JSON object). */
async function runGenerate(
  policy: OnnxPolicy,
  tokenizer: DirTokenizer,
  gen: GenerationDefaults,
  values: Flags,
): Promise<number> {
  if (values.tokens !== undefined && values.prompt !== undefined) {
    throw new ArpoError(`model generate: give --prompt or --tokens, not both`, { exitCode: 2 });
  }
  const ids = values.tokens !== undefined
    ? logitsInput(tokenizer, values, "generate")
    : promptInput(tokenizer, values, "generate").ids;
  const params = {
    temperature: num("temperature", values.temperature, gen.temperature ?? 0.7),
    topP: num("top-p", values["top-p"], gen.topP ?? 1),
    topK: num("top-k", values["top-k"], gen.topK ?? 0, true),
  };
  const seed = num("seed", values.seed, 0, true);
  const maxTokens = num("max-tokens", values["max-tokens"], gen.maxNewTokens ?? 128, true);
  const seq = policy.create(ids, stream(seed, "cli-generate"));
  const text = !(tokenizer instanceof TokenIdsOnly);
  const dec = text ? (tokenizer as Tokenizer).streamDecoder({ skipSpecials: true }) : null;
  const enc = new TextEncoder();
  const t0 = performance.now();
  const [res] = await policy.generate(
    [{ seq, stop: { maxTokens } }],
    params,
    {
      onToken: (_s, tok) => {
        if (values.json) return;
        // Models often have more ids than their tokenizer (padded vocab): show those as [id].
        Deno.stdout.writeSync(
          enc.encode(dec && tok.id < tokenizer.vocabSize ? dec.push(tok.id) : `[${tok.id}]`),
        );
      },
    },
  );
  const secs = (performance.now() - t0) / 1000;
  if (values.json) {
    const out = res.tokens.map((t) => t.id);
    console.log(JSON.stringify({
      prompt_tokens: ids,
      tokens: out,
      text: text ? (tokenizer as Tokenizer).decode(out, { skipSpecials: true }) : null,
      logprobs: res.tokens.map((t) => t.logprob),
      stop: res.stop,
      sampling: { ...params, seed, max_tokens: maxTokens },
      seconds: secs,
      tokens_per_second: out.length / Math.max(secs, 1e-9),
    }));
    return 0;
  }
  Deno.stdout.writeSync(enc.encode((dec ? dec.flush() : "") + "\n"));
  const adapter = policy.runtime.session.adapter;
  printGenerateSummary(res, secs, ids.length, policy.device + (adapter ? ` (${adapter})` : ""));
  return 0;
}

function printGenerateSummary(
  res: GenerateResult,
  secs: number,
  promptTokens: number,
  device: string,
): void {
  const n = res.tokens.length;
  const meanH = n ? res.tokens.reduce((a, t) => a + t.entropy, 0) / n : 0;
  const why = res.stop.reason === "token"
    ? `stop token ${res.stop.tokenId}`
    : res.stop.reason === "string"
    ? `stop string ${JSON.stringify(res.stop.text)}`
    : "length";
  console.error(
    `${n} tokens in ${secs.toFixed(2)} s (${(n / Math.max(secs, 1e-9)).toFixed(1)} tokens/s, ` +
      `prompt ${promptTokens} tokens), mean entropy ${meanH.toFixed(3)} nats, stopped by ${why}, ` +
      `device ${device}`,
  );
}
