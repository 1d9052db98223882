/**
 * LaTeX-aware equivalence of two final answers (MATH / AIME style). Both sides are normalized
 * (delimiters, `\left`/`\right`, spacing commands, `\dfrac`/`\tfrac`, degrees, trailing units in
 * `\text{…}`, thousands separators, `$`, `%`), then compared as: equal strings; numbers (with a
 * relative tolerance; fractions, roots, π evaluate); expressions with variables (evaluated at fixed
 * probe points); tuples and intervals element by element (bracket kinds must agree); sets and bare
 * comma lists in any order; matrices cell by cell; a percentage also as its fraction (50% = 0.5).
 *
 * Checked against a sympy-based grader (Qwen2.5-Math style) and math-verify's rules on a corpus
 * (tests/eval_math_equal_diff_test.ts, which lists where and why it differs from one of them:
 * a tighter numeric tolerance than the sympy grader's 1e-4, bracket kinds and set order that
 * matter, case that matters, percentages read both ways).
 */
import { lastBoxed, matchBrace } from "./boxed.ts";

/** Tolerances of mathEqual's numeric comparison. */
export interface MathEqualOptions {
  /** Relative tolerance for numeric comparison (default 1e-6). */
  relTol?: number;
  /** Absolute tolerance, for values near zero (default 1e-9). */
  absTol?: number;
}

const MAX_STRUCTURED = 2000;

/**
 * True when the two answers denote the same value.
 *
 * @param a One answer (LaTeX or plain; a `\boxed{…}` in it is unwrapped).
 * @param b The other answer.
 * @param opts Numeric tolerances.
 * @returns Whether the answers are equivalent.
 *
 * @example
 * ```ts
 * import { mathEqual } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.ok(mathEqual("\\frac{1}{2}", "0.5"));
 * assert.ok(mathEqual("\\boxed{(1, 2)}", "(1,2)"));
 * assert.ok(mathEqual("\\{1,2\\}", "\\{2,1\\}")); // sets in any order
 * assert.ok(mathEqual("2x+1", "1+2x"));
 * assert.ok(!mathEqual("0.5", "0.5001"));
 * assert.ok(mathEqual("0.5", "0.5001", { relTol: 1e-3 }));
 * ```
 */
export function mathEqual(a: string, b: string, opts: MathEqualOptions = {}): boolean {
  const tol = { relTol: opts.relTol ?? 1e-6, absTol: opts.absTol ?? 1e-9 };
  const na = normalizeMath(a), nb = normalizeMath(b);
  if (na === nb) return true;
  // structured comparison is quadratic in list length; a runaway answer is compared as text only
  if (na.length > MAX_STRUCTURED || nb.length > MAX_STRUCTURED) return false;
  for (const x of interpretations(na, hasPercent(a))) {
    for (const y of interpretations(nb, hasPercent(b))) {
      if (equalNormalized(x, y, tol, 0)) return true;
    }
  }
  return false;
}

// ------------------------------------------------------------------------------------------
// normalization

/** Strip a wrapping command `\name{…}` everywhere, keeping its content. */
function unwrap(s: string, name: string): string {
  const re = new RegExp(`\\\\${name}\\s*\\{`, "g");
  for (let guard = 0; guard < 100; guard++) {
    re.lastIndex = 0;
    const m = re.exec(s);
    if (!m) break;
    const open = m.index + m[0].length - 1;
    const close = matchBrace(s, open);
    if (close < 0) break;
    s = s.slice(0, m.index) + s.slice(open + 1, close) + s.slice(close + 1);
  }
  return s;
}

/**
 * Canonical LaTeX-ish string for an answer; spaces removed.
 *
 * @param input An answer (LaTeX or plain; the last `\boxed{…}` in it is taken).
 * @returns The normalized form that mathEqual compares.
 *
 * @example
 * ```ts
 * import { normalizeMath } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(normalizeMath("$\\dfrac{1}{2}$"), "\\frac{1}{2}");
 * assert.equal(normalizeMath("\\left( 1, 2 \\right)"), "(1,2)");
 * assert.equal(normalizeMath("The answer is \\boxed{10\\%}"), "10");
 * ```
 */
export function normalizeMath(input: string): string {
  let s = input.trim();
  const boxed = lastBoxed(s);
  if (boxed !== null) s = boxed;
  s = s.replace(/\u2212/g, "-").replace(/π/g, "\\pi").replace(/∞/g, "\\infty");
  // display / inline math delimiters
  s = s.replace(/^\$+|\$+$/g, "").replace(/^\\\(|\\\)$/g, "").replace(/^\\\[|\\\]$/g, "");
  s = s.replace(/\\displaystyle/g, "");
  // a trailing full stop is punctuation, not part of the answer
  s = s.replace(/\s*\.\s*$/, "");
  // `\text{ cm}` and friends after a number are units; drop them before unwrapping \text
  s = s.replace(
    /^(.*?[\d}])\s*\\(?:text|mbox|mathrm)\{\s*[a-zA-Z][a-zA-Z.\s]*(?:\^\d|\^\{\d\})?\}(?:\^\d|\^\{\d\})?$/,
    "$1",
  );
  s = s.replace(/\\(?:dfrac|tfrac|cfrac)/g, "\\frac");
  s = s.replace(
    /\\left(?![a-zA-Z])|\\right(?![a-zA-Z])|\\big[lr]?(?![a-zA-Z])|\\Big[lr]?(?![a-zA-Z])/g,
    "",
  );
  // spacing commands (but not the `\\` row separator followed by a space)
  s = s.replace(/(?<!\\)\\[!,;: ]|\\q?quad(?![a-zA-Z])/g, " ");
  s = s.replace(/~/g, " ");
  for (
    const w of ["text", "textbf", "mbox", "mathrm", "mathbf", "textit", "mathit", "operatorname"]
  ) {
    s = unwrap(s, w);
  }
  // degrees, percent, dollars
  s = s.replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree/g, "");
  s = s.replace(/\\%|%/g, "").replace(/\\\$|\$/g, "");
  s = s.replace(/\\(?:tfrac|dfrac)/g, "\\frac");
  s = s.replace(/\\neq/g, "\\ne").replace(/\\leq/g, "\\le").replace(/\\geq/g, "\\ge");
  s = s.replace(/\\cdot|\\times/g, "*");
  s = s.replace(/\s+/g, "");
  s = s.replace(/\{,\}/g, ",");
  // a trailing full stop is punctuation, not part of the answer
  s = s.replace(/\.$/g, "");
  // `x=5`, `k = 3`: a lone variable on the left of the only `=` is a label
  const eq = s.match(/^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?=([^=]+)$/);
  if (eq && !/[<>]/.test(eq[1])) s = eq[1];
  // `\frac12` → `\frac{1}{2}`, `\sqrt2` → `\sqrt{2}`
  s = s.replace(/\\frac(\d)(\d)/g, "\\frac{$1}{$2}");
  s = s.replace(/\\frac\{([^{}]*)\}(\d)/g, "\\frac{$1}{$2}");
  s = s.replace(/\\sqrt(\d)/g, "\\sqrt{$1}");
  // `0.50` → `0.5`, `.5` → `0.5`, `1e3` → `1000` in plain numbers
  if (/^-?\d*\.\d+$/.test(s) || /^-?\d+(?:\.\d+)?[eE][+-]?\d+$/.test(s)) s = String(Number(s));
  return s;
}

/** A `%` in the answer (normalizeMath drops it: `50\%` reads as 50, and also as 0.5). */
function hasPercent(answer: string): boolean {
  return /%/.test(lastBoxed(answer) ?? answer);
}

/**
 * Alternative readings of a normalized string: without thousands separators; a percentage also
 * as its fraction (`50\%` = 50 and 0.5, as the Qwen2.5-Math grader and math-verify read it).
 */
function interpretations(s: string, percent: boolean): string[] {
  const out = [s];
  if (/^-?\d{1,3}(,\d{3})+(\.\d+)?$/.test(s)) out.push(s.replace(/,/g, ""));
  if (percent && !s.includes(",")) out.push(`\\frac{${s}}{100}`);
  return out;
}

// ------------------------------------------------------------------------------------------
// structured comparison

interface Tol {
  relTol: number;
  absTol: number;
}

const OPEN: Record<string, string> = { "(": ")", "[": "]", "\\{": "\\}" };

/** Split at top-level commas (outside (), [], {}, \{\}). */
function splitTop(s: string, sep = ","): string[] {
  const parts: string[] = [];
  let depth = 0, start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\\" && (s[i + 1] === "{" || s[i + 1] === "}")) {
      depth += s[i + 1] === "{" ? 1 : -1;
      i++;
    } else if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") depth--;
    else if (depth === 0 && s.startsWith(sep, i)) {
      parts.push(s.slice(start, i));
      start = i + sep.length;
      i += sep.length - 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}

/** `(a,b]` → brackets and items, when the outer brackets enclose the whole string. */
function bracketed(s: string): { open: string; close: string; items: string[] } | null {
  const open = s.startsWith("\\{") ? "\\{" : s[0];
  if (!(open in OPEN)) return null;
  const close = s.endsWith("\\}") ? "\\}" : s[s.length - 1];
  if (![")", "]", "\\}"].includes(close)) return null;
  const inner = s.slice(open.length, s.length - close.length);
  // the outer brackets must enclose everything: depth never returns to zero inside
  let depth = 0;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i];
    if (c === "\\" && (inner[i + 1] === "{" || inner[i + 1] === "}")) {
      depth += inner[i + 1] === "{" ? 1 : -1;
      i++;
    } else if ("([{".includes(c)) depth++;
    else if (")]}".includes(c)) depth--;
    if (depth < 0) return null;
  }
  if (depth !== 0) return null;
  return { open, close, items: splitTop(inner) };
}

function matrixCells(s: string): string[][] | null {
  const m = s.match(/^\\begin\{([pbvB]?matrix|array)\}(?:\{[^}]*\})?(.*)\\end\{\1\}$/);
  if (!m) return null;
  return m[2].split("\\\\").filter((r) => r.length > 0).map((r) => r.split("&"));
}

function equalNormalized(a: string, b: string, tol: Tol, depth: number): boolean {
  if (a === b) return true;
  if (depth > 8) return false;
  const ma = matrixCells(a), mb = matrixCells(b);
  if (ma || mb) {
    if (!ma || !mb || ma.length !== mb.length) return false;
    return ma.every((row, i) =>
      row.length === mb[i].length &&
      row.every((cell, j) => equalNormalized(cell, mb[i][j], tol, depth + 1))
    );
  }
  const ba = bracketed(a), bb = bracketed(b);
  if (ba && bb && (ba.items.length > 1 || bb.items.length > 1)) {
    if (ba.items.length !== bb.items.length) return false;
    if (ba.open === "\\{" && bb.open === "\\{") return sameMultiset(ba.items, bb.items, tol, depth);
    if (ba.open !== bb.open || ba.close !== bb.close) return false;
    return ba.items.every((x, i) => equalNormalized(x, bb.items[i], tol, depth + 1));
  }
  const la = splitTop(a), lb = splitTop(b);
  if (la.length > 1 || lb.length > 1) {
    // a bare list ("1,2,3"): the order of solutions does not matter
    if (la.length !== lb.length) return false;
    return sameMultiset(la, lb, tol, depth);
  }
  const ea = splitTop(a, "="), eb = splitTop(b, "=");
  if (ea.length === 2 && eb.length === 2) {
    // equations: same sides, or both sides swapped
    return (equalNormalized(ea[0], eb[0], tol, depth + 1) &&
      equalNormalized(ea[1], eb[1], tol, depth + 1)) ||
      (equalNormalized(ea[0], eb[1], tol, depth + 1) &&
        equalNormalized(ea[1], eb[0], tol, depth + 1));
  }
  return equalValue(a, b, tol);
}

function sameMultiset(xs: string[], ys: string[], tol: Tol, depth: number): boolean {
  const used = new Array(ys.length).fill(false);
  for (const x of xs) {
    const j = ys.findIndex((y, k) => !used[k] && equalNormalized(x, y, tol, depth + 1));
    if (j < 0) return false;
    used[j] = true;
  }
  return true;
}

function close(x: number, y: number, tol: Tol): boolean {
  if (x === y) return true; // covers ±Infinity
  if (!Number.isFinite(x) || !Number.isFinite(y)) return false;
  return Math.abs(x - y) <= Math.max(tol.absTol, tol.relTol * Math.max(Math.abs(x), Math.abs(y)));
}

// Probe values for variables: irrational-ish, distinct, positive (roots and logs stay real).
const PROBES = [0.5772156649, 1.4142135623, 2.7182818284, 0.3183098861];

function equalValue(a: string, b: string, tol: Tol): boolean {
  const pa = parseExpr(a), pb = parseExpr(b);
  if (!pa || !pb) return false;
  const vars = new Set([...pa.vars, ...pb.vars]);
  if (vars.size === 0) return close(pa.eval(new Map()), pb.eval(new Map()), tol);
  const names = [...vars].sort();
  let valid = 0;
  for (let p = 0; p < PROBES.length; p++) {
    const env = new Map(names.map((n, i) => [n, PROBES[(p + i) % PROBES.length] + i * 0.731]));
    const x = pa.eval(env), y = pb.eval(env);
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (!close(x, y, tol)) return false;
    valid++;
  }
  return valid >= 2;
}

// ------------------------------------------------------------------------------------------
// a small LaTeX arithmetic parser: numbers, + - * / ^, \frac, \sqrt[n], \pi, \infty, \e,
// parentheses and braces, implicit multiplication, a few functions, single-letter variables.

type Env = Map<string, number>;
interface Parsed {
  vars: Set<string>;
  eval(env: Env): number;
}
type Node = (env: Env) => number;

const FUNCS: Record<string, (x: number) => number> = {
  sin: Math.sin,
  cos: Math.cos,
  tan: Math.tan,
  ln: Math.log,
  log: Math.log10,
  exp: Math.exp,
  arcsin: Math.asin,
  arccos: Math.acos,
  arctan: Math.atan,
};
const GREEK = new Set([
  "alpha",
  "beta",
  "gamma",
  "delta",
  "theta",
  "lambda",
  "mu",
  "phi",
  "omega",
  "sigma",
  "tau",
]);

function parseExpr(src: string): Parsed | null {
  // three plain letters in a row is text (a name, a word), not a product of variables
  if (/[a-zA-Z]{3,}/.test(src.replace(/\\[a-zA-Z]+/g, "\\"))) return null;
  let i = 0;
  const vars = new Set<string>();
  const peek = () => src[i];
  const eat = (t: string) => {
    if (src.startsWith(t, i)) {
      i += t.length;
      return true;
    }
    return false;
  };
  const command = (): string | null => {
    const m = src.slice(i).match(/^\\([a-zA-Z]+)/);
    return m ? m[1] : null;
  };

  function expr(): Node {
    let left = term();
    for (;;) {
      if (eat("+")) {
        const l = left, r = term();
        left = (e) => l(e) + r(e);
      } else if (src[i] === "-") {
        i++;
        const l = left, r = term();
        left = (e) => l(e) - r(e);
      } else return left;
    }
  }
  function startsAtom(): boolean {
    const c = peek();
    if (c === undefined) return false;
    if (/[0-9.a-zA-Z({[]/.test(c)) return true;
    const cmd = command();
    return cmd !== null && (cmd === "frac" || cmd === "sqrt" || cmd === "pi" || cmd === "infty" ||
      cmd in FUNCS || GREEK.has(cmd));
  }
  function term(): Node {
    let left = unary();
    for (;;) {
      if (eat("*")) {
        const l = left, r = unary();
        left = (e) => l(e) * r(e);
      } else if (eat("/") || eat("\\div")) {
        const l = left, r = unary();
        left = (e) => l(e) / r(e);
      } else if (startsAtom()) {
        const l = left, r = power();
        left = (e) => l(e) * r(e);
      } else return left;
    }
  }
  function unary(): Node {
    if (eat("-")) {
      const x = unary();
      return (e) => -x(e);
    }
    if (eat("+")) return unary();
    return power();
  }
  function power(): Node {
    const base = atom();
    if (eat("^")) {
      const ex = group(true);
      return (e) => Math.pow(base(e), ex(e));
    }
    return base;
  }
  // `{…}` or a single token (`\frac12`, `x^2`)
  function group(allowSigned = false): Node {
    if (eat("{")) {
      const x = expr();
      if (!eat("}")) throw new Error("}");
      return x;
    }
    if (allowSigned && eat("-")) {
      const x = group();
      return (e) => -x(e);
    }
    if (/[0-9]/.test(peek() ?? "")) {
      const d = Number(src[i++]);
      return () => d;
    }
    return atom();
  }
  function atom(): Node {
    const c = peek();
    if (c === undefined) throw new Error("end");
    const num = src.slice(i).match(/^(\d+\.?\d*|\.\d+)/);
    if (num) {
      i += num[0].length;
      const v = Number(num[0]);
      return () => v;
    }
    if (eat("(")) {
      const x = expr();
      if (!eat(")")) throw new Error(")");
      return x;
    }
    if (c === "{") return group();
    const cmd = command();
    if (cmd !== null) {
      i += cmd.length + 1;
      if (cmd === "frac") {
        const n = group(), d = group();
        return (e) => n(e) / d(e);
      }
      if (cmd === "sqrt") {
        let k: Node = () => 2;
        if (eat("[")) {
          k = expr();
          if (!eat("]")) throw new Error("]");
        }
        const x = group();
        return (e) => {
          const v = x(e), n = k(e);
          return v < 0 && n % 2 === 1 ? -Math.pow(-v, 1 / n) : Math.pow(v, 1 / n);
        };
      }
      if (cmd === "pi") return () => Math.PI;
      if (cmd === "infty") return () => Infinity;
      if (cmd in FUNCS) {
        const f = FUNCS[cmd];
        const x = peek() === "(" || peek() === "{" ? atom() : power();
        return (e) => f(x(e));
      }
      if (GREEK.has(cmd)) {
        vars.add(cmd);
        return (e) => e.get(cmd) ?? NaN;
      }
      throw new Error(`\\${cmd}`);
    }
    if (/[a-zA-Z]/.test(c)) {
      i++;
      vars.add(c);
      return (e) => e.get(c) ?? NaN;
    }
    throw new Error(c);
  }

  try {
    const node = expr();
    if (i !== src.length) return null;
    return { vars, eval: node };
  } catch {
    return null;
  }
}
