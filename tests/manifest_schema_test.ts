/**
 * The JSON Schema for editors, the `arpo schema` command, and stage kinds brought from outside the
 * built-in list (as tests and later rooms do).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { z } from "zod";
import { run as schemaCommand } from "../src/cli/commands/schema.ts";
import {
  ManifestError,
  manifestJsonSchema,
  parseManifest,
  type StageSchema,
} from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";

const FIX = fileURLToPath(new URL("./fixtures/manifest/", import.meta.url));

type S = Record<string, unknown>;

/**
 * A small JSON Schema checker for the keywords the generated schema uses (type, properties,
 * required, additionalProperties, items, anyOf, enum, const, bounds, minLength, pattern). Returns
 * the JSON pointers of failures.
 */
function check(schema: S, v: unknown, at = ""): string[] {
  const errs: string[] = [];
  const t = schema.type as string | undefined;
  const typeOk = (ty: string) =>
    ty === "object"
      ? v !== null && typeof v === "object" && !Array.isArray(v)
      : ty === "array"
      ? Array.isArray(v)
      : ty === "integer"
      ? Number.isInteger(v)
      : ty === "null"
      ? v === null
      // deno-lint-ignore valid-typeof
      : typeof v === ty;
  if (t && !typeOk(t)) return [`${at}: not ${t}`];
  if (schema.anyOf) {
    const ok = (schema.anyOf as S[]).some((s) => check(s, v, at).length === 0);
    if (!ok) errs.push(`${at}: no anyOf branch`);
  }
  if (schema.enum && !(schema.enum as unknown[]).includes(v)) errs.push(`${at}: not in enum`);
  if ("const" in schema && schema.const !== v) errs.push(`${at}: not const`);
  if (typeof v === "number") {
    if (typeof schema.minimum === "number" && v < schema.minimum) errs.push(`${at}: < minimum`);
    if (typeof schema.maximum === "number" && v > schema.maximum) errs.push(`${at}: > maximum`);
    if (typeof schema.exclusiveMinimum === "number" && v <= schema.exclusiveMinimum) {
      errs.push(`${at}: ≤ exclusiveMinimum`);
    }
  }
  if (typeof v === "string") {
    if (typeof schema.minLength === "number" && v.length < schema.minLength) {
      errs.push(`${at}: short`);
    }
    if (typeof schema.pattern === "string" && !new RegExp(schema.pattern).test(v)) {
      errs.push(`${at}: pattern`);
    }
  }
  if (Array.isArray(v) && schema.items) {
    v.forEach((x, i) => errs.push(...check(schema.items as S, x, `${at}/${i}`)));
  }
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    const obj = v as S;
    const props = (schema.properties ?? {}) as Record<string, S>;
    for (const k of (schema.required ?? []) as string[]) {
      if (!(k in obj)) errs.push(`${at}/${k}: required`);
    }
    for (const [k, x] of Object.entries(obj)) {
      if (props[k]) errs.push(...check(props[k], x, `${at}/${k}`));
      else if (schema.additionalProperties === false) errs.push(`${at}/${k}: additional`);
      else if (typeof schema.additionalProperties === "object") {
        errs.push(...check(schema.additionalProperties as S, x, `${at}/${k}`));
      }
    }
  }
  return errs;
}

Deno.test("manifest schema: an object schema with every top-level key", () => {
  const s = manifestJsonSchema(BUILTIN_STAGES) as S;
  assert.equal(s.$schema, "https://json-schema.org/draft/2020-12/schema");
  assert.equal(s.type, "object");
  assert.equal(s.additionalProperties, false);
  assert.deepEqual(Object.keys(s.properties as S).sort(), [
    "description",
    "name",
    "plugins",
    "policy",
    "runtime",
    "seed",
    "stages",
  ]);
  assert.deepEqual(s.required, ["name"]);
  // one anyOf branch per built-in stage kind, plus the bare-kind string form
  const items = (s.properties as Record<string, S>).stages.items as S;
  const kinds = (items.anyOf as S[]).flatMap((b) => Object.keys((b.properties ?? {}) as S));
  for (const k of ["sft", "rl", "eval", "probe"]) assert.ok(kinds.includes(k), k);
});

Deno.test("manifest schema: sample manifests validate; wrong shapes do not", async () => {
  const s = manifestJsonSchema(BUILTIN_STAGES) as S;
  for (const f of ["ok.yaml", "ok_reformatted.yaml"]) {
    assert.deepEqual(check(s, parse(await Deno.readTextFile(join(FIX, f)))), [], f);
  }
  const bad = parse(await Deno.readTextFile(join(FIX, "several.yaml")));
  const errs = check(s, bad);
  assert.ok(errs.includes("/seed: < minimum"), errs.join("; "));
  assert.ok(errs.includes("/runtime/device: not in enum"), errs.join("; "));
  assert.ok(errs.includes("/stages/0: no anyOf branch"), errs.join("; "));
  assert.deepEqual(check(s, { description: "x" }), ["/name: required"]);
  assert.deepEqual(check(s, { name: "x", runtim: {} }), ["/runtim: additional"]);
});

Deno.test("manifest schema: `arpo schema -o FILE` writes the same schema", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = join(dir, "manifest.schema.json");
    const err = console.error;
    console.error = () => {};
    let code;
    try {
      code = await schemaCommand(["-o", out]);
    } finally {
      console.error = err;
    }
    assert.equal(code, 0);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(out)), manifestJsonSchema(BUILTIN_STAGES));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["manifest.schema.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("manifest stage kinds: a fixture kind passed in validates, defaults and reports", () => {
  const fixtureCount: StageSchema = {
    kind: "fixture_count",
    options: z.strictObject({ upto: z.int().min(1).default(3), label: z.string().default("n") }),
  };
  const stages = [...BUILTIN_STAGES, fixtureCount];
  const m = parseManifest(
    "name: f\nstages:\n  - fixture_count: {upto: 5}\n  - fixture_count: {name: second}\n",
    "f.yaml",
    { stages },
  );
  assert.deepEqual(m.manifest.stages, [
    { kind: "fixture_count", name: "fixture_count", options: { upto: 5, label: "n" } },
    { kind: "fixture_count", name: "second", options: { upto: 3, label: "n" } },
  ]);
  let err: unknown;
  try {
    parseManifest("name: f\nstages:\n  - fixture_count: {upt: 0}\n", "f.yaml", { stages });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ManifestError);
  assert.match(
    err.message,
    /^f\.yaml:3:21: stages\[0\]\.fixture_count\.upt: expected a known key, found unknown key `upt` \(did you mean `upto`\?\)$/m,
  );
  // the editor schema of that list has the new kind; the built-in one does not
  const hasKind = (schema: object) => {
    const items = ((schema as S).properties as Record<string, S>).stages.items as S;
    return (items.anyOf as S[]).some((b) => "fixture_count" in ((b.properties ?? {}) as S));
  };
  assert.ok(hasKind(manifestJsonSchema(stages)));
  assert.ok(!hasKind(manifestJsonSchema(BUILTIN_STAGES)));
  // nothing is registered: without the kind in the list, the same text is an unknown kind
  assert.throws(
    () =>
      parseManifest("name: f\nstages:\n  - fixture_count: {upto: 5}\n", "f.yaml", {
        stages: BUILTIN_STAGES,
      }),
    (e: unknown) =>
      e instanceof ManifestError &&
      /stages\[0\]\.fixture_count: expected a stage kind/.test(e.message),
  );
});
