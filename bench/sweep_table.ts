/**
 * The training-cost columns of README's algorithm comparison, from a sweep in a store: for each
 * rl stage and each seed, the tool calls executed per question during training (a call on a
 * prefix that branches share counts once: the rollout batch's `toolCalls.total`), the tokens
 * generated per question (each generated segment of a tree once), the branch rate over all steps
 * and the stage's wall time; then the mean over seeds (wall time: the median).
 *
 * ```sh
 * deno run -A bench/sweep_table.ts <sweep-id-prefix> [--store DIR] [--json]
 * ```
 */
import { Store } from "../src/store/store.ts";
import { readSweep, resolveSweepId } from "../src/store/sweeps.ts";
import { readRecord } from "../src/store/records.ts";
import { parseTreeLines } from "../src/rollout/artifacts.ts";
import { mean } from "../src/eval/metrics.ts";

interface BatchObject {
  metrics: { questions: number; toolCalls: { total: number } };
  questions: { tree: string }[];
}

/** Generated tokens of a stored tree: each generated segment once. */
async function treeGeneratedTokens(store: Store, digest: string): Promise<number> {
  const text = new TextDecoder().decode(await store.getBytes(digest, "tree"));
  return parseTreeLines(text, `tree ${digest}`).segments
    .filter((s) => s.kind === "gen")
    .reduce((n, s) => n + (s.tokens as number[]).length, 0);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

if (import.meta.main) {
  const args = [...Deno.args];
  const at = args.indexOf("--store");
  const root = at >= 0 ? args.splice(at, 2)[1] : ".arpo";
  const json = args.includes("--json");
  const prefix = args.find((a) => !a.startsWith("--"));
  if (!prefix) {
    console.error("usage: deno run -A bench/sweep_table.ts <sweep-id-prefix> [--store DIR]");
    Deno.exit(2);
  }
  const store = new Store(root);
  const sweep = await readSweep(store, await resolveSweepId(store, prefix));
  const rows: Record<string, Record<string, number[]>> = {};
  for (const run of sweep.runs) {
    if (!run.runId || run.status !== "complete") continue;
    const rec = await readRecord(store, run.runId);
    for (const [name, st] of Object.entries(rec.stages)) {
      if (st.kind !== "rl") continue;
      let questions = 0, calls = 0, tokens = 0;
      for (const [k, digest] of Object.entries(st.outputs)) {
        if (!/^rollouts_\d+$/.test(k)) continue;
        const b = await store.getJson<BatchObject>(digest, "rollout batch");
        questions += b.metrics.questions;
        calls += b.metrics.toolCalls.total;
        for (const q of b.questions) tokens += await treeGeneratedTokens(store, q.tree);
      }
      const r = rows[name] ??= {
        seeds: [],
        tool_calls_per_question: [],
        generated_tokens_per_question: [],
        branch_rate: [],
        tool_calls_per_trajectory: [],
        wall_s: [],
      };
      r.seeds.push(run.seed);
      r.tool_calls_per_question.push(calls / questions);
      r.generated_tokens_per_question.push(tokens / questions);
      r.branch_rate.push(Number(st.metrics.branch_rate ?? 0));
      r.tool_calls_per_trajectory.push(Number(st.metrics.tool_calls_per_trajectory ?? 0));
      const ms = rec.timings[`${name}_ms`];
      if (typeof ms === "number" && !st.reused) r.wall_s.push(ms / 1000);
    }
  }
  if (json) console.log(JSON.stringify(rows, null, 2));
  else {
    console.log(
      "stage | seeds | tool calls/question | generated tokens/question | branch rate | " +
        "tool calls/trajectory | wall (median)",
    );
    for (const [name, r] of Object.entries(rows)) {
      const f = (xs: number[], d = 1) =>
        `${mean(xs).toFixed(d)} (${xs.map((x) => x.toFixed(d)).join(", ")})`;
      console.log(
        `${name} | ${r.seeds.join(",")} | ${f(r.tool_calls_per_question)} | ` +
          `${f(r.generated_tokens_per_question, 0)} | ${f(r.branch_rate, 3)} | ` +
          `${f(r.tool_calls_per_trajectory, 3)} | ` +
          `${r.wall_s.length ? median(r.wall_s).toFixed(0) + " s" : "-"}`,
      );
    }
  }
}
