/**
 * Data a plugin reads enters the run id only when it is read while the plugin loads (in its
 * factory). A read from a method (`call`, `score`, `tasks`, …) would happen while a stage runs —
 * after the run id was fixed, possibly after earlier stages ran for an hour — and is refused
 * there. This finds such reads when the plugin loads, before any stage runs: the source of each
 * of the plugin's methods is searched for a call of the context's `readFile` / `readText`. (A read
 * hidden in a helper the method calls is still refused when it happens: the context is sealed.)
 */

/** Source text without comments and string contents, so a mention there does not count. */
function code(src: string): string {
  return src
    .replace(/\/\*[\s\S]*?\*\//g, " ")
    .replace(/\/\/[^\n]*/g, " ")
    .replace(/"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`/g, '""');
}

/** The plugin's methods: own and inherited function-valued properties (not Object's). */
function methods(obj: object): [string, (...a: unknown[]) => unknown][] {
  const out: [string, (...a: unknown[]) => unknown][] = [];
  const seen = new Set<string>();
  for (let o: object | null = obj; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const k of Object.getOwnPropertyNames(o)) {
      if (k === "constructor" || seen.has(k)) continue;
      const d = Object.getOwnPropertyDescriptor(o, k);
      if (d && typeof d.value === "function") {
        seen.add(k);
        out.push([k, d.value]);
      }
    }
  }
  return out;
}

/**
 * Why the plugin object reads data after loading (naming the method and the call), or undefined.
 */
export function lateReadProblem(plugin: unknown): string | undefined {
  if (typeof plugin !== "object" || plugin === null) return undefined;
  for (const [name, fn] of methods(plugin)) {
    const m = /\b(readFile|readText)\s*\(/.exec(code(Function.prototype.toString.call(fn)));
    if (m) {
      return `its \`${name}\` reads data (${m[1]}(…)) after loading; read data files in the ` +
        `factory (ctx.${m[1]} before returning the plugin), so they are part of the run id`;
    }
  }
  return undefined;
}
