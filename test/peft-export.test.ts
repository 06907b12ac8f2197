import { execFile, execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { exportAdapterFiles, PEFT_FILES, peftDirFor, unpermuteRows } from "../src/rl/peft-export.js";
import { openTrainer, trainerAvailability } from "../src/rl/trainer/index.js";
import { REPO_ROOT } from "./helpers/shared.js";
import { generatedModel, hasStories, maxAbsDiff, noise, noStoriesReason, tmpDir } from "./trainer-helpers.js";

/**
 * PEFT-format adapters: the folder beside each llama.cpp adapter GGUF, loaded by transformers + peft on
 * the same random-weight base (transformers reads the GGUF itself), gives the trainer's log-probs.
 */

const run = promisify(execFile);
const SCRIPT = path.join(REPO_ROOT, "test/peft/peft_logprobs.py");
/**
 * Trainer (ggml, F32) vs PyTorch (F32) on a 2-layer width-64 model: float32 rounding in different
 * summation orders: 4.8e-7 nats measured (llama and qwen3); a missing RoPE un-permutation is off by > 0.01.
 */
const TOLERANCE = 1e-4;

/** Python with torch, transformers, peft and gguf: CATRL_PYTHON, else the project's venv outside the repo. */
function findPython(): { python: string } | { reason: string } {
  const python = process.env.CATRL_PYTHON ?? "/work/venv/bin/python";
  if (!existsSync(python))
    return {
      reason: `skipped: no ${python} (set CATRL_PYTHON to a Python with torch, transformers, peft, gguf)`,
    };
  try {
    execFileSync(python, ["-c", "import torch, transformers, peft, gguf"], { stdio: "ignore" });
    return { python };
  } catch {
    return { reason: `skipped: ${python} lacks one of torch, transformers, peft, gguf` };
  }
}
const py = findPython();
const skip = !hasStories || !trainerAvailability().ok || "reason" in py;
if (skip)
  console.warn(!hasStories ? noStoriesReason : "reason" in py ? py.reason : "skipped: trainer not built");

describe("PEFT export", () => {
  it("un-permutes llama.cpp's RoPE row order back to Hugging Face's (inverse of convert_hf_to_gguf permute)", () => {
    // One head of dim 4, rank 1: HF rows [r0 r1 r2 r3] are stored by llama.cpp as [r0 r2 r1 r3].
    const gguf = new Float32Array([0, 2, 1, 3]);
    expect([...unpermuteRows(gguf, 4, 1, 1)]).toEqual([0, 1, 2, 3]);
    // Two heads of dim 4, rank 2: each row's r values move together, heads stay in place.
    const two = new Float32Array([0, 0, 2, 2, 1, 1, 3, 3, 4, 4, 6, 6, 5, 5, 7, 7]);
    expect([...unpermuteRows(two, 8, 2, 2)]).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]);
  });

  describe.skipIf(skip)("round trip through transformers + peft (same random-weight base)", () => {
    for (const arch of ["llama", "qwen3"] as const) {
      it(`${arch}: the PEFT adapter gives the trainer's log-probs`, async () => {
        const dir = tmpDir(`catrl-peft-${arch}-`);
        const model = await generatedModel(dir, { arch, type: "f32", seed: 5 });
        const rank = 4;
        const t = await openTrainer({
          modelPath: model,
          threads: 1,
          lora: { rank, alpha: 8, targets: ["q", "k", "v", "o", "gate", "up", "down"] },
        });
        try {
          // A trained-looking adapter: B is zero at init, which would make any export look right.
          const s = t.getState();
          t.setState({
            a: s.a.map((x, i) => noise(x.length, 11 + i, 0.2)),
            b: s.b.map((x, i) => noise(x.length, 101 + i, 0.2)),
          });
          const file = path.join(dir, "step-000001.gguf");
          await exportAdapterFiles(t, file);
          const peft = peftDirFor(file);
          const config = JSON.parse(readFileSync(path.join(peft, PEFT_FILES.config), "utf8"));
          expect(config).toMatchObject({ peft_type: "LORA", r: rank, lora_alpha: 8 });
          expect(existsSync(file)).toBe(true);

          const seqs = [
            { prompt: [1, 5, 9, 33], completion: [40, 2, 77, 300, 12] },
            { prompt: [1, 100], completion: [7, 8, 9, 10, 11, 12, 13] },
          ];
          const seqFile = path.join(dir, "seqs.json");
          writeFileSync(seqFile, JSON.stringify(seqs));
          const { stdout } = await run((py as { python: string }).python, [SCRIPT, model, peft, seqFile], {
            env: { ...process.env, OMP_NUM_THREADS: "1", TRANSFORMERS_VERBOSITY: "error" },
            maxBuffer: 1 << 24,
          });
          const torch = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}");
          const base = await t.logprobs(seqs, { lora: false });
          const lora = await t.logprobs(seqs, { lora: true });
          const baseDiff = maxAbsDiff(base, torch.base);
          const loraDiff = maxAbsDiff(lora, torch.lora);
          const shift = maxAbsDiff(lora, base);
          console.log(
            `${arch}: base ${baseDiff.toExponential(2)}, lora ${loraDiff.toExponential(2)}, adapter shift ${shift.toFixed(3)}`,
          );
          expect(baseDiff).toBeLessThan(TOLERANCE);
          // The adapter changes the log-probs noticeably, and PEFT reproduces the change.
          expect(shift).toBeGreaterThan(0.05);
          expect(loraDiff).toBeLessThan(TOLERANCE);
        } finally {
          t.dispose();
        }
      });
    }
  });
});
