import { describe, expect, it } from "vitest";
import { openTrainer, type StepOptions } from "../src/rl/trainer/index.js";
import { noise, STORIES } from "./trainer-helpers.js";

const ALL = ["q", "k", "v", "o", "gate", "up", "down"] as const;
const OPTS: StepOptions = { lr: 0, beta: 0.1, clipEps: 0.2, microBatch: 2, maxGradNorm: 0, weightDecay: 0 };
const RANK = 4;

// Real weights (stories260K), mixed lengths so micro-batches pad, mixed-sign advantages, old/ref
// offset from the current log-probs so ratios differ from 1 and some tokens clip.
const BASE = [
  { prompt: [1, 403, 407, 261], completion: [378, 425, 263, 365, 278, 260, 287] },
  { prompt: [1, 66], completion: [300, 2, 71, 90] },
  { prompt: [1, 40, 41, 42, 43, 44], completion: [43, 44, 45, 46, 47, 48, 49, 50, 51] },
];

function stepSeqs(lp: Float32Array[]) {
  const adv = [1.1, -0.6, 0.5];
  return BASE.map((s, i) => {
    const off = noise(s.completion.length, 300 + i, 0.3);
    const offRef = noise(s.completion.length, 400 + i, 0.3);
    return {
      ...s,
      advantage: adv[i],
      oldLogprobs: lp[i].map((v, j) => v + off[j]),
      refLogprobs: lp[i].map((v, j) => v + offRef[j]),
    };
  });
}

const open = (o: {
  graph: "layers" | "whole";
  headChunk?: number;
  trainMemory?: number;
  gradMode?: "transpose" | "outprod";
}) =>
  openTrainer({
    modelPath: STORIES,
    threads: 1,
    seed: 5,
    lora: { rank: RANK, alpha: 8, targets: [...ALL] },
    ...o,
  });

function relMaxDiff(a: Float32Array[], b: Float32Array[]): number {
  let d = 0;
  let m = 0;
  a.forEach((x, i) => {
    for (let j = 0; j < x.length; j++) {
      d = Math.max(d, Math.abs(x[j] - b[i][j]));
      m = Math.max(m, Math.abs(x[j]));
    }
  });
  return d / m;
}

describe(`layer-by-layer trainer`, () => {
  it("gives the whole-graph loss, log-probs and LoRA gradients on stories260K (head in chunks of 3 positions)", async () => {
    const layers = await open({ graph: "layers", headChunk: 3 });
    const whole = await open({ graph: "whole" });
    try {
      const b = layers.info.lora.map((x, i) => noise(x.nOut * RANK, 70 + i, 0.2));
      layers.setState({ b });
      whole.setState({ b });
      const lpL = await layers.logprobs(BASE, { lora: true });
      const lpW = await whole.logprobs(BASE, { lora: true });
      lpL.forEach((x, i) => {
        for (let j = 0; j < x.length; j++) expect(x[j]).toBeCloseTo(lpW[i][j], 5);
      });
      for (const temperature of [1, 0.7]) {
        const seqs = stepSeqs(await whole.logprobs(BASE, { lora: true, temperature }));
        const gL = await layers.lossAndGradient(seqs, { ...OPTS, temperature });
        const gW = await whole.lossAndGradient(seqs, { ...OPTS, temperature });
        expect(Number.isFinite(gW.loss)).toBe(true);
        expect(Math.abs(gL.loss - gW.loss)).toBeLessThan(1e-6 * Math.max(1, Math.abs(gW.loss)));
        const da = relMaxDiff(gL.grads.a, gW.grads.a);
        const db = relMaxDiff(gL.grads.b, gW.grads.b);
        console.log(`layers vs whole (temperature ${temperature}): rel. max |diff| A ${da}, B ${db}`);
        // same arithmetic, different graphs (summation order of the residual gradient): float32 noise
        expect(da).toBeLessThan(1e-4);
        expect(db).toBeLessThan(1e-4);
        // layer 0's gradients cross every layer above: they must not be zero
        expect(gL.grads.a[0].some((v) => v !== 0)).toBe(true);
      }
      // the whole graph refuses lengths where ggml's allocator would abort; layers take them
      const long = { prompt: [1], completion: Array.from({ length: 600 }, (_, j) => 3 + (j % 500)) };
      await expect(whole.logprobs([long], { lora: false })).rejects.toThrow(/graph "whole" takes .* 601/);
      expect((await layers.logprobs([long], { lora: false }))[0]).toHaveLength(600);
    } finally {
      layers.dispose();
      whole.dispose();
    }
  });

  it("log-probs are of softmax(logits / temperature), in logprobs() and in the step's loss", async () => {
    const t = await open({ graph: "layers" });
    try {
      const V = t.info.nVocab;
      // every token of the vocabulary after one prompt: the raw log-softmax at that position
      const prompt = [1, 403, 407];
      const all = Array.from({ length: V }, (_, v) => ({ prompt, completion: [v] }));
      const raw = (await t.logprobs(all, { lora: false })).map((x) => x[0]);
      const tau = 0.7;
      // log softmax(z / tau) from log softmax(z): shift-invariant, so logp / tau works as z / tau
      const scaled = raw.map((x) => x / tau);
      const mx = Math.max(...scaled);
      const lse = mx + Math.log(scaled.reduce((a, x) => a + Math.exp(x - mx), 0));
      const picks = [0, 5, 100, 260, 378, V - 1];
      const got = await t.logprobs(
        picks.map((v) => ({ prompt, completion: [v] })),
        { lora: false, temperature: tau },
      );
      picks.forEach((v, i) => {
        expect(got[i][0]).toBeCloseTo(scaled[v] - lse, 4);
      });
      expect(Math.abs(got[1][0] - raw[5])).toBeGreaterThan(1e-2);
      // the step's own log-probs (ratio and KL) use the same temperature
      const lp = await t.logprobs(BASE, { lora: true, temperature: tau });
      const g = await t.lossAndGradient(stepSeqs(lp), { ...OPTS, temperature: tau });
      g.logprobs.forEach((x, i) => {
        for (let j = 0; j < x.length; j++) expect(x[j]).toBeCloseTo(lp[i][j], 5);
      });
    } finally {
      t.dispose();
    }
  });

  it("a sequence over the memory budget is left out with one line naming its length and the budget; the step goes on", async () => {
    const probe = await open({ graph: "layers", gradMode: "outprod" });
    const long = {
      prompt: [1, ...Array.from({ length: 200 }, (_, j) => 3 + (j % 400))],
      completion: Array.from({ length: 300 }, (_, j) => 5 + (j % 300)),
    };
    let budget: number;
    try {
      const short = probe.memoryPlan(BASE).trainerBytes;
      const big = probe.memoryPlan([long]).trainerBytes;
      expect(big).toBeGreaterThan(short);
      budget = (short + big) / 2;
    } finally {
      probe.dispose();
    }
    const t = await open({ graph: "layers", gradMode: "outprod", trainMemory: budget });
    try {
      const seqs = [...BASE, long].map((s, i) => ({ ...s, advantage: i % 2 ? -1 : 1 }));
      const r = await t.step(seqs, { ...OPTS, lr: 1e-3 });
      expect(r.skipped).toBe(false);
      expect(r.skippedSequences).toHaveLength(1);
      const k = r.skippedSequences[0];
      expect(k.index).toBe(3);
      expect(k.tokens).toBe(501);
      expect(k.message).not.toContain("\n");
      expect(k.message).toMatch(/^sequence 3 \(501 tokens\) needs [\d.]+ GiB .* budget of [\d.]+ GiB/);
      // the other three trained: their tokens only
      expect(r.tokens).toBe(BASE.reduce((a, s) => a + s.completion.length, 0));
      expect(r.plan.microBatches.flatMap((m) => m.seqs).sort()).toEqual([0, 1, 2]);
      expect(r.plan.trainerBytes).toBeLessThanOrEqual(budget);
      // alone, it is a step with nothing to train, not an abort
      const only = await t.step([seqs[3]], OPTS);
      expect(only.skipped).toBe(true);
      expect(only.skippedSequences).toHaveLength(1);
      expect(only.reason).toMatch(/memory budget/);
      // scoring it (no backward pass) needs less and still fits
      expect(t.memoryPlan([long], { withGrad: false }).skipped).toEqual([]);
    } finally {
      t.dispose();
    }
  });

  it("falls back from the transposed weight copy to out_prod, with a note, when the copy does not fit", async () => {
    const probe = await open({ graph: "layers", gradMode: "outprod" });
    let budget: number;
    try {
      const ref = { prompt: [1], completion: Array.from({ length: 511 }, () => 0) };
      // room for the weights, the LoRA state and a 512-token sequence, not for W^T beside them
      budget =
        probe.memoryPlan([ref], { microBatch: 1, withKl: true }).trainerBytes +
        probe.memory().transposedNeeded / 2;
    } finally {
      probe.dispose();
    }
    const tight = await open({ graph: "layers", trainMemory: budget });
    const roomy = await open({ graph: "layers" });
    try {
      expect(tight.gradMode).toBe("outprod");
      expect(tight.notes.join("\n")).toMatch(/transposed weight copy .* does not fit .* out_prod/);
      expect(tight.memory().transposed).toBe(0);
      expect(roomy.gradMode).toBe("transpose");
      expect(roomy.notes).toEqual([]);
      expect(roomy.memory().transposed).toBe(roomy.memory().transposedNeeded);
    } finally {
      tight.dispose();
      roomy.dispose();
    }
  });
});
