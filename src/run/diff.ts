/**
 * What differs between two runs' inputs (manifest keys, plugin digests, data, model, runtime),
 * their outputs, and the numerics that computed them (fingerprints: the run's, and a stage's
 * where it differs otherwise than the run's does).
 */
import type { Json } from "../store/canonical.ts";
import type { RunRecord } from "../store/records.ts";

export interface Difference {
  section: "manifest" | "plugins" | "data" | "model" | "runtime" | "numerics" | "outputs";
  path: string;
  a: Json | undefined;
  b: Json | undefined;
}

function flatten(v: Json | undefined, path: string, out: Map<string, Json>) {
  if (v !== null && typeof v === "object") {
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
    if (!entries.length) out.set(path, v);
    for (const [k, x] of entries) {
      flatten(x, Array.isArray(v) ? `${path}[${k}]` : path ? `${path}.${k}` : k, out);
    }
  } else if (v !== undefined) out.set(path, v);
}

function diffMaps(
  section: Difference["section"],
  a: Json | undefined,
  b: Json | undefined,
  out: Difference[],
) {
  const fa = new Map<string, Json>(), fb = new Map<string, Json>();
  flatten(a, "", fa);
  flatten(b, "", fb);
  const keys = [...new Set([...fa.keys(), ...fb.keys()])];
  for (const k of keys) {
    const x = fa.get(k), y = fb.get(k);
    if (JSON.stringify(x) !== JSON.stringify(y)) out.push({ section, path: k, a: x, b: y });
  }
}

export function diffRuns(a: RunRecord, b: RunRecord): Difference[] {
  const out: Difference[] = [];
  diffMaps("manifest", a.identity.manifest, b.identity.manifest, out);
  diffMaps("plugins", a.identity.plugins, b.identity.plugins, out);
  diffMaps("data", a.identity.data, b.identity.data, out);
  if (a.identity.model !== b.identity.model) {
    out.push({ section: "model", path: "model", a: a.identity.model, b: b.identity.model });
  }
  diffMaps(
    "runtime",
    a.identity.runtime as unknown as Json,
    b.identity.runtime as unknown as Json,
    out,
  );
  diffNumerics(a, b, out);
  const outs = (r: RunRecord) =>
    Object.fromEntries(Object.entries(r.stages).map(([k, s]) => [k, s.outputs])) as Json;
  diffMaps("outputs", outs(a), outs(b), out);
  return out;
}

/** Fingerprint fields that differ: the runs', then a stage's where the runs' do not say it. */
function diffNumerics(a: RunRecord, b: RunRecord, out: Difference[]): void {
  const run: Difference[] = [];
  diffMaps("numerics", a.numerics, b.numerics, run);
  out.push(...run);
  const said = new Set(run.map((d) => d.path));
  for (const name of Object.keys(a.stages)) {
    if (!b.stages[name]) continue;
    const st: Difference[] = [];
    diffMaps("numerics", a.stages[name].numerics, b.stages[name].numerics, st);
    for (const d of st) {
      if (!said.has(d.path)) out.push({ ...d, path: `stages.${name}.${d.path}` });
    }
  }
}
