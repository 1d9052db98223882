/**
 * Validation of a parsed manifest (a plain JS value) into a ResolvedManifest, collecting every
 * problem. Top-level sections are checked with one zod schema; stages are dispatched by kind to
 * the schemas of the stage kinds the caller passes (so each stage's problems are phrased against its own kind rather than a
 * union of all kinds); then the cross-references (plugin names, stage names) are checked.
 */
import { z } from "zod";
import { NAME_RE, nameSchema, pluginName, pluginsSchema } from "./plugins.ts";
import { policySchema } from "./policy.ts";
import { describeValue, fromZodIssues, type Problem } from "./problems.ts";
import { type PluginSection, type StageSchema, stageSchemaMap } from "./stage_schema.ts";
import { didYouMean, listOf } from "./suggest.ts";
import type { PluginRef, ResolvedManifest, StageConfig } from "./types.ts";

export const runtimeSchema = z.strictObject({
  threads: z.int().min(1).max(1024).default(2).describe("CPU threads for ONNX Runtime"),
  device: z.enum(["auto", "cpu", "cuda", "webgpu"]).default("cpu"),
  numerics: z.enum(["native", "portable"]).default("native").describe(
    "native: ONNX Runtime's CPU kernels for this machine's instruction set (rounding differs " +
      "between machines); portable: its WebAssembly build on one thread, the same bytes on any " +
      "x86-64 or arm64 machine (slower; device cpu, threads 1)",
  ),
  tool_cache: z.union([z.boolean(), z.record(z.string(), z.boolean())]).default(true)
    .describe(
      "serve repeated calls of deterministic tools from the store's cache: true, false, or per " +
        "tool name ({python: false}; unnamed tools on)",
    ),
  trackers: z.array(z.enum(["tensorboard"])).default([]).describe(
    "where a finished run's metrics also go: tensorboard (event files in " +
      "<store>/tensorboard/); not part of the run's identity",
  ),
});

/** Everything but the stages, which validateStages dispatches by kind. */
export const topSchema = z.strictObject({
  name: z.string().min(1).describe("the experiment's name"),
  description: z.string().default(""),
  seed: z.int().min(0).default(0).describe("root of every random stream"),
  policy: policySchema.prefault({ init: {} }),
  plugins: pluginsSchema.prefault({}),
  stages: z.array(z.unknown()).default([]).describe("stages, run in order"),
  runtime: runtimeSchema.prefault({}),
});

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

const SINGULAR: Record<PluginSection, string> = {
  tools: "tool",
  rewards: "reward",
  benchmarks: "benchmark",
};

/** Validate and resolve; `manifest` is set only when there are no problems. */
export function validateManifest(
  input: unknown,
  stageKinds: readonly StageSchema[],
): { manifest?: ResolvedManifest; problems: Problem[] } {
  const problems: Problem[] = [];
  if (!isMap(input)) {
    problems.push({
      path: [],
      expected: "a map of manifest keys (`name`, `policy`, `plugins`, `stages`, …)",
      found: input === null || input === undefined ? "an empty document" : describeValue(input),
      at: "value",
    });
    return { problems };
  }
  // Top-level `x-…` keys hold YAML anchors for reuse (`x-common: &c {…}`, then `<<: *c`); they
  // are not settings, so they are dropped before validation and are not part of the identity.
  const settings = Object.fromEntries(Object.entries(input).filter(([k]) => !k.startsWith("x-")));
  const top = topSchema.safeParse(settings);
  if (!top.success) problems.push(...fromZodIssues(top.error.issues, settings, topSchema));

  // Plugin names, for the uniqueness check and for stages' references. Entries with problems of
  // their own still contribute a name when their `use`/`as` are strings, so one bad option does
  // not turn every reference to that plugin into a second, consequential error.
  const plugins = pluginsSchema.safeParse(settings.plugins ?? {});
  const names = checkPluginNames(lenientPlugins(settings.plugins), problems);

  const stages = validateStages(settings.stages, stageSchemaMap(stageKinds), names, problems);
  checkTrainingPolicy(
    settings.policy,
    settings.stages,
    stages,
    stageSchemaMap(stageKinds),
    problems,
  );
  checkToolCacheNames(settings.runtime, names.tools, problems);
  checkPortable(settings.runtime, problems);

  if (problems.length || !top.success || !plugins.success) return { problems };
  const d = top.data;
  const withNames = (refs: PluginRef[]): PluginRef[] =>
    refs.map((r) => ({ use: r.use, as: pluginName(r), with: r.with ?? {} }));
  const manifest: ResolvedManifest = {
    name: d.name,
    description: d.description,
    seed: d.seed,
    policy: d.policy as ResolvedManifest["policy"],
    plugins: {
      tools: withNames(plugins.data.tools),
      rewards: withNames(plugins.data.rewards),
      benchmarks: withNames(plugins.data.benchmarks),
    },
    stages,
    runtime: resolvedRuntime(d.runtime),
  };
  // Drop undefined members so the value is plain JSON (what gets hashed and stored).
  return { manifest: JSON.parse(JSON.stringify(manifest)), problems };
}

/**
 * The runtime section as it enters the identity: `numerics` only when portable, so the run ids
 * of native runs (all runs made before the key existed) stay what they were.
 */
function resolvedRuntime(r: z.output<typeof runtimeSchema>): ResolvedManifest["runtime"] {
  const { numerics, trackers, ...rest } = r;
  // `trackers` only when set (the runner leaves it out of the identity and the stage keys)
  return {
    ...rest,
    // Portable: one WebAssembly thread, whatever the default thread count (checkPortable).
    ...(numerics === "portable" ? { numerics, threads: PORTABLE_THREADS } : {}),
    ...(trackers.length ? { trackers: [...new Set(trackers)] } : {}),
  };
}

/**
 * The thread count of portable numerics. onnxruntime-web's multi-threaded WebAssembly build
 * deadlocks in Deno on the training graphs' gradient graph (measured: no run of it finished in
 * 200 s at 2 threads, 86 ms at 1), and the count must be fixed anyway (it changes the rounding).
 */
export const PORTABLE_THREADS = 1;

/** `runtime.numerics: portable` runs on the WebAssembly engine, on the CPU, on one thread. */
function checkPortable(runtime: unknown, problems: Problem[]): void {
  if (!isMap(runtime) || runtime.numerics !== "portable") return;
  const device = runtime.device ?? "cpu";
  if (device !== "cpu") {
    problems.push({
      path: ["runtime", "device"],
      expected: "cpu: runtime.numerics: portable runs every graph on onnxruntime-web's " +
        "WebAssembly build, on the CPU (GPU kernels are not bit-identical across devices)",
      found: describeValue(device),
      at: "value",
    });
  }
  const threads = runtime.threads ?? PORTABLE_THREADS;
  if (threads !== PORTABLE_THREADS) {
    problems.push({
      path: ["runtime", "threads"],
      expected: `${PORTABLE_THREADS} (or no value): runtime.numerics: portable runs on one ` +
        "WebAssembly thread (its multi-threaded build deadlocks in Deno on the gradient graph)",
      found: describeValue(threads),
      at: "value",
    });
  }
}

/** `runtime.tool_cache: {name: bool}` may only name the manifest's tools. */
function checkToolCacheNames(runtime: unknown, tools: string[], problems: Problem[]): void {
  const tc = isMap(runtime) ? runtime.tool_cache : undefined;
  if (!isMap(tc)) return;
  for (const name of Object.keys(tc)) {
    if (tools.includes(name)) continue;
    problems.push({
      path: ["runtime", "tool_cache", name],
      expected: tools.length
        ? `the name of a tool in plugins.tools (${listOf(tools)})`
        : "the name of a tool, but plugins.tools declares none",
      found: `\`${name}\`${didYouMean(name, tools)}`,
      at: "key",
    });
  }
}

type NameOnly = { use: string; as?: string };

/** The `{use, as}` of every plugin entry that has a string `use` (and `as`, if any). */
function lenientPlugins(raw: unknown): Record<PluginSection, (NameOnly | undefined)[]> {
  const sections = isMap(raw) ? raw : {};
  const out = {} as Record<PluginSection, (NameOnly | undefined)[]>;
  for (const section of ["tools", "rewards", "benchmarks"] as const) {
    const list = Array.isArray(sections[section]) ? sections[section] as unknown[] : [];
    out[section] = list.map((e) =>
      isMap(e) && typeof e.use === "string" && e.use !== "" &&
        (e.as === undefined || typeof e.as === "string")
        ? { use: e.use, as: e.as as string | undefined }
        : undefined
    );
  }
  return out;
}

function checkPluginNames(
  plugins: Record<PluginSection, (NameOnly | undefined)[]>,
  problems: Problem[],
): Record<PluginSection, string[]> {
  const out = {} as Record<PluginSection, string[]>;
  // One namespace for all three lists: a name identifies a plugin in logs, records and options.
  const seen = new Map<string, string>();
  for (const section of ["tools", "rewards", "benchmarks"] as const) {
    out[section] = plugins[section].flatMap((ref, i) => {
      if (!ref) return [];
      const name = pluginName(ref);
      if (ref.as === undefined && !NAME_RE.test(name)) {
        problems.push({
          path: ["plugins", section, i, "use"],
          expected: "a `use:` whose file name makes a plugin name, or an explicit `as:` name",
          found: `${JSON.stringify(ref.use)} (derived name ${JSON.stringify(name)})`,
          at: "value",
        });
      }
      const first = seen.get(name);
      if (first !== undefined) {
        problems.push({
          path: ["plugins", section, i, ...(ref.as !== undefined ? ["as"] : [])],
          expected: "a unique plugin name (add `as:` to tell them apart)",
          found: `\`${name}\`, already the name of ${first}`,
          at: "value",
        });
      } else {
        seen.set(name, `plugins.${section}[${i}]`);
      }
      return [name];
    });
  }
  return out;
}

function validateStages(
  raw: unknown,
  defs: ReadonlyMap<string, StageSchema>,
  names: Record<PluginSection, string[]>,
  problems: Problem[],
): StageConfig[] {
  if (!Array.isArray(raw)) return []; // the top-level schema reports a non-list
  const out: StageConfig[] = [];
  const seen = new Map<string, number>();
  raw.forEach((item, i) => {
    const at: PropertyKey[] = ["stages", i];
    const entry = stageEntry(item, at, defs, problems);
    if (!entry) return;
    const kindOpts = stageKindOptions(item, entry, at, defs, problems);
    if (!kindOpts) return;
    const { kind } = entry;
    const { def } = kindOpts;
    const optsPath = [...at, kind];
    const { name: rawName, ...opts } = kindOpts.rawOpts;
    const name = stageName(kind, rawName, optsPath, i, seen, problems);
    fillReferences(def, opts, names, optsPath, problems);
    const options = parseStageOptions(def, opts, names, optsPath, problems);
    if (options) out.push({ kind, name, options });
  });
  return out;
}

/**
 * A stage that updates weights (`StageSchema.trains`) needs a policy trained here: an inference
 * server (`policy.server`) only samples.
 */
function checkTrainingPolicy(
  policy: unknown,
  raw: unknown,
  stages: readonly StageConfig[],
  defs: ReadonlyMap<string, StageSchema>,
  problems: Problem[],
): void {
  if (!isMap(policy) || policy.server === undefined || !Array.isArray(raw)) return;
  for (const st of stages) {
    if (!defs.get(st.kind)?.trains?.(st.options)) continue;
    const i = raw.findIndex((item) => {
      const name = typeof item === "string"
        ? item
        : isMap(item) && Object.keys(item).length === 1
        ? ((Object.values(item)[0] as { name?: unknown } | null)?.name ?? Object.keys(item)[0])
        : undefined;
      return name === st.name;
    });
    problems.push({
      path: i >= 0 ? ["stages", i] : ["policy", "server"],
      expected: `a stage that only samples: stage '${st.name}' (${st.kind}) updates the policy's ` +
        `weights, which needs the model here (policy.model or policy.init), while policy.server ` +
        `only samples from an inference server. Train with a local policy and serve the ` +
        `checkpoint (arpo serve RUN:STAGE), or roll out without an update` +
        (st.kind === "rl" ? " (rl: dry_run: true)" : ""),
      found: `a ${st.kind} stage with policy.server`,
      at: "value",
    });
  }
}

/** The stage's shape: a bare kind or a single-key map → its kind and raw options. */
function stageEntry(
  item: unknown,
  at: PropertyKey[],
  defs: ReadonlyMap<string, StageSchema>,
  problems: Problem[],
): { kind: string; rawOpts: unknown } | undefined {
  const kinds = [...defs.keys()];
  const shape = `a stage: a single-key map naming its kind (${listOf(kinds)}) with its options`;
  if (typeof item === "string") return { kind: item, rawOpts: {} };
  if (isMap(item) && Object.keys(item).length === 1) {
    return { kind: Object.keys(item)[0], rawOpts: Object.values(item)[0] };
  }
  if (isMap(item) && Object.keys(item).length > 1) {
    const ks = Object.keys(item);
    const k0 = ks.find((k) => defs.has(k));
    problems.push({
      path: at,
      expected: shape,
      found: `keys ${ks.join(", ")}` +
        (k0 ? ` (indent the options under \`${k0}:\`)` : ""),
      at: "value",
    });
    return undefined;
  }
  problems.push({ path: at, expected: shape, found: describeValue(item), at: "value" });
  return undefined;
}

/** The stage's kind, which must be one of `defs`, and its options, which must be a map. */
function stageKindOptions(
  item: unknown,
  { kind, rawOpts }: { kind: string; rawOpts: unknown },
  at: PropertyKey[],
  defs: ReadonlyMap<string, StageSchema>,
  problems: Problem[],
): { def: StageSchema; rawOpts: Record<string, unknown> } | undefined {
  const def = defs.get(kind);
  if (!def) {
    const kinds = [...defs.keys()];
    problems.push({
      path: typeof item === "string" ? at : [...at, kind],
      expected: `a stage kind (${listOf(kinds)})`,
      found: `\`${kind}\`${didYouMean(kind, kinds)}`,
      at: typeof item === "string" ? "value" : "key",
    });
    return undefined;
  }
  const opts = rawOpts === null || rawOpts === undefined ? {} : rawOpts;
  if (!isMap(opts)) {
    problems.push({
      path: [...at, kind],
      expected: `a map of \`${kind}\` options`,
      found: describeValue(opts),
      at: "value",
    });
    return undefined;
  }
  return { def, rawOpts: opts };
}

/** The stage's name (its `name:`, else its kind), which must be unique among the stages. */
function stageName(
  kind: string,
  rawName: unknown,
  optsPath: PropertyKey[],
  i: number,
  seen: Map<string, number>,
  problems: Problem[],
): string {
  let name = kind;
  if (rawName !== undefined) {
    const n = nameSchema.safeParse(rawName);
    if (n.success) name = n.data;
    else {problems.push(
        ...fromZodIssues(n.error.issues, rawName, nameSchema, [...optsPath, "name"]),
      );}
  }
  const prev = seen.get(name);
  if (prev !== undefined) {
    problems.push({
      path: rawName !== undefined ? [...optsPath, "name"] : optsPath,
      expected: "a unique stage name (give stages of the same kind a `name:`)",
      found: `\`${name}\`, already the name of stages[${prev}]`,
      at: rawName !== undefined ? "value" : "key",
    });
  } else {
    seen.set(name, i);
  }
  return name;
}

/** Plugin references: fill single candidates (in `opts`), then check names against the manifest. */
function fillReferences(
  def: StageSchema,
  opts: Record<string, unknown>,
  names: Record<PluginSection, string[]>,
  optsPath: PropertyKey[],
  problems: Problem[],
): void {
  for (const [key, ref] of Object.entries(def.references ?? {})) {
    const candidates = names[ref.section];
    if (opts[key] === undefined && ref.fill && candidates.length === 1) opts[key] = candidates[0];
    const v = opts[key];
    const vals: [unknown, PropertyKey[]][] = Array.isArray(v)
      ? v.map((x, j) => [x, [...optsPath, key, j]])
      : [[v, [...optsPath, key]]];
    for (const [x, p] of vals) {
      if (typeof x !== "string" || x === "" || candidates.includes(x)) continue;
      problems.push({
        path: p,
        expected: referenceText(ref.section, candidates),
        found: `${JSON.stringify(x)}${didYouMean(x, candidates)}`,
        at: "value",
      });
    }
  }
}

/** The options through the kind's schema (defaults applied); undefined when they have problems. */
function parseStageOptions(
  def: StageSchema,
  opts: Record<string, unknown>,
  names: Record<PluginSection, string[]>,
  optsPath: PropertyKey[],
  problems: Problem[],
): Record<string, unknown> | undefined {
  const parsed = def.options.safeParse(opts);
  if (parsed.success) return parsed.data as Record<string, unknown>;
  for (const p of fromZodIssues(parsed.error.issues, opts, def.options, optsPath, ["name"])) {
    // A missing plugin reference: say which names would do.
    const key = p.path.length === optsPath.length + 1 ? p.path[optsPath.length] : undefined;
    const ref = typeof key === "string" ? def.references?.[key] : undefined;
    if (p.at === "parent" && ref) {
      p.expected = `${referenceText(ref.section, names[ref.section])} (\`${
        String(key)
      }\` is required)`;
    }
    problems.push(p);
  }
  return undefined;
}

function referenceText(section: PluginSection, candidates: string[]): string {
  return candidates.length
    ? `the name of a ${SINGULAR[section]} in plugins.${section} (${listOf(candidates)})`
    : `the name of a ${SINGULAR[section]}, but plugins.${section} declares none`;
}
