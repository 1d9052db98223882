// The shipped manifests stay valid, and the committed editor schema (manifest.schema.json, named by
// the manifests' `# yaml-language-server: $schema=…` line) stays what `arpo schema` writes.
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest, manifestJsonSchema } from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { REPO } from "./fixtures/helpers.ts";

Deno.test("experiments: quickstart, arpo-vs-grpo and entropy-probe are valid manifests", async () => {
  for (const name of ["quickstart", "arpo-vs-grpo", "entropy-probe"]) {
    const m = await loadManifest(join(REPO, "experiments", `${name}.yaml`), {
      stages: BUILTIN_STAGES,
    });
    assert.equal(m.manifest.name, name);
  }
  const avg = await loadManifest(join(REPO, "experiments", "arpo-vs-grpo.yaml"), {
    stages: BUILTIN_STAGES,
  });
  const rl = avg.manifest.stages.filter((s) => s.kind === "rl");
  assert.deepEqual(rl.map((s) => (s.options.rollout as { algorithm: string }).algorithm), [
    "arpo",
    "grpo",
  ]);
  // The same rollout budget and training schedule for both algorithms.
  const budget = (s: typeof rl[number]) => ({
    m: (s.options.rollout as { rollouts: number }).rollouts,
    steps: s.options.steps,
    q: s.options.questions_per_step,
    from: s.options.from,
  });
  assert.deepEqual(budget(rl[0]), budget(rl[1]));
});

Deno.test("experiments: manifest.schema.json is the schema `arpo schema` writes", async () => {
  const committed = JSON.parse(await Deno.readTextFile(join(REPO, "manifest.schema.json")));
  assert.deepEqual(committed, JSON.parse(JSON.stringify(manifestJsonSchema(BUILTIN_STAGES))));
});
