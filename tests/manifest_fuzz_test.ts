// Manifest fuzzing (issue 13, point 11): a few hundred generated manifests and `--set` overrides,
// seeded and deterministic, run through loadManifest in-process, plus a handful through the CLI.
// Every case must end in a value or an ArpoError (never another exception: that is a stack trace
// in the CLI), within a time bound (no hang), with a bounded message whose problems are located
// (file:line:col: key path), and cases that are wrong by construction must fail.
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { ArpoError } from "../src/errors.ts";
import { loadManifest, ManifestError } from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { Stream } from "../src/rng.ts";
import { FIXTURES, REPO, rm } from "./fixtures/helpers.ts";

const BASE = await Deno.readTextFile(join(FIXTURES, "manifest", "ok.yaml"));
const enc = new TextEncoder();

interface Case {
  name: string;
  /** Manifest bytes (a string is written as UTF-8). */
  body: string | Uint8Array;
  set?: string[];
  /** Wrong by construction: loading must fail. */
  mustFail: boolean;
  /** A message fragment a failure must contain. */
  says?: RegExp;
}

type Path = (string | number)[];
type Obj = Record<string | number, unknown>;

/** Every path to a scalar in `v`, except under plugins' `with:` (the plugin validates that). */
function leaves(v: unknown, path: Path = []): Path[] {
  if (path.includes("with")) return [];
  if (v === null || typeof v !== "object") return [path];
  return Object.entries(v as Obj).flatMap(([k, x]) =>
    leaves(x, [...path, Array.isArray(v) ? Number(k) : k])
  );
}

/** Every path to a map in `v`, except `with:` maps and the root's `x-` keys. */
function maps(v: unknown, path: Path = []): Path[] {
  if (v === null || typeof v !== "object" || path.at(-1) === "with") return [];
  const here = Array.isArray(v) ? [] : [path];
  return [
    ...here,
    ...Object.entries(v as Obj).flatMap(([k, x]) =>
      maps(x, [...path, Array.isArray(v) ? Number(k) : k])
    ),
  ];
}

function setAt(root: unknown, path: Path, value: unknown): void {
  let cur = root as Obj;
  for (const p of path.slice(0, -1)) cur = cur[p] as Obj;
  cur[path.at(-1)!] = value;
}

const pick = <T>(s: Stream, xs: readonly T[]): T => xs[s.int(xs.length)];
const baseValue = () => parseYaml(BASE) as Obj;
const yaml = (v: unknown) => stringifyYaml(v);

/** The cases, class by class; `s` is the class's own keyed stream. */
function cases(): Case[] {
  const root = new Stream(["manifest-fuzz", 13]);
  const out: Case[] = [];
  const base = baseValue();
  const scalarPaths = leaves(base).filter((p) => p.length);

  // 1. A scalar of the wrong type (numbers become text, text becomes a map).
  {
    const s = root.child("types");
    for (let i = 0; i < 60; i++) {
      const v = baseValue();
      const p = pick(s, scalarPaths);
      const old = p.reduce((c: unknown, k) => (c as Obj)[k], v);
      const wrong = typeof old === "number"
        ? pick(s, ["seven", [1], { a: 1 }, true])
        : typeof old === "string"
        ? pick(s, [{ a: 1 }, [1, 2], 3.5])
        : pick(s, [{ a: 1 }, "text"]);
      setAt(v, p, wrong);
      out.push({
        name: `type ${p.join(".")}=${JSON.stringify(wrong)}`,
        body: yaml(v),
        mustFail: true,
      });
    }
  }
  // 2. An unknown key in a map (every map but `with:` is strict).
  {
    const s = root.child("keys");
    const ms = maps(base).filter((p) => p.length === 0 || typeof p.at(-1) === "string");
    for (let i = 0; i < 30; i++) {
      const v = baseValue();
      const p = pick(s, ms);
      const m = p.reduce((c: unknown, k) => (c as Obj)[k], v) as Obj;
      const key = `zq${s.int(1000)}`;
      m[key] = 1;
      out.push({ name: `unknown key ${[...p, key].join(".")}`, body: yaml(v), mustFail: true });
    }
  }
  // 3. Out of bounds: what ran out of memory or produced NaN before.
  {
    const bounds: [Path, unknown][] = [
      [["stages", 1, "rl", "rollout", "rollouts"], 20000],
      [["stages", 1, "rl", "rollout", "initial"], 5000],
      [["stages", 3, "eval", "sampling"], { temperature: 5e-324 }],
      [["stages", 3, "eval", "sampling"], { temperature: 1e308 }],
      [["stages", 3, "eval", "sampling"], { max_tokens: 1e9 }],
      [["policy", "init", "hidden_size"], 1 << 20],
      [["policy", "init", "layers"], 100000],
      [["policy", "init", "max_position"], 1e9],
      [["policy", "init"], { hidden_size: 8192, layers: 256, heads: 64, kv_heads: 64 }],
      [["runtime", "threads"], 1e6],
      [["runtime", "threads"], 0],
      [["seed"], -1],
      [["seed"], 2 ** 60],
      [["seed"], 1.5],
      [["stages", 1, "rl", "steps"], -5],
      [["stages", 1, "rl", "rollout", "base_probability"], 2],
    ];
    for (const [p, value] of bounds) {
      const v = baseValue();
      setAt(v, p, value);
      out.push({
        name: `bound ${p.join(".")}=${JSON.stringify(value)}`,
        body: yaml(v),
        mustFail: true,
      });
    }
    out.push({
      name: "bound: temperature 5e-324 as written",
      body: BASE.replace(
        "- probe",
        "- probe\n  - eval: { name: e2, sampling: { temperature: 5e-324 } }",
      ),
      mustFail: true,
      says: /temperature: expected 0 \(greedy\) or at least 0\.01/,
    });
    out.push({
      name: "bound: .nan and .inf",
      body: BASE.replace("seed: 7", "seed: .nan").replace("threads: 1", "threads: .inf"),
      mustFail: true,
    });
  }
  // 4. Text that must not reach a name or a record.
  {
    const texts: [string, string | Uint8Array, RegExp][] = [
      ["NUL in name", BASE.replace("name: fixture-ok", 'name: "fixture\\0ok"'), /U\+0000/],
      ["NUL in a stage name", BASE.replace("name: arpo", 'name: "ar\\0po"'), /name/],
      ["raw control char", BASE.replace("fixture-ok", "fixture\u0001ok"), /U\+0001|control/i],
      ["lone surrogate", BASE.replace("name: fixture-ok", 'name: "\\ud800x"'), /surrogate/],
      ["control char in a key", BASE.replace("seed: 7", '"se\\u0007ed": 7'), /U\+0007/],
      ["NUL in description", BASE.replace("description: a", 'description: "a\\x00'), /./],
    ];
    for (const [name, body, says] of texts) out.push({ name, body, mustFail: true, says });
    const s = root.child("utf8");
    const bad = [[0xff], [0xc3, 0x28], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80]];
    const bytes = enc.encode(BASE);
    for (let i = 0; i < 15; i++) {
      const at = s.int(bytes.length);
      const seq = pick(s, bad);
      const b = new Uint8Array([...bytes.subarray(0, at), ...seq, ...bytes.subarray(at)]);
      out.push({ name: `invalid UTF-8 at byte ${at}`, body: b, mustFail: true, says: /UTF-8/ });
    }
  }
  // 5. Anchors, aliases, merges, tags, documents.
  {
    const ab = ["a: &a [x, x, x, x, x, x, x, x, x]"];
    for (const c of "bcdefgh") {
      const prev = String.fromCharCode(c.charCodeAt(0) - 1);
      ab.push(`${c}: &${c} [${Array(9).fill(`*${prev}`).join(", ")}]`);
    }
    const docs: [string, string][] = [
      ["undefined alias", BASE.replace("seed: 7", "seed: *nope")],
      ["alias bomb", `${BASE}\nx-bomb:\n${ab.map((l) => "  " + l).join("\n")}\n`],
      ["merge of a scalar", BASE.replace("seed: 7", "x-m: &m 3\nruntime2:\n  <<: *m")],
      ["unknown tag", BASE.replace("seed: 7", "seed: !custom 7")],
      ["binary tag", BASE.replace("seed: 7", "seed: !!binary aGVsbG8=")],
      ["two documents", `${BASE}\n---\nname: other\n`],
      ["duplicate key", BASE.replace("seed: 7", "seed: 7\nseed: 8")],
      ["tab indentation", BASE.replace("  init:", "\tinit:")],
      ["empty document", ""],
      ["only a comment", "# nothing\n"],
      ["a list at the top", "- name: x\n"],
      ["a scalar at the top", "just text\n"],
    ];
    for (const [name, body] of docs) out.push({ name, body, mustFail: true });
  }
  // 6. Nesting.
  for (const depth of [70, 1000, 20000]) {
    out.push({
      name: `nesting ${depth} (flow)`,
      body: BASE.replace(
        "description: a manifest",
        `description: ${"[".repeat(depth)}${"]".repeat(depth)}\nx-d: a`,
      ),
      mustFail: true,
    });
    let block = "x-deep:\n";
    for (let i = 0; i < Math.min(depth, 2000); i++) block += `${"  ".repeat(i + 1)}k${i}:\n`;
    out.push({ name: `nesting ${depth} (block)`, body: `${BASE}\n${block}`, mustFail: true });
  }
  // 7. Size.
  out.push({
    name: "a 5 MB prompt",
    body: BASE.replace("description: a manifest", `description: ${"q".repeat(5 << 20)}`),
    mustFail: true,
    says: /larger than a manifest may be/,
  });
  {
    const s = root.child("garbage-big");
    const chars = ":-[]{}&*!|>'\"%@`#,?\n x9";
    const big = Array.from({ length: 200_000 }, () => chars[s.int(chars.length)]).join("");
    out.push({ name: "200 kB of garbage", body: big, mustFail: true });
    out.push({ name: "2 MB of garbage", body: big.repeat(10), mustFail: true, says: /larger/ });
  }
  // 8. Damaged YAML: truncations and inserted punctuation (may or may not stay valid).
  {
    const s = root.child("damage");
    const punct = [
      ":",
      "[",
      "]",
      "{",
      "}",
      "&",
      "*",
      "!",
      "|",
      ">",
      "'",
      '"',
      "%",
      "@",
      "`",
      "\t",
      "- ",
      ": :",
      "\n  - ",
    ];
    for (let i = 0; i < 50; i++) {
      const at = s.int(BASE.length);
      const body = s.uniform() < 0.3
        ? BASE.slice(0, at)
        : BASE.slice(0, at) + pick(s, punct) + BASE.slice(at);
      out.push({ name: `damaged YAML #${i} at ${at}`, body, mustFail: false });
    }
  }
  // 9. Garbage of every kind.
  {
    const s = root.child("garbage");
    for (let i = 0; i < 25; i++) {
      const n = s.int(2000);
      const b = new Uint8Array(n);
      for (let j = 0; j < n; j++) b[j] = s.uniform() < 0.5 ? 32 + s.int(95) : s.int(256);
      out.push({ name: `garbage bytes #${i} (${n})`, body: b, mustFail: true });
    }
  }
  // 10. `--set` overrides.
  {
    const bad = [
      "seed=*a",
      "seed=[",
      "seed=!!binary aGVsbG8=",
      "=1",
      "seed",
      "a..b=1",
      ".seed=1",
      "stages.nope.steps=1",
      "stages[99].steps=1",
      "stages.arpo.rollout.rollouts=20000",
      "stages.eval.sampling.temperature=5e-324",
      "runtime.threads=0",
      'name="a\\0b"',
      "policy.init.hidden_size=nope",
      "seed.deeper=1",
      "plugins.tools.x=1",
      "stages.arpo.rl=3",
      `name=${"[".repeat(5000)}`,
      "stages[0]=",
    ];
    for (const o of bad) {
      out.push({ name: `--set ${o.slice(0, 40)}`, body: BASE, set: [o], mustFail: true });
    }
    const s = root.child("set");
    const chars = "seedstagn.[]0123=*&!:{}\"' \\";
    for (let i = 0; i < 30; i++) {
      const n = 1 + s.int(24);
      const o = Array.from({ length: n }, () => chars[s.int(chars.length)]).join("");
      out.push({ name: `--set soup #${i}`, body: BASE, set: [o], mustFail: false });
    }
  }
  return out;
}

const ISSUE_LINE = /^(.+):(\d+):(\d+)(?: \(--set .*\))?: .+: expected .+, found .+$/s;

/** The oracle for one outcome. */
function check(c: Case, file: string, err: unknown, ms: number): void {
  const what = `case '${c.name}'`;
  assert.ok(ms < 5000, `${what}: took ${Math.round(ms)} ms`);
  if (err === undefined) {
    assert.ok(!c.mustFail, `${what}: loaded, but it is wrong by construction`);
    return;
  }
  assert.ok(
    err instanceof ArpoError,
    `${what}: threw a ${(err as Error)?.name} (a stack trace in the CLI): ${
      (err as Error)?.stack ?? err
    }`,
  );
  const msg = err.message;
  assert.ok(msg.length < 32_000, `${what}: a ${msg.length}-character message`);
  assert.ok(msg.split("\n").length <= 52, `${what}: ${msg.split("\n").length} lines`);
  assert.ok(msg.includes(file), `${what}: the message does not name the file: ${msg}`);
  if (c.says) assert.match(msg, c.says, what);
  if (err instanceof ManifestError) {
    assert.ok(err.issues.length > 0, what);
    for (const line of msg.split("\n").slice(1)) {
      if (line.startsWith("… and ")) continue;
      const m = ISSUE_LINE.exec(line);
      assert.ok(m, `${what}: not a located problem: ${line}`);
      assert.equal(m[1], file, what);
      assert.ok(Number(m[2]) >= 1 && Number(m[3]) >= 1, `${what}: ${line}`);
    }
  }
}

Deno.test("manifest fuzz: generated manifests and overrides fail cleanly, located and bounded", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-fuzz-" });
  const all = cases();
  try {
    assert.ok(all.length >= 250, `${all.length} cases`);
    let failed = 0;
    const problems: string[] = [];
    for (const [i, c] of all.entries()) {
      const file = join(dir, `m${i}.yaml`);
      await Deno.writeFile(file, typeof c.body === "string" ? enc.encode(c.body) : c.body);
      const t0 = performance.now();
      let err: unknown;
      try {
        await loadManifest(file, { stages: BUILTIN_STAGES, overrides: c.set });
      } catch (e) {
        err = e;
        failed++;
      }
      try {
        check(c, file, err, performance.now() - t0);
      } catch (e) {
        problems.push((e as Error).message.split("\n").slice(0, 6).join("\n"));
      }
      await Deno.remove(file);
    }
    assert.deepEqual(problems, [], `${problems.length} of ${all.length} cases failed the oracle`);
    // Nearly every case is wrong: the damaged-YAML and --set soup classes may stay valid.
    assert.ok(failed > all.length * 0.8, `${failed} of ${all.length} failed`);
  } finally {
    await rm(dir);
  }
});

Deno.test("manifest fuzz: a FIFO, a directory and a device are refused without blocking", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-fuzz-" });
  try {
    const fifo = join(dir, "fifo.yaml");
    assert.equal((await new Deno.Command("mkfifo", { args: [fifo] }).output()).code, 0);
    for (
      const [p, says] of [[fifo, /not a regular file/], [dir, /is a directory/], [
        "/dev/zero",
        /not a regular file/,
      ]] as const
    ) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const hang = new Promise<"hang">((r) => (timer = setTimeout(() => r("hang"), 3000)));
      const r = await Promise.race([
        loadManifest(p, { stages: BUILTIN_STAGES }).then(() => "loaded", (e) => e),
        hang,
      ]);
      clearTimeout(timer);
      assert.ok(r instanceof ArpoError, `${p}: ${r}`);
      assert.match(r.message, says);
    }
  } finally {
    await rm(dir);
  }
});

/** The CLI, killed after `ms` (a hang). */
async function cliWithin(args: string[], cwd: string, ms = 60_000) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", join(REPO, "src/cli/main.ts"), ...args],
    cwd,
    env: { ARPO_PRELOAD: "", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), ms);
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return {
    code: out.code,
    signal: out.signal,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

Deno.test("manifest fuzz: through the CLI, no stack trace, no hang, no exit 0 on an error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-fuzz-cli-" });
  try {
    const store = join(dir, "store");
    const w = async (name: string, body: string | Uint8Array) => {
      await Deno.writeFile(join(dir, name), typeof body === "string" ? enc.encode(body) : body);
      return join(dir, name);
    };
    await Deno.writeTextFile(join(dir, "exit_plugin.ts"), "Deno.exit(0);\nexport default 1;\n");
    // A benchmark whose one question is longer than the model's context (max_position: 64).
    await Deno.copyFile(join(FIXTURES, "plugins", "tiny_bench.ts"), join(dir, "tiny_bench.ts"));
    await Deno.writeTextFile(
      join(dir, "long.json"),
      JSON.stringify([{ q: "x".repeat(400), a: "y" }]),
    );
    const long =
      "name: long\npolicy:\n  init: { hidden_size: 16, layers: 1, heads: 2, kv_heads: 2, " +
      "intermediate_size: 32, max_position: 64 }\nplugins:\n  benchmarks:\n" +
      "    - { use: ./tiny_bench.ts, with: { file: long.json } }\nstages:\n" +
      "  - eval: { split: test, rollout: { rollouts: 1 }, sampling: { max_tokens: 4 } }\n";
    await Deno.writeTextFile(join(dir, "short.json"), JSON.stringify([{ q: "hi", a: "y" }]));
    await Deno.writeTextFile(
      join(dir, "nan_reward.ts"),
      'import { defineReward, z } from "arpo-lab";\nexport default defineReward({ options: ' +
        "z.strictObject({}), create: () => ({ score: () => ({ reward: NaN }) }) });\n",
    );
    const nan = long.replace("long.json", "short.json").replace(
      "stages:",
      "  rewards: [{ use: ./nan_reward.ts }]\nstages:",
    );
    await new Deno.Command("mkfifo", { args: [join(dir, "fifo.yaml")] }).output();
    const plain = "name: fuzz\nplugins:\n  benchmarks: [{ use: arith }]\n";
    const cases: [string, string[], RegExp][] = [
      [
        "--set seed=*a",
        ["exp", await w("a.yaml", plain), "--set", "seed=*a"],
        /Unresolved alias|a YAML value/,
      ],
      ["a FIFO", ["exp", join(dir, "fifo.yaml")], /not a regular file/],
      ["a 5 MB prompt", [
        "exp",
        await w("big.yaml", `name: x\ndescription: ${"q".repeat(5 << 20)}\n`),
      ], /larger than/],
      ["invalid UTF-8", [
        "exp",
        await w("u.yaml", new Uint8Array([...enc.encode("name: fu"), 0xff, 0x0a])),
      ], /UTF-8/],
      ["temperature 5e-324", [
        "exp",
        await w("t.yaml", `${plain}stages:\n  - eval: { sampling: { temperature: 5e-324 } }\n`),
      ], /temperature/],
      ["rollouts 20000", [
        "exp",
        await w("r.yaml", `${plain}stages:\n  - eval: { rollout: { rollouts: 20000 } }\n`),
      ], /rollouts: expected a number ≤ 1024/],
      ["a plugin exiting 0 at import", [
        "exp",
        await w("x.yaml", "name: x\nplugins:\n  tools: [{ use: ./exit_plugin.ts }]\n"),
      ], /exit_plugin\.ts.*called Deno\.exit\(0\)/s],
      ["2 MB of garbage", ["exp", await w("g.yaml", ":[{&*\n".repeat(400_000))], /larger than/],
      [
        "a reward returning NaN",
        ["exp", await w("nan.yaml", nan), "--no-report"],
        /reward plugin "nan_reward" returned reward NaN for task "t0"/,
      ],
      [
        "a prompt longer than max_position",
        ["exp", await w("long.yaml", long), "--no-report"],
        /question 't0' is 40\d tokens, but the model handles 64 positions/,
      ],
      [
        "100 kB of garbage",
        ["exp", await w("g2.yaml", "- : [ {\n\t*x\n".repeat(8000))],
        /invalid manifest/,
      ],
    ];
    // Two at a time: the machine is shared.
    for (let i = 0; i < cases.length; i += 2) {
      const batch = cases.slice(i, i + 2);
      const results = await Promise.all(
        batch.map(([, args]) => cliWithin([...args, "--store", store], dir)),
      );
      batch.forEach(([name, , says], j) => {
        const r = results[j];
        assert.equal(r.signal, null, `${name}: killed (hang?)`);
        assert.notEqual(r.code, 0, `${name}: exit 0\n${r.stdout}${r.stderr}`);
        assert.doesNotMatch(r.stderr, /^\s+at |Uncaught/m, `${name}: a stack trace\n${r.stderr}`);
        assert.ok(r.stderr.length < 16_000, `${name}: ${r.stderr.length} bytes of errors`);
        assert.match(r.stderr, says, name);
      });
    }
  } finally {
    await rm(dir);
  }
});
