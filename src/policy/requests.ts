/** The request checks every Policy.generate makes, whatever backend answers them. */
import { ArpoError } from "../errors.ts";
import type { GenerateRequest, SeqId } from "./types.ts";

/**
 * Each sequence at most once per call, and none empty (a sequence needs a prompt before it can be
 * continued). `length(seq)` is the sequence's token count; an unknown sequence is the caller's
 * error to raise there.
 *
 * @example
 * ```ts
 * import { checkGenerateRequests } from "./requests.ts";
 * const stop = { maxTokens: 4 };
 * checkGenerateRequests([{ seq: 0, stop }, { seq: 1, stop }], () => 3); // fine
 * ```
 */
export function checkGenerateRequests(
  requests: readonly GenerateRequest[],
  length: (seq: SeqId) => number,
): void {
  const seen = new Set<SeqId>();
  for (const r of requests) {
    if (seen.has(r.seq)) {
      throw new ArpoError(`policy.generate: sequence ${r.seq} requested twice`);
    }
    seen.add(r.seq);
    if (length(r.seq) === 0) {
      throw new ArpoError(`policy.generate: sequence ${r.seq} is empty (give it a prompt)`);
    }
  }
}
