/**
 * The python tool served by its persistent worker (`worker: true`, the default) gives exactly
 * the text of one process per call (`worker: false`) — values, seeded randomness, set order,
 * tracebacks, limits — and nothing one call leaves behind is visible to the next, under each
 * sandbox mechanism that works here (the worker itself is compared with one process per call
 * under both in tests/tools_sandbox_worker_test.ts).
 */
import assert from "node:assert/strict";
import python from "../plugins/tools/python.ts";
import type { Tool } from "../src/plugin/contracts.ts";
import { testContext } from "./fixtures/tools/context.ts";
import { workingMechanisms } from "./fixtures/tools/sandbox_mechanisms.ts";

const MECHS = await workingMechanisms();
if (MECHS.length === 0) console.log("tools_python_worker_test: no sandbox, skipped");

async function run(tool: Tool, code: string): Promise<string> {
  try {
    return await tool.call(code, { signal: new AbortController().signal, timeoutMs: 30_000 });
  } catch (e) {
    return `Error: ${e instanceof Error ? e.message : String(e)}`;
  }
}

const CORPUS = [
  "print(18 * 107)",
  "2 ** 100",
  "import random\nprint(random.random(), random.randint(0, 10**9))",
  "print({'apple', 'banana', 'cherry'})",
  "x = [1, 2\nprint(x)",
  "def f(n):\n    return 1 / n\nf(0)",
  "import os\nprint(sorted(os.environ.items()), os.getcwd())",
  "import sys\nsys.exit(3)",
  "print('a' * 40000)",
  "while True:\n    pass",
  "import numpy_not_there",
  "None",
];

for (const mech of MECHS) {
  Deno.test({
    name: `python worker [${mech}]: the same text as one process per call, call after call`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const opts = { timeout_s: 1, sandbox: mech };
      const oneShot = await python({ ...opts, worker: false }, testContext({ name: "python" }));
      const servedCtx = testContext({ name: "python" });
      const served = await python({ ...opts, worker: true }, servedCtx);
      try {
        for (const code of CORPUS) {
          assert.equal(await run(served, code), await run(oneShot, code), code);
        }
        // State of an earlier call (a file in the scratch directory, a module attribute, a
        // background process) is invisible to the next.
        await run(served, "open('left.txt', 'w').write('x')\nimport os\nos.environ['LEFT'] = '1'");
        assert.equal(
          await run(served, "import os\nprint(os.listdir('.'), os.environ.get('LEFT'))"),
          "[] None",
        );
        await run(served, "import random\nrandom.seed(123)\nrandom.LEFT = 1");
        assert.equal(
          await run(served, "import random\nprint(hasattr(random, 'LEFT'))"),
          "False",
        );
        // Served by the worker, never by the fallback.
        assert.ok(
          servedCtx.logs.includes(
            `python worker started (${mech}): one sandbox serves every call`,
          ),
          servedCtx.logs.join("\n"),
        );
        assert.ok(
          !servedCtx.logs.some((l) => /worker (unavailable|failed)/.test(l)),
          servedCtx.logs.join("\n"),
        );
        // And faster: one process per call starts an interpreter and imports the wrapper's modules.
        const time = async (tool: Tool) => {
          const t0 = performance.now();
          for (let i = 0; i < 5; i++) await run(tool, "print(1)");
          return performance.now() - t0;
        };
        console.log(
          `5 calls: worker ${(await time(served)).toFixed(0)} ms, one process each ${
            (await time(oneShot)).toFixed(0)
          } ms`,
        );
      } finally {
        await oneShot.close?.();
        await served.close?.();
      }
    },
  });
}
