/**
 * `arpo serve`'s HTTP server: the vLLM-compatible handler (openai_api.ts) over a batcher
 * (batcher.ts) on a policy, listening on 127.0.0.1 only (no authentication: local clients).
 */
import type { Tokenizer } from "../model/tokenizer.ts";
import type { Policy } from "../policy/types.ts";
import { Batcher, type BatcherStats } from "./batcher.ts";
import { openaiHandler, type Served } from "./openai_api.ts";

export interface ServeOptions {
  policy: Policy;
  tokenizer: Tokenizer;
  name: string;
  maxModelLen: number;
  /** 0 picks a free port. */
  port?: number;
  maxLogprobs?: number;
  maxBatch?: number;
  /** Prefix cache budget in tokens (batcher.ts; 0 disables). */
  prefixCacheTokens?: number;
  signal?: AbortSignal;
}

export interface RunningServer {
  url: string;
  port: number;
  stats: BatcherStats;
  /** Stops accepting, lets requests in flight finish. */
  close(): Promise<void>;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
}

export function startServer(opts: ServeOptions): Promise<RunningServer> {
  const served: Served = {
    name: opts.name,
    tokenizer: opts.tokenizer,
    digest: opts.policy.digest,
    vocabSize: opts.policy.vocabSize,
    maxModelLen: opts.maxModelLen,
    maxLogprobs: opts.maxLogprobs ?? 20,
  };
  const batcher = new Batcher(opts.policy, opts.maxBatch ?? 64, opts.prefixCacheTokens ?? 65536);
  const handler = openaiHandler(served, batcher);
  let port = 0;
  // onListen runs inside Deno.serve, before it returns: note the port, build the handle after.
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: opts.port ?? 8000,
    signal: opts.signal,
    onListen: (addr) => {
      port = addr.port;
    },
  }, handler);
  return Promise.resolve({
    url: `http://127.0.0.1:${port}`,
    port,
    stats: batcher.stats,
    close: () => server.shutdown(),
    finished: server.finished,
  });
}
