/**
 * Plot specifications built from ReportData, independent of any plotting library: the renderer
 * embeds them as JSON and the page's script hands each one to uPlot. Keeping this pure makes the
 * set of plots testable without a browser. Several runs overlay: each (run, stage) pair is one
 * colour, a metric's sub-series (tools, reward parts, decisions) differ by dash or colour.
 */
import type { ForkPoint, ReportData, StepMetrics } from "./data.ts";
import { num } from "./html.ts";

export type PlotKind = "line" | "scatter" | "bars";
export type PlotSection = "training" | "entropy" | "forks" | "branching";

export interface PlotSeries {
  label: string;
  color: string;
  dash?: number[];
  /** Line width in CSS pixels (default the page's, 1.75); sweep plots only. */
  width?: number;
  /** False: no point markers (band edges); sweep plots only. */
  points?: false;
  values: (number | null)[];
  /** Training curves: cumulative wall time (minutes) at each x, when the steps carry times. */
  minutes?: (number | null)[];
}

/** A filled band between two series of a plot (indices into `series`); sweep plots only. */
export interface PlotBand {
  upper: number;
  lower: number;
  fill: string;
}

export interface PlotSpec {
  id: string;
  section: PlotSection;
  title: string;
  kind: PlotKind;
  xLabel: string;
  yLabel: string;
  /** Ascending x values shared by all series (uPlot's aligned-data layout). */
  x: number[];
  series: PlotSeries[];
  /** Bands filled between two series (sweep plots: min–max over seeds). */
  bands?: PlotBand[];
  note?: string;
  /** x values are counts (steps, tokens, branches): ticks at whole numbers only. */
  xInteger?: boolean;
  /** y values are counts (questions): ticks at whole numbers only. */
  yInteger?: boolean;
  /** A training curve: the page's smoothing, x-axis and log-scale controls apply to it. */
  training?: boolean;
}

/** Colour-blind-safe palette (Okabe–Ito, then Tableau), cycled. */
const PALETTE = [
  "#0072B2",
  "#D55E00",
  "#009E73",
  "#CC79A7",
  "#E69F00",
  "#56B4E9",
  "#7f7f7f",
  "#bcbd22",
  "#8c564b",
  "#17becf",
];
const DASHES: (number[] | undefined)[] = [undefined, [6, 4], [2, 3], [10, 3, 2, 3], [1, 6]];
const DECISION_COLORS: Record<string, string> = {
  branch: "#009E73",
  no_branch: "#7f7f7f",
  budget: "#E69F00",
  off: "#56B4E9",
};

/** Upper bound on scatter points per plot; larger sets are thinned with a fixed stride. */
export const MAX_SCATTER_POINTS = 4000;

export function runLabel(data: ReportData, all: readonly ReportData[]): string {
  if (all.length === 1) return "";
  const name = data.run.name || "run";
  const same = all.filter((d) => (d.run.name || "run") === name).length > 1;
  return same ? `${name} (${data.run.id.slice(0, 8)})` : name;
}

function seriesLabel(run: string, stage: string, sub?: string): string {
  return [run, stage, sub].filter((s) => s).join(" · ");
}

/**
 * One colour per run when comparing runs (a run keeps its colour in every plot), else one per
 * stage; in order of first appearance.
 */
class Colors {
  private map = new Map<string, string>();
  constructor(private readonly byRun: boolean) {}
  get(runIdx: number, stage: string): string {
    const k = this.byRun ? String(runIdx) : stage;
    let c = this.map.get(k);
    if (!c) {
      c = PALETTE[this.map.size % PALETTE.length];
      this.map.set(k, c);
    }
    return c;
  }
}

interface RawSeries {
  label: string;
  color: string;
  dash?: number[];
  points: [number, number | null][];
  /** Step → cumulative minutes (training curves with step times). */
  minutes?: Map<number, number>;
}

/** Align series with different x values on their sorted union (missing → null). */
function align(raw: RawSeries[]): { x: number[]; series: PlotSeries[] } {
  const xs = new Set<number>();
  for (const r of raw) for (const [x] of r.points) xs.add(x);
  const x = [...xs].sort((a, b) => a - b);
  const at = new Map(x.map((v, i) => [v, i]));
  const series = raw.map((r) => {
    const values: (number | null)[] = new Array(x.length).fill(null);
    for (const [px, py] of r.points) values[at.get(px)!] = py;
    const s: PlotSeries = { label: r.label, color: r.color, values };
    if (r.dash) s.dash = r.dash;
    if (r.minutes) s.minutes = x.map((v) => r.minutes!.get(v) ?? null);
    return s;
  });
  return { x, series };
}

function hasValues(raw: RawSeries[]): boolean {
  return raw.some((r) => r.points.some(([, y]) => y !== null));
}

/** Training metric curves: the scalar ones, then those with sub-series. */
const SCALAR_CURVES: { id: string; title: string; y: string; get: (s: StepMetrics) => unknown }[] =
  [
    { id: "reward", title: "Mean reward per step", y: "reward", get: (s) => s.reward },
    {
      id: "accuracy",
      title: "Evaluation accuracy during training (rl eval_every; step 0: before training)",
      y: "accuracy",
      get: (s) => s.accuracy,
    },
    {
      id: "branches",
      title: "Branches per question per step",
      y: "branches / question",
      get: (s) => s.branchesPerQuestion,
    },
    {
      id: "response_length",
      title: "Response length per step",
      y: "tokens",
      get: (s) => s.responseLength,
    },
    { id: "entropy_step", title: "Mean token entropy per step", y: "nats", get: (s) => s.entropy },
    { id: "loss", title: "Loss per step", y: "loss", get: (s) => s.loss },
    { id: "grad_norm", title: "Gradient norm per step", y: "‖g‖", get: (s) => s.gradNorm },
    {
      id: "clip_fraction",
      title: "Clip fraction per step",
      y: "fraction",
      get: (s) => s.clipFraction,
    },
    { id: "approx_kl", title: "Approximate KL per step", y: "KL", get: (s) => s.approxKl },
    {
      id: "tool_errors",
      title: "Tool errors per step",
      y: "errors",
      get: (s) => s.toolErrors,
    },
  ];

type ScalarCurve = (typeof SCALAR_CURVES)[number];

/** A training metric keyed by name (tool, reward part), with an optional overall series. */
interface KeyedCurve {
  id: string;
  title: string;
  y: string;
  total: ((s: StepMetrics) => unknown) | null;
  parts: (s: StepMetrics) => Record<string, unknown> | undefined;
}

const REWARD_PARTS: KeyedCurve = {
  id: "reward_parts",
  title: "Reward parts per step",
  y: "mean",
  total: null,
  parts: (s) => s.rewardParts,
};

const TOOL_CALLS: KeyedCurve = {
  id: "tool_calls",
  title: "Tool calls per trajectory per step",
  y: "calls / trajectory",
  total: (s) => s.toolCallsPerTrajectory,
  parts: (s) => s.toolCallsByTool,
};

const WALL_TIME: KeyedCurve = {
  id: "wall_time",
  title: "Wall time per step (generation / tools / training)",
  y: "ms",
  total: null,
  parts: (s) =>
    s.time
      ? {
        "1 generation": s.time.generationMs,
        "2 tools": s.time.toolsMs,
        "3 training": s.time.trainingMs,
      }
      : undefined,
};

/** One training stage of one run: its steps in step order, and how its series look. */
interface TrainingStage {
  run: string;
  stage: string;
  color: string;
  /** The stage's index in its run's `training`. */
  si: number;
  steps: StepMetrics[];
}

/**
 * Training curves. SFT (hundreds of steps) and RL (tens of steps) get separate plots: on one step
 * axis the RL curves would be squeezed against zero.
 */
function trainingPlots(
  runs: readonly ReportData[],
  colors: Colors,
  which: "rl" | "sft",
): PlotSpec[] {
  const stages = trainingStages(runs, colors, which);
  if (which === "sft") return sftPlots(stages);
  return rlPlots(stages, runs.length === 1);
}

/** The RL (or the SFT) training stages of every run, in order. */
function trainingStages(
  runs: readonly ReportData[],
  colors: Colors,
  which: "rl" | "sft",
): TrainingStage[] {
  const out: TrainingStage[] = [];
  runs.forEach((d, ri) => {
    (d.training ?? []).forEach((t, si) => {
      if ((t.algorithm === "sft") !== (which === "sft")) return;
      const steps = [...(t.steps ?? [])].filter((s) => num(s?.step) !== null)
        .sort((a, b) => a.step - b.step);
      out.push({
        run: runLabel(d, runs),
        stage: t.stage,
        color: colors.get(ri, t.stage),
        si,
        steps,
      });
    });
  });
  return out;
}

/** SFT: loss and gradient norm. */
function sftPlots(stages: TrainingStage[]): PlotSpec[] {
  return SCALAR_CURVES.filter((c) => c.id === "loss" || c.id === "grad_norm")
    .flatMap((c) => scalarPlot(stages, "sft", c));
}

/** RL: reward and its parts, accuracy, tool calls, the other scalar curves, then wall time. */
function rlPlots(stages: TrainingStage[], single: boolean): PlotSpec[] {
  const [reward, accuracy, ...rest] = SCALAR_CURVES;
  return [
    ...scalarPlot(stages, "rl", reward),
    ...keyedPlot(stages, "rl", REWARD_PARTS, single),
    ...scalarPlot(stages, "rl", accuracy),
    ...keyedPlot(stages, "rl", TOOL_CALLS, single),
    ...rest.flatMap((c) => scalarPlot(stages, "rl", c)),
    ...keyedPlot(stages, "rl", WALL_TIME, single),
  ];
}

/** A scalar metric: one series per stage. */
function scalarPlot(stages: TrainingStage[], which: "rl" | "sft", c: ScalarCurve): PlotSpec[] {
  const raw = stages.map(({ run, stage, color, steps }): RawSeries => ({
    label: seriesLabel(run, stage),
    color,
    points: steps.map((s) => [s.step, num(c.get(s))]),
    minutes: cumulativeMinutes(steps),
  }));
  return trainingPlot(which, c.id, c.title, c.y, raw);
}

/** Wall time up to the end of each step (minutes), when every step says how long it took. */
function cumulativeMinutes(steps: StepMetrics[]): Map<number, number> | undefined {
  const out = new Map<number, number>();
  let t = 0;
  for (const s of steps) {
    const ms = num(s.time?.totalMs) ??
      (s.time
        ? (num(s.time.generationMs) ?? 0) + (num(s.time.toolsMs) ?? 0) +
          (num(s.time.trainingMs) ?? 0)
        : null);
    if (ms === null || ms <= 0) return undefined;
    t += ms / 60000;
    out.set(s.step, t);
  }
  return out.size ? out : undefined;
}

/**
 * A keyed metric: one dash per key. Comparing runs (`single` false): colour = run, dash = key.
 * One run: colour = key, dash = stage.
 */
function keyedPlot(
  stages: TrainingStage[],
  which: "rl" | "sft",
  c: KeyedCurve,
  single: boolean,
): PlotSpec[] {
  const { total, parts } = c;
  const raw: RawSeries[] = [];
  for (const { run, stage, color, steps, si } of stages) {
    const style = (i: number): Pick<RawSeries, "color" | "dash"> => {
      const dash = DASHES[(single ? si : i) % DASHES.length];
      const hue = single ? PALETTE[i % PALETTE.length] : color;
      return dash ? { color: hue, dash } : { color: hue };
    };
    if (total) {
      raw.push({
        label: seriesLabel(run, stage, "all"),
        ...style(0),
        points: steps.map((s) => [s.step, num(total(s))]),
        minutes: cumulativeMinutes(steps),
      });
    }
    const keys = [...new Set(steps.flatMap((s) => Object.keys(parts(s) ?? {})))].sort();
    keys.forEach((k, i) => {
      raw.push({
        label: seriesLabel(run, stage, k),
        ...style(i + (total ? 1 : 0)),
        points: steps.map((s) => [s.step, num(parts(s)?.[k])]),
        minutes: cumulativeMinutes(steps),
      });
    });
  }
  return trainingPlot(which, c.id, c.title, c.y, raw);
}

/** The plot of a training metric, or none when no series has a value. */
function trainingPlot(
  which: "rl" | "sft",
  id: string,
  title: string,
  y: string,
  raw: RawSeries[],
): PlotSpec[] {
  if (!hasValues(raw)) return [];
  return [{
    id: which === "sft" ? `sft_${id}` : id,
    section: "training",
    title: which === "sft" ? `SFT: ${title}` : title,
    kind: "line",
    xLabel: "step",
    yLabel: y,
    ...align(raw),
    xInteger: true,
    training: true,
  }];
}

/**
 * Entropy vs distance, one plot per stage (several stages on one plot were 8 series at once):
 * after the last tool result (solid) and from the response start (dashed), one colour per run.
 */
function entropyPlots(runs: readonly ReportData[], colors: Colors): PlotSpec[] {
  const byStage = new Map<string, RawSeries[]>();
  runs.forEach((d, ri) => {
    for (const e of d.entropy ?? []) {
      const color = colors.get(ri, e.stage);
      const name = e.label ?? e.stage;
      if (!byStage.has(name)) byStage.set(name, []);
      const curve = (c: { mean?: number[]; count?: number[] } | undefined, sub: string) => {
        if (!c || !Array.isArray(c.mean)) return;
        byStage.get(name)!.push({
          label: seriesLabel(runLabel(d, runs), name, sub),
          color,
          ...(sub === "from response start" ? { dash: [6, 4] } : {}),
          // A distance with no tokens has no mean: a gap, not a zero.
          points: c.mean.map((m, i) => [i, c.count && !(c.count[i] > 0) ? null : num(m)]),
        });
      };
      curve(e.fromResult, "after last tool result");
      curve(e.fromStart, "from response start");
    }
  });
  const out: PlotSpec[] = [];
  for (const [name, raw] of byStage) {
    if (!hasValues(raw)) continue;
    out.push({
      id: out.length === 0 ? "entropy_distance" : `entropy_distance_${out.length + 1}`,
      section: "entropy",
      title: `${name}: token entropy vs distance from the last tool result (dashed: from the ` +
        "response start)",
      kind: "line",
      xLabel: "distance (tokens)",
      yLabel: "entropy (nats)",
      ...align(raw),
      xInteger: true,
    });
  }
  return out;
}

/** Deterministic thinning: every ceil(n/max)-th point, in the given order. */
function thin<T>(xs: readonly T[], max: number): T[] {
  if (xs.length <= max) return [...xs];
  const stride = Math.ceil(xs.length / max);
  return xs.filter((_, i) => i % stride === 0);
}

function forkPlots(runs: readonly ReportData[]): PlotSpec[] {
  // One scatter per run (runs would hide each other's points: P is a function of ΔH), each
  // decision a colour. Scatter as aligned data: every point gets its own x slot, ordered by ΔH.
  const out: PlotSpec[] = [];
  runs.forEach((d, ri) => {
    const raw: { label: string; color: string; pts: ForkPoint[] }[] = [];
    let total = 0, shown = 0;
    for (const f of d.forks ?? []) {
      const pts = (f.points ?? []).filter((p) => num(p?.deltaH) !== null && num(p?.p) !== null);
      total += pts.length;
      const byDecision = new Map<string, ForkPoint[]>();
      for (const p of thin(pts, MAX_SCATTER_POINTS)) {
        const k = String(p.decision);
        if (!byDecision.has(k)) byDecision.set(k, []);
        byDecision.get(k)!.push(p);
      }
      for (const k of [...byDecision.keys()].sort()) {
        shown += byDecision.get(k)!.length;
        raw.push({
          label: seriesLabel("", f.label ?? f.stage, k),
          color: DECISION_COLORS[k] ?? PALETTE[raw.length % PALETTE.length],
          pts: byDecision.get(k)!,
        });
      }
    }
    if (shown === 0) return;
    const all: { x: number; s: number; y: number }[] = [];
    raw.forEach((r, s) => r.pts.forEach((p) => all.push({ x: p.deltaH, s, y: p.p })));
    all.sort((a, b) => a.x - b.x || a.s - b.s || a.y - b.y);
    const series: PlotSeries[] = raw.map((r) => ({
      label: r.label,
      color: r.color,
      values: new Array(all.length).fill(null),
    }));
    all.forEach((a, i) => (series[a.s].values[i] = a.y));
    const who = runLabel(d, runs);
    const spec: PlotSpec = {
      id: ri === 0 ? "fork_scatter" : `fork_scatter_${ri + 1}`,
      section: "forks",
      title: "ΔH at tool calls vs branch probability P, by decision" + (who ? ` — ${who}` : ""),
      kind: "scatter",
      xLabel: "ΔH",
      yLabel: "P",
      x: all.map((a) => a.x),
      series,
    };
    if (shown < total) {
      spec.note = `${shown} of ${total} decisions shown (every k-th, fixed stride)`;
    }
    out.push(spec);
  });
  return out;
}

/** Histograms of branches per question, one per (run, stage): overlaid bars hid each other. */
function branchingPlots(runs: readonly ReportData[], colors: Colors): PlotSpec[] {
  const out: PlotSpec[] = [];
  runs.forEach((d, ri) => {
    for (const b of d.branching ?? []) {
      const counts = new Map<number, number>();
      for (const v of b.perQuestion ?? []) {
        const n = num(v);
        if (n !== null) counts.set(n, (counts.get(n) ?? 0) + 1);
      }
      if (counts.size === 0) continue;
      const max = Math.max(...counts.keys());
      const points: [number, number][] = [];
      // at least two bars' slots (0 … max + 1): uPlot cannot size bars on a single x
      for (let i = 0; i <= Math.max(max, 0) + 1; i++) points.push([i, counts.get(i) ?? 0]);
      const label = seriesLabel(runLabel(d, runs), b.label ?? b.stage);
      const raw = [{ label, color: colors.get(ri, b.stage), points }];
      if (!hasValues(raw)) continue;
      out.push({
        id: out.length === 0 ? "branches_per_question" : `branches_per_question_${out.length + 1}`,
        section: "branching",
        title: `Branches per question — ${label} (number of questions with n branches)`,
        kind: "bars",
        xLabel: "branches",
        yLabel: "questions",
        ...align(raw),
        xInteger: true,
        yInteger: true,
      });
    }
  });
  return out;
}

/** Every plot the data supports, in page order. */
export function buildPlots(runs: readonly ReportData[]): PlotSpec[] {
  const colors = new Colors(runs.length > 1);
  return [
    ...trainingPlots(runs, colors, "rl"),
    ...trainingPlots(runs, colors, "sft"),
    ...entropyPlots(runs, colors),
    ...forkPlots(runs),
    ...branchingPlots(runs, colors),
  ];
}

// ---------------------------------------------------------------------------------------------
// sweeps: one run per seed

/** What the band of a sweep plot spans, said under every such plot. */
export const SWEEP_BAND_NOTE =
  "thin lines: each seed; thick line: mean over seeds; band: min–max over seeds";

/** The steps of one training stage in every seed's run (runs in seed order). */
interface SweepStage {
  stage: string;
  color: string;
  /** Per run, its steps (empty when that run has no such stage). */
  perRun: StepMetrics[][];
}

function sweepStages(runs: readonly ReportData[], which: "rl" | "sft"): SweepStage[] {
  const colors = new Colors(false);
  const out: SweepStage[] = [];
  runs.forEach((d, ri) => {
    for (const t of d.training ?? []) {
      if ((t.algorithm === "sft") !== (which === "sft")) continue;
      let s = out.find((x) => x.stage === t.stage);
      if (!s) {
        s = { stage: t.stage, color: colors.get(0, t.stage), perRun: runs.map(() => []) };
        out.push(s);
      }
      s.perRun[ri] = [...(t.steps ?? [])].filter((x) => num(x?.step) !== null)
        .sort((a, b) => a.step - b.step);
    }
  });
  return out;
}

/**
 * One sweep plot of a training metric: per stage, every seed's curve (thin), the mean over the
 * seeds that have a value at a step (thick) and the min–max band over them.
 */
function sweepPlot(
  runs: readonly ReportData[],
  stages: SweepStage[],
  which: "rl" | "sft",
  id: string,
  title: string,
  y: string,
  get: (s: StepMetrics) => unknown,
): PlotSpec[] {
  const raw: RawSeries[] = [];
  const styles: { width: number; edge?: true }[] = [];
  const bandPairs: { upper: number; lower: number; fill: string }[] = [];
  for (const st of stages) {
    const bySeed = st.perRun.map((steps) =>
      steps.map((s): [number, number | null] => [
        s.step,
        num(get(s)),
      ])
    );
    const at = new Map<number, number[]>();
    for (const pts of bySeed) {
      for (const [x, v] of pts) if (v !== null) at.set(x, [...(at.get(x) ?? []), v]);
    }
    if (at.size === 0) continue;
    bySeed.forEach((points, ri) => {
      if (!points.length) return;
      raw.push({ label: seriesLabel(runs[ri].run.name, st.stage), color: st.color, points });
      styles.push({ width: 1 });
    });
    const xs = [...at.keys()].sort((a, b) => a - b);
    const stat = (f: (v: number[]) => number) =>
      xs.map((x): [number, number | null] => [x, f(at.get(x)!)]);
    raw.push({
      label: seriesLabel("mean", st.stage),
      color: st.color,
      points: stat((v) => v.reduce((a, b) => a + b, 0) / v.length),
    });
    styles.push({ width: 3 });
    bandPairs.push({ upper: raw.length + 1, lower: raw.length, fill: st.color + "33" });
    raw.push({
      label: seriesLabel("min", st.stage),
      color: st.color + "66",
      points: stat((v) => Math.min(...v)),
    });
    raw.push({
      label: seriesLabel("max", st.stage),
      color: st.color + "66",
      points: stat((v) => Math.max(...v)),
    });
    styles.push({ width: 0.5, edge: true }, { width: 0.5, edge: true });
  }
  const specs = trainingPlot(which, id, title, y, raw);
  for (const spec of specs) {
    spec.series.forEach((s, i) => {
      s.width = styles[i].width;
      if (styles[i].edge) s.points = false;
    });
    spec.bands = bandPairs;
    spec.note = SWEEP_BAND_NOTE;
  }
  return specs;
}

function sweepTrainingPlots(runs: readonly ReportData[], which: "rl" | "sft"): PlotSpec[] {
  const stages = sweepStages(runs, which);
  if (!stages.length) return [];
  const curves = which === "sft"
    ? SCALAR_CURVES.filter((c) => c.id === "loss" || c.id === "grad_norm")
    : [
      ...SCALAR_CURVES.slice(0, 2),
      { id: TOOL_CALLS.id, title: TOOL_CALLS.title, y: TOOL_CALLS.y, get: TOOL_CALLS.total! },
      ...SCALAR_CURVES.slice(2),
    ];
  return curves.flatMap((c) => sweepPlot(runs, stages, which, c.id, c.title, c.y, c.get));
}

/**
 * The plots of a sweep (`runs`: one ReportData per seed, in seed order, each named after its
 * seed): training curves of every seed with the mean and a min–max band per stage; entropy,
 * fork and branching plots overlaid as for compared runs.
 */
export function buildSweepPlots(runs: readonly ReportData[]): PlotSpec[] {
  const colors = new Colors(runs.length > 1);
  return [
    ...sweepTrainingPlots(runs, "rl"),
    ...sweepTrainingPlots(runs, "sft"),
    ...entropyPlots(runs, colors),
    ...forkPlots(runs),
    ...branchingPlots(runs, colors),
  ];
}
