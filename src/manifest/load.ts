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
import { textProblems } from "./text_check.ts";
import { validateManifest } from "./validate.ts";

/** The largest manifest accepted (bytes): far above any real one, far below an OOM. */
export const MAX_MANIFEST_BYTES = 1 << 20;

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
  if (text.length > MAX_MANIFEST_BYTES) throw tooLarge(file, `${text.length} characters`);
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
  // Text and nesting first: a bad string is reported as such, not as what a schema makes of it.
  const text0 = textProblems(value);
  if (text0.length) throw new ManifestError(text0.map((p) => locate(src, file, applied, p)));
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
  const text = decodeManifest(await readManifestBytes(path, abs), path);
  return parseManifest(text, path, { ...opts, baseDir: dirname(abs) });
}

/**
 * The manifest's bytes: a regular file (a FIFO or device would block or never end) of at most
 * MAX_MANIFEST_BYTES, read no further than that.
 */
async function readManifestBytes(path: string, abs: string): Promise<Uint8Array> {
  let f: Deno.FsFile | undefined;
  try {
    const st = await Deno.stat(abs);
    if (st.isDirectory) {
      throw new ArpoError(`manifest ${path} is a directory, expected a YAML file`);
    }
    if (!st.isFile) {
      throw new ArpoError(
        `manifest ${path} is not a regular file (a FIFO, socket or device: ${abs}); ` +
          "expected a YAML file",
      );
    }
    if (st.size > MAX_MANIFEST_BYTES) throw tooLarge(path, `${st.size} bytes`);
    f = await Deno.open(abs, { read: true });
    const buf = new Uint8Array(MAX_MANIFEST_BYTES + 1);
    let n = 0;
    for (;;) {
      const r = await f.read(buf.subarray(n));
      if (r === null) break;
      n += r;
      if (n > MAX_MANIFEST_BYTES) throw tooLarge(path, "more");
    }
    return buf.slice(0, n);
  } catch (e) {
    if (e instanceof ArpoError) throw e;
    if (e instanceof Deno.errors.NotFound) {
      throw new ArpoError(`manifest ${path} not found (looked for ${abs})`);
    }
    throw new ArpoError(`cannot read manifest ${path}: ${(e as Error).message}`, { cause: e });
  } finally {
    f?.close();
  }
}

function tooLarge(path: string, found: string): ArpoError {
  return new ArpoError(
    `manifest ${path} is larger than a manifest may be (${MAX_MANIFEST_BYTES} bytes; found ` +
      `${found}); data belongs in files a plugin reads`,
  );
}

/** UTF-8 text, or a located error at the first byte that is not UTF-8. */
function decodeManifest(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    // Find the first invalid sequence: the longest prefix that decodes.
    let lo = 0, hi = bytes.length;
    const ok = (n: number) => {
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, n), { stream: true });
        return true;
      } catch {
        return false;
      }
    };
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (ok(mid)) lo = mid;
      else hi = mid - 1;
    }
    const before = new TextDecoder().decode(bytes.subarray(0, lo));
    const lines = before.split("\n");
    throw new ManifestError([{
      file,
      line: lines.length,
      col: [...lines.at(-1)!].length + 1,
      keyPath: "(encoding)",
      expected: "UTF-8 text",
      found: `the byte 0x${bytes[lo].toString(16).padStart(2, "0")}, which is not UTF-8`,
    }]);
  }
}

/** sha256 of the resolved manifest's canonical JSON: the manifest's share of a run id. */
export function manifestDigest(manifest: ResolvedManifest): string {
  return digestJson(manifest);
}
