import assert from "node:assert/strict";
import { runRollout } from "../src/rollout/agent_loop.ts";
import { parseRolloutConfig } from "../src/rollout/config.ts";
import { checkTree } from "../src/rollout/tree.ts";
import { stream } from "../src/rng.ts";
import { type Script, ScriptedPolicy } from "./fixtures/rollout/scripted_policy.ts";
import { FakeToolRuntime } from "./fixtures/rollout/fake_tools.ts";

type RolloutInput = Parameters<typeof parseRolloutConfig>[0];

/** A stochastic agent: what it writes and how uncertain it is depend on its own stream only. */
const agent: Script = (ctx) => {
  const calls = ctx.response.split("<result>").length - 1;
  const u = ctx.draw(), v = ctx.draw();
  const h = 0.2 + 3 * ctx.draw();
  const word = "abcdefgh".slice(0, 1 + Math.floor(v * 8));
  if (calls < 3 && u < 0.55) {
    const tag = v < 0.5 ? "python" : "search";
    return [
      { text: `<think>${word}</think>`, entropy: h },
      { text: `<${tag}>${word}${calls}</${tag}>`, entropy: h / 2 },
    ];
  }
  if (u < 0.62) return [{ text: `<python></python>`, entropy: h }];
  return [{ text: `<answer>${word}</answer><eos>`, entropy: h / 3 }];
};

const answer = (tag: string, input: string) => `${tag}(${input}) = ${input.length}`;

async function run(
  ids: string[],
  cfg: RolloutInput,
  jitter: number,
  earlyResults = false,
): Promise<
  { lines: Map<string, string>; forwarded: number; scratch: number; duringGenerate: number }
> {
  const policy = new ScriptedPolicy(agent, { earlyResults });
  const tools = new FakeToolRuntime(["python", "search"], answer, jitter, 6);
  let duringGenerate = 0;
  const call = tools.call.bind(tools);
  tools.call = (tag, input) => {
    if (policy.generating) duringGenerate++;
    return call(tag, input);
  };
  const config = parseRolloutConfig(cfg);
  const prompt = (id: string) =>
    policy.tokenizer.encode(`System: you are an agent.\n${"x".repeat(60)}\nQuestion ${id}?\n`);
  const res = await runRollout(
    ids.map((id) => ({
      task: { id, prompt: `Question ${id}?`, answers: ["x"] },
      promptTokens: prompt(id),
    })),
    { policy, tools, config, rng: stream(42, "rl", 3) },
  );
  const lines = new Map<string, string>();
  for (const q of res.questions) {
    assert.deepEqual(checkTree(q.tree), []);
    assert.equal(q.tree.trajectories.length, config.rollouts, "M trajectories per question");
    const children = q.tree.forks.reduce((n, f) => n + f.children.length, 0);
    assert.ok(children <= config.rollouts - config.initial, "forks ≤ M − N");
    lines.set(q.task.id, q.tree.toJsonLines());
  }
  assert.equal(policy.live, 0);
  return {
    lines,
    forwarded: res.stats.tokensForwarded,
    scratch: res.stats.scratchTokens,
    duringGenerate,
  };
}

const IDS = ["q0", "q1", "q2", "q3", "q4"];
const CONFIGS: [string, RolloutInput][] = [
  ["arpo paper threshold", {
    rollouts: 8,
    initial: 3,
    entropy_tokens: 3,
    entropy_weight: 50,
    entropy_norm: "log_vocab",
    decision: "threshold",
    branches_per_fork: 2,
  }],
  // The defaults: paper probe, sampled decision, ln V.
  ["arpo paper sample", { rollouts: 8, initial: 3, entropy_tokens: 3, branches_per_fork: 2 }],
  ["arpo paper sample mean", {
    rollouts: 8,
    initial: 3,
    entropy_tokens: 3,
    entropy_norm: "mean",
    entropy_weight: 0.4,
  }],
  ["arpo reference", {
    mode: "reference",
    rollouts: 8,
    initial: 3,
    reference_top_k: 0,
    branches_per_fork: 2,
  }],
  ["arpo reference parent init, threshold", {
    mode: "reference",
    rollouts: 8,
    initial: 3,
    reference_top_k: 0,
    reference_init: "parent",
    decision: "threshold",
    entropy_weight: 5,
  }],
  ["random paper", { algorithm: "random", rollouts: 8, initial: 3, branch_probability: 0.4 }],
  ["random reference", {
    algorithm: "random",
    mode: "reference",
    rollouts: 8,
    initial: 3,
    reference_top_k: 0,
    branches_per_fork: 2,
  }],
  ["grpo", { algorithm: "grpo", rollouts: 4 }],
];
const configNamed = (name: string) => CONFIGS.find((c) => c[0] === name)![1];

for (const [name, cfg] of CONFIGS) {
  Deno.test(`determinism (${name}): batch composition and tool completion order`, async () => {
    const together = await run(IDS, cfg, 1);
    const reversed = await run([...IDS].reverse(), cfg, 2);
    const some = await run(["q3", "q1"], cfg, 3);
    for (const id of IDS) {
      const alone = await run([id], cfg, 0);
      assert.equal(together.lines.get(id), alone.lines.get(id), `${id}: together vs alone`);
      assert.equal(together.lines.get(id), reversed.lines.get(id), `${id}: reversed batch`);
    }
    for (const id of ["q3", "q1"]) assert.equal(some.lines.get(id), together.lines.get(id));
    // The rollout is not trivial: tool calls happened.
    const all = [...together.lines.values()].join("");
    assert.ok(all.includes('"type":"tool_call"'));
    if (!name.startsWith("grpo")) assert.ok(all.includes('"decision":"branch"'), "some branches");
  });
}

Deno.test("determinism: tool calls started while the round still generates give the same trees", async () => {
  for (const [name, cfg] of CONFIGS) {
    const after = await run(IDS, cfg, 1);
    const early = await run(IDS, cfg, 2, true);
    for (const id of IDS) assert.equal(early.lines.get(id), after.lines.get(id), `${name}: ${id}`);
    assert.equal(after.duringGenerate, 0, `${name}: no early start without onResult`);
    assert.ok(early.duringGenerate > 0, `${name}: calls started during generate`);
  }
});

Deno.test("tool completion order really differs between jitter seeds", async () => {
  const orders: string[] = [];
  for (const jitter of [1, 2]) {
    const tools = new FakeToolRuntime(["python"], (_t, i) => i, jitter, 20);
    await Promise.all(["a", "b", "c", "d", "e", "f"].map((x) => tools.call("python", x)));
    orders.push(tools.completed.join(","));
  }
  assert.notEqual(orders[0], orders[1]);
});

Deno.test("prefix reuse: forks forward fewer tokens than re-running every trajectory", async () => {
  const cfg = configNamed("arpo paper threshold");
  const r = await run(IDS, cfg, 0);
  const ratio = r.forwarded / r.scratch;
  console.log(
    `ARPO (M=8, N=3, Z=2, paper): tokens forwarded ${r.forwarded} vs from scratch ${r.scratch}, ` +
      `ratio ${ratio.toFixed(3)}`,
  );
  assert.ok(r.forwarded < r.scratch);
  const g = await run(IDS, configNamed("grpo"), 0);
  console.log(`GRPO (M=4): forwarded ${g.forwarded} vs from scratch ${g.scratch}`);
  // Without forks there is nothing to share: exactly the from-scratch count.
  assert.equal(g.forwarded, g.scratch);
});
