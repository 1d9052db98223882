// The numerics fingerprint in run records (`show` prints it, `diff` compares it) and verify's
// three cases, on the numerics fixture run natively:
// - same fingerprint, one output tampered with: a determinism bug, exit 1 naming the output;
// - the archived fingerprint edited (as if another CPU had made the run) and the archived eval
//   results differing by one question: replicated, not bit-identical, exit 0;
// - the same with the eval shifted on half the questions: not replicated, exit 1.
// (A portable run's verify, bit-identity whatever the fingerprint: numerics_portable_test.ts.)
import assert from "node:assert/strict";
import { join } from "node:path";
import { arpo, REPO, rm, setFlags } from "./fixtures/helpers.ts";
import { Store } from "../src/store/store.ts";

const MANIFEST = join(REPO, "tests", "fixtures", "numerics", "portable.yaml");
// 24 test questions give the paired bootstrap something to work with.
const SETS = [
  "runtime.numerics=native",
  "plugins.benchmarks[0].with.sizes={train: 40, rl: 8, test: 24}",
];

interface PerQuestion {
  task_id: string;
  n: number;
  correct: number;
  sample_correct: boolean[];
}

async function exp(store: string, extra: string[] = []): Promise<string> {
  const r = await arpo(
    [
      "exp",
      MANIFEST,
      "--store",
      store,
      "--progress",
      "none",
      "--json",
      ...setFlags([...SETS, ...extra]),
    ],
    REPO,
  );
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return JSON.parse(r.stdout).runId;
}

function verify(store: string, id: string, json = false) {
  return arpo(
    [
      "verify",
      id.slice(0, 12),
      "--store",
      store,
      "--progress",
      "none",
      ...(json ? ["--json"] : []),
    ],
    REPO,
  );
}

Deno.test("numerics: fingerprint recorded and shown, diff compares it, verify tells a determinism bug from other numerics", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arpo-numerics-" });
  const store = join(dir, "store");
  try {
    const id = await exp(store);
    const path = join(store, "runs", `${id}.json`);
    const original = await Deno.readTextFile(path);
    const rec = JSON.parse(original);
    const fp = rec.numerics;
    assert.equal(fp.format, "arpo-numerics/1");
    assert.equal(fp.numerics, "native");
    assert.equal(fp.engine, "onnxruntime-node");
    assert.equal(fp.provider, "cpu");
    assert.equal(fp.threads, 1);
    assert.match(fp.canary, /^[0-9a-f]{64}$/);
    assert.equal(typeof fp.cpu.isa, "string");
    assert.equal(
      rec.identity.manifest.runtime.numerics,
      undefined,
      "native is not in the identity",
    );
    for (const s of Object.values(rec.stages) as { numerics: unknown }[]) {
      assert.deepEqual(s.numerics, fp, "each computed stage carries the fingerprint");
    }

    const show = await arpo(["show", id.slice(0, 12), "--store", store], REPO);
    assert.equal(show.code, 0, show.stderr);
    assert.match(
      show.stdout,
      new RegExp(
        `numerics native: onnxruntime-node \\S+ on cpu, 1 thread; .*canary ${
          fp.canary.slice(0, 16)
        }`,
      ),
    );

    // Another thread count is other numerics: diff says so field by field.
    const id2 = await exp(store, ["runtime.threads=2"]);
    const diff = await arpo(["diff", id.slice(0, 12), id2.slice(0, 12), "--store", store], REPO);
    assert.equal(diff.code, 1, diff.stderr);
    assert.match(diff.stdout, /^numerics +threads: 1 → 2$/m);
    assert.match(diff.stdout, /numerics +computed under different numerics/);
    const same = await arpo(["diff", id.slice(0, 12), id.slice(0, 12), "--store", store], REPO);
    assert.match(same.stdout, /numerics +computed alike/);

    const objects = new Store(store);
    const save = (r: unknown) => Deno.writeTextFile(path, JSON.stringify(r, null, 2));

    // 1. Same fingerprint, one output tampered with: a determinism bug.
    const tampered = JSON.parse(original);
    tampered.stages.eval.outputs.report = await objects.putJson({ not: "the eval report" });
    await save(tampered);
    const bug = await verify(store, id);
    assert.equal(bug.code, 1, bug.stderr + bug.stdout);
    assert.match(bug.stdout, /NOT reproduced — stage 'eval' output 'report' differs/);
    assert.match(
      bug.stdout,
      /same numerics fingerprint and the same inputs, different bytes: a determinism bug/,
    );

    // 2. and 3. The archived fingerprint edited: the run as if another CPU class had made it,
    // with archived eval results that differ from this machine's on some questions.
    // Another ISA class than this machine's (on an AVX2 machine, avx2-fma would be no change).
    const otherIsa = JSON.parse(original).numerics.cpu.isa === "avx2-fma" ? "avx512" : "avx2-fma";
    const elsewhere = async (change: (qs: PerQuestion[]) => void) => {
      const r = JSON.parse(original);
      const other = {
        ...r.numerics,
        cpu: { ...r.numerics.cpu, vendor: "GenuineIntel", model: "elsewhere", isa: otherIsa },
        canary: "0".repeat(64),
      };
      r.numerics = other;
      for (const s of Object.values(r.stages) as { numerics: unknown }[]) s.numerics = other;
      const results = await objects.getJson(r.stages.eval.outputs.results) as {
        per_question: PerQuestion[];
      };
      change(results.per_question);
      r.stages.eval.outputs.results = await objects.putJson(results);
      await save(r);
    };
    const flip = (q: PerQuestion) => {
      q.correct = q.correct === q.n ? 0 : q.n;
      q.sample_correct = q.sample_correct.map(() => q.correct > 0);
    };

    await elsewhere((qs) => flip(qs[0]));
    const replicated = await verify(store, id);
    assert.equal(replicated.code, 0, replicated.stderr + replicated.stdout);
    const lines = replicated.stdout.split("\n");
    assert.match(
      lines[0],
      new RegExp(`numerics differ from the archived run's \\(canary .*cpu\\.isa "${otherIsa}" → `),
    );
    assert.match(replicated.stdout, /replicated, not bit-identical — 1 output\(s\) differ/);
    assert.match(replicated.stdout, /^ *eval +accuracy .* replicates$/m);

    await elsewhere((qs) => qs.slice(0, 12).forEach(flip));
    const shifted = await verify(store, id, true);
    assert.equal(shifted.code, 1, shifted.stderr + shifted.stdout);
    const s = JSON.parse(shifted.stdout);
    assert.equal(s.verdict, "not-replicated");
    assert.deepEqual(s.numerics.other, ["sft", "eval", "rl"]);
    assert.deepEqual(s.bugs, []);
    const acc = s.metrics.find((m: { metric: string }) => m.metric === "accuracy");
    assert.equal(acc.questions, 24);
    assert.ok(!acc.replicates && acc.excludesZero, JSON.stringify(acc));
    assert.ok(Math.abs(acc.difference - (acc.b - acc.a)) < 1e-12);
    const reward = s.metrics.find((m: { metric: string }) => m.metric === "mean_reward");
    assert.ok(reward.replicates, "rewards were left as they were");
  } finally {
    await rm(dir);
  }
});
