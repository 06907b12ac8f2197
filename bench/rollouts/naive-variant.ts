import { LlamaCompletion, type LlamaContext, type LlamaModel } from "node-llama-cpp";
import { loadLlama } from "../../src/engine/llama-runtime.js";
import type { BenchCase, Measurement, Variant } from "./types.js";

/**
 * What a user writes without this project: one context with one sequence and node-llama-cpp's
 * LlamaCompletion, one rollout after another, with the same sampling and token limit.
 */
export class NaiveVariant implements Variant {
  readonly name = "naive" as const;
  private context: LlamaContext | null = null;
  private contextSize = 0;

  private constructor(
    private readonly model: LlamaModel,
    private readonly ownsModel: boolean,
    private readonly threads: number,
    /** At most this many rollouts are timed per case: one at a time, the rate does not depend on the count. */
    private readonly maxRollouts: number,
  ) {}

  static async open(opts: {
    modelPath: string;
    threads: number;
    maxRollouts: number;
    shareModel?: LlamaModel;
  }): Promise<NaiveVariant> {
    if (opts.shareModel) return new NaiveVariant(opts.shareModel, false, opts.threads, opts.maxRollouts);
    const llama = await loadLlama({ gpu: "cpu", threads: opts.threads });
    const model = await llama.loadModel({ modelPath: opts.modelPath });
    return new NaiveVariant(model, true, opts.threads, opts.maxRollouts);
  }

  private async ensureContext(size: number): Promise<LlamaContext> {
    if (this.context && this.contextSize >= size) return this.context;
    await this.context?.dispose();
    this.context = await this.model.createContext({ contextSize: size, threads: this.threads, sequences: 1 });
    this.contextSize = size;
    return this.context;
  }

  private sizeFor(c: BenchCase): number {
    return c.promptTokens * 2 + c.maxTokens + 16;
  }

  async prepare(c: BenchCase): Promise<void> {
    await this.ensureContext(this.sizeFor(c));
  }

  async run(c: BenchCase, repeat: number): Promise<Measurement> {
    const jobs: { prompt: string; seed: number }[] = [];
    c.prompts.forEach((prompt, i) => {
      for (let g = 0; g < c.G; g++) jobs.push({ prompt, seed: c.seed + i * c.G + g });
    });
    // Spread the timed subset over prompts so each prompt length is represented.
    const step = jobs.length / Math.min(jobs.length, this.maxRollouts);
    const timed = Array.from(
      { length: Math.min(jobs.length, this.maxRollouts) },
      (_, k) => jobs[Math.floor(k * step)],
    );

    const context = await this.ensureContext(this.sizeFor(c));
    const sequence = context.getSequence();
    const completion = new LlamaCompletion({ contextSequence: sequence });
    let tokens = 0;
    const t0 = performance.now();
    try {
      for (const job of timed) {
        let got = 0;
        await completion.generateCompletion(job.prompt, {
          maxTokens: c.maxTokens,
          temperature: c.sampling.temperature,
          topK: c.sampling.topK,
          topP: c.sampling.topP,
          minP: c.sampling.minP,
          seed: job.seed,
          repeatPenalty: false,
          onToken: (t) => {
            got += t.length;
          },
        });
        // onToken occasionally reports one token past maxTokens; count what the budget allows.
        tokens += Math.min(got, c.maxTokens);
      }
    } finally {
      completion.dispose();
      sequence.dispose();
    }
    const seconds = (performance.now() - t0) / 1000;
    return {
      variant: this.name,
      prompts: c.prompts.length,
      G: c.G,
      maxTokens: c.maxTokens,
      promptTokens: c.promptTokens,
      repeat,
      rollouts: timed.length,
      tokens,
      seconds,
      rolloutsPerSec: timed.length / seconds,
      tokensPerSec: tokens / seconds,
    };
  }

  async dispose(): Promise<void> {
    await this.context?.dispose();
    if (this.ownsModel) await this.model.dispose();
  }
}
