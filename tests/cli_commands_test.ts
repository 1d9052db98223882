// The CLI as a user sees it: exit codes and output. One scratch store and fixture copy for all.
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, interruptCli, rm, scratchFixtures } from "./fixtures/helpers.ts";

Deno.test("cli: exp, show, ls, diff, verify, export and import", async (t) => {
  const dir = await scratchFixtures();
  const store = join(dir, "store");
  const manifest = join(dir, "manifests", "basic.yaml");
  try {
    let id = "";
    await t.step("exp prints the run id and the record path", async () => {
      const r = await cli(["exp", manifest, "--store", store, "--progress", "plain"]);
      assert.equal(r.code, 0, r.stderr);
      const m = /^run ([0-9a-f]{64})$/m.exec(r.stdout);
      assert.ok(m, r.stdout);
      id = m[1];
      assert.match(r.stdout, new RegExp(`^record ${store}/runs/${id}\\.json$`, "m"));
      assert.match(r.stdout, /2 computed/);
    });

    await t.step(
      "a second exp (other log/progress flags, ARPO_STORE) computes nothing",
      async () => {
        const r = await cli([
          "exp",
          manifest,
          "--json",
          "--log-level",
          "quiet",
          "--progress",
          "none",
        ], {
          env: { ARPO_STORE: store },
        });
        assert.equal(r.code, 0, r.stderr);
        const j = JSON.parse(r.stdout);
        assert.equal(j.runId, id);
        assert.deepEqual(j.computed, []);
        assert.deepEqual(j.reused, ["first", "second"]);
        assert.equal(j.stages.first.reused, true);
      },
    );

    await t.step("two concurrent runs of one manifest in one store agree", async () => {
      const both = await Promise.all(
        [1, 2].map(() =>
          cli(["exp", manifest, "--store", store, "--json", "--force", "--progress", "none"])
        ),
      );
      for (const r of both) {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(JSON.parse(r.stdout).runId, id);
      }
      const v = await cli(["show", id, "--store", store]);
      assert.equal(v.code, 0, v.stderr);
    });

    await t.step("the default store is ./.arpo in the working directory", async () => {
      const r = await cli(["exp", "manifests/basic.yaml", "--json", "--set", "seed=3"], {
        cwd: dir,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).store, join(dir, ".arpo"));
    });

    await t.step("show and ls accept a unique prefix", async () => {
      const s = await cli(["show", id.slice(0, 6), "--store", store]);
      assert.equal(s.code, 0, s.stderr);
      assert.match(s.stdout, /status\s+complete/);
      assert.match(s.stdout, /echo_tool/);
      const l = await cli(["ls", "--store", store]);
      assert.match(l.stdout, new RegExp(`^${id.slice(0, 12)} .*fixture-basic`, "m"));
    });

    await t.step("unknown and ambiguous run ids are clear errors", async () => {
      const u = await cli(["show", "ffff", "--store", store]);
      assert.equal(u.code, 1);
      assert.match(u.stderr, /no run matches 'ffff'/);
      assert.ok(u.stderr.includes(id.slice(0, 12)), "lists the runs");
      assert.doesNotMatch(u.stderr, /^\s+at /m);
      // two records whose ids share a prefix
      const fake = (c: string) => join(store, "runs", `ab${c.repeat(62)}.json`);
      await Deno.writeTextFile(fake("1"), "{}");
      await Deno.writeTextFile(fake("2"), "{}");
      const a = await cli(["show", "ab", "--store", store]);
      assert.equal(a.code, 1);
      assert.match(a.stderr, /run id prefix 'ab' is ambiguous.*ab11111111111111, ab22222222222222/);
      await rm(fake("1"), fake("2"));
    });

    await t.step("diff names what differs and exits 1", async () => {
      const other = await cli(["exp", manifest, "--store", store, "--json", "--set", "seed=11"]);
      const id2 = JSON.parse(other.stdout).runId;
      const d = await cli(["diff", id, id2, "--store", store]);
      assert.equal(d.code, 1);
      assert.match(d.stdout, /manifest\s+seed: 7 → 11/);
    });

    await t.step(
      "verify exits 0 when every output digest is reproduced; rerun agrees",
      async () => {
        const v = await cli(["verify", id.slice(0, 10), "--store", store, "--progress", "none"]);
        assert.equal(v.code, 0, v.stderr);
        assert.match(v.stdout, /verified — all 2 output digests identical/);
        const r = await cli(["rerun", id.slice(0, 10), "--store", store, "--log-level", "quiet"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`^run ${id}$`, "m"));
        assert.match(r.stdout, /outputs identical to the archived run/);
      },
    );

    const tar = join(dir, "run.tar");
    await t.step("export → import into another store → show and verify", async () => {
      const e = await cli(["export", id.slice(0, 8), "-o", tar, "--store", store]);
      assert.equal(e.code, 0, e.stderr);
      const other = join(dir, "other-store");
      await rm(join(dir, "plugins"));
      const i = await cli(["import", tar, "--store", other]);
      assert.equal(i.code, 0, i.stderr);
      const s = await cli(["show", id.slice(0, 8), "--store", other]);
      assert.equal(s.code, 0, s.stderr);
      const v = await cli(["verify", id.slice(0, 8), "--store", other, "--log-level", "quiet"]);
      assert.equal(v.code, 0, v.stderr);
    });

    await t.step("a tampered output: show and verify report it and exit 1", async () => {
      const rec = JSON.parse(await Deno.readTextFile(join(store, "runs", `${id}.json`)));
      const out = rec.stages.second.outputs.result as string;
      const p = join(store, "objects", "sha256", out.slice(0, 2), out.slice(2));
      await Deno.chmod(p, 0o644);
      await Deno.writeTextFile(p, "{}");
      const s = await cli(["show", id, "--store", store]);
      assert.equal(s.code, 1);
      assert.match(
        s.stderr,
        new RegExp(`stage 'second' output 'result' \\(object ${out}\\) is damaged`),
      );
      const v = await cli(["verify", id, "--store", store]);
      assert.equal(v.code, 1);
      assert.ok(v.stderr.includes(out), v.stderr);
      assert.doesNotMatch(v.stderr, /^\s+at /m);
      // importing the earlier export repairs the damaged object
      const i = await cli(["import", tar, "--store", store]);
      assert.equal(i.code, 0, i.stderr);
      assert.equal((await cli(["show", id, "--store", store])).code, 0);
    });
  } finally {
    await rm(dir);
  }
});

Deno.test("cli: bad manifests exit non-zero naming file and line, with nothing written", async () => {
  const dir = await scratchFixtures();
  try {
    const cases: [string, RegExp][] = [
      ["name: x\nseed: [1,\n", /bad\.yaml:\d+:\d+/],
      ["name: x\nseed: seven\n", /bad\.yaml:2:7/],
      ["name: x\nsed: 1\n", /bad\.yaml:2:1.*sed/],
      [
        "name: x\nplugins:\n  tools:\n    - use: nonexistent_tool\n",
        /bad\.yaml:4:\d+: .*unknown plugin 'nonexistent_tool'/,
      ],
      [
        "name: x\nplugins:\n  tools:\n    - use: ../plugins/throws_on_load.ts\n",
        /bad\.yaml:4:\d+: tool 'throws_on_load'.*threw while loading/,
      ],
    ];
    for (const [yaml, re] of cases) {
      await Deno.writeTextFile(join(dir, "manifests", "bad.yaml"), yaml);
      const r = await cli(["exp", join(dir, "manifests", "bad.yaml"), "--store", join(dir, "s")]);
      assert.equal(r.code, 1, yaml);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
      let runs: string[] = [];
      try {
        runs = [...Deno.readDirSync(join(dir, "s", "runs"))].map((e) => e.name);
      } catch {
        // no runs/ at all
      }
      assert.deepEqual(runs, [], "no run record written");
    }
  } finally {
    await rm(dir);
  }
});

Deno.test("cli: Ctrl-C interrupts a run (exit 130); the same command resumes it", async () => {
  const dir = await scratchFixtures();
  try {
    const path = join(dir, "manifests", "slow.yaml");
    await Deno.writeTextFile(path, "name: slow\nstages:\n  - draw: { steps: 3, sleep_ms: 300 }\n");
    // Interrupt at the first step's progress line.
    const { code, stderr: err } = await interruptCli(
      ["exp", path, "--store", join(dir, "s"), "--progress", "plain"],
      /draw {2}1\/3/,
    );
    assert.equal(code, 130, err);
    assert.match(err, /stage 'draw' was interrupted; run the same command again to resume/);
    const again = await cli(["exp", path, "--store", join(dir, "s"), "--progress", "plain"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /stage draw \(draw\): resumed/);
    assert.doesNotMatch(again.stderr, /draw {2}1\/3/, "step 1 is not redone");
  } finally {
    await rm(dir);
  }
});
