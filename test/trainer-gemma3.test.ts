import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { writeRandomModel } from "../src/modelgen/index.js";
import { openTrainer, type StepOptions } from "../src/rl/trainer/index.js";
import { CLI, readJsonlFile } from "./helpers/shared.js";
import {
  GEMMA3_TEST_WINDOW,
  generatedModel,
  llama,
  llamaLogprobs,
  maxAbsDiff,
  noise,
  tmpDir,
} from "./trainer-helpers.js";

const ALL = ["q", "k", "v", "o", "gate", "up", "down"] as const;
const OPTS: StepOptions = { lr: 0, beta: 0.1, clipEps: 0.2, microBatch: 2, maxGradNorm: 0, weightDecay: 0 };
const RANK = 4;

// Longer than the sliding window (8), so the local layers' masks cut in and their gradients flow only
// through the window; mixed lengths so micro-batches pad.
const BASE = [
  { prompt: [1, 5, 9], completion: Array.from({ length: 17 }, (_, j) => 20 + ((j * 37) % 400)) },
  { prompt: [1, 7], completion: [300, 2, 71, 90, 11] },
  { prompt: [1, 40, 41, 42], completion: Array.from({ length: 12 }, (_, j) => 43 + j * 5) },
];

function stepSeqs(lp: Float32Array[]) {
  const adv = [1.3, -0.7, 0.4];
  return BASE.map((s, i) => {
    const off = noise(s.completion.length, 100 + i, 0.3);
    const offRef = noise(s.completion.length, 200 + i, 0.3);
    return {
      ...s,
      advantage: adv[i],
      oldLogprobs: lp[i].map((v, j) => v + off[j]),
      refLogprobs: lp[i].map((v, j) => v + offRef[j]),
    };
  });
}

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

describe(`gemma3 in the native trainer`, () => {
  it("GRPO loss gradients: layer by layer = whole graph, and central differences agree (F32, past the window)", async () => {
    expect(BASE[0].prompt.length + BASE[0].completion.length).toBeGreaterThan(2 * GEMMA3_TEST_WINDOW);
    // norm weights perturbed (post-attention, post-FFN and Q/K norms included) so their paths matter
    const file = await generatedModel(tmpDir("fd-gemma3"), {
      arch: "gemma3",
      type: "f32",
      seed: 12,
      noise: 0.5,
    });
    const open = (graph: "layers" | "whole") =>
      openTrainer({
        modelPath: file,
        threads: 1,
        seed: 3,
        graph,
        lora: { rank: RANK, alpha: 8, targets: [...ALL] },
      });
    const t = await open("layers");
    const whole = await open("whole");
    try {
      expect(t.info.arch).toBe("gemma3");
      const b = t.info.lora.map((x, i) => noise(x.nOut * RANK, 50 + i, 0.3));
      t.setState({ b });
      whole.setState({ b });
      const seqs = stepSeqs(await t.logprobs(BASE, { lora: true }));
      const g = await t.lossAndGradient(seqs, OPTS);
      const gW = await whole.lossAndGradient(seqs, OPTS);
      expect(Number.isFinite(g.loss)).toBe(true);
      expect(Math.abs(g.loss - gW.loss)).toBeLessThan(1e-6 * Math.max(1, Math.abs(gW.loss)));
      expect(relMaxDiff(g.grads.a, gW.grads.a)).toBeLessThan(1e-4);
      expect(relMaxDiff(g.grads.b, gW.grads.b)).toBeLessThan(1e-4);

      // central differences on the 12 largest-gradient coordinates of A and of B, plus layer 0's
      // largest (a local layer: its gradient crosses the global layer and both kinds of mask)
      const state = t.getState();
      const h = 1e-3;
      const checked: { analytic: number; numeric: number }[] = [];
      for (const k of ["a", "b"] as const) {
        const coords: { i: number; j: number; v: number }[] = [];
        g.grads[k].forEach((arr, i) => {
          for (let j = 0; j < arr.length; j++) coords.push({ i, j, v: Math.abs(arr[j]) });
        });
        coords.sort((x, y) => y.v - x.v);
        for (const c of [...coords.slice(0, 12), ...coords.filter((c) => c.i === 0).slice(0, 4)]) {
          const orig = state[k][c.i][c.j];
          const at = async (v: number) => {
            const arrs = state[k].map((a) => a.slice());
            arrs[c.i][c.j] = v;
            t.setState({ [k]: arrs });
            return (await t.lossAndGradient(seqs, OPTS)).loss;
          };
          const numeric = ((await at(orig + h)) - (await at(orig - h))) / (2 * h);
          checked.push({ analytic: g.grads[k][c.i][c.j], numeric });
        }
        t.setState({ [k]: state[k] });
      }
      // as in trainer-grad.test.ts: float32 rounding over 2h bounds the numeric noise to ~1e-4
      console.log("gemma3 finite differences", checked);
      for (const c of checked)
        expect(Math.abs(c.analytic - c.numeric)).toBeLessThan(0.01 * Math.abs(c.numeric) + 1e-4);
      expect(checked.some((c) => Math.abs(c.numeric) > 1e-3)).toBe(true);
    } finally {
      t.dispose();
      whole.dispose();
    }
  });

  it("catrl train runs CaT-RL steps on the gemma3-tiny preset, and node-llama-cpp loads the adapter it writes", async () => {
    const dir = tmpDir("train-gemma3");
    const model = await writeRandomModel({
      preset: "gemma3-tiny",
      type: "q8_0",
      seed: 21,
      out: path.join(dir, "gemma3-tiny.gguf"),
    });
    const data = path.join(dir, "prompts.jsonl");
    const prompts = [
      "Once upon a time, there was a little girl named Lily.",
      "Tom and his dog went to the park.",
    ];
    writeFileSync(data, prompts.map((p, i) => JSON.stringify({ id: `q${i}`, prompt: p })).join("\n"));
    // A random-weight model's first words almost never match the anchor's, so every group would have zero
    // reward variance and no step would train: this task's "answer" is the parity of the completion's
    // length, which matches about half the time.
    const task = path.join(dir, "parity-task.mjs");
    writeFileSync(
      task,
      "export const extract = (t) => String(t.length % 2);\nexport const match = (a, b) => a === b;\n",
    );
    const out = path.join(dir, "run");
    // rollouts of 24 tokens after a ~15-token prompt: past the preset's 16-token window
    await promisify(execFile)(
      "node",
      [CLI, "train", "--model", model.path, "--data", data, "--task", task]
        .concat(["--out", out, "--steps", "3", "--max-tokens", "24", "--g", "4", "--prompts-per-step", "2"])
        .concat(["--lora-rank", "4", "--lr", "1e-2", "--seed", "3", "--eval-every", "0"]),
      { env: { ...process.env, CATRL_THREADS: "1" } },
    );
    const steps = readJsonlFile(path.join(out, "steps.jsonl"));
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3]);
    const trained = steps.filter((s) => !s.skipped);
    expect(trained.length).toBeGreaterThan(0);
    for (const s of trained) expect(Number.isFinite(s.loss)).toBe(true);
    const state = JSON.parse(readFileSync(path.join(out, "state.json"), "utf8"));
    const adapter = path.join(out, state.adapter);
    // the adapter loads in llama.cpp and moves its log-probs (LoRA B starts at zero, so only training does)
    const m = await (await llama()).loadModel({ modelPath: model.path });
    try {
      const ids = [m.tokens.bos as number, ...(m.tokenize(prompts[0]) as number[])];
      const seqs = [{ prompt: ids.slice(0, 3), completion: ids.slice(3) }];
      const base = await llamaLogprobs(m, seqs);
      const tuned = await llamaLogprobs(m, seqs, adapter);
      expect(maxAbsDiff(base, tuned)).toBeGreaterThan(1e-4);
    } finally {
      await m.dispose();
    }
  }, 240_000);
});
