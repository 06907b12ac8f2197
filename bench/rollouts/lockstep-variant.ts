import type { LlamaContext, LlamaModel, Token } from "node-llama-cpp";
import type { BenchCase, Measurement, Variant } from "./types.js";

/**
 * A prototype, not the engine: every step starts each live sequence's one-token `controlledEvaluate` in
 * the same tick and awaits them all, so node-llama-cpp always finds every sequence queued and decodes
 * them as one batch. (Concurrent per-sequence generators leave one or two sequences out of most batches.)
 * Same sampling, end-of-generation stop and token budget as the engine; shown to size the engine's gap.
 */
export class LockstepVariant implements Variant {
  readonly name = "lockstep" as const;
  private context: LlamaContext | null = null;
  private shape = { sequences: 0, size: 0 };

  constructor(
    private readonly model: LlamaModel,
    private readonly threads: number,
  ) {}

  private async ensureContext(sequences: number, size: number): Promise<LlamaContext> {
    if (this.context && this.shape.sequences === sequences && this.shape.size >= size) return this.context;
    await this.context?.dispose();
    this.context = await this.model.createContext({
      sequences,
      contextSize: size,
      threads: this.threads,
      batchSize: Math.min(Math.max(512, sequences), 4096),
      flashAttention: false,
    });
    this.shape = { sequences, size };
    return this.context;
  }

  private promptTokens(c: BenchCase): Token[][] {
    const bos = this.model.tokens.bos == null ? [] : [this.model.tokens.bos];
    return c.prompts.map((p) => [...bos, ...this.model.tokenize(p)]);
  }

  async prepare(c: BenchCase): Promise<void> {
    const prompts = this.promptTokens(c);
    await this.ensureContext(
      c.prompts.length * c.G,
      Math.max(...prompts.map((p) => p.length)) + c.maxTokens + 1,
    );
  }

  async run(c: BenchCase, repeat: number): Promise<Measurement> {
    const n = c.prompts.length * c.G;
    const prompts = this.promptTokens(c);
    const t0 = performance.now();
    const context = await this.ensureContext(n, Math.max(...prompts.map((p) => p.length)) + c.maxTokens + 1);
    const seqs = Array.from({ length: n }, () => context.getSequence());
    const s = c.sampling;
    const next = (k: number, step: number) => ({
      generateNext: {
        token: true,
        confidence: true,
        options: {
          temperature: s.temperature,
          topK: s.topK,
          topP: s.topP,
          minP: s.minP,
          seed: c.seed + k + step * n,
        },
      },
    });
    const counts = new Array<number>(n).fill(0);
    try {
      let last: (Token | null)[] = await Promise.all(
        seqs.map(async (seq, k) => {
          const prompt = prompts[Math.floor(k / c.G)];
          const input = prompt.map((t, i) => (i === prompt.length - 1 ? ([t, next(k, 0)] as const) : t));
          const out = await seq.controlledEvaluate(input as never);
          return out[prompt.length - 1]?.next.token ?? null;
        }),
      );
      for (let step = 1; ; step++) {
        const live = last.map((t, k) => {
          if (t == null || this.model.isEogToken(t) || counts[k] >= c.maxTokens) return false;
          counts[k]++;
          return counts[k] < c.maxTokens;
        });
        if (!live.some(Boolean)) break;
        last = await Promise.all(
          seqs.map(async (seq, k) => {
            if (!live[k]) return null;
            const out = await seq.controlledEvaluate([[last[k] as Token, next(k, step)]]);
            return out[0]?.next.token ?? null;
          }),
        );
      }
    } finally {
      for (const seq of seqs) seq.dispose();
    }
    const seconds = (performance.now() - t0) / 1000;
    const tokens = counts.reduce((a, b) => a + b, 0);
    return {
      variant: this.name,
      prompts: c.prompts.length,
      G: c.G,
      repeat,
      rollouts: n,
      tokens,
      seconds,
      rolloutsPerSec: n / seconds,
      tokensPerSec: tokens / seconds,
    };
  }

  async dispose(): Promise<void> {
    await this.context?.dispose();
  }
}
