/**
 * End to end with the real ONNX policy (the tiny random-weight Qwen2 fixture, so real KV-cache
 * forks and real forwarding counts) and the real python tool in its sandbox. A random model
 * writes no protocol by itself, so the tokenizer here decodes many ids to `<python>` and
 * `</python>`: tool calls then happen every few dozen tokens, with whatever code lies between.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { loadModelDir } from "../src/model/load.ts";
import { OnnxPolicy } from "../src/policy/onnx_policy.ts";
import { runRollout } from "../src/rollout/agent_loop.ts";
import { parseRolloutConfig } from "../src/rollout/config.ts";
import { checkTree } from "../src/rollout/tree.ts";
import { frameResult } from "../src/eval/protocol.ts";
import { stream } from "../src/rng.ts";
import { createToolRuntime } from "../src/tools/runtime.ts";
import { resolveSandbox } from "../src/tools/sandbox.ts";
import type { Tool } from "../src/plugin/contracts.ts";
import python from "../plugins/tools/python.ts";
import { testContext } from "./fixtures/tools/context.ts";
import { fixtureDir } from "./model_fixtures.ts";
import { protocolTokenizer } from "./fixtures/rollout/protocol_tokenizer.ts";

type RolloutInput = Parameters<typeof parseRolloutConfig>[0];

const MODEL = fixtureDir("tiny-qwen2");
const haveModel = existsSync(`${MODEL}/model.safetensors`);
if (!haveModel) console.log(`rollout_e2e_test: no model fixture at ${MODEL}; skipped`);

let sandboxWhy: string | null = null;
try {
  await resolveSandbox("auto");
} catch (e) {
  sandboxWhy = e instanceof Error ? e.message : String(e);
  console.log(
    `rollout_e2e_test: no sandbox, a TypeScript tool stands in for python: ${sandboxWhy}`,
  );
}

async function pythonTool(): Promise<Tool> {
  if (sandboxWhy === null) return await python({}, testContext({ name: "python" }));
  return { kind: "tool", tag: "python", description: "length", call: (s) => `len=${s.length}` };
}

async function roll(cfg: RolloutInput, ids: string[], threads = 1) {
  const model = await loadModelDir(MODEL, { requireTokenizer: false });
  const policy = await OnnxPolicy.create(model, protocolTokenizer(model.config.vocabSize), {
    threads,
  });
  const tool = await pythonTool();
  const tools = createToolRuntime([{ name: "python", tool, digest: "python" }], {
    maxOutputChars: 120,
  });
  try {
    const config = parseRolloutConfig(cfg, { max_tokens: 90, max_tool_calls: 3 });
    const res = await runRollout(
      ids.map((id) => ({
        task: { id, prompt: `q ${id}`, answers: [] },
        promptTokens: policy.tokenizer.encode(`question ${id}: compute.\n`),
      })),
      { policy, tools, config, rng: stream(11, "e2e") },
    );
    return { res, config, policy };
  } finally {
    await policy.dispose();
    await tool.close?.();
  }
}

const IDS = ["a", "b", "c", "d"];
const ARPO: RolloutInput = {
  rollouts: 6,
  initial: 2,
  entropy_tokens: 4,
  mode: "reference",
  base_probability: 0.8,
};

Deno.test({
  name: "e2e (ONNX policy + python tool): well-formed trees, masks, budgets, determinism",
  ignore: !haveModel,
  async fn() {
    const together = await roll(ARPO, IDS);
    let calls = 0, branches = 0;
    for (const q of together.res.questions) {
      const tree = q.tree;
      assert.deepEqual(checkTree(tree), []);
      assert.equal(tree.trajectories.length, 6, "M trajectories per question");
      const children = tree.forks.reduce((n, f) => n + f.children.length, 0);
      assert.ok(children <= 6 - 2, "forks ≤ M − N");
      branches += children;
      calls += tree.toolCalls.length;
      // Masks are 0 exactly on tool results: compare with the encoded result texts.
      for (const t of tree.trajectories) {
        const flat = tree.flatten(t);
        const zeros = flat.lossMask.filter((m) => m === 0).length;
        const resultTokens = t.segments.map((id) => tree.segments[id])
          .filter((s) => s.kind === "result").reduce((n, s) => n + s.tokens.length, 0);
        assert.equal(zeros, resultTokens);
        for (const s of t.segments.map((id) => tree.segments[id])) {
          if (s.kind !== "result" || s.cut) continue;
          const c = tree.toolCalls.find((x) => x.result === s.id)!;
          assert.deepEqual(
            s.tokens,
            together.policy.tokenizer.encode(frameResult(c.output, ["python"])),
          );
        }
      }
    }
    console.log(
      `e2e: ${calls} tool calls, ${branches} branch children over ${IDS.length} questions`,
    );
    assert.ok(calls > 0, "the python tool was called");
    assert.ok(branches > 0, "some forks happened");
    const r = together.res.stats;
    console.log(
      `e2e prefix reuse (ONNX): forwarded ${r.tokensForwarded} vs from scratch ${r.scratchTokens} ` +
        `→ ratio ${(r.tokensForwarded / r.scratchTokens).toFixed(3)}`,
    );
    assert.ok(r.tokensForwarded < r.scratchTokens);
    // Same trees alone, in another batch, and with 2 threads.
    const alone = await roll(ARPO, ["c"]);
    const other = await roll(ARPO, ["d", "b"], 2);
    const lines = (x: typeof together, id: string) =>
      x.res.questions.find((q) => q.task.id === id)!.tree.toJsonLines();
    assert.equal(lines(alone, "c"), lines(together, "c"), "together vs alone");
    for (const id of ["d", "b"]) {
      assert.equal(lines(other, id), lines(together, id), `${id}: other batch, 2 threads`);
    }
  },
});
