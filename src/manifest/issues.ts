/**
 * Manifest problems. Validation collects every problem it finds and throws them together in one
 * ManifestError, so a user fixes a manifest in one pass instead of one error per run.
 */
import { ArpoError } from "../errors.ts";

/** One problem in a manifest, located in the file. */
export interface ManifestIssue {
  /** The manifest file as the user named it. */
  file: string;
  /** 1-based line and column of the offending node (for a missing key: of its parent map). */
  line: number;
  col: number;
  /** Where in the manifest, e.g. `stages[1].rl.rollout.entropy_weight`; `(top level)` for the root. */
  keyPath: string;
  /** What was expected, as a phrase ("a number ≥ 0", "one of `arpo`, `grpo`"). */
  expected: string;
  /** What was found, as a phrase ("string \"abc\"", "nothing"), with a "did you mean" where one fits. */
  found: string;
  /** Set when the problem comes from a `--set` override: the override as given. */
  override?: string;
}

/** `file:line:col: keyPath: expected …, found …` (with `(--set …)` for overrides). */
export function formatIssue(i: ManifestIssue): string {
  const where = `${i.file}:${i.line}:${i.col}`;
  const src = i.override !== undefined ? ` (--set ${clip(i.override)})` : "";
  return `${where}${src}: ${clip(i.keyPath)}: expected ${i.expected}, found ${clip(i.found)}`;
}

/** Long keys and values (a garbage file's) are cut: a problem stays one line. */
function clip(s: string, max = 200): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** How many problems an error message lists (all of them stay in `issues`). */
export const MAX_REPORTED = 50;

/** Every problem found in one manifest. */
export class ManifestError extends ArpoError {
  readonly issues: ManifestIssue[];
  constructor(issues: ManifestIssue[]) {
    const sorted = [...issues].sort((a, b) =>
      a.file === b.file ? a.line - b.line || a.col - b.col : 0
    );
    const n = sorted.length;
    const head = `invalid manifest ${sorted[0]?.file ?? ""} (${n} problem${n === 1 ? "" : "s"}):`;
    // A garbage file has a problem per line: the first ones say what is wrong.
    const shown = sorted.slice(0, MAX_REPORTED).map(formatIssue);
    if (n > MAX_REPORTED) shown.push(`… and ${n - MAX_REPORTED} more (fix these first)`);
    super([head, ...shown].join("\n"));
    this.name = "ManifestError";
    this.issues = sorted;
  }
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `["stages", 1, "rl", "lr"]` → `stages[1].rl.lr`; the empty path is `(top level)`. */
export function formatKeyPath(path: readonly PropertyKey[]): string {
  let s = "";
  for (const p of path) {
    if (typeof p === "number") s += `[${p}]`;
    else if (typeof p === "string" && IDENT.test(p)) s += s ? `.${p}` : p;
    else s += `[${JSON.stringify(String(p))}]`;
  }
  return s || "(top level)";
}
