import { describe, expect, it } from "vitest";
import { trainingTemperature } from "../src/rl/train-config.js";
import { openTrainer } from "../src/rl/trainer/index.js";
import { groupMicroBatches } from "../src/rl/trainer/memory-plan.js";
import { lossInputs, packBatch, stepStats } from "../src/rl/trainer/pack.js";
import { kaimingUniformA, TrainerRng } from "../src/rl/trainer/rng.js";
import { STORIES } from "./trainer-helpers.js";

describe("training temperature and micro-batch grouping", () => {
  it("trains at the rollouts' sampling temperature; greedy rollouts fall back to the raw model", () => {
    expect(trainingTemperature(0.7)).toBe(0.7);
    expect(trainingTemperature(1)).toBe(1);
    expect(trainingTemperature(0)).toBe(1);
  });

  it("groups longest first within the room, splits what does not fit, leaves out what cannot fit alone", () => {
    // size grows with padded rows x sequences: 1 byte per row, no compute
    const size = (rowsPerSeq: number, nSeq: number) => ({ activations: rowsPerSeq * nSeq, compute: 0 });
    const seqs = [10, 40, 30, 200, 5].map((rows) => ({ rows, targets: 1 }));
    const g = groupMicroBatches(seqs, { cap: "auto", room: 100, size });
    expect(g.skipped.map((k) => k.index)).toEqual([3]);
    expect(g.skipped[0].needs).toBe(200);
    // 40 + 30 padded to 40: 80 fits; adding 10 would be 120
    expect(g.batches.map((b) => b.seqs)).toEqual([
      [1, 2],
      [0, 4],
    ]);
    expect(g.batches.map((b) => b.rows)).toEqual([80, 20]);
    // a number caps the sequences per micro-batch
    const one = groupMicroBatches(seqs, { cap: 1, room: 1000, size });
    expect(one.batches.map((b) => b.seqs)).toEqual([[3], [1], [2], [0], [4]]);
  });
});

describe("packing and loss inputs", () => {
  it("lays sequences out padded to the longest, targeting only completion tokens", () => {
    const b = packBatch([
      { prompt: [1, 5, 6], completion: [7, 8] },
      { prompt: [1], completion: [9, 10, 11] },
    ]);
    // fed: prompt + completion minus its last token, padded (with the first token) to Tm = 4
    expect(b.nSeq).toBe(2);
    expect(Array.from(b.tokens)).toEqual([1, 5, 6, 7, 1, 9, 10, 1]);
    expect(Array.from(b.pos)).toEqual([0, 1, 2, 3, 0, 1, 2, 3]);
    // row s*Tm + P-1+j predicts completion[j]
    expect(Array.from(b.outRows)).toEqual([2, 3, 4, 5, 6]);
    // the token each of those rows predicts
    expect(Array.from(b.targets)).toEqual([7, 8, 9, 10, 11]);
  });

  it("weights every sequence equally (mean over its tokens, then over the step's sequences)", () => {
    const li = lossInputs(
      [
        {
          completionLength: 2,
          advantage: 1.5,
          old: Float32Array.of(-1, -2),
          ref: Float32Array.of(-1.5, -2.5),
        },
        {
          completionLength: 4,
          advantage: -0.5,
          old: Float32Array.of(-1, -1, -1, -1),
          ref: Float32Array.of(0, 0, 0, 0),
        },
      ],
      { beta: 0.1, clipEps: 0.2, nSeqsInStep: 4 },
    );
    expect(Array.from(li.negAdvW)).toEqual(
      [-1.5 / 8, -1.5 / 8, 0.5 / 16, 0.5 / 16, 0.5 / 16, 0.5 / 16].map(Math.fround),
    );
    expect(Array.from(li.sgn)).toEqual([1, 1, -1, -1, -1, -1]);
    expect(Array.from(li.clipC)).toEqual([1.2, 1.2, 0.8, 0.8, 0.8, 0.8].map(Math.fround));
    expect(Array.from(li.betaW ?? [])).toEqual(
      [0.1 / 8, 0.1 / 8, 0.1 / 16, 0.1 / 16, 0.1 / 16, 0.1 / 16].map(Math.fround),
    );
    expect(Array.from(li.old)).toEqual([-1, -2, -1, -1, -1, -1]);
  });

  it("computes KL (k3) and the clip fraction as the loss does", () => {
    const s = stepStats(
      [
        // ratio exp(0.5) = 1.65 > 1.2 with A > 0: clipped; exp(-0.5) active
        {
          logp: Float32Array.of(-1, -2),
          old: Float32Array.of(-1.5, -1.5),
          ref: Float32Array.of(-1, -2),
          advantage: 1,
        },
      ],
      0.2,
    );
    expect(s.clipFraction).toBe(0.5);
    expect(s.kl).toBe(0);
    expect(s.tokens).toBe(2);
    const k = stepStats(
      [{ logp: Float32Array.of(-1), old: Float32Array.of(-1), ref: Float32Array.of(-2), advantage: 0 }],
      0.2,
    );
    expect(k.kl).toBeCloseTo(Math.exp(-1) + 1 - 1, 6);
  });
});

describe("LoRA initialisation", () => {
  it("A is kaiming-uniform with bound 1/sqrt(n_in) (PEFT), deterministic per seed", () => {
    const a = kaimingUniformA(new TrainerRng(3), 64, 8);
    const bound = 1 / 8;
    expect(a.length).toBe(512);
    expect(Math.max(...a)).toBeLessThanOrEqual(bound);
    expect(Math.min(...a)).toBeGreaterThanOrEqual(-bound);
    // uniform on [-b, b]: mean ~0, variance b^2/3
    const mean = a.reduce((x, y) => x + y, 0) / a.length;
    const v = a.reduce((x, y) => x + (y - mean) ** 2, 0) / a.length;
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(v).toBeGreaterThan(0.8 * (bound ** 2 / 3));
    expect(v).toBeLessThan(1.2 * (bound ** 2 / 3));
    expect(Array.from(kaimingUniformA(new TrainerRng(3), 64, 8))).toEqual(Array.from(a));
  });

  it("the RNG resumes from its saved state", () => {
    const r = new TrainerRng(42);
    for (let i = 0; i < 10; i++) r.nextU32();
    const copy = new TrainerRng(r.state());
    expect(Array.from({ length: 5 }, () => copy.nextU32())).toEqual(
      Array.from({ length: 5 }, () => r.nextU32()),
    );
  });

  it(`a new trainer has B = 0 and A within the bound`, async () => {
    const t = await openTrainer({
      modelPath: STORIES,
      threads: 1,
      seed: 1,
      lora: { rank: 4, alpha: 8, targets: ["q", "down"] },
    });
    try {
      const s = t.getState();
      expect(t.info.lora.map((x) => x.base)).toContain("blk.0.ffn_down.weight");
      s.b.forEach((b) => {
        expect(b.every((x) => x === 0)).toBe(true);
      });
      s.a.forEach((a, i) => {
        const bound = 1 / Math.sqrt(t.info.lora[i].nIn);
        expect(a.some((x) => x !== 0)).toBe(true);
        expect(a.every((x) => Math.abs(x) <= bound)).toBe(true);
      });
    } finally {
      t.dispose();
    }
  });
});
