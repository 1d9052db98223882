// docs/STAGES.md is generated from the stage kinds' schemas and must be current; the sft `steps`
// budget and policy-dependent lr; warnings for training on a split a stage measures.
import assert from "node:assert/strict";
import { parseManifest } from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { splitOverlapWarnings } from "../src/run/split_overlap.ts";
import { INIT_LR, PRETRAINED_LR, sftLr, sftSchedule } from "../src/run/stages/sft.ts";
import { formatted, stagesMarkdown, undescribed } from "../scripts/stages_doc.ts";
import { digestJson } from "../src/store/hash.ts";

Deno.test("docs/STAGES.md is what scripts/stages_doc.ts generates, every option described", async () => {
  const committed = await Deno.readTextFile(new URL("../docs/STAGES.md", import.meta.url));
  const fresh = await formatted(stagesMarkdown());
  assert.ok(
    committed === fresh,
    "docs/STAGES.md is stale: run `deno run -A scripts/stages_doc.ts`",
  );
  assert.deepEqual(undescribed(), []);
  for (const k of BUILTIN_STAGES) assert.match(committed, new RegExp(`## \`${k.kind}\``));
  assert.match(committed, /\| `steps` +\| integer ≥ 1 +\| — +\|/);
});

const PLUGINS = "plugins: {rewards: [{use: arpo}], benchmarks: [{use: arith}]}\n";
const load = (text: string) =>
  parseManifest(text, "inline.yaml", { stages: BUILTIN_STAGES, baseDir: "/tmp" }).manifest;

Deno.test("sft steps: optional, absent from options that do not set it; a budget of steps", () => {
  const plain = load(`name: s\n${PLUGINS}stages:\n  - sft: { benchmarks: [arith], epochs: 2 }\n`);
  const opts = plain.stages[0].options as Record<string, unknown>;
  assert.ok(!("steps" in opts), "an unset steps leaves the options (and so the ids) as they were");
  assert.equal(
    digestJson(opts),
    digestJson({ ...opts, steps: undefined }),
    "canonical JSON drops it",
  );
  const budget = load(`name: s\n${PLUGINS}stages:\n  - sft: { benchmarks: [arith], steps: 60 }\n`);
  assert.equal((budget.stages[0].options as { steps: number }).steps, 60);

  const id = (_e: number, xs: number[]) => xs;
  assert.equal(sftSchedule(10, 3, 4, id).length, 9, "epochs × ceil(n / batch)");
  const s = sftSchedule(10, 3, 4, id, 7);
  assert.equal(s.length, 7, "the budget, across epochs");
  assert.deepEqual(s[3], [0, 1, 2, 3], "the second epoch starts after the first's short batch");
  assert.equal(sftSchedule(10, 3, 4, id, 2).length, 2, "a budget shorter than one epoch");
  assert.throws(() =>
    load(`name: s\n${PLUGINS}stages:\n  - sft: { benchmarks: [arith], steps: 0 }\n`)
  );
});

Deno.test("sft group_by_length: groups sorted by length, batches re-shuffled, every sequence once per epoch", () => {
  const lengths = [5, 90, 12, 70, 33, 64, 8, 41, 99, 27, 50, 3];
  const id = (_e: number, xs: number[]) => xs;
  const reversed = (_e: number, _g: number, bs: number[][]) => [...bs].reverse();
  // 12 sequences, batch 2, groups of 3 batches (6 sequences): group 0 = indices 0–5.
  const s = sftSchedule(12, 1, 2, id, undefined, { batches: 3, lengths, shuffle: reversed });
  assert.deepEqual(s, [[2, 0], [5, 4], [1, 3], [6, 11], [7, 9], [8, 10]]);
  for (const b of s) assert.ok(lengths[b[0]] >= lengths[b[1]], "longest first inside a group");
  const padded = (bs: number[][]) =>
    bs.reduce((a, b) => a + b.length * Math.max(...b.map((i) => lengths[i])), 0);
  assert.ok(
    padded(s) < padded(sftSchedule(12, 1, 2, id)),
    "grouping pads less than plain slices",
  );
  // Ties keep the shuffle's order; two epochs and a budget work as without grouping.
  const two = sftSchedule(12, 2, 2, id, 9, { batches: 3, lengths, shuffle: reversed });
  assert.equal(two.length, 9);
  assert.deepEqual(two.slice(0, 6).flat().sort((a, b) => a - b), [...Array(12).keys()]);
  const opts = load(
    `name: s\n${PLUGINS}stages:\n  - sft: { benchmarks: [arith], group_by_length: 50 }\n`,
  ).stages[0].options as { group_by_length: number };
  assert.equal(opts.group_by_length, 50);
  assert.throws(() =>
    load(`name: s\n${PLUGINS}stages:\n  - sft: { benchmarks: [arith], group_by_length: 1 }\n`)
  );
});

Deno.test("sft lr: 1e-3 for a model initialized here, 7e-6 for a pretrained one, else as set", () => {
  const m = load(`name: s\n${PLUGINS}stages:\n  - sft: { benchmarks: [arith] }\n`);
  const o = m.stages[0].options as Parameters<typeof sftLr>[0];
  assert.equal(sftLr(o, m.policy), INIT_LR, "no policy: means policy: { init: {} }");
  assert.equal(sftLr(o, { model: "/m" }), PRETRAINED_LR);
  assert.equal(sftLr({ ...o, lr: 5e-3 }, m.policy), 5e-3);
});

Deno.test("warnings: training on a split that a stage measures", () => {
  const stages = (s: string) => load(`name: s\n${PLUGINS}stages:\n${s}`);
  const w = splitOverlapWarnings(
    stages(
      "  - sft: { benchmarks: [arith], split: test }\n" +
        "  - eval: { name: e_test }\n  - eval: { name: e_train, split: train }\n",
    ),
    BUILTIN_STAGES,
  );
  assert.equal(w.length, 1, w.join("\n"));
  assert.match(
    w[0],
    /stage 'sft' trains on split 'test' of benchmark 'arith', which stage 'e_test'/,
  );
  assert.deepEqual(
    splitOverlapWarnings(
      stages("  - sft: { benchmarks: [arith] }\n  - eval: { split: test }\n"),
      BUILTIN_STAGES,
    ),
    [],
  );
  const rl = splitOverlapWarnings(
    stages("  - rl: { eval_every: 2, eval_split: train }\n"),
    BUILTIN_STAGES,
  );
  assert.equal(rl.length, 1);
  assert.match(rl[0], /stage 'rl' trains on split 'train' .* which it also evaluates on/);
});
