/**
 * The HTTP side of a server policy: JSON requests to one inference server with a bound on the
 * requests in flight, a timeout per attempt, and retries with exponential backoff on what is
 * worth retrying (429, 500, 502, 503, 504, timeouts, refused or dropped connections). Every error
 * names the server and the request. The backoff has no jitter: nothing here draws randomness,
 * and a `Retry-After` header is honoured.
 */
import { ArpoError, describeError } from "../errors.ts";

export interface ServerClientOptions {
  /** Base URL, e.g. http://127.0.0.1:8000 (a trailing `/` or `/v1` is dropped). */
  url: string;
  headers?: Record<string, string>;
  /** Per attempt. */
  timeoutS: number;
  maxConcurrency: number;
  /** Retries after the first attempt. */
  retries: number;
  /** First backoff; doubles per retry, capped at 16× (default 250 ms). */
  backoffMs?: number;
  /** Aborts waiting, in-flight requests and backoffs (the run's Ctrl-C). */
  signal?: AbortSignal;
  /** For tests. */
  fetch?: typeof fetch;
}

export interface ClientStats {
  requests: number;
  retries: number;
  /** Most requests that were in flight at once. */
  maxInFlight: number;
}

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/**
 * Header values with `${env:NAME}` replaced by the environment variable NAME, so a manifest (and
 * the run identity and record, which hold it verbatim) can name a secret without containing it.
 * An unset variable is an error naming it.
 */
export function expandHeaders(
  headers: Record<string, string>,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    out[k] = v.replace(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const x = env(name);
      if (x === undefined) {
        throw new ArpoError(
          `policy.server.headers.${k}: the environment variable ${name} is not set`,
        );
      }
      return x;
    });
  }
  return out;
}

/** Base URL without a trailing slash or `/v1` (paths below are absolute). */
export function baseUrl(url: string): string {
  return url.replace(/\/+$/, "").replace(/\/v1$/, "");
}

/** A failed attempt, and whether another is worth making. */
class AttemptError extends Error {
  constructor(message: string, readonly retry: boolean, readonly afterMs?: number) {
    super(message);
  }
}

export class ServerClient {
  readonly base: string;
  readonly stats: ClientStats = { requests: 0, retries: 0, maxInFlight: 0 };
  #inFlight = 0;
  readonly #waiting: (() => void)[] = [];
  readonly #fetch: typeof fetch;

  constructor(readonly opts: ServerClientOptions) {
    this.base = baseUrl(opts.url);
    this.#fetch = opts.fetch ?? fetch;
  }

  /** POST `body` to `path`; the parsed JSON answer. `what` names the request in errors. */
  post(path: string, body: unknown, what: string): Promise<unknown> {
    return this.request("POST", path, body, what);
  }

  get(path: string, what: string): Promise<unknown> {
    return this.request("GET", path, undefined, what);
  }

  async request(method: string, path: string, body: unknown, what: string): Promise<unknown> {
    await this.#acquire();
    try {
      const max = this.opts.retries + 1;
      let last = "";
      let made = 0;
      for (let attempt = 1; attempt <= max; attempt++) {
        made = attempt;
        this.opts.signal?.throwIfAborted();
        this.stats.requests++;
        try {
          return await this.#attempt(method, path, body);
        } catch (e) {
          if (!(e instanceof AttemptError)) throw e;
          last = e.message;
          if (!e.retry || attempt === max) break;
          this.stats.retries++;
          const backoff = (this.opts.backoffMs ?? 250) * 2 ** Math.min(attempt - 1, 4);
          await this.#sleep(Math.max(backoff, e.afterMs ?? 0));
        }
      }
      throw new ArpoError(
        `policy server ${this.base}: ${method} ${path} (${what}) failed` +
          `${made > 1 ? ` after ${made} attempts` : ""}: ${last}`,
      );
    } finally {
      this.#release();
    }
  }

  async #attempt(method: string, path: string, body: unknown): Promise<unknown> {
    const timeout = AbortSignal.timeout(Math.round(this.opts.timeoutS * 1000));
    const signal = this.opts.signal ? AbortSignal.any([this.opts.signal, timeout]) : timeout;
    let res: Response;
    let text: string;
    try {
      res = await this.#fetch(this.base + path, {
        method,
        headers: {
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...this.opts.headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
      text = await res.text();
    } catch (e) {
      this.opts.signal?.throwIfAborted();
      if (timeout.aborted) {
        throw new AttemptError(`no answer within timeout_s = ${this.opts.timeoutS}`, true);
      }
      // Refused, reset or closed before an answer: the server may come back.
      throw new AttemptError(`connection failed: ${describeError(e)}`, true);
    }
    if (!res.ok) {
      const retryAfter = Number(res.headers.get("retry-after"));
      throw new AttemptError(
        `HTTP ${res.status} ${res.statusText}${text ? `: ${snippet(text)}` : ""}`,
        RETRY_STATUS.has(res.status),
        Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter, 60) * 1000 : undefined,
      );
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new AttemptError(`the answer is not JSON: ${snippet(text)}`, false);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const signal = this.opts.signal;
      const t = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(t);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async #acquire(): Promise<void> {
    while (this.#inFlight >= this.opts.maxConcurrency) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    this.#inFlight++;
    this.stats.maxInFlight = Math.max(this.stats.maxInFlight, this.#inFlight);
  }

  #release(): void {
    this.#inFlight--;
    this.#waiting.shift()?.();
  }
}

function snippet(text: string): string {
  const t = text.replace(/\s+/g, " ").trim();
  return t.length > 300 ? `${t.slice(0, 300)}…` : t;
}
