/**
 * Stage metrics bound to a content-addressed object. A run record is a mutable file, so the
 * metrics it holds are only as good as the check made when reading them: when a stage finishes,
 * its metrics are stored as an object (canonical JSON) and the record names that object's digest
 * (`StageRecord.metricsDigest`). Every reader of a record (readRecord) checks the metrics still
 * hash to it, and `verify` compares the re-executed metrics with the recorded ones, so an edited
 * metric is caught by `ls`/`show`/`compare`/`report` (edited alone) or by `verify` (edited
 * together with its digest and object).
 */
import { ArpoError } from "../errors.ts";
import type { Json } from "./canonical.ts";
import { canonicalJson } from "./canonical.ts";
import { digestJson } from "./hash.ts";
import type { RunRecord, StageRecord } from "./records.ts";

/** The digest that binds `metrics`: sha256 of their canonical JSON (also their object's name). */
export function metricsDigestOf(metrics: Record<string, Json>): string {
  return digestJson(metrics);
}

/**
 * Why a stage's recorded metrics cannot be trusted, or undefined when they hash to their bound
 * digest. A record from before metrics were bound (no `metricsDigest`) has nothing to check.
 */
export function stageMetricsProblem(stage: StageRecord): string | undefined {
  if (stage.metricsDigest === undefined) return undefined;
  if (typeof stage.metrics !== "object" || stage.metrics === null) {
    return `its metrics are ${JSON.stringify(stage.metrics)}, not a map`;
  }
  let actual: string;
  try {
    actual = metricsDigestOf(stage.metrics);
  } catch (e) {
    return `its metrics are not JSON (${(e as Error).message})`;
  }
  return actual === stage.metricsDigest
    ? undefined
    : `its metrics hash to ${actual}, not to the digest of the metrics it computed ` +
      `(${stage.metricsDigest}): the record was edited`;
}

/** Throw an ArpoError naming the first stage of `rec` whose metrics fail their binding. */
export function assertMetricsBound(rec: RunRecord, where: string): void {
  for (const [name, stage] of Object.entries(rec.stages ?? {})) {
    const p = stageMetricsProblem(stage);
    if (p) {
      throw new ArpoError(
        `run ${rec.id} (${where}): stage '${name}': ${p}, so its metrics cannot be trusted. ` +
          "Restore the record (e.g. import its export again) or recompute the run with " +
          "`exp --force`",
      );
    }
  }
}

/** The first metric that differs between a recorded and a re-executed stage, as a sentence. */
export function metricsDifference(
  recorded: StageRecord,
  reexecuted: StageRecord,
): string | undefined {
  const a = recorded.metrics ?? {}, b = reexecuted.metrics ?? {};
  if (canonicalJson(a) === canonicalJson(b)) return undefined;
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    const x = k in a ? canonicalJson(a[k]) : undefined;
    const y = k in b ? canonicalJson(b[k]) : undefined;
    if (x === y) continue;
    return `metric '${k}' differs: recorded ${x ?? "(none)"}, re-executed ${y ?? "(none)"}`;
  }
  return "metrics differ";
}
