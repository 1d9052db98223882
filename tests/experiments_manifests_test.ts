// The shipped manifests stay valid, and the committed editor schema (manifest.schema.json, named by
// the manifests' `# yaml-language-server: $schema=…` line) stays what `arpo schema` writes.
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest, manifestJsonSchema } from "../src/manifest/mod.ts";
import type { PolicyInit } from "../src/manifest/policy.ts";
import { initTokenizer } from "../src/policy/load.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { demonstrationSequence } from "../src/train/sft_data.ts";
import { REPO } from "./fixtures/helpers.ts";

Deno.test("experiments: the shipped manifests are valid", async () => {
  for (const name of ["quickstart", "arpo-vs-grpo", "entropy-probe", "kbqa"]) {
    const m = await loadManifest(join(REPO, "experiments", `${name}.yaml`), {
      stages: BUILTIN_STAGES,
    });
    assert.equal(m.manifest.name, name);
  }
});

Deno.test("experiments: arpo-vs-grpo trains GRPO, random branching and ARPO at one budget from the quickstart's SFT", async () => {
  const load = (name: string) =>
    loadManifest(join(REPO, "experiments", `${name}.yaml`), { stages: BUILTIN_STAGES });
  const avg = await load("arpo-vs-grpo"), qs = await load("quickstart");
  const rl = avg.manifest.stages.filter((s) => s.kind === "rl");
  const rollout = (s: typeof rl[number]) =>
    s.options.rollout as { algorithm: string; rollouts: number; initial: number };
  // GRPO, random, ARPO, then AEPO and its five ablations (issue 18), appended after them.
  assert.deepEqual(rl.map((s) => rollout(s).algorithm), [
    "grpo",
    "random",
    "arpo",
    ...Array(6).fill("aepo"),
  ]);
  // The same rollout budget and training schedule for all three.
  const budget = (s: typeof rl[number]) => ({
    m: rollout(s).rollouts,
    steps: s.options.steps,
    q: s.options.questions_per_step,
    lr: s.options.lr,
    from: s.options.from,
    sampling: s.options.sampling,
  });
  assert.deepEqual(budget(rl[0]), budget(rl[1]));
  for (const s of rl.slice(1)) assert.deepEqual(budget(s), budget(rl[0]), s.name);
  for (const s of rl.slice(2)) {
    assert.equal(rollout(s).initial, rollout(rl[1]).initial, `random and ${s.name}: the same N`);
  }
  // Its sft and eval_sft are the quickstart's, so a sweep of both shares them (same stage keys).
  for (const name of ["sft", "eval_sft"]) {
    const a = avg.manifest.stages.find((s) => s.name === name)!;
    const b = qs.manifest.stages.find((s) => s.name === name)!;
    assert.deepEqual(a, b, name);
  }
  assert.deepEqual(avg.manifest.plugins, qs.manifest.plugins);
  assert.deepEqual(avg.manifest.policy, qs.manifest.policy);
});

Deno.test("experiments: every SFT demonstration fits the policy's context", async () => {
  const { localPluginContext } = await import("../src/plugin/local.ts");
  for (const name of ["quickstart", "kbqa"]) {
    const m = (await loadManifest(join(REPO, "experiments", `${name}.yaml`), {
      stages: BUILTIN_STAGES,
    })).manifest;
    const ref = m.plugins.benchmarks[0];
    const mod = await import(join(REPO, "plugins", "benchmarks", `${ref.use}.ts`));
    // A smaller draw of the same generator (kbqa's full knowledge base takes a minute to check).
    const small = { ...ref.with, sizes: { train: 300, rl: 1, test: 1 } };
    if (ref.use === "kbqa") Object.assign(small, { people: 400, companies: 60, cities: 40 });
    const bench = await mod.default(small, localPluginContext({ name: ref.as!, seed: m.seed }));
    const init = (m.policy as { init: PolicyInit }).init;
    const tokenizer = await initTokenizer(init);
    let longest = 0;
    // The sequences SFT trains on, tokenized as it tokenizes them (the manifest's words included).
    for (const d of await bench.demonstrations("train")) {
      longest = Math.max(longest, demonstrationSequence(d, tokenizer).tokens.length);
    }
    const maxPosition = init.max_position;
    assert.ok(
      longest <= maxPosition,
      `${name}: a demonstration of ${longest} tokens > ${maxPosition}`,
    );
  }
});

Deno.test("experiments: manifest.schema.json is the schema `arpo schema` writes", async () => {
  const committed = JSON.parse(await Deno.readTextFile(join(REPO, "manifest.schema.json")));
  assert.deepEqual(committed, JSON.parse(JSON.stringify(manifestJsonSchema(BUILTIN_STAGES))));
});
