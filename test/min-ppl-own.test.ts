import { describe, expect, test } from "vitest";
import { extractFinalAnswer } from "../src/cat/answers/extract.js";
import { type CatSettings, runCat } from "../src/cat/pipeline.js";
import type { VerifiableTask } from "../src/cat/task.js";
import type { Engine, GenerationRequest, Rollout, Sampling, ScoreRequest } from "../src/engine/types.js";

const PRESET: Sampling = { temperature: 0.7, topK: 20, topP: 0.8, minP: 0 };
const RAW: Sampling = { temperature: 1, topK: 0, topP: 1, minP: 0 };

/**
 * Two rollouts: under the sampler's (sharpened) distribution rollout 0 looks likelier, under the model
 * itself rollout 1 is. The engine answers `score` with the model's own log-probs and counts the calls.
 */
function engines() {
  const scoreCalls: ScoreRequest[] = [];
  const rollout = (i: number, text: string, lp: number[]): Rollout => ({
    requestIndex: 0,
    rolloutIndex: i,
    seed: i,
    text,
    tokens: lp.map((_, k) => 10 + k),
    promptTokens: 3,
    finishReason: "max_tokens",
    logprobs: lp,
    timings: { startMs: 0, firstTokenMs: 0, endMs: 0 },
  });
  const engine = {
    info: {
      path: "m.gguf",
      architecture: "llama",
      trainContextSize: 100_000,
      vocabSize: 1,
      hasChatTemplate: false,
      family: "unknown",
    },
    tokenizePrompt: () => [1, 2, 3],
    generate: async (reqs: GenerationRequest[]) =>
      reqs.map((r) =>
        r.n === 2
          ? [rollout(0, "\\boxed{1}", [-0.1, -0.1]), rollout(1, "\\boxed{2}", [-0.3, -0.3])]
          : [{ ...rollout(0, "# UNIFIED RESPONSE\n\\boxed{2}", [-1]), finishReason: "eog" as const }],
      ),
    score: async (reqs: ScoreRequest[]) => {
      scoreCalls.push(...reqs);
      return reqs.map((q, k) => ({
        tokens: q.continuation as number[],
        logprobs: k === 0 ? [-2, -2] : [-0.5, -0.5],
      }));
    },
  } as unknown as Engine;
  return { cat: { policy: engine, anchor: engine, judge: engine }, scoreCalls };
}

const task: VerifiableTask = {
  kind: "verifiable",
  name: "t",
  template: "reasoning-v1",
  extract: extractFinalAnswer,
  matchMany: async (pairs) => pairs.map((p) => p.a != null && p.a === p.b),
  close: async () => {},
};

const settings = (sampling: Sampling): CatSettings => ({
  G: 2,
  maxTokens: 2,
  sampling,
  seed: 1,
  synthesis: {
    template: "reasoning-v1",
    anchorSeesQuestion: false,
    stripThink: true,
    noThink: false,
    maxTokens: 8,
    sampling: RAW,
  },
  gSweep: [],
  estimators: ["min-ppl"],
  rubric: { rubricMaxTokens: 1, retries: 0, sampling: RAW, judgeMode: "logprob", threshold: 0.5 },
  judgeSeesConversation: false,
});

describe("min-ppl ranks by the model's own log-probs", () => {
  test("under a sampling preset: re-scored by the policy, not the sampler's log-probs", async () => {
    const { cat, scoreCalls } = engines();
    const [r] = await runCat(cat, task, [{ id: "1", line: 1, prompt: "q" }], settings(PRESET));
    expect(scoreCalls.map((c) => c.continuation)).toEqual([
      [10, 11],
      [10, 11],
    ]);
    expect(scoreCalls[0].sampling).toBeUndefined();
    // The sampler's log-probs favour rollout 0; the model's own favour rollout 1.
    expect(r.estimators["min-ppl"]?.index).toBe(1);
    expect(r.estimators["min-ppl"]?.answer).toBe("2");
  });
  test("with raw sampling the recorded log-probs are the model's own: no extra pass", async () => {
    const { cat, scoreCalls } = engines();
    const [r] = await runCat(cat, task, [{ id: "1", line: 1, prompt: "q" }], settings(RAW));
    expect(scoreCalls).toHaveLength(0);
    expect(r.estimators["min-ppl"]?.index).toBe(0);
  });
});
