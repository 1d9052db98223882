/** `deno task arpo rerun <run>`: re-execute a run from its archive (not from the current files). */
import { readRecord, resolveRunId } from "../../store/records.ts";
import { loadExtensions } from "../../run/builtin.ts";
import { createReporter } from "../../run/progress.ts";
import { compareOutputs, reexecute } from "../../run/reexec.ts";
import { interruptSignal, openStore, parseReexec, REEXEC_FLAGS_USAGE } from "./_common.ts";

export const summary = "re-execute a run from its archived record into the store";

const USAGE = "deno task arpo rerun <run-id-prefix> [--store DIR] [--json] " + REEXEC_FLAGS_USAGE;

export async function run(args: string[]): Promise<number> {
  const { values, runId, liveTools, progress, level } = parseReexec("rerun", USAGE, args);
  const ext = await loadExtensions();
  const store = openStore(values.store);
  const rec = await readRecord(store, await resolveRunId(store, runId));
  const intr = interruptSignal();
  try {
    const r = await reexecute(store, rec, store, {
      ...ext,
      signal: intr.signal,
      liveTools,
      reporter: createReporter(values.json ? "none" : progress, level),
    });
    const diverged = compareOutputs(rec, r.record);
    if (values.json) {
      console.log(
        JSON.stringify(
          { runId: r.runId, from: rec.id, record: r.recordPath, divergences: diverged },
          null,
          2,
        ),
      );
    } else {
      console.log(`run ${r.runId}`);
      console.log(`record ${r.recordPath}`);
      if (r.runId !== rec.id) {
        console.log(`(the archived run was ${rec.id}: runtime versions differ)`);
      }
      console.log(
        diverged.length
          ? `outputs differ from the archived run: ${diverged[0].message}`
          : "outputs identical to the archived run",
      );
    }
    return 0;
  } finally {
    intr.dispose();
  }
}
