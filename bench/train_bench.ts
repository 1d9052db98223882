/**
 * Training step time on ONNX Runtime vs PyTorch CPU (same model, weights, batch, objective).
 *
 *   deno run -A bench/train_bench.ts [--model quickstart|arith|platform|m20|m100|tiny]
 *     [--steps 8] [--threads 2] [--rounds 3] [--objective sft|pg] [--batch B] [--seq T]
 *     [--fit 4,8,16,32] [--profile [--top N]] [--baseline DIR]
 *
 * Models: "quickstart" = experiments/quickstart.yaml's decoder (vocab 259, d=128, 4 layers, MLP
 * 512, tied, ~0.9M parameters); "arith" = EXPERIMENTS.md's byte-level decoder (MLP 384, ~0.88M),
 * batch 32 × 128; "platform" = PLATFORM.md's prototype size (d=256, 4 layers), batch 8 × 128;
 * "m20" = policy_bench's 20M decoder (vocab 8192, d=512, 5 layers, 8 heads / 4 KV heads, MLP
 * 1536, 19.9M), batch 8 × 128; "m100" (vocab 16384, d=768, 12 layers, 12 heads / 4 KV heads,
 * MLP 2560, ~102M), batch 4 × 128. Objective `--objective sft` (token-mean cross-entropy, first
 * 16 tokens masked) or `pg` (clipped surrogate with dual clip, fixed behaviour log-probs, ±1
 * advantages), grad-norm clip 1.0, AdamW. The PyTorch side (bench/torch_train_step.py) runs when
 * $TORCH_PYTHON (default /work/main/.venv/bin/python) can import torch; otherwise only ONNX
 * Runtime times are printed.
 *
 * Every measurement runs in its own process (this file with --worker ort, or the Python script),
 * so each side's peak RSS (VmHWM) is its own. Rounds alternate the two sides so that load from
 * other processes hits both alike; each process reports the median of `--steps` steps after one
 * warm-up step. `--fit` runs every batch size in each round and fits ms = fixed + per_row · B by
 * least squares over the medians: the fixed cost per step. `--profile` prints the node count of
 * the training graph as built and as ONNX Runtime runs it (its profile's kernel events per run),
 * with kernel time by op type (the warm-up run left out; `--top N`: the N slowest nodes with
 * their input shapes; `--batch`/`--seq` apply). `--baseline DIR` also runs the ONNX Runtime side
 * from another checkout DIR (its bench/train_bench.ts; an A/B of two versions of the trainer),
 * interleaved with the others.
 *
 * Under `deno bench` this file registers a small fused SFT step instead.
 */
import { parseArgs } from "node:util";
import { parseHfConfig, toHfConfig } from "../src/model/config.ts";
import { initWeights } from "../src/model/weights.ts";
import { serializeSafetensors } from "../src/model/safetensors.ts";
import { Trainer } from "../src/train/trainer.ts";
import type { TrainSequence } from "../src/train/batch.ts";
import { Stream } from "../src/rng.ts";

const MODELS = {
  quickstart: { hidden: 128, inter: 512, layers: 4, heads: 4, kv: 4, vocab: 259, B: 16, T: 128 },
  arith: { hidden: 128, inter: 384, layers: 4, heads: 4, kv: 4, vocab: 259, B: 32, T: 128 },
  platform: { hidden: 256, inter: 1024, layers: 4, heads: 4, kv: 4, vocab: 259, B: 8, T: 128 },
  m20: { hidden: 512, inter: 1536, layers: 5, heads: 8, kv: 4, vocab: 8192, B: 8, T: 128 },
  m100: { hidden: 768, inter: 2560, layers: 12, heads: 12, kv: 4, vocab: 16384, B: 4, T: 128 },
  tiny: { hidden: 32, inter: 64, layers: 2, heads: 4, kv: 2, vocab: 64, B: 4, T: 32 },
};
type ModelName = keyof typeof MODELS;
type ObjectiveKind = "sft" | "pg";

function setup(name: ModelName, objective: ObjectiveKind, B?: number, T?: number) {
  const m = { ...MODELS[name] };
  if (B) m.B = B;
  if (T) m.T = T;
  const cfg = parseHfConfig({
    model_type: "llama",
    vocab_size: m.vocab,
    hidden_size: m.hidden,
    intermediate_size: m.inter,
    num_hidden_layers: m.layers,
    num_attention_heads: m.heads,
    num_key_value_heads: m.kv,
    tie_word_embeddings: true,
    max_position_embeddings: Math.max(256, m.T),
    rope_theta: 10000,
  }, name);
  const weights = initWeights(cfg, `bench-${name}`);
  const s = new Stream(["train-bench", name]);
  const batch: TrainSequence[] = Array.from({ length: m.B }, () => {
    const tokens = Array.from({ length: m.T }, () => s.int(m.vocab));
    return { tokens, lossMask: tokens.map((_, i) => (i < 16 ? 0 : 1)) };
  });
  if (objective === "pg") {
    // Fixed "behaviour" log-probs and ±1 advantages: some ratios clipped, some dual-clipped.
    batch.forEach((b, k) => {
      b.advantages = k % 2 ? 1 : -1;
      b.oldLogp = b.tokens.map((_, i) => -Math.log(m.vocab) + 0.5 * Math.sin(i + k));
    });
  }
  let params = 0;
  for (const t of weights.values()) params += t.data.length;
  return { cfg, weights, batch, m, params };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Peak resident set of this process (kB), from /proc/self/status. */
function peakRssKb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
  return m ? Number(m[1]) : NaN;
}

interface SideResult {
  ms: number[];
  loss: number[];
  /** Peak RSS of the measuring process, MB. */
  peakMb: number;
}

/** The ONNX Runtime side, in this process (--worker ort). */
async function ortWorker(
  name: ModelName,
  steps: number,
  threads: number,
  objective: ObjectiveKind,
  B?: number,
  T?: number,
): Promise<SideResult> {
  const { cfg, weights, batch } = setup(name, objective, B, T);
  const tr = Trainer.create(cfg, weights, {
    objective: { kind: objective },
    threads,
    tokenBudget: 1 << 20,
    adamw: { weightDecay: 0.01, maxGradNorm: 1 },
  });
  const ms: number[] = [], loss: number[] = [];
  for (let i = 0; i <= steps; i++) {
    const t0 = performance.now();
    const st = await tr.trainStep(batch, 1e-3);
    if (i > 0) ms.push(performance.now() - t0);
    loss.push(st.loss);
  }
  await tr.release();
  return { ms, loss, peakMb: peakRssKb() / 1024 };
}

async function ortSide(
  tree: string | undefined,
  name: ModelName,
  steps: number,
  threads: number,
  objective: ObjectiveKind,
  B?: number,
  T?: number,
): Promise<SideResult> {
  const args = [
    "run",
    "-A",
    tree ? `${tree}/bench/train_bench.ts` : new URL(import.meta.url).pathname,
    "--worker",
    "ort",
    "--model",
    name,
    "--steps",
    String(steps),
    "--threads",
    String(threads),
    "--objective",
    objective,
  ];
  if (B) args.push("--batch", String(B));
  if (T) args.push("--seq", String(T));
  const out = await new Deno.Command(Deno.execPath(), { args, stderr: "inherit", cwd: tree })
    .output();
  if (!out.success) throw new Error(`ort worker failed (exit ${out.code})`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
}

async function torchSide(
  name: ModelName,
  steps: number,
  threads: number,
  objective: ObjectiveKind,
  B?: number,
  T?: number,
): Promise<SideResult | null> {
  const py = Deno.env.get("TORCH_PYTHON") ?? "/work/main/.venv/bin/python";
  const { cfg, weights, batch } = setup(name, objective, B, T);
  try {
    const probe = await new Deno.Command(py, { args: ["-c", "import torch, transformers"] })
      .output();
    if (!probe.success) return null;
  } catch {
    return null;
  }
  const dir = await Deno.makeTempDir({ prefix: "train-bench-" });
  try {
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(toHfConfig(cfg)));
    await Deno.writeFile(`${dir}/model.safetensors`, serializeSafetensors(weights));
    await Deno.writeTextFile(
      `${dir}/batch.json`,
      JSON.stringify({
        objective,
        tokens: batch.map((b) => b.tokens),
        mask: batch.map((b) => b.lossMask),
        old_logp: batch.map((b) => b.oldLogp ?? []),
        adv: batch.map((b) => b.advantages ?? 0),
      }),
    );
    const script = new URL("./torch_train_step.py", import.meta.url).pathname;
    const out = await new Deno.Command(py, {
      args: [script, dir, String(steps + 1), String(threads)],
      stderr: "piped",
    }).output();
    if (!out.success) {
      console.error(new TextDecoder().decode(out.stderr));
      return null;
    }
    const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
    return { ms: (r.ms as number[]).slice(1), loss: r.loss as number[], peakMb: r.peak_mb };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Least squares y = a + b·x. */
function linearFit(xs: number[], ys: number[]): { fixed: number; slope: number } {
  const n = xs.length, mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  const slope = sxx > 0 ? sxy / sxx : 0;
  return { fixed: my - slope * mx, slope };
}

/** Node counts of the fused graph as built and as ORT runs it (profile), kernel ms by op. */
async function profile(
  name: ModelName,
  threads: number,
  objective: ObjectiveKind,
  top: number,
  B?: number,
  T?: number,
) {
  const { ort } = await import("../src/onnx/session.ts");
  const { serializeModel } = await import("../src/onnx/serialize.ts");
  const { buildTrainGraph } = await import("../src/train/graphs.ts");
  // One set-up for the graph and its feeds (building the weights is the slow part at 100M).
  const { cfg, weights, batch, params, m } = setup(name, objective, B, T);
  const built = buildTrainGraph(cfg, { kind: objective }, "fused").graph;
  const byOp = new Map<string, number>();
  for (const n of built.nodes) byOp.set(n.op, (byOp.get(n.op) ?? 0) + 1);
  console.log(
    `graph as built: ${built.nodes.length} nodes; ` +
      [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([k, v]) => `${k} ${v}`).join(", "),
  );
  const dir = await Deno.makeTempDir({ prefix: "train-profile-" });
  const sess = await ort.InferenceSession.create(serializeModel(built), {
    graphOptimizationLevel: "all",
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    enableProfiling: true,
    profileFilePrefix: `${dir}/p`,
    logSeverityLevel: 3,
  });
  // Feeds by input name, so that this works for any layout of the optimizer state: per-tensor
  // moments (m.<name>, v.<name>) or the flat state (state.weights, state.m, state.v).
  const runs = 3;
  console.log(`profile: batch ${m.B} × ${m.T}`);
  const { packBatch } = await import("../src/train/batch.ts");
  const { adamScalars, DEFAULT_ADAMW } = await import("../src/train/optimizer.ts");
  const packed = packBatch(batch, { pg: objective === "pg" }).feeds;
  const scalars: Record<string, number> = {
    ...adamScalars(DEFAULT_ADAMW, 1e-3, 1),
    loss_scale: 1e-3,
    inv_temperature: 1,
    clip_low: 0.2,
    clip_high: 0.2,
    dual_clip: 3,
  };
  const flat = new Float32Array(params);
  let off = 0;
  for (const t of weights.values()) {
    flat.set(t.data, off);
    off += t.data.length;
  }
  const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
  for (const k of sess.inputNames) {
    const w = weights.get(k.replace(/^[mv]\./, ""));
    if (packed[k]) feeds[k] = packed[k];
    else if (k in scalars) feeds[k] = new ort.Tensor("float32", Float32Array.of(scalars[k]), []);
    else if (k.startsWith("state.")) {
      // Flat state (state.<part>[.<group>]): the group's slice of the weights, zero moments.
      const { flatLayout } = await import("../src/train/flat_state.ts");
      const g = /\.(\d+)$/.exec(k);
      const grp = g ? flatLayout(cfg).groups[Number(g[1])] : { start: 0, stop: params };
      const part = k.startsWith("state.weights")
        ? flat.slice(grp.start, grp.stop)
        : new Float32Array(grp.stop - grp.start);
      feeds[k] = new ort.Tensor("float32", part, [part.length]);
    } else if (w && weights.has(k)) feeds[k] = new ort.Tensor("float32", w.data, w.shape);
    else if (w) feeds[k] = new ort.Tensor("float32", new Float32Array(w.data.length), w.shape);
    else throw new Error(`profile: no feed for input '${k}'`);
  }
  for (let i = 0; i <= runs; i++) await sess.run(feeds);
  sess.endProfiling();
  await sess.release();
  const file = [...Deno.readDirSync(dir)].map((e) => `${dir}/${e.name}`)[0];
  const events = JSON.parse(await Deno.readTextFile(file)) as {
    cat: string;
    name: string;
    dur: number;
    ts: number;
    args?: { op_name?: string; input_type_shape?: Record<string, number[]>[] };
  }[];
  const all = events.filter((e) => e.cat === "Node" && e.name.endsWith("_kernel_time"))
    .sort((a, b) => a.ts - b.ts);
  const perRun = all.length / (runs + 1);
  // The first run is the warm-up (first touch of every buffer): left out of the times.
  const kernels = all.slice(perRun);
  const opMs = new Map<string, number>();
  let total = 0;
  for (const e of kernels) {
    const k = e.args?.op_name ?? "?";
    opMs.set(k, (opMs.get(k) ?? 0) + e.dur / 1000 / runs);
    total += e.dur / 1000 / runs;
  }
  const opCount = new Map<string, number>();
  for (const e of kernels) {
    const k = e.args?.op_name ?? "?";
    opCount.set(k, (opCount.get(k) ?? 0) + 1 / runs);
  }
  if (top > 0) {
    const byNode = new Map<string, { ms: number; op: string; shapes: string }>();
    for (const e of kernels) {
      const name = e.name.replace(/_kernel_time$/, "");
      const shapes = (e.args?.input_type_shape ?? []).map((o) =>
        JSON.stringify(Object.values(o)[0])
      )
        .join(" ");
      const n = byNode.get(name) ?? { ms: 0, op: e.args?.op_name ?? "?", shapes };
      n.ms += e.dur / 1000 / runs;
      byNode.set(name, n);
    }
    for (const [name, n] of [...byNode].sort((a, b) => b[1].ms - a[1].ms).slice(0, top)) {
      console.log(`  ${n.ms.toFixed(2).padStart(8)} ms  ${n.op.padEnd(14)} ${n.shapes}  ${name}`);
    }
  }
  console.log(
    `ORT profile: ${perRun} nodes per run, kernel time ${total.toFixed(1)} ms per run; ` +
      [...opMs].sort((a, b) => b[1] - a[1]).slice(0, 40).map(([k, v]) =>
        `${k} ${Math.round(opCount.get(k)!)}× ${v.toFixed(1)} ms`
      ).join(", "),
  );
  await Deno.remove(dir, { recursive: true });
}

async function main() {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      model: { type: "string", default: "arith" },
      steps: { type: "string", default: "8" },
      threads: { type: "string", default: "2" },
      rounds: { type: "string", default: "3" },
      objective: { type: "string", default: "sft" },
      batch: { type: "string" },
      seq: { type: "string" },
      fit: { type: "string" },
      profile: { type: "boolean", default: false },
      top: { type: "string", default: "0" },
      worker: { type: "string" },
      baseline: { type: "string" },
    },
  });
  const name = values.model as ModelName;
  if (!(name in MODELS)) {
    throw new Error(`--model must be one of ${Object.keys(MODELS).join(", ")}`);
  }
  const steps = Number(values.steps), threads = Number(values.threads);
  const rounds = Number(values.rounds);
  const B = values.batch ? Number(values.batch) : undefined;
  const T = values.seq ? Number(values.seq) : undefined;
  const objective = values.objective as ObjectiveKind;
  if (objective !== "sft" && objective !== "pg") throw new Error("--objective must be sft or pg");
  if (values.worker === "ort") {
    console.log(JSON.stringify(await ortWorker(name, steps, threads, objective, B, T)));
    return;
  }
  if (values.profile) {
    await profile(name, threads, objective, Number(values.top), B, T);
    return;
  }
  const { m, params } = setup(name, objective, B, T);
  const batches = values.fit ? values.fit.split(",").map(Number) : [m.B];
  console.log(
    `model ${name}: d=${m.hidden} layers=${m.layers} vocab=${m.vocab}, ${
      (params / 1e6).toFixed(2)
    }M parameters, batch ${batches.join("/")}×${m.T}, ${objective} + AdamW, ${threads} threads, ` +
      `${steps} timed steps (median), ${rounds} rounds`,
  );
  const sides = ["onnxruntime", ...(values.baseline ? ["baseline"] : []), "pytorch"] as const;
  const med = new Map<string, Map<number, number[]>>(sides.map((k) => [k, new Map()]));
  const peak = new Map<string, number[]>(sides.map((k) => [k, []]));
  const run = (side: string, b: number) =>
    side === "pytorch" ? torchSide(name, steps, threads, objective, b, T) : ortSide(
      side === "baseline" ? values.baseline : undefined,
      name,
      steps,
      threads,
      objective,
      b,
      T,
    );
  for (let r = 0; r < rounds; r++) {
    for (const b of batches) {
      const parts: string[] = [];
      for (const side of sides) {
        const x = await run(side, b);
        if (!x) {
          parts.push(`${side}: not available`);
          continue;
        }
        const ms = median(x.ms);
        med.get(side)!.set(b, [...(med.get(side)!.get(b) ?? []), ms]);
        peak.get(side)!.push(x.peakMb);
        parts.push(
          `${side} ${ms.toFixed(1)} ms/step, peak ${x.peakMb.toFixed(0)} MB (loss ${
            x.loss[0].toFixed(4)
          } → ${x.loss.at(-1)!.toFixed(4)})`,
        );
      }
      console.log(`round ${r + 1} B=${b}: ${parts.join(" | ")}`);
    }
  }
  const have = sides.filter((k) => med.get(k)!.size === batches.length);
  for (const b of batches) {
    const o = median(med.get("onnxruntime")!.get(b)!);
    console.log(
      `B=${b}: ` + have.map((k) => {
        const x = median(med.get(k)!.get(b)!);
        return `${k} ${x.toFixed(1)} ms` +
          (k === "onnxruntime" ? "" : ` (ours/${k} ${(o / x).toFixed(2)}×)`);
      }).join(", "),
    );
  }
  console.log(
    "peak RSS (median over processes): " +
      have.map((k) => `${k} ${median(peak.get(k)!).toFixed(0)} MB`).join(", "),
  );
  if (batches.length > 1) {
    console.log(
      "fit: " + have.map((k) => {
        const f = linearFit(batches, batches.map((b) => median(med.get(k)!.get(b)!)));
        return `${k} fixed ${f.fixed.toFixed(1)} ms + ${f.slope.toFixed(2)} ms/row`;
      }).join("; "),
    );
  }
  console.log(`load average: ${Deno.readTextFileSync("/proc/loadavg").trim()}`);
}

if (import.meta.main) {
  await main();
} else {
  const { cfg, weights, batch } = setup("tiny", "sft");
  const tr = Trainer.create(cfg, weights, { objective: { kind: "sft" }, threads: 1 });
  await tr.trainStep(batch, 1e-3); // build the session outside the timed region
  Deno.bench("train: fused SFT step (tiny decoder, 4×32 tokens)", async () => {
    await tr.trainStep(batch, 1e-3);
  });
}
