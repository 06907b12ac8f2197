import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LlamaEngine, openLlamaEngine } from "../src/engine/llama-engine.js";
import { SAMPLING_PRESETS } from "../src/engine/sampling-presets.js";
import { writeRandomModel } from "../src/modelgen/index.js";

/** stories260K's end-of-sequence token; the tiny preset copies its tokenizer. */
const EOS = 2;
const PROMPT = "Once upon a time";

/**
 * stories260K itself never stops (it writes BOS between stories), so the stop decision is checked on a
 * random-weight model with its tokenizer: about 1 token in 512 is EOS, so most of 16 rollouts of up to
 * 300 tokens end there.
 */
describe("the end-of-generation token is part of the rollout", () => {
  let engine: LlamaEngine;
  beforeAll(async () => {
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), "catrl-eog-")), "tiny.gguf");
    await writeRandomModel({ preset: "tiny", type: "f32", seed: 1, out });
    engine = await openLlamaEngine({ modelPath: out, threads: 1, gpu: "cpu" });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it("recorded with its log-prob when the rollout ended at it, left out of the text", async () => {
    const [rs] = await engine.generate([
      { prompt: PROMPT, n: 16, maxTokens: 300, sampling: SAMPLING_PRESETS.raw, seed: 11 },
    ]);
    const ended = rs.filter((r) => r.finishReason === "eog");
    expect(ended.length).toBeGreaterThan(2);
    for (const r of rs) {
      expect(r.tokens.length).toBe(r.logprobs.length);
      if (r.finishReason === "eog") expect(r.tokens.at(-1)).toBe(EOS);
      expect(r.tokens.slice(0, r.finishReason === "eog" ? -1 : undefined)).not.toContain(EOS);
    }
    // The stop decision's log-prob is the model's own (raw sampling), as for every other token.
    const scored = await engine.score(ended.map((r) => ({ prompt: PROMPT, continuation: r.tokens })));
    ended.forEach((r, i) => {
      expect(scored[i].tokens).toEqual(r.tokens);
      expect(Math.abs((scored[i].logprobs.at(-1) as number) - (r.logprobs.at(-1) as number))).toBeLessThan(
        2e-2,
      );
    });
    // The text is the tokens before it: sampling the same seed past EOG (where the EOG token is text,
    // as fixed-length benchmarks want) gives the same text up to that point, and more after.
    const [past] = await engine.generate([
      { prompt: PROMPT, n: 16, maxTokens: 300, sampling: SAMPLING_PRESETS.raw, seed: 11, ignoreEog: true },
    ]);
    rs.forEach((r, k) => {
      if (r.finishReason !== "eog") return;
      expect(past[k].tokens.slice(0, r.tokens.length)).toEqual(r.tokens);
      const rest = engine.countTokens(past[k].text.slice(r.text.length));
      expect(past[k].text.startsWith(r.text)).toBe(true);
      expect(rest).toBeGreaterThan(0);
    });
  });
});
