import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { PAPER_MAX_TOKENS } from "../src/cli/cat-options.js";
import { CLI, readJsonlFile, STORIES } from "./helpers/shared.js";

const run = promisify(execFile);
const env = { ...process.env, CATRL_THREADS: "1" };

describe("catrl infer without --max-tokens takes the paper's budgets (stories260K)", () => {
  it.each([
    ["math", PAPER_MAX_TOKENS.verifiable],
    ["freeform", PAPER_MAX_TOKENS.freeform],
  ] as const)("--task %s: %i new tokens", async (task, want) => {
    expect(want).toBe(task === "math" ? 1536 : 1024);
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-budget-"));
    const data = path.join(dir, "p.jsonl");
    writeFileSync(data, `${JSON.stringify({ prompt: "Once upon a time" })}\n`);
    const out = path.join(dir, "run");
    await run(
      "node",
      [CLI, "infer", "--model", STORIES, "--data", data, "--task", task, "-G", "1"].concat([
        "--estimators",
        "synthesis,single",
        "--out",
        out,
      ]),
      { env },
    );
    expect(JSON.parse(readFileSync(path.join(out, "run.json"), "utf8")).config.maxTokens).toBe(want);
    const [r] = readJsonlFile(path.join(out, "results.jsonl"));
    // stories260K never stops on its own, so the rollout runs to the budget.
    expect(r.rollouts[0].finish_reason).toBe("max_tokens");
    expect(r.rollouts[0].tokens).toHaveLength(want);
  });
});
