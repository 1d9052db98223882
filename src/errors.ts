/**
 * User-facing errors. An ArpoError's message is a complete, one-paragraph explanation (what, where,
 * what was expected, what was found) that the CLI prints as is, without a stack trace, before
 * exiting non-zero.
 *
 * @example A data file that is not what a plugin expects
 * ```ts
 * import { ArpoError } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * function parseLine(file: string, line: number, text: string): { question: string } {
 *   const row = JSON.parse(text);
 *   if (typeof row?.question !== "string") {
 *     throw new ArpoError(`${file}:${line}: expected an object with a "question" string`);
 *   }
 *   return row;
 * }
 * assert.throws(() => parseLine("data.jsonl", 3, "[1, 2]"), ArpoError);
 * ```
 */
export class ArpoError extends Error {
  /** Process exit code the CLI uses for this error. */
  readonly exitCode: number;
  /**
   * An error whose message the CLI prints as is.
   *
   * @param message The complete explanation: what, where, what was expected, what was found.
   * @param options The underlying error (`cause`) and the exit code (default 1).
   */
  constructor(message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "ArpoError";
    this.exitCode = options?.exitCode ?? 1;
  }
}

/** Describe any thrown value in one line, for wrapping into an ArpoError. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}
