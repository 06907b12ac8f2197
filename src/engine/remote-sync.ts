import { MessageChannel, receiveMessageOnPort, Worker } from "node:worker_threads";
import { explainHttpError, HttpStatusError, isRetryable } from "./remote-http.js";

/**
 * Blocking JSON requests, for the few `Engine` methods that are synchronous by contract
 * (`tokenizePrompt`, `renderPrompt`, `countTokens`: callers use them for length checks in plain loops).
 * A remote engine can only answer them from the server's /tokenize and /apply-template, so the request
 * runs in a helper thread while this one waits on an Atomics flag (the technique of `synckit`). Each
 * call is one short round trip, and the engine caches answers, so the wait is a few ms per new prompt.
 */

const SYNC_TIMEOUT_MS = 30_000;
const SYNC_RETRIES = 3;
const SYNC_BACKOFF_MS = 500;

// Plain JS, evaluated in the worker (a .ts worker file would need dist/ even under vitest).
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const http = require("node:http");
const https = require("node:https");
parentPort.on("message", ({ flag, port, method, url, body, headers, timeoutMs }) => {
  const done = (msg) => { port.postMessage(msg); port.close(); Atomics.store(flag, 0, 1); Atomics.notify(flag, 0); };
  const u = new URL(url);
  const lib = u.protocol === "https:" ? https : http;
  const req = lib.request(u, { method, headers, timeout: timeoutMs }, (res) => {
    const chunks = [];
    res.on("data", (c) => chunks.push(c));
    res.on("error", (e) => done({ error: { message: e.message, code: e.code } }));
    res.on("end", () => done({ status: res.statusCode, text: Buffer.concat(chunks).toString("utf8") }));
  });
  req.on("timeout", () => req.destroy(Object.assign(new Error(url + ": no answer within " + timeoutMs + " ms"), { code: "ETIMEDOUT" })));
  req.on("error", (e) => done({ error: { message: e.message, code: e.code } }));
  req.end(body);
});
`;

type WorkerAnswer = { status?: number; text?: string; error?: { message: string; code?: string } };

let worker: Worker | null = null;

function helper(): Worker {
  if (!worker) {
    worker = new Worker(WORKER_SOURCE, { eval: true });
    // Never keep the process alive for this thread.
    worker.unref();
    worker.on("error", () => {
      worker = null;
    });
  }
  return worker;
}

function once(method: "GET" | "POST", url: string, body: unknown, apiKey?: string): unknown {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string> = { accept: "application/json" };
  if (payload) headers["content-type"] = "application/json";
  if (apiKey) headers.authorization = `Bearer ${apiKey}`;
  helper().postMessage(
    { flag, port: port2, method, url, body: payload, headers, timeoutMs: SYNC_TIMEOUT_MS },
    [port2],
  );
  const waited = Atomics.wait(flag, 0, 0, SYNC_TIMEOUT_MS + 1_000);
  const msg = receiveMessageOnPort(port1)?.message as WorkerAnswer | undefined;
  port1.close();
  if (waited === "timed-out" || !msg)
    throw Object.assign(new Error(`${url}: no answer within ${SYNC_TIMEOUT_MS} ms`), { code: "ETIMEDOUT" });
  if (msg.error) throw Object.assign(new Error(msg.error.message), { code: msg.error.code });
  const status = msg.status ?? 0;
  const text = msg.text ?? "";
  if (status < 200 || status >= 300) throw new HttpStatusError(url, status, text);
  return JSON.parse(text);
}

/** A blocking request with a few retries; fails with the same one-line errors as `requestJson`. */
export function requestJsonSync(
  method: "GET" | "POST",
  url: string,
  body: unknown,
  apiKey?: string,
): unknown {
  for (let attempt = 0; ; attempt++) {
    try {
      return once(method, url, body, apiKey);
    } catch (e) {
      if (attempt >= SYNC_RETRIES || !isRetryable(e)) throw explainHttpError(e, url);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, SYNC_BACKOFF_MS * 2 ** attempt);
    }
  }
}
