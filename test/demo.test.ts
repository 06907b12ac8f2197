import { execFile } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { DEMO_MODEL_FILE } from "../src/cli/demo-model.js";
import { CLI, REPO_ROOT, readJsonlFile } from "./helpers/shared.js";

const run = promisify(execFile);

/**
 * What a fresh clone shows: the demo runs on the model committed in models/ (no ../shared needed) and
 * ends with the report and the numbers that show CaT-RL learning. About 40 s on one loaded core.
 */
describe("catrl demo on the shipped model", () => {
  it("ships its default model in the repository", () => {
    expect(existsSync(path.join(REPO_ROOT, DEMO_MODEL_FILE))).toBe(true);
  });

  it("shows rollouts, a synthesized reference, rewards with variance, a rising reward and the report", async () => {
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), "catrl-demo-")), "demo");
    const { stderr } = await run("node", [CLI, "demo", "--out", out, "--steps", "8", "--threads", "1"], {
      env: { ...process.env, CATRL_THREADS: "1" },
    });
    expect(stderr).toContain("(the real tiny model shipped in models/)");
    expect(stderr).toMatch(/-> reference \S+; rewards/);
    const steps = readJsonlFile(path.join(out, "train", "steps.jsonl"));
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // Rewards with variance: at least one step trained instead of being skipped.
    expect(steps.some((s) => !s.skipped && s.reward_std > 0)).toBe(true);
    const first = steps[0].reward_mean;
    const last = steps[7].reward_mean;
    expect(last - first, steps.map((s) => s.reward_mean.toFixed(2)).join(" ")).toBeGreaterThan(0.3);
    const report = path.join(out, "train", "report.html");
    expect(existsSync(report)).toBe(true);
    // The closing summary: where the report is and the three numbers.
    expect(stderr).toContain(`report: ${report}`);
    expect(stderr).toContain(`mean reward: step 1 ${first.toFixed(2)} -> step 8 ${last.toFixed(2)}`);
    const evals = readJsonlFile(path.join(out, "train", "evals.jsonl"));
    const before = evals[0].policy_single_accuracy.toFixed(2);
    const after = evals[evals.length - 1].policy_single_accuracy.toFixed(2);
    expect(stderr).toMatch(new RegExp(`policy single-sample .*: ${before} at step 0 -> ${after} at step 8`));
  }, 300_000);
});
