/**
 * The built-in stage kinds, as an explicit list, and the extensions a CLI process loads from the
 * ARPO_PRELOAD environment variable (comma-separated module paths or URLs; tests use it to bring
 * fixture stage kinds and a scripted policy into CLI subprocesses). Importing a module registers
 * nothing: a preload module exports `stages` (more stage kinds) and/or `policyFactory`, and the
 * CLI hands them to the manifest loader and the runner.
 */
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { ArpoError, describeError } from "../errors.ts";
import type { PolicyFactory, StageKind } from "./stages.ts";
import { evalStage } from "./stages/eval.ts";
import { probeStage } from "./stages/probe.ts";
import { rlStage } from "./stages/rl.ts";
import { sftStage } from "./stages/sft.ts";

/** The stage kinds every manifest may use, in the order error messages and the schema list them. */
export const BUILTIN_STAGES: readonly StageKind[] = [sftStage, rlStage, evalStage, probeStage];

export const PRELOAD_ENV = "ARPO_PRELOAD";

/** What a run can execute: its stage kinds and, unless the default, its policy factory. */
export interface Extensions {
  stages: readonly StageKind[];
  policyFactory?: PolicyFactory;
}

/** The built-in stage kinds plus what the ARPO_PRELOAD modules export. */
export async function loadExtensions(): Promise<Extensions> {
  const out: { stages: StageKind[]; policyFactory?: PolicyFactory } = {
    stages: [...BUILTIN_STAGES],
  };
  const specs = (Deno.env.get(PRELOAD_ENV) ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  for (const spec of specs) {
    const url = /^[a-z]+:/.test(spec) ? spec : pathToFileURL(resolve(spec)).href;
    let mod: { stages?: unknown; policyFactory?: unknown };
    try {
      mod = await import(url);
    } catch (e) {
      throw new ArpoError(`${PRELOAD_ENV}: cannot load '${spec}': ${describeError(e)}`);
    }
    if (mod.stages !== undefined) {
      if (!Array.isArray(mod.stages)) {
        throw new ArpoError(`${PRELOAD_ENV}: '${spec}' exports \`stages\` that is not a list`);
      }
      // A preloaded kind of a built-in's name replaces it.
      for (const k of mod.stages as StageKind[]) {
        const at = out.stages.findIndex((s) => s.kind === k.kind);
        if (at >= 0) out.stages[at] = k;
        else out.stages.push(k);
      }
    }
    if (mod.policyFactory !== undefined) {
      if (typeof mod.policyFactory !== "function") {
        throw new ArpoError(
          `${PRELOAD_ENV}: '${spec}' exports \`policyFactory\` that is not a function`,
        );
      }
      out.policyFactory = mod.policyFactory as PolicyFactory;
    }
  }
  return out;
}
