/**
 * The tool runtime the rollout engine calls: it wraps the manifest's instantiated tool plugins and
 * enforces, for every call, a timeout (the tool gets an AbortSignal), an output cap (the middle is
 * cut, and the text says so), retries for retryable tools, a cache keyed by (tool digest, input),
 * replay of recorded results for non-deterministic tools, and a record of the call. `call` never
 * throws: failures become `Error: …` result text.
 *
 * A timeout is a wall-clock guard: it depends on the machine's load, not only on the call. A
 * call that times out is tried once more; when that times out too the outcome carries
 * `infrastructureFailure` and is neither cached nor replayed as the tool's answer.
 *
 * The cache stores a tool's raw text (before the cap), so changing the cap never needs new calls.
 * Records carry their timing (ToolCallTiming: live/cached/replayed, attempts, wall time), which
 * the caller keeps outside hashed artefacts.
 */
import { ArpoError } from "../errors.ts";
import type { Tool } from "../plugin/contracts.ts";
import { digestJson } from "../store/hash.ts";
import type { ToolCallOptions, ToolCallOutcome, ToolRuntime } from "./types.ts";

/** Key-value text storage for tool results (the run room backs it with the store). */
export interface ToolCache {
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): Promise<void>;
  /** Wait for every write still in progress (a write-behind cache; optional). */
  flush?(): Promise<void>;
}

/**
 * Recorded results of an earlier run, for replaying non-deterministic tools. `site` (when the
 * caller names one, see ToolCallOptions) picks the result recorded at the same place of the
 * rollout, so a tool that answered the same input differently in two places replays exactly.
 */
export interface ToolReplay {
  get(key: string, site?: string): Promise<string | undefined>;
}

/** One instantiated tool plugin. */
export interface ToolEntry {
  /** The manifest's name for it (`as:`, else the `use:` short name). */
  name: string;
  tool: Tool;
  /** The plugin's digest (source and options); keys the cache. */
  digest: string;
  /** Per-tool overrides of the runtime defaults. */
  timeoutMs?: number;
  /** Use the cache for this tool (default true; only deterministic tools are ever cached). */
  cache?: boolean;
  maxOutputChars?: number;
  retries?: number;
}

export interface ToolRuntimeOptions {
  /** Per-call timeout. Default 60 s. */
  timeoutMs?: number;
  /** Longest result text; longer ones lose their middle. Default 8000 characters. */
  maxOutputChars?: number;
  /** Extra attempts for tools that declare themselves retryable. Default 2. */
  retries?: number;
  /** First retry delay, doubled per attempt. Default 200 ms. */
  retryDelayMs?: number;
  cache?: ToolCache;
  replay?: ToolReplay;
  /** Call non-deterministic tools live even when a recorded result exists. */
  live?: boolean;
  /** Called with every record as it is made (progress output, metrics). */
  onRecord?: (record: ToolCallRecordEntry) => void;
}

/**
 * A call as the runtime recorded it: what `call` returned (the record and its timing), with the
 * cache/replay key and the tool's raw text.
 */
export type ToolCallRecordEntry = ToolCallOutcome & {
  /** Cache/replay key: toolCallKey(tool digest, input); "" for an unknown tag. */
  key: string;
  /** The tool's own text, before the cap and without "Error: " (unknown tag: `output`). */
  raw: string;
};

/**
 * What the cache and replay stores hold for one call, as JSON (`{"text":…,"error":…}`, then
 * `"timedOut":true` for a recorded timeout): a private detail of this module, the bytes of
 * existing cache entries.
 */
interface StoredResult {
  /** Raw result text (before the output cap); for errors, the message without "Error: ". */
  text: string;
  error: boolean;
  /** Replay only: the recorded call timed out (caches never hold timeouts). */
  timedOut?: boolean;
}

/** The cache/replay key of a call. */
export function toolCallKey(toolDigest: string, input: string): string {
  return digestJson(["arpo.tool-call.v1", toolDigest, input]);
}

/**
 * What replayFromRecords needs of a recorded call: a runtime record, or one read back from a
 * stage's `tool_calls` output (where `raw` is left out when it equals `output`).
 */
export type ReplayableRecord =
  & Pick<ToolCallRecordEntry, "key" | "output" | "error" | "timedOut" | "site">
  & Partial<Pick<ToolCallRecordEntry, "raw" | "infrastructureFailure">>;

/** The stored form of a record, for building a ToolReplay from an earlier run's records. */
export function storedResultOf(record: ReplayableRecord): string {
  const v: StoredResult = { text: record.raw ?? record.output, error: record.error };
  if (record.timedOut) v.timedOut = true;
  return JSON.stringify(v);
}

/**
 * A ToolReplay over records of an earlier run. A call made at a recorded site with the same key
 * gets that site's result, timeouts included (so the rerun's tree is the recorded one); a call
 * at an unrecorded site gets the first completed (not timed-out) result of its key. Infrastructure
 * failures are not the tool's answer: their calls are made live again.
 */
export function replayFromRecords(records: readonly ReplayableRecord[]): ToolReplay {
  const byKey = new Map<string, string>();
  const bySite = new Map<string, string>();
  for (const r of records) {
    if (r.key === "" || r.infrastructureFailure !== undefined) continue;
    const stored = storedResultOf(r);
    if (r.site !== undefined) {
      const s = JSON.stringify([r.site, r.key]);
      if (!bySite.has(s)) bySite.set(s, stored);
    }
    if (!r.timedOut && !byKey.has(r.key)) byKey.set(r.key, stored);
  }
  return {
    get: (k, site) =>
      Promise.resolve(
        (site !== undefined ? bySite.get(JSON.stringify([site, k])) : undefined) ?? byKey.get(k),
      ),
  };
}

/** Cut the middle out of text longer than `max` characters, saying how much was removed. */
export function capOutput(text: string, max: number): { text: string; truncated: boolean } {
  if (text.length <= max) return { text, truncated: false };
  const head = Math.ceil(max / 2);
  const tail = max - head;
  const cut = text.length - max;
  return {
    text: `${text.slice(0, head)}\n[… ${cut} characters truncated …]\n${
      tail > 0 ? text.slice(text.length - tail) : ""
    }`,
    truncated: true,
  };
}

class Timeout extends Error {}

function message(e: unknown): string {
  const m = e instanceof Error ? e.message || e.name : String(e);
  return m.replace(/^Error:\s*/, "");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a live call produced. */
interface LiveResult {
  result: StoredResult;
  timedOut: boolean;
  attempts: number;
  /** Set when every attempt hit the wall-clock guard (ToolCallTiming.infrastructureFailure). */
  infrastructureFailure?: string;
}

/** A deterministic tool's result, shared by identical concurrent calls. */
interface ResolvedResult extends LiveResult {
  /** It came from the cache (no live call). */
  cached: boolean;
}

/** Attempts a call gets when its attempts time out (the guard fired): the first and one retry. */
const GUARD_ATTEMPTS = 2;

/** The default ToolRuntime. */
export class DefaultToolRuntime implements ToolRuntime {
  readonly tags: readonly string[];
  readonly #byTag = new Map<string, ToolEntry>();
  readonly #records: ToolCallRecordEntry[] = [];
  readonly #inflight = new Map<string, Promise<ResolvedResult>>();
  readonly #opts:
    & Required<Omit<ToolRuntimeOptions, "cache" | "replay" | "onRecord">>
    & ToolRuntimeOptions;

  constructor(entries: readonly ToolEntry[], opts: ToolRuntimeOptions = {}) {
    for (const e of entries) {
      const prev = this.#byTag.get(e.tool.tag);
      if (prev) {
        throw new ArpoError(
          `tools '${prev.name}' and '${e.name}' both use the tag <${e.tool.tag}>; each tool ` +
            "needs its own tag (rename one with its plugin options)",
        );
      }
      this.#byTag.set(e.tool.tag, e);
    }
    this.tags = entries.map((e) => e.tool.tag);
    this.#opts = {
      timeoutMs: 60_000,
      maxOutputChars: 8000,
      retries: 2,
      retryDelayMs: 200,
      live: false,
      ...opts,
    };
  }

  describe(): { tag: string; description: string }[] {
    return [...this.#byTag.values()].map((e) => ({
      tag: e.tool.tag,
      description: e.tool.description,
    }));
  }

  /** Every call so far, in completion order (timings: keep them out of hashed artefacts). */
  records(): readonly ToolCallRecordEntry[] {
    return this.#records;
  }

  /** The records so far, removed from the runtime (for long runs that persist them per step). */
  drainRecords(): ToolCallRecordEntry[] {
    return this.#records.splice(0, this.#records.length);
  }

  async call(tag: string, input: string, opts: ToolCallOptions = {}): Promise<ToolCallOutcome> {
    const t0 = performance.now();
    const site = opts.site;
    const entry = this.#byTag.get(tag);
    if (!entry) {
      const text = `Error: unknown tool <${tag}>; available: ${
        this.tags.map((t) => `<${t}>`).join(", ") || "none"
      }`;
      return this.#finish({
        tool: tag,
        tag,
        input,
        key: "",
        raw: text,
        output: text,
        error: true,
        timedOut: false,
        truncated: false,
        site,
        source: "live",
        attempts: 0,
        durationMs: performance.now() - t0,
      });
    }
    const key = toolCallKey(entry.digest, input);
    const cap = entry.maxOutputChars ?? this.#opts.maxOutputChars;
    const deterministic = entry.tool.deterministic !== false;
    const base = { tool: entry.name, tag, input, key, site };
    const cache = entry.cache === false ? undefined : this.#opts.cache;

    // Non-deterministic tools: a recorded result (unless live), else a live call of their own.
    // Deterministic ones: identical calls running at the same time share one cache lookup and,
    // on a miss, one live call (a group of trajectories often issues the same query at once).
    // It is registered before the lookup, so a call that starts while the lookup or the live
    // call is pending joins it instead of racing it to the store.
    let got: LiveResult, source: ToolCallRecordEntry["source"];
    if (!deterministic) {
      const hit = this.#opts.live || !this.#opts.replay
        ? undefined
        : await this.#lookup(this.#opts.replay, key, site);
      got = hit
        ? { result: hit, timedOut: hit.timedOut === true, attempts: 0 }
        : await this.#live(entry, input, key, undefined);
      source = hit ? "replayed" : "live";
    } else {
      let resolving = this.#inflight.get(key);
      const shared = resolving !== undefined;
      if (!resolving) {
        resolving = this.#cachedOrLive(entry, input, key, cache);
        this.#inflight.set(key, resolving);
        resolving.finally(() => this.#inflight.delete(key)).catch(() => {});
      }
      const r = await resolving;
      got = r;
      source = shared || r.cached ? "cached" : "live";
    }
    const { result, timedOut, attempts, infrastructureFailure } = got;
    return this.#finish({
      ...base,
      ...this.#render(tag, result, cap),
      raw: result.text,
      timedOut,
      source,
      // Attempts are the live call's own: none for a recorded, cached or shared result.
      attempts: source === "live" ? attempts : 0,
      durationMs: performance.now() - t0,
      ...(infrastructureFailure !== undefined ? { infrastructureFailure } : {}),
    });
  }

  /** A deterministic tool's result: from the cache when it has one, else from a live call. */
  async #cachedOrLive(
    entry: ToolEntry,
    input: string,
    key: string,
    cache: ToolCache | undefined,
  ): Promise<ResolvedResult> {
    const hit = cache ? await this.#lookup(cache, key, undefined) : undefined;
    if (hit) return { result: hit, timedOut: hit.timedOut === true, attempts: 0, cached: true };
    return { ...(await this.#live(entry, input, key, cache)), cached: false };
  }

  async #live(
    entry: ToolEntry,
    input: string,
    key: string,
    cache: ToolCache | undefined,
  ): Promise<LiveResult> {
    const timeoutMs = entry.timeoutMs ?? this.#opts.timeoutMs;
    // Failures other than timeouts: retried only for tools that say they are transient.
    const maxFailures = entry.tool.retryable ? 1 + (entry.retries ?? this.#opts.retries) : 1;
    let result: StoredResult = { text: "", error: true };
    let timedOut = false;
    let attempts = 0;
    let guardFired = 0;
    for (;;) {
      if (attempts > 0) await sleep(this.#opts.retryDelayMs * 2 ** (attempts - 1));
      attempts++;
      ({ result, timedOut } = await this.#attempt(entry.tool, input, timeoutMs));
      if (timedOut) {
        if (++guardFired < GUARD_ATTEMPTS) continue;
        break;
      }
      const empty = !result.error && result.text.trim() === "";
      if (!result.error && !empty) break;
      if (attempts - guardFired >= maxFailures) break;
    }
    if (timedOut) {
      // The guard fired twice: the machine, not the input, decided this result.
      return {
        result,
        timedOut,
        attempts,
        infrastructureFailure: `wall-clock guard fired twice (${result.text})`,
      };
    }
    // Transient failures of retryable tools (the network) are not a result worth keeping.
    if (cache && !(result.error && entry.tool.retryable)) {
      await cache.put(key, JSON.stringify(result)).catch(() => {});
    }
    return { result, timedOut, attempts };
  }

  async close(): Promise<void> {
    for (const e of this.#byTag.values()) {
      try {
        await e.tool.close?.();
      } catch { /* closing is best effort */ }
    }
  }

  async #lookup(
    store: ToolReplay,
    key: string,
    site: string | undefined,
  ): Promise<StoredResult | undefined> {
    let raw: string | undefined;
    try {
      raw = await store.get(key, site);
    } catch {
      return undefined;
    }
    if (raw === undefined) return undefined;
    try {
      const v = JSON.parse(raw);
      if (typeof v?.text === "string" && typeof v?.error === "boolean") return v;
    } catch { /* a damaged entry is a miss */ }
    return undefined;
  }

  async #attempt(
    tool: Tool,
    input: string,
    timeoutMs: number,
  ): Promise<{ result: StoredResult; timedOut: boolean }> {
    const ac = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        ac.abort(new Timeout());
        reject(new Timeout());
      }, timeoutMs);
    });
    // A tool that ignores the signal keeps running; its late result or error is dropped.
    const running = Promise.resolve().then(() =>
      tool.call(input, { signal: ac.signal, timeoutMs })
    );
    running.catch(() => {});
    try {
      const out = await Promise.race([running, deadline]);
      if (typeof out !== "string") {
        return {
          result: { text: `tool returned ${typeof out}, not text`, error: true },
          timedOut: false,
        };
      }
      return { result: { text: out, error: false }, timedOut: false };
    } catch (e) {
      if (e instanceof Timeout || (e instanceof Error && e.name === "TimeoutError")) {
        const s = +(timeoutMs / 1000).toFixed(3);
        const text = e instanceof Timeout ? `${tool.tag} timed out after ${s}s` : message(e);
        return { result: { text, error: true }, timedOut: true };
      }
      return { result: { text: message(e), error: true }, timedOut: false };
    } finally {
      clearTimeout(timer);
    }
  }

  #render(
    tag: string,
    r: StoredResult,
    cap: number,
  ): { output: string; error: boolean; truncated: boolean } {
    let text: string;
    if (r.error) text = `Error: ${r.text}`;
    else if (r.text.trim() === "") text = `${tag} returned empty output.`;
    else text = r.text;
    const c = capOutput(text, cap);
    return { output: c.text, error: r.error, truncated: c.truncated };
  }

  #finish(rec: ToolCallRecordEntry): ToolCallOutcome {
    this.#records.push(rec);
    try {
      this.#opts.onRecord?.(rec);
    } catch { /* a failing observer must not fail the call */ }
    const { key: _k, raw: _r, ...outcome } = rec;
    return outcome;
  }
}

/** Build the runtime over instantiated tools. */
export function createToolRuntime(
  entries: readonly ToolEntry[],
  opts: ToolRuntimeOptions = {},
): DefaultToolRuntime {
  return new DefaultToolRuntime(entries, opts);
}
