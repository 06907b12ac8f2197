import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it, vi } from "vitest";
import { trainerAvailability } from "../src/rl/trainer/index.js";
import { CLI, REPO_ROOT, readJsonlFile, STORIES } from "./helpers/shared.js";
import { chromium, haveChromium, inCI } from "./report-helpers.js";

const run = promisify(execFile);

const TASK = path.join(REPO_ROOT, "examples/first-word-task.mjs");
const env = { ...process.env, CATRL_THREADS: "1" };
// 10 steps (kill after 4, evaluations at 0, 5, 10): the reward rises within 4-8 steps on this task, and
// the case stays well inside its budget on a loaded machine (14 steps took 112 s of a 120 s timeout).
const STEPS = 10;
const EVAL_EVERY = 5;
// An explicit budget for this file's cases, far above their time on a loaded 2-core machine.
vi.setConfig({ testTimeout: 300_000 });

const readJsonl = readJsonlFile;

/**
 * CaT-RL end to end on the real stories260K: a custom verifiable task (the answer is the completion's
 * first word), the frozen anchor's greedy synthesis as the reference, GRPO on a LoRA adapter that
 * node-llama-cpp reloads every step. The process is SIGKILLed mid-run and resumed with --resume alone.
 */
describe("catrl train on stories260K (real llama.cpp + native trainer)", () => {
  it("the trainer addon is built (CI builds it in npm ci)", () => {
    const a = trainerAvailability();
    expect(a.ok, a.ok ? "" : a.reason).toBe(true);
  });

  it("raises the mean reward, survives a SIGKILL with --resume, and renders its report", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-train-"));
    const data = path.join(dir, "prompts.jsonl");
    const prompts = [
      "Once upon a time, there was a little girl named Lily.",
      "Tom and his dog went to the park.",
      "The sun was shining and the birds were singing.",
      "One day, a little boy found a big red ball.",
      "Sara had a new doll.",
      "The cat sat on the mat.",
    ];
    writeFileSync(data, prompts.map((p, i) => JSON.stringify({ id: `q${i}`, prompt: p })).join("\n"));
    const out = path.join(dir, "run");
    // Part of the settings from a config file (same keys as the flags), part from flags.
    const config = path.join(dir, "train.json");
    writeFileSync(
      config,
      JSON.stringify({ loraRank: 8, lr: 3e-3, promptsPerStep: 4, g: 8, anchorPreset: "greedy" }),
    );
    const args = [
      CLI,
      "train",
      "--model",
      STORIES,
      "--data",
      data,
      "--task",
      TASK,
      "--out",
      out,
      "--config",
      config,
    ].concat([
      "--steps",
      String(STEPS),
      "--max-tokens",
      "8",
      "--eval-every",
      String(EVAL_EVERY),
      "--seed",
      "3",
    ]);

    const child = spawn("node", args, { env });
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((res) => child.on("close", res));
    const stepsFile = path.join(out, "steps.jsonl");
    await new Promise<void>((res, rej) => {
      const t = setInterval(() => {
        if (existsSync(stepsFile) && readJsonl(stepsFile).length >= 4) {
          clearInterval(t);
          res();
        }
      }, 25);
      child.on("close", () => {
        clearInterval(t);
        rej(new Error(`train exited before step 4:\n${stderr}`));
      });
    });
    child.kill("SIGKILL");
    await exited;
    const beforeKill = readJsonl(stepsFile).length;
    expect(beforeKill).toBeGreaterThanOrEqual(4);
    expect(beforeKill).toBeLessThan(STEPS);

    const resumed = await run("node", [CLI, "train", "--resume", out], { env });
    expect(resumed.stderr).toMatch(/resuming .* after step \d+/);

    const steps = readJsonl(stepsFile);
    // Every step exactly once, in order: nothing lost or repeated by the kill.
    expect(steps.map((s) => s.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    const first = (steps[0].reward_mean + steps[1].reward_mean) / 2;
    const last = steps.slice(-3).reduce((a, s) => a + s.reward_mean, 0) / 3;
    expect(last - first, `rewards: ${steps.map((s) => s.reward_mean.toFixed(2)).join(" ")}`).toBeGreaterThan(
      0.3,
    );
    for (const s of steps) {
      expect(s.time.total_s).toBeGreaterThan(0);
      expect(s.zero_variance_share).toBeGreaterThanOrEqual(0);
      if (!s.skipped) expect(Number.isFinite(s.kl)).toBe(true);
    }
    const state = JSON.parse(readFileSync(path.join(out, "state.json"), "utf8"));
    expect(state.steps_done).toBe(STEPS);
    expect(existsSync(path.join(out, state.adapter))).toBe(true);
    const evals = readJsonl(path.join(out, "evals.jsonl"));
    expect(evals.map((e) => e.step)).toEqual([0, EVAL_EVERY, STEPS]);
    const manifest = JSON.parse(readFileSync(path.join(out, "run.json"), "utf8"));
    expect(manifest.kind).toBe("catrl-train");
    expect(manifest.config.resolved.lora.rank).toBe(8);
    expect(manifest.config.resolved.step.lr).toBe(3e-3);
    // the trainer's log-probs use the temperature the rollouts were sampled at (recorded)
    expect(manifest.config.resolved.step.temperature).toBeGreaterThan(0);
    expect(manifest.config.resolved.step.temperature).toBe(manifest.config.resolved.sampling.temperature);
    expect(manifest.config.resolved.trainer.memoryBudgetBytes).toBeGreaterThan(0);
    // every trained step counts the sequences the memory plan left out (none here)
    expect(steps.filter((s) => s.loss != null).every((s) => s.sequences_skipped === 0)).toBe(true);
    expect(manifest.models[0].sha256).toMatch(/^[0-9a-f]{64}$/);

    const rep = await run("node", [CLI, "report", out], { env });
    const html = path.join(out, "report.html");
    expect(rep.stdout.trim()).toBe(html);
    if (inCI) expect(haveChromium).toBe(true);
    if (haveChromium) {
      const dom = await chromium(["--dump-dom", pathToFileURL(html).href]);
      expect(dom).toContain('data-rendered="ok"');
      const charts = dom.match(/<svg class="chart"[^>]*data-drawn="(\d+)"/g) ?? [];
      expect(charts.length).toBeGreaterThanOrEqual(6);
    }
  });

  it("refuses to resume a directory that is not a training run", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-foreign-"));
    writeFileSync(path.join(dir, "run.json"), JSON.stringify({ kind: "catrl-infer", config: {} }));
    const r = await run("node", [CLI, "train", "--resume", dir], { env }).catch((e) => e);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/holds a `catrl infer` run, not a catrl training run/);
    const empty = mkdtempSync(path.join(os.tmpdir(), "catrl-empty-"));
    const r2 = await run("node", [CLI, "train", "--resume", empty], { env }).catch((e) => e);
    expect(r2.stderr).toMatch(/not a catrl training run \(no run\.json\)/);
  });
});
