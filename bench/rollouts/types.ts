import type { Sampling } from "../../src/engine/types.js";

/**
 * `llama.cpp` is llama-batched-bench at its defaults (`-fa auto`: flash attention on for this CPU), the
 * comparison users make; `llama.cpp-fa-off` the plain attention path; `llama.cpp-pps` its defaults with the
 * prompt evaluated once and shared by every sequence (`-pps`, one-prompt cases only). `engine-fa-off` is
 * the engine with flash attention forced off: what flash attention buys the engine.
 */
export type VariantName =
  | "engine"
  | "engine-fa-off"
  | "naive"
  | "llama.cpp"
  | "llama.cpp-fa-off"
  | "llama.cpp-pps";
export const VARIANTS: readonly VariantName[] = [
  "engine",
  "engine-fa-off",
  "naive",
  "llama.cpp",
  "llama.cpp-fa-off",
  "llama.cpp-pps",
];

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
  maxTokens: number;
  /** Prompt length in tokens (mean over the case's prompts). */
  promptTokens: number;
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
  /** Prompt evaluation rate where the variant reports it (llama-batched-bench's S_PP). */
  prefillTokensPerSec?: number;
  /** Untimed set-up before the run (context creation for this case's shape), seconds. */
  setupSeconds?: number;
  /** The machine's 1-minute load average right after the run (the machine is shared). */
  loadavg1?: number;
};

export interface Variant {
  readonly name: VariantName;
  /**
   * Creates what a run of this case's shape needs (contexts), untimed: training repeats one shape step
   * after step, so the steady state is what counts. llama-batched-bench does not time its set-up either.
   */
  prepare?(c: BenchCase): Promise<void>;
  run(c: BenchCase, repeat: number): Promise<Measurement>;
  /** Whether this variant measures the case at all (llama-batched-bench -pps shares one prompt only). */
  applies?(c: BenchCase): boolean;
  dispose(): Promise<void>;
}
