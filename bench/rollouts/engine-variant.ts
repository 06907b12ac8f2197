import { type LlamaEngine, openLlamaEngine } from "../../src/engine/llama-engine.js";
import type { BenchCase, Measurement, Variant } from "./types.js";

/** The project's engine: one `generate` call for all prompts x G rollouts. */
export class EngineVariant implements Variant {
  private constructor(
    readonly engine: LlamaEngine,
    readonly name: "engine" | "engine-fa-off",
  ) {}

  /** `flashAttention: false` gives the `engine-fa-off` variant (sharing `shareWith`'s loaded model). */
  static async open(
    modelPath: string,
    threads: number,
    o: { flashAttention?: false; shareWith?: LlamaEngine } = {},
  ): Promise<EngineVariant> {
    const engine = await openLlamaEngine({
      modelPath,
      threads,
      gpu: "cpu",
      ...(o.flashAttention === false ? { flashAttention: false } : {}),
      ...(o.shareWith ? { shareModelWith: o.shareWith } : {}),
    });
    return new EngineVariant(engine, o.flashAttention === false ? "engine-fa-off" : "engine");
  }

  private requests(c: BenchCase) {
    return c.prompts.map((prompt, i) => ({
      prompt,
      n: c.G,
      maxTokens: c.maxTokens,
      sampling: c.sampling,
      seed: c.seed + i * c.G,
      format: "raw" as const,
      // Fixed-length rollouts, as llama-batched-bench generates: an early end-of-generation would narrow
      // the batch and make the comparison about the text, not the engine.
      ignoreEog: true,
    }));
  }

  /** The engine sizes its context from the batch, so the same batch is started and stopped at its first token. */
  async prepare(c: BenchCase): Promise<void> {
    const ac = new AbortController();
    await this.engine.generate(this.requests(c), { signal: ac.signal, onProgress: () => ac.abort() });
  }

  async run(c: BenchCase, repeat: number): Promise<Measurement> {
    const t0 = performance.now();
    const out = await this.engine.generate(this.requests(c));
    const seconds = (performance.now() - t0) / 1000;
    const rollouts = out.flat();
    const tokens = rollouts.reduce((s, r) => s + r.tokens.length, 0);
    // Decode window: from the first sampled token (prompt batch done) to the last rollout's end.
    const firsts = rollouts.map((r) => r.timings.firstTokenMs).filter((x): x is number => x != null);
    const decodeMs = Math.max(...rollouts.map((r) => r.timings.endMs)) - Math.min(...firsts);
    const decodeTokens = tokens - firsts.length;
    return {
      variant: this.name,
      prompts: c.prompts.length,
      G: c.G,
      maxTokens: c.maxTokens,
      promptTokens: c.promptTokens,
      repeat,
      rollouts: rollouts.length,
      tokens,
      seconds,
      rolloutsPerSec: rollouts.length / seconds,
      tokensPerSec: tokens / seconds,
      decodeTokensPerSec: decodeMs > 0 ? decodeTokens / (decodeMs / 1000) : undefined,
    };
  }

  async dispose(): Promise<void> {
    await this.engine.dispose();
  }
}
