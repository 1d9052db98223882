/**
 * `arpo tool <name|path> [--with JSON] [--json] <input>`: load one tool plugin as a manifest would
 * (built-in short name, ./path or npm: specifier), call it once through the tool runtime (timeout,
 * output cap, errors as text) and print the result and its timing.
 */
import { ArpoError } from "../../errors.ts";
import { pluginName } from "../../manifest/plugins.ts";
import type { ResolvedManifest } from "../../manifest/types.ts";
import { DataAccess } from "../../plugin/context.ts";
import { loadPlugins } from "../../plugin/load.ts";
import { createToolRuntime } from "../../tools/runtime.ts";
import type { ToolCallOutcome } from "../../tools/types.ts";
import { openStore, parse } from "./_common.ts";

export const summary = "run one tool once: arpo tool python '6*7'";

const USAGE = "deno task arpo tool <name|path> [--with JSON] [--json] [--timeout SECONDS] " +
  "[--max-output CHARS] [--store DIR] <input…|->";

async function readStdin(): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const c of Deno.stdin.readable) chunks.push(c);
  return new TextDecoder().decode(await new Blob(chunks as BlobPart[]).arrayBuffer());
}

/** What the command line asks for. */
interface ToolArgs {
  use: string;
  options: Record<string, unknown>;
  input: string;
  timeoutMs: number;
  maxOutputChars: number;
  json: boolean;
  store: string | undefined;
}

export async function run(args: string[]): Promise<number> {
  const flags = await parseToolArgs(args);
  if (!flags) return 0; // --help
  const tool = await loadTool(flags);
  try {
    const o = await tool.runtime.call(tool.entry.plugin.tag, flags.input);
    printOutcome(o, tool.name, tool.entry.digest, flags.json);
    return o.error ? 1 : 0;
  } finally {
    await tool.runtime.close();
    await tool.loaded.close();
  }
}

/** The flags and input; undefined when `--help` printed the usage instead. */
async function parseToolArgs(args: string[]): Promise<ToolArgs | undefined> {
  const { values, positionals } = parse("tool", USAGE, args, {
    with: { type: "string" },
    json: { type: "boolean" },
    timeout: { type: "string", arg: "SECONDS", help: "the call's time limit (default: 60)" },
    "max-output": {
      type: "string",
      arg: "CHARS",
      help: "the output is cut to this many characters (default: 8000)",
    },
  }, {
    notes: "The input is the text between the tool's tags; '-' reads it from stdin.\n" +
      `Example: arpo tool search --with '{"backend":"local","corpus":"kb.jsonl"}' ` +
      '"capital of Poland"',
  });
  const [use, ...rest] = positionals;
  if (!use || rest.length === 0) {
    throw new ArpoError(`tool: expected a tool and an input\nusage: ${USAGE}`, { exitCode: 2 });
  }
  const options = withOptions(values.with);
  const timeoutMs = seconds("timeout", values.timeout, 60) * 1000;
  const maxOutputChars = seconds("max-output", values["max-output"], 8000);
  const input = rest.length === 1 && rest[0] === "-" ? await readStdin() : rest.join(" ");
  return {
    use,
    options,
    input,
    timeoutMs,
    maxOutputChars,
    json: !!values.json,
    store: values.store,
  };
}

/** `--with JSON`: the tool's options, a JSON object ({} without the flag). */
function withOptions(flag: string | undefined): Record<string, unknown> {
  if (flag === undefined) return {};
  let options: unknown;
  try {
    options = JSON.parse(flag);
  } catch (e) {
    throw new ArpoError(`tool: --with must be a JSON object: ${(e as Error).message}`, {
      exitCode: 2,
    });
  }
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new ArpoError(`tool: --with must be a JSON object, found ${flag}`, {
      exitCode: 2,
    });
  }
  return options as Record<string, unknown>;
}

/** A positive number flag (`dflt` when absent). */
function seconds(flag: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!(n > 0)) throw new ArpoError(`tool: --${flag} must be a positive number, found '${v}'`);
  return n;
}

/** The tool, loaded by the same loader as `exp` from a one-tool manifest, behind a runtime. */
async function loadTool(flags: ToolArgs) {
  const store = openStore(flags.store);
  const baseDir = Deno.cwd();
  const ref = { use: flags.use, with: flags.options };
  const name = pluginName(ref);
  const manifest = {
    name: "arpo-tool",
    description: "",
    seed: 0,
    plugins: { tools: [{ ...ref, as: name }], rewards: [], benchmarks: [] },
  } as unknown as ResolvedManifest;
  const loaded = await loadPlugins(
    { path: "arpo tool", baseDir, manifest },
    {
      store,
      data: new DataAccess(store, baseDir),
      log: (m) => {
        if (!flags.json) console.error(m);
      },
    },
  );
  const entry = loaded.tools.get(name)!;
  const runtime = createToolRuntime(
    [{ name, tool: entry.plugin, digest: entry.digest }],
    { timeoutMs: flags.timeoutMs, maxOutputChars: flags.maxOutputChars },
  );
  return { name, entry, loaded, runtime };
}

/** `--json`: the outcome as JSON on stdout; else its output on stdout and its timing on stderr. */
function printOutcome(o: ToolCallOutcome, name: string, digest: string, json: boolean): void {
  if (json) {
    // The record, then its timing, in the fields (and order) this command has always printed.
    console.log(JSON.stringify(
      {
        tool: o.tool,
        tag: o.tag,
        input: o.input,
        output: o.output,
        error: o.error,
        truncated: o.truncated,
        timedOut: o.timedOut,
        ...(o.infrastructureFailure !== undefined
          ? { infrastructureFailure: o.infrastructureFailure }
          : {}),
        cached: o.source === "cached",
        replayed: o.source === "replayed",
        attempts: o.attempts,
        durationMs: o.durationMs,
        digest,
      },
      null,
      2,
    ));
    return;
  }
  console.log(o.output);
  const flags = [
    o.source,
    `${o.attempts} attempt${o.attempts === 1 ? "" : "s"}`,
    ...(o.timedOut ? ["timed out"] : o.error ? ["error"] : []),
    ...(o.truncated ? ["truncated"] : []),
    ...(o.infrastructureFailure !== undefined
      ? [`infrastructure failure: ${o.infrastructureFailure}`]
      : []),
  ];
  console.error(`[${name} <${o.tag}>: ${o.durationMs.toFixed(1)} ms, ${flags.join(", ")}]`);
}
