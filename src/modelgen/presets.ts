import type { ModelShape } from "./shape.js";

/**
 * Where a preset's tokenizer comes from: a GGUF found by file name (stories260K, shipped beside the
 * tests), or one of the tokenizer-only GGUFs in the llama.cpp source that node-llama-cpp bundles.
 */
export type TokenizerSource = { kind: "stories260K" } | { kind: "llama.cpp-vocab"; name: string };

export type ModelPreset = {
  name: string;
  description: string;
  shape: Omit<ModelShape, "n_vocab">;
  tokenizer: TokenizerSource;
  /** Vocabulary size of the default tokenizer, so parameter counts need no tokenizer file. */
  n_vocab: number;
};

const stories = { kind: "stories260K" } as const;

export const MODEL_PRESETS: Record<string, ModelPreset> = {
  tiny: {
    name: "tiny",
    description: "2 layers, width 64: for tests",
    shape: {
      arch: "llama",
      n_embd: 64,
      n_layer: 2,
      n_head: 4,
      n_head_kv: 2,
      head_dim: 16,
      n_ff: 128,
      rope_freq_base: 10000,
      rms_eps: 1e-5,
      context_length: 512,
      tied_embeddings: false,
    },
    tokenizer: stories,
    n_vocab: 512,
  },
  "85m": {
    name: "85m",
    description: "llama, 12 layers, width 768: the rollout benchmark's model",
    shape: {
      arch: "llama",
      n_embd: 768,
      n_layer: 12,
      n_head: 12,
      n_head_kv: 12,
      head_dim: 64,
      n_ff: 2048,
      rope_freq_base: 10000,
      rms_eps: 1e-5,
      context_length: 2048,
      tied_embeddings: false,
    },
    tokenizer: stories,
    n_vocab: 512,
  },
  "qwen3-0.6b": {
    name: "qwen3-0.6b",
    description: "the shape of Qwen3-0.6B",
    shape: {
      arch: "qwen3",
      n_embd: 1024,
      n_layer: 28,
      n_head: 16,
      n_head_kv: 8,
      head_dim: 128,
      n_ff: 3072,
      rope_freq_base: 1e6,
      rms_eps: 1e-6,
      context_length: 40960,
      tied_embeddings: true,
    },
    tokenizer: { kind: "llama.cpp-vocab", name: "qwen2" },
    n_vocab: 151936,
  },
  "qwen3-4b": {
    name: "qwen3-4b",
    description: "the shape of Qwen3-4B",
    shape: {
      arch: "qwen3",
      n_embd: 2560,
      n_layer: 36,
      n_head: 32,
      n_head_kv: 8,
      head_dim: 128,
      n_ff: 9728,
      rope_freq_base: 1e6,
      rms_eps: 1e-6,
      context_length: 40960,
      tied_embeddings: true,
    },
    tokenizer: { kind: "llama.cpp-vocab", name: "qwen2" },
    n_vocab: 151936,
  },
  "llama-3.1-8b": {
    name: "llama-3.1-8b",
    description: "the shape of Llama-3.1-8B",
    shape: {
      arch: "llama",
      n_embd: 4096,
      n_layer: 32,
      n_head: 32,
      n_head_kv: 8,
      head_dim: 128,
      n_ff: 14336,
      rope_freq_base: 500000,
      rms_eps: 1e-5,
      context_length: 131072,
      tied_embeddings: false,
    },
    tokenizer: { kind: "llama.cpp-vocab", name: "llama-bpe" },
    n_vocab: 128256,
  },
  "gemma3-tiny": {
    name: "gemma3-tiny",
    description: "gemma3, 6 layers (5 local, window 16, then 1 global), width 64: for tests",
    shape: {
      arch: "gemma3",
      n_embd: 64,
      n_layer: 6,
      n_head: 4,
      n_head_kv: 2,
      head_dim: 32,
      n_ff: 128,
      rope_freq_base: 1e6,
      rope_freq_base_swa: 10000,
      rope_scale_linear: 8,
      sliding_window: 16,
      sliding_window_pattern: 6,
      rms_eps: 1e-6,
      // room for CaT's synthesis prompt (G rollouts plus instructions, in stories260K's short tokens)
      context_length: 2048,
      tied_embeddings: true,
    },
    // stories260K's 512 tokens keep the output head small enough for the trainer's tests
    tokenizer: stories,
    n_vocab: 512,
  },
  "gemma3-4b": {
    name: "gemma3-4b",
    description:
      "the shape of Gemma-3-4B's language model (vocabulary: the bundled Gemma tokenizer's 262,144)",
    shape: {
      arch: "gemma3",
      n_embd: 2560,
      n_layer: 34,
      n_head: 8,
      n_head_kv: 4,
      head_dim: 256,
      n_ff: 10240,
      rope_freq_base: 1e6,
      rope_freq_base_swa: 10000,
      rope_scale_linear: 8,
      sliding_window: 1024,
      sliding_window_pattern: 6,
      rms_eps: 1e-6,
      context_length: 131072,
      tied_embeddings: true,
    },
    // The only Gemma tokenizer in the bundled llama.cpp (tokenizer model "gemma4", 262,144 tokens; Gemma 3's
    // own adds 64 image tokens to the same SentencePiece vocabulary). llama.cpp picks the tokenizer by
    // tokenizer.ggml.model, not by architecture, so a gemma3 model loads with it.
    tokenizer: { kind: "llama.cpp-vocab", name: "gemma-4" },
    n_vocab: 262144,
  },
};
