/** `deno task arpo export <run> -o FILE.tar`: the run record and every object it references. */
import { resolveRunId } from "../../store/records.ts";
import { exportRun } from "../../store/archive.ts";
import { ArpoError } from "../../errors.ts";
import { openStore, parse } from "./_common.ts";

export const summary = "write a run and every object it references to one tar file";

const USAGE = "deno task arpo export <run-id-prefix> -o FILE.tar [--store DIR]";

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse("export", USAGE, args, {
    output: { type: "string", short: "o", arg: "FILE.tar", help: "the archive to write" },
  });
  if (positionals.length !== 1 || !values.output) {
    throw new ArpoError(`export: expected one run id and -o FILE.tar\nusage: ${USAGE}`, {
      exitCode: 2,
    });
  }
  const store = openStore(values.store);
  const id = await resolveRunId(store, positionals[0]);
  const n = await exportRun(store, id, values.output);
  console.log(`exported run ${id} (${n} objects) to ${values.output}`);
  return 0;
}
