// Statistics over seeds (src/eval/sweep_stats.ts: stratified bootstrap, IQM) and the `--seeds`
// list parser (src/run/sweep.ts), on cases with known answers.
import assert from "node:assert/strict";
import { ArpoError } from "../src/errors.ts";
import { iqm, meanOfGroupMeans, pooledIqm, stratifiedBootstrap } from "../src/eval/sweep_stats.ts";
import { MAX_SEEDS, parseSeedList, seedMetric } from "../src/run/sweep.ts";
import { Stream } from "../src/rng.ts";

Deno.test("iqm: the mean of the middle half (scipy trim_mean 0.25)", () => {
  assert.equal(iqm([1, 2, 3, 4, 5, 6, 7, 8]), 4.5); // mean of 3, 4, 5, 6
  assert.equal(iqm([8, 1, 7, 2, 6, 3, 5, 4]), 4.5, "order does not matter");
  assert.equal(iqm([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 5.5); // ⌊10/4⌋ = 2 cut each side: 3..8
  assert.equal(iqm([1, 2, 3, 1000]), 2.5, "an outlier is trimmed");
  assert.equal(iqm([4, 6, 11]), 7, "fewer than four values: the mean");
  assert.equal(iqm([5]), 5);
  assert.ok(Number.isNaN(iqm([])));
  assert.equal(pooledIqm([[1, 2, 3, 4], [5, 6, 7, 8]]), 4.5, "pooled over groups");
});

Deno.test("meanOfGroupMeans: the mean over seeds of each seed's mean", () => {
  assert.equal(meanOfGroupMeans([[1, 0], [1, 1, 1, 1]]), 0.75);
  assert.equal(meanOfGroupMeans([[0.2], [], [0.4]]), 0.30000000000000004);
  assert.ok(Number.isNaN(meanOfGroupMeans([])));
});

Deno.test("stratifiedBootstrap: identical seeds with constant questions collapse to the mean", () => {
  const groups = [[0.25, 0.25, 0.25], [0.25, 0.25, 0.25], [0.25, 0.25, 0.25]];
  for (const stat of [meanOfGroupMeans, pooledIqm]) {
    const ci = stratifiedBootstrap(groups, stat, { key: ["t", "const"] });
    assert.deepEqual([ci.lo, ci.estimate, ci.hi], [0.25, 0.25, 0.25]);
    assert.equal(ci.confidence, 0.95);
    assert.equal(ci.resamples, 2000);
  }
});

Deno.test("stratifiedBootstrap: two seeds, no resampling within, gives the seed-level answer", () => {
  // Resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 95% interval is [0, 1].
  const ci = stratifiedBootstrap([[0], [1]], meanOfGroupMeans, {
    key: ["t", "two"],
    withinGroups: false,
  });
  assert.equal(ci.estimate, 0.5);
  assert.equal(ci.lo, 0);
  assert.equal(ci.hi, 1);
});

Deno.test("stratifiedBootstrap: the spread of seeds and of questions both enter", () => {
  // 20 seeds, constant within (seed effect only): SE of the mean = 0.5 / √20 ≈ 0.112.
  const seedsOnly = Array.from({ length: 20 }, (_, i) => new Array(10).fill(i % 2));
  const a = stratifiedBootstrap(seedsOnly, meanOfGroupMeans, { key: ["t", "seeds"] });
  assert.equal(a.estimate, 0.5);
  const wa = a.hi - a.lo;
  assert.ok(Math.abs(wa - 2 * 1.96 * 0.5 / Math.sqrt(20)) < 0.08, `width ${wa}`);
  // One seed with 1000 questions (questions only): SE = 0.5 / √1000 ≈ 0.0158.
  const rng = new Stream([1, "test", "bernoulli"]);
  const qs = Array.from({ length: 1000 }, () => (rng.uniform() < 0.5 ? 1 : 0));
  const b = stratifiedBootstrap([qs], meanOfGroupMeans, { key: ["t", "questions"] });
  const wb = b.hi - b.lo;
  assert.ok(Math.abs(wb - 2 * 1.96 * 0.5 / Math.sqrt(1000)) < 0.01, `width ${wb}`);
  assert.ok(b.lo < b.estimate && b.estimate < b.hi);
  // Identical seeds whose questions vary: only the within-seed resampling widens the interval.
  const same = stratifiedBootstrap([[0, 1, 0, 1], [0, 1, 0, 1]], meanOfGroupMeans, {
    key: ["t", "within"],
  });
  assert.equal(same.estimate, 0.5);
  assert.ok(same.lo < 0.5 && same.hi > 0.5);
  const none = stratifiedBootstrap([[0, 1, 0, 1], [0, 1, 0, 1]], meanOfGroupMeans, {
    key: ["t", "within"],
    withinGroups: false,
  });
  assert.deepEqual([none.lo, none.hi], [0.5, 0.5], "seeds alone: both seeds are alike");
});

Deno.test("stratifiedBootstrap: deterministic by key; empty groups dropped; bad options", () => {
  const g = [[0, 1, 1], [1, 1, 0, 0], [0.5]];
  const x = stratifiedBootstrap(g, meanOfGroupMeans, { key: ["k", 1], resamples: 500 });
  const y = stratifiedBootstrap(g, meanOfGroupMeans, { key: ["k", 1], resamples: 500 });
  assert.deepEqual(x, y);
  const s = stratifiedBootstrap(g, meanOfGroupMeans, {
    stream: new Stream([0, "bootstrap", "k", 1]),
    resamples: 500,
  });
  assert.deepEqual(s, x, "seed 0 + key is the stream [0, 'bootstrap', ...key]");
  const z = stratifiedBootstrap([...g, []], meanOfGroupMeans, { key: ["k", 1], resamples: 500 });
  assert.deepEqual(z, x, "an empty group is left out");
  const e = stratifiedBootstrap([[], []], meanOfGroupMeans, { key: ["k"] });
  assert.ok(Number.isNaN(e.estimate) && Number.isNaN(e.lo) && Number.isNaN(e.hi));
  assert.throws(() => stratifiedBootstrap(g, meanOfGroupMeans, { resamples: 0 }), RangeError);
  assert.throws(() => stratifiedBootstrap(g, meanOfGroupMeans, { confidence: 1 }), RangeError);
  const c80 = stratifiedBootstrap(g, meanOfGroupMeans, { key: ["k", 1], confidence: 0.8 });
  const c95 = stratifiedBootstrap(g, meanOfGroupMeans, { key: ["k", 1] });
  assert.ok(c80.hi - c80.lo <= c95.hi - c95.lo);
});

Deno.test("parseSeedList: lists, ranges, mixed; sorted", () => {
  assert.deepEqual(parseSeedList("1,2,3,4,5"), [1, 2, 3, 4, 5]);
  assert.deepEqual(parseSeedList("1-5"), [1, 2, 3, 4, 5]);
  assert.deepEqual(parseSeedList("1-3,7"), [1, 2, 3, 7]);
  assert.deepEqual(parseSeedList(" 7 , 1 - 3 "), [1, 2, 3, 7]);
  assert.deepEqual(parseSeedList("0"), [0]);
  assert.deepEqual(parseSeedList("4-4"), [4]);
});

Deno.test("parseSeedList: bad lists are ArpoErrors (exit 2) naming the problem", () => {
  const cases: [string, RegExp][] = [
    ["", /the list is empty/],
    ["  ", /the list is empty/],
    ["1,", /an item between commas is empty/],
    [",1", /an item between commas is empty/],
    ["1,,2", /an item between commas is empty/],
    ["a", /'a' is neither a seed/],
    ["-1", /'-1' is neither a seed/],
    ["1-", /'1-' is neither a seed/],
    ["1.5", /'1.5' is neither a seed/],
    ["1-2-3", /'1-2-3' is neither a seed/],
    ["3-1", /the range '3-1' ends below its start/],
    ["1,1", /seed 1 is given twice/],
    ["1-3,2", /seed 2 is given twice \(in '2'\)/],
    [`0-${MAX_SEEDS}`, new RegExp(`more than ${MAX_SEEDS} seeds`)],
    ["99999999999999999999", /out of range/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => parseSeedList(text),
      (e: unknown) => {
        assert.ok(e instanceof ArpoError, `${JSON.stringify(text)}: ${e}`);
        assert.equal(e.exitCode, 2);
        assert.match(e.message, re, JSON.stringify(text));
        assert.match(e.message, /^--seeds ".*": .*e\.g\. --seeds 1,2,3/s);
        return true;
      },
    );
  }
});

Deno.test("seedMetric: a total recorded only when nonzero counts 0 where the stage ran", () => {
  assert.equal(seedMetric({ branch_rate: 0.3 }, "tool_cap_rate"), 0);
  assert.equal(seedMetric({ tool_cap_rate: 0.01 }, "tool_cap_rate"), 0.01);
  assert.equal(seedMetric(undefined, "tool_cap_rate"), null);
  assert.equal(seedMetric({ branch_rate: 0.3 }, "accuracy"), null);
});
