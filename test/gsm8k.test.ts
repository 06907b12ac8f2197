import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { openTask } from "../src/cat/task.js";
import { CLI, REPO_ROOT, readJsonlFile, STORIES } from "./helpers/shared.js";

const run = promisify(execFile);
const env = { ...process.env, CATRL_THREADS: "1" };
/** Three rows in GSM8K's format: `question`, and `answer` = a worked solution ending in `#### N`. */
const GSM8K = path.join(REPO_ROOT, "test/fixtures/gsm8k-format.jsonl");

/** A finished `catrl infer` run whose estimators answered as given (no model needed to score it). */
function fakeRun(answers: (string | null)[]): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-gsm8k-"));
  const lines = answers.map((a, i) =>
    JSON.stringify({
      id: String(i + 1),
      line: i + 1,
      prompt_tokens: [],
      rollouts: [],
      reference: { ok: true, answer: a },
      rewards: [],
      estimators: { synthesis: { index: null, answer: a }, single: { index: 0, answer: "7" } },
      timings: { rollouts_s: 0, synthesis_s: 0, judging_s: 0 },
    }),
  );
  writeFileSync(path.join(dir, "results.jsonl"), `${lines.join("\n")}\n`);
  return dir;
}

describe("GSM8K gold answers go through extraction", () => {
  it("catrl eval scores right answers as right against worked-solution golds", async () => {
    const dir = fakeRun(["18", "3", "1000"]);
    await run("node", [CLI, "eval", dir, "--gold", GSM8K, "--match", "exact"], { env });
    const ev = JSON.parse(readFileSync(path.join(dir, "eval.json"), "utf8"));
    expect(ev.n).toBe(3);
    expect(ev.accuracy.synthesis).toBe(1);
    expect(ev.accuracy.single).toBe(0);
  });

  it("--task gsm8k reads the endings GSM8K-style models write", async () => {
    const task = await openTask({ task: "gsm8k", threads: 1 });
    if (task.kind !== "verifiable") throw new Error("gsm8k must be verifiable");
    expect(task.name).toBe("gsm8k");
    expect(task.extract("9 * 2 = 18\n#### 18")).toBe("18");
    expect(task.extract("The answer is 18 dollars.")).toBe("18");
    expect(
      await task.matchMany([
        { a: "1,000", b: "1000" },
        { a: "$18", b: "18" },
        { a: "17", b: "18" },
      ]),
    ).toEqual([true, true, false]);
    await task.close();
  });
});

describe("catrl infer --task gsm8k end to end (stories260K)", () => {
  it("records the extracted gold and the task, and eval scores the run", async () => {
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), "catrl-gsm8k-run-")), "run");
    mkdirSync(path.dirname(out), { recursive: true });
    await run(
      "node",
      [
        CLI,
        "infer",
        "--model",
        STORIES,
        "--data",
        GSM8K,
        "--task",
        "gsm8k",
        "-G",
        "2",
        "--max-tokens",
        "8",
      ].concat(["--estimators", "synthesis,single,majority", "--out", out]),
      { env },
    );
    const results = readJsonlFile(path.join(out, "results.jsonl"));
    expect(results.map((r) => r.gold)).toEqual(["18", "3", "1,000"]);
    const manifest = JSON.parse(readFileSync(path.join(out, "run.json"), "utf8"));
    expect(manifest.config.task).toBe("gsm8k");
    const { stdout } = await run("node", [CLI, "eval", out, "--gold", GSM8K], { env });
    expect(stdout).toMatch(/3 prompts scored/);
  });
});
