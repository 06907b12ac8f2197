import path from "node:path";
import type { LlamaModel, Token } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { openTrainer, type StepOptions } from "../src/rl/trainer/index.js";
import { llama, STORIES, tmpDir } from "./trainer-helpers.js";

const G = 8;
const MAX_NEW = 12;

/** G rollouts of the current policy, sampled by node-llama-cpp with the adapter loaded (if any). */
async function rollouts(model: LlamaModel, prompt: number[], adapter: string | undefined, seed: number) {
  const context = await model.createContext({
    contextSize: prompt.length + MAX_NEW + 4,
    sequences: G,
    threads: 1,
    ...(adapter ? { lora: { adapters: [{ filePath: adapter, scale: 1 }] } } : {}),
  });
  try {
    return await Promise.all(
      Array.from({ length: G }, async (_, k) => {
        const seq = context.getSequence();
        const out: number[] = [];
        // plain temperature-1 sampling, every filter off: on-policy for the trainer's softmax
        for await (const tok of seq.evaluate(prompt as Token[], {
          temperature: 1,
          topK: 0,
          topP: 1,
          minP: 0,
          seed: seed * 100 + k,
        })) {
          if (model.isEogToken(tok)) break;
          out.push(tok);
          if (out.length >= MAX_NEW) break;
        }
        return out;
      }),
    );
  } finally {
    await context.dispose();
  }
}

describe(`GRPO training smoke test`, () => {
  it("raises a toy reward on stories260K with the adapter reloaded by node-llama-cpp each step", async () => {
    const l = await llama();
    const model = await l.loadModel({ modelPath: STORIES });
    const dir = tmpDir("train");
    const t = await openTrainer({
      modelPath: STORIES,
      threads: 1,
      seed: 5,
      lora: { rank: 8, alpha: 16, targets: ["q", "k", "v", "o", "gate", "up", "down"] },
    });
    try {
      const prompt = [model.tokens.bos as number, ...(model.tokenize("Once upon a time") as number[])];
      // reward: fraction of completion tokens that are "." (verifiable, starts near 0.05-0.1)
      const target = (model.tokenize(".") as number[]).at(-1)!;
      const reward = (c: number[]) => (c.length ? c.filter((x) => x === target).length / c.length : 0);
      const opts: StepOptions = {
        lr: 2e-2,
        beta: 0.01,
        clipEps: 0.2,
        microBatch: 4,
        maxGradNorm: 1,
        weightDecay: 0,
      };
      const means: number[] = [];
      let adapter: string | undefined;
      for (let step = 0; step < 30; step++) {
        const comps = await rollouts(model, prompt, adapter, step + 1);
        const r = comps.map(reward);
        const mean = r.reduce((a, b) => a + b, 0) / G;
        const std = Math.sqrt(r.reduce((a, b) => a + (b - mean) ** 2, 0) / G);
        means.push(mean);
        if (std > 0) {
          const res = await t.step(
            comps.map((c, i) => ({ prompt, completion: c, advantage: (r[i] - mean) / (std + 1e-6) })),
            opts,
          );
          expect(res.skipped).toBe(false);
          expect(Number.isFinite(res.loss)).toBe(true);
          adapter = await t.exportVersion(dir);
        }
      }
      const first = means.slice(0, 5).reduce((a, b) => a + b, 0) / 5;
      const last = means.slice(-5).reduce((a, b) => a + b, 0) / 5;
      console.log("mean reward per step", means.map((m) => m.toFixed(2)).join(" "));
      expect(last).toBeGreaterThan(first + 0.3);
      expect(path.basename(adapter ?? "")).toMatch(/^adapter-step\d{6}\.gguf$/);
    } finally {
      t.dispose();
      await model.dispose();
    }
  });
});
