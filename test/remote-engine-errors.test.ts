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

/** Answers as vLLM's OpenAI server documents (protocol.py): legacy logprobs, token_id:N, prompt_logprobs. */
async function fakeVllm(seen: Record<string, unknown>[]): Promise<string> {
  return fakeServer((req, body, res) => {
    const toks = (s: string) => [...s].map((c) => c.charCodeAt(0) % 50);
    switch (req.url) {
      case "/props":
        return json(res, 404, { detail: "Not Found" });
      case "/version":
        return json(res, 200, { version: "0.11.0" });
      case "/v1/models":
        return json(res, 200, { object: "list", data: [{ id: "Qwen/Qwen3-4B", max_model_len: 4096 }] });
      case "/tokenize":
        return json(res, 200, { count: 1, max_model_len: 4096, tokens: toks(String(body.prompt)) });
      case "/v1/completions": {
        seen.push(body);
        if (body.prompt_logprobs != null) {
          // Position 0 has no log-prob; position i gives token i (and the top alternative) given the rest.
          const plp = (body.prompt as number[]).map((t, i) =>
            i === 0 ? null : { [String(t)]: { logprob: -i / 10, rank: 1 } },
          );
          return json(res, 200, { choices: [{ text: "x", finish_reason: "length", prompt_logprobs: plp }] });
        }
        const n = body.max_tokens as number;
        const ids = Array.from({ length: n }, (_, i) => 40 + i);
        return json(res, 200, {
          choices: [
            {
              text: "ab",
              finish_reason: n > 3 ? "stop" : "length",
              stop_reason: body.stop ? "\n" : null,
              logprobs: {
                text_offset: ids.map((_, i) => i),
                tokens: ids.map((t) => `token_id:${t}`),
                token_logprobs: ids.map((_, i) => -0.5 - i),
                top_logprobs: ids.map((t) => ({ [`token_id:${t}`]: -0.5, "token_id:7": -1.5 })),
              },
            },
          ],
        });
      }
    }
  });
}

describe("RemoteEngine against a scripted vLLM (its documented answer shapes)", () => {
  it("reads identity, sampled token ids, finish reasons, judge alternatives and prompt log-probs", async () => {
    const seen: Record<string, unknown>[] = [];
    const engine = await openRemoteEngine({ url: await fakeVllm(seen), apiKey: undefined });
    expect(engine.info.remote).toMatchObject({
      server: "vllm",
      modelId: "Qwen/Qwen3-4B",
      version: "vllm 0.11.0",
    });
    expect(engine.info.family).toBe("qwen3");
    expect(engine.info.trainContextSize).toBe(4096);
    const sampling = { temperature: 0.7, topK: 0, topP: 0.8, minP: 0 };
    const [[eog], [stop]] = await engine.generate([
      { prompt: "hi", format: "raw", n: 1, maxTokens: 5, seed: 3, sampling },
      {
        prompt: "hi",
        format: "raw",
        n: 1,
        maxTokens: 5,
        seed: 9,
        sampling,
        stop: ["\n"],
        jsonSchema: { type: "object" },
      },
    ]);
    expect(eog.tokens).toEqual([40, 41, 42, 43, 44]);
    expect(eog.logprobs).toEqual([-0.5, -1.5, -2.5, -3.5, -4.5]);
    expect(eog.finishReason).toBe("eog");
    expect(stop.finishReason).toBe("stop");
    const sent = seen.find((b) => b.seed === 9)!;
    expect(sent).toMatchObject({
      top_k: -1,
      top_p: 0.8,
      temperature: 0.7,
      return_tokens_as_token_ids: true,
      logprobs: 1,
    });
    expect(sent.structured_outputs).toEqual({ json: { type: "object" } });

    const [probs] = await engine.nextTokenProbs([
      { prompt: "q", format: "raw", candidates: ["9", "a", "9"] },
    ]);
    // After "q", "9" is token 57 % 50 = 7, an alternative at -1.5; "a" (47) is not among them; a repeated
    // first token counts once.
    expect(probs.probs[0]).toBeCloseTo(Math.exp(-1.5), 12);
    expect(probs.probs.slice(1)).toEqual([0, 0]);
    expect(seen.at(-1)).toMatchObject({ max_tokens: 1, logprobs: 20, temperature: 1, top_k: -1 });

    const [scored] = await engine.score([{ prompt: "hi", format: "raw", continuation: [5, 6] }]);
    const promptLen = "hi".length;
    expect(scored.tokens).toEqual([5, 6]);
    expect(scored.logprobs.map((x) => Number(x.toFixed(6)))).toEqual([
      -promptLen / 10,
      -(promptLen + 1) / 10,
    ]);
    await engine.dispose();
  });
});
