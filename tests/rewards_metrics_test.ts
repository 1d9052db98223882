import assert from "node:assert/strict";
import type { Reward, RewardSample } from "arpo-lab";
import f1 from "../plugins/rewards/f1.ts";
import exactMatch from "../plugins/rewards/exact_match.ts";
import mathEqual from "../plugins/rewards/math_equal.ts";
import { localPluginContext } from "../src/plugin/local.ts";

const ctx = localPluginContext({ name: "r" });
const F1 = await f1({}, ctx) as Reward;
const EM = await exactMatch({}, ctx) as Reward;
const ME = await mathEqual({}, ctx) as Reward;

function s(response: string, answers: string[]): RewardSample {
  return { task: { id: "t", prompt: "q", answers }, response, answers, toolCalls: [] };
}

Deno.test("f1 reward: boxed answer in <answer>, fallbacks, aliases", () => {
  const r = F1.score(s("<think>x</think><answer>\\boxed{New York}</answer>", ["New York City"]));
  assert.ok(Math.abs(r.reward - 0.8) < 1e-12);
  assert.equal(r.parts.answer, "New York");
  // no <answer>: the last box anywhere
  assert.equal(F1.score(s("so \\boxed{Paris}", ["paris"])).reward, 1);
  // <answer> without a box: its text
  assert.equal(F1.score(s("<answer> Paris </answer>", ["paris"])).reward, 1);
  const none = F1.score(s("I don't know", ["paris"]));
  assert.equal(none.reward, 0);
  assert.equal(none.parts.found, false);
});

Deno.test("exact_match reward: SQuAD-normalized equality with any alias", () => {
  assert.equal(EM.score(s("<answer>\\boxed{The Beatles}</answer>", ["beatles"])).reward, 1);
  assert.equal(EM.score(s("<answer>\\boxed{Beatles band}</answer>", ["beatles"])).reward, 0);
  assert.equal(EM.score(s("<answer>\\boxed{NYC}</answer>", ["New York", "nyc"])).reward, 1);
});

Deno.test("math_equal reward: LaTeX-aware, 1/0, tolerance option", async () => {
  const r = ME.score(s("<think>x</think><answer>\\boxed{\\dfrac{1}{2}}</answer>", ["0.5"]));
  assert.equal(r.reward, 1);
  assert.equal(r.parts.math_equal, 1);
  assert.equal(ME.score(s("<answer>\\boxed{\\left(1,2\\right)}</answer>", ["(1, 2)"])).reward, 1);
  assert.equal(ME.score(s("<answer>\\boxed{0.33}</answer>", ["\\frac13"])).reward, 0);
  const loose = await mathEqual({ rel_tol: 0.05 }, ctx) as Reward;
  assert.equal(loose.score(s("<answer>\\boxed{0.33}</answer>", ["\\frac13"])).reward, 1);
  assert.equal(ME.score(s("no answer", ["1"])).reward, 0);
  await assert.rejects(() => mathEqual({ rel_tol: -1 }, ctx));
});
