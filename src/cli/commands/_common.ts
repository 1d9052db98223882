/** Flag parsing and store opening shared by the CLI commands (not a command: starts with _). */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ArpoError } from "../../errors.ts";
import type { LogLevel, ProgressStyle } from "../../run/progress.ts";
import { Store, storeDir } from "../../store/store.ts";

/** One flag: node:util's option config plus its help line (`arg` names a string flag's value). */
export type Flag = NonNullable<ParseArgsConfig["options"]>[string] & {
  help?: string;
  arg?: string;
};
type Options = Record<string, Flag>;

/**
 * Help of the flags several commands share, so that each is described once; a command's own
 * `help:` on a flag wins.
 */
export const COMMON_FLAG_HELP: Record<string, { help: string; arg?: string }> = {
  store: { arg: "DIR", help: "the store (default: $ARPO_STORE, else ./.arpo)" },
  json: { help: "print JSON on stdout instead of text" },
  help: { help: "print this help" },
  progress: { arg: "auto|plain|none", help: "progress on stderr (default: auto)" },
  "log-level": { arg: "quiet|info|debug", help: "how much is logged on stderr (default: info)" },
  set: { arg: "key=value", help: "override a manifest key, e.g. stages.sft.epochs=2" },
  force: { help: "recompute every stage instead of reusing finished ones" },
  "live-tools": {
    help: "call non-deterministic tools (e.g. http search) live instead of replaying the " +
      "results the run recorded",
  },
  with: { arg: "JSON", help: "the plugin's options, a JSON object (its `with:` in a manifest)" },
};

/** `--help` asked for: main prints the text on stdout and exits 0. */
export class HelpRequest extends Error {
  constructor(readonly text: string) {
    super("help");
  }
}

/** The help text of a command: its usage, optional notes and one line per flag. */
export function helpText(usage: string, options: Options, notes?: string): string {
  const rows = Object.entries(options).map(([name, f]) => {
    const common = COMMON_FLAG_HELP[name];
    const arg = f.type === "string" ? ` ${f.arg ?? common?.arg ?? "VALUE"}` : "";
    const flag = `${f.short ? `-${f.short}, ` : "    "}--${name}${arg}`;
    const help = f.help ?? common?.help ?? "";
    return [flag, help + (f.multiple ? " (repeatable)" : "")];
  });
  const w = Math.min(32, Math.max(...rows.map((r) => r[0].length)));
  const lines = rows.map(([flag, help]) =>
    flag.length > w ? `  ${flag}\n  ${" ".repeat(w)}  ${help}` : `  ${flag.padEnd(w)}  ${help}`
  );
  return `usage: ${usage}\n${notes ? `\n${notes}\n` : ""}\nflags:\n${lines.join("\n")}`;
}

/**
 * `--store DIR`, `--help` plus the command's own flags. `--help` throws a HelpRequest carrying
 * the per-flag help; an unknown flag is an ArpoError naming it and the command. `store: false`
 * for commands that open no store.
 */
export function parse<O extends Options>(
  command: string,
  usage: string,
  args: string[],
  options: O,
  extra: { notes?: string; store?: boolean } = {},
) {
  const all = {
    ...(extra.store === false ? {} : { store: { type: "string" } as Flag }),
    ...options,
    help: { type: "boolean", short: "h" } as Flag,
  };
  // node:util validates only the keys it knows; strip ours anyway
  const config = Object.fromEntries(
    Object.entries(all).map(([k, { help: _h, arg: _a, ...c }]) => [k, c]),
  ) as { store: { type: "string" }; help: { type: "boolean"; short: "h" } } & O;
  let parsed;
  try {
    parsed = parseArgs({ args, options: config, allowPositionals: true, strict: true });
  } catch (e) {
    const m = /Unknown option '([^']+)'/.exec((e as Error).message);
    const msg = m
      ? `unknown flag ${m[1]} (see 'arpo ${command} --help')`
      : (e as Error).message.replace(/\. To specify a positional.*$/s, "");
    throw new ArpoError(`${command}: ${msg}\nusage: ${usage}`, { exitCode: 2 });
  }
  if ((parsed.values as Record<string, unknown>).help) {
    throw new HelpRequest(helpText(usage, all, extra.notes));
  }
  return parsed;
}

export function openStore(flag: unknown): Store {
  return new Store(storeDir(typeof flag === "string" ? flag : undefined));
}

export const PROGRESS_STYLES: ProgressStyle[] = ["auto", "plain", "none"];
export const LOG_LEVELS: LogLevel[] = ["quiet", "info", "debug"];

export function oneOf<T extends string>(flag: string, value: unknown, allowed: T[], dflt: T): T {
  if (value === undefined) return dflt;
  if (!allowed.includes(value as T)) {
    throw new ArpoError(
      `--${flag}: expected one of ${allowed.join(", ")}, found '${value}'`,
      { exitCode: 2 },
    );
  }
  return value as T;
}

/** Abort on Ctrl-C (the running stage checkpoints); a second Ctrl-C exits at once. */
export function interruptSignal(): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const onInt = () => {
    if (ac.signal.aborted) Deno.exit(130);
    console.error("\ninterrupting: saving progress (Ctrl-C again to quit at once)…");
    ac.abort(new DOMException("interrupted", "AbortError"));
  };
  try {
    Deno.addSignalListener("SIGINT", onInt);
  } catch {
    // signals unsupported (e.g. Windows without a console): no graceful interrupt
  }
  return {
    signal: ac.signal,
    dispose: () => {
      try {
        Deno.removeSignalListener("SIGINT", onInt);
      } catch {
        // nothing registered
      }
    },
  };
}

export function short(d: string | null | undefined, n = 12): string {
  return d ? d.slice(0, n) : "-";
}

/** Usage text of the flags every command that re-executes a run takes (rerun, verify). */
export const REEXEC_FLAGS_USAGE = "[--live-tools] [--progress auto|plain|none] " +
  "[--log-level quiet|info|debug]";

/**
 * Parse a re-executing command's arguments: one run id, `--json`, `--live-tools`, `--progress`,
 * `--log-level` and the command's own boolean flags (name → help); returns them with the
 * reporter settings resolved.
 */
export function parseReexec(
  command: string,
  usage: string,
  args: string[],
  booleans: Record<string, string> = {},
) {
  const { values, positionals } = parse(command, usage, args, {
    json: { type: "boolean" },
    "live-tools": { type: "boolean" },
    progress: { type: "string" },
    "log-level": { type: "string" },
    ...Object.fromEntries(
      Object.entries(booleans).map(([b, help]) => [b, { type: "boolean" as const, help }]),
    ),
  });
  const v = values as Record<string, string | boolean | undefined>;
  if (positionals.length !== 1) {
    throw new ArpoError(`${command}: expected one run id\nusage: ${usage}`, { exitCode: 2 });
  }
  return {
    values: v,
    runId: positionals[0],
    liveTools: v["live-tools"] === true,
    progress: oneOf("progress", v.progress, PROGRESS_STYLES, "auto"),
    level: oneOf("log-level", v["log-level"], LOG_LEVELS, "info"),
  };
}
