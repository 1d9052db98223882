/**
 * Whether a re-executed eval stage replicates its archived one when the bytes cannot be equal
 * (other numerics): every metric of the eval (accuracy, pass@k, mean reward), paired over the
 * questions both evaluated, with a bootstrap interval of re-executed − archived. A metric
 * replicates when its interval contains 0: the re-execution gives no evidence of a shift.
 */
import {
  compareScore,
  type PairedDifference,
  type QuestionResult,
  questionScores,
} from "../eval/paired.ts";
import type { StageRecord } from "../store/records.ts";
import type { Store } from "../store/store.ts";

/** One eval metric, archived (a) against re-executed (b). */
export interface MetricReplication extends PairedDifference {
  stage: string;
  /** Questions paired. */
  questions: number;
  confidence: number;
  /** The interval of b − a contains 0. */
  replicates: boolean;
}

/** Resamples and confidence of the replication intervals (those of `compare`). */
export const REPLICATION = { resamples: 10000, confidence: 0.95 };

interface EvalResults {
  summary?: { pass_at?: Record<string, unknown>; reward?: unknown };
  per_question?: QuestionResult[];
}

async function results(store: Store, st: StageRecord, what: string): Promise<EvalResults> {
  const d = st.outputs.results;
  return d === undefined ? {} : await store.getJson(d, what) as EvalResults;
}

/**
 * Every metric of eval stage `stage`: the archived results (in `archived`) against the
 * re-executed ones (in `reexecuted`). Returns a sentence instead when there is nothing to pair.
 */
export async function evalReplication(
  stage: string,
  archived: { store: Store; stage: StageRecord; run: string },
  reexecuted: { store: Store; stage: StageRecord },
): Promise<MetricReplication[] | string> {
  const a = await results(archived.store, archived.stage, `stage '${stage}' results (archived)`);
  const b = await results(
    reexecuted.store,
    reexecuted.stage,
    `stage '${stage}' results (re-executed)`,
  );
  if (!Array.isArray(a.per_question) || !Array.isArray(b.per_question)) {
    return `stage '${stage}' has no per-question results to compare`;
  }
  const ks = Object.keys(a.summary?.pass_at ?? {}).map(Number).filter(Number.isInteger);
  const reward = typeof a.summary?.reward === "string";
  const out: MetricReplication[] = [];
  for (const [metric, score] of questionScores(ks, reward)) {
    const d = compareScore(metric, score, a.per_question, b.per_question, {
      ...REPLICATION,
      key: ["verify", archived.run, stage, metric],
    });
    if (!d) continue;
    out.push({
      ...d,
      stage,
      confidence: REPLICATION.confidence,
      replicates: d.lo <= 0 && 0 <= d.hi,
    });
  }
  return out.length ? out : `stage '${stage}': archived and re-executed share no question`;
}
