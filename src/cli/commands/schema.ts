/**
 * `deno task arpo schema [-o FILE]`: write the JSON Schema of manifests (stdout by default).
 *
 * Editors with the YAML language server (VS Code's YAML extension, Neovim, Helix…) then complete
 * and check a manifest that starts with a modeline pointing at the file:
 *
 * ```yaml
 * # yaml-language-server: $schema=../manifest.schema.json
 * name: quickstart
 * ```
 *
 * The path in the modeline is relative to the manifest.
 */
import { parseArgs } from "node:util";
import { ArpoError } from "../../errors.ts";
import { manifestJsonSchema } from "../../manifest/mod.ts";
import { loadExtensions } from "../../run/builtin.ts";

export const summary = "write the JSON Schema of manifests (for editors) to stdout or -o FILE";

export async function run(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: { output: { type: "string", short: "o" }, help: { type: "boolean", short: "h" } },
      allowPositionals: false,
    }));
  } catch (e) {
    throw new ArpoError(`schema: ${(e as Error).message} (usage: arpo schema [-o FILE])`, {
      exitCode: 2,
    });
  }
  if (values.help) {
    console.log("usage: deno task arpo schema [-o FILE]\n\n" + summary);
    return 0;
  }
  const text = JSON.stringify(manifestJsonSchema((await loadExtensions()).stages), null, 2) + "\n";
  if (values.output === undefined) {
    await Deno.stdout.write(new TextEncoder().encode(text));
    return 0;
  }
  try {
    // Write beside the target and rename, so an editor never reads a half-written schema.
    const tmp = `${values.output}.tmp-${Deno.pid}`;
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, values.output);
  } catch (e) {
    throw new ArpoError(`schema: cannot write ${values.output}: ${(e as Error).message}`);
  }
  console.error(`wrote ${values.output}`);
  return 0;
}
