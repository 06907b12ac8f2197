import { describe, expect, test } from "vitest";
import { type SynthesisSettings, synthesizeBatch } from "../src/cat/synthesize.js";
import type { Engine, GenerationRequest, Rollout } from "../src/engine/types.js";

/** An anchor that writes the given texts, ending each as told. */
function anchor(outputs: { text: string; finishReason: Rollout["finishReason"] }[]): Engine {
  return {
    info: {
      path: "a.gguf",
      architecture: "llama",
      trainContextSize: 100_000,
      vocabSize: 1,
      hasChatTemplate: true,
      family: "qwen3",
    },
    tokenizePrompt: () => [1, 2, 3],
    generate: async (reqs: GenerationRequest[]) =>
      reqs.map((_, i) => [{ ...outputs[i], tokens: [1], logprobs: [0] } as unknown as Rollout]),
  } as unknown as Engine;
}

const settings = (requireComplete: boolean): SynthesisSettings => ({
  template: "reasoning-v1",
  anchorSeesQuestion: false,
  stripThink: true,
  noThink: false,
  maxTokens: 64,
  sampling: { temperature: 0, topK: 0, topP: 1, minP: 0 },
  requireComplete,
});

const outputs = [
  // The probe: cut off before any unified section, whose last "answer is" was a comparison.
  { text: "Response 1 says the answer is 12, while response 5 gets 13", finishReason: "max_tokens" as const },
  {
    text: "# SUMMARY\nThey agree.\n# UNIFIED RESPONSE\nSo the answer is $\\boxed{12}$.",
    finishReason: "eog" as const,
  },
  {
    text: "# SUMMARY\nThey agree.\n# UNIFIED RESPONSE\nFirst we add 5 and",
    finishReason: "max_tokens" as const,
  },
  { text: "The answer is 12.", finishReason: "eog" as const },
];
const groups = outputs.map((_, i) => ({ rollouts: ["a", "b"], seed: i }));

describe("a reference comes only from a complete unified section", () => {
  test("cut off, or without the section: no reference, and the reason says so", async () => {
    const r = await synthesizeBatch(anchor(outputs), groups, settings(true));
    expect(r.map((x) => x.ok)).toEqual([false, true, false, false]);
    expect(r[0].ok === false && r[0].error).toMatch(
      /cut off at the token limit \(64\) before its unified section/,
    );
    expect(r[2].ok === false && r[2].error).toMatch(/inside its unified section/);
    expect(r[3].ok === false && r[3].error).toMatch(/no UNIFIED RESPONSE section/);
    expect(r[1].ok && r[1].unified).toBe("So the answer is $\\boxed{12}$.");
  });
  test("a raw anchor that cannot follow the format keeps its whole continuation (the old behaviour)", async () => {
    const r = await synthesizeBatch(anchor(outputs), groups, settings(false));
    expect(r.every((x) => x.ok)).toBe(true);
  });
});
