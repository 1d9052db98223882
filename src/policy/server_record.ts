/**
 * The recorded-response store of a server policy. A server run is not bit-reproducible (batching,
 * kernels and the server's own sampler decide the tokens), so every answer is kept, keyed by the
 * digest of the request that produced it, and stored with the stage as its `policy_responses`
 * output: a rerun or `verify` answers the same requests from it without the server. The format is
 * JSON lines of canonical JSON: a header (what the server was, how entropies were obtained), then
 * one line per request in key order, so the same answers give the same bytes whatever the
 * scheduling was.
 */
import { ArpoError } from "../errors.ts";
import { canonicalJson } from "../store/canonical.ts";
import { digestJson } from "../store/hash.ts";
import type { ParsedCompletion, ParsedToken, ServerApi } from "./server_protocol.ts";

export const RESPONSES_FORMAT = "arpo-policy-responses/1";

/** What a run says about its server policy (the header line, and the stage's metrics). */
export interface ServerProvenance {
  backend: "server";
  url: string;
  model: string;
  api: ServerApi;
  /** The Policy digest the rollouts carry. */
  digest: string;
  /** A server run's tokens cannot be recomputed here; reruns replay `policy_responses`. */
  bit_reproducible: false;
  /** `exact`: the server returned full-vocabulary entropies; `top_k`: estimated from top-k. */
  entropy: "exact" | "top_k" | "none";
  top_k: number;
  /** The model's vocabulary size (entropy normalization of the rollouts). */
  vocab_size: number;
  tokenizer: { digest: string; checked_with_server: boolean };
}

/** The digest that keys a request's answer (what was sent, where). */
export function requestKey(path: string, body: unknown): string {
  return digestJson({ path, body });
}

type TokenLine = [number, number, number | null, [number, number][] | null];

interface ResponseLine {
  type: "response";
  key: string;
  tokens: TokenLine[];
  finish: ParsedCompletion["finish"];
  matched: string | number | null;
}

function toLine(key: string, r: ParsedCompletion): ResponseLine {
  return {
    type: "response",
    key,
    tokens: r.tokens.map((t) => [t.id, t.logprob, t.entropy ?? null, t.top ?? null]),
    finish: r.finish,
    matched: r.matched ?? null,
  };
}

function fromLine(l: ResponseLine, where: string): ParsedCompletion {
  if (l.type !== "response" || typeof l.key !== "string" || !Array.isArray(l.tokens)) {
    throw new ArpoError(`${where}: not a response line`);
  }
  const tokens = l.tokens.map(([id, logprob, entropy, top]) => {
    const t: ParsedToken = { id, logprob };
    if (entropy !== null) t.entropy = entropy;
    if (top !== null) t.top = top;
    return t;
  });
  const out: ParsedCompletion = { tokens, finish: l.finish };
  if (l.matched !== null) out.matched = l.matched;
  return out;
}

/** Answers by request key. */
export class ResponseLog {
  readonly #byKey = new Map<string, ParsedCompletion>();

  get size(): number {
    return this.#byKey.size;
  }

  get(key: string): ParsedCompletion | undefined {
    return this.#byKey.get(key);
  }

  put(key: string, r: ParsedCompletion): void {
    this.#byKey.set(key, r);
  }

  /** How the recorded entropies were obtained. */
  entropyKind(): ServerProvenance["entropy"] {
    let exact = 0, all = 0;
    for (const r of this.#byKey.values()) {
      for (const t of r.tokens) {
        all++;
        if (t.entropy !== undefined) exact++;
      }
    }
    return all === 0 ? "none" : exact === all ? "exact" : "top_k";
  }

  /** The stored form: header line, then the answers in key order. */
  serialize(header: ServerProvenance): Uint8Array {
    const keys = [...this.#byKey.keys()].sort();
    const lines = [
      canonicalJson({ type: "header", format: RESPONSES_FORMAT, ...header }),
      ...keys.map((k) => canonicalJson(toLine(k, this.#byKey.get(k)!))),
    ];
    return new TextEncoder().encode(lines.join("\n") + "\n");
  }

  /** Read a stored `policy_responses` object back. */
  static parse(bytes: Uint8Array, where: string): { header: ServerProvenance; log: ResponseLog } {
    const text = new TextDecoder().decode(bytes);
    const log = new ResponseLog();
    let header: ServerProvenance | undefined;
    text.split("\n").forEach((line, i) => {
      if (line === "") return;
      let v: Record<string, unknown>;
      try {
        v = JSON.parse(line);
      } catch {
        throw new ArpoError(`${where}, line ${i + 1}: not valid JSON`);
      }
      if (i === 0) {
        if (v.type !== "header" || v.format !== RESPONSES_FORMAT) {
          throw new ArpoError(
            `${where}: expected a ${RESPONSES_FORMAT} header line, found ${line.slice(0, 80)}`,
          );
        }
        const { type: _t, format: _f, ...rest } = v;
        header = rest as unknown as ServerProvenance;
        return;
      }
      const l = v as unknown as ResponseLine;
      log.put(l.key, fromLine(l, `${where}, line ${i + 1}`));
    });
    if (!header) throw new ArpoError(`${where}: empty (no header line)`);
    return { header, log };
  }
}
