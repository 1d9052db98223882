/**
 * A stage kind's options as rows (dotted path, type, default, meaning), read from the JSON Schema
 * of its zod schema: what docs/STAGES.md lists (scripts/stages_doc.ts) and what the report needs
 * to fold settings that are at their defaults away.
 */
import { z } from "zod";
import type { StageSchema } from "./stage_schema.ts";

/** One option of a stage kind; nested maps (`rollout`, `sampling`) also get rows of their own. */
export interface OptionRow {
  /** Dotted path, e.g. `rollout.algorithm`. */
  path: string;
  /** The type as a reader writes it: `integer ≥ 1`, `` `constant` \| `cosine` ``, `map`. */
  type: string;
  /** The default; absent when the option has none (required, or optional without one). */
  default?: unknown;
  /** The schema's `.describe()` text ("" when it has none). */
  meaning: string;
  /** A map whose own options follow as rows. */
  nested: boolean;
}

interface JsonSchema {
  type?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  minimum?: number;
  exclusiveMinimum?: number;
  maximum?: number;
}

const BIG = 2 ** 53 - 1;

function typeOf(s: JsonSchema): string {
  if (s.anyOf) return s.anyOf.map(typeOf).join(" or ");
  if (s.const !== undefined) return `\`${JSON.stringify(s.const).replace(/^"|"$/g, "")}\``;
  if (s.enum) return s.enum.map((e) => `\`${e}\``).join(" | ");
  if (s.type === "array") return `list of ${typeOf(s.items ?? {})}`;
  const bounds: string[] = [];
  if (s.minimum !== undefined) bounds.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) bounds.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined && s.maximum !== BIG) bounds.push(`≤ ${s.maximum}`);
  return `${s.type ?? "any"}${bounds.length ? ` ${bounds.join(", ")}` : ""}`;
}

function rows(s: JsonSchema, prefix: string, out: OptionRow[]): void {
  for (const [name, p] of Object.entries(s.properties ?? {})) {
    const nested = p.type === "object" && p.properties !== undefined;
    const row: OptionRow = {
      path: prefix + name,
      type: nested ? "map" : typeOf(p),
      meaning: p.description ?? "",
      nested,
    };
    if (p.default !== undefined) row.default = p.default;
    out.push(row);
    if (nested) rows(p, `${prefix}${name}.`, out);
  }
}

/** Every option of the kind, in schema order, nested maps followed by their options. */
export function optionRows(kind: StageSchema): OptionRow[] {
  const out: OptionRow[] = [];
  rows(
    z.toJSONSchema(kind.options, { io: "input", unrepresentable: "any" }) as JsonSchema,
    "",
    out,
  );
  return out;
}

/** Per kind, the default of every leaf option that has one (dotted path → value). */
export function optionDefaults(
  kinds: readonly StageSchema[],
): Record<string, Record<string, unknown>> {
  return Object.fromEntries(kinds.map((k) => [
    k.kind,
    Object.fromEntries(
      optionRows(k).filter((r) => !r.nested && r.default !== undefined).map((r) => [
        r.path,
        r.default,
      ]),
    ),
  ]));
}
