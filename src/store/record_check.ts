/**
 * The shape of a run record from outside (an imported archive): every field a reader or a rerun
 * uses is checked, so a forged record cannot point a rerun elsewhere (`baseDir`), write outside
 * the store (plugin or model file paths with `..`) or carry metrics that are not bound to it.
 */
import { isAbsolute, normalize } from "node:path";
import { DIGEST_RE } from "./hash.ts";
import { stageMetricsProblem } from "./metrics.ts";
import type { RunRecord, StageRecord } from "./records.ts";

const STATUSES = ["running", "complete", "interrupted", "failed"];

const isMap = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** A "/"-separated relative path that stays inside its directory ("" allowed when `empty`). */
function safeRelative(p: unknown, empty = false): boolean {
  if (typeof p !== "string") return false;
  if (p === "") return empty;
  if (CONTROL.test(p) || p.includes("\\") || p.startsWith("/")) return false;
  return p.split("/").every((seg) => seg !== "" && seg !== "." && seg !== "..");
}

function digestMap(v: unknown, what: string, pathOk: (p: string) => boolean): string | undefined {
  if (!isMap(v)) return `${what} is not a map`;
  for (const [p, d] of Object.entries(v)) {
    if (!pathOk(p)) return `${what} names the path ${JSON.stringify(p)}, which leaves its folder`;
    if (typeof d !== "string" || !DIGEST_RE.test(d)) {
      return `${what} '${p}' is ${JSON.stringify(d)}, not a sha256 digest`;
    }
  }
  return undefined;
}

function stageProblem(name: string, s: unknown): string | undefined {
  const at = `stages.${name}`;
  if (!isMap(s)) return `${at} is not a map`;
  if (typeof s.kind !== "string" || s.kind === "") return `${at}.kind is not a stage kind`;
  if (typeof s.key !== "string" || !DIGEST_RE.test(s.key)) return `${at}.key is not a stage key`;
  const o = digestMap(s.outputs, `${at}.outputs`, (p) => p !== "" && !CONTROL.test(p));
  if (o) return o;
  if (!isMap(s.metrics)) return `${at}.metrics is not a map`;
  if (typeof s.reused !== "boolean") return `${at}.reused is not a boolean`;
  if (s.metricsDigest !== undefined) {
    if (typeof s.metricsDigest !== "string" || !DIGEST_RE.test(s.metricsDigest)) {
      return `${at}.metricsDigest is not a sha256 digest`;
    }
    const m = stageMetricsProblem(s as unknown as StageRecord);
    if (m) return `${at}: ${m}`;
  }
  return undefined;
}

/**
 * The first malformed field of a record, as `field: what is wrong`, or undefined. The identity
 * is checked by hashing it to the run id, elsewhere; this covers the rest.
 */
export function recordFieldProblem(rec: RunRecord): string | undefined {
  const r = rec as unknown as Record<string, unknown>;
  if (typeof r.name !== "string") return "name is not a string";
  if (!STATUSES.includes(r.status as string)) {
    return `status is ${JSON.stringify(r.status)}, not one of ${STATUSES.join(", ")}`;
  }
  if (
    typeof r.baseDir !== "string" || !isAbsolute(r.baseDir) || CONTROL.test(r.baseDir) ||
    normalize(r.baseDir) !== r.baseDir.replace(/(.)\/+$/, "$1")
  ) {
    return `baseDir is ${JSON.stringify(r.baseDir)}, not a normalized absolute path`;
  }
  if (typeof r.manifestPath !== "string" || CONTROL.test(r.manifestPath)) {
    return "manifestPath is not a path";
  }
  if (!isMap(r.sources)) return "sources is not a map";
  for (const [name, src] of Object.entries(r.sources)) {
    if (!isMap(src)) return `sources.${name} is not a map`;
    if (src.kind === "npm") {
      if (typeof src.specifier !== "string") return `sources.${name}.specifier is not a string`;
      continue;
    }
    if (src.kind !== "files") return `sources.${name}.kind is ${JSON.stringify(src.kind)}`;
    const f = digestMap(src.files, `sources.${name}.files`, (p) => safeRelative(p));
    if (f) return f;
    if (!safeRelative(src.entry) || !(src.entry as string in (src.files as object))) {
      return `sources.${name}.entry is ${JSON.stringify(src.entry)}, not one of its files`;
    }
  }
  if (r.modelFiles !== null) {
    const m = digestMap(r.modelFiles, "modelFiles", (p) => safeRelative(p, true));
    if (m) return m;
  }
  if (!isMap(r.stages)) return "stages is not a map";
  for (const [name, s] of Object.entries(r.stages)) {
    const p = stageProblem(name, s);
    if (p) return p;
  }
  if (!isMap(r.timings) || Object.values(r.timings).some((t) => typeof t !== "number")) {
    return "timings is not a map of numbers";
  }
  if (!isMap(r.host)) return "host is not a map";
  if (r.error !== undefined && typeof r.error !== "string") return "error is not a string";
  return undefined;
}
