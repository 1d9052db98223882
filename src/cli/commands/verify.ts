/**
 * `deno task arpo verify <run>`: re-execute the run from its archive into a scratch store and
 * compare every output digest. Exit 0 when identical, 1 naming the first differing artefact.
 */
import { resolveRunId } from "../../store/records.ts";
import { loadExtensions } from "../../run/builtin.ts";
import { createReporter } from "../../run/progress.ts";
import { verifyRun } from "../../run/reexec.ts";
import { interruptSignal, openStore, parseReexec, REEXEC_FLAGS_USAGE } from "./_common.ts";

export const summary = "re-execute a run into a scratch store and compare every output digest";

const USAGE = "deno task arpo verify <run-id-prefix> [--store DIR] [--json] [--keep] " +
  REEXEC_FLAGS_USAGE;

export async function run(args: string[]): Promise<number> {
  const { values, runId, liveTools, progress, level } = parseReexec("verify", USAGE, args, [
    "keep",
  ]);
  if (values.help) {
    console.log(`usage: ${USAGE}`);
    return 0;
  }
  const ext = await loadExtensions();
  const store = openStore(values.store);
  const id = await resolveRunId(store, runId);
  const intr = interruptSignal();
  try {
    const r = await verifyRun(store, id, {
      ...ext,
      keep: values.keep === true,
      signal: intr.signal,
      liveTools,
      reporter: createReporter(values.json ? "none" : progress, level),
    });
    if (values.json) {
      console.log(JSON.stringify({ ...r, identical: r.divergences.length === 0 }, null, 2));
    } else if (r.divergences.length) {
      console.log(`run ${id}: NOT reproduced — ${r.divergences[0].message}`);
      if (r.divergences.length > 1) console.log(`(${r.divergences.length - 1} more difference(s))`);
    } else {
      console.log(
        `run ${id}: verified — all ${r.outputs} output digests identical on re-execution`,
      );
    }
    if (values.keep) console.log(`scratch store kept at ${r.scratch}`);
    return r.divergences.length ? 1 : 0;
  } finally {
    intr.dispose();
  }
}
