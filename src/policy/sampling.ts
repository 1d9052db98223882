/**
 * Next-token sampling from one row of probabilities softmax(logits / T), with the statistics ARPO
 * needs: the log-probability of the chosen token and the full-vocabulary entropy, both under the
 * unfiltered tempered distribution (what teacher-forced scoring recomputes), plus optional top-k
 * log-probabilities. Top-k / top-p only restrict which tokens can be drawn. `rowStats` computes the
 * same statistics from raw logits in JS (CLI, tests).
 *
 * Randomness: one uniform per position, read at a fixed place of the sequence's stream
 * (`uniformAt(stream, position)`), so a draw never depends on how many draws came before or on
 * which other sequences share the batch.
 */
import type { Stream } from "../rng.ts";
import type { GeneratedToken, SamplingParams } from "./types.ts";

/** The uniform in [0, 1) for the token at sequence position `pos` (53 bits from two words). */
export function uniformAt(stream: Stream, pos: number): number {
  const a = stream.at(2 * pos) >>> 5, b = stream.at(2 * pos + 1) >>> 6;
  return (a * 67108864 + b) / 9007199254740992;
}

export interface RowStats {
  /** log Z of softmax(logits / T). */
  logZ: number;
  /** Entropy in nats. */
  entropy: number;
  invT: number;
}

/**
 * The logit scale of a sampling temperature: 1/T, and 1 for greedy decoding (T = 0), whose
 * log-probabilities and entropies are those of the untempered distribution. The one place 1/T is
 * computed: the decoder's `inv_temperature` input and the CPU-side statistics both take it.
 */
export function inverseTemperature(temperature: number): number {
  return temperature > 0 ? 1 / temperature : 1;
}

/** log-normalizer and entropy of softmax(x·invT) over x[off, off+V). */
export function rowStats(x: Float32Array, off: number, V: number, temperature: number): RowStats {
  const invT = inverseTemperature(temperature);
  let m = -Infinity;
  for (let i = 0; i < V; i++) {
    const z = x[off + i] * invT;
    if (z > m) m = z;
  }
  let s = 0, sz = 0;
  for (let i = 0; i < V; i++) {
    const z = x[off + i] * invT;
    const e = Math.exp(z - m);
    s += e;
    sz += e * z;
  }
  const logZ = m + Math.log(s);
  // H = logZ − E_p[z]
  return { logZ, entropy: logZ - sz / s, invT };
}

/** Indices of the k largest x[off+i]·(sign) in descending order (ties: lower index first). */
export function topIndices(x: Float32Array, off: number, V: number, k: number): number[] {
  k = Math.min(k, V);
  if (k <= 0) return [];
  // Small k: keep a sorted buffer; large k: full sort.
  if (k > 64) {
    const idx = Array.from({ length: V }, (_, i) => i);
    idx.sort((a, b) => x[off + b] - x[off + a] || a - b);
    return idx.slice(0, k);
  }
  const best: number[] = [];
  for (let i = 0; i < V; i++) {
    const v = x[off + i];
    if (best.length === k && v <= x[off + best[k - 1]]) continue;
    let j = best.length < k ? best.length : k - 1;
    if (best.length < k) best.push(i);
    while (j > 0 && x[off + best[j - 1]] < v) {
      best[j] = best[j - 1];
      j--;
    }
    best[j] = i;
  }
  return best;
}

/**
 * Choose the next token from a row of probabilities p[off, off+V) = softmax(logits / T) (computed
 * by the graph's sampling head), with uniform u. `entropy` is the graph's entropy of that row.
 * Greedy (temperature 0) takes the most probable id (the row was computed at T = 1).
 */
export function sampleFromProbs(
  p: Float32Array,
  off: number,
  V: number,
  params: SamplingParams,
  u: number,
  entropy: number,
  topLogprobs = 0,
): GeneratedToken {
  let id: number;
  if (!(params.temperature > 0)) {
    id = 0;
    for (let i = 1; i < V; i++) if (p[off + i] > p[off + id]) id = i;
  } else {
    const topK = params.topK > 0 ? Math.min(params.topK, V) : 0;
    const topP = params.topP > 0 && params.topP < 1 ? params.topP : 1;
    if (topK === 0 && topP === 1) {
      // Inverse CDF over the whole vocabulary in id order (normalized by the float32 row sum).
      let total = 0;
      for (let i = 0; i < V; i++) total += p[off + i];
      const target = u * total;
      let acc = 0;
      id = -1;
      for (let i = 0; i < V; i++) {
        acc += p[off + i];
        if (target < acc) {
          id = i;
          break;
        }
      }
      if (id < 0) {
        // Rounding at the top end: the last id with any probability.
        id = V - 1;
        while (id > 0 && !(p[off + id] > 0)) id--;
      }
    } else {
      const cand = topIndices(p, off, V, topK > 0 ? topK : V);
      let n = cand.length;
      if (topP < 1) {
        // Smallest prefix (by descending probability) whose mass reaches topP.
        let acc = 0;
        for (let j = 0; j < cand.length; j++) {
          acc += p[off + cand[j]];
          if (acc >= topP) {
            n = j + 1;
            break;
          }
        }
      }
      let total = 0;
      for (let j = 0; j < n; j++) total += p[off + cand[j]];
      const target = u * total;
      let acc = 0;
      id = cand[n - 1];
      for (let j = 0; j < n; j++) {
        acc += p[off + cand[j]];
        if (target < acc) {
          id = cand[j];
          break;
        }
      }
    }
  }
  const tok: GeneratedToken = { id, logprob: Math.log(p[off + id]), entropy };
  if (topLogprobs > 0) {
    tok.top = topIndices(p, off, V, topLogprobs).map((i) => [i, Math.log(p[off + i])]);
  }
  return tok;
}
