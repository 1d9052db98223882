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
import type { Sample } from "./samples.ts";
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
.run-cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:12px;margin:6px 0 12px}
.run-card{border:1px solid var(--bd);border-radius:6px;padding:10px 14px;background:#fff;min-width:0}
.run-title{display:flex;flex-wrap:wrap;gap:4px 14px;align-items:baseline}.run-name{font-size:16px;font-weight:700}
.desc{margin:6px 0;max-width:90ch}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:8px 0 0}
dl.facts dt{color:var(--mut);font-weight:600}dl.facts dd{margin:0;min-width:0}
pre.policy{margin:0;white-space:pre-wrap;word-break:break-word;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
ul.plugins{margin:0;padding-left:18px}
table.settings td{max-width:60ch;word-break:break-word}
.settings-grid{display:flex;flex-wrap:wrap;gap:0 14px;align-items:flex-start}
#sample-view pre.question{max-height:9em}
details.defaults{margin:4px 0 12px}details.defaults summary{cursor:pointer;color:var(--acc)}
.toolbar{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;margin:8px 0;padding:6px 8px;background:var(--bg2);border-radius:5px;font-size:13px}
.toolbar input[type=search]{min-width:240px;padding:3px 6px}
#sample-browser{display:grid;grid-template-columns:minmax(260px,380px) 1fr;gap:14px;align-items:start}
#sample-list{display:flex;flex-direction:column;gap:4px;max-height:85vh;overflow:auto}
#sample-view{min-width:0}
.s-ok{color:#087a4a}.s-bad{color:#b3261e}
pre.cell{margin:0;white-space:pre-wrap;word-break:break-word;max-width:50ch;max-height:8em;overflow:auto;font:11px/1.35 ui-monospace,Menlo,Consolas,monospace}
.part{border-left:4px solid var(--acc);padding:2px 0 2px 8px;margin:6px 0}
.part-result{border-color:#E69F00;background:repeating-linear-gradient(135deg,#fff8e6,#fff8e6 6px,#fff3d6 6px,#fff3d6 12px)}
.tokens{font:12px/1.9 ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-word}
.tok{border-radius:2px;padding:0 1px;margin-right:1px}
.legend-bar{display:inline-block;width:160px;height:10px;vertical-align:middle;border:1px solid var(--bd)}
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

/** `init: {"layers":2,…}` → `init: {layers: 2, …}` (YAML flow style, as a manifest writes it). */
function policyText(line: string | undefined): string {
  if (!line) return "–";
  const flow = (v: unknown): string =>
    Array.isArray(v)
      ? `[${v.map(flow).join(", ")}]`
      : v && typeof v === "object"
      ? `{${Object.entries(v).map(([k, x]) => `${k}: ${flow(x)}`).join(", ")}}`
      : String(v);
  return line.split("; ").map((part) => {
    const m = /^([\w-]+): (\{.*\}|\[.*\])$/.exec(part);
    if (!m) return part;
    try {
      return `${m[1]}: ${flow(JSON.parse(m[2]))}`;
    } catch {
      return part; // cut at 240 characters: not JSON any more
    }
  }).join("\n");
}

/**
 * One card per run: name, id, status, wall time; the description as a paragraph; seed, policy
 * (wrapped, one setting a line) and plugins (one a line). Several runs' cards sit side by side.
 */
function runsTable(runs: ReportData[]): string {
  const cards = runs.map((d) => {
    const m = d.run.manifest;
    const st = d.run.status ?? "";
    const policy = policyText(m?.policy);
    const plugins = (m?.plugins ?? []).map((p) =>
      `<li><b>${esc(p.name)}</b> <code>${esc(p.use)}</code>` +
      (p.digest ? ` <span class="mut">${esc(p.digest.slice(0, 12))}</span>` : "") + `</li>`
    ).join("");
    return `<div class="run-card">` +
      `<div class="run-title"><span class="run-name">${esc(d.run.name)}</span>` +
      `<code>${esc(d.run.id.slice(0, 16))}</code>` +
      `<span class="status-${esc(st)}">${esc(st || "–")}</span>` +
      `<span class="mut">${esc(fmtMs(d.run.wallMs))}</span></div>` +
      (d.run.description ? `<p class="desc">${esc(d.run.description)}</p>` : "") +
      (d.run.error ? `<p class="desc status-failed">${esc(d.run.error)}</p>` : "") +
      `<dl class="facts"><dt>seed</dt><dd>${esc(m?.seed ?? "–")}</dd>` +
      `<dt>policy</dt><dd><pre class="policy">${esc(policy)}</pre></dd>` +
      `<dt>plugins</dt><dd>${plugins ? `<ul class="plugins">${plugins}</ul>` : "–"}</dd></dl>` +
      `</div>`;
  });
  return `<div class="run-cards" id="runs-table">${cards.join("")}</div>`;
}

/**
 * The stages' settings that differ from their kind's defaults (what the manifest chose), then,
 * folded, the ones at their defaults.
 */
function settingsTable(runs: ReportData[]): string {
  const multi = runs.length > 1;
  const all = runs.flatMap((d) => {
    const folded = new Set(d.run.manifest?.defaulted ?? []);
    return Object.entries(d.run.manifest?.settings ?? {}).map(([k, v]) => ({
      d,
      k,
      v,
      dflt: folded.has(k),
    }));
  });
  if (!all.length) return "";
  const rows = (list: typeof all) =>
    list.map(({ d, k, v }) =>
      (multi ? [esc(runLabel(d, runs))] : []).concat([
        `<code>${esc(k)}</code>`,
        `<code>${esc(typeof v === "string" ? v : JSON.stringify(v))}</code>`,
      ])
    );
  const head = multi ? ["run", "setting", "value"] : ["setting", "value"];
  const chosen = all.filter((x) => !x.dflt), folded = all.filter((x) => x.dflt);
  const known = runs.some((d) => d.run.manifest?.defaulted !== undefined);
  // One run: a small table per stage, side by side; several runs: one table with a run column.
  const stageOf = (k: string) => k.slice(0, Math.max(0, k.indexOf(".")));
  const grouped = multi ? [] : [...new Set(chosen.map((x) => stageOf(x.k)))];
  let html = `\n<h3>Settings${known ? " (those that differ from the defaults)" : ""}</h3>\n` +
    (!chosen.length
      ? `<div class="note" id="settings-table">every stage option is at its default</div>`
      : multi
      ? table(head, rows(chosen), { id: "settings-table", cls: "settings" })
      : `<div class="settings-grid" id="settings-table">` + grouped.map((st) =>
        table(
          [esc(st), "value"],
          chosen.filter((x) => stageOf(x.k) === st).map(({ k, v }) => [
            `<code>${esc(k.slice(st.length + 1))}</code>`,
            `<code>${esc(typeof v === "string" ? v : JSON.stringify(v))}</code>`,
          ]),
          { cls: "settings" },
        )
      ).join("") + `</div>`);
  if (folded.length) {
    html +=
      `\n<details class="defaults"><summary>${folded.length} setting${
        folded.length === 1 ? "" : "s"
      } at their defaults</summary>\n` +
      table(head, rows(folded), { id: "defaults-table", cls: "settings" }) + `</details>`;
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

/** Samples of every run, labelled with their run when comparing. */
function browserSamples(runs: ReportData[]): (Sample & { run: string })[] {
  return runs.flatMap((d) =>
    (d.samples ?? []).map((x) => ({ ...x, run: runLabel(d, runs) || d.run.name }))
  );
}

/** Every failed tool call once (a call on a shared prefix belongs to several trajectories). */
function toolErrorTable(runs: ReportData[]): string {
  const rows: string[][] = [];
  const seen = new Set<string>();
  const byTool = new Map<string, { errors: number; timeouts: number }>();
  let total = 0, timeouts = 0;
  runs.forEach((d, ri) => {
    for (const x of d.samples ?? []) {
      x.parts.forEach((p) => {
        const c = p.call;
        if (!c || !(c.error || c.timedOut)) return;
        const key = `${ri}|${x.stage}|${x.step ?? ""}|${x.taskId}|${c.id}`;
        if (seen.has(key)) return;
        seen.add(key);
        total++;
        if (c.timedOut) timeouts++;
        const t = byTool.get(c.tool) ?? { errors: 0, timeouts: 0 };
        if (c.timedOut) t.timeouts++;
        else t.errors++;
        byTool.set(c.tool, t);
        if (rows.length >= 300) return;
        rows.push(
          (runs.length > 1 ? [esc(runLabel(d, runs))] : []).concat([
            esc(x.stage),
            esc(x.step ?? "–"),
            `<code>${esc(x.taskId)}</code>`,
            `#${esc(x.trajectory)}`,
            esc(c.tool),
            c.timedOut
              ? `<span class="flag err">timeout</span>`
              : `<span class="flag err">error</span>`,
            `<pre class="cell">${esc(c.input.slice(0, 300))}</pre>`,
            `<pre class="cell">${esc(p.text.slice(0, 300))}</pre>`,
          ]),
        );
      });
    }
  });
  if (!total) return "";
  const tools = [...byTool].sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) =>
      `${esc(k)}: ${v.errors} error${v.errors === 1 ? "" : "s"}, ${v.timeouts} timeout${
        v.timeouts === 1 ? "" : "s"
      }`
    )
    .join("; ");
  return `<div class="note">${total} failed tool call${
    total === 1 ? "" : "s"
  } (${timeouts} timed out)` +
    ` — ${tools}${rows.length < total ? `; the first ${rows.length} are listed` : ""}.</div>\n` +
    table(
      (runs.length > 1 ? ["run"] : []).concat(
        ["stage", "step", "task", "trajectory", "tool", "failure", "input", "output"],
      ),
      rows,
      { id: "tool-error-table" },
    );
}

/** The sample browser's controls and panes; the page script fills them from arpo-samples. */
function sampleBrowser(runs: ReportData[], samples: Sample[]): string {
  if (!samples.length) return "";
  const stages = [...new Set(samples.map((x) => x.stage))];
  const left = runs.reduce(
    (n, d) => n + Object.values(d.samplesLeftOut ?? {}).reduce((a, b) => a + b, 0),
    0,
  );
  const judged = samples.filter((x) => x.correct !== null).length;
  const option = (v: string, label: string) => `<option value="${esc(v)}">${esc(label)}</option>`;
  return `<div class="note">${samples.length} trajector${samples.length === 1 ? "y" : "ies"}` +
    (left ? ` (${left} more left out of this page; \`arpo samples\` lists them)` : "") +
    `; ${judged} judged by the benchmark (eval stages). Search matches the question, answers, ` +
    `generated text and tool calls.</div>\n` +
    `<div id="sample-tools" class="toolbar">` +
    `<input id="sample-search" type="search" placeholder="search…" aria-label="search samples">` +
    `<select id="sample-stage" aria-label="stage">${option("", "all stages")}${
      stages.map((x) => option(x, x)).join("")
    }</select>` +
    `<select id="sample-where" aria-label="filter">${option("", "all samples")}${
      option("correct", "correct")
    }${option("wrong", "wrong")}${option("tool_error", "tool error")}${
      option("timeout", "timeout")
    }</select>` +
    `<select id="sample-sort" aria-label="sort">${option("", "rollout order")}${
      option("reward", "reward, high first")
    }${option("-reward", "reward, low first")}${option("entropy", "mean entropy, high first")}${
      option("length", "length, long first")
    }</select>` +
    `<span id="sample-count" class="mut"></span></div>\n` +
    `<div id="sample-browser"><div id="sample-list"></div><div id="sample-view"></div></div>`;
}

/** Smoothing, x axis and log scale for the training curves (the page script applies them). */
const TRAINING_CONTROLS = `<div id="plot-controls" class="toolbar">` +
  `<label>smoothing <input id="ctl-smooth" type="range" min="0" max="0.95" step="0.05" value="0">` +
  ` <span id="ctl-smooth-v">0</span></label>` +
  `<label>x axis <select id="ctl-x"><option value="step">step</option>` +
  `<option value="progress">fraction of the stage's steps</option>` +
  `<option value="minutes">wall time (min)</option></select></label>` +
  `<label><input id="ctl-log" type="checkbox"> log y</label>` +
  `<span class="note">smoothing: exponential moving average (weight as shown), raw values stay ` +
  `as a faint line</span></div>`;

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
  const samples = browserSamples(runs);
  const hasTraining = specs.some((x) => x.training);
  const sections = [
    ...head,
    section("stages", "Stages", stageTables(runs)),
    section(
      "training",
      "Training",
      trainingTable(runs) + (hasTraining ? TRAINING_CONTROLS : "") + plotBoxes(specs, "training"),
    ),
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
    section("samples", "Samples", sampleBrowser(runs, samples)),
    section("tool-errors", "Tool errors and timeouts", toolErrorTable(runs)),
    section(
      "rollouts",
      "Rollout trees",
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
<script type="application/json" id="arpo-samples">${jsonForScript(samples)}</script>
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
