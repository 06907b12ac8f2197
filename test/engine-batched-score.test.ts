import { describe, expect, it } from "vitest";
import { openLlamaEngine } from "../src/engine/llama-engine.js";
import { SHIPPED_STORIES } from "./helpers/shared.js";

// Scoring several sequences in one call once ran their controlledEvaluate calls concurrently, and
// node-llama-cpp 3.21.1 then returned one position's probabilities wrong now and then (off by up to 20
// nats, in about 15 of 200 calls on stories260K). 200 calls make a pass on that code all but impossible.
const CALLS = 200;
const TOLERANCE = 1e-3;

describe("teacher-forced scores of a batch", () => {
  it("equal each request scored alone, on every one of many calls", async () => {
    const continuation =
      " Lily. She liked to play with her ball in the sun. One day she saw a big red bird in the tree and she smiled.";
    const reqs = ["Once upon a time, there was a little girl named", "The dog ran to the park and"].map(
      (prompt) => ({ prompt, continuation, format: "raw" as const }),
    );
    // Flash attention off: stories260K's default path (its heads are 8 wide).
    const engine = await openLlamaEngine({
      modelPath: SHIPPED_STORIES,
      threads: 1,
      gpu: "cpu",
      flashAttention: false,
    });
    try {
      const alone: number[][] = [];
      for (const r of reqs) alone.push((await engine.score([r]))[0].logprobs);
      let worst = 0;
      for (let t = 0; t < CALLS; t++) {
        for (const [k, r] of (await engine.score(reqs)).entries()) {
          worst = Math.max(worst, ...r.logprobs.map((v, i) => Math.abs(v - alone[k][i])));
        }
      }
      expect(worst).toBeLessThan(TOLERANCE);
    } finally {
      await engine.dispose();
    }
  });
});
