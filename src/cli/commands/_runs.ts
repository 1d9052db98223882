/**
 * What `show`, `ls`, `diff` and `exp` print about a run (not a command: starts with _): the stage
 * table, the key metrics of each stage (read from the record's stage metrics and, for detail
 * such as confidence intervals, from the stages' result objects), the headline metric of a run,
 * and where its HTML report is. Presentation only: nothing here is recorded.
 */
import { existsSync } from "node:fs";
import type { Json } from "../../store/canonical.ts";
import type { RunRecord } from "../../store/records.ts";
import type { Store } from "../../store/store.ts";

type Obj = Record<string, Json>;

const isObj = (x: unknown): x is Obj => typeof x === "object" && x !== null && !Array.isArray(x);
const num = (x: unknown): number | undefined =>
  typeof x === "number" && Number.isFinite(x) ? x : undefined;

/** A number for people: integers as is, others to 3 significant decimals. */
export function fmtNum(x: unknown): string {
  const n = num(x);
  if (n === undefined) return x === null || x === undefined ? "-" : JSON.stringify(x);
  if (Number.isInteger(n)) return String(n);
  const a = Math.abs(n);
  return a >= 100 ? n.toFixed(1) : a >= 0.001 || a === 0 ? n.toFixed(3) : n.toExponential(2);
}

/** Milliseconds as `850ms`, `12.3s`, `4m05s`. */
export function fmtMs(ms: number | undefined): string {
  if (ms === undefined) return "-";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/** Fixed-width columns (the last column is not padded). */
export function table(rows: string[][], indent = ""): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  return rows.map((r) =>
    indent + r.map((c, i) => (i === r.length - 1 ? c : c + " ".repeat(widths[i] - [...c].length)))
      .join("  ").trimEnd()
  );
}

/** The stages the manifest planned, in order, with kinds. */
export function plannedStages(rec: RunRecord): { name: string; kind: string }[] {
  const m = rec.identity.manifest as Obj;
  const stages = Array.isArray(m.stages) ? m.stages : [];
  const out = stages.filter(isObj).map((s) => ({ name: String(s.name), kind: String(s.kind) }));
  // Stages in the record that the manifest does not list (should not happen) are still shown.
  for (const [name, s] of Object.entries(rec.stages)) {
    if (!out.some((p) => p.name === name)) out.push({ name, kind: s.kind });
  }
  return out;
}

function stageOptions(rec: RunRecord, name: string): Obj {
  const m = rec.identity.manifest as Obj;
  const s = (Array.isArray(m.stages) ? m.stages : []).filter(isObj).find((x) => x.name === name);
  return s && isObj(s.options) ? s.options : {};
}

export interface StageRow {
  name: string;
  kind: string;
  /** done, or the run's status for the stage that was running when it stopped, else pending. */
  status: string;
  /** computed / reused in the invocation that wrote the record; "-" when it has no result. */
  source: "computed" | "reused" | "-";
  wallMs?: number;
  headline: string;
}

/** One row per planned stage. */
export function stageRows(rec: RunRecord): StageRow[] {
  let blamed = false;
  return plannedStages(rec).map(({ name, kind }) => {
    const s = rec.stages[name];
    let status = "done";
    if (!s) {
      // The first stage without a result is the one running when the run stopped.
      status = !blamed && rec.status !== "complete" ? rec.status : "pending";
      if (!blamed && rec.status !== "complete") blamed = true;
    }
    return {
      name,
      kind,
      status,
      source: s ? (s.reused ? "reused" : "computed") : "-",
      wallMs: s && !s.reused ? num(rec.timings[`${name}_ms`]) : undefined,
      headline: s ? stageHeadline(kind, s.metrics) : "",
    };
  });
}

/** The stage table as lines. */
export function stageTable(rec: RunRecord, indent = "  "): string[] {
  const rows = stageRows(rec).map((r) => [
    r.name,
    r.kind,
    r.status,
    r.source,
    r.source === "reused" ? "(cached)" : fmtMs(r.wallMs),
    r.headline,
  ]);
  return table([["stage", "kind", "status", "source", "wall", "metrics"], ...rows], indent);
}

/** A stage's few most telling metrics, from its record metrics, as `name value` pairs. */
export function stageHeadline(kind: string, metrics: Obj): string {
  const parts: string[] = [];
  const add = (label: string, key: string) => {
    if (metrics[key] !== undefined && metrics[key] !== null) {
      parts.push(`${label} ${fmtNum(metrics[key])}`);
    }
  };
  if (kind === "eval") {
    add("accuracy", "accuracy");
    const passK = Object.keys(metrics).filter((k) => /^pass_at_\d+$/.test(k) && k !== "pass_at_1")
      .sort((a, b) => Number(a.slice(8)) - Number(b.slice(8)));
    if (passK.length) add(`pass@${passK.at(-1)!.slice(8)}`, passK.at(-1)!);
    add("tools/traj", "tool_calls_per_trajectory");
  } else if (kind === "rl") {
    add("steps", "steps");
    add("last reward", "last_mean_reward");
    add("eval acc", "eval_accuracy");
    add("tools/traj", "last_tool_calls_per_trajectory");
  } else if (kind === "sft") {
    add("steps", "steps");
    add("loss", "first_loss");
    if (parts.length && metrics.final_loss !== undefined) {
      parts[parts.length - 1] += ` → ${fmtNum(metrics.final_loss)}`;
    }
  } else if (kind === "probe") {
    for (const k of Object.keys(metrics).filter((k) => k.startsWith("entropy_")).slice(0, 2)) {
      add(k.replace(/^entropy_/, "H ").replaceAll("_", " "), k);
    }
  }
  if (!parts.length) {
    for (const [k, v] of Object.entries(metrics).slice(0, 3)) {
      if (typeof v === "number") parts.push(`${k} ${fmtNum(v)}`);
    }
  }
  return parts.join(", ");
}

/** The run's headline: the last eval's accuracy, else the last rl reward, else the last stage's. */
export function runHeadline(rec: RunRecord): string {
  const planned = plannedStages(rec).filter((p) => rec.stages[p.name]);
  const evals = planned.filter((p) => p.kind === "eval");
  for (const p of evals.reverse()) {
    const a = rec.stages[p.name].metrics.accuracy;
    if (num(a) !== undefined) return `${p.name} accuracy ${fmtNum(a)}`;
  }
  for (const p of planned.filter((p) => p.kind === "rl").reverse()) {
    const r = rec.stages[p.name].metrics.last_mean_reward;
    if (num(r) !== undefined) return `${p.name} reward ${fmtNum(r)}`;
  }
  const last = planned.at(-1);
  if (!last) return "";
  const h = stageHeadline(last.kind, rec.stages[last.name].metrics);
  return h ? `${last.name} ${h}` : "";
}

async function readJson(store: Store, digest: unknown, label: string): Promise<Obj | undefined> {
  if (typeof digest !== "string") return undefined;
  try {
    const v = await store.getJson<Json>(digest, label);
    return isObj(v) ? v : undefined;
  } catch {
    return undefined; // missing or damaged: show's integrity check reports it
  }
}

function ciText(x: unknown): string {
  if (!isObj(x)) return fmtNum(x);
  const lo = num(x.lo), hi = num(x.hi), c = num(x.confidence);
  const interval = lo !== undefined && hi !== undefined
    ? `  [${fmtNum(lo)}, ${fmtNum(hi)}]${c !== undefined ? ` ${Math.round(c * 100)}% CI` : ""}`
    : "";
  return `${fmtNum(x.estimate)}${interval}`;
}

/**
 * Key metrics of every finished stage, as lines: eval accuracy and pass@k with confidence
 * intervals and tool calls per trajectory (from its `results` object); rl first/last reward,
 * tool calls and branches per question (from its `curve` or dry-run `batches` object); sft
 * loss; probe entropy windows; any other kind's record metrics.
 */
export async function keyMetrics(store: Store, rec: RunRecord): Promise<string[]> {
  const lines: string[] = [];
  for (const { name, kind } of plannedStages(rec)) {
    const s = rec.stages[name];
    if (!s) continue;
    const label = `run ${rec.id.slice(0, 12)}, stage '${name}'`;
    const rows: string[][] = [];
    let title = `${name} (${kind})`;
    if (kind === "eval") {
      const res = await readJson(store, s.outputs.results, label);
      const sum = res && isObj(res.summary) ? res.summary : undefined;
      if (sum) {
        // how the samples were drawn, in words: the algorithm's name alone read as a training run
        const drawn = sum.algorithm === "grpo"
          ? "independent samples"
          : sum.algorithm === "arpo"
          ? "samples from ARPO trees"
          : `samples (${sum.algorithm} rollouts)`;
        title += `: ${sum.benchmark}/${sum.split}, ${sum.questions} questions × ` +
          `${sum.samples_per_question} ${drawn}`;
        if (sum.accuracy !== undefined) rows.push(["accuracy", ciText(sum.accuracy)]);
        if (isObj(sum.pass_at)) {
          for (const [k, v] of Object.entries(sum.pass_at)) rows.push([`pass@${k}`, ciText(v)]);
        }
        if (sum.mean_reward !== undefined) rows.push(["mean reward", ciText(sum.mean_reward)]);
        const tools = isObj(sum.tools) ? sum.tools : {};
        rows.push([
          "tool calls/trajectory",
          `${fmtNum(tools.per_trajectory)}  (errors ${fmtNum(tools.errors ?? 0)}, ` +
          `timeouts ${fmtNum(tools.timeouts ?? 0)})`,
        ]);
      } else rows.push(...metricRows(s.metrics));
    } else if (kind === "rl") {
      const curve = (await readJson(store, s.outputs.curve, label)) ??
        (await readJson(store, s.outputs.batches, label));
      const steps = curve && Array.isArray(curve.steps) ? curve.steps.filter(isObj) : [];
      if (steps.length) {
        const first = steps[0], last = steps.at(-1)!;
        const perQ = num(stageOptions(rec, name).questions_per_step);
        const fl = (k: string, f = (x: number) => x) => {
          const a = num(first[k]), b = num(last[k]);
          return `${a === undefined ? "-" : fmtNum(f(a))} → ${
            b === undefined ? "-" : fmtNum(f(b))
          }`;
        };
        if (curve!.dry_run === true) title += ": dry run (no updates)";
        rows.push([`reward (step 1 → ${steps.length})`, fl("mean_reward")]);
        rows.push(["tool calls/trajectory", fl("tool_calls_per_trajectory")]);
        if (perQ) rows.push(["branches/question", fl("branches", (x) => x / perQ)]);
        // Over all steps (the rl stage's metrics): what the mechanism did during training.
        const all = s.metrics;
        if (typeof all.tool_calls_per_trajectory === "number") {
          rows.push(["tool calls/trajectory (all steps)", fmtNum(all.tool_calls_per_trajectory)]);
        }
        if (typeof all.branch_rate === "number") {
          rows.push(["branch rate (all steps)", fmtNum(all.branch_rate)]);
        }
        if (typeof all.tool_calls_per_trajectory === "number") {
          // Absent when the cap ended no trajectory (the metric is written only when it did).
          rows.push(["ended by the tool-call cap", fmtNum(num(all.tool_cap_rate) ?? 0)]);
        }
        const evals = steps.filter((x) => isObj(x.eval));
        if (evals.length) {
          const e = evals.at(-1)!;
          rows.push([`eval accuracy (step ${e.step})`, fmtNum((e.eval as Obj).accuracy)]);
        }
      } else rows.push(...metricRows(s.metrics));
    } else if (kind === "probe") {
      const res = await readJson(store, s.outputs.probe, label);
      if (res && Array.isArray(res.windows)) {
        rows.push(["tokens", "entropy after tool result", "from response start"]);
        for (const w of res.windows.filter(isObj)) {
          rows.push([String(w.window), fmtNum(w.after_result), fmtNum(w.from_start)]);
        }
      } else rows.push(...metricRows(s.metrics));
    } else rows.push(...metricRows(s.metrics));
    if (!rows.length) continue;
    lines.push(title, ...table(rows, "  "));
  }
  return lines;
}

function metricRows(metrics: Obj): string[][] {
  return Object.entries(metrics).map(([k, v]) => [k, isObj(v) ? JSON.stringify(v) : fmtNum(v)]);
}

/**
 * Hook for the HTML report (src/report/): the path `arpo report` and `exp` write a run's report
 * to (report/write.ts `reportPath`: `<store>/reports/<run-id>.html`); undefined until one is
 * written. (A stage output named `report` is the report's input data, not the page.)
 */
export async function reportFor(store: Store, rec: RunRecord): Promise<string | undefined> {
  // Loaded on demand: the report module brings the plotting library, which listings do not need.
  const { reportPath } = await import("../../report/write.ts");
  const path = reportPath(store, [rec.id]);
  return existsSync(path) ? path : undefined;
}

/** When the run last ran: its record's start time (timings are outside the identity). */
export function runDate(rec: RunRecord | undefined, fallbackMs: number): Date {
  const t = rec ? num(rec.timings?.started_unix_ms) : undefined;
  return new Date(t ?? fallbackMs);
}

/** `2026-11-25 03:10` (UTC). */
export function fmtDate(d: Date): string {
  return d.toISOString().slice(0, 16).replace("T", " ");
}
