// `arpo init DIR` (src/cli/commands/init.ts): the guide's plugins and manifest in a new folder,
// which loads and plans as is from inside it; an existing non-empty folder is refused.
import assert from "node:assert/strict";
import { join } from "node:path";
import { arpo, rm } from "./fixtures/helpers.ts";

Deno.test("init: a folder that runs as is, never over an existing one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-init-" });
  try {
    const r = await arpo(["init", "demo"], dir);
    assert.equal(r.code, 0, r.stderr);
    const demo = join(dir, "demo");
    const names = [...Deno.readDirSync(demo)].map((e) => e.name).sort();
    assert.deepEqual(names, [
      ".gitignore",
      "README.md",
      "boxed_reward.ts",
      "calendar_tool.ts",
      "data",
      "date_bench.ts",
      "deno.json",
      "experiment.yaml",
    ]);
    const m = await Deno.readTextFile(join(demo, "experiment.yaml"));
    assert.match(m, /^# yaml-language-server: \$schema=\/.*\/manifest\.schema\.json$/m);
    assert.match(m, /^name: demo$/m);
    // from inside the folder, with relative paths, as a user types it
    const plan = await arpo(["exp", "experiment.yaml", "--dry-run", "--json"], demo);
    assert.equal(plan.code, 0, plan.stderr);
    const p = JSON.parse(plan.stdout);
    assert.deepEqual(p.stages.map((s: { action: string }) => s.action), ["computed", "computed"]);
    assert.ok(Deno.statSync(join(demo, ".arpo")).isDirectory, "the store is in the folder");

    const again = await arpo(["init", "demo"], dir);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /demo exists and is not empty/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["demo"], "no temp left");
  } finally {
    await rm(dir);
  }
});
