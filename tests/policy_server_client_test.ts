/**
 * The server policy's HTTP client against misbehaving servers: 500s then an answer (retried with
 * backoff), a server that keeps failing, one that hangs, one that drops connections, 4xx (not
 * retried), the bound on requests in flight, headers from the environment; and the backend on a
 * fake vLLM-format server (top-k entropy, a stop string cut client-side, tokenizer check).
 */
import assert from "node:assert/strict";
import { expandHeaders, ServerClient } from "../src/policy/server_client.ts";
import { ArpoError } from "../src/errors.ts";

/** A local HTTP server with `handler`; closed after `f`. */
async function withServer(
  handler: (req: Request) => Response | Promise<Response>,
  f: (url: string) => Promise<void>,
): Promise<void> {
  const ac = new AbortController();
  let port = 0;
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    onListen: (a) => (port = a.port),
  }, handler);
  try {
    await f(`http://127.0.0.1:${port}`);
  } finally {
    ac.abort();
    await server.finished;
  }
}

const client = (url: string, o: Partial<ConstructorParameters<typeof ServerClient>[0]> = {}) =>
  new ServerClient({ url, timeoutS: 2, maxConcurrency: 4, retries: 3, backoffMs: 5, ...o });

Deno.test("500, 503 with Retry-After, then an answer: retried, the answer returned", async () => {
  let n = 0;
  await withServer(() => {
    n++;
    if (n === 1) return new Response("boom", { status: 500 });
    if (n === 2) return new Response("busy", { status: 503, headers: { "retry-after": "0" } });
    return Response.json({ ok: n });
  }, async (url) => {
    const c = client(url);
    assert.deepEqual(await c.post("/v1/completions", {}, "request 1"), { ok: 3 });
    assert.equal(c.stats.retries, 2);
    assert.equal(c.stats.requests, 3);
  });
});

Deno.test("a server that keeps failing: error naming the server, request, attempts and status", async () => {
  let n = 0;
  await withServer(() => {
    n++;
    return new Response("internal error: CUDA out of memory", { status: 500 });
  }, async (url) => {
    await assert.rejects(
      () => client(url, { retries: 2 }).post("/v1/completions", {}, "sequence 4, request ab12"),
      (e) =>
        e instanceof ArpoError &&
        e.message.includes(
          `policy server ${url}: POST /v1/completions (sequence 4, request ab12)`,
        ) &&
        /failed after 3 attempts: HTTP 500 Internal Server Error: internal error: CUDA out of memory/
          .test(e.message),
    );
    assert.equal(n, 3);
  });
});

Deno.test("a 400 is not retried", async () => {
  let n = 0;
  await withServer(() => {
    n++;
    return Response.json({ error: { message: "logprobs 50 > max_logprobs 20" } }, { status: 400 });
  }, async (url) => {
    await assert.rejects(
      () => client(url).post("/v1/completions", {}, "r"),
      /\(r\) failed: HTTP 400 Bad Request: .*max_logprobs 20/,
    );
    assert.equal(n, 1, "one attempt only");
  });
});

Deno.test("a server that hangs: each attempt times out, then a clear error (no stuck run)", async () => {
  let n = 0;
  const pending: (() => void)[] = [];
  await withServer(async () => {
    n++;
    await new Promise<void>((r) => pending.push(r));
    return Response.json({});
  }, async (url) => {
    const t0 = performance.now();
    await assert.rejects(
      () => client(url, { timeoutS: 0.2, retries: 1 }).post("/generate", {}, "r"),
      /failed after 2 attempts: no answer within timeout_s = 0.2/,
    );
    assert.ok(performance.now() - t0 < 5000);
    assert.equal(n, 2);
    for (const r of pending) r();
  });
});

Deno.test("dropped connections: retried; a server that is gone gives a connection error", async () => {
  // A raw TCP server that closes the first two connections before answering, then answers.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  let n = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      n++;
      const buf = new Uint8Array(65536);
      await conn.read(buf);
      if (n <= 2) {
        conn.close();
        continue;
      }
      const body = '{"ok":true}';
      await conn.write(new TextEncoder().encode(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n` +
          `connection: close\r\n\r\n${body}`,
      ));
      conn.close();
    }
  })();
  const c = client(`http://127.0.0.1:${port}`);
  assert.deepEqual(await c.post("/v1/completions", {}, "r"), { ok: true });
  assert.equal(c.stats.retries, 2);
  listener.close();
  await serving.catch(() => {});
  await assert.rejects(
    () => client(`http://127.0.0.1:${port}`, { retries: 1 }).get("/v1/models", "list"),
    /GET \/v1\/models \(list\) failed after 2 attempts: connection failed/,
  );
});

Deno.test("at most max_concurrency requests are in flight", async () => {
  let now = 0, peak = 0;
  await withServer(async () => {
    now++;
    peak = Math.max(peak, now);
    await new Promise((r) => setTimeout(r, 30));
    now--;
    return Response.json({});
  }, async (url) => {
    const c = client(url, { maxConcurrency: 3 });
    await Promise.all(Array.from({ length: 10 }, (_, i) => c.post("/x", {}, `r${i}`)));
    assert.equal(peak, 3, "the server saw at most 3 at once, and 3 were used");
    assert.equal(c.stats.maxInFlight, 3);
  });
});

Deno.test("the run's abort signal stops a request at once", async () => {
  await withServer(async () => {
    await new Promise((r) => setTimeout(r, 2000));
    return Response.json({});
  }, async (url) => {
    const ac = new AbortController();
    const p = client(url, { signal: ac.signal, timeoutS: 10 }).post("/x", {}, "r");
    setTimeout(() => ac.abort(new DOMException("interrupted", "AbortError")), 50);
    const t0 = performance.now();
    await assert.rejects(p, /interrupted/);
    assert.ok(performance.now() - t0 < 1000);
  });
});

Deno.test("headers: ${env:NAME} is read from the environment when sent; unset is an error", async () => {
  const env = (n: string) => (n === "API_KEY" ? "s3cret" : undefined);
  assert.deepEqual(expandHeaders({ Authorization: "Bearer ${env:API_KEY}", X: "plain" }, env), {
    Authorization: "Bearer s3cret",
    X: "plain",
  });
  assert.throws(
    () => expandHeaders({ Authorization: "Bearer ${env:MISSING}" }, env),
    /policy\.server\.headers\.Authorization: the environment variable MISSING is not set/,
  );
  let seen: string | null = null;
  await withServer((req) => {
    seen = req.headers.get("authorization");
    return Response.json({});
  }, async (url) => {
    await client(url, { headers: expandHeaders({ Authorization: "Bearer ${env:API_KEY}" }, env) })
      .get("/v1/models", "list");
  });
  assert.equal(seen, "Bearer s3cret");
});

Deno.test("ServerPolicy on a vLLM-format server: top-k entropy, a stop string cut here, the record says so", async () => {
  const { ServerPolicy } = await import("../src/policy/server_policy.ts");
  const { policyServerSchema } = await import("../src/manifest/policy.ts");
  const { loadTokenizer } = await import("../src/model/tokenizer.ts");
  const { topKEntropyOf } = await import("../src/policy/server_protocol.ts");
  const { Stream } = await import("../src/rng.ts");
  const tok = await loadTokenizer({});
  const ids = tok.encode("ab</python>cd");
  const bodies: Record<string, unknown>[] = [];
  await withServer(async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/v1/models") return Response.json({ data: [{ id: "m" }] });
    const body = await req.json();
    if (path === "/tokenize") return Response.json({ tokens: tok.encode(body.prompt) });
    bodies.push(body);
    // A server that ignored the stop string: it answers past `</python>`.
    return Response.json({
      choices: [{
        logprobs: {
          tokens: ids.map((i) => `token_id:${i}`),
          token_logprobs: ids.map(() => -0.5),
          top_logprobs: ids.map((i) => ({ [`token_id:${i}`]: -0.5, "token_id:7": -1.5 })),
        },
        finish_reason: "length",
      }],
    });
  }, async (url) => {
    const config = policyServerSchema.parse({
      url,
      model: "m",
      tokenizer: "byte",
      top_logprobs: 2,
    });
    const p = await ServerPolicy.connect({ config, tokenizer: tok });
    const seq = p.create(tok.encode("q"), new Stream([1]));
    const [r] = await p.generate(
      [{ seq, stop: { maxTokens: 32, strings: ["</python>"] } }],
      { temperature: 0.6, topP: 0.95, topK: 0 },
      { topLogprobs: 2 },
    );
    assert.deepEqual(r.stop, { reason: "string", text: "</python>" });
    assert.equal(tok.decode(r.tokens.map((t) => t.id)), "ab</python>");
    const top: [number, number][] = [[ids[0], -0.5], [7, -1.5]];
    assert.equal(r.tokens[0].entropy, topKEntropyOf(ids[0], -0.5, top));
    assert.deepEqual(r.tokens[0].top, top);
    const h = p.header();
    assert.equal(h.entropy, "top_k");
    assert.equal(h.top_k, 2);
    assert.equal(h.bit_reproducible, false);
    assert.equal(h.tokenizer.checked_with_server, true);
    // What went over the wire: the sequence as ids, vLLM's extras, a seed, the stop string.
    assert.deepEqual(bodies[0].prompt, tok.encode("q"));
    assert.equal(bodies[0].return_tokens_as_token_ids, true);
    assert.equal(bodies[0].include_stop_str_in_output, true);
    assert.deepEqual(bodies[0].stop, ["</python>"]);
    assert.equal(typeof bodies[0].seed, "number");
  });
  // A server whose tokenizer disagrees with the run's is refused before any generation.
  await withServer((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/v1/models") return Response.json({ data: [{ id: "m" }] });
    return Response.json({ tokens: [1, 2, 3] });
  }, async (url) => {
    const config = policyServerSchema.parse({ url, model: "m", tokenizer: "byte" });
    await assert.rejects(
      () => ServerPolicy.connect({ config, tokenizer: tok }),
      /the server's tokenizer and this run's .* encode a probe text differently/,
    );
  });
});
