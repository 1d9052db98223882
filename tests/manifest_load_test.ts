/** Loading manifests: defaults, equivalence under reformatting, positions, overrides, digests. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ArpoError } from "../src/errors.ts";
import {
  loadManifest,
  manifestDigest,
  ManifestError,
  parseManifest,
  resolveModelDir,
} from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";

const stages = BUILTIN_STAGES;

const FIX = fileURLToPath(new URL("./fixtures/manifest/", import.meta.url));

/** 1-based line:col of the first `needle` in `text`, plus `skip` columns. */
function locate(text: string, needle: string, skip = 0): { line: number; col: number } {
  const at = text.indexOf(needle);
  assert.ok(at >= 0, needle);
  const before = text.slice(0, at).split("\n");
  return { line: before.length, col: before[before.length - 1].length + 1 + skip };
}

function manifestErrorOf(f: () => unknown): ManifestError {
  try {
    f();
  } catch (e) {
    if (e instanceof ManifestError) return e;
    throw e;
  }
  throw new assert.AssertionError({ message: "expected a ManifestError" });
}

Deno.test("manifest: a minimal manifest gets every default", () => {
  const { manifest } = parseManifest("name: tiny\n", "tiny.yaml", { stages });
  assert.deepEqual(manifest, {
    name: "tiny",
    description: "",
    seed: 0,
    policy: {
      init: {
        architecture: "qwen2",
        hidden_size: 128,
        layers: 4,
        heads: 4,
        kv_heads: 4,
        intermediate_size: 512,
        max_position: 512,
        rope_theta: 10000,
        tie_embeddings: true,
        tokenizer: "byte",
      },
    },
    plugins: { tools: [], rewards: [], benchmarks: [] },
    stages: [],
    runtime: { threads: 2, device: "cpu", tool_cache: true },
  });
});

Deno.test("manifest: stage defaults follow ARPO.md and single plugins fill references", () => {
  const text = `
name: d
plugins:
  rewards: [{use: arpo}]
  benchmarks: [{use: ./b/arith.ts}]
stages:
  - rl
  - eval: {}
  - probe:
`;
  const { manifest } = parseManifest(text, "d.yaml", { stages });
  assert.deepEqual(manifest.plugins.benchmarks, [{ use: "./b/arith.ts", as: "arith", with: {} }]);
  const [rl, ev, probe] = manifest.stages;
  assert.equal(rl.kind, "rl");
  assert.equal(rl.name, "rl");
  assert.equal(rl.options.benchmark, "arith");
  assert.equal(rl.options.reward, "arpo");
  assert.deepEqual(rl.options.rollout, {
    algorithm: "arpo",
    rollouts: 8,
    initial: 4,
    entropy_tokens: 20,
    base_probability: 0.5,
    entropy_weight: 0.2,
    threshold: 0.5,
    branches_per_fork: 1,
    entropy_norm: "log_vocab",
    decision: "sample",
    mode: "paper",
    reference_top_k: 10,
    reference_window: 20,
    reference_init: "own",
  });
  assert.deepEqual(rl.options.clip, { low: 0.2, high: 0.2, dual: 3 });
  assert.equal(rl.options.lr, 1e-6);
  assert.equal(rl.options.kl_coef, 0);
  assert.equal(rl.options.entropy_coef, 0);
  assert.equal(rl.options.attribution, "soft");
  assert.equal(rl.options.dry_run, false);
  assert.deepEqual(rl.options.sampling, {
    temperature: 1,
    top_p: 1,
    top_k: 0,
    max_tokens: 512,
    max_tool_calls: 3,
  });
  assert.equal((ev.options.rollout as { algorithm: string }).algorithm, "grpo");
  assert.equal((ev.options.sampling as { temperature: number }).temperature, 0.6);
  assert.equal((ev.options.sampling as { top_p: number }).top_p, 0.95);
  assert.equal(probe.kind, "probe");
  assert.equal(probe.options.benchmark, "arith");
});

Deno.test("manifest: texts differing only in formatting and key order resolve identically", async () => {
  const a = await loadManifest(join(FIX, "ok.yaml"), { stages });
  const b = await loadManifest(join(FIX, "ok_reformatted.yaml"), { stages });
  assert.deepEqual(a.manifest, b.manifest);
  assert.equal(manifestDigest(a.manifest), manifestDigest(b.manifest));
  assert.deepEqual(a.manifest.stages.map((s) => s.name), ["sft", "arpo", "grpo", "eval", "probe"]);
  assert.equal(a.path, join(FIX, "ok.yaml"));
  assert.equal(a.baseDir, join(FIX).replace(/\/$/, ""));
});

Deno.test("manifest: a changed value changes the digest", () => {
  const a = parseManifest("name: x\nseed: 1\n", "x.yaml", { stages }).manifest;
  const b = parseManifest("name: x\nseed: 2\n", "x.yaml", { stages }).manifest;
  assert.notEqual(manifestDigest(a), manifestDigest(b));
});

Deno.test("manifest: positionOf locates plugin options and stage options", async () => {
  const m = await loadManifest(join(FIX, "ok.yaml"), { stages });
  const t = m.text;
  assert.deepEqual(
    m.positionOf(["plugins", "benchmarks", 0, "with", "count"]),
    locate(t, "count: 100", 7),
  );
  assert.deepEqual(
    m.positionOf(["plugins", "tools", 0, "with", "memory_mb"]),
    locate(t, "memory_mb: 256", 11),
  );
  // stage options by their YAML path and by the resolved `options` path
  const yamlPath = m.positionOf(["stages", 1, "rl", "rollout", "entropy_weight"]);
  assert.deepEqual(yamlPath, locate(t, "entropy_weight: 0.3", 16));
  assert.deepEqual(m.positionOf(["stages", 1, "options", "rollout", "entropy_weight"]), yamlPath);
  // a defaulted key: the nearest written ancestor (the `with:` map)
  assert.deepEqual(
    m.positionOf(["plugins", "benchmarks", 0, "with", "absent"]),
    locate(t, "{ count: 100"),
  );
});

Deno.test("manifest: --set overrides values, by stage name or index", () => {
  const text = "name: s\nplugins: {rewards: [{use: arpo}], benchmarks: [{use: arith}]}\n" +
    "stages:\n  - rl: {name: arpo}\n  - eval\n";
  const base = parseManifest(text, "s.yaml", { stages }).manifest;
  const m = parseManifest(text, "s.yaml", {
    stages,
    overrides: [
      "stages.arpo.rollout.entropy_weight=0.4",
      "stages[1].eval.questions=10",
      "seed=5",
      "runtime.device=auto",
      "plugins.benchmarks.0.with.count=30",
    ],
  }).manifest;
  const rollout = m.stages[0].options.rollout as Record<string, unknown>;
  assert.equal(rollout.entropy_weight, 0.4);
  assert.equal(rollout.initial, 4); // siblings keep their defaults
  assert.equal(m.stages[1].options.questions, 10);
  assert.equal(m.seed, 5);
  assert.equal(m.runtime.device, "auto");
  assert.deepEqual(m.plugins.benchmarks[0].with, { count: 30 });
  // overrides are part of the identity
  assert.notEqual(manifestDigest(m), manifestDigest(base));
  // an override equal to the default resolves to the same manifest
  const same =
    parseManifest(text, "s.yaml", { stages, overrides: ["stages.1.split=test"] }).manifest;
  assert.equal(manifestDigest(same), manifestDigest(base));
});

Deno.test("manifest: --set naming an unknown key fails and says --set", () => {
  const text = "name: s\nplugins: {rewards: [{use: arpo}], benchmarks: [{use: arith}]}\n" +
    "stages:\n  - rl\n";
  const msg =
    manifestErrorOf(() =>
      parseManifest(text, "s.yaml", { stages, overrides: ["stages.rl.rollout.entropy_wieght=0.4"] })
    ).message;
  assert.match(msg, /--set stages\.rl\.rollout\.entropy_wieght=0\.4/);
  assert.match(msg, /stages\[0\]\.rl\.rollout\.entropy_wieght/);
  assert.match(msg, /did you mean `entropy_weight`\?/);
  assert.match(msg, /^s\.yaml:4:5/m);
});

Deno.test("manifest: --set with an unknown stage name or no '=' fails and says --set", () => {
  const text = "name: s\nstages:\n  - probe: {benchmark: b}\nplugins: {benchmarks: [{use: b}]}\n";
  const e1 = manifestErrorOf(() =>
    parseManifest(text, "s.yaml", { stages, overrides: ["stages.prob.questions=3"] })
  );
  assert.match(e1.message, /\(--set stages\.prob\.questions=3\): stages: expected a stage name/);
  assert.match(e1.message, /did you mean `probe`\?/);
  const e2 = manifestErrorOf(() => parseManifest(text, "s.yaml", { stages, overrides: ["seed"] }));
  assert.match(e2.message, /--set seed.*expected `--set key\.path=value`/);
});

Deno.test("manifest: policy.model resolves against the manifest's directory", async () => {
  const m = parseManifest("name: p\npolicy: {model: ./models/tiny}\n", join(FIX, "p.yaml"), {
    stages,
  });
  assert.deepEqual(m.manifest.policy, { model: "./models/tiny" });
  assert.equal(resolveModelDir(m.manifest.policy, m.baseDir), join(FIX, "models/tiny"));
  const e = await loadManifest(join(FIX, "does-not-exist.yaml"), { stages }).then(
    () => null,
    (e) => e,
  );
  assert.ok(e instanceof ArpoError);
  assert.match(e.message, /does-not-exist\.yaml not found/);
});

Deno.test("manifest: top-level x- keys hold YAML anchors and are not part of the manifest", () => {
  const plugins = "plugins: {benchmarks: [{use: a}], rewards: [{use: r}]}\n";
  const text = "name: x\n" + plugins + "x-common: &c {lr: 1e-6, steps: 2}\n" +
    "stages:\n  - rl: {<<: *c, name: a}\n  - rl: {<<: *c, name: b, lr: 2.5e-6}\n";
  const { manifest } = parseManifest(text, "m.yaml", { stages });
  assert.deepEqual(
    manifest.stages.map((s) => [s.name, s.options.lr, s.options.steps]),
    [["a", 1e-6, 2], ["b", 2.5e-6, 2]],
  );
  assert.equal("x-common" in manifest, false);
  const plain = "name: x\n" + plugins +
    "stages:\n  - rl: {lr: 1e-6, steps: 2, name: a}\n  - rl: {steps: 2, name: b, lr: 2.5e-6}\n";
  assert.equal(
    manifestDigest(manifest),
    manifestDigest(parseManifest(plain, "p.yaml", { stages }).manifest),
  );
});
