/**
 * The inference-server wire formats (src/policy/server_protocol.ts) against request/response
 * fixtures transcribed from vLLM's and SGLang's documented protocols (tests/fixtures/servers/).
 */
import assert from "node:assert/strict";
import {
  completionRequest,
  parseChatLogprobs,
  parseCompletion,
  tokenIdOf,
  topKEntropyOf,
} from "../src/policy/server_protocol.ts";
import { ArpoError } from "../src/errors.ts";
import { topKEntropy } from "../src/rollout/arpo.ts";

const fixture = async (name: string) =>
  JSON.parse(
    await Deno.readTextFile(new URL(`./fixtures/servers/${name}.json`, import.meta.url)),
  );

const ASK = {
  model: "Qwen/Qwen2.5-7B-Instruct",
  prompt: [151644, 872, 198, 3838, 374, 220, 21, 9, 22, 30],
  maxTokens: 64,
  temperature: 0.6,
  topP: 0.95,
  topK: 0,
  seed: 123456789,
  stop: ["</python>", "</answer>"],
  stopTokenIds: [151643, 151645],
  topLogprobs: 20,
};

Deno.test("vllm dialect: the request is vLLM's CompletionRequest with the token-id extras", async () => {
  const { path, body } = completionRequest("vllm", ASK);
  assert.equal(path, "/v1/completions");
  assert.deepEqual(body, await fixture("vllm_completions_request"));
  // openai: only the standard fields.
  const o = completionRequest("openai", ASK).body;
  assert.equal(o.return_tokens_as_token_ids, undefined);
  assert.equal(o.top_k, undefined);
  assert.deepEqual(o.prompt, ASK.prompt);
  assert.equal(o.logprobs, 20);
});

Deno.test("vllm answer with token_id strings: ids, log-probs, top-k (sampled extra dropped), stop", async () => {
  assert.equal(tokenIdOf("token_id:12669"), 12669);
  assert.equal(tokenIdOf("token_id:"), undefined);
  assert.equal(tokenIdOf("12"), undefined);
  const json = await fixture("vllm_completions_token_ids");
  const r = parseCompletion("vllm", json, 2, "test");
  assert.deepEqual(r.tokens.map((t) => t.id), [27, 12669, 1350, 522]);
  assert.deepEqual(r.tokens.map((t) => t.logprob), [-0.0125, -0.31, -2.5, -0.0001]);
  assert.equal(r.finish, "stop");
  assert.equal(r.matched, "</python>");
  // Position 2 sampled an id outside its top 2: vLLM sends k + 1 entries; the top 2 remain.
  assert.deepEqual(r.tokens[2].top, [[7, -0.2], [9, -1.9]]);
  assert.deepEqual(r.tokens[0].top, [[27, -0.0125], [40, -4.5]]);
  assert.deepEqual(r.tokens[3].top, [[522, -0.0001], [198, -9999]]);
  assert.equal(r.tokens[0].entropy, undefined, "vLLM returns no entropies");
  // Without token_ids, the token_id:N strings give the same ids.
  delete json.choices[0].token_ids;
  assert.deepEqual(parseCompletion("vllm", json, 2, "test").tokens.map((t) => t.id), [
    27,
    12669,
    1350,
    522,
  ]);
  // Mismatched lengths are an error naming the request.
  json.choices[0].token_ids = [1, 2];
  assert.throws(
    () => parseCompletion("vllm", json, 2, "server X (request 7)"),
    (e) =>
      e instanceof ArpoError &&
      /server X \(request 7\): 2 token ids but 4 token_logprobs/.test(e.message),
  );
});

Deno.test("openai answer with token text: resolved through the vocabulary, else a clear error", async () => {
  const json = await fixture("vllm_completions_text_tokens");
  const vocab: Record<string, number> = { a: 97, b: 98, c: 99 };
  const r = parseCompletion("openai", json, 2, "t", (s) => vocab[s]);
  assert.deepEqual(r.tokens.map((t) => t.id), [97, 98]);
  assert.deepEqual(r.tokens[1].top, [[97, -0.75], [98, -1.25]]);
  assert.equal(r.finish, "length");
  assert.throws(
    () => parseCompletion("openai", json, 2, "t", () => undefined),
    /token text "a", which names no token id; token-exact rollouts need ids/,
  );
});

Deno.test("sglang /generate answer: [logprob, id, text] triples, top-k rows, finish matched", async () => {
  const json = await fixture("sglang_generate");
  const r = parseCompletion("sglang", json, 2, "t");
  assert.deepEqual(r.tokens.map((t) => t.id), [220, 19, 17, 522]);
  assert.deepEqual(r.tokens.map((t) => t.logprob), [-0.05, -0.7, -0.01, -0.002]);
  assert.deepEqual(r.tokens[1].top, [[19, -0.7], [18, -0.9]]);
  assert.equal(r.finish, "stop");
  assert.equal(r.matched, "</answer>");
  // A list of one (batch form) parses the same.
  assert.deepEqual(parseCompletion("sglang", [json], 2, "t"), r);
  // The request is SGLang's GenerateReqInput.
  const { path, body } = completionRequest("sglang", { ...ASK, topK: 40 });
  assert.equal(path, "/generate");
  assert.deepEqual(body.input_ids, ASK.prompt);
  assert.equal(body.return_logprob, true);
  assert.equal(body.top_logprobs_num, 20);
  const sp = body.sampling_params as Record<string, unknown>;
  assert.equal(sp.max_new_tokens, 64);
  assert.equal(sp.top_k, 40);
  assert.equal(sp.no_stop_trim, true);
  assert.equal(sp.sampling_seed, ASK.seed);
  assert.deepEqual(sp.stop_token_ids, ASK.stopTokenIds);
  // Ids that disagree with output_ids are an error.
  json.output_ids[1] = 5;
  assert.throws(() => parseCompletion("sglang", json, 2, "t"), /output_ids\[1\] = 5/);
  assert.throws(() => parseCompletion("sglang", { text: "x" }, 2, "t"), /meta_info/);
});

Deno.test("chat completions logprobs format: tokens with their top entries", async () => {
  const rows = parseChatLogprobs(await fixture("chat_completions_logprobs"), "t");
  assert.deepEqual(rows, [
    { token: "4", logprob: -0.25, top: [["4", -0.25], ["6", -1.75]] },
    { token: "2", logprob: -0.01, top: [["2", -0.01], ["0", -5]] },
  ]);
  assert.throws(() => parseChatLogprobs({ choices: [{}] }, "t"), /logprobs.content is missing/);
});

Deno.test("top-k entropy estimate is the reference mode's formula", () => {
  const top: [number, number][] = [[3, Math.log(0.5)], [4, Math.log(0.25)]];
  for (const [id, lp] of [[3, Math.log(0.5)], [9, Math.log(0.1)]] as [number, number][]) {
    assert.equal(topKEntropyOf(id, lp, top), topKEntropy({ id, logprob: lp, entropy: 0, top }));
  }
  // Sampled outside the top: its term is added.
  const h = -(0.5 * Math.log(0.5) + 0.25 * Math.log(0.25) + 0.1 * Math.log(0.1));
  assert.ok(Math.abs(topKEntropyOf(9, Math.log(0.1), top) - h) < 1e-12);
});
