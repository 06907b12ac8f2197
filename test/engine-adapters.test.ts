import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { openLlamaEngine } from "../src/engine/llama-engine.js";
import { SAMPLING_PRESETS } from "../src/engine/sampling-presets.js";
import { openTrainer, trainerAvailability } from "../src/rl/trainer/index.js";
import { STORIES } from "./helpers/shared.js";

describe("LlamaEngine with a new LoRA adapter per training step", () => {
  it("loads each new adapter and frees the one it replaces", async () => {
    expect(trainerAvailability().ok).toBe(true);
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-adapters-"));
    const trainer = await openTrainer({
      modelPath: STORIES,
      threads: 1,
      seed: 1,
      lora: { rank: 4, alpha: 8, targets: ["q", "v"] },
    });
    const files: string[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const f = path.join(dir, `a${i}.gguf`);
        await trainer.exportAdapter(f);
        files.push(f);
      }
    } finally {
      trainer.dispose();
    }
    const engine = await openLlamaEngine({ modelPath: STORIES, threads: 1, gpu: "cpu" });
    try {
      for (const f of files) {
        await engine.setAdapters([{ path: f }]);
        const [[r]] = await engine.generate([
          { prompt: "Once upon a time", n: 1, maxTokens: 4, sampling: SAMPLING_PRESETS.greedy, seed: 1 },
        ]);
        expect(r.tokens).toHaveLength(4);
        // Only the adapter in use stays loaded on the model.
        expect(engine.loadedAdapters).toBe(1);
      }
      await engine.setAdapters([]);
      expect(engine.loadedAdapters).toBe(0);
    } finally {
      await engine.dispose();
    }
  });
});
