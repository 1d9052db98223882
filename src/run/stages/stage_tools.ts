/**
 * The tool runtime of a rollout stage: the manifest's tools with the store's cache (per tool, as
 * `runtime.tool_cache` says), replay of the archived run's recorded calls for non-deterministic
 * tools on `rerun`/`verify` (unless `--live-tools`), and a record of every call that the stage
 * stores as its `tool_calls` output. Records are collected in tree order (question, tool-call id),
 * so the output depends neither on scheduling nor on chunking; whether a result was live, cached
 * or replayed, and how long it took, are timings only (rolloutTasks reports them).
 */
import { ArpoError, describeError } from "../../errors.ts";
import { canonicalJson } from "../../store/canonical.ts";
import type { ToolCallOptions, ToolCallOutcome, ToolRuntime } from "../../tools/types.ts";
import {
  createToolRuntime,
  type DefaultToolRuntime,
  type ReplayableRecord,
  replayFromRecords,
  toolCallKey,
  type ToolCallRecordEntry,
  type ToolEntry,
  type ToolReplay,
  type ToolRuntimeOptions,
} from "../../tools/runtime.ts";
import type { ToolCallRecord } from "../../plugin/contracts.ts";
import { type QuestionRollout, toolCallSite } from "../../rollout/mod.ts";
import type { StageContext, StageStore } from "../stages.ts";
import { isToolCallsOutput } from "../tool_cache.ts";

/** `runtime.tool_cache` of the manifest: on for everything, off, or per tool name (default on). */
export function toolCacheEnabled(
  setting: boolean | Readonly<Record<string, boolean>> | undefined,
  tool: string,
): boolean {
  if (setting === undefined || typeof setting === "boolean") return setting !== false;
  return setting[tool] !== false;
}

/**
 * One line of a stage's `tool_calls` output: a recorded call (ToolCallRecord, with its cache key
 * and raw text) serialized with its site, as canonical JSON with these snake_case names. This is
 * the stored format (replay reads it back): toolCallLine writes it, field by field.
 */
export interface ToolCallLine {
  type: "tool_call";
  /** The rolloutTasks label (a stage may roll out several times: steps, evaluations). */
  rollout: string;
  task_id: string;
  /** Key path of the calling trajectory, and the call's 1-based index along it. */
  path: string;
  call: number;
  tool: string;
  tag: string;
  /** toolCallKey(tool digest, input); "" for an unknown tag. */
  key: string;
  input: string;
  /** The result text the model saw. */
  output: string;
  /** The tool's own text before the cap and "Error: " (only where it differs from `output`). */
  raw?: string;
  error: boolean;
  /** ToolCallRecord.timedOut. */
  timed_out: boolean;
  truncated: boolean;
}

/** Where a stage's call was made: the rollout (its label), the question, the tree's call. */
interface LineSite {
  rollout: string;
  taskId: string;
  /** Key path of the calling trajectory, and the call's 1-based index along it. */
  path: string;
  call: number;
}

/**
 * The `tool_calls` line of the call `c` made at `site`: the one mapping from a recorded call to
 * the stored format (every field explicit; `raw` only where it differs from `output`).
 */
function toolCallLine(
  site: LineSite,
  c: Required<ToolCallRecord>,
  key: string,
  raw: string | undefined,
): ToolCallLine {
  const line: ToolCallLine = {
    type: "tool_call",
    rollout: site.rollout,
    task_id: site.taskId,
    path: site.path,
    call: site.call,
    tool: c.tool,
    tag: c.tag,
    key,
    input: c.input,
    output: c.output,
    error: c.error,
    timed_out: c.timedOut,
    truncated: c.truncated,
  };
  if (raw !== undefined && raw !== c.output) line.raw = raw;
  return line;
}

function scopedSite(label: string, site: string): string {
  return JSON.stringify([label, site]);
}

/** A ToolRuntime that records, caches and replays for a stage (see the module comment). */
export class StageTools implements ToolRuntime {
  readonly runtime: DefaultToolRuntime;
  readonly #digests = new Map<string, string>();
  #lines: string[] = [];

  constructor(entries: readonly ToolEntry[], opts: ToolRuntimeOptions = {}) {
    this.runtime = createToolRuntime(entries, opts);
    for (const e of entries) this.#digests.set(e.tool.tag, e.digest);
  }

  get tags(): readonly string[] {
    return this.runtime.tags;
  }

  describe(): { tag: string; description: string }[] {
    return this.runtime.describe();
  }

  call(tag: string, input: string, opts?: ToolCallOptions): Promise<ToolCallOutcome> {
    return this.runtime.call(tag, input, opts);
  }

  /** The tool plugins belong to the run (the runner closes them); nothing to do here. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The runtime as one rollout (`label`) calls it: the engine's sites are prefixed with it. */
  scope(label: string): ToolRuntime {
    return {
      tags: this.tags,
      describe: () => this.describe(),
      call: (tag, input, opts) =>
        this.call(tag, input, { site: scopedSite(label, opts?.site ?? "") }),
      close: () => Promise.resolve(),
    };
  }

  /**
   * Record the tool calls of `questions`, rolled out through `scope(label)` since the last
   * collect, in tree order, with the raw text the runtime kept for each.
   */
  collect(label: string, questions: readonly QuestionRollout[]): void {
    const bySite = new Map<string, ToolCallRecordEntry>();
    for (const r of this.runtime.drainRecords()) {
      if (r.site !== undefined && !bySite.has(r.site)) bySite.set(r.site, r);
    }
    for (const q of questions) {
      const tree = q.tree;
      for (const c of tree.toolCalls) {
        const path = tree.trajectories[c.trajectory]?.path ?? String(c.trajectory);
        const rec = bySite.get(scopedSite(label, toolCallSite(q.task.id, path, c.call)));
        const digest = this.#digests.get(c.tag);
        const key = rec?.key ?? (digest !== undefined ? toolCallKey(digest, c.input) : "");
        const site = { rollout: label, taskId: q.task.id, path, call: c.call };
        this.#lines.push(canonicalJson(toolCallLine(site, c, key, rec?.raw)));
      }
    }
  }

  /** Lines collected and not yet flushed. */
  get pending(): number {
    return this.#lines.length;
  }

  /**
   * Store the calls collected since the last flush as one JSON-lines object (empty when there
   * were none) and return its digest: the stage's `tool_calls` output (or one part of it).
   */
  async flush(store: Pick<StageStore, "putBytes">): Promise<string> {
    const text = this.#lines.length ? this.#lines.join("\n") + "\n" : "";
    this.#lines = [];
    return await store.putBytes(new TextEncoder().encode(text));
  }
}

/** Parse a `tool_calls` object back (replay, reports, tests). */
export function parseToolCallLines(text: string, where = "tool_calls"): ToolCallLine[] {
  const out: ToolCallLine[] = [];
  text.split("\n").forEach((line, i) => {
    if (line === "") return;
    let v: ToolCallLine;
    try {
      v = JSON.parse(line);
    } catch {
      throw new ArpoError(`${where}, line ${i + 1}: not valid JSON.`);
    }
    if (
      v?.type !== "tool_call" || typeof v.key !== "string" || typeof v.output !== "string" ||
      typeof v.error !== "boolean" || typeof v.timed_out !== "boolean" ||
      typeof v.rollout !== "string" || typeof v.task_id !== "string" ||
      typeof v.path !== "string" || typeof v.call !== "number"
    ) {
      throw new ArpoError(
        `${where}, line ${i + 1}: expected a tool_call record (rollout, task_id, path, call, ` +
          `key, output, error, timed_out); found ${line.slice(0, 80)}`,
      );
    }
    out.push(v);
  });
  return out;
}

/** The replay records of parsed lines (sites as StageTools.scope names them). */
export function replayRecordsOf(lines: readonly ToolCallLine[]): ReplayableRecord[] {
  return lines.map((l) => ({
    key: l.key,
    output: l.output,
    raw: l.raw,
    error: l.error,
    timedOut: l.timed_out,
    site: scopedSite(l.rollout, toolCallSite(l.task_id, l.path, l.call)),
  }));
}

/**
 * On rerun/verify: the archived stage's recorded tool calls as a ToolReplay, read on first use.
 * Records that cannot be read are reported once and treated as absent (the tools run live).
 */
function archivedReplay(ctx: StageContext): ToolReplay | undefined {
  const a = ctx.archived;
  if (!a?.stage || a.liveTools) return undefined;
  const outputs = Object.entries(a.stage.outputs).filter(([n]) => isToolCallsOutput(n));
  if (!outputs.length) return undefined;
  let loaded: Promise<ToolReplay> | undefined;
  const load = async (): Promise<ToolReplay> => {
    const records: ReplayableRecord[] = [];
    try {
      for (const [name, digest] of outputs) {
        const text = new TextDecoder().decode(await ctx.store.getBytes(digest));
        const where = `run ${a.record.id.slice(0, 12)}, stage '${ctx.name}' output '${name}'`;
        records.push(...replayRecordsOf(parseToolCallLines(text, where)));
      }
    } catch (e) {
      ctx.log(
        `cannot read the recorded tool calls to replay (${describeError(e)}); ` +
          "non-deterministic tools run live",
      );
      return { get: () => Promise.resolve(undefined) };
    }
    return replayFromRecords(records);
  };
  return {
    get(key, site) {
      loaded ??= load();
      return loaded.then((r) => r.get(key, site));
    },
  };
}

/**
 * The stage's tool runtime over the manifest's tools (see StageTools). Not closed by the stage:
 * the tool plugins belong to the run and are closed by the runner after the last stage.
 */
export function stageTools(ctx: StageContext): StageTools {
  const runtime = ctx.manifest.runtime as
    | { tool_cache?: boolean | Record<string, boolean> }
    | undefined;
  return new StageTools(
    [...ctx.plugins.tools.values()].map((t) => ({
      name: t.name,
      tool: t.plugin,
      digest: t.digest,
      cache: toolCacheEnabled(runtime?.tool_cache, t.name),
    })),
    {
      cache: ctx.toolCache,
      replay: archivedReplay(ctx),
      live: ctx.archived?.liveTools === true,
    },
  );
}
