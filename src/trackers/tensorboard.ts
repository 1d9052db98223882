/**
 * `runtime.trackers: [tensorboard]` and `arpo export-metrics RUN --tensorboard DIR`: a run's
 * scalars (scalars.ts) as one TensorBoard event file in `<dir>/<run name>-<run id prefix>/`.
 * Wall times are the run's start plus the step (the record's timings, never the clock now), so
 * exporting a run twice writes the same bytes.
 */
import { join } from "node:path";
import { ArpoError } from "../errors.ts";
import type { RunRecord } from "../store/records.ts";
import type { Store } from "../store/store.ts";
import { runScalars } from "./scalars.ts";
import { eventFile } from "./tfevents.ts";

/** The trackers `runtime.trackers` may name. */
export const TRACKERS = ["tensorboard"] as const;
export type Tracker = typeof TRACKERS[number];

/** Where the run's event file goes under `dir`. */
export function runLogDir(dir: string, rec: RunRecord): string {
  const name = rec.name.replace(/[^A-Za-z0-9._-]+/g, "_") || "run";
  return join(dir, `${name}-${rec.id.slice(0, 12)}`);
}

export async function writeTensorboard(
  store: Store,
  rec: RunRecord,
  dir: string,
): Promise<{ path: string; scalars: number; tags: number }> {
  const scalars = await runScalars(store, rec);
  const start = typeof rec.timings.started_unix_ms === "number"
    ? Math.floor(rec.timings.started_unix_ms / 1000)
    : 0;
  const bytes = eventFile(scalars.map((s) => ({ ...s, wallTime: start + s.step })), start);
  const logDir = runLogDir(dir, rec);
  const path = join(logDir, `events.out.tfevents.${start}.arpo-${rec.id.slice(0, 12)}`);
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.mkdir(logDir, { recursive: true });
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new ArpoError(`tensorboard: cannot write ${path}: ${(e as Error).message}`);
  }
  return { path, scalars: scalars.length, tags: new Set(scalars.map((s) => s.tag)).size };
}
