import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  InsufficientMemoryError,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaGrammar,
  LlamaGrammarEvaluationState,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import { UserError } from "../util/errors.js";
import { type GpuChoice, loadLlama } from "./llama-runtime.js";
import { checkModelFile } from "./model-file.js";
import { type PromptFormat, PromptRenderer } from "./prompt-renderer.js";
import { modelFamily } from "./sampling-presets.js";
import {
  generateLockstep,
  generateOnSequence,
  type SequenceJob,
  type SequenceResult,
} from "./sequence-generate.js";
import {
  type Engine,
  type GenerateOptions,
  type GenerationRequest,
  GenerationRequestSchema,
  type ModelInfo,
  type NextTokenRequest,
  type NextTokenResult,
  type Prompt,
  type ReplyStart,
  type ResolvedGenerationRequest,
  type Rollout,
  type Sampling,
  type ScoreRequest,
  ScoreRequestSchema,
  type ScoreResult,
} from "./types.js";

export type PrefixShare = "auto" | "copy" | "none";

export type LlamaEngineOptions = {
  modelPath: string;
  gpu?: GpuChoice;
  threads: number;
  verbose?: boolean;
  /** Most sequences in one context; larger batches run in waves. */
  maxSequences?: number;
  /**
   * Evaluate each prompt once and copy its KV state into its G sequences (`copy`), or let every sequence
   * evaluate the prompt itself in the shared batch (`none`). `auto` copies when the prompt is long enough
   * for the copy to pay (see bench/rollouts).
   */
  prefixShare?: PrefixShare;
  /** LoRA adapters applied to every context this engine creates. */
  adapters?: { path: string; scale?: number }[];
  /** Share an already loaded model (policy and anchor on one file: one model in memory, two contexts). */
  shareModelWith?: LlamaEngine;
  /**
   * Flash attention: `auto` (default) lets llama.cpp turn it on wherever the model and backend support it,
   * as llama.cpp's own tools do by default (`-fa auto`). `false` forces the plain attention path.
   */
  flashAttention?: FlashAttention;
};

export type FlashAttention = "auto" | boolean;

/**
 * llama.cpp's default. Rollout log-probs are not part of the loss (the trainer computes its own), and
 * teacher-forced scores agree with the plain path within test/engine-flash-attention.test.ts's tolerance.
 */
export const DEFAULT_FLASH_ATTENTION: FlashAttention = "auto";

/**
 * Below this attention head size `auto` means off: llama.cpp's CPU flash-attention kernel works one query
 * row at a time and loses to the matmul path on tiny heads. llama-batched-bench, 1 thread, 1,024-token
 * prompts: stories260K (head size 8) prefill 415 vs 675 tok/s and 328 vs 1,212 at 6 sequences, decode
 * 131 vs 546 (flash on vs off); the 85m model (head size 64) prefill 263 vs 231 and 211 vs 167 tok/s.
 */
export const FLASH_ATTENTION_MIN_HEAD_DIM = 32;

/** The flash-attention setting a context gets: `auto` is llama.cpp's choice, except on tiny heads. */
export function resolveFlashAttention(option: FlashAttention, headDim: number | undefined): FlashAttention {
  if (option !== "auto") return option;
  return headDim !== undefined && headDim < FLASH_ATTENTION_MIN_HEAD_DIM ? false : "auto";
}

/** Attention head size from the GGUF metadata (key_length, else embedding width / heads). */
function headDimOf(model: LlamaModel): number | undefined {
  const a = model.fileInfo.architectureMetadata as {
    embedding_length?: number;
    attention?: { head_count?: number | number[]; key_length?: number };
  };
  if (a.attention?.key_length) return a.attention.key_length;
  const heads = Array.isArray(a.attention?.head_count) ? a.attention.head_count[0] : a.attention?.head_count;
  return a.embedding_length && heads ? a.embedding_length / heads : undefined;
}

/**
 * Prompts at least this long (tokens) get their KV state copied instead of re-evaluated, under `auto`.
 * `catrl bench prefix-share` (85m Q8_0, G=8, 1 thread): copying wins 1.45x at 29 prompt tokens, 2.05x at 83,
 * 3.47x at 272 (shorter prompts not measured; one-line prompts stay on the plain path).
 */
const AUTO_PREFIX_COPY_MIN_TOKENS = 16;

type Job = {
  request: ResolvedGenerationRequest;
  grammar?: LlamaGrammar;
  requestIndex: number;
  rolloutIndex: number;
  promptTokens: number[];
  stops: string[];
};

export async function openLlamaEngine(opts: LlamaEngineOptions): Promise<LlamaEngine> {
  if (opts.shareModelWith) {
    const base = opts.shareModelWith;
    return new LlamaEngine(base.llama, base.model, base.info, opts);
  }
  const checked = await checkModelFile(opts.modelPath);
  const llama = await loadLlama({ gpu: opts.gpu ?? "auto", threads: opts.threads, verbose: opts.verbose });
  let model: LlamaModel;
  try {
    model = await llama.loadModel({ modelPath: opts.modelPath });
  } catch (e) {
    if (e instanceof InsufficientMemoryError) {
      throw new UserError(`${opts.modelPath}: does not fit in memory (${e.message})`, 1, { cause: e });
    }
    throw new UserError(`${opts.modelPath}: llama.cpp could not load it (${(e as Error).message})`, 1, {
      cause: e,
    });
  }
  const general = checked.info.metadata.general;
  const info: ModelInfo = {
    path: opts.modelPath,
    architecture: checked.architecture,
    parameters: undefined,
    trainContextSize: model.trainContextSize,
    vocabSize: checked.info.metadata.tokenizer?.ggml?.tokens?.length ?? 0,
    hasChatTemplate: Boolean(checked.info.metadata.tokenizer?.chat_template),
    family: modelFamily(checked.architecture, String(general?.name ?? general?.basename ?? "")),
  };
  return new LlamaEngine(llama, model, info, opts);
}

/** The local engine: one GGUF through node-llama-cpp, all sequences of a batch in one context. */
export class LlamaEngine implements Engine {
  private readonly renderer: PromptRenderer;
  private context: LlamaContext | null = null;
  private contextShape = { sequences: 0, size: 0 };
  private adapters: { path: string; scale?: number }[];
  private readonly ownsModel: boolean;

  constructor(
    readonly llama: Llama,
    readonly model: LlamaModel,
    readonly info: ModelInfo,
    private readonly opts: LlamaEngineOptions,
  ) {
    this.renderer = new PromptRenderer(model);
    this.adapters = opts.adapters ?? [];
    this.ownsModel = !opts.shareModelWith;
  }

  get threads(): number {
    return this.opts.threads;
  }

  /** The flash-attention setting this engine's contexts get (see resolveFlashAttention). */
  get flashAttention(): FlashAttention {
    return resolveFlashAttention(this.opts.flashAttention ?? DEFAULT_FLASH_ATTENTION, headDimOf(this.model));
  }

  /** Swaps the LoRA adapters: the next batch runs in a fresh context (llama.cpp binds adapters per context). */
  async setAdapters(adapters: { path: string; scale?: number }[]): Promise<void> {
    const stale = this.adapters.filter(
      (a) => !adapters.some((b) => path.resolve(b.path) === path.resolve(a.path)),
    );
    this.adapters = adapters;
    await this.dropContext();
    await this.releaseAdapters(stale.map((a) => a.path));
  }

  /** How many LoRA adapters the loaded model holds in memory (for tests and diagnostics). */
  get loadedAdapters(): number {
    return this.loraCache()?.size ?? 0;
  }

  /**
   * node-llama-cpp 3.21.1 keeps every LoRA adapter it loads on the model, keyed by absolute path, until
   * the model is disposed (the internal `_loraAdapters` map). A training run loads a new adapter file
   * every step, so once no context uses an adapter any more it is freed here; otherwise memory grows by
   * one adapter per step.
   */
  private async releaseAdapters(paths: string[]): Promise<void> {
    const cache = this.loraCache();
    if (!cache) return;
    for (const p of paths) {
      const key = path.resolve(process.cwd(), p);
      const lora = cache.get(key);
      if (!lora) continue;
      cache.delete(key);
      await lora.dispose();
    }
  }

  private loraCache(): Map<string, { dispose(): Promise<void> }> | undefined {
    return (this.model as unknown as { _loraAdapters?: Map<string, { dispose(): Promise<void> }> })
      ._loraAdapters;
  }

  renderPrompt(prompt: Prompt, format: PromptFormat = "auto", reply?: ReplyStart): string {
    return this.renderer.render(prompt, format, reply).text.toString();
  }

  tokenizePrompt(prompt: Prompt, format: PromptFormat = "auto", reply?: ReplyStart): number[] {
    return this.renderer.tokenize(prompt, format, reply);
  }

  /**
   * Tokens of text that continues a prompt. SentencePiece tokenizers prefix a space to text tokenized on
   * its own; `trimLeadingSpace` gives the ids the text has after a prompt (" time" -> "▁time").
   */
  private continuationTokens(text: string): number[] {
    return this.model.tokenize(text, false, "trimLeadingSpace");
  }

  countTokens(text: string): number {
    return this.model.tokenize(text, false).length;
  }

  async generate(requests: GenerationRequest[], options: GenerateOptions = {}): Promise<Rollout[][]> {
    const resolved = requests.map((r, i) => {
      const parsed = GenerationRequestSchema.safeParse(r);
      if (!parsed.success) throw new UserError(`generation request ${i}: ${parsed.error.issues[0]?.message}`);
      return parsed.data;
    });
    const jobs: Job[] = [];
    for (const [requestIndex, request] of resolved.entries()) {
      const rendered = this.renderer.prepare(request.prompt, request.format, request.reply);
      const promptTokens = rendered.tokens;
      const grammar = request.jsonSchema
        ? await this.llama.createGrammarForJsonSchema(request.jsonSchema as never)
        : undefined;
      // A JSON grammar ends in a run of newlines that it uses as its stop trigger.
      const grammarStops = grammar?.stopGenerationTriggers.map((t) => t.toString()) ?? [];
      const stops = [...(request.stop ?? []), ...rendered.stops, ...grammarStops];
      for (let rolloutIndex = 0; rolloutIndex < request.n; rolloutIndex++) {
        jobs.push({ request, grammar, requestIndex, rolloutIndex, promptTokens, stops });
      }
    }

    const out: Rollout[][] = resolved.map((r) => new Array<Rollout>(r.n));
    const t0 = performance.now();
    const progress = { rolloutsDone: 0, rolloutsTotal: jobs.length, tokensGenerated: 0 };
    let lastReport = 0;
    const report = (force = false) => {
      const now = performance.now();
      if (!options.onProgress || (!force && now - lastReport < 250)) return;
      lastReport = now;
      options.onProgress({ ...progress, elapsedMs: now - t0 });
    };

    for (const wave of this.waves(jobs)) {
      if (options.signal?.aborted) break;
      await this.runWave(
        wave,
        t0,
        options,
        (r) => {
          out[r.requestIndex][r.rolloutIndex] = r;
          if (r.finishReason !== "aborted") {
            progress.rolloutsDone++;
            options.onRollout?.(r);
          }
          report(true);
        },
        () => {
          progress.tokensGenerated++;
          report();
        },
      );
    }
    return out.map((rs) => rs.filter(Boolean));
  }

  /** Groups jobs so that a request's rollouts share a wave (its prompt state can then be copied). */
  private *waves(jobs: Job[]): Generator<Job[]> {
    const max = Math.max(1, this.opts.maxSequences ?? 64);
    let wave: Job[] = [];
    for (const job of jobs) {
      const startsRequest = job.rolloutIndex === 0;
      if (wave.length >= max || (startsRequest && wave.length + job.request.n > max && wave.length > 0)) {
        yield wave;
        wave = [];
      }
      wave.push(job);
    }
    if (wave.length > 0) yield wave;
  }

  private async runWave(
    wave: Job[],
    t0: number,
    options: GenerateOptions,
    onDone: (r: Rollout) => void,
    onToken: () => void,
  ): Promise<void> {
    const size = Math.max(...wave.map((j) => j.promptTokens.length + j.request.maxTokens)) + 1;
    for (const j of wave) this.assertFits(j.promptTokens.length, j.request.maxTokens);
    const context = await this.ensureContext(wave.length, size);
    const sequences = wave.map(() => context.getSequence());
    const tmp = await mkdtemp(path.join(os.tmpdir(), "catrl-prefix-"));
    try {
      const inputs = await this.preparePrefixes(wave, sequences, tmp);
      const startMs = performance.now() - t0;
      const jobOf = (k: number): SequenceJob => ({
        input: inputs[k],
        maxTokens: wave[k].request.maxTokens,
        sampling: wave[k].request.sampling,
        seed: wave[k].request.seed + wave[k].rolloutIndex,
        stops: wave[k].stops,
        ignoreEog: wave[k].request.ignoreEog,
        signal: options.signal,
        onToken,
      });
      const finish = (k: number, r: SequenceResult) => {
        const job = wave[k];
        onDone({
          requestIndex: job.requestIndex,
          rolloutIndex: job.rolloutIndex,
          seed: job.request.seed + job.rolloutIndex,
          text: job.grammar?.trimWhitespaceSuffix ? r.text.trimEnd() : r.text,
          tokens: r.tokens,
          promptTokens: job.promptTokens.length,
          finishReason: r.finishReason,
          logprobs: r.logprobs,
          timings: {
            startMs,
            firstTokenMs: r.firstTokenAt == null ? null : r.firstTokenAt - t0,
            endMs: performance.now() - t0,
          },
        });
      };
      // Plain sampling runs in lockstep (full batches); grammar-constrained requests need node-llama-cpp's
      // generator, which keeps the grammar state, and run beside them in the same context.
      const plain = wave.flatMap((j, k) => (j.grammar ? [] : [k]));
      const constrained = wave.flatMap((j, k) => (j.grammar ? [k] : []));
      await Promise.all([
        generateLockstep(
          this.model,
          plain.map((k) => sequences[k]),
          plain.map(jobOf),
          (i, r) => finish(plain[i], r),
        ),
        ...constrained.map(async (k) => {
          const grammar = new LlamaGrammarEvaluationState({ model: this.model, grammar: wave[k].grammar! });
          finish(k, await generateOnSequence(this.model, sequences[k], { ...jobOf(k), grammar }));
        }),
      ]);
    } finally {
      for (const s of sequences) s.dispose();
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /** Groups a wave's jobs by request: a request's G rollouts share their whole prompt. */
  private async preparePrefixes(
    wave: Job[],
    sequences: LlamaContextSequence[],
    tmp: string,
  ): Promise<number[][]> {
    const groups = new Map<number, number[]>();
    wave.forEach((j, k) => {
      const g = groups.get(j.requestIndex) ?? [];
      g.push(k);
      groups.set(j.requestIndex, g);
    });
    const skip = await this.sharePrefixes(
      sequences,
      wave.map((j) => j.promptTokens),
      [...groups.values()],
      tmp,
    );
    return wave.map((j, k) => j.promptTokens.slice(skip[k]));
  }

  /**
   * Prefix sharing: in each group, the first sequence evaluates the tokens all members share (all but the
   * last, so every member still produces logits) and the others load a copy of that KV state, so the group
   * pays for its common prefix once instead of once per member. Returns, per item, how many leading tokens
   * are already in its sequence. Under `auto`, only prefixes of AUTO_PREFIX_COPY_MIN_TOKENS or more.
   */
  private async sharePrefixes(
    sequences: LlamaContextSequence[],
    tokens: number[][],
    groups: number[][],
    tmp: string,
  ): Promise<number[]> {
    const skip = tokens.map(() => 0);
    const mode = this.opts.prefixShare ?? "auto";
    if (mode === "none") return skip;
    await Promise.all(
      groups.map(async (ks, g) => {
        if (ks.length < 2) return;
        const lcp = Math.min(
          commonPrefixLength(ks.map((k) => tokens[k])),
          ...ks.map((k) => tokens[k].length - 1),
        );
        if (lcp < 1 || (mode === "auto" && lcp < AUTO_PREFIX_COPY_MIN_TOKENS)) return;
        const first = sequences[ks[0]];
        await first.evaluateWithoutGeneratingNewTokens(tokens[ks[0]].slice(0, lcp) as Token[]);
        const file = path.join(tmp, `prefix-${g}.bin`);
        await first.saveStateToFile(file);
        for (const k of ks.slice(1)) await sequences[k].loadStateFromFile(file, { acceptRisk: true });
        for (const k of ks) skip[k] = lcp;
      }),
    );
    return skip;
  }

  private assertFits(promptTokens: number, maxTokens: number): void {
    const need = promptTokens + maxTokens;
    if (need > this.info.trainContextSize) {
      throw new UserError(
        `${this.info.path}: context too small: prompt (${promptTokens} tokens) + max tokens (${maxTokens}) = ${need} exceeds the model's context of ${this.info.trainContextSize}`,
      );
    }
  }

  private async ensureContext(sequences: number, size: number): Promise<LlamaContext> {
    const c = this.contextShape;
    if (this.context && c.sequences >= sequences && c.size >= size && c.sequences <= sequences * 2) {
      // Disposed sequences return their ids to the context asynchronously (under a lock): wait for them.
      for (let i = 0; i < 500 && this.context.sequencesLeft < sequences; i++) {
        await new Promise((r) => setTimeout(r, 1));
      }
      if (this.context.sequencesLeft >= sequences) return this.context;
    }
    await this.dropContext();
    try {
      this.context = await this.model.createContext({
        sequences,
        contextSize: size,
        threads: this.opts.threads,
        batchSize: Math.min(Math.max(512, sequences), 4096),
        lora: this.adapters.length
          ? { adapters: this.adapters.map((a) => ({ filePath: a.path, scale: a.scale ?? 1 })) }
          : undefined,
        flashAttention: this.flashAttention,
      });
    } catch (e) {
      if (e instanceof InsufficientMemoryError) {
        throw new UserError(
          `${this.info.path}: a context of ${sequences} sequences x ${size} tokens does not fit in memory; lower -G, --max-tokens or --max-sequences`,
          1,
          { cause: e },
        );
      }
      throw new UserError(`${this.info.path}: cannot create a context (${(e as Error).message})`, 1, {
        cause: e,
      });
    }
    this.contextShape = { sequences, size };
    return this.context;
  }

  private async dropContext(): Promise<void> {
    const ctx = this.context;
    this.context = null;
    this.contextShape = { sequences: 0, size: 0 };
    if (ctx && !ctx.disposed) await ctx.dispose();
  }

  async score(requests: ScoreRequest[], options: { signal?: AbortSignal } = {}): Promise<ScoreResult[]> {
    const items = requests.map((r) => {
      const q = ScoreRequestSchema.parse(r);
      const prompt = this.renderer.tokenize(q.prompt, q.format, q.reply);
      const cont: number[] =
        typeof q.continuation === "string" ? this.continuationTokens(q.continuation) : q.continuation;
      return { prompt, cont, sampling: q.sampling };
    });
    return this.teacherForced(
      items.map((it) => ({ prompt: it.prompt, targets: it.cont.map((t) => [t]), sampling: it.sampling })),
      options.signal,
    ).then((res) =>
      res.map((perPos, i) => ({
        tokens: items[i].cont,
        logprobs: perPos.map((p) => Math.log(p[0])),
      })),
    );
  }

  async nextTokenProbs(
    requests: NextTokenRequest[],
    options: { signal?: AbortSignal } = {},
  ): Promise<NextTokenResult[]> {
    const items = requests.map((r) => ({
      prompt: this.renderer.tokenize(r.prompt, r.format ?? "auto", r.reply),
      targets: [r.candidates.map((c) => this.continuationTokens(c)[0] ?? -1)],
    }));
    const res = await this.teacherForced(items, options.signal);
    // Spellings that start with the same token ("yes" and " yes" on some vocabularies) would count that
    // token twice when summed: only the first candidate with a given first token keeps its probability.
    return res.map((perPos, i) => {
      const seen = new Set<number>();
      return {
        probs: perPos[0].map((p, j) => {
          const tok = items[i].targets[0][j];
          if (seen.has(tok)) return 0;
          seen.add(tok);
          return p;
        }),
      };
    });
  }

  /**
   * For each item, evaluates prompt + targets[0..n-2][0] and returns, at each position j, the probability
   * of every token in targets[j] as the next token. Probabilities come from llama.cpp's sampler: raw softmax
   * at temperature 0 (greedy leaves the logits untouched), or the given sampling distribution.
   */
  private async teacherForced(
    items: { prompt: number[]; targets: number[][]; sampling?: Sampling }[],
    signal?: AbortSignal,
  ): Promise<number[][][]> {
    const results: number[][][] = new Array(items.length);
    const max = Math.max(1, this.opts.maxSequences ?? 64);
    for (let start = 0; start < items.length; start += max) {
      if (signal?.aborted) throw new UserError("aborted");
      const chunk = items.slice(start, start + max);
      const size = Math.max(...chunk.map((it) => it.prompt.length + it.targets.length)) + 1;
      for (const it of chunk) this.assertFits(it.prompt.length, it.targets.length);
      const context = await this.ensureContext(chunk.length, size);
      const sequences = chunk.map(() => context.getSequence());
      const tmp = await mkdtemp(path.join(os.tmpdir(), "catrl-prefix-"));
      try {
        // Judge prompts for one response differ only in their criterion: consecutive prompts with a long
        // common prefix share its evaluation.
        const skip = await this.sharePrefixes(
          sequences,
          chunk.map((it) => it.prompt),
          groupConsecutiveByPrefix(
            chunk.map((it) => it.prompt),
            AUTO_PREFIX_COPY_MIN_TOKENS,
          ),
          tmp,
        );
        // One sequence at a time. Evaluated concurrently (one controlledEvaluate per sequence, as before),
        // node-llama-cpp 3.21.1 now and then returned one position's probabilities wrong (it looks like a
        // read after the next decode overwrote the logits): one score off by up to 20 nats in 15 of 200
        // batched calls here, 0 of 200 evaluated in turn (test/engine-batched-score.test.ts). The shared
        // prefixes above still save the judge most of its prompt evaluation.
        for (const [k, it] of chunk.entries()) {
          const s = it.sampling;
          const options = s
            ? { temperature: s.temperature, topK: s.topK, topP: s.topP, minP: s.minP }
            : { temperature: 0 };
          const fed = [...it.prompt, ...it.targets.slice(0, -1).map((t) => t[0])].slice(skip[k]);
          const firstOut = it.prompt.length - 1 - skip[k];
          const input = fed.map((tok, pos) =>
            pos >= firstOut ? ([tok, { generateNext: { probabilities: true, options } }] as const) : tok,
          );
          const outs = await sequences[k].controlledEvaluate(input as never);
          results[start + k] = it.targets.map((cands, j) => {
            const probs = outs[firstOut + j]?.next.probabilities;
            return cands.map((c) => probs?.get(c as Token) ?? 0);
          });
        }
      } finally {
        for (const s of sequences) s.dispose();
        await rm(tmp, { recursive: true, force: true });
      }
    }
    return results;
  }

  async dispose(): Promise<void> {
    await this.dropContext();
    if (this.ownsModel && !this.model.disposed) await this.model.dispose();
  }
}

function commonPrefixLength(lists: number[][]): number {
  let n = 0;
  const shortest = Math.min(...lists.map((l) => l.length));
  while (n < shortest && lists.every((l) => l[n] === lists[0][n])) n++;
  return n;
}

/** Runs of consecutive token lists that share at least `min` leading tokens with the run's first list. */
export function groupConsecutiveByPrefix(lists: number[][], min: number): number[][] {
  const groups: number[][] = [];
  lists.forEach((l, k) => {
    const g = groups[groups.length - 1];
    if (g && commonPrefixLength([lists[g[0]], l]) >= min) g.push(k);
    else groups.push([k]);
  });
  return groups;
}
