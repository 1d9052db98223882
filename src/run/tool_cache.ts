/**
 * The tool cache of a store: one small JSON file per (tool digest, input) key under
 * `<store>/cache/tools/`, written atomically (temp file, fsync, rename) like every mutable file of
 * the store, so concurrent runs race only to identical renames and a killed writer leaves no
 * partial entry. The runtime validates what it reads back; a damaged entry is a miss. A timed-out
 * result (the wall-clock guard: an infrastructure failure, not the tool's answer) is never
 * written, whoever offers it.
 */
import type { Json } from "../store/canonical.ts";
import { DIGEST_RE, digestJson } from "../store/hash.ts";
import type { Store } from "../store/store.ts";
import type { ToolCache } from "../tools/runtime.ts";

/** Meta name of a key (the `cache` folder also holds plugin-derived data, keyed differently). */
function entryName(key: string): string {
  // Keys are digests (toolCallKey); anything else would not be a safe file name.
  if (!DIGEST_RE.test(key)) throw new Error(`tool cache key '${key}' is not a sha256 digest`);
  return `tools/${key}`;
}

/** A stored result that records a timeout or an infrastructure failure (never cached). */
function isInfrastructureResult(value: string): boolean {
  try {
    const v = JSON.parse(value);
    return v?.timedOut === true || v?.infrastructureFailure !== undefined;
  } catch {
    return false;
  }
}

/** The scope of a run's tool cache entries: what besides source and input shapes a tool's output. */
export function toolCacheScope(
  manifest: { seed: number; plugins: { tools: unknown } },
  data: Record<string, string>,
): Json {
  return { seed: manifest.seed, tools: manifest.plugins.tools as Json, data };
}

/**
 * A ToolCache over `store`, written behind: `put` returns at once and the entry is written
 * (atomically) in the background, so a tool call never waits for the store's fsync; until the
 * write has landed, `get` answers from memory. `flush` waits for every write (the runner calls
 * it after each stage); a write that fails is a miss later, never an error.
 */
export function storeToolCache(store: Store, scope?: Json): ToolCache & { flush(): Promise<void> } {
  // The runtime keys calls by (tool source digest, input). A tool's output also depends on its
  // `with:` options, the experiment seed (python seeds `random` from it) and the data files the
  // run read (a search corpus), so the caller's scope folds those into every key.
  const scoped = scope === undefined
    ? (key: string) => key
    : (key: string) => digestJson({ key, scope });
  const writing = new Map<string, { value: string; done: Promise<void> }>();
  return {
    async get(key) {
      const name = entryName(scoped(key));
      const w = writing.get(name);
      if (w !== undefined) return w.value;
      const v = await store.readMeta<{ value?: unknown }>("cache", name);
      return typeof v?.value === "string" ? v.value : undefined;
    },
    put(key, value) {
      if (isInfrastructureResult(value)) return Promise.resolve();
      const name = entryName(scoped(key));
      if (writing.has(name)) return Promise.resolve();
      const done = store.writeMeta("cache", name, { value })
        .catch(() => {})
        .finally(() => writing.delete(name));
      writing.set(name, { value, done });
      return Promise.resolve();
    },
    async flush() {
      while (writing.size > 0) await Promise.all([...writing.values()].map((w) => w.done));
    },
  };
}

/**
 * Stage outputs that hold recorded tool calls (`tool_calls`, `tool_calls_<n>`): inputs of a
 * re-execution (non-deterministic tools replay from them), not only results to compare.
 */
export function isToolCallsOutput(name: string): boolean {
  return name === "tool_calls" || name.startsWith("tool_calls_");
}
