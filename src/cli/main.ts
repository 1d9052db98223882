/**
 * Entry point of `deno task arpo <command> …` (and `deno task exp`, which is `arpo exp`).
 * Each command lives in src/cli/commands/<name>.ts and exports `run(args): Promise<number>`
 * (the exit code) and a one-line `summary`.
 */
import { fileURLToPath as fromFileUrl } from "node:url";
import { ArpoError } from "../errors.ts";
import { HelpRequest } from "./commands/_common.ts";

const commandsDir = new URL("./commands/", import.meta.url);

async function listCommands(): Promise<{ name: string; summary: string }[]> {
  const out = [];
  for await (const e of Deno.readDir(fromFileUrl(commandsDir))) {
    if (!e.isFile || !e.name.endsWith(".ts") || e.name.startsWith("_")) continue;
    const name = e.name.slice(0, -3);
    const mod = await import(new URL(e.name, commandsDir).href);
    out.push({ name, summary: String(mod.summary ?? "") });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    const cmds = await listCommands();
    console.log(
      "usage: arpo <command> [flags]   (arpo <command> --help: its flags)\n\ncommands:",
    );
    for (const c of cmds) console.log(`  ${c.name.padEnd(12)} ${c.summary}`);
    return name ? 0 : 2;
  }
  if (!/^[a-z][a-z0-9-]*$/.test(name)) {
    console.error(`arpo: unknown command '${name}' (see 'arpo help')`);
    return 2;
  }
  let mod;
  try {
    mod = await import(new URL(`${name}.ts`, commandsDir).href);
  } catch (e) {
    if (e instanceof TypeError && /Module not found/.test(String(e))) {
      console.error(`arpo: unknown command '${name}' (see 'arpo help')`);
      return 2;
    }
    throw e;
  }
  return await mod.run(rest);
}

if (import.meta.main) {
  // `deno task` runs in the directory of deno.json; paths the user typed are relative to where
  // they typed them, which deno task passes on as INIT_CWD. Only then: a process started
  // elsewhere (with INIT_CWD merely inherited) keeps its own working directory.
  const initCwd = Deno.env.get("INIT_CWD");
  const projectDir = fromFileUrl(new URL("../../", import.meta.url)).replace(/\/$/, "");
  if (initCwd && Deno.cwd() === projectDir) Deno.chdir(initCwd);
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (e) {
    if (e instanceof HelpRequest) {
      console.log(e.text);
      code = 0;
    } else {
      if (!(e instanceof ArpoError)) throw e;
      console.error(`error: ${e.message}`);
      code = e.exitCode;
    }
  }
  Deno.exit(code);
}
