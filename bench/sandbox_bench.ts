/**
 * Cost of one sandboxed program (src/tools/sandbox.ts): bubblewrap with the full isolation
 * (namespaces, minimal view, seccomp, limits, guard, watchdog) against `none` (a plain child with
 * rlimits) and against a call of the persistent python worker (sandbox_worker.ts), for `true` and
 * a trivial python call. `deno bench -A bench/sandbox_bench.ts`; figures in docs/PERFORMANCE.md.
 */
import { resolveSandbox, runSandboxed } from "../src/tools/sandbox.ts";
import { PythonWorker } from "../src/tools/sandbox_worker.ts";

let sandboxed = true;
try {
  await resolveSandbox("auto");
} catch {
  sandboxed = false;
}
const PY = [
  "python3",
  "-s",
  "-c",
  "import ast, linecache, os, random, sys, textwrap, traceback\nprint(1)",
];

Deno.bench({
  name: "sandbox bwrap: true",
  group: "true",
  ignore: !sandboxed,
  fn: async () => {
    await runSandboxed({ argv: ["true"] });
  },
});
Deno.bench({
  name: "sandbox none: true",
  group: "true",
  baseline: true,
  fn: async () => {
    await runSandboxed({ argv: ["true"], mode: "none" });
  },
});
Deno.bench({
  name: "sandbox bwrap: python with the tool's imports",
  group: "python",
  ignore: !sandboxed,
  fn: async () => {
    await runSandboxed({ argv: PY });
  },
});
Deno.bench({
  name: "sandbox none: python with the tool's imports",
  group: "python",
  baseline: true,
  fn: async () => {
    await runSandboxed({ argv: ["/usr/bin/" + PY[0], ...PY.slice(1)], mode: "none" });
  },
});

// The persistent worker (src/tools/sandbox_worker.ts): one call of the same program.
const worker = sandboxed
  ? await PythonWorker.start({
    python: "python3",
    wrapper: "import ast, linecache, os, random, sys, textwrap, traceback\nexec(sys.stdin.read())",
    preload: ["ast", "linecache", "os", "random", "sys", "textwrap", "traceback"],
  })
  : undefined;
Deno.bench({
  name: "sandbox worker: python call (tool's imports preloaded)",
  group: "python",
  ignore: !worker,
  fn: async () => {
    await worker!.run({ code: "print(1)", seed: 0 });
  },
});
