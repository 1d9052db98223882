// The ONNX policy on `device: webgpu` (ONNX Runtime's WebGPU provider; in CI a software Vulkan
// device, Mesa's lavapipe, installed by scripts/ci/install_vulkan.sh) against the same policy on
// the CPU: next-token logits within LOGIT_TOL (and transformers' reference logits within the
// fixtures' 1e-4), greedy generation token for token, a batch of rows of different lengths (the
// padded buckets of the webgpu path), teacher-forced scoring, and a forked rollout whose sampled
// tokens agree. Skipped, saying why, where the provider cannot start.
import assert from "node:assert/strict";
import { loadModelDir } from "../src/model/load.ts";
import { TokenIdsOnly } from "../src/model/tokenizer_ids.ts";
import { webgpuStartError } from "../src/onnx/session.ts";
import { OnnxPolicy } from "../src/policy/onnx_policy.ts";
import { stream } from "../src/rng.ts";
import { fixtureDir, loadReference, maxAbsDiff } from "./model_fixtures.ts";

/**
 * |Δlogit| allowed between the WebGPU and CPU kernels (different summation orders in f32), the
 * same bound the CPU decoder meets against transformers (tests/model_decoder_test.ts).
 */
const LOGIT_TOL = 1e-4;
/** |Δ log-probability| allowed for scored and sampled tokens. */
const LOGP_TOL = 1e-4;

const why = await webgpuStartError();
if (why) console.log(`webgpu tests skipped: the WebGPU provider cannot start here (${why})`);

async function policies(name: string): Promise<{ cpu: OnnxPolicy; gpu: OnnxPolicy }> {
  const dir = fixtureDir(name);
  const model = await loadModelDir(dir, { requireTokenizer: false });
  const tok = new TokenIdsOnly(model.config.vocabSize, [], dir);
  const cpu = await OnnxPolicy.create(model, tok, { threads: 1 });
  const gpu = await OnnxPolicy.create(model, tok, { device: "webgpu" });
  return { cpu, gpu };
}

const GREEDY = { temperature: 0, topP: 1, topK: 0 };

Deno.test({
  name: "webgpu decoder tiny-qwen2: logits, greedy generation and scores match the CPU",
  ignore: !!why,
  async fn() {
    const { cpu, gpu } = await policies("tiny-qwen2");
    try {
      assert.equal(gpu.device, "webgpu");
      assert.ok(gpu.runtime.session.adapter, "a webgpu session names its adapter");
      const ref = await loadReference("tiny-qwen2");
      const V = ref.vocab;
      // All reference rows in one call: 3 rows (padded to 4 on webgpu) of different lengths.
      const seqsOf = (p: OnnxPolicy) => ref.rows.map((r) => p.create(r, stream(0, "logits")));
      const [a, b] = [await cpu.logits(seqsOf(cpu)), await gpu.logits(seqsOf(gpu))];
      ref.rows.forEach((row, i) => {
        const last = ref.logits[i].subarray((row.length - 1) * V, row.length * V);
        const d = maxAbsDiff(b[i], a[i]), t = maxAbsDiff(b[i], last);
        assert.ok(d <= LOGIT_TOL, `row ${i}: max |Δlogit| webgpu vs cpu ${d} > ${LOGIT_TOL}`);
        assert.ok(t <= 1e-4, `row ${i}: max |Δlogit| webgpu vs transformers ${t} > 1e-4`);
      });
      // Greedy: the same 24 tokens as the CPU and as transformers' reference continuation.
      for (const [k, row] of ref.greedy_prompt_rows.entries()) {
        const gen = async (p: OnnxPolicy) => {
          const s = p.create(ref.rows[row], stream(0, "greedy"));
          const [r] = await p.generate([{ seq: s, stop: { maxTokens: 24 } }], GREEDY);
          return r.tokens;
        };
        const [x, y] = [await gen(cpu), await gen(gpu)];
        assert.deepEqual(y.map((t) => t.id), x.map((t) => t.id), `greedy row ${row}`);
        assert.deepEqual(
          y.slice(0, ref.greedy[k].length).map((t) => t.id),
          ref.greedy[k],
          `greedy row ${row} vs transformers`,
        );
        for (let i = 0; i < x.length; i++) {
          assert.ok(Math.abs(x[i].logprob - y[i].logprob) <= LOGP_TOL, `logprob ${i}`);
        }
      }
      // Teacher-forced scoring (the webgpu path pads rows and positions to buckets).
      const items = ref.rows.map((tokens) => ({ tokens, from: 1 }));
      const [sa, sb] = [await cpu.score(items), await gpu.score(items)];
      sa.forEach((s, i) => {
        const d = maxAbsDiff(sb[i].logprobs, s.logprobs);
        assert.ok(d <= LOGP_TOL, `score ${i}: |Δlogp| ${d}`);
        assert.ok(maxAbsDiff(sb[i].entropies, s.entropies) <= LOGP_TOL, `entropy ${i}`);
      });
    } finally {
      await cpu.dispose();
      await gpu.dispose();
    }
  },
});

Deno.test({
  name: "webgpu decoder tiny-llama: a forked rollout samples the CPU's tokens",
  ignore: !!why,
  async fn() {
    const { cpu, gpu } = await policies("tiny-llama");
    try {
      // A prompt, a shared prefix of 6 sampled tokens, then three children sampled together
      // (3 rows: a padded batch on webgpu), each from its own stream.
      const rollout = async (p: OnnxPolicy) => {
        const root = p.create([1, 17, 42, 99, 5], stream(7, "root"));
        const params = { temperature: 1, topP: 1, topK: 0 };
        const [head] = await p.generate([{ seq: root, stop: { maxTokens: 6 } }], params);
        const kids = [0, 1, 2].map((i) => p.fork(root, stream(7, "child", i)));
        const res = await p.generate(kids.map((seq) => ({ seq, stop: { maxTokens: 10 } })), params);
        return [head, ...res].map((r) => r.tokens);
      };
      const [x, y] = [await rollout(cpu), await rollout(gpu)];
      assert.deepEqual(y.map((r) => r.map((t) => t.id)), x.map((r) => r.map((t) => t.id)));
      x.forEach((r, i) =>
        r.forEach((t, j) =>
          assert.ok(Math.abs(t.logprob - y[i][j].logprob) <= LOGP_TOL, `row ${i} token ${j}`)
        )
      );
    } finally {
      await cpu.dispose();
      await gpu.dispose();
    }
  },
});
