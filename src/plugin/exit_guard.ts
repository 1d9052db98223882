/**
 * A plugin that ends the process while it loads (`Deno.exit(0)` or `process.exit()` at import, or
 * in its factory) would make `exp` exit with that code, silently, before anything ran. While
 * plugins load, `Deno.exit` (which `process.exit` also goes through) throws instead, so the call
 * becomes the plugin's load error, located like any other. Calls made later, from a plugin's
 * methods or timers, are not intercepted (docs/PLUGINS.md).
 */

let depth = 0;
let original: typeof Deno.exit | undefined;

/** The error a guarded exit throws. */
export class ExitDuringLoad extends Error {
  constructor(code: number | undefined) {
    super(
      `it called Deno.exit(${code ?? ""}) (or process.exit) while loading; a plugin must not ` +
        "end the process",
    );
    this.name = "ExitDuringLoad";
  }
}

/** Run `fn` with `Deno.exit` turned into a throw of ExitDuringLoad (nesting allowed). */
export async function guardExit<T>(fn: () => Promise<T>): Promise<T> {
  if (depth++ === 0) {
    original = Deno.exit;
    Object.defineProperty(Deno, "exit", {
      value: (code?: number): never => {
        throw new ExitDuringLoad(code);
      },
      configurable: true,
      writable: true,
    });
  }
  try {
    return await fn();
  } finally {
    if (--depth === 0) {
      Object.defineProperty(Deno, "exit", { value: original, configurable: true, writable: true });
    }
  }
}
