/**
 * `arpo samples RUN[:STAGE] [--where correct|wrong|tool_error|timeout] [--sort reward] [--limit N]
 * [--tokens] [--json]`: a run's trajectories as text, with their tool calls, results, reward parts
 * and (with `--tokens`) per-token entropy and log-probability.
 */
import { ArpoError } from "../../errors.ts";
import { readRecord, resolveRunId } from "../../store/records.ts";
import {
  runSamples,
  type Sample,
  SAMPLE_FILTERS,
  SAMPLE_SORTS,
  type SampleFilter,
  sampleMatches,
  type SampleSort,
  sortSamples,
} from "../../report/samples.ts";
import { runTokenizer, tokenTexts } from "../../report/tokens.ts";
import { oneOf, openStore, parse } from "./_common.ts";

export const summary = "print a run's trajectories: text, tool calls, rewards, per-token entropy";

const USAGE = "arpo samples <run-id-prefix>[:<stage>] [--where correct|wrong|tool_error|timeout] " +
  "[--sort reward|entropy|length] [--limit N] [--tokens] [--json] [--store DIR]";

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse("samples", USAGE, args, {
    where: {
      type: "string",
      arg: SAMPLE_FILTERS.join("|"),
      help: "only samples judged correct / wrong (eval stages), with a failed tool call, or with " +
        "a timed-out one",
    },
    sort: {
      type: "string",
      arg: SAMPLE_SORTS.join("|"),
      help: "highest reward, mean entropy or response length first (default: rollout order)",
    },
    limit: { type: "string", arg: "N", help: "print at most N samples, 0 for all (default: 10)" },
    tokens: { type: "boolean", help: "per-token entropy and log-probability under each part" },
    json: { type: "boolean" },
  });
  if (positionals.length !== 1) {
    throw new ArpoError(`samples: expected one RUN[:STAGE]\nusage: ${USAGE}`, { exitCode: 2 });
  }
  const [prefix, stage] = splitTarget(positionals[0]);
  const where = values.where === undefined
    ? undefined
    : oneOf("where", values.where, [...SAMPLE_FILTERS], "correct");
  const sort = values.sort === undefined
    ? undefined
    : oneOf("sort", values.sort, [...SAMPLE_SORTS], "reward");
  const limit = values.limit === undefined ? 10 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 0) {
    throw new ArpoError(
      `samples: --limit expects a non-negative integer, found '${values.limit}'`,
      {
        exitCode: 2,
      },
    );
  }
  const store = openStore(values.store);
  const rec = await readRecord(store, await resolveRunId(store, prefix));
  const tok = values.tokens ? await runTokenizer(store, rec) : undefined;
  if (values.tokens && !tok) {
    console.error("warning: the run's policy has no tokenizer here; tokens are shown by id");
  }
  const texts = values.tokens
    ? tok ? tokenTexts(tok) : (ids: readonly number[]) => ids.map((i) => `[${i}]`)
    : undefined;
  const all = await runSamples(store, rec, stage, texts);
  if (all.length === 0) {
    throw new ArpoError(`run ${rec.id.slice(0, 12)} has no stage with rollouts`);
  }
  const picked = selectSamples(all, where, sort);
  const shown = limit === 0 ? picked : picked.slice(0, limit);
  if (values.json) {
    console.log(
      JSON.stringify(
        { run: rec.id, total: all.length, matched: picked.length, samples: shown },
        null,
        2,
      ),
    );
    return 0;
  }
  for (const s of shown) console.log(formatSample(s, values.tokens === true) + "\n");
  console.log(
    `${shown.length} of ${picked.length} sample(s)${where ? ` where ${where}` : ""} ` +
      `(${all.length} in ${stage ? `stage '${stage}'` : "the run"})` +
      (shown.length < picked.length ? `; --limit 0 shows all` : ""),
  );
  return 0;
}

/** `RUN:STAGE` → [RUN, STAGE]; `RUN` → [RUN, undefined]. */
function splitTarget(t: string): [string, string | undefined] {
  const i = t.indexOf(":");
  if (i < 0) return [t, undefined];
  if (i === 0 || i === t.length - 1) {
    throw new ArpoError(`samples: '${t}' is not RUN[:STAGE]\nusage: ${USAGE}`, { exitCode: 2 });
  }
  return [t.slice(0, i), t.slice(i + 1)];
}

function selectSamples(all: Sample[], where?: SampleFilter, sort?: SampleSort): Sample[] {
  if (where === "correct" || where === "wrong") {
    if (!all.some((s) => s.correct !== null)) {
      throw new ArpoError(
        `samples: --where ${where}: no sample here was judged (only eval stages record the ` +
          `benchmark's verdict per sample; name one, e.g. RUN:eval)`,
        { exitCode: 2 },
      );
    }
  }
  const matched = where ? all.filter((s) => sampleMatches(s, where)) : all;
  return sort ? sortSamples(matched, sort) : matched;
}

const f3 = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(3));

function header(s: Sample): string {
  const bits = [
    `stage ${s.stage}${s.step !== undefined ? ` step ${s.step}` : ""}`,
    `task ${s.taskId}`,
    `trajectory ${s.trajectory} (${s.kind})`,
  ];
  if (s.reward !== undefined) {
    const parts = Object.entries(s.rewardParts ?? {}).map(([k, v]) =>
      `${k} ${typeof v === "number" ? f3(v) : String(v)}`
    );
    bits.push(`reward ${f3(s.reward)}${parts.length ? ` (${parts.join(", ")})` : ""}`);
  }
  if (s.correct !== null) bits.push(s.correct ? "correct" : "wrong");
  bits.push(
    `${s.toolCalls} tool call(s)${s.toolErrors ? `, ${s.toolErrors} failed` : ""}` +
      `${s.timeouts ? `, ${s.timeouts} timed out` : ""}`,
  );
  bits.push(`end ${s.end ?? "-"}`);
  if (s.meanEntropy !== undefined) bits.push(`mean entropy ${s.meanEntropy.toFixed(3)}`);
  return `── ${bits.join(" · ")}`;
}

const indent = (t: string, p: string) => t.split("\n").map((l) => p + l).join("\n");

/** One sample as text: header, question, answers, then its parts in order. */
export function formatSample(s: Sample, tokens: boolean): string {
  const lines = [header(s), indent(s.question, "Q  "), `A  ${s.answers.join(" | ") || "-"}`];
  for (const p of s.parts) {
    if (p.kind === "result") {
      const c = p.call;
      const flag = c?.timedOut ? " TIMEOUT" : c?.error ? " ERROR" : "";
      lines.push(`[result of ${c?.tool ?? "tool"}${flag}]`, indent(p.text, "  │ "));
    } else {
      lines.push(`[${p.kind === "gen" ? "model" : "eos"}]`, indent(p.text, "  "));
    }
    if (tokens && p.tokens && p.kind !== "result") {
      lines.push("    pos  entropy  logprob  token");
      p.tokens.forEach((t, i) => {
        lines.push(
          `  ${String(i).padStart(5)}  ${t.entropy.toFixed(3).padStart(7)}  ` +
            `${t.logprob.toFixed(3).padStart(7)}  ${JSON.stringify(t.text)}`,
        );
      });
    }
  }
  return lines.join("\n");
}
