/**
 * Bad manifests: each problem is reported as `file:line:col: keyPath: expected …, found …`, all
 * problems of a manifest together, in one ManifestError (an ArpoError, so the CLI prints it
 * without a stack).
 */
import assert from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { ArpoError } from "../src/errors.ts";
import { loadManifest, ManifestError, parseManifest } from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";

// A relative path, as a user would type it: messages name the file as given.
const FIX = relative(Deno.cwd(), fileURLToPath(new URL("./fixtures/manifest/", import.meta.url)));

async function loadError(name: string, overrides: string[] = []): Promise<ManifestError> {
  const e = await loadManifest(`${FIX}/${name}`, { stages: BUILTIN_STAGES, overrides }).then(
    () => null,
    (e) => e,
  );
  assert.ok(e instanceof ManifestError, `expected a ManifestError, got ${e}`);
  assert.ok(e instanceof ArpoError);
  return e;
}

function parseError(text: string, file = "inline.yaml"): ManifestError {
  try {
    parseManifest(text, file, { stages: BUILTIN_STAGES });
  } catch (e) {
    if (e instanceof ManifestError) return e;
    throw e;
  }
  throw new assert.AssertionError({ message: "expected a ManifestError" });
}

Deno.test("manifest error: malformed YAML reports the parser's position", async () => {
  const e = await loadError("malformed.yaml");
  assert.ok(e.issues.length >= 1);
  assert.equal(e.issues[0].file, `${FIX}/malformed.yaml`);
  // the parser notices the unclosed `{ steps: 3` of line 3 where line 4 starts
  assert.equal(e.issues[0].line, 4);
  assert.match(e.message, /must be sufficiently indented and end with a \}/);
  assert.match(
    e.message,
    new RegExp(`^${FIX}/malformed\\.yaml:4:3: \\(YAML syntax\\): expected valid YAML, found `, "m"),
  );
});

Deno.test("manifest error: a wrong type names key path, expected and found", async () => {
  const e = await loadError("wrong_type.yaml");
  assert.equal(e.issues.length, 1);
  assert.deepEqual(e.issues[0], {
    file: `${FIX}/wrong_type.yaml`,
    line: 7,
    col: 14,
    keyPath: "stages[0].rl.steps",
    expected: "a number",
    found: '"many" (a string)',
  });
  assert.match(
    e.message,
    new RegExp(
      `^${FIX}/wrong_type\\.yaml:7:14: stages\\[0\\]\\.rl\\.steps: expected a number, found "many"`,
      "m",
    ),
  );
});

Deno.test("manifest error: an unknown key says 'did you mean' and points at the key", async () => {
  const e = await loadError("unknown_key.yaml");
  assert.equal(e.issues.length, 1);
  const i = e.issues[0];
  assert.equal(i.keyPath, "stages[0].rl.rollout.entropy_weigth");
  assert.deepEqual([i.line, i.col], [9, 9]);
  assert.match(
    e.message,
    /unknown_key\.yaml:9:9: .*unknown key `entropy_weigth` \(did you mean `entropy_weight`\?\)/,
  );
});

Deno.test("manifest error: an unknown key with nothing close lists the allowed keys", () => {
  const e = parseError("name: x\nruntime: {gpus: 2}\n");
  assert.match(
    e.message,
    /^inline\.yaml:2:11: runtime\.gpus: expected a known key, found unknown key `gpus` \(allowed here: threads, device, numerics, tool_cache, trackers\)$/m,
  );
});

Deno.test("manifest error: a missing required key points at its parent map", async () => {
  const e = await loadError("missing_key.yaml");
  assert.equal(e.issues.length, 1);
  assert.match(
    e.message,
    /missing_key\.yaml:1:1: name: expected a string \(`name` is required\), found nothing/,
  );
  // nested: the map that lacks the key
  const n = parseError("name: x\nplugins:\n  tools:\n    - with: {a: 1}\n");
  assert.match(
    n.message,
    /^inline\.yaml:4:7: plugins\.tools\[0\]\.use: expected a string \(`use` is required\)/m,
  );
});

Deno.test("manifest error: several problems are reported together, in file order", async () => {
  const e = await loadError("several.yaml");
  const lines = e.message.split("\n");
  assert.match(lines[0], /^invalid manifest .*several\.yaml \(5 problems\):$/);
  const f = `${FIX}/several.yaml`;
  assert.deepEqual(e.issues.map((i) => `${i.line}:${i.col}:${i.keyPath}`), [
    "2:7:seed",
    "4:25:policy.init.architecture",
    "8:33:stages[0].sft.schedul",
    "9:5:stages[1].evl",
    "11:11:runtime.device",
  ]);
  for (const l of lines.slice(1)) assert.ok(l.startsWith(`${f}:`), l);
  assert.match(e.message, /seed: expected a number ≥ 0, found -3/);
  assert.match(
    e.message,
    /architecture: expected one of `llama`, `qwen2` or `qwen3`, found "gpt2"/,
  );
  assert.match(e.message, /unknown key `schedul` \(did you mean `schedule`\?\)/);
  assert.match(
    e.message,
    /stages\[1\]\.evl: expected a stage kind .* found `evl` \(did you mean `eval`\?\)/,
  );
  assert.match(
    e.message,
    /runtime\.device: expected one of `auto`, `cpu`, `cuda` or `webgpu`, found "tpu"/,
  );
});

Deno.test("manifest error: an empty document or a non-map top level", () => {
  assert.match(
    parseError("").message,
    /^inline\.yaml:1:1: \(top level\): expected a map of manifest keys .* found an empty document$/m,
  );
  assert.match(
    parseError("- a\n- b\n").message,
    /^inline\.yaml:1:1: \(top level\): expected a map .* found a list of 2 items$/m,
  );
});

Deno.test("manifest error: a stage reference to an undeclared plugin", () => {
  const e = parseError(
    "name: x\nplugins:\n  benchmarks: [{use: arith}, {use: ./gsm8k.ts}]\n  rewards: [{use: arpo}]\n" +
      "stages:\n  - eval: {benchmark: gsm8kk}\n",
  );
  assert.match(
    e.message,
    /^inline\.yaml:6:23: stages\[0\]\.eval\.benchmark: expected the name of a benchmark in plugins\.benchmarks \(`arith` or `gsm8k`\), found "gsm8kk" \(did you mean `gsm8k`\?\)$/m,
  );
  const none = parseError("name: x\nstages:\n  - eval\n");
  assert.match(
    none.message,
    /^inline\.yaml:3:5: stages\[0\]\.eval\.benchmark: expected the name of a benchmark, but plugins\.benchmarks declares none \(`benchmark` is required\), found nothing$/m,
  );
});

Deno.test("manifest error: duplicate stage and plugin names", () => {
  const e = parseError(
    "name: x\nplugins:\n  benchmarks: [{use: arith}, {use: ./x/arith.ts}]\n" +
      "stages:\n  - probe: {benchmark: arith}\n  - probe: {benchmark: arith}\n",
  );
  assert.match(
    e.message,
    /^inline\.yaml:3:30: plugins\.benchmarks\[1\]: expected a unique plugin name \(add `as:` to tell them apart\), found `arith`, already the name of plugins\.benchmarks\[0\]$/m,
  );
  assert.match(
    e.message,
    /^inline\.yaml:6:5: stages\[1\]\.probe: expected a unique stage name .* found `probe`, already the name of stages\[0\]$/m,
  );
});

Deno.test("manifest error: policy needs exactly one of model, init and server", () => {
  const both = parseError("name: x\npolicy:\n  model: ./m\n  init: {}\n");
  assert.match(
    both.message,
    /^inline\.yaml:3:3: policy: expected exactly one of `model`, `init`, `server`, found `model` and `init`$/m,
  );
  const neither = parseError("name: x\npolicy: {}\n");
  assert.match(
    neither.message,
    /policy: expected exactly one of `model`, `init`, `server`, found neither/,
  );
  const server = parseError("name: x\npolicy: {server: {url: ftp://h, model: m, api: tgi}}\n");
  assert.match(server.message, /policy\.server\.url: expected .*URL/i);
  assert.match(server.message, /policy\.server\.api: expected one of .*vllm.*sglang.*openai/);
  const shape = parseError("name: x\npolicy: {init: {hidden_size: 100, heads: 8, kv_heads: 3}}\n");
  assert.match(
    shape.message,
    /policy\.init\.hidden_size: expected a multiple of heads \(8\), found 100/,
  );
  assert.match(shape.message, /policy\.init\.kv_heads: expected a divisor of heads \(8\), found 3/);
});

Deno.test("manifest error: stage options mis-indented under the kind", () => {
  const e = parseError("name: x\nstages:\n  - sft:\n    epochs: 2\n");
  assert.match(
    e.message,
    /^inline\.yaml:3:5: stages\[0\]: expected a stage: a single-key map .* found keys sft, epochs \(indent the options under `sft:`\)$/m,
  );
});

Deno.test("manifest error: rollout constraints (N ≤ M) and value ranges", () => {
  const e = parseError(
    "name: x\nplugins: {benchmarks: [{use: a}], rewards: [{use: r}]}\nstages:\n" +
      "  - rl: {rollout: {rollouts: 4, initial: 6}, questions: 0}\n",
  );
  assert.match(
    e.message,
    /stages\[0\]\.rl\.rollout\.initial: expected at most rollouts \(4\), found 6/,
  );
  assert.match(e.message, /stages\[0\]\.rl\.questions: expected a number ≥ 1, found 0/);
  const q = parseError(
    "name: x\nplugins: {benchmarks: [{use: a}]}\nstages:\n  - probe: {questions: some}\n",
  );
  assert.match(
    q.message,
    /stages\[0\]\.probe\.questions: expected a number or `all`, found "some"/,
  );
});

Deno.test("manifest error: duplicate YAML keys and unresolvable aliases are syntax errors", () => {
  assert.match(
    parseError("name: x\nseed: 1\nname: y\n").message,
    /^inline\.yaml:3:1: \(YAML syntax\): expected valid YAML, found Map keys must be unique$/m,
  );
  assert.match(
    parseError("name: x\nstages:\n  - rl: {<<: *nowhere}\n").message,
    /^inline\.yaml:\d+:\d+: \(YAML syntax\): expected valid YAML, found .+$/m,
  );
});
