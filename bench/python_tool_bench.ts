/**
 * The python tool through the tool runtime with the store's cache, as a run calls it: calls in
 * concurrent batches (a round's calls), live through the persistent worker, live one process per
 * call, and served from the cache. Per mechanism (bwrap, unshare: whichever work here) it prints
 * wall time per call and the CPU per call of this process and every process below it (the worker's
 * sandbox included), from its cgroup's cpuacct counter when it runs in a cgroup of its own (the
 * process tree in /proc would miss what the sandboxes' inits reap). Figures in docs/PERFORMANCE.md.
 *
 * ```
 * mkdir -p /sys/fs/cgroup/cpuacct/bench   # optional, for the CPU column (cgroup v1, as root)
 * sh -c 'echo $$ > /sys/fs/cgroup/cpuacct/bench/tasks; exec deno run -A bench/python_tool_bench.ts \
 *   [--calls 400] [--batch 50] [--json FILE]'
 * ```
 */
import { parseArgs } from "node:util";
import python from "../plugins/tools/python.ts";
import { testContext } from "../tests/fixtures/tools/context.ts";
import { createToolRuntime } from "../src/tools/runtime.ts";
import { storeToolCache } from "../src/run/tool_cache.ts";
import { Store } from "../src/store/store.ts";
import { workingMechanisms } from "../tests/fixtures/tools/sandbox_mechanisms.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    calls: { type: "string", default: "400" },
    batch: { type: "string", default: "50" },
    json: { type: "string" },
  },
});
const CALLS = Number(values.calls), BATCH = Number(values.batch);

/**
 * This process's cgroup-v1 cpuacct counter when it runs in a cgroup of its own (exact: every
 * process of the tree, wherever it was reaped), e.g. under
 * `mkdir /sys/fs/cgroup/cpuacct/bench && echo $$ > /sys/fs/cgroup/cpuacct/bench/tasks`.
 */
function cgroupUsageFile(): string | undefined {
  try {
    const line = Deno.readTextFileSync("/proc/self/cgroup").split("\n")
      .find((l) => /^\d+:[^:]*\bcpuacct\b[^:]*:/.test(l));
    const path = line?.split(":")[2];
    if (!path || path === "/") return undefined;
    return ["cpuacct", "cpu,cpuacct"].map((d) => `/sys/fs/cgroup/${d}${path}/cpuacct.usage`)
      .find((f) => {
        try {
          return Deno.statSync(f).isFile;
        } catch {
          return false;
        }
      });
  } catch {
    return undefined;
  }
}
const CGROUP_USAGE = cgroupUsageFile();

/** CPU (ms) of this process's cgroup, or undefined outside a cgroup of its own. */
function cpuMs(): number | undefined {
  if (!CGROUP_USAGE) return undefined;
  return Number(Deno.readTextFileSync(CGROUP_USAGE).trim()) / 1e6;
}

type Mechanism = "bwrap" | "unshare";
interface Row {
  mechanism: Mechanism;
  mode: "worker" | "one process per call" | "cached";
  calls: number;
  wall_ms_per_call: number;
  /** Null outside a cgroup of its own: the process tree in /proc misses what sandboxes reap. */
  cpu_ms_per_call: number | null;
}

async function measure(mechanism: Mechanism, worker: boolean, calls: number): Promise<Row[]> {
  const dir = await Deno.makeTempDir({ prefix: "arpo-toolbench-" });
  const tool = await python({ sandbox: mechanism, worker }, testContext({ name: "python" }));
  const cache = storeToolCache(new Store(dir), { seed: 1 });
  const rt = createToolRuntime([{ name: "python", tool, digest: "a".repeat(64) }], { cache });
  const rows: Row[] = [];
  try {
    await rt.call("python", "print(-1)"); // starts the worker; not timed
    for (const mode of ["live", "cached"] as const) {
      if (mode === "cached" && !worker) break;
      const c0 = cpuMs();
      const t0 = performance.now();
      for (let i = 0; i < calls; i += BATCH) {
        const n = Math.min(BATCH, calls - i);
        const outs = await Promise.all(
          Array.from({ length: n }, (_, k) => rt.call("python", `print(${i + k} * 107)`)),
        );
        for (const [k, o] of outs.entries()) {
          if (o.output !== String((i + k) * 107)) throw new Error(`bad output ${o.output}`);
        }
      }
      const wall = performance.now() - t0;
      await cache.flush();
      rows.push({
        mechanism,
        mode: mode === "cached" ? "cached" : worker ? "worker" : "one process per call",
        calls,
        wall_ms_per_call: wall / calls,
        cpu_ms_per_call: c0 === undefined ? null : (cpuMs()! - c0) / calls,
      });
    }
  } finally {
    await rt.close();
    await Deno.remove(dir, { recursive: true });
  }
  return rows;
}

const mechs = (await workingMechanisms()) as Mechanism[];
if (mechs.length === 0) {
  console.log("python_tool_bench: no sandbox mechanism works here");
  Deno.exit(0);
}
const rows: Row[] = [];
for (const m of mechs) {
  rows.push(...await measure(m, true, CALLS));
  rows.push(...await measure(m, false, Math.min(CALLS, 100)));
}
const cpu = Deno.readTextFileSync("/proc/cpuinfo");
const header = {
  cpu: /model name\s*:\s*(.*)/.exec(cpu)?.[1] ?? "?",
  avx512f: /\bavx512f\b/.test(cpu),
  cores: navigator.hardwareConcurrency,
  loadavg: Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" "),
  batch: BATCH,
  cpu_from: CGROUP_USAGE ?? "no cgroup of its own: CPU not measured",
};
console.log(JSON.stringify(header));
for (const r of rows) {
  console.log(
    `${r.mechanism.padEnd(8)} ${r.mode.padEnd(21)} ${String(r.calls).padStart(4)} calls  ` +
      `wall ${r.wall_ms_per_call.toFixed(2).padStart(7)} ms/call  ` +
      `cpu ${(r.cpu_ms_per_call?.toFixed(2) ?? "n/a").padStart(7)} ms/call`,
  );
}
if (values.json) {
  await Deno.writeTextFile(values.json, JSON.stringify({ ...header, rows }, null, 2));
}
