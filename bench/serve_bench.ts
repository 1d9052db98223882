/**
 * Eval throughput through `arpo serve` (the server policy over HTTP, a separate process) vs the
 * in-process ONNX policy, same model, same eval stage.
 *
 *   deno run -A bench/serve_bench.ts [--questions N] [--rollouts M] [--max-tokens T] [--threads N]
 *                                    [--hidden H] [--layers L] [--concurrency C] [--reps R]
 *                                    [--temperature T] [--top K]
 *
 * The model is a seeded random Qwen2-layout decoder with the byte tokenizer (the quickstart's
 * size by default: hidden 128, 4 layers), written to a temp directory. Each side runs the eval
 * stage `--reps` times into a fresh store (`--force`), the two sides alternating; the median run
 * (by wall time) is reported. Temperature 0 by default, so both sides generate the same tokens.
 * Reported: generated
 * tokens, the stage's wall time, its generate time (timings `eval.eval.generate_ms`), and
 * generated tokens per second of each, and the CPU seconds used (this process, plus the server
 * process for the server side): on a shared machine the wall-time ratio also reflects how the
 * scheduler splits the cores between one process and two, the CPU figure does not. Prints a
 * markdown table and one JSON line.
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { policyInitSchema } from "../src/manifest/policy.ts";
import { initModel, saveModel } from "../src/model/load.ts";
import { loadTokenizer, saveTokenizer } from "../src/model/tokenizer.ts";
import { initConfig } from "../src/policy/load.ts";
import { loadManifest } from "../src/manifest/mod.ts";
import { BUILTIN_STAGES } from "../src/run/builtin.ts";
import { runManifest } from "../src/run/runner.ts";
import { Store } from "../src/store/store.ts";

// A script (`deno task bench` loads every bench/ file: nothing runs unless this is the main module).
async function main(): Promise<void> {
  const { values: a } = parseArgs({
    args: Deno.args,
    options: {
      questions: { type: "string", default: "16" },
      rollouts: { type: "string", default: "4" },
      "max-tokens": { type: "string", default: "128" },
      threads: { type: "string", default: "2" },
      hidden: { type: "string", default: "128" },
      layers: { type: "string", default: "4" },
      concurrency: { type: "string", default: "64" },
      reps: { type: "string", default: "3" },
      temperature: { type: "string", default: "0" },
      // > 0: both sides fetch top-K log-probs per token (rollout.mode: reference), so the in-process
      // decoder runs the same sampling head as the server (which always asks for its top_logprobs).
      top: { type: "string", default: "0" },
    },
  });
  const REPO = fileURLToPath(new URL("../", import.meta.url));
  const dir = await Deno.makeTempDir({ prefix: "arpo-serve-bench-" });

  const tok = await loadTokenizer({});
  const init = policyInitSchema.parse({
    hidden_size: Number(a.hidden),
    layers: Number(a.layers),
    intermediate_size: 4 * Number(a.hidden),
    max_position: 4096,
  });
  await saveModel(initModel(initConfig(init, tok), 1), join(dir, "model"));
  await saveTokenizer(tok, join(dir, "model"));

  const stage = `  - eval: { benchmark: arith, questions: ${a.questions}, rollout: { rollouts: ` +
    `${a.rollouts}${
      Number(a.top) > 0 ? `, mode: reference, reference_top_k: ${a.top}` : ""
    } }, sampling: { max_tokens: ${a["max-tokens"]}, temperature: ${a.temperature} } }\n`;
  async function manifest(name: string, policy: string) {
    const path = join(dir, `${name}.yaml`);
    await Deno.writeTextFile(
      path,
      `name: bench\nseed: 1\npolicy: ${policy}\nruntime: { threads: ${a.threads} }\nplugins:\n` +
        `  benchmarks:\n    - use: arith\n      with: { sizes: { train: 4, rl: 4, test: 64 } }\n` +
        `stages:\n${stage}`,
    );
    return await loadManifest(path, { stages: BUILTIN_STAGES });
  }

  interface Row {
    side: string;
    tokens: number;
    wallMs: number;
    generateMs: number;
    /** CPU seconds (user + system) of this process and, for the server side, the server's. */
    cpuS: number;
  }

  /** CPU seconds (user + system) of process `pid` so far (/proc; clock ticks of 1/100 s). */
  const procCpu = (pid: number): number => {
    const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  };

  /** One eval run of `side` into a fresh store. */
  async function once(side: string, policy: string, r: number, pid?: number): Promise<Row> {
    const store = new Store(join(dir, `store-${side}-${r}`));
    const view = await manifest(side, policy);
    const c0 = process.cpuUsage(), s0 = pid ? procCpu(pid) : 0;
    const res = await runManifest({ store, view, force: true });
    const c = process.cpuUsage(c0);
    const cpuS = (c.user + c.system) / 1e6 + (pid ? procCpu(pid) - s0 : 0);
    const st = res.record.stages.eval;
    const idx = await store.getJson<{ questions: { tree: string }[] }>(st.outputs.rollouts);
    let tokens = 0;
    for (const q of idx.questions) {
      const text = new TextDecoder().decode(await store.getBytes(q.tree));
      for (const l of text.split("\n").filter(Boolean)) {
        const o = JSON.parse(l);
        if (o.type === "segment" && Array.isArray(o.tokens)) tokens += o.tokens.length;
      }
    }
    return {
      side,
      tokens,
      wallMs: res.record.timings["eval_ms"],
      generateMs: res.record.timings["eval.eval.generate_ms"],
      cpuS,
    };
  }

  /** The run with the median wall time. */
  const median = (rows: Row[]) => [...rows].sort((x, y) => x.wallMs - y.wallMs)[rows.length >> 1];

  // `arpo serve` in its own process, as a user runs it.
  const proc = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      join(REPO, "src/cli/main.ts"),
      "serve",
      join(dir, "model"),
      "--port",
      "0",
      "--name",
      "bench",
      "--threads",
      String(a.threads),
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let banner = "";
  while (!/on (http:\/\/\S+)/.test(banner)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`arpo serve exited: ${banner}`);
    banner += value;
  }
  const url = /on (http:\/\/\S+)/.exec(banner)![1];
  const server = `{ server: { url: "${url}", model: bench, max_concurrency: ${a.concurrency} } }`;
  const locals: Row[] = [], remotes: Row[] = [];
  try {
    // Alternate the two sides, so that a change of load on a shared machine hits both.
    for (let r = 0; r < Number(a.reps); r++) {
      locals.push(await once("onnx in-process", "{ model: ./model }", r));
      remotes.push(await once("arpo serve (HTTP)", server, r, proc.pid));
    }
  } finally {
    proc.kill("SIGTERM");
    await proc.status;
    reader.releaseLock();
  }
  const local = median(locals), remote = median(remotes);
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1];
  const avx512 = /\bavx512f\b/.test(await Deno.readTextFile("/proc/cpuinfo"));
  console.log(`CPU: ${cpu} (avx512f: ${avx512 ? "yes" : "no"}), load average after: ${load}`);
  console.log(
    `model: hidden ${a.hidden}, ${a.layers} layers, byte vocab; eval ${a.questions} questions × ` +
      `${a.rollouts} samples, max ${a["max-tokens"]} tokens, temperature ${a.temperature}, ` +
      `top-k log-probs in-process ${a.top}, threads ${a.threads}`,
  );
  console.log(
    "| policy | generated tokens | stage wall s | generate s | tok/s (wall) | tok/s (generate) | CPU s | tok per CPU s |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const r of [local, remote]) {
    console.log(
      `| ${r.side} | ${r.tokens} | ${(r.wallMs / 1000).toFixed(2)} | ${
        (r.generateMs / 1000).toFixed(2)
      } | ${(r.tokens / r.wallMs * 1000).toFixed(0)} | ${
        (r.tokens / r.generateMs * 1000).toFixed(0)
      } | ${r.cpuS.toFixed(1)} | ${(r.tokens / r.cpuS).toFixed(0)} |`,
    );
  }
  console.log(
    `ratio arpo serve / in-process: wall tok/s ${
      ((remote.tokens / remote.wallMs) / (local.tokens / local.wallMs)).toFixed(2)
    }, tokens per CPU s ${
      ((remote.tokens / remote.cpuS) / (local.tokens / local.cpuS)).toFixed(2)
    }`,
  );
  console.log(JSON.stringify({ locals, remotes, load, cpu, avx512 }));
  await Deno.remove(dir, { recursive: true });
}

if (import.meta.main) await main();
