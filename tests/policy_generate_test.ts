/**
 * OnnxPolicy: generation against transformers' greedy output, log-probs/entropy against a direct
 * computation on the reference logits, teacher-forced scoring, fork and append without
 * recomputation, batch independence, stop conditions.
 */
import assert from "node:assert/strict";
import { loadModelDir } from "../src/model/load.ts";
import { OnnxPolicy } from "../src/policy/onnx_policy.ts";
import type { GenerateResult, SamplingParams } from "../src/policy/types.ts";
import type { TokenizerLike } from "../src/model/tokenizer.ts";
import { stream } from "../src/rng.ts";
import { uniformAt } from "../src/policy/sampling.ts";
import { FIXTURE_MODELS, fixtureDir, loadReference, maxAbsDiff } from "./model_fixtures.ts";

/** id → "t<id> ": decoding is concatenation, so stop strings can span tokens. */
function wordTokenizer(vocab: number, eos: number[] = []): TokenizerLike {
  return {
    vocabSize: vocab,
    eosTokenIds: eos,
    encode: (text) => text.trim().split(/\s+/).map((w) => Number(w.slice(1))),
    decode: (ids) => ids.map((i) => `t${i} `).join(""),
  };
}

const SAMPLE: SamplingParams = { temperature: 1, topP: 1, topK: 0 };
const GREEDY: SamplingParams = { temperature: 0, topP: 1, topK: 0 };

async function policyFor(name: string, eos: number[] = []) {
  const model = await loadModelDir(fixtureDir(name), { requireTokenizer: false });
  return await OnnxPolicy.create(model, wordTokenizer(model.config.vocabSize, eos), { threads: 1 });
}

/** log-softmax and entropy of logits / T in float64. */
function direct(logits: ArrayLike<number>, T: number) {
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) m = Math.max(m, logits[i] / T);
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += Math.exp(logits[i] / T - m);
  const logZ = m + Math.log(s);
  const lp = Array.from(logits, (x) => x / T - logZ);
  const entropy = -lp.reduce((a, l) => a + Math.exp(l) * l, 0);
  return { lp, entropy };
}

Deno.test("policy: greedy generation equals transformers generate (batched)", async () => {
  for (const name of FIXTURE_MODELS) {
    const ref = await loadReference(name);
    const p = await policyFor(name);
    try {
      const seqs = ref.greedy_prompt_rows.map((r, i) => p.create(ref.rows[r], stream(1, "g", i)));
      const res = await p.generate(
        seqs.map((seq) => ({ seq, stop: { maxTokens: ref.greedy[0].length } })),
        GREEDY,
      );
      res.forEach((r, i) => {
        assert.deepEqual(r.tokens.map((t) => t.id), ref.greedy[i], `${name} prompt ${i}`);
        assert.deepEqual(r.stop, { reason: "length" });
      });
    } finally {
      await p.dispose();
    }
  }
});

Deno.test("policy: logprob, entropy and top-k match a direct computation on reference logits", async () => {
  const name = "tiny-qwen3";
  const ref = await loadReference(name);
  const p = await policyFor(name);
  const V = ref.vocab;
  try {
    for (const T of [1, 0.7]) {
      for (const k of [4, 9]) {
        const seq = p.create(ref.rows[1].slice(0, k), stream(5, "lp", T, k));
        const [r] = await p.generate([{ seq, stop: { maxTokens: 1 } }], {
          ...SAMPLE,
          temperature: T,
        }, {
          topLogprobs: 10,
        });
        const tok = r.tokens[0];
        const want = direct(ref.logits[1].subarray((k - 1) * V, k * V), T);
        assert.ok(Math.abs(tok.logprob - want.lp[tok.id]) < 1e-4, `logprob T=${T} k=${k}`);
        assert.ok(Math.abs(tok.entropy - want.entropy) < 1e-4, `entropy T=${T} k=${k}`);
        const top = want.lp.map((l, i) => [i, l] as [number, number]).sort((a, b) => b[1] - a[1])
          .slice(0, 10);
        assert.deepEqual(tok.top!.map((t) => t[0]), top.map((t) => t[0]));
        assert.ok(maxAbsDiff(tok.top!.map((t) => t[1]), top.map((t) => t[1])) < 1e-4);
      }
    }
    // Teacher-forced scoring of a whole row.
    const row = ref.rows[1];
    for (const T of [1, 0.5]) {
      const [sc] = await p.score([{ tokens: row, from: 2 }], T);
      assert.equal(sc.logprobs.length, row.length - 2);
      for (let i = 2; i < row.length; i++) {
        const want = direct(ref.logits[1].subarray((i - 1) * V, i * V), T);
        assert.ok(Math.abs(sc.logprobs[i - 2] - want.lp[row[i]]) < 1e-4, `score T=${T} pos ${i}`);
        assert.ok(Math.abs(sc.entropies[i - 2] - want.entropy) < 1e-4);
      }
    }
  } finally {
    await p.dispose();
  }
});

Deno.test("policy: sampled generation agrees with teacher-forced scoring; batch does not matter", async () => {
  const ref = await loadReference("tiny-llama");
  const p = await policyFor("tiny-llama");
  try {
    const params: SamplingParams = { temperature: 0.9, topP: 0.95, topK: 50 };
    const seqs = ref.rows.map((row, i) => p.create(row, stream(7, "s", i)));
    const res = await p.generate(seqs.map((seq) => ({ seq, stop: { maxTokens: 20 } })), params);
    const scored = await p.score(
      seqs.map((s, i) => ({ tokens: p.tokens(s), from: ref.rows[i].length })),
      0.9,
    );
    res.forEach((r, i) => {
      assert.equal(r.tokens.length, 20);
      assert.ok(maxAbsDiff(r.tokens.map((t) => t.logprob), scored[i].logprobs) < 1e-4);
      assert.ok(maxAbsDiff(r.tokens.map((t) => t.entropy), scored[i].entropies) < 1e-4);
    });
    // The in-graph sampler (no filtering) agrees with scoring too.
    const plain: SamplingParams = { temperature: 0.9, topP: 1, topK: 0 };
    const seqs2 = ref.rows.map((row, i) => p.create(row, stream(7, "plain", i)));
    const res2 = await p.generate(seqs2.map((seq) => ({ seq, stop: { maxTokens: 20 } })), plain);
    const scored2 = await p.score(
      seqs2.map((s, i) => ({ tokens: p.tokens(s), from: ref.rows[i].length })),
      0.9,
    );
    res2.forEach((r, i) => {
      assert.ok(maxAbsDiff(r.tokens.map((t) => t.logprob), scored2[i].logprobs) < 1e-4);
      assert.ok(maxAbsDiff(r.tokens.map((t) => t.entropy), scored2[i].entropies) < 1e-4);
    });
    // The same stream key alone gives the same tokens as in the batch of three.
    const alone = p.create(ref.rows[1], stream(7, "s", 1));
    const [a] = await p.generate([{ seq: alone, stop: { maxTokens: 20 } }], params);
    assert.deepEqual(a.tokens.map((t) => t.id), res[1].tokens.map((t) => t.id));
    // Another key gives other tokens.
    const other = p.create(ref.rows[1], stream(7, "s", 99));
    const [o] = await p.generate([{ seq: other, stop: { maxTokens: 20 } }], params);
    assert.notDeepEqual(o.tokens.map((t) => t.id), res[1].tokens.map((t) => t.id));
  } finally {
    await p.dispose();
  }
});

Deno.test("policy: a fork continues exactly like a sequence run from scratch, forwarding less", async () => {
  const ref = await loadReference("tiny-qwen2");
  const p = await policyFor("tiny-qwen2");
  try {
    const parent = p.create(ref.rows[1], stream(3, "parent"));
    await p.generate([{ seq: parent, stop: { maxTokens: 6 } }], SAMPLE);
    const prefix = [...p.tokens(parent)];
    const children = [p.fork(parent, stream(3, "child", 0)), p.fork(parent, stream(3, "child", 1))];
    const before = p.stats.tokensForwarded;
    const forked = await p.generate(
      children.map((seq) => ({ seq, stop: { maxTokens: 10 } })),
      SAMPLE,
    );
    // One pending token (the parent's last sample) + 9 decode steps per child.
    assert.equal(p.stats.tokensForwarded - before, 2 * 10);
    const fresh = [
      p.create(prefix, stream(3, "child", 0)),
      p.create(prefix, stream(3, "child", 1)),
    ];
    const before2 = p.stats.tokensForwarded;
    const scratch = await p.generate(
      fresh.map((seq) => ({ seq, stop: { maxTokens: 10 } })),
      SAMPLE,
    );
    assert.equal(p.stats.tokensForwarded - before2, 2 * (prefix.length + 9));
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(forked[i].tokens.map((t) => t.id), scratch[i].tokens.map((t) => t.id));
      assert.ok(
        maxAbsDiff(
          forked[i].tokens.map((t) => t.logprob),
          scratch[i].tokens.map((t) => t.logprob),
        ) < 1e-4,
      );
      assert.ok(
        maxAbsDiff(
          forked[i].tokens.map((t) => t.entropy),
          scratch[i].tokens.map((t) => t.entropy),
        ) < 1e-4,
      );
    }
    assert.notDeepEqual(forked[0].tokens.map((t) => t.id), forked[1].tokens.map((t) => t.id));
    // The parent is untouched by its children.
    assert.deepEqual(p.tokens(parent), prefix);
  } finally {
    await p.dispose();
  }
});

Deno.test("policy: appended tokens continue like a fresh sequence with the same tokens", async () => {
  const ref = await loadReference("tiny-qwen3");
  const p = await policyFor("tiny-qwen3");
  try {
    const a = p.create(ref.rows[0], stream(4, "a"));
    await p.generate([{ seq: a, stop: { maxTokens: 4 } }], SAMPLE);
    p.append(a, [5, 6, 7]);
    const before = p.stats.tokensForwarded;
    const [ra] = await p.generate([{ seq: a, stop: { maxTokens: 5 } }], SAMPLE);
    assert.equal(p.stats.tokensForwarded - before, 4 + 4); // last sample + 3 appended, then 4 steps
    const b = p.create(p.tokens(a).slice(0, -5), stream(4, "a"));
    const [rb] = await p.generate([{ seq: b, stop: { maxTokens: 5 } }], SAMPLE);
    assert.deepEqual(ra.tokens.map((t) => t.id), rb.tokens.map((t) => t.id));
  } finally {
    await p.dispose();
  }
});

Deno.test("policy: stop on token ids, stop strings and length; top-k 1 is greedy", async () => {
  const ref = await loadReference("tiny-llama");
  const p = await policyFor("tiny-llama");
  try {
    const probe = p.create(ref.rows[2], stream(9, "x"));
    const [free] = await p.generate([{ seq: probe, stop: { maxTokens: 8 } }], SAMPLE);
    const ids = free.tokens.map((t) => t.id);
    // Stop token: the first occurrence of ids[3].
    const s1 = p.create(ref.rows[2], stream(9, "x"));
    const [r1] = await p.generate(
      [{ seq: s1, stop: { maxTokens: 8, tokenIds: [ids[3]] } }],
      SAMPLE,
    );
    assert.deepEqual(r1.stop, { reason: "token", tokenId: ids[3] });
    assert.deepEqual(r1.tokens.map((t) => t.id), ids.slice(0, ids.indexOf(ids[3]) + 1));
    // Stop string spanning two tokens.
    const str = `t${ids[4]} t${ids[5]}`;
    const s2 = p.create(ref.rows[2], stream(9, "x"));
    const [r2] = await p.generate(
      [{ seq: s2, stop: { maxTokens: 8, strings: ["nope", str] } }],
      SAMPLE,
    );
    assert.deepEqual(r2.stop, { reason: "string", text: str });
    const text = ids.map((i) => `t${i} `).join("");
    const cut = text.indexOf(str) + str.length;
    assert.equal(r2.tokens.map((t) => `t${t.id} `).join("").length >= cut, true);
    assert.ok(r2.tokens.length <= 6);
    // EOS from the tokenizer is always a stop.
    const pe = await policyFor("tiny-llama", [ids[0]]);
    try {
      const s3 = pe.create(ref.rows[2], stream(9, "x"));
      const [r3] = await pe.generate([{ seq: s3, stop: { maxTokens: 8 } }], SAMPLE);
      assert.deepEqual(r3.stop, { reason: "token", tokenId: ids[0] });
      assert.equal(r3.tokens.length, 1);
    } finally {
      await pe.dispose();
    }
    // top-k 1 and a tiny top-p are greedy.
    const g = p.create(ref.rows[0], stream(9, "g"));
    const k1 = p.create(ref.rows[0], stream(9, "k"));
    const p1 = p.create(ref.rows[0], stream(9, "p"));
    const [rg] = await p.generate([{ seq: g, stop: { maxTokens: 5 } }], GREEDY);
    const [rk] = await p.generate([{ seq: k1, stop: { maxTokens: 5 } }], { ...SAMPLE, topK: 1 });
    const [rp] = await p.generate([{ seq: p1, stop: { maxTokens: 5 } }], { ...SAMPLE, topP: 1e-6 });
    assert.deepEqual(rk.tokens.map((t) => t.id), rg.tokens.map((t) => t.id));
    assert.deepEqual(rp.tokens.map((t) => t.id), rg.tokens.map((t) => t.id));
    // Zero budget: nothing forwarded, reason length.
    const before = p.stats.tokensForwarded;
    const [r0] = await p.generate([{ seq: g, stop: { maxTokens: 0 } }], SAMPLE);
    assert.deepEqual(r0, { seq: g, tokens: [], stop: { reason: "length" } });
    assert.equal(p.stats.tokensForwarded, before);
    // Unknown sequences and out-of-vocabulary tokens are errors.
    p.release(g);
    await assert.rejects(
      () => p.generate([{ seq: g, stop: { maxTokens: 1 } }], SAMPLE),
      /unknown or released/,
    );
    assert.throws(() => p.create([999999], stream(0, "z")), /outside the vocabulary/);
  } finally {
    await p.dispose();
  }
});

Deno.test("policy: long prompts are prefilled in chunks with the same result", async () => {
  const model = await loadModelDir(fixtureDir("tiny-qwen2"), { requireTokenizer: false });
  const tok = wordTokenizer(model.config.vocabSize);
  const a = await OnnxPolicy.create(model, tok, { threads: 1, prefillChunk: 3 });
  const b = await OnnxPolicy.create(model, tok, { threads: 1 });
  try {
    const ref = await loadReference("tiny-qwen2");
    const la = await a.logits(ref.rows.map((r) => a.create(r, stream(0, "c"))));
    const lb = await b.logits(ref.rows.map((r) => b.create(r, stream(0, "c"))));
    for (let i = 0; i < la.length; i++) assert.ok(maxAbsDiff(la[i], lb[i]) < 1e-4);
    assert.ok(a.stats.forwardCalls > b.stats.forwardCalls);
  } finally {
    await a.dispose();
    await b.dispose();
  }
});

Deno.test("policy: the in-graph sampler draws the inverse-CDF token of each row's own uniform", async () => {
  const name = "tiny-qwen3";
  const ref = await loadReference(name);
  const p = await policyFor(name);
  const V = ref.vocab;
  try {
    const k = 6;
    const parent = p.create(ref.rows[1].slice(0, k), stream(8, "parent"));
    const n = 300;
    const kids = Array.from({ length: n }, (_, i) => p.fork(parent, stream(8, "kid", i)));
    const res = await p.generate(kids.map((seq) => ({ seq, stop: { maxTokens: 1 } })), SAMPLE);
    const want = direct(ref.logits[1].subarray((k - 1) * V, k * V), 1);
    const probs = want.lp.map(Math.exp);
    let same = 0;
    res.forEach((r, i) => {
      const tok = r.tokens[0];
      assert.ok(Math.abs(tok.logprob - want.lp[tok.id]) < 1e-4);
      assert.ok(Math.abs(tok.entropy - want.entropy) < 1e-4);
      // The same draw in float64 from the reference distribution.
      const u = uniformAt(stream(8, "kid", i), k);
      let acc = 0, id = V - 1;
      for (let j = 0; j < V; j++) {
        acc += probs[j];
        if (u < acc) {
          id = j;
          break;
        }
      }
      if (id === tok.id) same++;
    });
    // float32 vs float64 cumulative sums may disagree only right at a boundary.
    assert.ok(same >= n - 3, `${same} of ${n} draws match the float64 inverse CDF`);
    // And one row alone draws what it drew in the batch of 300.
    const alone = p.fork(parent, stream(8, "kid", 17));
    const [a] = await p.generate([{ seq: alone, stop: { maxTokens: 1 } }], SAMPLE);
    assert.equal(a.tokens[0].id, res[17].tokens[0].id);
  } finally {
    await p.dispose();
  }
});

Deno.test("policy: rows that stop early leave the batch (compaction, cache growth) without changing the others", async () => {
  const ref = await loadReference("tiny-llama");
  const p = await policyFor("tiny-llama");
  try {
    const budgets = [1, 3, 45, 12, 2];
    const prompts = [ref.rows[0], ref.rows[1], ref.rows[2], ref.rows[1], ref.rows[0]];
    const batch = prompts.map((row, i) => p.create(row, stream(12, "c", i)));
    const reported: GenerateResult[] = [];
    const res = await p.generate(
      batch.map((seq, i) => ({ seq, stop: { maxTokens: budgets[i] } })),
      SAMPLE,
      { onResult: (r) => reported.push(structuredClone(r)) },
    );
    // Each row is reported once, as it stops (shortest budget first), with what generate returns.
    assert.deepEqual(reported.map((r) => batch.indexOf(r.seq)), [0, 4, 1, 3, 2]);
    for (const r of reported) assert.deepEqual(r, res[batch.indexOf(r.seq)]);
    for (let i = 0; i < budgets.length; i++) {
      assert.equal(res[i].tokens.length, budgets[i]);
      const alone = p.create(prompts[i], stream(12, "c", i));
      const [a] = await p.generate([{ seq: alone, stop: { maxTokens: budgets[i] } }], SAMPLE);
      assert.deepEqual(res[i].tokens.map((t) => t.id), a.tokens.map((t) => t.id), `row ${i}`);
      assert.ok(
        maxAbsDiff(res[i].tokens.map((t) => t.logprob), a.tokens.map((t) => t.logprob)) < 1e-4,
      );
    }
    // The long row's cache (prompt + 44 generated, past one slab capacity step) continues correctly.
    const [more] = await p.generate([{ seq: batch[2], stop: { maxTokens: 3 } }], SAMPLE);
    const [sc] = await p.score([{
      tokens: p.tokens(batch[2]),
      from: p.tokens(batch[2]).length - 3,
    }]);
    assert.ok(maxAbsDiff(more.tokens.map((t) => t.logprob), sc.logprobs) < 1e-4);
  } finally {
    await p.dispose();
  }
});

Deno.test("policy: a sequence asked for twice, or an empty one, is refused before any work", async () => {
  const p = await policyFor(FIXTURE_MODELS[0]);
  try {
    const a = p.create([1, 2, 3], stream(1, "a")), empty = p.create([], stream(1, "e"));
    const stop = { maxTokens: 2 }, params = GREEDY;
    await assert.rejects(
      () => p.generate([{ seq: a, stop }, { seq: a, stop }], params),
      new RegExp(`sequence ${a} requested twice`),
    );
    await assert.rejects(
      () => p.generate([{ seq: a, stop }, { seq: empty, stop }], params),
      new RegExp(`sequence ${empty} is empty \\(give it a prompt\\)`),
    );
    assert.equal(p.stats.tokensForwarded, 0, "nothing was forwarded");
  } finally {
    await p.dispose();
  }
});
