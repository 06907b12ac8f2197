import type { Sampling } from "../../src/engine/types.js";

export type VariantName = "engine" | "naive" | "llama.cpp";
export const VARIANTS: readonly VariantName[] = ["engine", "naive", "llama.cpp"];

/** One batch of rollouts: `prompts` prompts times `G` rollouts each, every rollout up to `maxTokens`. */
export type BenchCase = {
  prompts: string[];
  /** Prompt length in tokens (mean over `prompts`), what llama-batched-bench is given as -npp. */
  promptTokens: number;
  G: number;
  maxTokens: number;
  sampling: Sampling;
  seed: number;
};

export type Measurement = {
  variant: VariantName;
  prompts: number;
  G: number;
  repeat: number;
  /** Rollouts actually timed (the naive loop may time fewer than prompts x G; its rate does not depend on it). */
  rollouts: number;
  /** Generated tokens (rollouts can end early at end-of-generation in the engine and naive runs). */
  tokens: number;
  /** Wall time of the whole batch, prompt evaluation included. */
  seconds: number;
  rolloutsPerSec: number;
  tokensPerSec: number;
  /** Generation-only rate where the variant can tell it apart from prompt evaluation. */
  decodeTokensPerSec?: number;
  /** Untimed set-up before the run (context creation for this case's shape), seconds. */
  setupSeconds?: number;
};

export interface Variant {
  readonly name: VariantName;
  /**
   * Creates what a run of this case's shape needs (contexts), untimed: training repeats one shape step
   * after step, so the steady state is what counts. llama-batched-bench does not time its set-up either.
   */
  prepare?(c: BenchCase): Promise<void>;
  run(c: BenchCase, repeat: number): Promise<Measurement>;
  dispose(): Promise<void>;
}
