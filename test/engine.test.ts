import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LlamaEngine, openLlamaEngine } from "../src/engine/llama-engine.js";
import { SAMPLING_PRESETS } from "../src/engine/sampling-presets.js";
import { STORIES } from "./helpers/shared.js";

// Log-probs recorded while sampling and log-probs of a teacher-forced re-scoring come from different
// batch shapes (one token per sequence per decode vs the whole continuation in one batch) and pass
// through llama.cpp's F16 KV cache; measured here on the F32 stories260K: mean |diff| ~2e-4 nats, max
// 3e-3 to 8e-3 nats. A wrong token alignment or a missing temperature shows up as 0.1 to several nats.
const LOGPROB_MAX_TOLERANCE = 2e-2;
const LOGPROB_MEAN_TOLERANCE = 1e-3;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe("LlamaEngine on stories260K (real llama.cpp)", () => {
  let engine: LlamaEngine;
  beforeAll(async () => {
    engine = await openLlamaEngine({ modelPath: STORIES, threads: 1, gpu: "cpu" });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it("reads the model's metadata", () => {
    expect(engine.info.architecture).toBe("llama");
    expect(engine.info.vocabSize).toBe(512);
    expect(engine.info.hasChatTemplate).toBe(false);
  });

  it("gives G rollouts with distinct seeds distinct texts, all generated concurrently", async () => {
    const [rs] = await engine.generate([
      { prompt: "Once upon a time", n: 6, maxTokens: 32, sampling: SAMPLING_PRESETS.raw, seed: 100 },
    ]);
    expect(rs.map((r) => r.seed)).toEqual([100, 101, 102, 103, 104, 105]);
    expect(new Set(rs.map((r) => r.text)).size).toBeGreaterThanOrEqual(5);
    for (const r of rs) {
      expect(r.tokens.length).toBe(r.logprobs.length);
      expect(r.tokens.length).toBeGreaterThan(0);
      expect(r.logprobs.every((lp) => lp <= 0 && Number.isFinite(lp))).toBe(true);
    }
    // Concurrent: every rollout started before the first one ended.
    const firstEnd = Math.min(...rs.map((r) => r.timings.endMs));
    expect(rs.every((r) => r.timings.startMs < firstEnd)).toBe(true);
  });

  it("repeats the same texts for the same seeds and batch composition", async () => {
    const req = [
      { prompt: "The dog", n: 3, maxTokens: 24, sampling: SAMPLING_PRESETS.raw, seed: 7 },
      { prompt: "Lily went", n: 2, maxTokens: 24, sampling: SAMPLING_PRESETS.raw, seed: 70 },
    ];
    const a = await engine.generate(req);
    const b = await engine.generate(req);
    expect(b.map((rs) => rs.map((r) => r.text))).toEqual(a.map((rs) => rs.map((r) => r.text)));
    expect(b[1][1].tokens).toEqual(a[1][1].tokens);
  });

  it("records log-probs equal to a teacher-forced re-scoring of the same tokens (raw sampling)", async () => {
    const [rs] = await engine.generate([
      { prompt: "Once upon a time", n: 3, maxTokens: 40, sampling: SAMPLING_PRESETS.raw, seed: 5 },
    ]);
    const scored = await engine.score(
      rs.map((r) => ({ prompt: "Once upon a time", continuation: r.tokens })),
    );
    for (let i = 0; i < rs.length; i++) {
      expect(scored[i].tokens).toEqual(rs[i].tokens);
      const diffs = scored[i].logprobs.map((lp, j) => Math.abs(lp - rs[i].logprobs[j]));
      expect(Math.max(...diffs)).toBeLessThan(LOGPROB_MAX_TOLERANCE);
      expect(mean(diffs)).toBeLessThan(LOGPROB_MEAN_TOLERANCE);
    }
  });

  it("records log-probs of the filtered distribution when sampling with a preset, matching a re-scoring under it", async () => {
    const sampling = SAMPLING_PRESETS.qwen3;
    const [rs] = await engine.generate([{ prompt: "The cat", n: 2, maxTokens: 24, sampling, seed: 11 }]);
    const raw = await engine.score(rs.map((r) => ({ prompt: "The cat", continuation: r.tokens })));
    const filtered = await engine.score(
      rs.map((r) => ({ prompt: "The cat", continuation: r.tokens, sampling })),
    );
    for (let i = 0; i < rs.length; i++) {
      const d = filtered[i].logprobs.map((lp, j) => Math.abs(lp - rs[i].logprobs[j]));
      expect(Math.max(...d)).toBeLessThan(LOGPROB_MAX_TOLERANCE);
      expect(mean(d)).toBeLessThan(LOGPROB_MEAN_TOLERANCE);
      // Temperature 0.7 with top-k/top-p sharpens the distribution: sampled tokens are likelier under it.
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      expect(sum(rs[i].logprobs)).toBeGreaterThan(sum(raw[i].logprobs));
    }
  });

  it("gives the same greedy text whether the prompt's KV state is copied or re-evaluated", async () => {
    const prompt =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball";
    const req = [{ prompt, n: 3, maxTokens: 24, sampling: SAMPLING_PRESETS.greedy, seed: 1 }];
    const copy = await openLlamaEngine({ modelPath: STORIES, threads: 1, gpu: "cpu", prefixShare: "copy" });
    const none = await openLlamaEngine({ modelPath: STORIES, threads: 1, gpu: "cpu", prefixShare: "none" });
    try {
      const [a] = await copy.generate(req);
      const [b] = await none.generate(req);
      expect(a.map((r) => r.text)).toEqual(b.map((r) => r.text));
      expect(a[0].text.length).toBeGreaterThan(10);
    } finally {
      await copy.dispose();
      await none.dispose();
    }
  });

  it("scores prompts that share a long prefix the same whether the prefix is copied or re-evaluated", async () => {
    const stem =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day,";
    const reqs = [" she saw", " a dog", " it rained", " her mom"].map((end) => ({
      prompt: stem + end,
      candidates: [" a", " the", " and"],
    }));
    const copy = await openLlamaEngine({ modelPath: STORIES, threads: 1, gpu: "cpu", prefixShare: "copy" });
    const none = await openLlamaEngine({ modelPath: STORIES, threads: 1, gpu: "cpu", prefixShare: "none" });
    try {
      const a = await copy.nextTokenProbs(reqs);
      const b = await none.nextTokenProbs(reqs);
      for (let i = 0; i < reqs.length; i++) {
        for (let j = 0; j < 3; j++) expect(Math.abs(a[i].probs[j] - b[i].probs[j])).toBeLessThan(2e-3);
      }
      // Different endings do change the next-token distribution (the copy did not leak one prompt's state).
      expect(a[0].probs).not.toEqual(a[1].probs);
    } finally {
      await copy.dispose();
      await none.dispose();
    }
  });

  it("stops at a stop string and at max tokens, and says which", async () => {
    const [[stopped], [capped]] = await engine.generate([
      {
        prompt: "Once upon a time",
        n: 1,
        maxTokens: 200,
        sampling: SAMPLING_PRESETS.greedy,
        seed: 1,
        stop: ["."],
      },
      { prompt: "Once upon a time", n: 1, maxTokens: 5, sampling: SAMPLING_PRESETS.greedy, seed: 1 },
    ]);
    expect(stopped.finishReason).toBe("stop");
    expect(stopped.text).not.toContain(".");
    expect(capped.finishReason).toBe("max_tokens");
    expect(capped.tokens.length).toBe(5);
  });

  it("constrains output to a JSON schema and ends at the grammar's stop", async () => {
    const jsonSchema = {
      type: "object",
      properties: { verdict: { enum: ["yes", "no"] } },
      required: ["verdict"],
      additionalProperties: false,
    };
    const [rs] = await engine.generate([
      {
        prompt: "Once upon a time",
        n: 2,
        maxTokens: 100,
        sampling: SAMPLING_PRESETS.raw,
        seed: 3,
        jsonSchema,
      },
    ]);
    for (const r of rs) {
      expect(r.finishReason).toBe("stop");
      expect(["yes", "no"]).toContain(JSON.parse(r.text).verdict);
      expect(r.text).toBe(r.text.trim());
    }
  });

  it("scores next-token candidates from one forward pass", async () => {
    const [res] = await engine.nextTokenProbs([{ prompt: "Once upon a", candidates: [" time", " dog"] }]);
    expect(res.probs[0]).toBeGreaterThan(0.5);
    expect(res.probs[1]).toBeLessThan(0.05);
  });

  it("reuses one context across scoring and generation calls of the same width", async () => {
    const prompts = Array.from({ length: 6 }, (_, i) => `Story ${i}: once upon a`);
    await engine.nextTokenProbs(prompts.map((prompt) => ({ prompt, candidates: [" time"] })));
    // Sequences disposed by the call above come back to the context asynchronously.
    const [rs] = await engine.generate([
      { prompt: "Once", n: 6, maxTokens: 4, sampling: SAMPLING_PRESETS.raw, seed: 1 },
    ]);
    expect(rs).toHaveLength(6);
  });

  it("refuses a context the model cannot hold, naming the file", async () => {
    await expect(
      engine.generate([{ prompt: "Once", n: 1, maxTokens: 5000, sampling: SAMPLING_PRESETS.raw, seed: 1 }]),
    ).rejects.toThrow(/stories260K\.gguf: context too small.*2048/);
  });
});
