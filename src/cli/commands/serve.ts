/**
 * `arpo serve DIR|RUN:STAGE [--port N]`: serve a Hugging Face layout model directory, or the
 * weights a stage of a run produced, on 127.0.0.1 with the vLLM-compatible subset of the OpenAI
 * API (src/serve/openai_api.ts), batching concurrent requests. Runs until Ctrl-C.
 */
import { ArpoError } from "../../errors.ts";
import type { Device } from "../../onnx/session.ts";
import { loadTarget } from "../../serve/load.ts";
import { startServer } from "../../serve/server.ts";
import { openStore, parse } from "./_common.ts";

export const summary =
  "serve a model directory or a run's checkpoint (RUN:STAGE) over a vLLM-compatible HTTP API";

const USAGE = "arpo serve DIR|RUN:STAGE [--port N] [--name NAME] [--threads N] [--device D] " +
  "[--max-logprobs K] [--max-batch B] [--prefix-cache TOKENS] [--store DIR]";

const NOTES = "Endpoints on http://127.0.0.1:PORT: GET /health, GET /v1/models, " +
  "POST /v1/completions (token-id or text prompts, logprobs, plus exact `entropies`), " +
  "POST /v1/chat/completions, POST /tokenize, POST /detokenize, GET /arpo/tokenizer. " +
  "Point a manifest at it with policy: { server: { url: http://127.0.0.1:PORT, model: NAME } } " +
  "(docs/SERVERS.md).";

function intFlag(name: string, v: unknown, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new ArpoError(`serve: --${name} must be an integer ≥ ${min}, found '${v}'`, {
      exitCode: 2,
    });
  }
  return n;
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse("serve", USAGE, args, {
    port: { type: "string", arg: "N", help: "port on 127.0.0.1 (default 8000; 0: any free one)" },
    name: { type: "string", arg: "NAME", help: "served model name (default: directory name)" },
    threads: { type: "string", arg: "N", help: "CPU threads for ONNX Runtime (default 2)" },
    device: { type: "string", arg: "D", help: "cpu, cuda, webgpu or auto (default cpu)" },
    "max-logprobs": { type: "string", arg: "K", help: "most top log-probabilities per token (20)" },
    "max-batch": { type: "string", arg: "B", help: "most requests per batched decode (64)" },
    "prefix-cache": {
      type: "string",
      arg: "TOKENS",
      help: "tokens of finished sequences kept for prefix reuse (65536; 0: off)",
    },
  }, { notes: NOTES });
  if (positionals.length !== 1) {
    throw new ArpoError(`serve: expected one model directory or RUN:STAGE\nusage: ${USAGE}`, {
      exitCode: 2,
    });
  }
  const device = values.device as Device | undefined;
  if (device !== undefined && !["cpu", "cuda", "webgpu", "auto"].includes(device)) {
    throw new ArpoError(`serve: --device must be cpu, cuda, webgpu or auto, found '${device}'`, {
      exitCode: 2,
    });
  }
  const ac = new AbortController();
  const onInt = () => ac.abort();
  const target = await loadTarget(positionals[0], {
    store: openStore(values.store),
    threads: values.threads === undefined ? 2 : intFlag("threads", values.threads, 2, 1),
    device,
  });
  const server = await startServer({
    policy: target.policy,
    tokenizer: target.tokenizer,
    name: typeof values.name === "string" ? values.name : target.name,
    maxModelLen: target.maxModelLen,
    port: intFlag("port", values.port, 8000, 0),
    maxLogprobs: intFlag("max-logprobs", values["max-logprobs"], 20, 0),
    maxBatch: intFlag("max-batch", values["max-batch"], 64, 1),
    prefixCacheTokens: intFlag("prefix-cache", values["prefix-cache"], 65536, 0),
    signal: ac.signal,
  });
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onInt);
  // The line a script waits for (tests, benchmarks): the URL and the served name.
  console.log(
    `serving ${typeof values.name === "string" ? values.name : target.name} ` +
      `(${target.policy.digest.slice(0, 12)}, ${target.policy.device}) on ${server.url}`,
  );
  await server.finished;
  Deno.removeSignalListener("SIGINT", onInt);
  Deno.removeSignalListener("SIGTERM", onInt);
  console.error(
    `stopped: ${server.stats.requests} requests in ${server.stats.decodes} batched decodes ` +
      `(largest batch ${server.stats.maxBatch}); ${server.stats.cachedTokens} of ` +
      `${server.stats.promptTokens} prompt tokens from the prefix cache`,
  );
  await target.policy.dispose();
  return 0;
}
