// Every command prints per-flag help on --help, and an unknown flag is an error naming it
// (src/cli/commands/_common.ts `parse`). In-process: each command module's `run`.
import assert from "node:assert/strict";
import { fileURLToPath as fromFileUrl } from "node:url";
import { ArpoError } from "../src/errors.ts";
import { HelpRequest } from "../src/cli/commands/_common.ts";
import { cli } from "./fixtures/helpers.ts";

const DIR = new URL("../src/cli/commands/", import.meta.url);

async function commands(): Promise<string[]> {
  const out = [];
  for await (const e of Deno.readDir(fromFileUrl(DIR))) {
    if (e.isFile && e.name.endsWith(".ts") && !e.name.startsWith("_")) {
      out.push(e.name.slice(0, -3));
    }
  }
  return out.sort();
}

async function thrown(name: string, args: string[]): Promise<unknown> {
  const mod = await import(new URL(`${name}.ts`, DIR).href);
  try {
    await mod.run(args);
  } catch (e) {
    return e;
  }
  return undefined;
}

Deno.test("cli help: every command describes each of its flags", async () => {
  const names = await commands();
  assert.ok(names.length >= 15, names.join(","));
  for (const name of names) {
    const e = await thrown(name, ["--help"]);
    assert.ok(e instanceof HelpRequest, `${name} --help: ${e}`);
    const [usage, rest] = e.text.split("\nflags:\n");
    assert.match(usage, /^usage: /, name);
    assert.ok(rest, `${name}: no flags section`);
    const described = new Map<string, string>();
    const lines = rest.split("\n");
    lines.forEach((line, i) => {
      const m = /^ {2}(?:-\w, | {4})--([a-z][a-z-]*)(?: \S+)?(?: {2,}(.*))?$/.exec(line);
      if (m) described.set(m[1], m[2] ?? lines[i + 1]?.trim() ?? "");
    });
    // every flag the usage line names has a help line with words in it
    for (const m of usage.matchAll(/\[?--([a-z][a-z-]*)/g)) {
      assert.ok(described.has(m[1]), `${name}: --${m[1]} is in the usage but not described`);
    }
    assert.ok(described.has("help"), name);
    for (const [flag, help] of described) {
      assert.match(help, /\w+ \w+/, `${name}: --${flag} has no help`);
    }
  }
});

Deno.test("cli help: an unknown flag is an error naming it, exit code 2", async () => {
  for (const name of await commands()) {
    const e = await thrown(name, ["--no-such-flag"]);
    assert.ok(e instanceof ArpoError, `${name}: ${e}`);
    assert.equal(e.exitCode, 2);
    assert.match(e.message, new RegExp(`^${name}: unknown flag --no-such-flag`), name);
  }
  // a flag of another subcommand
  const e = await thrown("model", ["info", "some/dir", "--prompt", "x"]);
  assert.ok(e instanceof ArpoError);
  assert.match(e.message, /model info: unknown flag --prompt/);
});

Deno.test("cli help: the CLI prints it on stdout and exits 0", async () => {
  const r = await cli(["exp", "--help"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /--dry-run\s+print the run id/);
  assert.match(r.stdout, /--store DIR\s+the store/);
  const bad = await cli(["ls", "--jsn"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /ls: unknown flag --jsn/);
});
