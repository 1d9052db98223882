/**
 * Canonical JSON (RFC 8785, JSON Canonicalization Scheme). Everything that is hashed goes
 * through here so that key order, whitespace and number spelling never change a digest.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export class CanonicalJsonError extends Error {}

/**
 * Serialize `value` per RFC 8785. `undefined` object members are dropped, as JSON does.
 *
 * @param value A JSON value (no NaN or infinities, bigints or typed arrays).
 * @returns Its canonical JSON text: sorted keys, no whitespace.
 * @throws {CanonicalJsonError} When `value` has no JSON form.
 *
 * @example Key order never changes the text
 * ```ts
 * import { canonicalJson } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.equal(canonicalJson({ b: 1, a: [true, null], c: undefined }), '{"a":[true,null],"b":1}');
 * assert.equal(canonicalJson({ a: [true, null], b: 1 }), canonicalJson({ b: 1, a: [true, null] }));
 * ```
 */
export function canonicalJson(value: unknown): string {
  return write(value, "$");
}

function write(value: unknown, path: string): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) {
        throw new CanonicalJsonError(`${path}: ${value} cannot be written as JSON`);
      }
      // ECMAScript's Number-to-String is exactly the serialization RFC 8785 prescribes.
      return Object.is(value, -0) ? "0" : JSON.stringify(value);
    case "string":
      return JSON.stringify(value);
    case "bigint":
      throw new CanonicalJsonError(`${path}: bigint is not JSON`);
    case "object": {
      if (Array.isArray(value)) {
        return "[" + value.map((v, i) =>
          write(v === undefined ? null : v, `${path}[${i}]`)
        ).join(",") +
          "]";
      }
      if (ArrayBuffer.isView(value)) {
        throw new CanonicalJsonError(`${path}: typed arrays must be converted before hashing`);
      }
      const obj = value as Record<string, unknown>;
      // RFC 8785 orders members by their names' UTF-16 code units: JS's default string order.
      const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
      return "{" +
        keys.map((k) => JSON.stringify(k) + ":" + write(obj[k], `${path}.${k}`)).join(",") +
        "}";
    }
    default:
      throw new CanonicalJsonError(`${path}: ${typeof value} is not JSON`);
  }
}
