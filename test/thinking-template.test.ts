import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CAT_JUDGE } from "../src/cat/rubric/grader.js";
import { buildHealthBenchGraderPrompt, HEALTHBENCH_GRADER } from "../src/cat/rubric/healthbench-grader.js";
import { judgeItems } from "../src/cat/rubric-rewards.js";
import { type LlamaEngine, openLlamaEngine } from "../src/engine/llama-engine.js";
import { makeQwen3TemplateModel } from "./helpers/qwen3-template-model.js";
import { CLI, readJsonlFile } from "./helpers/shared.js";

const run = promisify(execFile);
const env = { ...process.env, CATRL_THREADS: "1" };
const CLOSED = "<|im_start|>assistant\n<think>\n\n</think>\n\n";

describe("a chat template with thinking (Qwen 3's, on a random-weight model)", () => {
  let model: string;
  let engine: LlamaEngine;
  beforeAll(async () => {
    model = await makeQwen3TemplateModel();
    engine = await openLlamaEngine({ modelPath: model, threads: 1, gpu: "cpu" });
  }, 120_000);
  afterAll(async () => {
    await engine?.dispose();
  });

  it("judge prompts close the thinking block, so P(yes) is read where the verdict starts", async () => {
    const prompt = CAT_JUDGE.prompt({ criterion: "Mentions CPR.", response: "Start CPR." });
    // Without it the next token would be the model opening <think>.
    expect(engine.renderPrompt(prompt).endsWith("<|im_start|>assistant\n")).toBe(true);
    expect(engine.renderPrompt(prompt, "auto", CAT_JUDGE.verdictSlot).endsWith(CLOSED)).toBe(true);
    const hb = buildHealthBenchGraderPrompt({
      criterion: "Mentions CPR.",
      points: 5,
      response: "Start CPR.",
      conversation: [{ role: "user", content: "Help" }],
    });
    expect(
      engine
        .renderPrompt(hb, "auto", HEALTHBENCH_GRADER.verdictSlot)
        .endsWith(`${CLOSED}\`\`\`json\n{\n  "criteria_met":`),
    ).toBe(true);
    // The tokens the judge evaluates are those of the closed form (special tokens, not text).
    const think = engine.tokenizePrompt("x", "auto", { closeThinking: true });
    const plain = engine.tokenizePrompt("x");
    expect(think.slice(0, plain.length)).toEqual(plain);
    expect(think.length - plain.length).toBeLessThanOrEqual(8);
    const [j] = await judgeItems(
      engine,
      [{ criteria: ["Mentions CPR.", "Is short."], responses: ["Start CPR."], responseTokens: [3] }],
      {
        rubricMaxTokens: 1,
        retries: 0,
        sampling: { temperature: 0, topK: 0, topP: 1, minP: 0 },
        judgeMode: "logprob",
        threshold: 0.5,
      },
      1,
    );
    for (const v of j.verdicts[0]) expect(v.pYes).toBeGreaterThan(0);
  });

  it("catrl infer --no-think: rollouts start after the closed thinking block, and the trainer's prompt tokens hold it", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-nothink-"));
    const data = path.join(dir, "p.jsonl");
    writeFileSync(data, `${JSON.stringify({ question: "What is 2 + 3?", answer: "5" })}\n`);
    const args = (out: string, extra: string[]) =>
      [CLI, "infer", "--model", model, "--data", data, "-G", "2", "--max-tokens", "4"].concat(
        ["--synthesis-max-tokens", "4", "--estimators", "synthesis,single", "--out", out],
        extra,
      );
    await run("node", args(path.join(dir, "nothink"), ["--no-think"]), { env });
    const [noThink] = readJsonlFile(path.join(dir, "nothink/results.jsonl"));
    const turns = [{ role: "user" as const, content: "What is 2 + 3?" }];
    expect(noThink.prompt_tokens).toEqual(engine.tokenizePrompt(turns, "auto", { closeThinking: true }));
    expect(noThink.prompt_tokens.length).toBeGreaterThan(engine.tokenizePrompt(turns).length);
    const manifest = JSON.parse(readFileSync(path.join(dir, "nothink/run.json"), "utf8"));
    expect(manifest.config.synthesis.noThink).toBe(true);
  });
});
