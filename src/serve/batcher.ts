/**
 * Batching for `arpo serve`: requests that arrive while a decode is running wait, and the next
 * decode takes all of them at once (one `Policy.generate` call per set of sampling parameters),
 * so concurrent clients share batched forward steps instead of queueing one by one. Each request
 * is its own sequence with a stream keyed by its seed, so its tokens do not depend on what it was
 * batched with.
 *
 * Prefix cache: finished sequences are kept (up to a budget of tokens, oldest dropped first), and
 * a request whose prompt extends one of them forks it and appends only the rest, so the next round
 * of an agent loop (previous prompt + its answer + a tool result) and ARPO's branches forward only
 * their new tokens.
 */
import type { GenerateResult, Policy, SamplingParams } from "../policy/types.ts";
import { Stream } from "../rng.ts";

export interface Job {
  prompt: readonly number[];
  params: SamplingParams;
  maxTokens: number;
  stopStrings: readonly string[];
  stopTokenIds: readonly number[];
  topLogprobs: number;
  /** Keys the request's random stream. */
  seed: number | string;
}

export interface BatcherStats {
  /** `generate` calls made. */
  decodes: number;
  /** Prompt tokens a request found in the prefix cache (not forwarded again). */
  cachedTokens: number;
  /** Prompt tokens of all requests. */
  promptTokens: number;
  /** Requests served. */
  requests: number;
  /** Largest number of requests one `generate` call served. */
  maxBatch: number;
}

interface Pending {
  job: Job;
  resolve: (r: GenerateResult) => void;
  reject: (e: unknown) => void;
}

export class Batcher {
  readonly stats: BatcherStats = {
    decodes: 0,
    cachedTokens: 0,
    promptTokens: 0,
    requests: 0,
    maxBatch: 0,
  };
  #queue: Pending[] = [];
  #running = false;
  /** Kept sequences, oldest first, and their tokens in all. */
  #kept: number[] = [];
  #keptTokens = 0;

  /**
   * `maxBatch`: most requests per decode (bounds memory); `cacheTokens`: the prefix cache's
   * budget (tokens of kept sequences; 0 disables it).
   */
  constructor(readonly policy: Policy, readonly maxBatch = 64, readonly cacheTokens = 65536) {}

  /** A sequence holding `prompt`: a fork of the longest kept sequence that prefixes it. */
  #open(prompt: readonly number[], stream: Stream): number {
    let best = -1, bestLen = 0;
    for (const s of this.#kept) {
      const t = this.policy.tokens(s);
      // A strict prefix: the last prompt token must be forwarded to give the next logits.
      if (t.length <= bestLen || t.length >= prompt.length) continue;
      let i = 0;
      while (i < t.length && t[i] === prompt[i]) i++;
      if (i === t.length) {
        best = s;
        bestLen = t.length;
      }
    }
    this.stats.promptTokens += prompt.length;
    if (best < 0) return this.policy.create(prompt, stream);
    // Its last token was sampled, not forwarded: the cache covers the ones before it.
    this.stats.cachedTokens += bestLen - 1;
    const seq = this.policy.fork(best, stream);
    this.policy.append(seq, prompt.slice(bestLen));
    return seq;
  }

  /** Keep a finished sequence for later prefixes; drop the oldest beyond the budget. */
  #keep(seq: number): void {
    const n = this.policy.tokens(seq).length;
    if (n > this.cacheTokens) {
      this.policy.release(seq);
      return;
    }
    this.#kept.push(seq);
    this.#keptTokens += n;
    while (this.#keptTokens > this.cacheTokens) {
      const old = this.#kept.shift()!;
      this.#keptTokens -= this.policy.tokens(old).length;
      this.policy.release(old);
    }
  }

  submit(job: Job): Promise<GenerateResult> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ job, resolve, reject });
      if (!this.#running) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length) {
        // Let requests that arrived in the same tick join this decode.
        await new Promise((r) => setTimeout(r, 0));
        const batch = this.#queue.splice(0, this.maxBatch);
        const groups = new Map<string, Pending[]>();
        for (const p of batch) {
          const k = JSON.stringify([p.job.params, p.job.topLogprobs]);
          groups.set(k, [...(groups.get(k) ?? []), p]);
        }
        for (const group of groups.values()) await this.#decode(group);
      }
    } finally {
      this.#running = false;
    }
  }

  async #decode(group: Pending[]): Promise<void> {
    const policy = this.policy;
    const seqs: number[] = [];
    let ok = false;
    try {
      for (const p of group) {
        seqs.push(this.#open(p.job.prompt, new Stream(["arpo-serve", p.job.seed])));
      }
      const { params, topLogprobs } = group[0].job;
      this.stats.decodes++;
      this.stats.requests += group.length;
      this.stats.maxBatch = Math.max(this.stats.maxBatch, group.length);
      const results = await policy.generate(
        group.map((p, i) => ({
          seq: seqs[i],
          stop: {
            maxTokens: p.job.maxTokens,
            strings: p.job.stopStrings,
            tokenIds: p.job.stopTokenIds,
          },
        })),
        params,
        topLogprobs > 0 ? { topLogprobs } : undefined,
      );
      group.forEach((p, i) => p.resolve(results[i]));
      ok = true;
    } catch (e) {
      // A bad prompt fails its whole decode: retry each alone so only the culprit fails.
      if (group.length > 1) {
        for (const p of group) await this.#decode([p]);
      } else group[0].reject(e);
    } finally {
      for (const s of seqs) {
        if (ok) this.#keep(s);
        else policy.release(s);
      }
    }
  }
}
