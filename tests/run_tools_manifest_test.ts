/**
 * The manifest keys added for tools and rollouts: `runtime.tool_cache` (true | false | per tool,
 * names checked against plugins.tools), the mode-dependent default of `rollout.entropy_norm`
 * (paper → vocab, reference → log_vocab, ARPO.md §2), and `rollout.reference_top_k` /
 * `reference_window` reaching the rollout config.
 */
import assert from "node:assert/strict";
import { ManifestError, manifestJsonSchema, parseManifest } from "../src/manifest/mod.ts";
import {
  rolloutConfig,
  type RolloutSettings,
  type SamplingSettings,
} from "../src/rollout/config.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";

const stages = BUILTIN_STAGES;

const TOOLS = `
name: t
plugins:
  tools: [{use: python}, {use: search}]
  rewards: [{use: arpo}]
  benchmarks: [{use: arith}]
`;

function parseError(text: string): ManifestError {
  try {
    parseManifest(text, "inline.yaml", { stages });
  } catch (e) {
    if (e instanceof ManifestError) return e;
    throw e;
  }
  throw new assert.AssertionError({ message: "expected a ManifestError" });
}

function stageRollout(yaml: string, stage = 0) {
  const m = parseManifest(TOOLS + yaml, "inline.yaml", { stages }).manifest;
  // Validated by the stage kind's schema (defaults filled): the engine's config is a mapping.
  const o = m.stages[stage].options as { rollout: RolloutSettings; sampling: SamplingSettings };
  return { raw: o.rollout, config: rolloutConfig(o.rollout, o.sampling) };
}

Deno.test("manifest: rollout.entropy_norm defaults by decision (threshold: vocab, sample: log_vocab)", () => {
  const paper = stageRollout("stages: [{rl: {}}]\n");
  assert.equal(paper.raw.mode, "paper");
  assert.equal(paper.raw.decision, "sample");
  assert.equal(paper.raw.entropy_norm, "log_vocab");
  assert.equal(paper.config.entropyNormalization, "log_vocab");
  const threshold = stageRollout("stages: [{rl: {rollout: {decision: threshold}}}]\n");
  assert.equal(threshold.config.entropyNormalization, "vocab");
  const ref = stageRollout("stages: [{rl: {rollout: {mode: reference}}}]\n");
  assert.equal(ref.raw.entropy_norm, "log_vocab");
  assert.equal(ref.config.entropyNormalization, "log_vocab");
  // An explicit value wins in either mode.
  const a = stageRollout("stages: [{rl: {rollout: {mode: reference, entropy_norm: vocab}}}]\n");
  assert.equal(a.config.entropyNormalization, "vocab");
  const b = stageRollout("stages: [{eval: {rollout: {entropy_norm: log_vocab}}}]\n");
  assert.equal(b.config.entropyNormalization, "log_vocab");
  // Bad values still name the field.
  assert.match(
    parseError(TOOLS + "stages: [{rl: {rollout: {entropy_norm: ln}}}]\n").message,
    /stages\[0\]\.rl\.rollout\.entropy_norm: expected one of `vocab`, `log_vocab` or `mean`/,
  );
});

Deno.test("manifest: rollout.reference_top_k and reference_window default to 10 / 20 and reach the config", () => {
  const d = stageRollout("stages: [{rl: {rollout: {mode: reference}}}]\n");
  assert.deepEqual([d.raw.reference_top_k, d.raw.reference_window], [10, 20]);
  assert.deepEqual([d.config.referenceTopK, d.config.referenceWindow], [10, 20]);
  const s = stageRollout(
    "stages: [{probe: {}}, {eval: {rollout: {reference_top_k: 0, reference_window: 8}}}]\n",
    1,
  );
  assert.deepEqual([s.config.referenceTopK, s.config.referenceWindow], [0, 8]);
  const e = parseError(
    TOOLS + "stages:\n  - rl:\n      rollout: {reference_window: 0, reference_top_k: -1}\n",
  );
  assert.equal(e.issues.length, 2, e.message);
  assert.match(e.message, /inline\.yaml:\d+:\d+: stages\[0\]\.rl\.rollout\.reference_window:/);
  assert.match(e.message, /stages\[0\]\.rl\.rollout\.reference_top_k:/);
});

Deno.test("manifest: runtime.tool_cache is true by default, or false, or per tool", () => {
  const m = (extra: string) =>
    parseManifest(TOOLS + extra, "inline.yaml", { stages }).manifest.runtime;
  assert.equal(m("").tool_cache, true);
  assert.equal(m("runtime: {tool_cache: false}\n").tool_cache, false);
  assert.deepEqual(m("runtime: {tool_cache: {search: false}}\n").tool_cache, { search: false });
  const bad = parseError(TOOLS + "runtime:\n  tool_cache: {serch: false}\n");
  assert.equal(bad.issues.length, 1);
  assert.match(
    bad.message,
    /inline\.yaml:8:16: runtime\.tool_cache\.serch: expected the name of a tool in plugins\.tools \(`python` or `search`\), found `serch` \(did you mean `search`\?\)/,
  );
  assert.match(parseError(TOOLS + "runtime: {tool_cache: maybe}\n").message, /runtime\.tool_cache/);
});

Deno.test("manifest schema: the new keys are in the editor schema, optional", () => {
  type S = Record<string, unknown>;
  const s = manifestJsonSchema(stages) as S;
  const runtime = (s.properties as Record<string, S>).runtime;
  assert.ok("tool_cache" in (runtime.properties as S));
  assert.ok(!((runtime.required as string[] | undefined) ?? []).includes("tool_cache"));
  const items = ((s.properties as Record<string, S>).stages.items as S).anyOf as S[];
  const rl = items.find((b) => "rl" in ((b.properties ?? {}) as S))!;
  const rlOpts = ((rl.properties as Record<string, S>).rl.anyOf as S[])[0];
  const rollout = (rlOpts.properties as Record<string, S>).rollout;
  const keys = Object.keys(rollout.properties as S);
  for (const k of ["entropy_norm", "reference_top_k", "reference_window"]) {
    assert.ok(keys.includes(k), k);
  }
  assert.ok(!((rollout.required as string[] | undefined) ?? []).includes("entropy_norm"));
});
