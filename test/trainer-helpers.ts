import { existsSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel, type Token } from "node-llama-cpp";
import { writeRandomModel } from "../src/modelgen/index.js";
import { convertModel } from "../src/rl/trainer/index.js";
import { STORIES } from "./helpers/shared.js";

export { hasStories, noStoriesReason, STORIES } from "./helpers/shared.js";

let llamaP: Promise<Llama> | undefined;
/** node-llama-cpp on CPU at one thread, as the rest of the suite uses it. */
export function llama(): Promise<Llama> {
  llamaP ??= getLlama({ gpu: false, build: "never", maxThreads: 1, logLevel: LlamaLogLevel.error });
  return llamaP;
}

export function tmpDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `catrl-${prefix}-`));
}

/**
 * Per-token log-probs of `completion` after `prompt` according to node-llama-cpp (llama.cpp), from
 * controlledEvaluate's next-token probabilities at temperature 0 (the sampler then leaves the logits
 * untouched, so these are the raw softmax).
 */
export async function llamaLogprobs(
  model: LlamaModel,
  seqs: { prompt: number[]; completion: number[] }[],
  adapter?: string,
  exact = true,
): Promise<number[][]> {
  const ctxSize = Math.max(...seqs.map((s) => s.prompt.length + s.completion.length)) + 8;
  const context = await model.createContext({
    contextSize: ctxSize,
    sequences: seqs.length,
    threads: 1,
    // exact: F32 KV cache and explicit attention, as the trainer computes; otherwise node-llama-cpp's
    // defaults (F16 KV cache, flash attention where available)
    ...(exact
      ? { flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" }
      : {}),
    ...(adapter ? { lora: { adapters: [{ filePath: adapter, scale: 1 }] } } : {}),
  });
  try {
    const out: number[][] = [];
    for (const s of seqs) {
      const seq = context.getSequence();
      const fed = [...s.prompt, ...s.completion.slice(0, -1)];
      const first = s.prompt.length - 1;
      const input = fed.map((tok, pos) =>
        pos >= first
          ? ([tok as Token, { generateNext: { probabilities: true, options: { temperature: 0 } } }] as const)
          : (tok as Token),
      );
      const res = await seq.controlledEvaluate(input as never);
      out.push(
        s.completion.map((c, j) => {
          const p = (res[first + j] as { next?: { probabilities?: Map<Token, number> } } | undefined)?.next
            ?.probabilities;
          return Math.log(p?.get(c as Token) ?? 0);
        }),
      );
      seq.dispose();
    }
    return out;
  } finally {
    await context.dispose();
  }
}

/**
 * A small random-weight model (tokenizer from stories260K: 512 tokens). `noise` perturbs the norm
 * weights and biases (the generator writes ones and zeros, which would hide bugs there); `convertTo`
 * re-encodes the matrices in another ggml type (e.g. "q4_K", which the generator does not write; it
 * needs rows that are multiples of 256, hence `wide`).
 */
export async function generatedModel(
  dir: string,
  opts: {
    arch: "llama" | "qwen2" | "qwen3" | "gemma3";
    type: "f32" | "f16" | "q8_0";
    seed: number;
    tied?: boolean;
    noise?: number;
    convertTo?: string;
    wide?: boolean;
  },
): Promise<string> {
  const stem = `gen-${opts.arch}-${opts.type}-${opts.seed}${opts.tied ? "-tied" : ""}${opts.wide ? "-wide" : ""}`;
  const raw = path.join(dir, `${stem}.gguf`);
  if (!existsSync(raw))
    await writeRandomModel({
      shape: {
        arch: opts.arch,
        n_embd: opts.wide ? 256 : 64,
        n_layer: 2,
        n_head: 4,
        n_head_kv: 2,
        head_dim: opts.wide ? 64 : 16,
        n_ff: opts.wide ? 512 : 96,
        rope_freq_base: 10000,
        rms_eps: 1e-6,
        context_length: 256,
        tied_embeddings: opts.tied ?? false,
        // gemma3: layers 0 and 1 local (window 8, their own RoPE base), layer 2 global (linear RoPE scaling)
        ...(opts.arch === "gemma3" ? GEMMA3_TEST_SHAPE : {}),
      },
      type: opts.type,
      seed: opts.seed,
      tokenizerFrom: STORIES,
      out: raw,
    });
  if (!opts.noise && !opts.convertTo) return raw;
  const out = path.join(dir, `${stem}-${opts.convertTo ?? "same"}-n${opts.noise ?? 0}.gguf`);
  if (!existsSync(out))
    convertModel({ input: raw, output: out, type: opts.convertTo, noise: opts.noise ?? 0, seed: opts.seed });
  return out;
}

/** The sliding window of generated gemma3 models: shorter than the parity and training sequences. */
export const GEMMA3_TEST_WINDOW = 8;
const GEMMA3_TEST_SHAPE = {
  n_layer: 3,
  sliding_window: GEMMA3_TEST_WINDOW,
  sliding_window_pattern: 3,
  rope_freq_base: 1e6,
  rope_freq_base_swa: 10000,
  rope_scale_linear: 8,
} as const;

/** Deterministic pseudo-random floats in [-scale, scale). */
export function noise(n: number, seed: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    a[i] = ((x / 4294967296) * 2 - 1) * scale;
  }
  return a;
}

export function maxAbsDiff(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  let m = 0;
  a.forEach((row, i) => {
    for (let j = 0; j < row.length; j++) m = Math.max(m, Math.abs(row[j] - b[i][j]));
  });
  return m;
}
