/**
 * The progress display (run/progress.ts) with a fake clock and a captured output: one redrawn,
 * width-truncated line on a terminal; throttled plain lines otherwise; what the real eval, probe
 * and rl dry-run stages report through ctx.progress.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  applyUpdate,
  createReporter,
  eta,
  formatDuration,
  formatProgress,
  fraction,
  newProgressState,
  type ProgressStyle,
  truncate,
} from "../src/run/progress.ts";
import type { PolicyFactory, ProgressUpdate } from "../src/run/stages.ts";
import { loadManifest } from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { runManifest } from "../src/run/runner.ts";
import { type Script, ScriptedPolicy } from "./fixtures/rollout/scripted_policy.ts";
import { rm, scratchStore } from "./fixtures/helpers.ts";

function fake(style: ProgressStyle, opts: { tty?: boolean; columns?: number; interval?: number }) {
  let t = 0;
  let out = "";
  const r = createReporter(style, "info", {
    write: (s) => (out += s),
    now: () => t,
    tty: opts.tty ?? false,
    columns: () => opts.columns ?? 80,
    interval: opts.interval,
  });
  return {
    r,
    at: (ms: number) => (t = ms),
    take: () => {
      const o = out;
      out = "";
      return o;
    },
  };
}

Deno.test("progress: state folds updates; fraction, ETA, rates and moving reward", () => {
  const s = newProgressState("rl", "rl", 0);
  applyUpdate(s, { step: 0, total: 4 }, 0);
  assert.equal(fraction(s), 0);
  applyUpdate(
    s,
    { within: { done: 4, total: 8, unit: "rollouts" }, rollouts: 4, toolCalls: 6 },
    1000,
  );
  assert.equal(fraction(s), 0.125);
  // 1/8 of the work in 1 s from the first observation: 7 s left.
  assert.equal(eta(s, 1000), 7);
  applyUpdate(s, { step: 1, reward: 1, rollouts: 4 }, 2000);
  assert.equal(s.within, undefined, "a new step clears the within-step progress");
  assert.equal(fraction(s), 0.25);
  applyUpdate(s, { step: 2, reward: 0 }, 4000, 0.5);
  assert.equal(s.reward, 0.5, "exponential moving average");
  applyUpdate(s, { metrics: { mean_reward: 1 } }, 4000, 0.5);
  assert.equal(s.reward, 0.75, "metrics.mean_reward counts when no reward is given");
  s.reward = 0.5;
  assert.equal(s.rollouts, 8);
  assert.equal(s.toolCalls, 6);
  const line = formatProgress(s, 4000);
  assert.match(line, /^rl {2}2\/4 {2}50%/);
  assert.match(line, /2\.00 rollouts\/s/);
  assert.match(line, /1\.50 tool calls\/s/);
  assert.match(line, /reward 0\.500/);
  assert.match(line, /ETA 4\.0s/);
  // A resumed stage starts part-way: the ETA uses the rate since then, not since 0.
  const r = newProgressState("rl", "rl", 0);
  applyUpdate(r, { step: 3, total: 4 }, 0);
  applyUpdate(r, { within: { done: 1, total: 2 } }, 5000);
  assert.equal(eta(r, 5000), 5);
  applyUpdate(r, { step: 4 }, 9000);
  assert.equal(fraction(r), 1);
  assert.doesNotMatch(formatProgress(r, 9000), /ETA/);
});

Deno.test("progress: formatting helpers", () => {
  assert.equal(formatDuration(0.054), "0.05s");
  assert.equal(formatDuration(3.44), "3.4s");
  assert.equal(formatDuration(42), "42s");
  assert.equal(formatDuration(65), "1m05s");
  assert.equal(formatDuration(7380), "2h03m");
  assert.equal(truncate("abcdef", 4), "abc…");
  assert.equal(truncate("abc", 4), "abc");
});

Deno.test("progress: a terminal gets one line, redrawn in place and cut to the width", () => {
  const f = fake("auto", { tty: true, columns: 40 });
  f.r.stage("rl", "rl", "start");
  assert.equal(f.take(), "stage rl (rl): start\n");
  f.r.progress("rl", { step: 0, total: 10, message: "x".repeat(100) });
  let o = f.take();
  assert.ok(!o.includes("\n"), "no newline while running");
  assert.ok(o.startsWith("rl  0/10"), o);
  assert.equal([...o].length, 39, "truncated to the width minus one");
  assert.ok(o.endsWith("…"));
  // Within the redraw interval, an update inside the step is not drawn…
  f.at(50);
  f.r.progress("rl", { within: { done: 1, total: 4 }, rollouts: 1 });
  assert.equal(f.take(), "");
  // …after it, it is: the old line cleared first (carriage return + erase line).
  f.at(200);
  f.r.progress("rl", { within: { done: 2, total: 4 }, rollouts: 1 });
  o = f.take();
  assert.ok(o.startsWith("\r\x1b[2K"), JSON.stringify(o));
  assert.ok(!o.includes("\n"));
  // A step end is drawn at once, however soon.
  f.at(201);
  f.r.progress("rl", { step: 1 });
  o = f.take();
  assert.ok(o.startsWith("\r\x1b[2Krl  1/10"), JSON.stringify(o));
  // A log line clears the progress line first and ends with a newline.
  f.r.log("hello");
  assert.equal(f.take(), "\r\x1b[2Khello\n");
  // done() clears a showing line, and only then.
  f.r.progress("rl", { step: 2 });
  f.take();
  f.r.done();
  assert.equal(f.take(), "\r\x1b[2K");
  f.r.done();
  assert.equal(f.take(), "");
});

Deno.test("progress: plain output is one line per step end, else one per interval", () => {
  const f = fake("plain", { interval: 10 });
  f.r.stage("rl", "rl", "start");
  f.take();
  const upd = (ms: number, u: ProgressUpdate) => {
    f.at(ms);
    f.r.progress("rl", u);
  };
  upd(0, { step: 0, total: 3 });
  const w = (done: number) => ({ done, total: 8, unit: "rollouts" });
  upd(1000, { within: w(1), rollouts: 1 });
  upd(2000, { within: w(2), rollouts: 1 });
  upd(11_500, { within: w(3), rollouts: 1 });
  upd(12_000, { within: w(4), rollouts: 1 });
  upd(13_000, { step: 1, reward: 0.5 });
  upd(13_100, { step: 2, reward: 1 });
  const lines = f.take().split("\n").filter(Boolean);
  assert.equal(lines.length, 4, lines.join("\n"));
  assert.match(lines[0], /^rl {2}0\/3 {2}0%$/);
  assert.match(lines[1], /^rl {2}0\/3 {2}rollouts 3\/8 {2}12%/);
  assert.match(lines[2], /^rl {2}1\/3 {2}33%.*reward 0\.500/);
  assert.match(lines[3], /^rl {2}2\/3 {2}66%.*reward 0\.650/);
  assert.ok(lines.every((l) => !l.includes("\r") && !l.includes("\x1b")), "no control codes");
  // A stage without steps: its last piece of work is shown at once, once.
  f.r.stage("eval", "eval", "start");
  f.at(13_200);
  f.r.progress("eval", { within: { done: 6, total: 6, unit: "rollouts" }, rollouts: 6 });
  f.at(13_300);
  f.r.progress("eval", { reward: 0.5 });
  f.at(13_400);
  f.r.stage("eval", "eval", "done");
  assert.deepEqual(f.take().split("\n").filter(Boolean).map((l) => l.slice(0, 24)), [
    "stage eval (eval): start",
    "eval  rollouts 6/6  100%",
    "stage eval (eval): done ",
  ]);
});

Deno.test("progress: style none and level quiet print no progress", () => {
  for (const [style, level] of [["none", "info"], ["auto", "quiet"]] as const) {
    let out = "";
    const r = createReporter(style, level, { write: (s) => (out += s), tty: true });
    r.progress("x", { step: 1, total: 2 });
    r.done();
    if (level === "quiet") r.stage("x", "k", "start");
    assert.equal(out, "", `${style}/${level}`);
  }
});

/** The rollout runner test's scripted agent: computes with the tool, then answers. */
const script: Script = (ctx) => {
  const h = 0.3 + ctx.draw() * 2;
  const done = ctx.response.match(/<result>\n([^\n]*)\n<\/result>/);
  if (done) {
    return [{
      text: `<answer>\\boxed{${ctx.draw() < 0.7 ? done[1] : "0"}}</answer><eos>`,
      entropy: h,
    }];
  }
  const q = ctx.prompt.split("\n").filter((l) => /\d/.test(l)).at(-1) ?? "";
  const exprs = q.match(/[\d(][\d\s+\-*()]*[\d)]/g) ?? ["0"];
  const expr = exprs.reduce((a, b) => (b.length > a.length ? b : a)).trim();
  return [{ text: `<python>print(${expr})</python>`, entropy: h / 2 }];
};

Deno.test("progress: eval, probe and rl dry run report rollouts, tool calls, steps and reward", async () => {
  const policyFactory: PolicyFactory = () => Promise.resolve(new ScriptedPolicy(script));
  const store = await scratchStore();
  const seen: Record<string, ProgressUpdate[]> = {};
  try {
    const view = await loadManifest(
      fileURLToPath(new URL("./fixtures/terminal/stages.yaml", import.meta.url)),
      { stages: BUILTIN_STAGES },
    );
    const r = await runManifest({
      store,
      view,
      policyFactory,
      reporter: {
        stage() {},
        progress: (stage, u) => (seen[stage] ??= []).push(structuredClone(u)),
        log() {},
        debug() {},
        done() {},
      },
    });
    const sum = (stage: string, k: "rollouts" | "toolCalls") =>
      seen[stage].reduce((a, u) => a + (u[k] ?? 0), 0);
    // eval: 3 questions × 2 samples; every tool call counted once.
    const results = await store.getJson<{ summary: { tools: { total: number } } }>(
      r.record.stages.eval.outputs.results,
    );
    assert.equal(sum("eval", "rollouts"), 6);
    assert.equal(sum("eval", "toolCalls"), results.summary.tools.total);
    assert.ok(results.summary.tools.total > 0);
    const last = seen.eval.filter((u) => u.within).at(-1)!;
    assert.deepEqual(last.within, { done: 6, total: 6, unit: "rollouts" });
    assert.ok(seen.eval.some((u) => typeof u.reward === "number"), "eval reports its reward");
    assert.equal(sum("probe", "rollouts"), 2); // 2 questions × 1 sample
    // rl dry run: 4 steps of 2 questions × 4 rollouts; step/total at each step start and end.
    assert.equal(sum("rl", "rollouts"), 4 * 2 * 4);
    const steps = seen.rl.filter((u) => u.step !== undefined).map((u) => `${u.step}/${u.total}`);
    assert.deepEqual(steps, ["0/4", "1/4", "1/4", "2/4", "2/4", "3/4", "3/4", "4/4"]);
    const rewards = seen.rl.filter((u) => u.reward !== undefined).length;
    assert.equal(rewards, 4, "one reward per step");
    // Progress is presentation only: recomputed without a reporter, the same outputs.
    const quiet = await runManifest({ store, view, policyFactory, force: true });
    assert.equal(quiet.runId, r.runId);
    for (const s of ["eval", "probe", "rl"]) {
      assert.deepEqual(quiet.record.stages[s].outputs, r.record.stages[s].outputs, s);
    }
  } finally {
    await rm(store.root);
  }
});
