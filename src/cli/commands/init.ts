/**
 * `arpo init DIR`: a new experiment folder that runs as is: `experiment.yaml` (the schema
 * modeline, the guide's manifest), the guide's tool, reward and benchmark plugins and their data
 * (the `file=` code blocks of docs/PLUGINS.md, so the folder is exactly what the guide explains),
 * a README, a `deno.json` whose import map lets `deno check` and editors resolve `arpo-lab`, and
 * a `.gitignore` for the store. Written into a temporary sibling and renamed: never half there.
 */
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { ArpoError } from "../../errors.ts";
import { parse } from "./_common.ts";

export const summary = "start a new experiment folder (manifest, a plugin of each kind, README)";

const USAGE = "arpo init <dir>";

const CHECKOUT = fromFileUrl(new URL("../../../", import.meta.url)).replace(/\/$/, "");
const GUIDE = join(CHECKOUT, "docs", "PLUGINS.md");
/** The guide's manifest, which becomes experiment.yaml. */
const GUIDE_MANIFEST = "dates.yaml";

/** The `file=NAME` code blocks of a Markdown guide, by name. */
export function guideFiles(markdown: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of markdown.matchAll(/^```[\w-]+[ \t]+file=(\S+)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm)) {
    out.set(m[1], m[2]);
  }
  return out;
}

/** What `arpo init` writes, by path relative to the folder. */
export async function scaffold(name: string): Promise<Map<string, string>> {
  const guide = guideFiles(await Deno.readTextFile(GUIDE));
  const manifest = guide.get(GUIDE_MANIFEST);
  if (!manifest) throw new ArpoError(`init: ${GUIDE} has no \`file=${GUIDE_MANIFEST}\` block`);
  const files = new Map<string, string>();
  for (const [path, text] of guide) if (path !== GUIDE_MANIFEST) files.set(path, text);
  files.set(
    "experiment.yaml",
    `# yaml-language-server: $schema=${join(CHECKOUT, "manifest.schema.json")}\n` +
      "# Run: arpo exp experiment.yaml   (stage options: " + join(CHECKOUT, "docs", "STAGES.md") +
      ")\n" + manifest.replace(/^name: .*$/m, `name: ${name}`),
  );
  const config = JSON.parse(await Deno.readTextFile(join(CHECKOUT, "deno.json")));
  files.set(
    "deno.json",
    JSON.stringify(
      {
        imports: { ...config.imports, "arpo-lab": join(CHECKOUT, "mod.ts") },
        fmt: { lineWidth: 100, exclude: [".arpo/"] },
        lint: { exclude: [".arpo/"] },
        exclude: [".arpo/"],
      },
      null,
      2,
    ) + "\n",
  );
  files.set(".gitignore", ".arpo/\n");
  files.set("README.md", readme(name));
  return files;
}

function readme(name: string): string {
  return `# ${name}

An arpo-lab experiment: a tool (\`calendar_tool.ts\`), a reward (\`boxed_reward.ts\`) and a
benchmark (\`date_bench.ts\`, with \`data/extra_dates.jsonl\`), used by \`experiment.yaml\`. They are
the examples of ${GUIDE}, which explains every line.

\`\`\`sh
arpo exp experiment.yaml --dry-run     # the run id; which stages would be computed or reused
arpo exp experiment.yaml               # run it: results, run id, record and HTML report
arpo exp experiment.yaml               # again: same run id, every stage reused
arpo samples <run>:eval --limit 3      # what the model wrote, with its tool calls and rewards
arpo show <run>                        # stages, metrics, the report's path
arpo tool ./calendar_tool.ts "2024-02-27 + 3"   # call the tool once
arpo bench-data ./date_bench.ts --with '{"extra": "data/extra_dates.jsonl"}' --head 3
arpo export-metrics <run> --tensorboard tb   # metrics for TensorBoard, W&B or MLflow
arpo <command> --help                  # every command's flags
\`\`\`

Runs, stage results and reports go to \`.arpo/\` here (\`--store DIR\` moves it). Stage options,
their defaults and meanings: ${join(CHECKOUT, "docs", "STAGES.md")}. \`deno check *.ts\` type-checks
the plugins (\`deno.json\` maps \`arpo-lab\` to the checkout).
`;
}

export async function run(args: string[]): Promise<number> {
  const { positionals } = parse("init", USAGE, args, {}, {
    store: false,
    notes: summary + "; DIR must not exist or be empty",
  });
  if (positionals.length !== 1) {
    throw new ArpoError(`init: expected one directory\nusage: ${USAGE}`, { exitCode: 2 });
  }
  const dir = resolve(positionals[0]);
  let existing = false;
  try {
    for await (const _ of Deno.readDir(dir)) {
      throw new ArpoError(`init: ${dir} exists and is not empty; give a new directory`);
    }
    existing = true;
  } catch (e) {
    if (e instanceof ArpoError) throw e;
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new ArpoError(`init: cannot use ${dir}: ${(e as Error).message}`);
    }
  }
  const files = await scaffold(basename(dir).replace(/[^A-Za-z0-9._-]+/g, "-") || "experiment");
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${Deno.pid}`);
  try {
    for (const [path, text] of files) {
      await Deno.mkdir(dirname(join(tmp, path)), { recursive: true });
      await Deno.writeTextFile(join(tmp, path), text);
    }
    if (existing) await Deno.remove(dir);
    await Deno.rename(tmp, dir);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw new ArpoError(`init: cannot write ${dir}: ${(e as Error).message}`);
  }
  console.log(`created ${dir}:`);
  for (const p of [...files.keys()].sort()) console.log(`  ${p}`);
  console.log(`\nnext: cd ${positionals[0]} && arpo exp experiment.yaml`);
  return 0;
}
