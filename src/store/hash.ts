import { createHash } from "node:crypto";
import { canonicalJson } from "./canonical.ts";

/**
 * Lower-case hex sha256 of bytes or a UTF-8 string.
 *
 * @param data Bytes, or a string (hashed as UTF-8).
 * @returns The 64-character hex digest.
 *
 * @example
 * ```ts
 * import { sha256 } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
 * assert.equal(sha256(new TextEncoder().encode("abc")), sha256("abc"));
 * ```
 */
export function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** sha256 of the RFC 8785 canonical JSON of `value`. */
export function digestJson(value: unknown): string {
  return sha256(canonicalJson(value));
}

export const DIGEST_RE = /^[0-9a-f]{64}$/;
