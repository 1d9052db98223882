/**
 * What a stage's policies recorded (PolicyRecording: an inference server's answers), stored with
 * the stage: outputs `policy_responses` and `policy_tokenizer`, and the metric `policy` saying
 * what the backend was and that the stage is not bit-reproducible. On rerun/verify these outputs
 * are inputs, as recorded tool calls are: the server policy answers from them (run/policy.ts).
 */
import type { Json } from "../store/canonical.ts";
import type { StageRecord } from "../store/records.ts";
import type { Policy } from "../policy/types.ts";
import type { PolicyFactoryInput, StageResult, StageStore } from "./stages.ts";

export const POLICY_RESPONSES = "policy_responses";
export const POLICY_TOKENIZER = "policy_tokenizer";

/** Outputs that a re-execution reads back (copied into a verify's scratch store). */
export function isPolicyRecordOutput(name: string): boolean {
  return name === POLICY_RESPONSES || name === POLICY_TOKENIZER;
}

/** Add the recordings of `policies` (those that have one) to a stage's result. */
export async function addPolicyRecords(
  result: StageResult,
  policies: Iterable<Promise<Policy>>,
  store: StageStore,
): Promise<StageResult> {
  const recs = [];
  for (const p of policies) {
    const rec = (await p.catch(() => undefined))?.recording;
    if (rec) recs.push(rec);
  }
  if (recs.length === 0 || !result?.outputs) return result;
  if (recs.length > 1) {
    // One server per manifest: a second policy of a stage would be a checkpoint, which a server
    // backend refuses (run/policy.ts), so this is a programming error.
    throw new Error(`a stage built ${recs.length} recording policies; at most one is supported`);
  }
  const rec = recs[0];
  const outputs = {
    ...result.outputs,
    [POLICY_RESPONSES]: await store.putBytes(rec.responses()),
    [POLICY_TOKENIZER]: await store.putJson({ files: rec.tokenizerFiles() }),
  };
  return {
    outputs,
    metrics: {
      ...(result.metrics ?? {}),
      policy: JSON.parse(JSON.stringify(rec.summary())) as Json,
    },
  };
}

/** The recorded answers of an archived stage, for the policy factory (rerun/verify). */
export function recordedOf(stage: StageRecord | undefined): PolicyFactoryInput["recorded"] {
  const responses = stage?.outputs[POLICY_RESPONSES];
  const tokenizer = stage?.outputs[POLICY_TOKENIZER];
  return responses && tokenizer ? { responses, tokenizer } : undefined;
}
