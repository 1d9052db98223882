/**
 * Loading: read → parse YAML with positions → apply `--set` overrides → validate and apply
 * defaults → locate every problem in the file. Throws one ManifestError with all problems.
 */
import { dirname, resolve } from "node:path";
import { ArpoError } from "../errors.ts";
import { digestJson } from "../store/hash.ts";
import { formatKeyPath, ManifestError, type ManifestIssue } from "./issues.ts";
import { type AppliedOverride, applyOverrides } from "./overrides.ts";
import type { Problem } from "./problems.ts";
import { YamlSource } from "./source.ts";
import type { LoadedManifest, ResolvedManifest } from "./types.ts";
import type { StageSchema } from "./stage_schema.ts";
import { validateManifest } from "./validate.ts";

export interface ParseOptions {
  /**
   * The stage kinds the manifest may use (src/run/builtin.ts lists the built-in ones, plus
   * any a caller adds); each stage's options are validated by its kind's schema.
   */
  stages: readonly StageSchema[];
  /** `key.path=value` overrides (the CLI's `--set`), applied in order before validation. */
  overrides?: string[];
  /** Directory relative paths resolve against; default: the directory of `file`. */
  baseDir?: string;
}

function isPrefix(a: readonly PropertyKey[], b: readonly PropertyKey[]): boolean {
  return a.length <= b.length && a.every((x, i) => String(x) === String(b[i]));
}

function locate(
  src: YamlSource,
  file: string,
  applied: AppliedOverride[],
  p: Problem,
): ManifestIssue {
  const pos = (p.at === "key" ? src.keyPositionOf(p.path) : src.positionOf(p.path)) ??
    { line: 1, col: 1 };
  // A problem at (or under, or above) a path an override set comes from that override; the last
  // matching one wins, as it is the one whose value stands.
  let override = p.override;
  if (override === undefined && p.path.length) {
    for (const o of applied) {
      if (isPrefix(o.path, p.path) || isPrefix(p.path, o.path)) override = o.text;
    }
  }
  return {
    file,
    line: pos.line,
    col: pos.col,
    keyPath: formatKeyPath(p.path),
    expected: p.expected,
    found: p.found,
    ...(override !== undefined ? { override } : {}),
  };
}

/**
 * Parse and validate manifest text. `file` names the manifest in messages (and, resolved, is
 * LoadedManifest.path). Throws ManifestError listing every problem.
 */
export function parseManifest(text: string, file: string, opts: ParseOptions): LoadedManifest {
  const src = new YamlSource(text);
  if (src.syntaxErrors.length) {
    throw new ManifestError(src.syntaxErrors.map((e) => ({
      file,
      line: e.line,
      col: e.col,
      keyPath: "(YAML syntax)",
      expected: "valid YAML",
      found: e.message,
    })));
  }
  const { value, applied, problems } = applyOverrides(src.value, opts.overrides ?? []);
  const v = validateManifest(
    src.value === null || src.value === undefined ? src.value : value,
    opts.stages,
  );
  problems.push(...v.problems);
  if (problems.length || !v.manifest) {
    throw new ManifestError(problems.map((p) => locate(src, file, applied, p)));
  }
  const manifest = v.manifest;
  const path = resolve(file);
  return {
    path,
    baseDir: opts.baseDir ?? dirname(path),
    text,
    manifest,
    positionOf(keyPath) {
      let p: PropertyKey[] = keyPath;
      // Accept the resolved form stages[i].options.… for stages[i].<kind>.…
      if (p[0] === "stages" && typeof p[1] === "number" && p[2] === "options") {
        const kind = manifest.stages[p[1]]?.kind;
        if (kind !== undefined) p = ["stages", p[1], kind, ...p.slice(3)];
      }
      return src.positionOf(p);
    },
  };
}

/** Read, parse and validate a manifest file. */
export async function loadManifest(
  path: string,
  opts: Omit<ParseOptions, "baseDir">,
): Promise<LoadedManifest> {
  const abs = resolve(path);
  let text: string;
  try {
    text = await Deno.readTextFile(abs);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ArpoError(`manifest ${path} not found (looked for ${abs})`);
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw new ArpoError(`manifest ${path} is a directory, expected a YAML file`);
    }
    throw new ArpoError(`cannot read manifest ${path}: ${(e as Error).message}`, { cause: e });
  }
  return parseManifest(text, path, { ...opts, baseDir: dirname(abs) });
}

/** sha256 of the resolved manifest's canonical JSON: the manifest's share of a run id. */
export function manifestDigest(manifest: ResolvedManifest): string {
  return digestJson(manifest);
}
