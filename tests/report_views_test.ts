// The report's newer views without a browser (src/report/render.ts, plots.ts, build.ts): the run
// card, settings with defaults folded away, the tool-error table, the samples block, integer
// axes, one entropy plot per stage and one branching histogram per stage.
import assert from "node:assert/strict";
import { renderReport } from "../src/report/render.ts";
import { buildPlots } from "../src/report/plots.ts";
import type { ReportData } from "../src/report/data.ts";
import { fullRun, secondRun } from "./fixtures/report/fixture.ts";

function embedded(html: string, id: string): unknown {
  const m = new RegExp(`<script type="application/json" id="${id}">([^<]*)</script>`).exec(html);
  assert.ok(m, `no ${id} block`);
  return JSON.parse(m[1]);
}

Deno.test("report views: run card, settings folded to what differs from the defaults", () => {
  const d = fullRun();
  d.run.description = "a long description ".repeat(20);
  d.run.manifest = {
    seed: 3,
    policy: 'init: {"hidden_size":64,"layers":2}',
    settings: { "sft.lr": 0.005, "sft.epochs": 3, "rl.rollout.algorithm": "arpo" },
    defaulted: ["sft.epochs", "rl.rollout.algorithm"],
  };
  const html = renderReport(d);
  assert.match(html, /<p class="desc">a long description/);
  assert.match(html, /<pre class="policy">init: \{hidden_size: 64, layers: 2\}<\/pre>/);
  const chosen = html.slice(html.indexOf('id="settings-table"'), html.indexOf("<details"));
  assert.match(chosen, /<code>lr<\/code>/);
  assert.doesNotMatch(chosen, /epochs/);
  assert.match(html, /<summary>2 settings at their defaults<\/summary>/);
  const folded = html.slice(html.indexOf('id="defaults-table"'));
  assert.match(folded, /sft\.epochs/);
  assert.match(folded, /rl\.rollout\.algorithm/);
});

Deno.test("report views: tool errors once each, samples embedded with their verdicts", () => {
  const html = renderReport(fullRun());
  const te = html.slice(html.indexOf('<section id="tool-errors">'));
  assert.match(te, /2 failed tool calls \(1 timed out\) — python: 1 error, 1 timeout/);
  assert.equal(
    te.slice(0, te.indexOf("</table>")).match(/<tr><td>/g)?.length,
    2,
    "a call is listed once even when several trajectories share it",
  );
  const samples = embedded(html, "arpo-samples") as {
    stage: string;
    correct: boolean | null;
    parts: { tokens?: unknown[] }[];
  }[];
  assert.equal(samples.length, 9, "3 trees × 3 trajectories");
  assert.deepEqual(samples.filter((s) => s.stage === "eval").map((s) => s.correct), [
    true,
    false,
    true,
  ]);
  assert.ok(samples[0].parts[0].tokens!.length > 0, "per-token data");
  assert.match(html, /<select id="sample-where"/);
  assert.match(html, /id="ctl-smooth"/);
  assert.match(html, /href="#samples"/);
  // comparing: samples of both runs
  const two = embedded(renderReport([fullRun(), secondRun()]), "arpo-samples") as {
    run: string;
  }[];
  assert.deepEqual([...new Set(two.map((s) => s.run))], ["quickstart-arpo", "quickstart-grpo"]);
});

Deno.test("report views: integer axes, one entropy plot and one histogram per stage", () => {
  const d: ReportData = {
    ...fullRun(),
    entropy: [
      { stage: "eval_sft", fromResult: { mean: [1, 2], count: [1, 1] } },
      { stage: "probe", fromResult: { mean: [1, 2], count: [1, 1] }, fromStart: { mean: [3, 1] } },
    ],
    branching: [{ stage: "rl", perQuestion: [0, 0, 0] }, { stage: "eval", perQuestion: [1, 2] }],
  };
  const specs = buildPlots([d]);
  const ent = specs.filter((s) => s.section === "entropy");
  assert.deepEqual(ent.map((s) => s.id), ["entropy_distance", "entropy_distance_2"]);
  assert.deepEqual(ent.map((s) => s.series.length), [1, 2]);
  assert.ok(ent.every((s) => s.xInteger));
  const hist = specs.filter((s) => s.section === "branching");
  assert.deepEqual(hist.map((s) => s.id), ["branches_per_question", "branches_per_question_2"]);
  assert.deepEqual(hist[0].x, [0, 1], "a lone bar gets a neighbour slot");
  assert.deepEqual(hist[0].series[0].values, [3, 0]);
  assert.ok(hist.every((s) => s.xInteger && s.yInteger && s.series.length === 1));
  const reward = specs.find((s) => s.id === "reward")!;
  assert.ok(reward.training && reward.xInteger);
  assert.match(
    specs.find((s) => s.id === "accuracy")!.title,
    /Evaluation accuracy during training/,
  );
  assert.ok(
    specs.find((s) => s.id === "reward")!.series.every((s) => s.minutes?.every((m) => m! > 0)),
    "the fixture's steps carry wall times: the x axis can be wall time",
  );
});

Deno.test("report build: settings at their stage kind's defaults are marked defaulted", async () => {
  const { buildReportData } = await import("../src/report/build.ts");
  const { optionDefaults } = await import("../src/manifest/option_table.ts");
  const { BUILTIN_STAGES } = await import("../src/run/builtin.ts");
  const { parseManifest } = await import("../src/manifest/mod.ts");
  const { scratchStore, rm } = await import("./fixtures/helpers.ts");
  const m = parseManifest(
    "name: s\nplugins: {rewards: [{use: arpo}], benchmarks: [{use: arith}]}\nstages:\n" +
      "  - sft: { benchmarks: [arith], epochs: 1, lr: 1e-3 }\n  - eval: { questions: 4 }\n",
    "inline.yaml",
    { stages: BUILTIN_STAGES, baseDir: "/tmp" },
  ).manifest;
  const store = await scratchStore();
  try {
    const rec = {
      format: "x",
      id: "e".repeat(64),
      identity: { manifest: m, plugins: {}, data: {}, model: null, runtime: {} },
      sources: {},
      modelFiles: null,
      name: "s",
      stages: {},
      status: "complete",
      baseDir: "/tmp",
      manifestPath: "/tmp/m.yaml",
      timings: {},
      host: {},
    } as unknown as Parameters<typeof buildReportData>[1];
    const d = await buildReportData(store, rec, { defaults: optionDefaults(BUILTIN_STAGES) });
    const defaulted = new Set(d.run.manifest!.defaulted);
    const chosen = Object.keys(d.run.manifest!.settings!).filter((k) => !defaulted.has(k));
    assert.deepEqual(chosen.sort(), [
      "eval.benchmark",
      "eval.questions",
      "eval.reward",
      "eval.rollout.entropy_norm",
      "sft.benchmarks",
      "sft.epochs",
      "sft.lr",
    ]);
    assert.ok(defaulted.has("sft.batch_size") && defaulted.has("eval.sampling.temperature"));
  } finally {
    await rm(store.root);
  }
});
