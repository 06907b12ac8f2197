import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CatPhaseTimes,
  type CatProgress,
  type CatSettings,
  type PromptResult,
  runCat,
} from "../src/cat/pipeline.js";
import type { VerifiableTask } from "../src/cat/task.js";
import { type LlamaEngine, openLlamaEngine } from "../src/engine/llama-engine.js";
import { SAMPLING_PRESETS } from "../src/engine/sampling-presets.js";
import { STORIES } from "./helpers/shared.js";

/** The first word of a story is its "answer": enough to run the whole pipeline on stories260K. */
const firstWord: VerifiableTask = {
  kind: "verifiable",
  name: "first-word",
  template: "freeform-v1",
  extract: (t) => /[A-Za-z]+/.exec(t)?.[0].toLowerCase() ?? null,
  matchMany: async (pairs) => pairs.map((p) => p.a != null && p.a === p.b),
  unfinishedChecks: () => ({ "too-long": 0, "time-limit": 0, timeout: 0 }),
  close: async () => {},
};

const settings = (G: number): CatSettings => ({
  G,
  maxTokens: 48,
  sampling: SAMPLING_PRESETS.raw,
  seed: 11,
  synthesis: {
    template: "freeform-v1",
    anchorSeesQuestion: false,
    stripThink: true,
    noThink: false,
    maxTokens: 16,
    sampling: SAMPLING_PRESETS.raw,
  },
  gSweep: [],
  estimators: ["single", "majority"],
  rubric: {
    rubricMaxTokens: 64,
    retries: 0,
    sampling: SAMPLING_PRESETS.raw,
    judgeMode: "logprob",
    threshold: 0.5,
  },
  judgeSeesConversation: false,
});

describe("runCat overlaps synthesis with rollouts (stories260K)", () => {
  let policy: LlamaEngine;
  let anchor: LlamaEngine;
  beforeAll(async () => {
    // Two groups of G = 4 per wave: the first wave's groups are done while the later waves generate.
    policy = await openLlamaEngine({ modelPath: STORIES, threads: 1, gpu: "cpu", maxSequences: 8 });
    anchor = await openLlamaEngine({ modelPath: STORIES, threads: 1, gpu: "cpu", shareModelWith: policy });
  });
  afterAll(async () => {
    await anchor?.dispose();
    await policy?.dispose();
  });

  it("synthesizes finished groups while others still generate and hands each result over when complete", async () => {
    const starts = [
      "Once upon a time",
      "Tom went to the park",
      "The sun was hot",
      "A dog ran",
      "Lily had a cat",
      "The boat",
    ];
    const rows = starts.map((prompt, i) => ({ id: `r${i}`, line: i + 1, prompt }));
    const events: { kind: string; at: number; rolloutsDone?: number }[] = [];
    const handed: PromptResult[] = [];
    const G = 4;
    const times: Partial<CatPhaseTimes> = {};
    const out = await runCat({ policy, anchor, judge: anchor }, firstWord, rows, settings(G), {
      times,
      onProgress: (p: CatProgress) =>
        events.push({ kind: p.stage, at: performance.now(), rolloutsDone: p.done }),
      onResult: (r) => {
        handed.push(r);
        events.push({ kind: "result", at: performance.now() });
      },
    });
    expect(out.map((r) => r.id)).toEqual(rows.map((r) => r.id));
    expect(handed.map((r) => r.id).sort()).toEqual(rows.map((r) => r.id).sort());
    const lastRollout = events.findLastIndex((e) => e.kind === "rollouts");
    const firstSynthesis = events.findIndex((e) => e.kind === "synthesis");
    const firstResult = events.findIndex((e) => e.kind === "result");
    // At least one reference was written, and one prompt's result handed over, before the last rollout.
    expect(firstSynthesis).toBeGreaterThanOrEqual(0);
    expect(firstSynthesis).toBeLessThan(lastRollout);
    expect(firstResult).toBeLessThan(lastRollout);
    expect(times.rollouts_s).toBeGreaterThan(0);
    expect(times.synthesis_s).toBeGreaterThan(0);
    expect(times.wall_s).toBeGreaterThanOrEqual(times.rollouts_s!);
    for (const r of out) {
      expect(r.rollouts).toHaveLength(G);
      expect(r.rollouts.map((x) => x.index)).toEqual([0, 1, 2, 3]);
      expect(r.reference.ok).toBe(true);
      expect(r.estimators.single?.answer).toBe(r.rollouts[0].answer);
      r.rollouts.forEach((x) => {
        expect(x.reward).toBe(x.answer != null && x.answer === r.reference.answer ? 1 : 0);
      });
    }
    // The rollouts are those of the same rows generated alone (seeds come from the row, not the batch).
    const alone = await runCat({ policy, anchor, judge: anchor }, firstWord, rows.slice(2, 3), settings(G));
    expect(alone[0].rollouts.map((x) => x.seed)).toEqual(out[2].rollouts.map((x) => x.seed));
  });
});
