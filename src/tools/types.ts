/**
 * What the rollout engine sees of tools: a runtime that wraps the manifest's tool plugins and
 * enforces timeouts, output caps, retries, caching and recording. `call` never throws: failures
 * come back as result text (`Error: …`) with `error: true`.
 *
 * A call's result is the deterministic record (ToolCallRecord, every field set) and its timing
 * (ToolCallTiming): how the result was served and how long it took, which depend on the cache's
 * state and the machine, so they are kept out of every hashed artefact.
 */
import type { ToolCallRecord } from "../plugin/contracts.ts";

/**
 * Where a call's result came from: `live`, the tool ran for this call; `cached`, the cache served
 * it, or an identical concurrent call of a deterministic tool did; `replayed`, a recorded run's
 * result (non-deterministic tools on rerun/verify).
 */
export type ToolCallSource = "live" | "cached" | "replayed";

/** How one call was served: a timing, never part of a hashed artefact. */
export interface ToolCallTiming {
  /** Where in the rollout the call was made (ToolCallOptions.site), when the caller said. */
  site?: string;
  source: ToolCallSource;
  /**
   * Times the tool was called for this result (retries included); 0 when it was not called (a
   * cached, shared or replayed result, an unknown tag).
   */
  attempts: number;
  /** Wall time of the call. */
  durationMs: number;
  /**
   * Set when the call failed for infrastructure reasons (the machine, not the model's code: e.g.
   * "wall-clock guard fired twice (10 s)"): the result text is not the tool's answer, it is never
   * cached nor recorded as one, and the rollout that made the call should be marked and excluded.
   */
  infrastructureFailure?: string;
}

/** What ToolRuntime.call returns: the call's full record and how it was served. */
export type ToolCallOutcome = Required<ToolCallRecord> & ToolCallTiming;

/** What the caller may say about a call. */
export interface ToolCallOptions {
  /**
   * Where in the rollout the call is made (question, trajectory, call index: any stable text).
   * Records carry it, and replay of an earlier run uses it to hand each place its own result.
   */
  site?: string;
}

export interface ToolRuntime {
  /** Tags the model may call, in manifest order. */
  readonly tags: readonly string[];
  /** (tag, description) pairs for system prompts. */
  describe(): { tag: string; description: string }[];
  call(tag: string, input: string, opts?: ToolCallOptions): Promise<ToolCallOutcome>;
  close(): Promise<void>;
}
