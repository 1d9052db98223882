/**
 * `deno task arpo model info|logits|generate <dir> …`: inspect and run a model directory (Hugging
 * Face layout) on ONNX Runtime.
 */
import { parseArgs } from "node:util";
import { ArpoError } from "../../errors.ts";
import { parameterCount } from "../../model/config.ts";
import type { DecoderModel } from "../../model/load.ts";
import type { Tokenizer } from "../../model/tokenizer.ts";
import { type Device, DEVICES } from "../../onnx/session.ts";
import { loadPolicyModel } from "../../policy/load.ts";
import { OnnxPolicy } from "../../policy/onnx_policy.ts";
import { rowStats, topIndices } from "../../policy/sampling.ts";
import type { GenerateResult } from "../../policy/types.ts";
import { stream } from "../../rng.ts";

export const summary = "inspect a model directory, print its logits, or generate text";

const USAGE = `usage:
  deno task arpo model info <dir> [--json]
  deno task arpo model logits <dir> (--text TEXT | --tokens 1,2,3) [--json] [--top N]
  deno task arpo model generate <dir> --prompt TEXT [--chat] [--temperature T] [--top-p P]
      [--top-k K] [--seed N] [--max-tokens N]
common: [--threads N] [--device auto|cpu|cuda|webgpu]`;

const OPTIONS = {
  json: { type: "boolean" },
  text: { type: "string" },
  tokens: { type: "string" },
  top: { type: "string" },
  prompt: { type: "string" },
  chat: { type: "boolean" },
  temperature: { type: "string" },
  "top-p": { type: "string" },
  "top-k": { type: "string" },
  seed: { type: "string" },
  "max-tokens": { type: "string" },
  threads: { type: "string" },
  device: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

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
  try {
    return parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new ArpoError(`model: ${(e as Error).message}\n${USAGE}`, { exitCode: 2 });
  }
}

/** The subcommand and its one model directory, checked. */
function checkPositionals(positionals: string[]): { sub: string; dir: string } {
  const [sub, dir] = positionals;
  if (!["info", "logits", "generate"].includes(sub)) {
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
  if (values.help || !positionals[0]) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const { sub, dir } = checkPositionals(positionals);
  const { device, threads } = runtimeFlags(values);
  const { model, tokenizer } = await loadPolicyModel({ model: dir }, { baseDir: Deno.cwd() });
  if (sub === "info") return runInfo(model, tokenizer, values);
  const policy = await OnnxPolicy.create(model, tokenizer, { threads, device });
  try {
    if (sub === "logits") return await runLogits(policy, tokenizer, values);
    return await runGenerate(policy, tokenizer, values);
  } finally {
    await policy.dispose();
  }
}

/** `model info`: architecture, sizes, tokenizer and digest. */
function runInfo(model: DecoderModel, tokenizer: Tokenizer, values: Flags): number {
  const cfg = model.config;
  const info = {
    dir: model.dir,
    architecture: cfg.architecture,
    parameters: parameterCount(cfg),
    config: cfg,
    tokenizer: {
      kind: tokenizer.kind,
      vocabSize: tokenizer.vocabSize,
      bos: tokenizer.bosTokenId ?? null,
      eos: tokenizer.eosTokenIds,
      chatTemplate: typeof tokenizer.applyChatTemplate === "function",
    },
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
      `${info.tokenizer.chatTemplate ? ", chat template" : ""}`,
  );
  console.log(`  digest ${model.digest}`);
  return 0;
}

/** The token ids `model logits` runs: --tokens 1,2,3 or the encoded --text. */
function logitsInput(tokenizer: Tokenizer, values: Flags): number[] {
  let ids: number[];
  if (values.tokens !== undefined) {
    ids = values.tokens.split(",").map((s) => s.trim()).filter((s) => s.length).map((s) => {
      const x = Number(s);
      if (!Number.isInteger(x)) {
        throw new ArpoError(
          `model logits: --tokens expects comma-separated integers, found '${s}'`,
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
async function runLogits(policy: OnnxPolicy, tokenizer: Tokenizer, values: Flags): Promise<number> {
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
      }  ${i < tokenizer.vocabSize ? JSON.stringify(tokenizer.decode([i])) : "(no text)"}`,
    );
  }
  return 0;
}

/** `model generate`: stream a completion of --prompt to stdout, a summary to stderr. */
async function runGenerate(
  policy: OnnxPolicy,
  tokenizer: Tokenizer,
  values: Flags,
): Promise<number> {
  if (values.prompt === undefined) {
    throw new ArpoError(`model generate: give --prompt\n${USAGE}`, { exitCode: 2 });
  }
  const ids = values.chat
    ? tokenizer.encodeChat([{ role: "user", content: values.prompt }], true)
    : tokenizer.encode(values.prompt);
  const params = {
    temperature: num("temperature", values.temperature, 0.7),
    topP: num("top-p", values["top-p"], 1),
    topK: num("top-k", values["top-k"], 0, true),
  };
  const seed = num("seed", values.seed, 0, true);
  const seq = policy.create(ids, stream(seed, "cli-generate"));
  const dec = tokenizer.streamDecoder({ skipSpecials: true });
  const enc = new TextEncoder();
  const t0 = performance.now();
  const [res] = await policy.generate(
    [{ seq, stop: { maxTokens: num("max-tokens", values["max-tokens"], 128, true) } }],
    params,
    {
      onToken: (_s, tok) =>
        // Models often have more ids than their tokenizer (padded vocab): show those as [id].
        Deno.stdout.writeSync(
          enc.encode(tok.id < tokenizer.vocabSize ? dec.push(tok.id) : `[${tok.id}]`),
        ),
    },
  );
  Deno.stdout.writeSync(enc.encode(dec.flush() + "\n"));
  const secs = (performance.now() - t0) / 1000;
  printGenerateSummary(res, secs, ids.length, policy.device);
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
