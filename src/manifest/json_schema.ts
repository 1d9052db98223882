/**
 * The JSON Schema of manifests, for editors (`deno task arpo schema -o manifest.schema.json`, then
 * `# yaml-language-server: $schema=manifest.schema.json` at the top of a manifest). Generated
 * from the same zod schemas that validate, so the two cannot drift. It describes the input side:
 * keys with defaults are optional. Cross-references (plugin and stage names) are checked by the
 * loader only.
 */
import { z } from "zod";
import { NAME_RE } from "./plugins.ts";
import type { StageSchema } from "./stage_schema.ts";
import { topSchema } from "./validate.ts";

type JsonObject = Record<string, unknown>;

function toJson(schema: z.ZodType): JsonObject {
  const js = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as JsonObject;
  delete js.$schema;
  return js;
}

/** The manifest JSON Schema (draft 2020-12) for manifests whose stages are of `stages`' kinds. */
export function manifestJsonSchema(stages: readonly StageSchema[]): object {
  const root = toJson(topSchema);
  const stageItems = stages.map((def) => {
    const kind = def.kind;
    const opts = toJson(def.options);
    if (Array.isArray(opts.required)) {
      // References the loader fills in (the manifest's only benchmark, say) are not required.
      const filled = Object.entries(def.references ?? {}).filter(([, r]) => r.fill).map(([k]) => k);
      opts.required = opts.required.filter((k) => !filled.includes(k));
      if (!(opts.required as string[]).length) delete opts.required;
    }
    if (opts.type === "object") {
      opts.properties = {
        name: {
          type: "string",
          pattern: NAME_RE.source,
          description: "the stage's name, unique in the manifest (default: the kind)",
        },
        ...(opts.properties as JsonObject | undefined),
      };
    }
    return {
      type: "object",
      properties: { [kind]: { anyOf: [opts, { type: "null" }] } },
      required: [kind],
      additionalProperties: false,
    };
  });
  const props = root.properties as JsonObject;
  props.stages = {
    type: "array",
    description: "stages, run in order; each a single-key map `- <kind>: {options}` or a bare kind",
    items: { anyOf: [...stageItems, { type: "string", enum: stages.map((s) => s.kind) }] },
  };
  root.patternProperties = { "^x-": { description: "free slot for YAML anchors; ignored" } };
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: "https://arpo-lab.local/manifest.schema.json",
    title: "arpo-lab manifest",
    ...root,
  };
}
