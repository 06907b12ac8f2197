import { execFile } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, REPO_ROOT, readJsonlFile, SHIPPED_STORIES } from "./helpers/shared.js";

const exec = promisify(execFile);
// Each case is seconds; the budget is for a machine loaded many times over (CI must not flake).
const BUDGET_MS = 300_000;
const TASK = path.join(REPO_ROOT, "examples/first-word-task.mjs");

async function catrl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec("node", [CLI, ...args], {
      env: { ...process.env, CATRL_THREADS: "1" },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const lastLine = (s: string) => s.trim().split("\n").at(-1) ?? "";

/** The error contract: non-zero exit, one line naming the file, no stack, no raw JSON text spilling over. */
function expectOneLineError(r: { code: number; stderr: string }, file: string, problem: RegExp) {
  expect(r.code, r.stderr).not.toBe(0);
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toContain(file);
  expect(lines[0]).toMatch(problem);
}

// A prompt of ~3,500 tokens: stories260K's context is 2,048.
const LONG = "Once upon a time ".repeat(700);
const toJsonl = (prompts: string[]) =>
  `${prompts.map((p, i) => JSON.stringify({ id: `q${i}`, prompt: p })).join("\n")}\n`;
const PROMPTS = ["Tom went to the park.", "The sun was hot.", LONG, "A dog ran.", "Sara had a doll."];

const trainArgs = (data: string, out: string, extra: string[] = []) => [
  "train",
  "--model",
  SHIPPED_STORIES,
  "--data",
  data,
  "--task",
  TASK,
  "--out",
  out,
  "--steps",
  "1",
  "--prompts-per-step",
  "5",
  "-G",
  "2",
  "--max-tokens",
  "4",
  "--lora-rank",
  "4",
  "--eval-every",
  "0",
  "--anchor-preset",
  "greedy",
  ...extra,
];

/**
 * Bad input and faults around `catrl train`, on the model shipped in models/ (1-step runs of 5 prompts x
 * G=2, a few seconds each).
 */
describe("catrl train: inputs checked before step 1, files it leaves, errors it gives", {
  timeout: BUDGET_MS,
}, () => {
  let dir: string;
  let data: string;
  let done: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "catrl-train-inputs-"));
    data = path.join(dir, "prompts.jsonl");
    writeFileSync(data, toJsonl(PROMPTS.filter((p) => p !== LONG)));
    done = path.join(dir, "done");
    const r = await catrl(trainArgs(data, done));
    expect(r.code, r.stderr).toBe(0);
  }, BUDGET_MS);

  it("reports a prompt too long for the context before step 1, never draws it, and again on resume", async () => {
    const withLong = path.join(dir, "with-long.jsonl");
    writeFileSync(withLong, toJsonl(PROMPTS));
    const first = path.join(dir, "long");
    // One step of 5 prompts draws every row's place: it finishes only because row 3 is left out.
    const r0 = await catrl(trainArgs(withLong, first));
    expect(r0.code, r0.stderr).toBe(0);
    expect(r0.stderr).toContain(`${withLong}:3: prompt: too long for the model`);
    const steps = readJsonlFile(path.join(first, "steps.jsonl"));
    expect(steps.map((s) => s.step)).toEqual([1]);
    const bad = readJsonlFile(path.join(first, "bad-rows.jsonl"));
    expect(bad).toEqual([
      expect.objectContaining({
        file: withLong,
        line: 3,
        field: "prompt",
        message: expect.stringMatching(/context of 2048/),
      }),
    ]);
    // Resume with one more step: the row is checked again, reported once, and the step runs.
    const resumed = first;
    const runFile = path.join(resumed, "run.json");
    const manifest = JSON.parse(readFileSync(runFile, "utf8"));
    manifest.config.options.steps = 2;
    writeFileSync(runFile, JSON.stringify(manifest));
    const r = await catrl(["train", "--resume", resumed]);
    expect(r.code, r.stderr).toBe(0);
    const reports = r.stderr.split("\n").filter((l) => l.includes("too long for the model"));
    expect(reports).toHaveLength(1);
    expect(reports[0]).toContain(`${withLong}:3: prompt: too long for the model`);
    expect(readJsonlFile(path.join(resumed, "steps.jsonl")).map((s) => s.step)).toEqual([1, 2]);
  });

  it("checks the model before creating the run directory", async () => {
    const out = path.join(dir, "never-created");
    const missing = path.join(dir, "missing.gguf");
    const r = await catrl(trainArgs(data, out, ["--model", missing]));
    expectOneLineError(r, missing, /no such file/);
    expect(existsSync(out)).toBe(false);
  });

  it("a corrupt or empty state.json is one line naming it", async () => {
    for (const [name, text] of [
      ["empty", ""],
      ["torn", '{"kind": "catrl-train-state",\n "steps_done": 1,\n "adap'],
      ["wrong", '{"kind": "something else"}'],
    ]) {
      const run = path.join(dir, `state-${name}`);
      cpSync(done, run, { recursive: true });
      const state = path.join(run, "state.json");
      writeFileSync(state, text);
      expectOneLineError(
        await catrl(["train", "--resume", run]),
        state,
        /empty|not valid JSON|not a catrl training state/,
      );
    }
  });

  it("a corrupt run.json is one line naming it, its JSON text's newlines escaped", async () => {
    const run = path.join(dir, "run-corrupt");
    cpSync(done, run, { recursive: true });
    const runFile = path.join(run, "run.json");
    writeFileSync(runFile, '{"kind": "catrl-train",\n  "created": oops\n}\n');
    expectOneLineError(await catrl(["train", "--resume", run]), runFile, /not valid JSON/);
  });

  it("removes what a kill leaves behind on the next start, keeping the checkpoint state.json names", async () => {
    const run = path.join(dir, "leftovers");
    cpSync(done, run, { recursive: true });
    const state = JSON.parse(readFileSync(path.join(run, "state.json"), "utf8"));
    const left = [
      "state.json.tmp-99999",
      "steps.jsonl.tmp-123",
      "adapters/step-000002.gguf.tmp-4242",
      `${state.checkpoint}/state.bin.tmp`,
      // The previous step's checkpoint: a kill right after the state.json rename left it.
      "checkpoints/step-000000/state.bin",
    ];
    for (const f of left) {
      mkdirSync(path.dirname(path.join(run, f)), { recursive: true });
      writeFileSync(path.join(run, f), "x");
    }
    const r = await catrl(["train", "--resume", run]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/removed what an interrupted run left/);
    for (const f of left) expect(existsSync(path.join(run, f)), f).toBe(false);
    expect(existsSync(path.join(run, "checkpoints/step-000000"))).toBe(false);
    expect(existsSync(path.join(run, state.checkpoint, "checkpoint.json"))).toBe(true);
    expect(existsSync(path.join(run, state.adapter))).toBe(true);
  });

  it("a full disk is one line naming the file", async () => {
    // steps.jsonl is a link to /dev/full: the first step's record hits ENOSPC.
    const out = path.join(dir, "full");
    mkdirSync(out);
    symlinkSync("/dev/full", path.join(out, "steps.jsonl"));
    const r = await catrl(trainArgs(data, out));
    expect(r.code).not.toBe(0);
    expect(lastLine(r.stderr)).toBe(
      `catrl: ${path.join(out, "steps.jsonl")}: cannot write (ENOSPC: no space left on device)`,
    );
    // The same for the trainer checkpoint: its state file is the link.
    const out2 = path.join(dir, "full-checkpoint");
    mkdirSync(path.join(out2, "checkpoints", "step-000001"), { recursive: true });
    symlinkSync("/dev/full", path.join(out2, "checkpoints", "step-000001", "state.bin.tmp"));
    const r2 = await catrl(trainArgs(data, out2));
    expect(r2.code).not.toBe(0);
    expect(lastLine(r2.stderr)).toBe(
      `catrl: ${path.join(out2, "checkpoints", "step-000001")}: cannot write (ENOSPC: no space left on device)`,
    );
  });

  it("resuming something that is not a training run says what it is", async () => {
    const run = path.join(dir, "an-infer-run");
    mkdirSync(run);
    writeFileSync(path.join(run, "run.json"), JSON.stringify({ kind: "catrl-infer", config: {} }));
    expectOneLineError(
      await catrl(["train", "--resume", run]),
      run,
      /holds a `catrl infer` run, not a catrl training run/,
    );
  });
});
