/**
 * ReportData → one self-contained HTML file (no network: uPlot, its CSS, the data and the page
 * script are all inline). Tables are rendered here with escaped text; plots and the rollout
 * browser are drawn by the page script from embedded JSON. The output bytes depend only on the
 * data (no timestamps, no randomness, fixed number formatting).
 */
import { createRequire } from "node:module";
import { fileURLToPath as fromFileUrl } from "node:url";
import uPlot from "uplot";
import { ArpoError } from "../errors.ts";
import { CLIENT_JS, SWEEP_CLIENT_JS } from "./client.ts";
import type { EntropyCurve, ReportData, ReportTree, StepMetrics, SweepInfo } from "./data.ts";
import { esc, fmt, fmtMetric, fmtMs, jsonForScript, num, table } from "./html.ts";
import {
  buildPlots,
  buildSweepPlots,
  type PlotSection,
  type PlotSpec,
  runLabel,
  SWEEP_BAND_NOTE,
} from "./plots.ts";

export interface RenderOptions {
  /** Trees per run in the rollout browser (default 40); the rest are left out, and said so. */
  maxTrees?: number;
}

let assets: { js: string; css: string } | undefined;

/**
 * uPlot's minified browser build and stylesheet, read from the installed npm package (pinned in
 * deno.json). The static import below keeps the package in the module graph, so Deno installs it
 * with everything else; uPlot is safe to import outside a browser.
 */
function uplotAssets(): { js: string; css: string } {
  if (assets) return assets;
  void uPlot;
  let js: string, css: string;
  try {
    const main = import.meta.resolve("uplot");
    const dist = main.startsWith("file:")
      ? (f: string) => fromFileUrl(new URL(f, main))
      : (f: string) => createRequire(import.meta.url).resolve(`uplot/dist/${f}`);
    js = Deno.readTextFileSync(dist("uPlot.iife.min.js"));
    css = Deno.readTextFileSync(dist("uPlot.min.css"));
  } catch (e) {
    throw new ArpoError(
      `the report needs the npm package 'uplot' (deno.json imports) in node_modules, and it ` +
        `could not be read (${(e as Error).message}); run 'deno install' in the project directory`,
    );
  }
  // Inline <script> content must not contain a closing tag; uPlot's build has none, keep it so.
  js = js.replace(/<\/(script)/gi, "<\\/$1");
  assets = { js, css };
  return assets;
}

const CSS = `
:root{--fg:#1b1f24;--mut:#5b6570;--bd:#d7dce1;--bg2:#f5f7f9;--acc:#0072B2}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);margin:0;padding:0 24px 48px;max-width:1500px}
header{padding:18px 0 8px;border-bottom:2px solid var(--acc);margin-bottom:12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--bd);padding-bottom:4px}
h3{font-size:15px;margin:14px 0 6px}
.mut{color:var(--mut)}
nav a{margin-right:14px;color:var(--acc);text-decoration:none}
.tbl{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
.tbl th,.tbl td{border:1px solid var(--bd);padding:3px 8px;text-align:left;vertical-align:top}
.tbl th{background:var(--bg2);font-weight:600}
.tbl td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,Menlo,Consolas,monospace}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:16px}
.plot-box{border:1px solid var(--bd);border-radius:6px;padding:8px;background:#fff;min-width:0}
.plot-box h3{margin:0 0 6px;font-size:14px}
.plot{min-height:280px}
.note{font-size:12px;color:var(--mut)}
.status-complete,.status-done,.status-reused{color:#087a4a}.status-failed{color:#b3261e}
.status-interrupted,.status-running{color:#a15c00}
#browser{display:grid;grid-template-columns:minmax(220px,320px) 1fr;gap:14px;align-items:start}
#tree-list{display:flex;flex-direction:column;gap:4px;max-height:80vh;overflow:auto}
button.q{all:unset;cursor:pointer;border:1px solid var(--bd);border-radius:5px;padding:5px 8px;background:#fff;display:block}
button.q:hover{border-color:var(--acc)}button.q.on{border-color:var(--acc);background:#e8f2fa}
.q-id{font-weight:600;display:block}.q-meta{font-size:11px;color:var(--mut);display:block}
.q-text{font-size:12px;display:block;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
#tree-view{min-width:0}
pre.txt{white-space:pre-wrap;word-break:break-word;margin:4px 0;padding:6px 8px;background:var(--bg2);border-radius:4px;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;max-height:360px;overflow:auto}
pre.question{background:#fff8e6}
.seg{border-left:4px solid #9aa5b1;padding:2px 0 2px 8px;margin:6px 0}
.seg-gen{border-color:var(--acc)}.seg-result{border-color:#E69F00}.seg-eos{border-color:#7f7f7f}
.seg-head,.call,.fork{font-size:12px;display:flex;flex-wrap:wrap;gap:4px 12px;align-items:center}
.tag{font-weight:700;text-transform:uppercase;font-size:11px;letter-spacing:.04em}
.kv b{color:var(--mut);font-weight:600}
.lbl{font-size:11px;color:var(--mut);margin-top:2px}
.flag{font-size:11px;border:1px solid var(--bd);border-radius:3px;padding:0 4px}.flag.err{color:#b3261e;border-color:#b3261e}
.fork{margin:4px 0;padding:4px 8px;border:1px dashed #7f7f7f;border-radius:4px}
.fork-branch{border-color:#009E73;background:#eefaf5}.fork-budget{border-color:#E69F00}
.branches{display:flex;flex-direction:column;gap:6px;margin:6px 0 6px 10px}
.branch{border:1px solid var(--bd);border-radius:5px;padding:4px 8px}
.branch-label{font-size:12px;font-weight:600;color:#087a4a}
.traj td{font-size:12px}
.tree-head{display:flex;flex-wrap:wrap;gap:4px 16px;align-items:baseline}.tree-head h3{margin:6px 16px 6px 0}
`;

function sectionId(s: PlotSection): string {
  return `plots-${s}`;
}

function plotBoxes(specs: PlotSpec[], section: PlotSection): string {
  const mine = specs.filter((s) => s.section === section);
  if (mine.length === 0) return "";
  return `<div class="plots" id="${sectionId(section)}">\n` +
    mine.map((s) =>
      `<div class="plot-box"><h3>${esc(s.title)}</h3>` +
      `<div class="plot" id="plot-${esc(s.id)}" data-plot="${esc(s.id)}"></div>` +
      (s.note ? `<div class="note">${esc(s.note)}</div>` : "") + `</div>`
    ).join("\n") + `\n</div>`;
}

function n(x: unknown): string {
  return `<span class="n">${esc(fmt(x))}</span>`;
}

function runHeader(runs: ReportData[]): string {
  return runsTable(runs) + settingsTable(runs);
}

function runsTable(runs: ReportData[]): string {
  const rows = runs.map((d) => {
    const m = d.run.manifest;
    const st = d.run.status ?? "";
    return [
      `<code>${esc(d.run.id.slice(0, 16))}</code>`,
      esc(d.run.name) +
      (d.run.description ? `<div class="mut">${esc(d.run.description)}</div>` : ""),
      `<span class="status-${esc(st)}">${esc(st || "–")}</span>` +
      (d.run.error ? `<div class="mut">${esc(d.run.error)}</div>` : ""),
      esc(m?.seed ?? "–"),
      esc(m?.policy ?? "–"),
      esc((m?.plugins ?? []).map((p) => `${p.name} (${p.use})`).join(", ") || "–"),
      esc(fmtMs(d.run.wallMs)),
    ];
  });
  return table(
    ["run", "name", "status", "seed", "policy", "plugins", "wall time"],
    rows,
    { id: "runs-table" },
  );
}

function settingsTable(runs: ReportData[]): string {
  let html = "";
  const settings = runs.flatMap((d) =>
    Object.entries(d.run.manifest?.settings ?? {}).map(([k, v]) => [d, k, v] as const)
  );
  if (settings.length) {
    html += `\n<h3>Settings</h3>\n` + table(
      runs.length > 1 ? ["run", "setting", "value"] : ["setting", "value"],
      settings.map(([d, k, v]) =>
        (runs.length > 1 ? [esc(runLabel(d, runs))] : []).concat([
          `<code>${esc(k)}</code>`,
          esc(typeof v === "string" ? v : JSON.stringify(v)),
        ])
      ),
      { id: "settings-table" },
    );
  }
  return html;
}

function stageTables(runs: ReportData[]): string {
  const multi = runs.length > 1;
  const rows: string[][] = [];
  for (const d of runs) {
    for (const s of d.stages ?? []) {
      const metrics = Object.entries(s.metrics ?? {})
        .map(([k, v]) => `${esc(k)}=${esc(fmtMetric(v))}`).join(", ");
      rows.push(
        (multi ? [esc(runLabel(d, runs))] : []).concat([
          esc(s.name),
          esc(s.kind),
          `<code>${esc((s.key ?? "").slice(0, 12) || "–")}</code>`,
          `<span class="status-${esc(s.status ?? "")}">${esc(s.status ?? "–")}</span>`,
          esc(fmtMs(s.wallMs)),
          metrics || "–",
        ]),
      );
    }
  }
  if (!rows.length) return "";
  return table(
    (multi ? ["run"] : []).concat([
      "stage",
      "kind",
      "key",
      "status",
      "wall time",
      "headline metrics",
    ]),
    rows,
    { id: "stages-table" },
  );
}

function meanOf(steps: StepMetrics[], get: (s: StepMetrics) => unknown): number | null {
  const v = steps.map(get).map(num).filter((x): x is number => x !== null);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}

function lastOf(steps: StepMetrics[], get: (s: StepMetrics) => unknown): number | null {
  for (let i = steps.length - 1; i >= 0; i--) {
    const v = num(get(steps[i]));
    if (v !== null) return v;
  }
  return null;
}

function sumOf(steps: StepMetrics[], get: (s: StepMetrics) => unknown): number | null {
  const v = steps.map(get).map(num).filter((x): x is number => x !== null);
  return v.length ? v.reduce((a, b) => a + b, 0) : null;
}

function trainingTable(runs: ReportData[]): string {
  const rows: string[][] = [];
  for (const d of runs) {
    for (const t of d.training ?? []) {
      const steps = [...(t.steps ?? [])].sort((a, b) => a.step - b.step);
      const first = steps.length ? num(steps[0].reward) : null;
      rows.push([
        esc(runLabel(d, runs) || d.run.name),
        esc(t.stage),
        esc(t.algorithm ?? "–"),
        n(steps.length),
        n(first),
        n(lastOf(steps, (s) => s.reward)),
        n(lastOf(steps, (s) => s.accuracy)),
        n(meanOf(steps, (s) => s.toolCallsPerTrajectory)),
        n(meanOf(steps, (s) => s.branchesPerQuestion)),
        n(meanOf(steps, (s) => s.responseLength)),
        esc(fmtMs(sumOf(steps, (s) => s.time?.generationMs))),
        esc(fmtMs(sumOf(steps, (s) => s.time?.toolsMs))),
        esc(fmtMs(sumOf(steps, (s) => s.time?.trainingMs))),
      ]);
    }
  }
  if (!rows.length) return "";
  return table(
    [
      "run",
      "stage",
      "algorithm",
      "steps",
      "reward (first)",
      "reward (last)",
      "accuracy (last)",
      "tool calls / traj (mean)",
      "branches / question (mean)",
      "response length (mean)",
      "generation",
      "tools",
      "training",
    ],
    rows,
    { id: "training-table" },
  );
}

function evalTable(runs: ReportData[]): string {
  // Rows grouped by benchmark, runs side by side within a group.
  const byBench = new Map<string, string[][]>();
  let kLabel = "pass@k";
  const ks = new Set<number>();
  for (const d of runs) {
    for (const e of d.evals ?? []) {
      for (const b of e.benchmarks ?? []) {
        if (b.passK && num(b.passK.k) !== null) ks.add(b.passK.k);
      }
    }
  }
  if (ks.size === 1) kLabel = `pass@${[...ks][0]}`;
  for (const d of runs) {
    for (const e of d.evals ?? []) {
      for (const b of e.benchmarks ?? []) {
        const key = b.benchmark + (b.split ? ` (${b.split})` : "");
        if (!byBench.has(key)) byBench.set(key, []);
        const extra = Object.entries(b.metrics ?? {})
          .map(([k, v]) => `${esc(k)}=${esc(fmtMetric(v))}`).join(", ");
        const tools = Object.entries(b.toolCallsByTool ?? {}).sort(([a], [c]) => a < c ? -1 : 1)
          .map(([k, v]) => `${esc(k)} ${esc(fmt(v))}`).join(", ");
        byBench.get(key)!.push([
          esc(key),
          esc(runLabel(d, runs) || d.run.name),
          esc(e.label ?? e.stage),
          n(b.questions),
          n(b.samples),
          `<span class="n">${esc(fmtMetric(b.accuracy))}</span>`,
          `<span class="n">${esc(fmtMetric(b.pass1))}</span>`,
          b.passK
            ? `<span class="n">${esc(fmtMetric(b.passK.value))}</span>` +
              (ks.size > 1 ? ` <span class="mut">k=${esc(b.passK.k)}</span>` : "")
            : "–",
          `<span class="n">${esc(fmtMetric(b.reward))}</span>`,
          n(b.toolCallsPerTrajectory) + (tools ? ` <span class="mut">(${tools})</span>` : ""),
          n(b.responseLength),
          extra || "–",
        ]);
      }
    }
  }
  if (!byBench.size) return "";
  const ci = runs.flatMap((d) => d.evals ?? []).flatMap((e) => e.benchmarks ?? [])
    .map((b) => (typeof b.accuracy === "object" ? b.accuracy?.confidence : undefined))
    .find((c) => num(c) !== null);
  return table(
    [
      "benchmark",
      "run",
      "stage",
      "questions",
      "samples",
      "accuracy",
      "pass@1",
      esc(kLabel),
      "reward",
      "tool calls / traj",
      "response length",
      "other",
    ],
    [...byBench.values()].flat(),
    { id: "eval-table" },
  ) +
    (ci !== undefined
      ? `<div class="note">[lo, hi]: ${
        esc(Math.round(ci * 100))
      }% bootstrap confidence intervals</div>`
      : "");
}

/** Mean entropy over distance bins, weighted by token counts when known. */
function binMean(c: EntropyCurve | undefined, lo: number, hi: number): number | null {
  if (!c || !Array.isArray(c.mean)) return null;
  let s = 0, w = 0;
  for (let i = lo; i < Math.min(hi, c.mean.length); i++) {
    const m = num(c.mean[i]);
    const k = c.count ? num(c.count[i]) ?? 0 : 1;
    if (m === null || k <= 0) continue;
    s += m * k;
    w += k;
  }
  return w > 0 ? s / w : null;
}

const BINS: [number, number][] = [[0, 10], [10, 50], [50, 200], [200, Infinity]];

function entropyTable(runs: ReportData[]): string {
  const rows: string[][] = [];
  for (const d of runs) {
    for (const e of d.entropy ?? []) {
      for (
        const [which, c] of [["after tool result", e.fromResult], [
          "from start",
          e.fromStart,
        ]] as const
      ) {
        if (!c) continue;
        rows.push(
          [esc(runLabel(d, runs) || d.run.name), esc(e.label ?? e.stage), esc(which)]
            .concat(BINS.map(([lo, hi]) => n(binMean(c, lo, hi)))),
        );
      }
    }
  }
  if (!rows.length) return "";
  return table(
    ["run", "stage", "anchor"].concat(
      BINS.map(([lo, hi]) => `tokens ${lo}–${hi === Infinity ? "" : hi - 1}`),
    ),
    rows,
    { id: "entropy-table" },
  );
}

function forkTable(runs: ReportData[]): string {
  const rows: string[][] = [];
  for (const d of runs) {
    for (const f of d.forks ?? []) {
      const pts = f.points ?? [];
      const count = (k: string) => pts.filter((p) => p.decision === k).length;
      const dh = pts.map((p) => num(p.deltaH)).filter((x): x is number => x !== null);
      rows.push([
        esc(runLabel(d, runs) || d.run.name),
        esc(f.label ?? f.stage),
        n(pts.length),
        n(count("branch")),
        n(count("no_branch")),
        n(count("budget")),
        n(count("off")),
        n(dh.length ? dh.reduce((a, b) => a + b, 0) / dh.length : null),
      ]);
    }
  }
  if (!rows.length) return "";
  return table(
    ["run", "stage", "decisions", "branch", "no branch", "budget", "off (grpo)", "mean ΔH"],
    rows,
    { id: "fork-table" },
  );
}

interface BrowserTree extends ReportTree {
  run: string;
}

function browserTrees(
  runs: ReportData[],
  maxTrees: number,
): { trees: BrowserTree[]; left: number } {
  const trees: BrowserTree[] = [];
  let left = 0;
  for (const d of runs) {
    const mine = d.trees ?? [];
    left += Math.max(0, mine.length - maxTrees);
    for (const t of mine.slice(0, maxTrees)) {
      trees.push({
        ...t,
        run: runLabel(d, runs) || d.run.name,
        question: String(t.question ?? ""),
        segments: t.segments ?? [],
        toolCalls: t.toolCalls ?? [],
        forks: t.forks ?? [],
        trajectories: t.trajectories ?? [],
      });
    }
  }
  return { trees, left };
}

function section(id: string, title: string, body: string): string {
  return body ? `<section id="${esc(id)}">\n<h2>${esc(title)}</h2>\n${body}\n</section>` : "";
}

/** Render one run, or several overlaid for comparison, as a self-contained HTML page. */
export function renderReport(data: ReportData | ReportData[], opts: RenderOptions = {}): string {
  const runs = Array.isArray(data) ? data : [data];
  checkRuns(runs);
  const specs = buildPlots(runs);
  const title = runs.length === 1
    ? `arpo report — ${runs[0].run.name} (${runs[0].run.id.slice(0, 12)})`
    : `arpo comparison — ${runs.map((d) => d.run.name).join(" vs ")}`;
  const head = section("overview", runs.length === 1 ? "Run" : "Runs", runHeader(runs));
  return page(title, [head], runs, specs, opts, CLIENT_JS);
}

function checkRuns(runs: ReportData[]): void {
  if (runs.length === 0) throw new ArpoError("report: no runs to render");
  runs.forEach((d, i) => {
    if (!d || typeof d.run?.id !== "string" || typeof d.run?.name !== "string") {
      throw new ArpoError(
        `report: run ${i + 1} has no run.id / run.name (expected strings in the ReportData)`,
      );
    }
  });
}

/** The page: the given head sections, then stages, training, evaluation, entropy, forks, trees. */
function page(
  title: string,
  head: string[],
  runs: ReportData[],
  specs: PlotSpec[],
  opts: RenderOptions,
  client: string,
): string {
  const { js, css } = uplotAssets();
  const { trees, left } = browserTrees(runs, opts.maxTrees ?? 40);
  const sections = [
    ...head,
    section("stages", "Stages", stageTables(runs)),
    section("training", "Training", trainingTable(runs) + plotBoxes(specs, "training")),
    section("evaluation", "Evaluation", evalTable(runs)),
    section(
      "entropy",
      "Entropy after tool calls",
      entropyTable(runs) + plotBoxes(specs, "entropy"),
    ),
    section(
      "forks",
      "Branch decisions at tool calls",
      forkTable(runs) + plotBoxes(specs, "forks") + plotBoxes(specs, "branching"),
    ),
    section(
      "rollouts",
      "Rollout browser",
      trees.length
        ? `<div class="note">${trees.length} rollout tree${trees.length === 1 ? "" : "s"}` +
          (left ? `; ${left} more left out of this page` : "") +
          `. Pick a question to see its tree.</div>\n` +
          `<div id="browser"><div id="tree-list"></div><div id="tree-view"></div></div>`
        : "",
    ),
  ].filter(Boolean);
  const nav = sections.map((s) => {
    const m = /^<section id="([^"]+)">\n<h2>([^<]*)<\/h2>/.exec(s)!;
    return `<a href="#${m[1]}">${m[2]}</a>`;
  }).join("");

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="arpo-lab report">
<title>${esc(title)}</title>
<style>${css}</style>
<style>${CSS}</style>
</head>
<body>
<header><h1>${esc(title)}</h1><nav>${nav}</nav></header>
${sections.join("\n")}
<script type="application/json" id="arpo-plots">${jsonForScript(specs)}</script>
<script type="application/json" id="arpo-trees">${jsonForScript(trees)}</script>
<script>${js}</script>
<script>${client}</script>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------
// sweeps

function sweepTable(sw: SweepInfo): string {
  const st = sw.status ?? "";
  return table(
    ["sweep", "name", "status", "seeds", "runs complete"],
    [[
      `<code>${esc(sw.id.slice(0, 16))}</code>`,
      esc(sw.name) + (sw.description ? `<div class="mut">${esc(sw.description)}</div>` : ""),
      `<span class="status-${esc(st)}">${esc(st || "–")}</span>`,
      esc(sw.seeds.join(", ")),
      n(sw.runs.filter((r) => r.status === "complete").length),
    ]],
    { id: "sweep-table" },
  );
}

/** Mean, interval, IQM and every seed's value of each stage metric. */
function aggregateTable(sw: SweepInfo): string {
  const agg = sw.aggregate;
  if (!agg || !agg.stages.length) return "";
  const pct = `${esc(Math.round(agg.confidence * 100))}%`;
  const rows: string[][] = [];
  for (const st of agg.stages) {
    for (const m of st.metrics) {
      rows.push([
        esc(st.stage),
        esc(m.metric),
        n(m.mean),
        `<span class="n">[${esc(fmt(m.lo))}, ${esc(fmt(m.hi))}]</span>`,
        n(m.iqm),
        `<span class="n">[${esc(fmt(m.iqmLo))}, ${esc(fmt(m.iqmHi))}]</span>`,
        ...m.perSeed.map((v) => n(v)),
        esc(m.resampled === "seeds×questions" ? `seeds × questions (${fmt(m.scores)})` : "seeds"),
      ]);
    }
  }
  return table(
    [
      "stage",
      "metric",
      "mean",
      `${pct} CI`,
      "IQM",
      `IQM ${pct} CI`,
      ...agg.seeds.map((s) => `seed ${esc(s)}`),
      "resampled",
    ],
    rows,
    { id: "aggregate-table" },
  ) +
    `<div class="note">${esc(agg.method)}; ${esc(agg.resamples)} resamples. Plots: ${
      esc(SWEEP_BAND_NOTE)
    }.</div>`;
}

/**
 * Render a sweep (`runs`: the ReportData of each seed's complete run, in seed order) as one page:
 * the sweep and its runs, the aggregate over seeds, then every section with the seeds overlaid;
 * training curves show each seed, the mean and a min–max band.
 */
export function renderSweepReport(
  runs: ReportData[],
  sweep: SweepInfo,
  opts: RenderOptions = {},
): string {
  checkRuns(runs);
  const named = runs.map((d) => ({
    ...d,
    run: { ...d.run, name: `seed ${d.run.manifest?.seed ?? "?"}` },
  }));
  const specs = buildSweepPlots(named);
  const title = `arpo sweep — ${sweep.name} (${sweep.id.slice(0, 12)}, seeds ${
    sweep.seeds.join(", ")
  })`;
  const head = [
    section(
      "overview",
      "Sweep",
      sweepTable(sweep) + runsTable(named) + settingsTable(named.slice(0, 1)),
    ),
    section("seeds", "Over seeds", aggregateTable(sweep)),
  ];
  return page(title, head.filter(Boolean), named, specs, opts, SWEEP_CLIENT_JS);
}
