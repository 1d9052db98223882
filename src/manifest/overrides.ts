/**
 * `--set key.path=value` overrides, applied to the parsed YAML before validation, so an override
 * is validated (and defaulted, and hashed) exactly like a value written in the file: overrides are
 * part of the run's identity.
 *
 * Key paths are dot-separated; list items are addressed by index (`plugins.tools.0.with.timeout`
 * or `plugins.tools[0]…`). Under `stages`, a stage may also be addressed by its name (default: its
 * kind), and the kind key may be left out: `stages.rl.rollout.entropy_weight=0.4` and
 * `stages[1].rl.rollout.entropy_weight=0.4` are the same override. The value is parsed as YAML
 * (`0.4`, `true`, `arpo`, `[a, b]`, `{x: 1}`).
 */
import { parseDocument } from "yaml";
import { describeValue, type Problem } from "./problems.ts";
import { didYouMean, listOf } from "./suggest.ts";
import { formatKeyPath } from "./issues.ts";

export interface AppliedOverride {
  /** As given on the command line. */
  text: string;
  /** The YAML key path it set (stage names resolved to indices, kind key inserted). */
  path: PropertyKey[];
}

type Seg = { key: string; index?: number };

function splitPath(s: string): Seg[] | undefined {
  const segs: Seg[] = [];
  for (const part of s.split(".")) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!m) return undefined;
    if (m[1] !== "") segs.push({ key: m[1], index: /^\d+$/.test(m[1]) ? Number(m[1]) : undefined });
    for (const ix of m[2].matchAll(/\[(\d+)\]/g)) segs.push({ key: ix[1], index: Number(ix[1]) });
    if (m[1] === "" && m[2] === "") return undefined;
  }
  return segs.length ? segs : undefined;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** The kind key of a stage item (`{rl: {...}}` → rl; `"eval"` → eval), if it has one. */
function stageKindOf(item: unknown): string | undefined {
  if (typeof item === "string") return item;
  if (isMap(item) && Object.keys(item).length === 1) return Object.keys(item)[0];
  return undefined;
}

function stageNameOf(item: unknown): string | undefined {
  const kind = stageKindOf(item);
  if (kind === undefined) return undefined;
  const opts = isMap(item) ? item[kind] : undefined;
  return isMap(opts) && typeof opts.name === "string" ? opts.name : kind;
}

/**
 * Apply overrides to a copy of `input`. Problems (malformed overrides, paths that cannot be set)
 * are returned, not thrown, so they are reported with the manifest's other problems.
 */
export function applyOverrides(
  input: unknown,
  overrides: readonly string[],
): { value: unknown; applied: AppliedOverride[]; problems: Problem[] } {
  const root = structuredClone(input ?? {}) as unknown;
  const applied: AppliedOverride[] = [];
  const problems: Problem[] = [];
  for (const text of overrides) {
    const fail = (path: PropertyKey[], expected: string, found: string) =>
      problems.push({ path, expected, found, at: "value", override: text });
    const eq = text.indexOf("=");
    const segs = eq > 0 ? splitPath(text.slice(0, eq).trim()) : undefined;
    if (!segs) {
      fail([], "`--set key.path=value`", JSON.stringify(text));
      continue;
    }
    const valueDoc = parseDocument(text.slice(eq + 1));
    if (valueDoc.errors.length) {
      fail([], "a YAML value after `=`", valueDoc.errors[0].message.split("\n")[0]);
      continue;
    }
    let value: unknown;
    try {
      // An override is one value: an alias (`*a`) has no anchor to refer to, and is refused
      // here rather than thrown from the YAML library.
      value = valueDoc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      fail([], "a YAML value after `=`", (e as Error).message.split("\n")[0]);
      continue;
    }
    if (!isMap(root)) {
      fail([], "a manifest that is a map", describeValue(root));
      continue;
    }
    const path: PropertyKey[] = [];
    let cur: unknown = root;
    let ok = true;
    for (let i = 0; i < segs.length && ok; i++) {
      const seg = segs[i];
      const last = i === segs.length - 1;
      let key: string | number;
      if (Array.isArray(cur)) {
        if (seg.index !== undefined) {
          if (seg.index >= cur.length) {
            fail(path, `an index below ${cur.length} in ${formatKeyPath(path)}`, String(seg.index));
            ok = false;
            break;
          }
          key = seg.index;
        } else if (path.length === 1 && path[0] === "stages") {
          const names = cur.map(stageNameOf);
          key = names.indexOf(seg.key);
          if (key < 0) {
            const known = [...new Set(names.filter((n): n is string => n !== undefined))];
            fail(
              path,
              `a stage name or index (${known.length ? listOf(known) : "there are no stages"})`,
              `\`${seg.key}\`${didYouMean(seg.key, known)}`,
            );
            ok = false;
            break;
          }
        } else {
          fail(path, `a list index under ${formatKeyPath(path)}`, `\`${seg.key}\``);
          ok = false;
          break;
        }
      } else if (isMap(cur)) {
        key = seg.key;
      } else {
        fail(path, `a map or list at ${formatKeyPath(path)}`, describeValue(cur));
        ok = false;
        break;
      }
      const container = cur as Record<string | number, unknown>;
      path.push(key);
      if (last) {
        container[key] = value;
        break;
      }
      // A stage item: step into its options unless the next segment names the kind itself.
      if (path.length === 2 && path[0] === "stages") {
        const kind = stageKindOf(container[key]);
        if (kind !== undefined && segs[i + 1].key !== kind) {
          if (typeof container[key] === "string") container[key] = { [kind]: {} };
          const item = container[key] as Record<string, unknown>;
          if (item[kind] === null || item[kind] === undefined) item[kind] = {};
          path.push(kind);
          cur = item[kind];
          continue;
        }
        if (kind !== undefined && typeof container[key] === "string") {
          container[key] = { [kind]: {} };
        }
      }
      if (container[key] === undefined || container[key] === null) container[key] = {};
      cur = container[key];
    }
    if (ok) applied.push({ text, path });
  }
  return { value: root, applied, problems };
}
