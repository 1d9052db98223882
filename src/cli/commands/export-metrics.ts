/**
 * `arpo export-metrics RUN --tensorboard DIR`: write a run's metrics (training curves per step,
 * each stage's final metrics) as a TensorBoard event file under DIR/<name>-<id>/, which
 * `tensorboard --logdir DIR`, `wandb sync --sync-tensorboard` and MLflow read.
 */
import { ArpoError } from "../../errors.ts";
import { readRecord, resolveRunId } from "../../store/records.ts";
import { writeTensorboard } from "../../trackers/tensorboard.ts";
import { openStore, parse } from "./_common.ts";

export const summary = "write a run's metrics as TensorBoard event files (W&B, MLflow import them)";

const USAGE = "arpo export-metrics <run-id-prefix> --tensorboard DIR [--store DIR] [--json]";

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse("export-metrics", USAGE, args, {
    tensorboard: {
      type: "string",
      arg: "DIR",
      help: "write the event file under DIR/<run name>-<run id prefix>/ (tensorboard --logdir DIR)",
    },
    json: { type: "boolean" },
  });
  if (positionals.length !== 1 || values.tensorboard === undefined) {
    throw new ArpoError(
      `export-metrics: expected one run id and --tensorboard DIR\nusage: ${USAGE}`,
      {
        exitCode: 2,
      },
    );
  }
  const store = openStore(values.store);
  const rec = await readRecord(store, await resolveRunId(store, positionals[0]));
  const r = await writeTensorboard(store, rec, values.tensorboard);
  if (values.json) console.log(JSON.stringify({ run: rec.id, ...r }, null, 2));
  else console.log(`wrote ${r.scalars} values of ${r.tags} series to ${r.path}`);
  return 0;
}
