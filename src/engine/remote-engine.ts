import { setMaxListeners } from "node:events";
import pLimit, { type LimitFunction } from "p-limit";
import { UserError } from "../util/errors.js";
import { type ApiKey, apiKeyFromEnv, type Endpoint, parseEndpoint } from "./remote-endpoint.js";
import { requestJson } from "./remote-http.js";
import {
  ApplyTemplateSchema,
  type CompletionChoice,
  CompletionSchema,
  DetokenizeSchema,
  LlamaServerPropsSchema,
  LlamaTokenizeSchema,
  ModelsSchema,
  parseChoiceLogprobs,
  VllmTokenizeSchema,
  VllmVersionSchema,
} from "./remote-protocol.js";
import { requestJsonSync } from "./remote-sync.js";
import { modelFamily } from "./sampling-presets.js";
import {
  type Engine,
  type FinishReason,
  type GenerateOptions,
  type GenerationRequest,
  GenerationRequestSchema,
  type ModelInfo,
  type NextTokenRequest,
  type NextTokenResult,
  type Prompt,
  type RemoteModelIdentity,
  type ResolvedGenerationRequest,
  type Rollout,
  type Sampling,
  type ScoreRequest,
  ScoreRequestSchema,
  type ScoreResult,
} from "./types.js";

/**
 * An `Engine` over an OpenAI-compatible server (llama-server or vLLM): the frozen anchor or the judge
 * served on a GPU node, with nothing leaving the building. Prompts are rendered by the server's own chat
 * template (llama-server `/apply-template`, vLLM `/tokenize` with `messages`) and sent as token ids to
 * `/v1/completions`, one request per rollout with its own seed, at most `concurrency` in flight.
 * Adapters are not a capability: the server serves its own weights.
 */

export type ServerKind = RemoteModelIdentity["server"];

export type RemoteEngineOptions = {
  /** Base URL of the OpenAI-compatible API, e.g. `http://gpu-node:8080/v1`. */
  url: string;
  /** Defaults to the environment variable named in README (`CATRL_API_KEY`, else `OPENAI_API_KEY`). */
  apiKey?: ApiKey;
  /** Requests in flight; defaults to the server's slots (llama-server `-np`) or DEFAULT_VLLM_CONCURRENCY. */
  concurrency?: number;
  timeoutMs?: number;
  retries?: number;
  /** Retry notices (a server restarting mid-run), one line each. */
  log?: (line: string) => void;
};

/** vLLM schedules its own batches; this many requests in flight keep it full without flooding it. */
const DEFAULT_VLLM_CONCURRENCY = 64;
/** Alternatives asked for per judge verdict: vLLM's default cap (`--max-logprobs` 20). */
const JUDGE_TOP_LOGPROBS = 20;
/** Characters of prompt text kept as the context in which a candidate answer is tokenized. */
const CANDIDATE_CONTEXT_CHARS = 32;

type Prepared = { text: string; tokens: number[] };
type Call = { method: "GET" | "POST"; path: string; body?: unknown };
/** Rendering steps written once and run either blocking (the sync Engine methods) or async. */
type Steps<T> = Generator<Call, T, unknown>;

export async function openRemoteEngine(opts: RemoteEngineOptions): Promise<RemoteEngine> {
  const endpoint = parseEndpoint(opts.url);
  const apiKey = opts.apiKey ?? apiKeyFromEnv();
  // No retries while opening: a wrong URL or a server that is not up should fail at once, in one line.
  const get = (url: string) => requestJson("GET", url, undefined, { apiKey: apiKey?.value, retries: 0 });
  const models = ModelsSchema.parse(await get(`${endpoint.base}/models`));
  const model = models.data[0];
  let kind: ServerKind;
  let version: string;
  let contextSize: number | undefined;
  let slots: number | undefined;
  let hasChatTemplate = true;
  let vocabSize = model.meta?.n_vocab ?? 0;
  const props = await get(`${endpoint.root}/props`).catch(() => null);
  const llama = props == null ? null : LlamaServerPropsSchema.safeParse(props);
  if (llama?.success && llama.data.build_info != null) {
    kind = "llama-server";
    version = llama.data.build_info;
    contextSize = llama.data.default_generation_settings?.n_ctx;
    slots = llama.data.total_slots;
    hasChatTemplate = Boolean(llama.data.chat_template);
  } else {
    const v = await get(`${endpoint.root}/version`).catch(() => null);
    const parsed = VllmVersionSchema.safeParse(v);
    if (!parsed.success)
      throw new UserError(
        `${endpoint.base}: neither llama-server (/props) nor vLLM (/version); the remote engine needs one of them (their /tokenize and log-probs)`,
      );
    kind = "vllm";
    version = `vllm ${parsed.data.version}`;
    contextSize = model.max_model_len;
    vocabSize = 0;
  }
  const info: ModelInfo = {
    path: endpoint.base,
    architecture: "remote",
    trainContextSize: contextSize ?? model.meta?.n_ctx_train ?? 0,
    vocabSize,
    hasChatTemplate,
    family: modelFamily("", model.id),
    remote: { url: endpoint.base, server: kind, modelId: model.id, version },
  };
  if (!info.trainContextSize)
    throw new UserError(`${endpoint.base}: the server does not report its context size`);
  const engine = new RemoteEngine(endpoint, kind, model.id, info, {
    ...opts,
    apiKey,
    concurrency: opts.concurrency ?? slots ?? DEFAULT_VLLM_CONCURRENCY,
  });
  await engine.checkLogprobs();
  return engine;
}

export class RemoteEngine implements Engine {
  private readonly limit: LimitFunction;
  private readonly prepared = new Map<string, Prepared>();
  private readonly candidateIds = new Map<string, number>();
  private disposed = false;

  constructor(
    readonly endpoint: Endpoint,
    readonly kind: ServerKind,
    readonly modelId: string,
    readonly info: ModelInfo,
    private readonly opts: RemoteEngineOptions & { concurrency: number },
  ) {
    this.limit = pLimit(Math.max(1, opts.concurrency));
  }

  get concurrency(): number {
    return this.opts.concurrency;
  }

  // ---- transport -------------------------------------------------------------------------------------

  private url(path: string): string {
    return path.startsWith("/v1/") ? `${this.endpoint.base}${path.slice(3)}` : `${this.endpoint.root}${path}`;
  }

  private call(c: Call, signal?: AbortSignal): Promise<unknown> {
    this.assertOpen();
    // Every request in flight listens on the run's abort signal (they are removed as requests end).
    if (signal) setMaxListeners(0, signal);
    return requestJson(c.method, this.url(c.path), c.body, {
      apiKey: this.opts.apiKey?.value,
      timeoutMs: this.opts.timeoutMs,
      retries: this.opts.retries,
      signal,
      onRetry: (n, why) => this.opts.log?.(`${this.endpoint.base}: retry ${n} (${why})`),
    });
  }

  private runSync<T>(steps: Steps<T>): T {
    this.assertOpen();
    let s = steps.next();
    while (!s.done)
      s = steps.next(
        requestJsonSync(s.value.method, this.url(s.value.path), s.value.body, this.opts.apiKey?.value),
      );
    return s.value;
  }

  private async runAsync<T>(steps: Steps<T>, signal?: AbortSignal): Promise<T> {
    let s = steps.next();
    while (!s.done) s = steps.next(await this.call(s.value, signal));
    return s.value;
  }

  private assertOpen(): void {
    if (this.disposed) throw new Error(`remote engine ${this.endpoint.base} is disposed`);
  }

  // ---- prompts ---------------------------------------------------------------------------------------

  private useChat(format: "auto" | "chat" | "raw"): boolean {
    if (format === "raw") return false;
    if (format === "chat" && !this.info.hasChatTemplate)
      throw new UserError(`${this.endpoint.base}: the served model has no chat template; use raw prompts`);
    return this.info.hasChatTemplate;
  }

  /** The prompt as the server's model sees it: text and token ids (BOS and template included). */
  private *prepareSteps(prompt: Prompt, format: "auto" | "chat" | "raw"): Steps<Prepared> {
    const key = JSON.stringify([prompt, format]);
    const hit = this.prepared.get(key);
    if (hit) return hit;
    let out: Prepared;
    if (!this.useChat(format)) {
      // As the local engine: raw completion, chat turns joined by blank lines.
      const text = typeof prompt === "string" ? prompt : prompt.map((t) => t.content).join("\n\n");
      out = { text, tokens: yield* this.tokenizeSteps(text, true) };
    } else {
      const messages = typeof prompt === "string" ? [{ role: "user", content: prompt }] : prompt;
      if (this.kind === "llama-server") {
        const text = ApplyTemplateSchema.parse(
          yield { method: "POST", path: "/apply-template", body: { messages } },
        ).prompt;
        out = { text, tokens: yield* this.tokenizeSteps(text, true) };
      } else {
        const tokens = VllmTokenizeSchema.parse(
          yield {
            method: "POST",
            path: "/tokenize",
            body: { model: this.modelId, messages, add_generation_prompt: true },
          },
        ).tokens;
        const text = DetokenizeSchema.parse(
          yield { method: "POST", path: "/detokenize", body: { model: this.modelId, tokens } },
        ).prompt;
        out = { text, tokens };
      }
    }
    this.prepared.set(key, out);
    return out;
  }

  private *tokenizeSteps(text: string, addSpecial: boolean): Steps<number[]> {
    if (this.kind === "llama-server") {
      return LlamaTokenizeSchema.parse(
        yield {
          method: "POST",
          path: "/tokenize",
          body: { content: text, add_special: addSpecial, parse_special: true },
        },
      ).tokens;
    }
    return VllmTokenizeSchema.parse(
      yield {
        method: "POST",
        path: "/tokenize",
        body: { model: this.modelId, prompt: text, add_special_tokens: addSpecial },
      },
    ).tokens;
  }

  /**
   * Tokens of `text` as it continues `context`: the tokens of context + text past those of context alone.
   * (Tokenized on its own, SentencePiece vocabularies would prefix a space.)
   */
  private *continuationSteps(context: string, text: string): Steps<number[]> {
    const before = yield* this.tokenizeSteps(context, false);
    const after = yield* this.tokenizeSteps(context + text, false);
    let i = 0;
    while (i < before.length && before[i] === after[i]) i++;
    return after.slice(i);
  }

  renderPrompt(prompt: Prompt, format: "auto" | "chat" | "raw" = "auto"): string {
    return this.runSync(this.prepareSteps(prompt, format)).text;
  }

  tokenizePrompt(prompt: Prompt, format: "auto" | "chat" | "raw" = "auto"): number[] {
    return this.runSync(this.prepareSteps(prompt, format)).tokens;
  }

  countTokens(text: string): number {
    return this.runSync(this.tokenizeSteps(text, false)).length;
  }

  // ---- generation ------------------------------------------------------------------------------------

  /** Sampling fields as each server spells them, every filter given explicitly (server defaults differ). */
  private samplingBody(s: Sampling): Record<string, unknown> {
    const common = { temperature: s.temperature, top_p: s.topP, min_p: s.minP };
    if (this.kind === "llama-server")
      return {
        ...common,
        top_k: s.topK,
        repeat_penalty: s.repeatPenalty ?? 1,
        // The sampled token's probability after the sampling chain, as Rollout.logprobs is defined.
        post_sampling_probs: true,
      };
    return { ...common, top_k: s.topK === 0 ? -1 : s.topK, repetition_penalty: s.repeatPenalty ?? 1 };
  }

  private completionBody(prompt: number[], extra: Record<string, unknown>): Record<string, unknown> {
    const ids =
      this.kind === "vllm"
        ? { return_tokens_as_token_ids: true, return_token_ids: true }
        : { cache_prompt: true };
    return { model: this.modelId, prompt, stream: false, n: 1, ...ids, ...extra };
  }

  private async complete(body: Record<string, unknown>, signal?: AbortSignal): Promise<CompletionChoice> {
    const raw = await this.call({ method: "POST", path: "/v1/completions", body }, signal);
    const parsed = CompletionSchema.safeParse(raw);
    if (!parsed.success)
      throw new UserError(
        `${this.endpoint.base}/completions: unexpected answer (${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message})`,
      );
    return parsed.data.choices[0];
  }

  /** Fails in one line when the served model cannot return log-probs (rewards and estimators need them). */
  async checkLogprobs(): Promise<void> {
    const prompt = await this.runAsync(this.tokenizeSteps("Hello", true));
    const choice = await this.complete(
      this.completionBody(prompt, {
        max_tokens: 1,
        logprobs: 1,
        seed: 0,
        // A first token that ends generation would leave no token to carry a log-prob.
        ignore_eos: true,
        ...this.samplingBody({ temperature: 1, topK: 0, topP: 1, minP: 0 }),
      }),
    );
    const lp = parseChoiceLogprobs(choice);
    if (!lp || lp.logprobs.length === 0)
      throw new UserError(
        `${this.endpoint.base}: model ${this.modelId} returns no log-probs (logprobs: 1 was ignored); the remote engine needs them`,
      );
  }

  private finishReason(choice: CompletionChoice, request: ResolvedGenerationRequest): FinishReason {
    if (choice.finish_reason === "length") return "max_tokens";
    // vLLM names the stop string (or stop token id) that ended the text; EOS leaves it null.
    if (this.kind === "vllm") return typeof choice.stop_reason === "string" ? "stop" : "eog";
    // llama-server's OpenAI answer says "stop" for both a stop string and end-of-generation.
    return request.stop?.length || request.jsonSchema ? "stop" : "eog";
  }

  async generate(requests: GenerationRequest[], options: GenerateOptions = {}): Promise<Rollout[][]> {
    const resolved = requests.map((r, i) => {
      const parsed = GenerationRequestSchema.safeParse(r);
      if (!parsed.success) throw new UserError(`generation request ${i}: ${parsed.error.issues[0]?.message}`);
      return parsed.data;
    });
    const prompts = await Promise.all(
      resolved.map((r) =>
        this.limit(() => this.runAsync(this.prepareSteps(r.prompt, r.format), options.signal)),
      ),
    );
    for (const [i, r] of resolved.entries()) this.assertFits(prompts[i].tokens.length, r.maxTokens);
    const t0 = performance.now();
    const total = resolved.reduce((s, r) => s + r.n, 0);
    const progress = { rolloutsDone: 0, rolloutsTotal: total, tokensGenerated: 0 };
    const one = async (ri: number, i: number): Promise<Rollout> => {
      const r = resolved[ri];
      const seed = r.seed + i;
      const startMs = performance.now() - t0;
      const aborted = (): Rollout => ({
        requestIndex: ri,
        rolloutIndex: i,
        seed,
        text: "",
        tokens: [],
        promptTokens: prompts[ri].tokens.length,
        finishReason: "aborted",
        logprobs: [],
        timings: { startMs, firstTokenMs: null, endMs: performance.now() - t0 },
      });
      if (options.signal?.aborted) return aborted();
      let choice: CompletionChoice;
      try {
        choice = await this.complete(
          this.completionBody(prompts[ri].tokens, {
            max_tokens: r.maxTokens,
            seed,
            logprobs: 1,
            ...(r.stop?.length ? { stop: r.stop } : {}),
            ...(r.ignoreEog ? { ignore_eos: true } : {}),
            ...(r.jsonSchema ? this.schemaBody(r.jsonSchema) : {}),
            ...this.samplingBody(r.sampling),
          }),
          options.signal,
        );
      } catch (e) {
        if (options.signal?.aborted) return aborted();
        throw e;
      }
      const lp = parseChoiceLogprobs(choice);
      if (!lp) throw new UserError(`${this.endpoint.base}: a completion came back without log-probs`);
      const rollout: Rollout = {
        requestIndex: ri,
        rolloutIndex: i,
        seed,
        text: r.jsonSchema ? choice.text.trimEnd() : choice.text,
        tokens: lp.tokens,
        promptTokens: prompts[ri].tokens.length,
        finishReason: this.finishReason(choice, r),
        logprobs: lp.logprobs,
        timings: { startMs, firstTokenMs: null, endMs: performance.now() - t0 },
      };
      progress.rolloutsDone++;
      progress.tokensGenerated += rollout.tokens.length;
      options.onRollout?.(rollout);
      options.onProgress?.({ ...progress, elapsedMs: performance.now() - t0 });
      return rollout;
    };
    return Promise.all(
      resolved.map((r, ri) =>
        Promise.all(Array.from({ length: r.n }, (_, i) => this.limit(() => one(ri, i)))),
      ),
    );
  }

  private schemaBody(schema: Record<string, unknown>): Record<string, unknown> {
    if (this.kind === "llama-server") return { json_schema: schema };
    // vLLM ≥ 0.10.2 reads structured_outputs; older releases read guided_json (each ignores the other).
    return { structured_outputs: { json: schema }, guided_json: schema };
  }

  private assertFits(promptTokens: number, maxTokens: number): void {
    if (promptTokens + maxTokens > this.info.trainContextSize)
      throw new UserError(
        `context too small: prompt of ${promptTokens} tokens + ${maxTokens} new tokens exceeds the server's context of ${this.info.trainContextSize} (${this.endpoint.base})`,
      );
  }

  // ---- judge and scoring -----------------------------------------------------------------------------

  async nextTokenProbs(
    requests: NextTokenRequest[],
    options: { signal?: AbortSignal } = {},
  ): Promise<NextTokenResult[]> {
    const one = async (r: NextTokenRequest): Promise<NextTokenResult> => {
      const p = await this.runAsync(this.prepareSteps(r.prompt, r.format ?? "auto"), options.signal);
      const ids = await Promise.all(r.candidates.map((c) => this.candidateId(p.text, c, options.signal)));
      // Raw model distribution: logprobs of the top alternatives before any sampler (both servers' default).
      const choice = await this.complete(
        this.completionBody(p.tokens, {
          max_tokens: 1,
          logprobs: JUDGE_TOP_LOGPROBS,
          seed: 0,
          ...this.samplingBody({ temperature: 1, topK: 0, topP: 1, minP: 0 }),
          ...(this.kind === "llama-server" ? { post_sampling_probs: false } : {}),
        }),
        options.signal,
      );
      const top = parseChoiceLogprobs(choice)?.top[0];
      if (!top || top.size === 0)
        throw new UserError(`${this.endpoint.base}: no top log-probs in the answer`);
      // A candidate outside the top alternatives gets 0: its probability is below the smallest shown.
      const seen = new Set<number>();
      return {
        probs: ids.map((id) => {
          if (id < 0 || seen.has(id)) return 0;
          seen.add(id);
          const lp = top.get(id);
          return lp == null ? 0 : Math.exp(lp);
        }),
      };
    };
    return Promise.all(requests.map((r) => this.limit(() => one(r))));
  }

  /** First token of a candidate answer right after a prompt ending like `promptText` (cached per ending). */
  private async candidateId(promptText: string, candidate: string, signal?: AbortSignal): Promise<number> {
    const context = promptText.slice(-CANDIDATE_CONTEXT_CHARS);
    const key = `${context}\u0000${candidate}`;
    const hit = this.candidateIds.get(key);
    if (hit != null) return hit;
    const id = (await this.runAsync(this.continuationSteps(context, candidate), signal))[0] ?? -1;
    this.candidateIds.set(key, id);
    return id;
  }

  async score(requests: ScoreRequest[], options: { signal?: AbortSignal } = {}): Promise<ScoreResult[]> {
    if (this.kind !== "vllm")
      throw new UserError(
        `${this.endpoint.base}: ${this.kind} returns no prompt log-probs, which teacher-forced scoring needs (estimator mutual-predictability); leave it out of --estimators or serve this model with vLLM`,
      );
    const one = async (raw: ScoreRequest): Promise<ScoreResult> => {
      const q = ScoreRequestSchema.parse(raw);
      if (q.sampling && !isRaw(q.sampling))
        throw new UserError(
          `${this.endpoint.base}: vLLM returns prompt log-probs of the raw model only; scoring under another sampling distribution needs a local model`,
        );
      const p = await this.runAsync(this.prepareSteps(q.prompt, q.format), options.signal);
      const cont =
        typeof q.continuation === "string"
          ? await this.runAsync(this.continuationSteps(p.text, q.continuation), options.signal)
          : q.continuation;
      this.assertFits(p.tokens.length + cont.length, 1);
      // vLLM: prompt_logprobs[i] holds the log-prob of prompt token i given those before it (and of the
      // top alternatives); position 0 is null.
      const choice = await this.complete(
        this.completionBody([...p.tokens, ...cont], { max_tokens: 1, prompt_logprobs: 0, temperature: 1 }),
        options.signal,
      );
      const plp = choice.prompt_logprobs;
      if (!plp) throw new UserError(`${this.endpoint.base}: the answer has no prompt_logprobs`);
      const logprobs = cont.map((t, j) => {
        const at = plp[p.tokens.length + j]?.[String(t)];
        if (!at)
          throw new UserError(
            `${this.endpoint.base}: prompt_logprobs lack token ${t} at ${p.tokens.length + j}`,
          );
        return at.logprob;
      });
      return { tokens: cont, logprobs };
    };
    return Promise.all(requests.map((r) => this.limit(() => one(r))));
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.limit.clearQueue();
  }
}

function isRaw(s: Sampling): boolean {
  return s.temperature === 1 && s.topK === 0 && s.topP === 1 && s.minP === 0 && (s.repeatPenalty ?? 1) === 1;
}
