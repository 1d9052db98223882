import assert from "node:assert/strict";
import type { Reward, RewardSample, Task } from "arpo-lab";
import arpo from "../plugins/rewards/arpo.ts";
import { localPluginContext } from "../src/plugin/local.ts";

const reward = await arpo({}, localPluginContext({ name: "arpo" })) as Reward;

function sample(response: string, answers: string[]): RewardSample {
  const task: Task = { id: "t", prompt: "q", answers };
  return { task, response, answers, toolCalls: [] };
}

const S = (q: string, r: string) => `<search>${q}</search> <result>\n${r}\n</result>`;
const P = (c: string, r: string) => `<python>${c}</python> <result>\n${r}\n</result>`;

interface Row {
  name: string;
  response: string;
  answers: string[];
  reward: number;
  f1?: number;
  bonus?: number;
  used?: string;
  /** Substring of format_error when the format fails. */
  error?: string;
}

// Expected values worked out by hand from ARPO.md §5. F1 arithmetic: p = predicted tokens,
// g = gold tokens, s = shared (multiset), P = s/|p|, R = s/|g|, F1 = 2PR/(P+R).
const ROWS: Row[] = [
  {
    // format ok; "Paris" vs "Paris": s=1, P=R=1, F1=1; no tools → reward 1
    name: "plain correct answer",
    response: "<think>capital of France</think><answer>The answer is \\boxed{Paris}.</answer>",
    answers: ["Paris"],
    reward: 1,
    f1: 1,
    bonus: 0,
    used: "",
  },
  {
    // rule 1: no <think> at all → −1
    name: "missing think",
    response: "<answer>\\boxed{Paris}</answer>",
    answers: ["Paris"],
    reward: -1,
    error: "no <think>",
  },
  {
    // rule 1: 2 × <think>, 1 × </think> → unbalanced → −1
    name: "unbalanced think",
    response: "<think>a</think><think>b<answer>\\boxed{Paris}</answer>",
    answers: ["Paris"],
    reward: -1,
    error: "not paired",
  },
  {
    // rule 1: two <answer> blocks → −1 even though the last is right
    name: "two answers",
    response: "<think>a</think><answer>\\boxed{Rome}</answer><answer>\\boxed{Paris}</answer>",
    answers: ["Paris"],
    reward: -1,
    error: "exactly one <answer>",
  },
  {
    // rule 1: no <answer> → −1
    name: "no answer block",
    response: "<think>it is Paris</think> \\boxed{Paris}",
    answers: ["Paris"],
    reward: -1,
    error: "exactly one <answer>",
  },
  {
    // rule 1: answer without \boxed{} → −1
    name: "answer without boxed",
    response: "<think>a</think><answer>Paris</answer>",
    answers: ["Paris"],
    reward: -1,
    error: "no \\boxed",
  },
  {
    // rule 1: \boxed only outside the answer → −1
    name: "boxed outside the answer",
    response: "<think>\\boxed{Paris}</think><answer>Paris</answer>",
    answers: ["Paris"],
    reward: -1,
    error: "no \\boxed",
  },
  {
    // rule 1: <search> with no <result> after it → −1
    name: "search without result",
    response: "<think>a</think><search>capital of France</search><answer>\\boxed{Paris}</answer>",
    answers: ["Paris"],
    reward: -1,
    error: "<search>",
    used: "", // a call without a result is not a completed call
  },
  {
    // rule 1: <python> never closed → −1
    name: "python not closed",
    response: "<think>a</think><python>print(1) <result>\n1\n</result><answer>\\boxed{1}</answer>",
    answers: ["1"],
    reward: -1,
    error: "<python>",
  },
  {
    // rule 1: result opened before </search> → tags out of order → −1
    name: "result inside the call",
    response: "<think>a</think><search>q <result>x</result></search><answer>\\boxed{x}</answer>",
    answers: ["x"],
    reward: -1,
    error: "out of order",
  },
  {
    // rule 1: </answer> before <answer> → −1
    name: "answer tags reversed",
    response: "<think>a</think></answer>\\boxed{Paris}<answer>",
    answers: ["Paris"],
    reward: -1,
    error: "before <answer>",
  },
  {
    // rule 2 (brace matching): the last \boxed{ in the answer never closes → −1
    name: "last boxed unclosed",
    response: "<think>a</think><answer>\\boxed{Rome} or \\boxed{Paris</answer>",
    answers: ["Paris"],
    reward: -1,
    error: "not closed",
  },
  {
    // rule 2: last box wins: "Paris" → F1 1 (the earlier "London" is ignored)
    name: "last of several boxes",
    response: "<think>a</think><answer>\\boxed{London}, no: \\boxed{Paris}</answer>",
    answers: ["Paris"],
    reward: 1,
    f1: 1,
  },
  {
    // F1: p=[new,york] g=[new,york,city] s=2 P=1 R=2/3 F1=(4/3)/(5/3)=0.8
    name: "partial F1",
    response: "<think>a</think><answer>\\boxed{New York}</answer>",
    answers: ["New York City"],
    reward: 0.8,
    f1: 0.8,
  },
  {
    // normalization: "The Eiffel Tower!" → "eiffel tower" = gold → F1 1
    name: "articles and punctuation",
    response: "<think>a</think><answer>\\boxed{The Eiffel Tower!}</answer>",
    answers: ["eiffel tower"],
    reward: 1,
    f1: 1,
  },
  {
    // max over aliases: vs "Big Apple" s=0; vs "New York": p=[new,york,city] g=[new,york] s=2
    // P=2/3 R=1 F1=(4/3)/(5/3)=0.8 → max 0.8
    name: "max over aliases",
    response: "<think>a</think><answer>\\boxed{new york city}</answer>",
    answers: ["Big Apple", "New York"],
    reward: 0.8,
    f1: 0.8,
  },
  {
    // repeated tokens: "the the paris paris" → [paris,paris] vs [paris]: s=min(2,1)=1
    // P=1/2 R=1 F1=1/(3/2)=2/3
    name: "repeated tokens count once",
    response: "<think>a</think><answer>\\boxed{the the paris paris}</answer>",
    answers: ["Paris"],
    reward: 2 / 3,
    f1: 2 / 3,
  },
  {
    // wrong answer, good format: s=0 → F1 0 → reward 0
    name: "wrong answer",
    response: "<think>a</think><answer>\\boxed{Lyon}</answer>",
    answers: ["Paris"],
    reward: 0,
    f1: 0,
  },
  {
    // empty box: no predicted tokens → F1 0 → reward 0
    name: "empty box",
    response: "<think>a</think><answer>\\boxed{}</answer>",
    answers: ["Paris"],
    reward: 0,
    f1: 0,
  },
  {
    // yes/no rule (HotpotQA, reference): gold "yes", prediction "yes it is" ≠ "yes" → 0
    // (plain F1 would be P=1/3 R=1 → 0.5)
    name: "yes/no needs an exact match",
    response: "<think>a</think><answer>\\boxed{yes it is}</answer>",
    answers: ["yes"],
    reward: 0,
    f1: 0,
  },
  {
    // thousands separator: "1,000" → punctuation stripped → "1000" = gold → 1
    name: "number with separator",
    response: "<think>a</think><answer>\\boxed{1,000}</answer>",
    answers: ["1000"],
    reward: 1,
    f1: 1,
  },
  {
    // LaTeX in the box is punctuation to SQuAD: "\text{Paris}" → "textparis" ≠ "paris" → 0
    name: "latex command in the box",
    response: "<think>a</think><answer>\\boxed{\\text{Paris}}</answer>",
    answers: ["Paris"],
    reward: 0,
    f1: 0,
  },
  {
    // both tools, F1 1 → 1 + 0.1 = 1.1
    name: "bonus: search and python, correct",
    response: `<think>look up</think>${S("population of X", "Page 1: X has 120 people")}` +
      `<think>double it</think>${P("print(120*2)", "240")}<think>done</think>` +
      "<answer>\\boxed{240}</answer>",
    answers: ["240"],
    reward: 1.1,
    f1: 1,
    bonus: 0.1,
    used: "search,python",
  },
  {
    // both tools but wrong: F1 0 → no bonus → 0
    name: "bonus needs F1 > 0",
    response: `<think>a</think>${S("q", "r")}${P("print(1)", "1")}<answer>\\boxed{7}</answer>`,
    answers: ["240"],
    reward: 0,
    f1: 0,
    bonus: 0,
    used: "search,python",
  },
  {
    // both tools, partial: F1 0.8 (as "partial F1") + 0.1 = 0.9
    name: "bonus on partial F1",
    response: `<think>a</think>${P("x", "y")}<think>b</think>${S("q", "r")}` +
      "<answer>\\boxed{New York}</answer>",
    answers: ["New York City"],
    reward: 0.9,
    f1: 0.8,
    bonus: 0.1,
    used: "search,python",
  },
  {
    // search only (twice), correct → 1, no bonus
    name: "one tool only: no bonus",
    response: `<think>a</think>${S("q1", "r1")}${S("q2", "r2")}<answer>\\boxed{Paris}</answer>`,
    answers: ["Paris"],
    reward: 1,
    f1: 1,
    bonus: 0,
    used: "search",
  },
  {
    // python only, correct → 1, no bonus
    name: "python only",
    response: `<think>compute</think>${P("print(6*7)", "42")}<answer>\\boxed{42}</answer>`,
    answers: ["42"],
    reward: 1,
    f1: 1,
    bonus: 0,
    used: "python",
  },
  {
    // a tag inside a call body or a tool result is not a call: python only → no bonus;
    // format still checks the echoed tag: <search> … </search> then a later <result>…</result>
    // exists (the python result) — so format holds; F1 1 → reward 1
    name: "tag echoed inside a result is not a call",
    response: `<think>a</think>${P("print('<search>x</search>')", "<search>x</search>")}` +
      `${P("print(2)", "2")}<answer>\\boxed{2}</answer>`,
    answers: ["2"],
    reward: 1,
    f1: 1,
    bonus: 0,
    used: "python",
  },
];

Deno.test("arpo reward: hand-computed table", async (t) => {
  assert.ok(ROWS.length >= 20);
  for (const row of ROWS) {
    await t.step(row.name, () => {
      const r = reward.score(sample(row.response, row.answers));
      assert.ok(Math.abs(r.reward - row.reward) < 1e-12, `reward ${r.reward} ≠ ${row.reward}`);
      if (row.error !== undefined) {
        assert.equal(r.parts.format_ok, false);
        assert.ok(String(r.parts.format_error).includes(row.error), String(r.parts.format_error));
      } else {
        assert.equal(r.parts.format_ok, true);
        assert.equal(r.parts.format_error, undefined);
      }
      if (row.f1 !== undefined) assert.ok(Math.abs(Number(r.parts.f1) - row.f1) < 1e-12);
      if (row.bonus !== undefined) assert.equal(r.parts.bonus, row.bonus);
      if (row.used !== undefined) assert.equal(r.parts.used_tools, row.used);
    });
  }
});

Deno.test("arpo reward: options (tool tags, bonus tools, bonus)", async () => {
  const custom = await arpo(
    { tools: ["lookup", "calc"], bonus_tools: ["lookup", "calc"], bonus: 0.25 },
    localPluginContext({ name: "arpo" }),
  ) as Reward;
  const resp = "<think>a</think><lookup>q</lookup> <result>\nr\n</result>" +
    "<calc>1+1</calc> <result>\n2\n</result><answer>\\boxed{2}</answer>";
  const r = custom.score(sample(resp, ["2"]));
  assert.equal(r.reward, 1.25);
  assert.equal(r.parts.used_tools, "lookup,calc");
  // a <calc> call without its result fails the format under these tags
  const bad = custom.score(
    sample("<think>a</think><calc>1</calc><answer>\\boxed{2}</answer>", ["2"]),
  );
  assert.equal(bad.reward, -1);
  // bad options are refused by the schema
  await assert.rejects(() => arpo({ bonus: "x" }, localPluginContext({ name: "arpo" })));
});
