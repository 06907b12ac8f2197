import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { canLoadAdapters } from "../src/engine/capabilities.js";
import { isEndpointUrl, parseEndpoint } from "../src/engine/remote-endpoint.js";
import { openRemoteEngine } from "../src/engine/remote-engine.js";
import { isUserError } from "../src/util/errors.js";

/**
 * The remote engine's failure handling against a scripted stand-in for llama-server on loopback: what
 * each failure looks like to the user (one line) and what is retried. The real server's behaviour is
 * covered in remote-llama-server.test.ts.
 */

// biome-ignore lint/suspicious/noExplicitAny: request bodies are read as loose JSON
type Handler = (req: http.IncomingMessage, body: any, res: http.ServerResponse) => void;
const servers: http.Server[] = [];

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

/** Answers like llama-server (props, models, tokenize, completions with logprobs) unless `override` does. */
async function fakeServer(override?: Handler, opts: { logprobs?: boolean } = {}): Promise<string> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
      if (override && !res.headersSent) override(req, body, res);
      if (res.headersSent || res.writableEnded) return;
      switch (req.url) {
        case "/v1/models":
          return json(res, 200, { data: [{ id: "fake.gguf", meta: { n_vocab: 8, n_ctx_train: 64 } }] });
        case "/props":
          return json(res, 200, {
            build_info: "b0-fake",
            total_slots: 2,
            default_generation_settings: { n_ctx: 64 },
          });
        case "/tokenize":
          return json(res, 200, { tokens: [...String(body.content)].map((c) => c.charCodeAt(0) % 8) });
        case "/v1/completions": {
          const n = body.max_tokens as number;
          const content = Array.from({ length: n }, (_, i) => ({
            id: ((body.seed ?? 0) + i) % 8,
            prob: 0.5,
          }));
          return json(res, 200, {
            choices: [
              {
                text: "x".repeat(n),
                finish_reason: "length",
                logprobs: opts.logprobs === false ? null : { content },
              },
            ],
          });
        }
        default:
          return json(res, 404, { error: { message: "File Not Found" } });
      }
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
}

afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a failure");
}

describe("model flags", () => {
  it("tell a server URL from a GGUF path or download", () => {
    expect(isEndpointUrl("http://gpu:8080/v1")).toBe(true);
    expect(isEndpointUrl("https://gpu/serve")).toBe(true);
    expect(isEndpointUrl("https://huggingface.co/a/b/resolve/main/m.gguf")).toBe(false);
    expect(isEndpointUrl("hf:owner/repo:Q8_0")).toBe(false);
    expect(isEndpointUrl("/models/m.gguf")).toBe(false);
    expect(parseEndpoint("http://h:1/v1/")).toEqual({ base: "http://h:1/v1", root: "http://h:1" });
    expect(parseEndpoint("http://h:1")).toEqual({ base: "http://h:1/v1", root: "http://h:1" });
    expect(() => parseEndpoint("http://user:key@h:1/v1")).toThrow(/CATRL_API_KEY/);
  });
});

describe("RemoteEngine against a scripted server", () => {
  it("opens, reports the server's identity and generates one request per rollout with its own seed", async () => {
    const seeds: number[] = [];
    const url = await fakeServer((req, body) => {
      if (req.url === "/v1/completions" && body.max_tokens > 1) seeds.push(body.seed);
    });
    const engine = await openRemoteEngine({ url, apiKey: undefined });
    expect(engine.info.remote).toEqual({
      url,
      server: "llama-server",
      modelId: "fake.gguf",
      version: "b0-fake",
    });
    expect(engine.info.trainContextSize).toBe(64);
    expect(canLoadAdapters(engine)).toBe(false);
    const out = await engine.generate([
      { prompt: "ab", n: 3, maxTokens: 4, seed: 10, sampling: { temperature: 1, topK: 0, topP: 1, minP: 0 } },
    ]);
    expect(seeds.sort()).toEqual([10, 11, 12]);
    expect(out[0].map((r) => r.seed)).toEqual([10, 11, 12]);
    expect(out[0][1].tokens).toEqual([3, 4, 5, 6]);
    expect(out[0][1].logprobs[0]).toBeCloseTo(Math.log(0.5), 12);
    expect(out[0][1].finishReason).toBe("max_tokens");
    // (tokenizePrompt blocks this thread, so it cannot be served by a server in this same thread: the
    // real-server test covers it.)
    await engine.dispose();
  });

  it("retries a 503 and a dropped connection, then succeeds", async () => {
    let failures = 0;
    const url = await fakeServer((req, _body, res) => {
      if (req.url !== "/v1/completions" || failures >= 2) return;
      failures++;
      if (failures === 1) json(res, 503, { error: { message: "loading model" } });
      else req.socket.destroy();
    });
    const engine = await openRemoteEngine({ url, apiKey: undefined });
    failures = 0;
    const out = await engine.generate([
      { prompt: "a", n: 1, maxTokens: 2, seed: 1, sampling: { temperature: 1, topK: 0, topP: 1, minP: 0 } },
    ]);
    expect(failures).toBe(2);
    expect(out[0][0].tokens).toEqual([1, 2]);
  });

  it("fails in one line on a refused connection, a wrong URL, a 401, and a model without log-probs", async () => {
    const dead = await fakeServer();
    await new Promise((r) => servers.pop()?.close(r));
    const refused = await failure(openRemoteEngine({ url: dead, apiKey: undefined }));
    expect(isUserError(refused)).toBe(true);
    expect(refused.message).toMatch(/connection refused/);

    const wrong = await failure(openRemoteEngine({ url: `${await fakeServer()}/nope`, apiKey: undefined }));
    expect(wrong.message).toMatch(/HTTP 404, no such endpoint/);

    const auth = await fakeServer((req, _b, res) => {
      if (req.headers.authorization !== "Bearer right")
        json(res, 401, { error: { message: "Invalid API Key" } });
    });
    const denied = await failure(
      openRemoteEngine({ url: auth, apiKey: { value: "wrong", from: "CATRL_API_KEY" } }),
    );
    expect(denied.message).toMatch(/HTTP 401.*CATRL_API_KEY/);
    await expect(
      openRemoteEngine({ url: auth, apiKey: { value: "right", from: "CATRL_API_KEY" } }),
    ).resolves.toBeDefined();

    const noLogprobs = await failure(
      openRemoteEngine({ url: await fakeServer(undefined, { logprobs: false }), apiKey: undefined }),
    );
    expect(noLogprobs.message).toMatch(/returns no log-probs/);
    for (const e of [refused, wrong, denied, noLogprobs]) expect(e.message.split("\n")).toHaveLength(1);
  });

  it("refuses teacher-forced scoring on llama-server, naming the estimator", async () => {
    const engine = await openRemoteEngine({ url: await fakeServer(), apiKey: undefined });
    const e = await failure(engine.score([{ prompt: "a", continuation: [1, 2] }]));
    expect(e.message).toMatch(/mutual-predictability/);
  });
});
