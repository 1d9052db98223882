/**
 * The rooms of src/ form a DAG. A room is a folder of src/ (cli, eval, plugin, run, …) or a
 * top-level file of src/ (rng.ts, errors.ts: the room is its stem). Every import counts, type
 * imports included: static `import … from`, `import type`, side-effect `import "…"`,
 * `export … from`, `import("…")` with a string literal, `import.meta.resolve("…")`, and a
 * computed `new URL("./x.ts", import.meta.url)` naming a module. Specifiers that are not relative
 * (npm:, node:, bare names) are outside the rooms and ignored.
 *
 * No type-checking: a small scanner that skips comments, strings, template literals and regular
 * expressions finds the specifiers, so the test is fast and an import inside a comment or a string
 * does not count.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../", import.meta.url));

/** One import specifier in a source file. */
export interface Specifier {
  spec: string;
  line: number;
  form: "import" | "export" | "dynamic" | "resolve" | "url";
}

interface Token {
  t: "id" | "str" | "punct";
  v: string;
  line: number;
}

/** Identifiers after which a `/` starts a regular expression rather than a division. */
const BEFORE_EXPRESSION = new Set([
  "return",
  "typeof",
  "instanceof",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "case",
  "do",
  "else",
  "yield",
  "await",
]);

/**
 * Tokens of a TypeScript source, comments dropped. Strings (and whole template literals) are single
 * `str` tokens; the code inside `${…}` is tokenized; regular expressions become one punct token.
 */
function tokenize(src: string): Token[] {
  const out: Token[] = [];
  const n = src.length;
  let i = 0;
  let line = 1;
  let depth = 0; // brace depth
  const templates: number[] = []; // brace depth at each open `${`

  const advanceTo = (end: number) => {
    for (; i < end; i++) if (src[i] === "\n") line++;
  };
  /** Reads template text from i up to the closing backtick or the next `${`. */
  const templateChunk = (startLine: number) => {
    while (i < n) {
      const c = src[i];
      if (c === "\\") {
        advanceTo(i + 2);
      } else if (c === "`") {
        i++;
        out.push({ t: "str", v: "", line: startLine });
        return;
      } else if (c === "$" && src[i + 1] === "{") {
        i += 2;
        templates.push(depth);
        return;
      } else {
        advanceTo(i + 1);
      }
    }
  };
  const regexAllowed = () => {
    const last = out[out.length - 1];
    if (!last) return true;
    if (last.t === "str") return false;
    if (last.t === "id") return BEFORE_EXPRESSION.has(last.v);
    return !(last.v === ")" || last.v === "]" || last.v === "}");
  };

  while (i < n) {
    const c = src[i];
    if (c === "\n") {
      line++;
      i++;
    } else if (
      c === " " || c === "\t" || c === "\r" || c === "\f" || c === "\v" || c === "\uFEFF"
    ) {
      i++;
    } else if (c === "/" && src[i + 1] === "/") {
      while (i < n && src[i] !== "\n") i++;
    } else if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      advanceTo(end < 0 ? n : end + 2);
    } else if (c === "'" || c === '"') {
      const startLine = line;
      let j = i + 1;
      let v = "";
      while (j < n && src[j] !== c && src[j] !== "\n") {
        if (src[j] === "\\") {
          v += src[j + 1] ?? "";
          j += 2;
        } else {
          v += src[j++];
        }
      }
      advanceTo(j + 1);
      out.push({ t: "str", v, line: startLine });
    } else if (c === "`") {
      i++;
      templateChunk(line);
    } else if (c === "}" && templates.length && templates[templates.length - 1] === depth) {
      templates.pop();
      i++;
      templateChunk(line);
    } else if (c === "/" && regexAllowed()) {
      let j = i + 1;
      let inClass = false;
      while (j < n && src[j] !== "\n") {
        const d = src[j];
        if (d === "\\") j++;
        else if (d === "[") inClass = true;
        else if (d === "]") inClass = false;
        else if (d === "/" && !inClass) break;
        j++;
      }
      j++;
      while (j < n && /[a-z]/i.test(src[j])) j++;
      out.push({ t: "punct", v: "/re/", line });
      advanceTo(j);
    } else if (/[\p{ID_Start}$_0-9]/u.test(c)) {
      const m = /^[\p{ID_Continue}$\u200c\u200d.]+/u.exec(src.slice(i, i + 256));
      // A number may hold a dot (1.5); an identifier stops at one.
      const text = /^[0-9]/.test(c) ? m![0] : m![0].replace(/\..*$/, "");
      out.push({ t: "id", v: text, line });
      i += text.length;
    } else {
      if (c === "{") depth++;
      if (c === "}") depth--;
      out.push({ t: "punct", v: c, line });
      i++;
    }
  }
  return out;
}

const MODULE_FILE = /\.[cm]?[jt]sx?$/;

/** Every import specifier in a TypeScript source (see the module comment for the forms). */
export function scanImports(src: string): Specifier[] {
  const toks = tokenize(src);
  const found: Specifier[] = [];
  const is = (k: number, t: Token["t"], v?: string) =>
    toks[k]?.t === t && (v === undefined || toks[k].v === v);
  const isMetaUrl = (k: number, prop: string) =>
    is(k, "id", "import") && is(k + 1, "punct", ".") && is(k + 2, "id", "meta") &&
    is(k + 3, "punct", ".") && is(k + 4, "id", prop);

  for (let k = 0; k < toks.length; k++) {
    const tok = toks[k];
    if (tok.t !== "id" || is(k - 1, "punct", ".")) continue;
    if (tok.v === "import") {
      if (is(k + 1, "punct", "(")) {
        if (is(k + 2, "str") && (is(k + 3, "punct", ")") || is(k + 3, "punct", ","))) {
          found.push({ spec: toks[k + 2].v, line: toks[k + 2].line, form: "dynamic" });
        }
      } else if (isMetaUrl(k, "resolve") && is(k + 5, "punct", "(") && is(k + 6, "str")) {
        found.push({ spec: toks[k + 6].v, line: toks[k + 6].line, form: "resolve" });
      } else if (is(k + 1, "str")) {
        found.push({ spec: toks[k + 1].v, line: toks[k + 1].line, form: "import" });
      } else {
        // An import clause holds only names, braces, commas and `*`, up to `from "…"`.
        for (let j = k + 1; j < toks.length; j++) {
          if (is(j, "id", "from") && is(j + 1, "str")) {
            found.push({ spec: toks[j + 1].v, line: toks[j + 1].line, form: "import" });
            break;
          }
          if (toks[j].t === "id" || ["{", "}", ",", "*"].includes(toks[j].v)) continue;
          break;
        }
      }
    } else if (tok.v === "export") {
      let j = k + 1;
      if (is(j, "id", "type")) j++;
      if (is(j, "punct", "{")) {
        while (j < toks.length && !is(j, "punct", "}")) j++;
        j++;
      } else if (is(j, "punct", "*")) {
        j++;
        if (is(j, "id", "as")) j += 2;
      } else {
        continue;
      }
      if (is(j, "id", "from") && is(j + 1, "str")) {
        found.push({ spec: toks[j + 1].v, line: toks[j + 1].line, form: "export" });
      }
    } else if (tok.v === "new") {
      if (
        is(k + 1, "id", "URL") && is(k + 2, "punct", "(") && is(k + 3, "str") &&
        is(k + 4, "punct", ",") && isMetaUrl(k + 5, "url") && MODULE_FILE.test(toks[k + 3].v)
      ) {
        found.push({ spec: toks[k + 3].v, line: toks[k + 3].line, form: "url" });
      }
    }
  }
  return found;
}

/** One import that crosses rooms. */
export interface Edge {
  from: string;
  to: string;
  /** repo-relative file:line */
  at: string;
  spec: string;
}

/** The room of a path relative to src/ ("plugin/load.ts" → plugin, "rng.ts" → rng). */
export function roomOf(srcRelative: string): string {
  const slash = srcRelative.indexOf("/");
  return slash >= 0 ? srcRelative.slice(0, slash) : srcRelative.replace(/\.[^.]*$/, "");
}

function walk(dir: string): string[] {
  const files: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) files.push(...walk(p));
    else if (e.isFile && e.name.endsWith(".ts")) files.push(p);
  }
  return files;
}

/**
 * The cross-room imports of every .ts file under `srcDir`. Also returns the relative specifiers
 * that name no file (the scanner, or the tree, is broken if there are any).
 */
export function roomEdges(srcDir: string): { edges: Edge[]; files: number; missing: string[] } {
  const edges: Edge[] = [];
  const missing: string[] = [];
  const files = walk(srcDir).sort();
  for (const file of files) {
    const rel = relative(srcDir, file);
    const from = roomOf(rel);
    for (const s of scanImports(Deno.readTextFileSync(file))) {
      if (!s.spec.startsWith("./") && !s.spec.startsWith("../")) continue;
      const target = normalize(join(dirname(file), s.spec));
      const at = `${relative(REPO, file)}:${s.line}`;
      if (MODULE_FILE.test(target)) {
        try {
          Deno.statSync(target);
        } catch {
          missing.push(`${at}: ${s.spec}`);
        }
      }
      const targetRel = relative(srcDir, target);
      if (targetRel.startsWith("..")) continue; // outside src/ (plugins/, …)
      const to = roomOf(targetRel);
      if (to !== from) edges.push({ from, to, at, spec: s.spec });
    }
  }
  return { edges, files: files.length, missing };
}

/** The strongly connected components with more than one room (Tarjan), each sorted. */
export function cycleGroups(edges: readonly Edge[]): string[][] {
  const adj = new Map<string, Set<string>>();
  for (const e of edges) {
    if (!adj.has(e.from)) adj.set(e.from, new Set());
    if (!adj.has(e.to)) adj.set(e.to, new Set());
    adj.get(e.from)!.add(e.to);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const groups: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of [...adj.get(v)!].sort()) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        group.push(w);
      } while (w !== v);
      if (group.length > 1) groups.push(group.sort());
    }
  };
  for (const v of [...adj.keys()].sort()) if (!index.has(v)) visit(v);
  return groups.sort((a, b) => a[0].localeCompare(b[0]));
}

/** A shortest cycle through the first room of `group`, staying inside it: [a, b, …, a]. */
export function cycleThrough(group: readonly string[], edges: readonly Edge[]): string[] {
  const inGroup = new Set(group);
  const start = group[0];
  const prev = new Map<string, string>();
  const queue = [start];
  for (let q = 0; q < queue.length; q++) {
    const v = queue[q];
    const outs = [
      ...new Set(edges.filter((e) => e.from === v && inGroup.has(e.to)).map((e) => e.to)),
    ]
      .sort();
    for (const w of outs) {
      if (w === start) {
        const path: string[] = [];
        for (let u = v; u !== start; u = prev.get(u)!) path.unshift(u);
        return [start, ...path, start];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  throw new Error(`no cycle through ${start} in {${group.join(", ")}}`);
}

/** The failure text: each cycle group, one cycle through it, and every edge inside it. */
export function describeCycles(groups: readonly string[][], edges: readonly Edge[]): string {
  const lines = [`the rooms of src/ are not a DAG (type imports count):`];
  const sites = (from: string, to: string) =>
    edges.filter((e) => e.from === from && e.to === to).map((e) => `${e.at} (${e.spec})`);
  for (const group of groups) {
    const cycle = cycleThrough(group, edges);
    lines.push(``, `cycle: ${cycle.join(" → ")}`);
    for (let k = 0; k + 1 < cycle.length; k++) {
      lines.push(`  ${cycle[k]} → ${cycle[k + 1]}: ${sites(cycle[k], cycle[k + 1])[0]}`);
    }
    const inGroup = new Set(group);
    const pairs = [
      ...new Set(
        edges.filter((e) => inGroup.has(e.from) && inGroup.has(e.to)).map((e) =>
          `${e.from} → ${e.to}`
        ),
      ),
    ].sort();
    lines.push(`  every edge among {${group.join(", ")}} lies on a cycle; remove enough of them:`);
    for (const pair of pairs) {
      const [from, to] = pair.split(" → ");
      lines.push(`    ${pair}:`, ...sites(from, to).map((s) => `      ${s}`));
    }
  }
  return lines.join("\n");
}

Deno.test("scanImports finds every import form and skips comments, strings and regexes", () => {
  const src = [
    `import a from "./a.ts";`,
    `import type { B, C as D } from "../b/c.ts";`,
    `import * as e from './e.ts';`,
    `import f, { g } from "./fg.ts";`,
    `import "./side.ts";`,
    `import {`,
    `  h,`,
    `  type I,`,
    `} from "./multi.ts";`,
    `export { j } from "./j.ts";`,
    `export type { K } from "./k.ts";`,
    `export * from "./star.ts";`,
    `export * as ns from "./ns.ts";`,
    `const m = await import("./dyn.ts");`,
    `const u = await import(new URL("./computed.ts", import.meta.url).href);`,
    `const r = import.meta.resolve("./resolved.ts");`,
    `const data = new URL("../../plugins/", import.meta.url);`,
    `// import x from "./comment.ts";`,
    `/* import y from "./block.ts";`,
    `   export * from "./block2.ts"; */`,
    `const s = 'import z from "./string.ts"';`,
    'const t = `import w from "./template.ts" ${`import("./nested.ts")`} ${{ a: 1 }.a}`;',
    `const re = /import x from "\\.\\/regex.ts"['"]/g;`,
    `const q = 1 / 2; import lateImport from "./late.ts";`,
    `export const notFrom = { from: "./no.ts" };`,
    `obj.import("./method.ts");`,
    `export default function x() {}`,
    `import { from } from "./from.ts";`,
  ].join("\n");
  assert.deepEqual(scanImports(src).map((s) => `${s.line}:${s.form}:${s.spec}`), [
    "1:import:./a.ts",
    "2:import:../b/c.ts",
    "3:import:./e.ts",
    "4:import:./fg.ts",
    "5:import:./side.ts",
    "9:import:./multi.ts",
    "10:export:./j.ts",
    "11:export:./k.ts",
    "12:export:./star.ts",
    "13:export:./ns.ts",
    "14:dynamic:./dyn.ts",
    "15:url:./computed.ts",
    "16:resolve:./resolved.ts",
    "24:import:./late.ts",
    "28:import:./from.ts",
  ]);
});

Deno.test("roomOf: folders and top-level files of src/ are rooms", () => {
  assert.equal(roomOf("plugin/load.ts"), "plugin");
  assert.equal(roomOf("run/stages/rl.ts"), "run");
  assert.equal(roomOf("rng.ts"), "rng");
  assert.equal(roomOf("errors.ts"), "errors");
});

Deno.test("a cycle in a synthetic room graph is found and named with its files", () => {
  const e = (from: string, to: string, at: string): Edge => ({ from, to, at, spec: "./x.ts" });
  const edges = [
    e("plugin", "run", "src/plugin/load.ts:12"),
    e("run", "plugin", "src/run/stages.ts:11"),
    e("run", "store", "src/run/runner.ts:3"),
    e("store", "errors", "src/store/store.ts:2"),
    e("a", "b", "src/a/x.ts:1"),
    e("b", "c", "src/b/x.ts:1"),
    e("c", "a", "src/c/x.ts:1"),
  ];
  assert.deepEqual(cycleGroups(edges), [["a", "b", "c"], ["plugin", "run"]]);
  assert.deepEqual(cycleThrough(["plugin", "run"], edges), ["plugin", "run", "plugin"]);
  assert.deepEqual(cycleThrough(["a", "b", "c"], edges), ["a", "b", "c", "a"]);
  const text = describeCycles(cycleGroups(edges), edges);
  assert.ok(text.includes("cycle: plugin → run → plugin\n  plugin → run: src/plugin/load.ts:12"));
  assert.match(text, /run → plugin: src\/run\/stages\.ts:11/);
  assert.match(text, /cycle: a → b → c → a/);
  assert.doesNotMatch(text, /store/);
  // A DAG has no cycle group.
  assert.deepEqual(cycleGroups(edges.filter((x) => x.from !== "c" && x.from !== "run")), []);
});

Deno.test("the rooms of src/ form a DAG, type imports included", () => {
  const { edges, files, missing } = roomEdges(join(REPO, "src"));
  // Not vacuous: the scanner saw the tree and its imports.
  assert.ok(files > 50, `only ${files} .ts files found under src/`);
  assert.ok(edges.length > 100, `only ${edges.length} cross-room imports found under src/`);
  const rooms = new Set(edges.flatMap((e) => [e.from, e.to]));
  for (const room of ["cli", "plugin", "run", "store", "errors", "rng"]) {
    assert.ok(rooms.has(room), `no import from or to room '${room}' found`);
  }
  assert.deepEqual(missing, [], `relative specifiers that name no file:\n${missing.join("\n")}`);
  const groups = cycleGroups(edges);
  if (groups.length) assert.fail(describeCycles(groups, edges));
});
