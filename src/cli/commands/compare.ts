/**
 * `deno task arpo compare <run>:<eval-stage> [<run>:]<eval-stage>`: the paired difference of two
 * evaluations on the same questions (accuracy and mean reward, B − A), with a paired bootstrap
 * confidence interval over questions. Pairing matters: two evals of one question set share most of
 * their variance (easy and hard questions), so the interval of the difference is much narrower
 * than the two separate intervals suggest.
 *
 * `compare <sweep>:<eval-stage> [<sweep>:]<eval-stage>`: the same over a sweep's seeds, paired
 * within each seed's run on its shared questions; the interval is a stratified bootstrap of the
 * paired differences (seeds with replacement, then each drawn seed's questions).
 */
import { ArpoError } from "../../errors.ts";
import { pairedDifference } from "../../eval/paired.ts";
import { meanOfGroupMeans, stratifiedBootstrap } from "../../eval/sweep_stats.ts";
import { readSweep } from "../../store/sweeps.ts";
import { readRecord } from "../../store/records.ts";
import type { Store } from "../../store/store.ts";
import { openStore, parse } from "./_common.ts";
import { resolveTarget } from "./_sweeps.ts";

export const summary = "paired difference of two eval stages (B − A) with a bootstrap interval";

const USAGE = "deno task arpo compare <run-or-sweep>:<eval-stage> [<run-or-sweep>:]<eval-stage> " +
  "[--resamples N] [--confidence C] [--store DIR] [--json]";

interface PerQuestion {
  task_id: string;
  correct: number;
  /** Judged samples (those lost to infrastructure failures are not counted). */
  n: number;
  /** Each sample's reward; null for a sample lost to an infrastructure failure. */
  rewards: (number | null)[];
}

interface Side {
  run: string;
  stage: string;
  benchmark: string;
  perQuestion: Map<string, PerQuestion>;
}

/** `<id>:<stage>` → its parts; `<stage>` alone takes `defaultId`. */
function splitSpec(spec: string, defaultId: string | undefined): { id: string; stage: string } {
  const at = spec.lastIndexOf(":");
  const id = at >= 0 ? spec.slice(0, at) : defaultId;
  const stage = at >= 0 ? spec.slice(at + 1) : spec;
  if (!id || !stage) {
    throw new ArpoError(
      `compare: '${spec}' is not <run-or-sweep>:<eval-stage>\nusage: ${USAGE}`,
      { exitCode: 2 },
    );
  }
  return { id, stage };
}

/** The per-question results of eval stage `stage` of run `id`. */
async function loadSide(store: Store, id: string, stage: string): Promise<Side> {
  const rec = await readRecord(store, id);
  const s = rec.stages[stage];
  if (!s) {
    throw new ArpoError(
      `compare: run ${id.slice(0, 12)} has no stage '${stage}' (stages: ${
        Object.keys(rec.stages).join(", ") || "none"
      })`,
    );
  }
  const digest = s.outputs.results;
  if (s.kind !== "eval" || digest === undefined) {
    throw new ArpoError(
      `compare: stage '${stage}' of run ${id.slice(0, 12)} is a ${s.kind} stage with no eval ` +
        `results; name an eval stage`,
    );
  }
  const where = `run ${id.slice(0, 12)}, stage '${stage}' results`;
  const results = await store.getJson(digest, where) as {
    summary?: { benchmark?: string };
    per_question?: PerQuestion[];
  };
  if (!Array.isArray(results.per_question)) {
    throw new ArpoError(`compare: ${where} has no per-question results`);
  }
  return {
    run: id,
    stage,
    benchmark: String(results.summary?.benchmark ?? "?"),
    perQuestion: new Map(results.per_question.map((q) => [q.task_id, q])),
  };
}

const meanOf = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Per-question scores compared: accuracy (correct / samples) and mean reward. */
const acc = (s: Side, id: string) => {
  const q = s.perQuestion.get(id)!;
  return q.n > 0 ? q.correct / q.n : 0;
};
const rew = (s: Side, id: string) =>
  meanOf(s.perQuestion.get(id)!.rewards.filter((r): r is number => r !== null));
/** Questions both sides judged at least once (a question that lost every sample has no score). */
const sharedJudged = (a: Side, b: Side) =>
  [...a.perQuestion.keys()].filter((k) =>
    b.perQuestion.has(k) && a.perQuestion.get(k)!.n > 0 && b.perQuestion.get(k)!.n > 0
  );
const SCORES: [string, (s: Side, id: string) => number][] = [
  ["accuracy", acc],
  ["mean_reward", rew],
];

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse("compare", USAGE, args, {
    json: { type: "boolean" },
    resamples: { type: "string", arg: "N", help: "bootstrap resamples (default: 10000)" },
    confidence: {
      type: "string",
      arg: "C",
      help: "interval's confidence in (0, 1) (default: 0.95)",
    },
  });
  if (positionals.length !== 2) {
    throw new ArpoError(`compare: expected two eval stages\nusage: ${USAGE}`, { exitCode: 2 });
  }
  const resamples = values.resamples === undefined ? 10000 : Number(values.resamples);
  const confidence = values.confidence === undefined ? 0.95 : Number(values.confidence);
  if (!Number.isInteger(resamples) || resamples < 1) {
    throw new ArpoError(`compare: --resamples must be a positive integer`, { exitCode: 2 });
  }
  if (!(confidence > 0 && confidence < 1)) {
    throw new ArpoError(`compare: --confidence must be in (0, 1)`, { exitCode: 2 });
  }
  const store = openStore(values.store);
  const first = splitSpec(positionals[0], undefined);
  const target = await resolveTarget(store, first.id);
  if (target.kind === "sweep") {
    return await compareSweeps(store, target.id, first.stage, positionals[1], {
      resamples,
      confidence,
      json: values.json === true,
    });
  }
  const a = await loadSide(store, target.id, first.stage);
  const second = splitSpec(positionals[1], a.run);
  const tb = second.id === a.run ? target : await resolveTarget(store, second.id);
  if (tb.kind === "sweep") {
    throw new ArpoError(
      `compare: ${a.run.slice(0, 12)} is a run and ${second.id} a sweep; compare two stages of ` +
        `runs (<run>:<stage> [<run>:]<stage>) or of sweeps`,
      { exitCode: 2 },
    );
  }
  const b = await loadSide(store, tb.id, second.stage);
  const ids = sharedJudged(a, b);
  if (ids.length === 0) {
    throw new ArpoError(
      `compare: ${a.stage} and ${b.stage} share no questions (benchmarks ${a.benchmark} and ` +
        `${b.benchmark}); a paired comparison needs the same questions`,
    );
  }
  const metric = (name: string, f: (s: Side, id: string) => number) =>
    pairedDifference(name, ids.map((id) => f(a, id)), ids.map((id) => f(b, id)), {
      resamples,
      confidence,
      key: ["compare", a.run, a.stage, b.run, b.stage, name],
    });
  const rows = SCORES.map(([name, f]) => metric(name, f));
  const out = {
    a: { run: a.run, stage: a.stage, benchmark: a.benchmark },
    b: { run: b.run, stage: b.stage, benchmark: b.benchmark },
    questions: ids.length,
    confidence,
    resamples,
    metrics: rows,
  };
  if (values.json) {
    console.log(JSON.stringify(out, null, 2));
    return 0;
  }
  const f = (x: number) => (Object.is(x, -0) ? 0 : x).toFixed(3);
  console.log(
    `A ${a.run.slice(0, 12)}:${a.stage}  B ${b.run.slice(0, 12)}:${b.stage}  ` +
      `(${ids.length} shared questions of ${a.benchmark}; paired bootstrap, ${resamples} resamples)`,
  );
  console.log(`  metric        A       B       B − A   ${Math.round(confidence * 100)}% CI`);
  for (const r of rows) {
    console.log(
      `  ${r.metric.padEnd(12)}  ${f(r.a)}   ${f(r.b)}   ${r.difference >= 0 ? "+" : ""}${
        f(r.difference)
      }  [${f(r.lo)}, ${f(r.hi)}]${r.excludesZero ? "  excludes 0" : ""}`,
    );
  }
  return 0;
}

/** Each complete seed's run of a sweep, with its eval stage's per-question results. */
async function sweepSides(
  store: Store,
  sweepId: string,
  stage: string,
): Promise<{ seed: number; side: Side }[]> {
  const rec = await readSweep(store, sweepId);
  const out: { seed: number; side: Side }[] = [];
  for (const r of rec.runs) {
    if (r.status !== "complete" || !r.runId) continue;
    out.push({ seed: r.seed, side: await loadSide(store, r.runId, stage) });
  }
  if (!out.length) {
    throw new ArpoError(
      `compare: sweep ${sweepId.slice(0, 12)} has no complete run (status ${rec.status})`,
    );
  }
  return out;
}

/**
 * Two eval stages of one sweep (or of two sweeps with seeds in common), paired over seeds ×
 * questions: per seed, the questions both evaluated; B − A per question; the mean over seeds of
 * each seed's mean difference, with a stratified bootstrap interval over seeds and questions.
 */
async function compareSweeps(
  store: Store,
  sweepA: string,
  stageA: string,
  specB: string,
  o: { resamples: number; confidence: number; json: boolean },
): Promise<number> {
  const second = splitSpec(specB, sweepA);
  const tb = second.id === sweepA ? { kind: "sweep", id: sweepA } : await resolveTarget(
    store,
    second.id,
  );
  if (tb.kind !== "sweep") {
    throw new ArpoError(
      `compare: ${sweepA.slice(0, 12)} is a sweep and ${second.id} a run; compare two stages of ` +
        `sweeps (<sweep>:<stage> [<sweep>:]<stage>) or of runs`,
      { exitCode: 2 },
    );
  }
  const sweepB = tb.id;
  const as = await sweepSides(store, sweepA, stageA);
  const bs = await sweepSides(store, sweepB, second.stage);
  const pairs = as.flatMap(({ seed, side: a }) => {
    const b = bs.find((x) => x.seed === seed)?.side;
    if (!b) return [];
    const ids = sharedJudged(a, b);
    return ids.length ? [{ seed, a, b, ids }] : [];
  });
  if (!pairs.length) {
    throw new ArpoError(
      `compare: ${stageA} of sweep ${sweepA.slice(0, 12)} (seeds ${
        as.map((x) => x.seed).join(", ")
      }) and ${second.stage} of sweep ${sweepB.slice(0, 12)} (seeds ${
        bs.map((x) => x.seed).join(", ")
      }) share no seed with common questions; a paired comparison needs the same seeds and ` +
        `questions`,
    );
  }
  const metrics = SCORES.map(([name, f]) => {
    const ga = pairs.map((p) => p.ids.map((id) => f(p.a, id)));
    const gb = pairs.map((p) => p.ids.map((id) => f(p.b, id)));
    const diffs = pairs.map((p) => p.ids.map((id) => f(p.b, id) - f(p.a, id)));
    const ci = stratifiedBootstrap(diffs, meanOfGroupMeans, {
      resamples: o.resamples,
      confidence: o.confidence,
      key: ["compare", "sweep", sweepA, stageA, sweepB, second.stage, name],
    });
    return {
      metric: name,
      a: meanOfGroupMeans(ga),
      b: meanOfGroupMeans(gb),
      difference: ci.estimate,
      lo: ci.lo,
      hi: ci.hi,
      excludesZero: ci.lo > 0 || ci.hi < 0,
      perSeed: pairs.map((p, i) => ({
        seed: p.seed,
        runA: p.a.run,
        runB: p.b.run,
        questions: p.ids.length,
        a: meanOf(ga[i]),
        b: meanOf(gb[i]),
        difference: meanOf(diffs[i]),
      })),
    };
  });
  const questions = pairs.reduce((s, p) => s + p.ids.length, 0);
  const bench = pairs[0].a.benchmark;
  const out = {
    type: "sweep",
    a: { sweep: sweepA, stage: stageA, benchmark: bench },
    b: { sweep: sweepB, stage: second.stage, benchmark: pairs[0].b.benchmark },
    seeds: pairs.map((p) => p.seed),
    questions,
    confidence: o.confidence,
    resamples: o.resamples,
    method: "paired stratified bootstrap: seeds with replacement, then each drawn seed's " +
      "questions with replacement; statistic: mean over seeds of the mean paired difference",
    metrics,
  };
  if (o.json) {
    console.log(JSON.stringify(out, null, 2));
    return 0;
  }
  const f = (x: number) => (Object.is(x, -0) ? 0 : x).toFixed(3);
  const sign = (x: number) => (x >= 0 ? "+" : "") + f(x);
  console.log(
    `A sweep ${sweepA.slice(0, 12)}:${stageA}  B sweep ${sweepB.slice(0, 12)}:${second.stage}  ` +
      `(${pairs.length} seeds, ${questions} paired questions of ${bench}; paired stratified ` +
      `bootstrap over seeds and questions, ${o.resamples} resamples)`,
  );
  console.log(`  metric        A       B       B − A   ${Math.round(o.confidence * 100)}% CI`);
  for (const r of metrics) {
    console.log(
      `  ${r.metric.padEnd(12)}  ${f(r.a)}   ${f(r.b)}   ${sign(r.difference)}  ` +
        `[${f(r.lo)}, ${f(r.hi)}]${r.excludesZero ? "  excludes 0" : ""}`,
    );
  }
  console.log("  per seed (B − A)");
  for (const r of metrics) {
    console.log(
      `    ${r.metric.padEnd(12)}  ` +
        r.perSeed.map((p) => `seed ${p.seed}: ${sign(p.difference)}`).join(", "),
    );
  }
  return 0;
}
