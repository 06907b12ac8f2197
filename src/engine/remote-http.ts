import http from "node:http";
import https from "node:https";
import pRetry from "p-retry";
import { UserError } from "../util/errors.js";

/**
 * JSON over HTTP to an OpenAI-compatible server, with the failure handling a long run needs: a timeout
 * per request, retries with exponential backoff on 429, 5xx and dropped or refused connections (a server
 * restarting mid-run), and one-line errors for what retrying cannot fix (wrong URL, 401, bad request).
 * node:http rather than fetch: undici's fixed 300 s header timeout would cut long non-streamed completions.
 */

/** A generation of 1,500 tokens on a loaded CPU server can take minutes; a dead server fails far sooner. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 600_000;
/** Retries after the first try: with the backoff below, about 30 s of waiting for a server to come back. */
export const DEFAULT_RETRIES = 5;
const BACKOFF = { minTimeout: 500, factor: 2, maxTimeout: 10_000, randomize: true } as const;
/** Connection failures worth retrying: the server dropped us, is restarting or is overloaded. */
const RETRYABLE_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "ECONNABORTED",
]);

export type HttpOptions = {
  apiKey?: string;
  timeoutMs?: number;
  retries?: number;
  signal?: AbortSignal;
  /** Called before each retry (for a progress line). */
  onRetry?: (attempt: number, why: string) => void;
};

/** An HTTP answer that is not 2xx: `status` decides whether it is retried. */
export class HttpStatusError extends Error {
  constructor(
    readonly url: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${url}: HTTP ${status}${body ? ` (${summarizeBody(body)})` : ""}`);
  }
}

function summarizeBody(body: string): string {
  try {
    const j = JSON.parse(body) as {
      error?: { message?: string } | string;
      message?: string;
      detail?: unknown;
    };
    const m =
      (typeof j.error === "string" ? j.error : j.error?.message) ??
      j.message ??
      (j.detail == null ? undefined : JSON.stringify(j.detail));
    if (m) return m.split("\n")[0].slice(0, 300);
  } catch {
    // not JSON: show its first line
  }
  return body.split("\n")[0].slice(0, 300);
}

const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

/** One request, no retry. Resolves with the parsed JSON body of a 2xx answer. */
export function requestJsonOnce(
  method: "GET" | "POST",
  url: string,
  body: unknown,
  opts: Pick<HttpOptions, "apiKey" | "timeoutMs" | "signal"> = {},
): Promise<unknown> {
  const u = new URL(url);
  const lib = u.protocol === "https:" ? https : http;
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = { accept: "application/json" };
  if (payload) {
    headers["content-type"] = "application/json";
    headers["content-length"] = String(payload.length);
  }
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
  return new Promise((resolve, reject) => {
    const req = lib.request(
      u,
      {
        method,
        headers,
        agent: u.protocol === "https:" ? agents.https : agents.http,
        timeout: opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
        signal: opts.signal,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) return reject(new HttpStatusError(url, status, text));
          try {
            resolve(JSON.parse(text));
          } catch {
            reject(
              new UserError(
                `${url}: the answer is not JSON (${text.slice(0, 120)}); is this an OpenAI-compatible server?`,
              ),
            );
          }
        });
      },
    );
    req.on("timeout", () =>
      req.destroy(
        Object.assign(
          new Error(`${url}: no answer within ${opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS} ms`),
          { code: "ETIMEDOUT" },
        ),
      ),
    );
    req.on("error", reject);
    req.end(payload);
  });
}

export function isRetryable(e: unknown): boolean {
  if (e instanceof HttpStatusError) return e.status === 429 || e.status >= 500;
  const code = (e as { code?: string } | undefined)?.code;
  return code != null && RETRYABLE_CODES.has(code);
}

/** Turns a final failure into one line that says what to check. */
export function explainHttpError(e: unknown, url: string): Error {
  if (e instanceof UserError) return e;
  if (e instanceof HttpStatusError) {
    if (e.status === 401 || e.status === 403)
      return new UserError(
        `${url}: HTTP ${e.status}, the server wants an API key (set CATRL_API_KEY to the server's key)`,
        1,
        { cause: e },
      );
    if (e.status === 404)
      return new UserError(
        `${url}: HTTP 404, no such endpoint; is the base URL right (e.g. http://host:8080/v1)?`,
        1,
        {
          cause: e,
        },
      );
    return new UserError(e.message, 1, { cause: e });
  }
  const err = e as { code?: string; message?: string; name?: string };
  if (err?.name === "AbortError") return e as Error;
  switch (err?.code) {
    case "ECONNREFUSED":
      return new UserError(`${url}: connection refused; is the server running and listening there?`, 1, {
        cause: e,
      });
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new UserError(`${url}: unknown host`, 1, { cause: e });
    case "ECONNRESET":
    case "EPIPE":
      return new UserError(`${url}: the server closed the connection (crashed or restarted?)`, 1, {
        cause: e,
      });
    case "ETIMEDOUT":
      return new UserError(err.message ?? `${url}: timed out`, 1, { cause: e });
    default:
      return new UserError(`${url}: ${err?.message ?? String(e)}`, 1, { cause: e });
  }
}

/** A request with timeout and retries; fails with one line. */
export async function requestJson(
  method: "GET" | "POST",
  url: string,
  body: unknown,
  opts: HttpOptions = {},
): Promise<unknown> {
  try {
    return await pRetry(() => requestJsonOnce(method, url, body, opts), {
      retries: opts.retries ?? DEFAULT_RETRIES,
      ...BACKOFF,
      signal: opts.signal,
      shouldRetry: ({ error }) => isRetryable(error),
      onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
        if (retriesLeft > 0) opts.onRetry?.(attemptNumber, (error as Error).message);
      },
    });
  } catch (e) {
    throw explainHttpError(e, url);
  }
}
