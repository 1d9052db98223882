/** `deno task arpo import FILE.tar`: check every digest, then add the run(s) to the store. */
import { importArchive } from "../../store/archive.ts";
import { ArpoError } from "../../errors.ts";
import { openStore, parse } from "./_common.ts";

export const summary = "add an exported run archive to the store (every digest checked)";

const USAGE = "deno task arpo import FILE.tar [--store DIR]";

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse("import", USAGE, args, {});
  if (positionals.length !== 1) {
    throw new ArpoError(`import: expected one archive file\nusage: ${USAGE}`, { exitCode: 2 });
  }
  const store = openStore(values.store);
  for (const id of await importArchive(store, positionals[0])) {
    console.log(`imported run ${id} into ${store.root}`);
  }
  return 0;
}
