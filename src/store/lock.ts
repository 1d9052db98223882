/**
 * Work-in-progress locks: `<store>/locks/<name>.lock`, one per piece of work (a stage key), so two
 * processes that need the same result compute it once: the first takes the lock, the second waits
 * for it to go and then finds the result in the store.
 *
 * A lock is created atomically with its content (written to tmp/, then hard-linked to its name,
 * which fails when the name exists) and holds the owner's pid, host and process start time. A
 * lock whose owner is gone (same host, no process with that pid and start time) is stale and is
 * broken; so is one that is not a lock file at all. A lock held on another host cannot be checked
 * and is waited for: the wait message names the file to remove if that host is gone.
 */
import { hostname } from "node:os";
import { join } from "node:path";
import { ArpoError } from "../errors.ts";
import { atomicWrite, type Store } from "./store.ts";

/** What a lock file holds. */
export interface LockOwner {
  pid: number;
  host: string;
  /** The owner's start time in clock ticks since boot (/proc/<pid>/stat), to tell pid reuse. */
  started: number | null;
}

export interface HeldLock {
  /** Whether another process held the lock first (its result may now be in the store). */
  waited: boolean;
  release(): Promise<void>;
}

export interface LockOptions {
  signal?: AbortSignal;
  /** Called once when the lock is found held by a live owner, before waiting. */
  onWait?: (owner: LockOwner, path: string) => void;
  /** Poll interval while waiting (ms). */
  pollMs?: number;
}

/** Start time of process `pid` (field 22 of /proc/<pid>/stat); null where /proc has none. */
function processStart(pid: number): number | null | "gone" {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      // No /proc at all (not Linux): liveness cannot be told.
      try {
        Deno.statSync("/proc/self/stat");
      } catch {
        return null;
      }
      return "gone";
    }
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const t = Number(rest[19]);
  return Number.isFinite(t) ? t : null;
}

/** This process, as a lock owner. */
export function selfOwner(): LockOwner {
  const s = processStart(Deno.pid);
  return { pid: Deno.pid, host: hostname(), started: typeof s === "number" ? s : null };
}

/** Whether the owner of a lock is certainly gone. */
function ownerGone(o: LockOwner): boolean {
  if (o.host !== hostname()) return false;
  const s = processStart(o.pid);
  if (s === "gone") return true;
  return s !== null && o.started !== null && s !== o.started;
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const v = JSON.parse(text);
    if (
      Number.isInteger(v?.pid) && typeof v?.host === "string" &&
      (v.started === null || typeof v.started === "number")
    ) return { pid: v.pid, host: v.host, started: v.started };
  } catch {
    // not a lock file
  }
  return undefined;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((res, rej) => {
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", abort);
      res();
    }
    function abort() {
      clearTimeout(t);
      rej(signal!.reason ?? new DOMException("aborted", "AbortError"));
    }
    if (signal?.aborted) abort();
    else signal?.addEventListener("abort", abort, { once: true });
  });
}

/** Path of lock `name` in `store`. */
export function lockPath(store: Store, name: string): string {
  return join(store.root, "locks", `${name}.lock`);
}

/**
 * Take lock `name`, waiting while a live owner holds it and breaking it when its owner is gone.
 * An abort of `signal` while waiting rejects with the signal's reason.
 */
export async function acquireLock(
  store: Store,
  name: string,
  opts: LockOptions = {},
): Promise<HeldLock> {
  if (!/^[0-9A-Za-z._-]+$/.test(name)) throw new ArpoError(`'${name}' is not a lock name`);
  const path = lockPath(store, name);
  await Deno.mkdir(join(store.root, "locks"), { recursive: true });
  const me = selfOwner();
  const body = new TextEncoder().encode(JSON.stringify(me) + "\n");
  let waited = false;
  for (;;) {
    opts.signal?.throwIfAborted();
    // Written whole under a temp name, then linked: a lock is never seen half-written.
    const tmp = join(store.tmpDir, `lock-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
    await atomicWrite(store.tmpDir, tmp, body);
    try {
      await Deno.link(tmp, path);
      return { waited, release: () => releaseLock(path, body) };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    } finally {
      await Deno.remove(tmp).catch(() => {});
    }
    const text = await readLock(path);
    if (text === undefined) continue; // released meanwhile
    const owner = parseOwner(text);
    if (!owner || ownerGone(owner)) {
      await breakLock(path, text);
      continue;
    }
    if (!waited) opts.onWait?.(owner, path);
    waited = true;
    await sleep(opts.pollMs ?? 100, opts.signal);
  }
}

/** A lock's text; undefined when there is none; "" when it is not a readable file. */
async function readLock(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    return e instanceof Deno.errors.NotFound ? undefined : "";
  }
}

/** Remove our own lock (only if it is still ours). */
async function releaseLock(path: string, body: Uint8Array): Promise<void> {
  const text = await Deno.readTextFile(path).catch(() => undefined);
  if (text === new TextDecoder().decode(body)) await Deno.remove(path).catch(() => {});
}

/**
 * Remove a stale lock whose content was `seen`. Breakers serialize on `<lock>.break` (itself
 * broken after a minute, should a breaker die), and re-read the lock first, so a fresh lock taken
 * by another process after the stale one went is never removed.
 */
async function breakLock(path: string, seen: string): Promise<void> {
  const guard = `${path}.break`;
  try {
    await Deno.writeTextFile(guard, String(Deno.pid), { createNew: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    const st = await Deno.stat(guard).catch(() => undefined);
    const age = st?.mtime ? Date.now() - st.mtime.getTime() : 0;
    if (age > 60_000) await Deno.remove(guard).catch(() => {});
    await sleep(20);
    return;
  }
  try {
    if ((await readLock(path)) === seen) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  } finally {
    await Deno.remove(guard).catch(() => {});
  }
}
