// The store heals and trusts nothing it has not re-hashed (issue 13, points 7–10): damaged
// objects are rewritten on recompute, metrics are bound to objects and checked, imports never
// change an existing record, index entries are checked against records before reuse, and two
// runs of one manifest at once compute each stage once.
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest } from "../src/manifest/mod.ts";
import { verifyRun } from "../src/run/reexec.ts";
import { runManifest, type RunOptions } from "../src/run/runner.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import type { Reporter } from "../src/run/progress.ts";
import { exportRun, importArchive } from "../src/store/archive.ts";
import { acquireLock, lockPath } from "../src/store/lock.ts";
import { readRecord, type RunRecord } from "../src/store/records.ts";
import { readStageIndex } from "../src/store/stage_index.ts";
import type { Store } from "../src/store/store.ts";
import { readTar, writeTar } from "../src/store/tar.ts";
import { hooks, stages as fixtureStages } from "./fixtures/stages/fixture_stages.ts";
import { cli, rm, scratchFixtures, scratchStore } from "./fixtures/helpers.ts";

const stages = [...BUILTIN_STAGES, ...fixtureStages];
const enc = new TextEncoder();

async function basic(
  dir: string,
  store: Store,
  extra: Partial<RunOptions> = {},
  set: string[] = [],
) {
  const view = await loadManifest(join(dir, "manifests", "basic.yaml"), { stages, overrides: set });
  return await runManifest({ store, view, stages, ...extra });
}

function logs(): { reporter: Reporter; lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    reporter: {
      stage() {},
      progress() {},
      log: (m) => lines.push(m),
      debug() {},
      done() {},
    },
  };
}

async function damage(store: Store, digest: string, bytes = "{}") {
  const p = store.objectPath(digest);
  await Deno.chmod(p, 0o644);
  await Deno.writeTextFile(p, bytes);
}

const recPath = (store: Store, id: string) => store.metaPath("runs", id);
const readRaw = async (store: Store, id: string) =>
  JSON.parse(await Deno.readTextFile(recPath(store, id))) as RunRecord;
const writeRaw = (store: Store, id: string, rec: unknown) =>
  Deno.writeTextFile(recPath(store, id), JSON.stringify(rec, null, 2));

Deno.test("store: putBytes rewrites a damaged object atomically, leaves an intact one alone", async () => {
  const store = await scratchStore();
  try {
    const bytes = enc.encode("payload");
    const d = await store.putBytes(bytes);
    const before = (await Deno.stat(store.objectPath(d))).mtime;
    assert.equal(await store.putBytes(bytes), d);
    assert.deepEqual((await Deno.stat(store.objectPath(d))).mtime, before, "intact: untouched");
    await damage(store, d, "garbage");
    assert.equal(await store.check(d), "damaged");
    await store.putBytes(bytes);
    assert.equal(await store.check(d), "ok");
    // A directory squatting on the object's name is damage too.
    await Deno.remove(store.objectPath(d));
    await Deno.mkdir(store.objectPath(d));
    assert.equal(await store.check(d), "damaged");
    await store.putBytes(bytes);
    assert.deepEqual(await store.getBytes(d), bytes);
  } finally {
    await rm(join(store.root, ".."));
  }
});

Deno.test("store: a damaged output is rewritten when exp recomputes its stage (point 7)", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    const r = await basic(dir, store);
    const out = r.record.stages.second.outputs.result;
    await damage(store, out);
    hooks.runs = [];
    const again = await basic(dir, store);
    assert.deepEqual(again.computed, ["second"]);
    assert.equal(again.record.stages.second.outputs.result, out, "same bytes recomputed");
    assert.equal(await store.check(out), "ok", "the damaged object was healed");
    const ex = await exportRun(store, r.runId, join(dir, "x.tar"));
    assert.ok(ex > 0);
    assert.deepEqual((await verifyRun(store, r.runId, { stages })).divergences, []);
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("store: metrics are bound to an object; forged metrics are caught (point 8)", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    const r = await basic(dir, store);
    const id = r.runId;
    const st = r.record.stages.first;
    assert.equal(typeof st.metricsDigest, "string");
    assert.deepEqual(await store.getJson(st.metricsDigest!), st.metrics);
    const clean = await readRaw(store, id);

    // Edited alone: every reader refuses, naming the run and stage.
    const forged = structuredClone(clean);
    forged.stages.first.metrics.steps = 99;
    await writeRaw(store, id, forged);
    await assert.rejects(
      () => readRecord(store, id),
      new RegExp(`run ${id} .*stage 'first': its metrics hash to [0-9a-f]{64}, not to`),
    );
    const ls = await cli(["ls", "--store", store.root, "--json"]);
    assert.equal(ls.code, 0, ls.stderr);
    const row = JSON.parse(ls.stdout)[0];
    assert.equal(row.status, "invalid");
    assert.match(row.problem, /stage 'first'/);
    assert.doesNotMatch(ls.stdout, /"steps": 99|\b99\b/);
    const show = await cli(["show", id.slice(0, 10), "--store", store.root]);
    assert.equal(show.code, 1);
    assert.match(show.stderr, /stage 'first': its metrics hash to/);
    assert.doesNotMatch(show.stderr + show.stdout, /^\s+at /m);

    // Edited together with its digest and object: verify's re-execution disagrees.
    const deep = structuredClone(clean);
    deep.stages.first.metrics.steps = 99;
    deep.stages.first.metricsDigest = await store.putJson(deep.stages.first.metrics);
    await writeRaw(store, id, deep);
    await readRecord(store, id); // consistent on its face
    const v = await verifyRun(store, id, { stages });
    assert.equal(v.divergences.length, 1);
    assert.match(v.divergences[0].message, /stage 'first' metric 'steps' differs: recorded 99/);

    // A record from before metrics were bound (no digest) is still read; verify still compares.
    const legacy = structuredClone(clean);
    for (const s of Object.values(legacy.stages)) delete s.metricsDigest;
    legacy.stages.second.metrics.tasks = 7;
    await writeRaw(store, id, legacy);
    const lv = await verifyRun(store, id, { stages });
    assert.match(lv.divergences[0]?.message ?? "", /stage 'second' metric 'tasks' differs/);
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("store: import never changes an existing record and checks record fields (point 9)", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  const other = await scratchStore();
  try {
    const r = await basic(dir, store);
    const id = r.runId;
    const tar = join(dir, "run.tar");
    await exportRun(store, id, tar);
    const entries = readTar(await Deno.readFile(tar));
    const recEntry = entries.findIndex((e) => e.name === `runs/${id}.json`);
    const rec = JSON.parse(new TextDecoder().decode(entries[recEntry].data)) as RunRecord;
    const archiveWith = async (name: string, edit: (r: RunRecord) => void) => {
      const copy = structuredClone(rec);
      edit(copy);
      const es = entries.map((e, i) =>
        i === recEntry ? { ...e, data: enc.encode(JSON.stringify(copy)) } : e
      );
      const p = join(dir, name);
      await Deno.writeFile(p, writeTar(es));
      return p;
    };

    // The same archive again, and into a store that holds the run: no change, no error.
    assert.deepEqual(await importArchive(other, tar), [id]);
    const before = await Deno.readTextFile(recPath(other, id));
    assert.deepEqual(await importArchive(other, tar), [id]);
    assert.equal(await Deno.readTextFile(recPath(other, id)), before);

    // A forged stage output (pointing at another object the archive holds) is refused.
    const forgedOut = await archiveWith("forged.tar", (x) => {
      x.stages.second.outputs.result = x.stages.first.outputs.result;
    });
    await assert.rejects(
      () => importArchive(other, forgedOut),
      new RegExp(
        `run ${id} is already in .*\\(stage 'second': field 'outputs' differs\\).*nothing was imported`,
      ),
    );
    assert.equal(await Deno.readTextFile(recPath(other, id)), before);

    // baseDir: /etc on an existing run: refused; invalid fields: refused everywhere.
    const etc = await archiveWith("etc.tar", (x) => (x.baseDir = "/etc"));
    await assert.rejects(() => importArchive(other, etc), /field 'baseDir' differs/);
    const fresh = await scratchStore();
    try {
      for (
        const [name, edit, msg] of [
          ["rel.tar", (x: RunRecord) => (x.baseDir = "relative/dir"), /baseDir is "relative\/dir"/],
          ["dots.tar", (x: RunRecord) => (x.baseDir = "/a/../etc"), /not a normalized absolute/],
          [
            "escape.tar",
            (x: RunRecord) => {
              const s = Object.values(x.sources)[0] as { files: Record<string, string> };
              s.files["../../outside.ts"] = Object.values(s.files)[0];
            },
            /leaves its folder/,
          ],
          ["status.tar", (x: RunRecord) => ((x as { status: string }).status = "done"), /status/],
          [
            "metrics.tar",
            (x: RunRecord) => (x.stages.first.metrics.steps = 99),
            /stages\.first: its metrics hash to/,
          ],
        ] as [string, (x: RunRecord) => void, RegExp][]
      ) {
        const p = await archiveWith(name, edit);
        await assert.rejects(() => importArchive(fresh, p), msg, name);
        assert.deepEqual(await fresh.listMeta("runs"), [], `${name}: nothing imported`);
      }
      // The CLI says so in one paragraph, exit 1.
      const c = await cli(["import", etc, "--store", other.root]);
      assert.equal(c.code, 1);
      assert.match(c.stderr, new RegExp(`run ${id} is already in`));
      assert.doesNotMatch(c.stderr, /^\s+at /m);
    } finally {
      await rm(join(fresh.root, ".."));
    }
  } finally {
    await rm(dir, join(store.root, ".."), join(other.root, ".."));
  }
});

Deno.test("store: a tampered index entry is checked against the record, never reused (point 9)", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    const r = await basic(dir, store);
    const key = r.record.stages.second.key;
    const entryPath = store.metaPath("index/stages", key);
    const entry = JSON.parse(await Deno.readTextFile(entryPath));
    assert.equal(entry.run, r.runId);
    assert.deepEqual(await readStageIndex(store, key), { entry });

    const cases: [string, (e: Record<string, unknown>) => void, RegExp][] = [
      [
        "output swapped for another intact object",
        (
          e,
        ) => ((e.outputs as Record<string, string>).result = r.record.stages.first.outputs.result),
        /disagrees with run [0-9a-f]{12}'s record of stage 'second': output 'result'/,
      ],
      [
        "metrics edited",
        (e) => ((e.metrics as Record<string, unknown>).steps = 42),
        /metrics that do not hash to its metricsDigest/,
      ],
      [
        "metrics and digest edited",
        (e) => {
          (e.metrics as Record<string, unknown>).steps = 42;
          delete e.metricsDigest;
        },
        /its metrics differ from the record's/,
      ],
      ["not an entry", (e) => delete e.outputs, /is not a stage index entry/],
    ];
    for (const [what, edit, msg] of cases) {
      const e = structuredClone(entry);
      edit(e);
      await Deno.writeTextFile(entryPath, JSON.stringify(e));
      const { reporter, lines } = logs();
      const again = await basic(dir, store, { reporter });
      assert.deepEqual(again.computed, ["second"], what);
      assert.ok(lines.some((l) => msg.test(l) && l.includes(entryPath)), `${what}: ${lines}`);
      assert.equal(
        again.record.stages.second.outputs.result,
        r.record.stages.second.outputs.result,
      );
      assert.deepEqual(JSON.parse(await Deno.readTextFile(entryPath)), entry, `${what}: rewritten`);
    }
    // An entry no record holds cannot be checked: recomputed.
    await Deno.remove(recPath(store, r.runId));
    const { reporter, lines } = logs();
    const lone = await basic(dir, store, { reporter });
    assert.deepEqual(lone.computed, ["first", "second"]);
    assert.ok(lines.some((l) => /held by no run record/.test(l)), lines.join("\n"));
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("store: two runs of one manifest at once compute each stage once (point 10)", async () => {
  const dir = await scratchFixtures();
  const store = await scratchStore();
  try {
    // In one process (the lock's owner is alive: this process).
    hooks.runs = [];
    const set = ["stages.first.sleep_ms=150"];
    const [a, b] = await Promise.all([
      basic(dir, store, {}, set),
      basic(dir, store, {}, set),
    ]);
    assert.deepEqual(hooks.runs.sort(), ["first", "second"]);
    assert.deepEqual([...a.computed, ...b.computed].sort(), ["first", "second"]);
    assert.equal(a.runId, b.runId);
    assert.deepEqual(a.record.stages.first.outputs, b.record.stages.first.outputs);
    assert.deepEqual(await store.listMeta("runs"), [a.runId]);
    assert.equal((await readRecord(store, a.runId)).status, "complete");
    for await (const e of Deno.readDir(join(store.root, "locks"))) {
      assert.fail(`lock left behind: ${e.name}`);
    }

    // Two CLI processes.
    const s2 = join(dir, "store2");
    const exp = () =>
      cli([
        "exp",
        join(dir, "manifests", "basic.yaml"),
        "--store",
        s2,
        "--json",
        "--set",
        "stages.first.sleep_ms=400",
        "--set",
        "stages.second.sleep_ms=400",
      ]);
    const [x, y] = await Promise.all([exp(), exp()]);
    assert.equal(x.code, 0, x.stderr);
    assert.equal(y.code, 0, y.stderr);
    const jx = JSON.parse(x.stdout), jy = JSON.parse(y.stdout);
    assert.deepEqual([...jx.computed, ...jy.computed].sort(), ["first", "second"]);
    assert.deepEqual([...jx.reused, ...jy.reused].sort(), ["first", "second"]);
  } finally {
    await rm(dir, join(store.root, ".."));
  }
});

Deno.test("store: a lock whose owner died is broken; a live owner's is waited for", async () => {
  const store = await scratchStore();
  try {
    const dead = new Deno.Command("true").spawn();
    const pid = dead.pid;
    await dead.status;
    await Deno.mkdir(join(store.root, "locks"), { recursive: true });
    const { hostname } = await import("node:os");
    await Deno.writeTextFile(
      lockPath(store, "k1"),
      JSON.stringify({ pid, host: hostname(), started: 1 }),
    );
    const l = await acquireLock(store, "k1");
    assert.equal(l.waited, false);
    assert.equal(JSON.parse(await Deno.readTextFile(lockPath(store, "k1"))).pid, Deno.pid);
    // A garbage lock file is not a lock.
    await Deno.writeTextFile(lockPath(store, "k2"), "garbage");
    await (await acquireLock(store, "k2")).release();

    // Held by a live owner (us): the second waits until the first is released.
    const waits: number[] = [];
    const second = acquireLock(store, "k1", { pollMs: 10, onWait: (o) => waits.push(o.pid) });
    await new Promise((r) => setTimeout(r, 50));
    await l.release();
    const l2 = await second;
    assert.equal(l2.waited, true);
    assert.deepEqual(waits, [Deno.pid]);
    // Waiting honours an abort.
    const ac = new AbortController();
    const third = acquireLock(store, "k1", { pollMs: 10, signal: ac.signal });
    ac.abort(new Error("stop"));
    await assert.rejects(() => third, /stop/);
    await l2.release();
    await assert.rejects(() => Deno.stat(lockPath(store, "k1")), Deno.errors.NotFound);
  } finally {
    await rm(join(store.root, ".."));
  }
});
