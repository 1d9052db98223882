/**
 * Counter-based random streams: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3", SC'11). A stream is named by a key path (seed, purpose, ids…); its n-th draw is a pure
 * function of that path and n, so what one stream yields never depends on what any other stream, or
 * this one in another order, drew before. There is no global state.
 */
import { createHash } from "node:crypto";
import { canonicalJson } from "./store/canonical.ts";

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32. */
function mulhi(a: number, b: number): number {
  const aL = a & 0xffff, aH = a >>> 16, bL = b & 0xffff, bH = b >>> 16;
  const lo = aL * bL;
  const mid1 = aH * bL;
  const mid2 = aL * bH;
  const carry = ((lo >>> 16) + (mid1 & 0xffff) + (mid2 & 0xffff)) >>> 16;
  return (aH * bH + (mid1 >>> 16) + (mid2 >>> 16) + carry) >>> 0;
}

/** One Philox4x32-10 block: counter (4 words) and key (2 words) → 4 random uint32 words. */
export function philox4x32(
  ctr: readonly [number, number, number, number],
  key: readonly [number, number],
): [number, number, number, number] {
  let c0 = ctr[0] >>> 0, c1 = ctr[1] >>> 0, c2 = ctr[2] >>> 0, c3 = ctr[3] >>> 0;
  let k0 = key[0] >>> 0, k1 = key[1] >>> 0;
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  return [c0, c1, c2, c3];
}

/** One element of a stream's key path: a seed, a purpose, an id. */
export type KeyPart = string | number;

/**
 * A keyed stream. The key path is hashed (sha256 of its canonical JSON) into the Philox key and the
 * upper half of the counter; the lower half counts blocks. `next*` methods advance a cursor, `at`
 * reads any position without one.
 *
 * @example Draws depend only on the key path and their position
 * ```ts
 * import { Stream } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const a = new Stream([7, "demo"]);
 * const b = new Stream([7, "demo"]);
 * assert.equal(a.int(6), b.int(6));
 * assert.equal(a.at(0), new Stream([7, "demo"]).nextUint32());
 * assert.deepEqual(a.child("test", 3).path, [7, "demo", "test", 3]);
 * assert.deepEqual(a.shuffle([1, 2, 3]).sort(), [1, 2, 3]);
 * ```
 */
export class Stream {
  /** The key path that names this stream. */
  readonly path: readonly KeyPart[];
  readonly #key: [number, number];
  readonly #hi: [number, number];
  #pos = 0;
  #block: [number, number, number, number] | null = null;
  #blockIndex = -1;

  /**
   * The stream named by a key path.
   *
   * @param path The key path (copied), e.g. `[seed, purpose, ...ids]`.
   */
  constructor(path: readonly KeyPart[]) {
    this.path = [...path];
    const h = createHash("sha256").update(canonicalJson(this.path)).digest();
    const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
    this.#key = [dv.getUint32(0, true), dv.getUint32(4, true)];
    this.#hi = [dv.getUint32(8, true), dv.getUint32(12, true)];
  }

  /** A sub-stream whose path extends this one's. */
  child(...ids: KeyPart[]): Stream {
    return new Stream([...this.path, ...ids]);
  }

  /** The uint32 at absolute position `i` of this stream. */
  at(i: number): number {
    const b = Math.floor(i / 4);
    if (b !== this.#blockIndex) {
      this.#block = philox4x32(
        [b >>> 0, Math.floor(b / 0x100000000) >>> 0, ...this.#hi],
        this.#key,
      );
      this.#blockIndex = b;
    }
    return this.#block![i % 4];
  }

  /** Next uint32. */
  nextUint32(): number {
    return this.at(this.#pos++);
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  uniform(): number {
    const a = this.nextUint32() >>> 5, b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) {
      throw new RangeError(`int(n) needs an integer 1 ≤ n ≤ 2^32, got ${n}`);
    }
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Uniform integer in [lo, hi] inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /**
   * Index drawn from unnormalized non-negative weights (inverse CDF on one uniform). Weights
   * that are all zero are an error.
   */
  categorical(weights: ArrayLike<number>): number {
    let total = 0;
    for (let i = 0; i < weights.length; i++) total += weights[i];
    if (!(total > 0)) throw new RangeError("categorical: weights sum to zero");
    const u = this.uniform() * total;
    let acc = 0;
    let last = -1;
    for (let i = 0; i < weights.length; i++) {
      if (weights[i] <= 0) continue;
      acc += weights[i];
      last = i;
      if (u < acc) return i;
    }
    return last; // rounding at the top end
  }

  /** Fisher–Yates shuffle, returning a new array. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /** Standard normal (Box–Muller, two uniforms per draw). */
  normal(): number {
    const u1 = 1 - this.uniform(), u2 = this.uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
}

/**
 * The stream for (seed, purpose, ids…).
 *
 * @param seed The experiment seed.
 * @param purpose What the draws are for, e.g. `"benchmark"`.
 * @param ids Further key ids: a name, a split, an index.
 * @returns `new Stream([seed, purpose, ...ids])`.
 *
 * @example Draws that depend on the seed and what they are about only
 * ```ts
 * import { stream } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const rng = stream(7, "benchmark", "mine", "test", 0);
 * assert.deepEqual(rng.path, [7, "benchmark", "mine", "test", 0]);
 * assert.equal(rng.range(1, 100), stream(7, "benchmark", "mine", "test", 0).range(1, 100));
 * ```
 */
export function stream(seed: number | string, purpose: string, ...ids: KeyPart[]): Stream {
  return new Stream([seed, purpose, ...ids]);
}
