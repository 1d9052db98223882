/**
 * The manifest room: YAML loading with source positions, `--set` overrides, validation against
 * zod schemas, defaults, and the JSON Schema export for editors.
 *
 * A manifest file may start with a modeline so YAML editors complete and check it:
 *
 * ```yaml
 * # yaml-language-server: $schema=../manifest.schema.json
 * name: quickstart
 * ```
 *
 * where the schema file is written by `deno task arpo schema -o manifest.schema.json`.
 *
 * @module
 */
export type {
  Device,
  LoadedManifest,
  PluginRef,
  PolicyConfig,
  ResolvedManifest,
  StageConfig,
  Tracker,
} from "./types.ts";
export type { PolicyInit } from "./policy.ts";
export { resolveModelDir } from "./policy.ts";
export { formatKeyPath, ManifestError, type ManifestIssue } from "./issues.ts";
export type { PluginReference, PluginSection, StageSchema } from "./stage_schema.ts";
export { loadManifest, manifestDigest, parseManifest, type ParseOptions } from "./load.ts";
export { manifestJsonSchema } from "./json_schema.ts";
export { pluginName } from "./plugins.ts";
