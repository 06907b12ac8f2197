import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FLASH_ATTENTION_MIN_HEAD_DIM,
  openLlamaEngine,
  resolveFlashAttention,
} from "../src/engine/llama-engine.js";
import { SAMPLING_PRESETS } from "../src/engine/sampling-presets.js";
import { MODEL_PRESETS, writeRandomModel } from "../src/modelgen/index.js";
import { STORIES } from "./helpers/shared.js";

// Flash attention accumulates in F16 on the CPU backend, the plain path in F32 over the same F16 KV cache.
// Measured here (1 thread, 52 positions): stories260K max |diff| 5.6e-3 nats (mean 7.6e-4), a random Q8_0
// tiny model max 1.2e-3 (mean 3.6e-4). A wrong mask, position or sequence mix-up moves log-probs by 0.1 to
// several nats.
const FA_MAX_TOLERANCE = 2e-2;
const FA_MEAN_TOLERANCE = 3e-3;

/** Teacher-forced scores of the same continuations with flash attention forced on and forced off. */
async function scoresBothWays(modelPath: string, prompts: string[], continuation: string) {
  const on = await openLlamaEngine({ modelPath, threads: 1, gpu: "cpu", flashAttention: true });
  const off = await openLlamaEngine({
    modelPath,
    threads: 1,
    gpu: "cpu",
    flashAttention: false,
    shareModelWith: on,
  });
  try {
    const reqs = prompts.map((prompt) => ({ prompt, continuation, format: "raw" as const }));
    const a = await on.score(reqs);
    const b = await off.score(reqs);
    // Default ("auto") must resolve like llama.cpp's -fa auto: same numbers as forced on on this CPU.
    const auto = await openLlamaEngine({ modelPath, threads: 1, gpu: "cpu", shareModelWith: on });
    const c = await auto.score(reqs);
    await auto.dispose();
    return {
      on: a.flatMap((r) => r.logprobs),
      off: b.flatMap((r) => r.logprobs),
      auto: c.flatMap((r) => r.logprobs),
    };
  } finally {
    await off.dispose();
    await on.dispose();
  }
}

describe("resolveFlashAttention", () => {
  it("keeps an explicit choice and turns auto off only on tiny heads", () => {
    expect(resolveFlashAttention(true, 8)).toBe(true);
    expect(resolveFlashAttention(false, 128)).toBe(false);
    expect(resolveFlashAttention("auto", FLASH_ATTENTION_MIN_HEAD_DIM - 1)).toBe(false);
    expect(resolveFlashAttention("auto", FLASH_ATTENTION_MIN_HEAD_DIM)).toBe("auto");
    expect(resolveFlashAttention("auto", undefined)).toBe("auto");
  });
});

function expectClose(x: number[], y: number[]) {
  expect(x.length).toBe(y.length);
  expect(x.length).toBeGreaterThan(20);
  const d = x.map((v, i) => Math.abs(v - y[i]));
  expect(Math.max(...d)).toBeLessThan(FA_MAX_TOLERANCE);
  expect(d.reduce((s, v) => s + v, 0) / d.length).toBeLessThan(FA_MEAN_TOLERANCE);
  return d;
}

describe("flash attention (real llama.cpp)", () => {
  let dir: string;
  let randomQ8: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "catrl-fa-"));
    randomQ8 = path.join(dir, "tiny-q8_0.gguf");
    // The tiny preset widened to two heads of 64, so that `auto` turns flash attention on for it.
    const shape = {
      ...MODEL_PRESETS.tiny.shape,
      n_embd: 128,
      n_head: 2,
      n_head_kv: 2,
      head_dim: 64,
      n_ff: 256,
    };
    await writeRandomModel({ shape, type: "q8_0", seed: 3, tokenizerFrom: STORIES, out: randomQ8 });
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const prompts = ["Once upon a time, there was a little girl named", "The dog ran to the park and"];
  const continuation =
    " Lily. She liked to play with her ball in the sun. One day she saw a big red bird in the tree and she smiled.";

  for (const [name, file, autoIs] of [
    ["stories260K (head size 8: auto is off)", () => STORIES, "off"],
    ["a random Q8_0 model (head size 64: auto is on)", () => randomQ8, "on"],
  ] as const) {
    it(`teacher-forced scores of ${name} agree with and without flash attention`, async () => {
      const s = await scoresBothWays(file(), prompts, continuation);
      const d = expectClose(s.on, s.off);
      // Not the same numeric path twice: flash attention really ran (its F16 accumulation differs a little).
      expect(Math.max(...d)).toBeGreaterThan(0);
      // `auto` takes the path named: its scores match that path's, not the other's.
      const other = autoIs === "on" ? "off" : "on";
      const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
      expect(maxDiff(s.auto, s[autoIs])).toBeLessThan(1e-4);
      expect(maxDiff(s.auto, s[other])).toBeGreaterThan(1e-4);
    });
  }

  it("generates under flash attention (the default) with finite log-probs", async () => {
    const e = await openLlamaEngine({ modelPath: STORIES, threads: 1, gpu: "cpu" });
    try {
      const [rs] = await e.generate([
        { prompt: "Once upon a time", n: 4, maxTokens: 24, sampling: SAMPLING_PRESETS.raw, seed: 9 },
      ]);
      expect(rs).toHaveLength(4);
      for (const r of rs) expect(r.logprobs.every((lp) => lp <= 0 && Number.isFinite(lp))).toBe(true);
    } finally {
      await e.dispose();
    }
  });
});
