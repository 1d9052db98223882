/**
 * Rollout throughput, ARPO vs GRPO at the same M.
 *
 *   deno task bench                      # all of bench/, this file included
 *   deno run -A bench/rollout_bench.ts [--questions N] [--m M] [--max-tokens T] [--threads N]
 *
 * A seeded ~1M-parameter Qwen2-layout model (random weights) driven through the tag protocol by
 * tests/fixtures/rollout/protocol_tokenizer.ts (tool tags among the sampled ids), with the python
 * tool in its sandbox (a TypeScript stand-in when no sandbox is available). Reports generated
 * tokens/s including and excluding tool time, the time split generation / tools / bookkeeping,
 * and tokens forwarded per generated token (prefix reuse).
 */
import { parseArgs } from "node:util";
import type { DecoderConfig } from "../src/model/config.ts";
import { initModel } from "../src/model/load.ts";
import { OnnxPolicy } from "../src/policy/onnx_policy.ts";
import { parseRolloutConfig, runRollout } from "../src/rollout/mod.ts";
import { stream } from "../src/rng.ts";
import { createToolRuntime } from "../src/tools/runtime.ts";
import { resolveSandbox } from "../src/tools/sandbox.ts";
import type { Tool } from "../src/plugin/contracts.ts";
import python from "../plugins/tools/python.ts";
import { testContext } from "../tests/fixtures/tools/context.ts";
import { protocolTokenizer } from "../tests/fixtures/rollout/protocol_tokenizer.ts";

/** A partial `rollout:` block (the rl stage's defaults fill the rest). */
type RolloutInput = Parameters<typeof parseRolloutConfig>[0];

const CONFIG: DecoderConfig = {
  architecture: "qwen2",
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  partialRotaryFactor: 1,
  ropeScaling: { type: "default" },
  maxPositionEmbeddings: 1024,
  tieWordEmbeddings: true,
  attentionBias: true,
  qkNorm: false,
  eosTokenIds: [1],
  vocabSize: 2048,
  hiddenSize: 128,
  intermediateSize: 384,
  numLayers: 4,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 32,
};

async function tool(): Promise<{ tool: Tool; kind: string }> {
  try {
    await resolveSandbox("auto");
    return { tool: await python({}, testContext({ name: "python" })), kind: "python (sandboxed)" };
  } catch {
    return {
      tool: { kind: "tool", tag: "python", description: "len", call: (s) => `len=${s.length}` },
      kind: "TypeScript stand-in (no sandbox)",
    };
  }
}

export interface RolloutBenchResult {
  algorithm: string;
  questions: number;
  m: number;
  trajectories: number;
  generated: number;
  toolCalls: number;
  totalMs: number;
  generateMs: number;
  toolMs: number;
  bookkeepingMs: number;
  tokensPerSec: number;
  tokensPerSecExclTools: number;
  forwardedPerGenerated: number;
  forwardedVsScratch: number;
}

export async function benchRollout(
  name: string,
  cfg: RolloutInput,
  o: { questions: number; maxTokens: number; threads: number },
): Promise<RolloutBenchResult> {
  const model = initModel(CONFIG, "rollout-bench");
  const policy = await OnnxPolicy.create(model, protocolTokenizer(CONFIG.vocabSize, 4), {
    threads: o.threads,
  });
  const t = await tool();
  const tools = createToolRuntime([{ name: "python", tool: t.tool, digest: "python" }], {
    maxOutputChars: 200,
  });
  try {
    const config = parseRolloutConfig(cfg, { max_tokens: o.maxTokens, max_tool_calls: 3 });
    const requests = Array.from({ length: o.questions }, (_, i) => ({
      task: { id: `q${i}`, prompt: "", answers: [] },
      promptTokens: policy.tokenizer.encode(`question ${i}: compute the value. `.repeat(6)),
    }));
    const res = await runRollout(requests, { policy, tools, config, rng: stream(1, "bench") });
    const s = res.stats, tm = res.timings;
    const trajectories = res.questions.reduce((n, q) => n + q.tree.trajectories.length, 0);
    return {
      algorithm: name,
      questions: o.questions,
      m: config.rollouts,
      trajectories,
      generated: s.generatedTokens,
      toolCalls: s.toolCalls,
      totalMs: tm.totalMs,
      generateMs: tm.generateMs,
      toolMs: tm.toolMs,
      bookkeepingMs: tm.bookkeepingMs,
      tokensPerSec: s.generatedTokens / (tm.totalMs / 1000),
      tokensPerSecExclTools: s.generatedTokens / ((tm.totalMs - tm.toolMs) / 1000),
      forwardedPerGenerated: s.tokensForwarded / s.generatedTokens,
      forwardedVsScratch: s.tokensForwarded / s.scratchTokens,
    };
  } finally {
    await policy.dispose();
    await t.tool.close?.();
  }
}

export const ALGORITHMS: [string, RolloutInput][] = [
  ["arpo (reference, M=8, N=4)", { algorithm: "arpo", mode: "reference", rollouts: 8, initial: 4 }],
  ["arpo (paper, M=8, N=4)", {
    algorithm: "arpo",
    rollouts: 8,
    initial: 4,
    entropy_norm: "log_vocab",
    entropy_tokens: 8,
  }],
  ["grpo (M=8)", { algorithm: "grpo", rollouts: 8 }],
];

function table(rows: RolloutBenchResult[]): string {
  const f = (x: number, d = 1) => x.toFixed(d);
  const head =
    "| algorithm | traj | generated | tool calls | tok/s | tok/s excl. tools | gen / tools / other | fwd per gen | fwd vs scratch |";
  const sep = "|---|---|---|---|---|---|---|---|---|";
  return [
    head,
    sep,
    ...rows.map((r) =>
      `| ${r.algorithm} | ${r.trajectories} | ${r.generated} | ${r.toolCalls} | ${
        f(r.tokensPerSec)
      } | ${f(r.tokensPerSecExclTools)} | ${f((100 * r.generateMs) / r.totalMs, 0)}% / ${
        f((100 * r.toolMs) / r.totalMs, 0)
      }% / ${f((100 * r.bookkeepingMs) / r.totalMs, 0)}% | ${f(r.forwardedPerGenerated, 2)} | ${
        f(r.forwardedVsScratch, 3)
      } |`
    ),
  ].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      questions: { type: "string", default: "8" },
      "max-tokens": { type: "string", default: "256" },
      threads: { type: "string", default: "2" },
    },
  });
  const o = {
    questions: Number(values.questions),
    maxTokens: Number(values["max-tokens"]),
    threads: Number(values.threads),
  };
  const rows: RolloutBenchResult[] = [];
  for (const [name, cfg] of ALGORITHMS) rows.push(await benchRollout(name, cfg, o));
  console.log(`tool: ${(await tool()).kind}; ${o.questions} questions, ${o.maxTokens} tokens max`);
  console.log(table(rows));
} else {
  for (const [name, cfg] of ALGORITHMS) {
    Deno.bench(`rollout ${name}, 4 questions`, async () => {
      await benchRollout(name, cfg, { questions: 4, maxTokens: 128, threads: 2 });
    });
  }
}
