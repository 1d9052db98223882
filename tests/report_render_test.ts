import assert from "node:assert/strict";
import { renderReport } from "../src/report/render.ts";
import { buildPlots } from "../src/report/plots.ts";
import { parseReportData } from "../src/report/build.ts";
import type { ReportData } from "../src/report/data.ts";
import { ArpoError } from "../src/errors.ts";
import { fullRun, HOSTILE, secondRun } from "./fixtures/report/fixture.ts";

/** The JSON a <script type="application/json" id=…> block holds. */
function embedded(html: string, id: string): unknown {
  const m = new RegExp(`<script type="application/json" id="${id}">([^<]*)</script>`).exec(html);
  assert.ok(m, `no ${id} block`);
  return JSON.parse(m[1]);
}

const ALL_PLOTS = [
  "reward",
  "reward_parts",
  "accuracy",
  "tool_calls",
  "branches",
  "response_length",
  "entropy_step",
  "loss",
  "grad_norm",
  "clip_fraction",
  "approx_kl",
  "tool_errors",
  "wall_time",
  "entropy_distance",
  "fork_scatter",
  "branches_per_question",
];

Deno.test("report: full data renders every section, table and plot", () => {
  const html = renderReport(fullRun());
  assert.ok(html.startsWith("<!DOCTYPE html>"));
  for (
    const id of ["overview", "stages", "training", "evaluation", "entropy", "forks", "rollouts"]
  ) {
    assert.ok(html.includes(`<section id="${id}">`), `section ${id}`);
    assert.ok(html.includes(`href="#${id}"`), `nav link ${id}`);
  }
  for (
    const id of [
      "runs-table",
      "settings-table",
      "stages-table",
      "training-table",
      "eval-table",
      "entropy-table",
      "fork-table",
    ]
  ) {
    assert.ok(html.includes(`id="${id}"`), `table ${id}`);
  }
  for (const id of ALL_PLOTS) assert.ok(html.includes(`id="plot-${id}"`), `plot ${id}`);
  const specs = embedded(html, "arpo-plots") as { id: string }[];
  assert.deepEqual(specs.map((s) => s.id), ALL_PLOTS);
  // Estimates with intervals, pass@k labelled with its k, and the CI note.
  assert.ok(html.includes("0.550 [0.400, 0.680]"));
  assert.ok(html.includes("<th>pass@4</th>"));
  assert.ok(html.includes("95% bootstrap confidence intervals"));
  // Self-contained: uPlot inline, no external resources.
  assert.ok(html.includes("uPlot"));
  assert.ok(!/<(script|link|img)[^>]+(src|href)=/i.test(html), "no external resources");
  assert.ok(!/https?:\/\/(?!github\.com\/leeoniya)/.test(html.replace(/xmlns="[^"]*"/g, "")));
  const trees = embedded(html, "arpo-trees") as { taskId: string; forks: unknown[] }[];
  assert.deepEqual(trees.map((t) => t.taskId), ["arpo-q1", "arpo-q2", "arpo-q3"]);
  assert.equal(trees[0].forks.length, 2);
});

Deno.test("report: the same data gives the same bytes; JSON round trip too", () => {
  const a = renderReport([fullRun(), secondRun()]);
  const b = renderReport([fullRun(), secondRun()]);
  assert.equal(a, b);
  const viaJson = parseReportData(JSON.stringify([fullRun(), secondRun()]), "data.json");
  assert.equal(renderReport(viaJson), a);
  assert.notEqual(renderReport(fullRun()), a);
});

Deno.test("report: untrusted text is escaped everywhere", () => {
  const d = fullRun();
  d.run.name = HOSTILE[0];
  d.stages![0].name = HOSTILE[1];
  d.evals![0].benchmarks[0].benchmark = HOSTILE[2];
  d.run.manifest!.settings![HOSTILE[3]] = HOSTILE[0];
  const html = renderReport(d);
  // Exactly our five script elements: three JSON blocks, uPlot, the page script.
  assert.equal(html.match(/<script/gi)?.length, 5);
  assert.equal(html.match(/<\/script/gi)?.length, 5);
  for (const bad of ["<img src=x", "<svg onload", "<script>window.__pwned"]) {
    assert.ok(!html.includes(bad), `raw ${JSON.stringify(bad)} in the page`);
  }
  // Inside the JSON blocks, the JS line separators are \u escapes too.
  for (const m of html.matchAll(/<script type="application\/json"[^>]*>([^<]*)<\/script>/g)) {
    assert.ok(!m[1].includes("\u2028") && !m[1].includes(">") && !m[1].includes("&"));
  }
  assert.ok(html.includes("&lt;/script&gt;&lt;script&gt;window.__pwned = 1&lt;/script&gt;"));
  // The data survives intact inside the JSON blocks (escaped as \u003c etc.).
  const trees = embedded(html, "arpo-trees") as { question: string }[];
  assert.ok(trees[1].question.includes(HOSTILE[0]) && trees[1].question.includes(HOSTILE[3]));
  const specs = embedded(html, "arpo-plots") as { series: { label: string }[] }[];
  assert.ok(specs.length > 0);
});

Deno.test("report: partial data renders (run only, stages only, trees only, sparse steps)", () => {
  const base: ReportData = { run: { id: "c".repeat(64), name: "partial" } };
  const onlyRun = renderReport(base);
  assert.ok(onlyRun.includes('<section id="overview">'));
  assert.ok(!onlyRun.includes('<section id="training">'));
  assert.ok(!onlyRun.includes('<section id="rollouts">'));
  assert.deepEqual(embedded(onlyRun, "arpo-plots"), []);

  const failed = renderReport({
    ...base,
    run: { ...base.run, status: "failed", error: "stage 'rl' failed: out of memory" },
    stages: [{ name: "sft", kind: "sft", status: "done" }, {
      name: "rl",
      kind: "rl",
      status: "failed",
    }],
  });
  assert.ok(failed.includes('<span class="status-failed">failed</span>'));
  assert.ok(failed.includes("out of memory"));

  const trees = renderReport({ ...base, trees: fullRun().trees!.slice(0, 1) });
  assert.ok(trees.includes('<div id="tree-list">'));

  // Steps with only some fields: only those plots; missing values are gaps, not zeros.
  const sparse: ReportData = {
    ...base,
    training: [{
      stage: "rl",
      steps: [{ step: 2, reward: 0.5 }, { step: 1 }, { step: 3, reward: 0.7 }],
    }],
    entropy: [{ stage: "probe", fromResult: { mean: [1, 0, 2], count: [4, 0, 1] } }],
  };
  const specs = buildPlots([sparse]);
  assert.deepEqual(specs.map((s) => s.id), ["reward", "entropy_distance"]);
  assert.deepEqual(specs[0].x, [1, 2, 3]);
  assert.deepEqual(specs[0].series[0].values, [null, 0.5, 0.7]);
  assert.deepEqual(specs[1].series[0].values, [1, null, 2]);
  renderReport(sparse);
});

Deno.test("report: comparison overlays runs in the same plots, one colour per run", () => {
  const specs = buildPlots([fullRun(), secondRun()]);
  const reward = specs.find((s) => s.id === "reward")!;
  assert.deepEqual(reward.series.map((s) => s.label), [
    "quickstart-arpo · rl",
    "quickstart-grpo · rl",
  ]);
  assert.notEqual(reward.series[0].color, reward.series[1].color);
  const entropy = specs.find((s) => s.id === "entropy_distance")!;
  assert.equal(entropy.series.length, 4);
  assert.equal(entropy.series[0].color, reward.series[0].color, "a run keeps its colour");
  // Fork decisions: one scatter per run, x sorted ascending (uPlot's aligned data).
  const scat = specs.filter((s) => s.kind === "scatter");
  assert.deepEqual(scat.map((s) => s.id), ["fork_scatter", "fork_scatter_2"]);
  for (const s of scat) {
    for (let i = 1; i < s.x.length; i++) assert.ok(s.x[i - 1] <= s.x[i]);
  }
  assert.deepEqual(scat[1].series.map((s) => s.label), ["rl · off"]);
  // Same run name twice: labels carry the id.
  const twin = { ...fullRun(), run: { ...fullRun().run, id: "d".repeat(64) } };
  const labels = buildPlots([fullRun(), twin]).find((s) => s.id === "reward")!.series
    .map((s) => s.label);
  assert.deepEqual(labels, ["quickstart-arpo (aaaaaaaa) · rl", "quickstart-arpo (dddddddd) · rl"]);
});

Deno.test("report: bad input is an ArpoError naming what is wrong", () => {
  assert.throws(() => renderReport([]), ArpoError);
  assert.throws(
    () => renderReport({ run: { name: "x" } } as unknown as ReportData),
    /run 1 has no run.id/,
  );
  assert.throws(() => parseReportData("{", "r.json"), /r\.json: not valid JSON/);
  assert.throws(
    () => parseReportData('[{"run":{"id":"a","name":"b"}},{"run":{"id":1}}]', "r.json"),
    /r\.json\[1\]: 'run' must be an object with string 'id' and 'name'/,
  );
  assert.throws(
    () => parseReportData('{"run":{"id":"a","name":"b"},"trees":{}}', "r.json"),
    /'trees' must be a list/,
  );
  assert.throws(
    () => parseReportData('{"format":"v0","run":{"id":"a","name":"b"}}', "r.json"),
    /format is "v0"/,
  );
});
