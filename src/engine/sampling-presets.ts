import type { Sampling } from "./types.js";

/**
 * Sampling per model family: the model authors' recommendations as the CaT paper used them
 * (../shared/docs/cat-method.md), plus `raw` (the model's own distribution: temperature 1, every filter
 * off, so recorded log-probs are the policy's) and `greedy`. Repeat penalty stays off: on-policy RL
 * sampling must not be reshaped behind the policy's back.
 */
export const SAMPLING_PRESETS = {
  qwen3: { temperature: 0.7, topK: 20, topP: 0.8, minP: 0 },
  llama3: { temperature: 0.7, topK: 50, topP: 0.9, minP: 0 },
  gemma3: { temperature: 1.0, topK: 64, topP: 0.95, minP: 0 },
  raw: { temperature: 1.0, topK: 0, topP: 1, minP: 0 },
  greedy: { temperature: 0, topK: 0, topP: 1, minP: 0 },
} as const satisfies Record<string, Sampling>;

export type SamplingPresetName = keyof typeof SAMPLING_PRESETS;

export function isSamplingPresetName(s: string): s is SamplingPresetName {
  return Object.hasOwn(SAMPLING_PRESETS, s);
}

/** The family of a GGUF from its architecture and name; unknown families sample raw. */
export function modelFamily(architecture: string, name: string): string {
  const n = name.toLowerCase();
  if (architecture === "qwen3" || architecture === "qwen3moe" || /qwen-?3/.test(n)) return "qwen3";
  if (architecture.startsWith("gemma3") || /gemma-?3/.test(n)) return "gemma3";
  if (architecture === "llama" && /llama-?3/.test(n)) return "llama3";
  return "unknown";
}

export function presetForFamily(family: string): SamplingPresetName {
  return isSamplingPresetName(family) ? family : "raw";
}
