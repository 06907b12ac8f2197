import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { openTrainer, type StepOptions, type TrainerState } from "../src/rl/trainer/index.js";
import { UserError } from "../src/util/errors.js";
import { generatedModel, STORIES, tmpDir } from "./trainer-helpers.js";

const LORA = { rank: 4, alpha: 8, targets: ["q", "v", "down"] as ("q" | "v" | "down")[] };
const OPTS: StepOptions = {
  lr: 1e-2,
  beta: 0.05,
  clipEps: 0.2,
  microBatch: 2,
  maxGradNorm: 0.5,
  weightDecay: 0.01,
};

function batch(k: number) {
  // deterministic small batches that differ per step
  return Array.from({ length: 3 }, (_, i) => ({
    prompt: [1, 10 + k, 20 + i],
    completion: Array.from({ length: 4 + i }, (_, j) => (37 * (k + 1) + 11 * i + 5 * j) % 500),
    advantage: [1, -0.5, -0.5][i],
  }));
}

function same(a: TrainerState, b: TrainerState): boolean {
  for (const k of ["a", "b", "mA", "mB", "vA", "vB"] as const)
    for (let i = 0; i < a[k].length; i++)
      if (Buffer.compare(Buffer.from(a[k][i].buffer), Buffer.from(b[k][i].buffer)) !== 0) return false;
  return true;
}

describe(`checkpoints and skipped steps`, () => {
  it("resuming from a checkpoint gives the same next step as not stopping", async () => {
    const dir = path.join(tmpDir("ckpt"), "ck");
    const t = await openTrainer({ modelPath: STORIES, threads: 1, seed: 9, lora: LORA });
    let cont: Awaited<ReturnType<typeof t.step>>;
    let contState: TrainerState;
    try {
      for (let k = 0; k < 3; k++) expect((await t.step(batch(k), OPTS)).skipped).toBe(false);
      await t.saveCheckpoint(dir);
      cont = await t.step(batch(3), OPTS);
      contState = t.getState();
    } finally {
      t.dispose();
    }
    const r = await openTrainer({ modelPath: STORIES, threads: 1, seed: 9, lora: LORA, resumeFrom: dir });
    try {
      expect(r.stepCount).toBe(3);
      const resumed = await r.step(batch(3), OPTS);
      expect(resumed.step).toBe(4);
      expect(resumed.loss).toBe(cont.loss);
      expect(resumed.gradNorm).toBe(cont.gradNorm);
      expect(resumed.kl).toBe(cont.kl);
      expect(same(r.getState(), contState)).toBe(true);
      // and the update really moved something (the comparison is not between two no-ops)
      expect(cont.gradNorm).toBeGreaterThan(0);
    } finally {
      r.dispose();
    }
    await expect(
      openTrainer({ modelPath: STORIES, threads: 1, seed: 9, lora: { ...LORA, rank: 8 }, resumeFrom: dir }),
    ).rejects.toThrow(/checkpoint LoRA \(rank 4/);
    const other = await generatedModel(tmpDir("ckpt-other"), { arch: "llama", type: "f32", seed: 3 });
    await expect(openTrainer({ modelPath: other, threads: 1, lora: LORA, resumeFrom: dir })).rejects.toThrow(
      /checkpoint was made for a different model/,
    );
  });

  it("a step with a non-finite loss is skipped, reported, and changes nothing", async () => {
    const t = await openTrainer({ modelPath: STORIES, threads: 1, seed: 2, lora: LORA });
    try {
      await t.step(batch(0), OPTS);
      const before = t.getState();
      // old log-probs of -1e30 make the ratio overflow to +inf on a negative-advantage sequence
      const bad = batch(1).map((s) => ({
        ...s,
        oldLogprobs: new Float32Array(s.completion.length).fill(-1e30),
      }));
      const res = await t.step(bad, OPTS);
      expect(res.skipped).toBe(true);
      expect(res.reason).toMatch(/not finite/);
      expect(res.step).toBe(1);
      expect(same(t.getState(), before)).toBe(true);
      // the next good step applies normally
      const ok = await t.step(batch(2), OPTS);
      expect(ok.skipped).toBe(false);
      expect(ok.step).toBe(2);
    } finally {
      t.dispose();
    }
  });

  it("refuses an unsupported architecture, naming the supported ones", async () => {
    const buf = readFileSync(STORIES);
    const key = Buffer.from("general.architecture");
    const at = buf.indexOf(key);
    // value: u32 type (8 = string), u64 length (5), "llama" -> "gemma"
    const v = at + key.length + 4 + 8;
    expect(buf.subarray(v, v + 5).toString()).toBe("llama");
    buf.write("gemma", v);
    const file = path.join(tmpDir("arch"), "gemma.gguf");
    writeFileSync(file, buf);
    const err = await openTrainer({ modelPath: file, threads: 1, lora: LORA }).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(
      /unsupported architecture 'gemma' \(the trainer supports: llama, qwen2, qwen3, gemma3\)/,
    );
  });
});

describe(`CUDA backend selection`, () => {
  it("backend cuda either opens (a CUDA machine) or fails with a clear one-line reason", async () => {
    const r = await openTrainer({ modelPath: STORIES, backend: "cuda", threads: 1, lora: LORA }).then(
      (t) => {
        // a machine with a CUDA GPU and CUDA 13 runtime: the trainer runs on the CUDA backend
        expect(t.info.backend).toMatch(/CUDA/i);
        t.dispose();
        return null;
      },
      (e: unknown) => e,
    );
    if (r === null) return;
    expect(r).toBeInstanceOf(UserError);
    const msg = (r as Error).message;
    expect(msg).not.toContain("\n");
    expect(msg).toMatch(/CUDA backend unavailable/);
  });
});

describe(`background compute`, () => {
  it("a step runs off the event loop (timers keep firing while it computes)", async () => {
    const t = await openTrainer({ modelPath: STORIES, threads: 1, seed: 4, lora: LORA });
    try {
      // a batch big enough that the update takes tens of milliseconds on stories260K
      const big = Array.from({ length: 8 }, (_, i) => ({
        prompt: [1, 20 + i],
        completion: Array.from({ length: 60 }, (_, j) => (13 * i + 7 * j + 3) % 500),
        advantage: i % 2 ? 1 : -1,
      }));
      let ticks = 0;
      const iv = setInterval(() => {
        ticks++;
      }, 1);
      const t0 = performance.now();
      const res = await t.step(big, { ...OPTS, microBatch: 8 });
      const ms = performance.now() - t0;
      clearInterval(iv);
      expect(res.skipped).toBe(false);
      expect(ms).toBeGreaterThan(20);
      // with the compute on the event loop no timer could fire before the step resolved
      expect(ticks).toBeGreaterThan(ms / 20);
    } finally {
      t.dispose();
    }
  });
});
