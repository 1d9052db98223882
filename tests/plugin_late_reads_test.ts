// A plugin that reads data after loading (in `call`, not its factory) is refused when plugins
// load, before any stage runs, in a run and in `arpo tool` alike (src/plugin/late_reads.ts); a
// read hidden in a helper is refused when it happens, everywhere too (the context is sealed).
import assert from "node:assert/strict";
import { join } from "node:path";
import { lateReadProblem } from "../src/plugin/late_reads.ts";
import { cli, FIXTURES, rm } from "./fixtures/helpers.ts";

const LATE = `import { defineTool, z } from "arpo-lab";
export default defineTool({
  description: "reads its data late",
  options: z.strictObject({}),
  create: (_o, ctx) => ({
    tag: "late",
    description: "late",
    call: async (input: string) => (await ctx.readText("data.txt")) + input,
  }),
});
`;

const HIDDEN = `import { defineTool, z } from "arpo-lab";
export default defineTool({
  description: "reads its data late, through a helper",
  options: z.strictObject({}),
  create: (_o, ctx) => {
    const load = () => ctx.readText("data.txt");
    return { tag: "hidden", description: "hidden", call: async (i: string) => (await load()) + i };
  },
});
`;

Deno.test("late reads: found in the methods' source, not in comments or strings", () => {
  const ctx = { readText: (_: string) => "" };
  assert.match(
    lateReadProblem({ call: () => ctx.readText("x") })!,
    /its `call` reads data \(readText\(…\)\) after loading/,
  );
  assert.equal(lateReadProblem({ call: () => "readText(x)" /* readFile(y) */ }), undefined);
  class B {
    tasks() {
      return ctx.readText("t");
    }
  }
  assert.match(lateReadProblem(new B())!, /its `tasks` reads data/);
  assert.equal(lateReadProblem({ tag: "t", call: (s: string) => s }), undefined);
});

Deno.test("late reads: refused at load, before any stage, in a run and in arpo tool", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-late-" });
  try {
    await Deno.writeTextFile(join(dir, "late_tool.ts"), LATE);
    await Deno.writeTextFile(join(dir, "hidden_tool.ts"), HIDDEN);
    await Deno.writeTextFile(join(dir, "data.txt"), "data ");
    await Deno.writeTextFile(
      join(dir, "m.yaml"),
      `name: late\nplugins:\n  tools:\n    - use: ./late_tool.ts\n  benchmarks:\n` +
        `    - use: ${join(FIXTURES, "plugins", "tiny_bench.ts")}\n` +
        `      with: { file: ${join(FIXTURES, "manifests", "data", "qa.json")} }\n` +
        `stages:\n  - draw: { name: first, steps: 1 }\n  - draw: { name: second, steps: 1 }\n`,
    );
    const store = join(dir, "store");
    const r = await cli(["exp", join(dir, "m.yaml"), "--store", store, "--progress", "plain"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /m\.yaml:4:\d+: tool 'late_tool'.*its `call` reads data \(readText/);
    assert.doesNotMatch(r.stderr, /stage first/, "no stage started");
    const index = await Array.fromAsync(Deno.readDir(join(store, "index", "stages"))).catch(
      () => [],
    );
    assert.equal(index.length, 0, "nothing computed");

    const t = await cli(["tool", "./late_tool.ts", "x"], { cwd: dir });
    assert.equal(t.code, 1);
    assert.match(t.stderr, /its `call` reads data \(readText/);

    // hidden in a helper: refused when the call reads, in arpo tool as in a run
    const h = await cli(["tool", "./hidden_tool.ts", "x", "--store", store], { cwd: dir });
    assert.notEqual(h.code, 0);
    assert.match(h.stdout + h.stderr, /reads data file 'data\.txt' after loading/);
  } finally {
    await rm(dir);
  }
});
