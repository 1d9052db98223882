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
import { ArpoError } from "../../errors.ts";
import { parse } from "./_common.ts";
import { manifestJsonSchema } from "../../manifest/mod.ts";
import { loadExtensions } from "../../run/builtin.ts";

export const summary = "write the JSON Schema of manifests (for editors) to stdout or -o FILE";

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse("schema", "arpo schema [-o FILE]", args, {
    output: { type: "string", short: "o", arg: "FILE", help: "write here (default: stdout)" },
  }, { store: false, notes: summary });
  if (positionals.length) {
    throw new ArpoError(`schema: unexpected argument '${positionals[0]}'`, { exitCode: 2 });
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
