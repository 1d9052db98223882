import assert from "node:assert/strict";
import { runRollout } from "../src/rollout/agent_loop.ts";
import { parseRolloutConfig } from "../src/rollout/config.ts";
import { checkTree, type RolloutTree } from "../src/rollout/tree.ts";
import { stream } from "../src/rng.ts";
import { type Script, ScriptedPolicy } from "./fixtures/rollout/scripted_policy.ts";
import { FakeToolRuntime } from "./fixtures/rollout/fake_tools.ts";

type RolloutInput = Parameters<typeof parseRolloutConfig>[0];
type SamplingInput = Parameters<typeof parseRolloutConfig>[1];

const task = (id: string, q = "what is 1+1?") => ({ id, prompt: q, answers: ["2"] });

function setup(
  script: Script,
  cfg: RolloutInput,
  sampling: SamplingInput = {},
  answer = (_t: string, i: string) => `=${i}`,
) {
  const policy = new ScriptedPolicy(script);
  const tools = new FakeToolRuntime(["python", "search"], answer);
  const config = parseRolloutConfig(cfg, sampling);
  return { policy, tools, config };
}

function responseText(tree: RolloutTree, i: number, policy: ScriptedPolicy): string {
  return policy.tokenizer.decode(tree.flatten(tree.trajectories[i]).responseTokens);
}

Deno.test("agent loop: tool call, masked result, answer (GRPO, M=2)", async () => {
  const script: Script = (ctx) =>
    ctx.response.includes("</result>")
      ? [{ text: "<answer>2</answer><eos>", entropy: 0.1 }]
      : [{ text: "<think>add</think><python>1+1</python>", entropy: 0.5 }];
  const { policy, tools, config } = setup(script, { algorithm: "grpo", rollouts: 2 });
  const prompt = policy.tokenizer.encode("Q: 1+1?\n");
  const res = await runRollout([{ task: task("a"), promptTokens: prompt }], {
    policy,
    tools,
    config,
    rng: stream(1, "test"),
  });
  const tree = res.questions[0].tree;
  assert.deepEqual(checkTree(tree), []);
  assert.equal(tree.trajectories.length, 2);
  for (let i = 0; i < 2; i++) {
    const t = tree.trajectories[i];
    assert.equal(t.end, "eos");
    assert.equal(
      responseText(tree, i, policy),
      "<think>add</think><python>1+1</python> <result>\n=1+1\n</result><answer>2</answer><eos>",
    );
    const flat = tree.flatten(t);
    const result = policy.tokenizer.encode(" <result>\n=1+1\n</result>");
    const genLen = policy.tokenizer.encode("<think>add</think><python>1+1</python>").length;
    // The mask is 0 exactly on the result tokens.
    flat.lossMask.forEach((m, j) => {
      const inResult = j >= genLen && j < genLen + result.length;
      assert.equal(m, inResult ? 0 : 1, `position ${j}`);
    });
    assert.deepEqual(flat.responseTokens.slice(genLen, genLen + result.length), result);
    assert.equal(tree.toolCallRecords(t).length, 1);
    assert.equal(tree.toolCalls[t.toolCalls[0]].input, "1+1");
  }
  // GRPO records ΔH at the call but never branches.
  assert.equal(tree.forks.length, 2);
  assert.ok(tree.forks.every((f) => f.decision === "off" && f.children.length === 0));
  // Both trajectories decode together: 2 generate rounds of batch 2.
  assert.deepEqual(policy.batchSizes, [2, 2]);
  assert.equal(policy.live, 0, "every sequence released");
});

Deno.test("agent loop: tool-call cap appends EOS; empty call ends; length limit cuts", async () => {
  // Always calls python (cap 2 → third call gets EOS).
  {
    const script: Script = () => [{ text: "<python>x</python>", entropy: 1 }];
    const { policy, tools, config } = setup(script, { algorithm: "grpo", rollouts: 1 }, {
      max_tool_calls: 2,
    });
    const res = await runRollout([{ task: task("cap"), promptTokens: [5, 6] }], {
      policy,
      tools,
      config,
      rng: stream(1, "test"),
    });
    const tree = res.questions[0].tree;
    assert.deepEqual(checkTree(tree), []);
    const t = tree.trajectories[0];
    assert.equal(t.end, "tool_cap");
    assert.equal(t.toolCalls.length, 2);
    const last = tree.segments[t.segments.at(-1)!];
    assert.equal(last.kind, "eos");
    assert.deepEqual(last.tokens, [0]);
    assert.deepEqual(last.lossMask, [1]);
    assert.equal(tools.calls.length, 2);
  }
  // Empty body: the trajectory ends without a call.
  {
    const script: Script = () => [{ text: "<search>   </search>", entropy: 1 }];
    const { policy, tools, config } = setup(script, { algorithm: "grpo", rollouts: 1 });
    const res = await runRollout([{ task: task("empty"), promptTokens: [5] }], {
      policy,
      tools,
      config,
      rng: stream(1, "test"),
    });
    const t = res.questions[0].tree.trajectories[0];
    assert.equal(t.end, "empty_call");
    assert.equal(t.toolCalls.length, 0);
    assert.equal(tools.calls.length, 0);
  }
  // Response limit: generation is capped, and a result that does not fit is cut.
  {
    const script: Script = () => [{ text: "<python>abc</python>", entropy: 1 }];
    const limit = 12; // "<python>abc</python>" = 5 tokens, result = 15+ tokens
    const { policy, tools, config } = setup(script, { algorithm: "grpo", rollouts: 1 }, {
      max_tokens: limit,
    });
    const res = await runRollout([{ task: task("len"), promptTokens: [5] }], {
      policy,
      tools,
      config,
      rng: stream(1, "test"),
    });
    const tree = res.questions[0].tree;
    assert.deepEqual(checkTree(tree), []);
    const t = tree.trajectories[0];
    assert.equal(t.end, "length");
    assert.equal(tree.responseLength(t), limit);
    const r = tree.segments[t.segments.at(-1)!];
    assert.equal(r.kind, "result");
    assert.equal(r.cut, true);
    assert.equal(r.tokens.length, limit - 5);
  }
  {
    const script: Script = () => [{ text: "abcdefghijklmnop", entropy: 1 }];
    const { policy, tools, config } = setup(script, { algorithm: "grpo", rollouts: 1 }, {
      max_tokens: 7,
    });
    const res = await runRollout([{ task: task("len2"), promptTokens: [5] }], {
      policy,
      tools,
      config,
      rng: stream(1, "test"),
    });
    const tree = res.questions[0].tree;
    assert.equal(tree.trajectories[0].end, "length");
    assert.equal(responseText(tree, 0, policy), "abcdefg");
  }
});
