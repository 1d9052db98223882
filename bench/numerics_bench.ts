/**
 * The cost of portable numerics: a reduced quickstart (experiments/quickstart.yaml with --set
 * budgets) run with `runtime.numerics: native` and `portable`, alternately, each in a process and
 * a store of its own; wall time, CPU time (user + sys of the process) and each stage's wall time
 * from the run record; the portable / native ratios of the medians. Portable runs on one
 * WebAssembly thread (runtime.threads resolves to 1); native runs at the manifest's 2 threads and,
 * as `native-1t`, at 1 thread, so the ratio is given against both.
 *
 *   deno run -A bench/numerics_bench.ts [--rounds 2] [--full] [--json FILE]
 *
 * `--full` runs the quickstart as it is (minutes natively, far longer portable). The reduced one:
 * 480 SFT demonstrations (30 steps of 16), eval_sft and eval on 24 questions × 2 samples, 2 rl
 * steps of 2 questions × 4 rollouts, probe on 8 questions; every token budget as in the manifest.
 * Rounds alternate the two modes so that load from other processes hits both alike.
 */
import { parseArgs } from "node:util";
import { join } from "node:path";

const REPO = new URL("../", import.meta.url).pathname;
const QUICKSTART = join(REPO, "experiments", "quickstart.yaml");

export const REDUCED = [
  "plugins.benchmarks[0].with.sizes={train: 480, rl: 64, test: 24}",
  "stages.eval_sft.questions=24",
  "stages.rl.steps=2",
  "stages.rl.questions_per_step=2",
  "stages.rl.minibatch=1",
  "stages.rl.rollout.rollouts=4",
  "stages.rl.rollout.initial=2",
  "stages.eval.questions=24",
  "stages.probe.questions=8",
];

type Mode = "native" | "native-1t" | "portable";

interface Sample {
  mode: Mode;
  wallS: number;
  cpuS: number;
  stagesMs: Record<string, number>;
  runId: string;
}

async function once(mode: Sample["mode"], sets: string[]): Promise<Sample> {
  const dir = await Deno.makeTempDir({ prefix: "arpo-numerics-bench-" });
  try {
    const args = [
      "-f",
      "%e %U %S",
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      join(REPO, "src/cli/main.ts"),
      "exp",
      QUICKSTART,
      "--store",
      join(dir, "store"),
      "--progress",
      "none",
      "--json",
      ...[
        ...sets,
        `runtime.numerics=${mode === "portable" ? "portable" : "native"}`,
        ...(mode === "native-1t" ? ["runtime.threads=1"] : []),
      ].flatMap((s) => ["--set", s]),
    ];
    const out = await new Deno.Command("/usr/bin/time", {
      args,
      stdout: "piped",
      stderr: "piped",
      env: { ARPO_PRELOAD: "" },
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    if (!out.success) throw new Error(`${mode} run failed: ${err}`);
    const [wall, user, sys] = err.trim().split("\n").at(-1)!.split(" ").map(Number);
    const { runId, record } = JSON.parse(new TextDecoder().decode(out.stdout));
    const rec = JSON.parse(await Deno.readTextFile(record));
    const stagesMs: Record<string, number> = {};
    for (const name of Object.keys(rec.stages)) stagesMs[name] = rec.timings[`${name}_ms`];
    return { mode, wallS: wall, cpuS: user + sys, stagesMs, runId };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "2" },
      full: { type: "boolean" },
      json: { type: "string" },
    },
  });
  const sets = values.full ? [] : REDUCED;
  const samples: Sample[] = [];
  const load = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  const cpu = /model name\s*:\s*(.*)/.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1];
  const avx512 = /\bavx512f\b/.test(Deno.readTextFileSync("/proc/cpuinfo"));
  console.log(`CPU ${cpu} (${avx512 ? "avx512f" : "no avx512f"}), load ${load()}`);
  for (let r = 0; r < Number(values.rounds); r++) {
    const order: Mode[] = r % 2
      ? ["portable", "native-1t", "native"]
      : ["native", "native-1t", "portable"];
    for (const mode of order) {
      const s = await once(mode, sets);
      samples.push(s);
      console.log(
        `round ${r + 1} ${mode.padEnd(9)} wall ${s.wallS.toFixed(1)} s, cpu ${
          s.cpuS.toFixed(1)
        } s, stages ${
          JSON.stringify(s.stagesMs, (_, v) => (typeof v === "number" ? Math.round(v) : v))
        }` +
          `, load ${load()}`,
      );
    }
  }
  const by = (m: Sample["mode"]) => samples.filter((s) => s.mode === m);
  const p = by("portable");
  for (const base of ["native", "native-1t"] as const) {
    const n = by(base);
    const ratio = (f: (s: Sample) => number) => median(p.map(f)) / median(n.map(f));
    const wall = ratio((s) => s.wallS).toFixed(2), cpu = ratio((s) => s.cpuS).toFixed(2);
    console.log(`portable / ${base}: wall ${wall}×, cpu ${cpu}×`);
    for (const stage of Object.keys(n[0].stagesMs)) {
      console.log(`  ${stage.padEnd(10)} ${ratio((s) => s.stagesMs[stage]).toFixed(2)}×`);
    }
  }
  if (values.json) {
    await Deno.writeTextFile(values.json, JSON.stringify({ cpu, avx512, samples }, null, 2));
  }
}
