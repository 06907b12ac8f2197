import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canLoadAdapters } from "../src/engine/capabilities.js";
import { type LlamaEngine, openLlamaEngine } from "../src/engine/llama-engine.js";
import { openPoolEngine, type PoolEngine } from "../src/engine/pool-engine.js";
import type { Rollout } from "../src/engine/types.js";
import { openTrainer } from "../src/rl/trainer/index.js";
import { CLI, REPO_ROOT, readJsonlFile, STORIES } from "./helpers/shared.js";
import { noise } from "./trainer-helpers.js";

/**
 * A pool of 2 CPU worker processes against one engine on stories260K: the same seeds give the same
 * rollouts (tokens and log-probs), judge probabilities and scores, with prompt groups spread across
 * the workers; adapters load in every worker; `catrl infer --workers 2` writes what a single engine does.
 */

const run = promisify(execFile);
const RAW = { temperature: 1, topK: 0, topP: 1, minP: 0 };
const PROMPTS = [
  "Once upon a time",
  "Tom went to the park.",
  "The sun was hot.",
  "A dog ran.",
  "Lily had a cat.",
];

describe("PoolEngine: 2 CPU workers vs one engine (stories260K)", () => {
  let pool: PoolEngine;
  let single: LlamaEngine;
  beforeAll(async () => {
    pool = await openPoolEngine({
      modelPath: STORIES,
      devices: [{ gpu: "cpu" }, { gpu: "cpu" }],
      threads: 1,
    });
    single = await openLlamaEngine({ modelPath: STORIES, threads: 1, gpu: "cpu" });
  });
  afterAll(async () => {
    await pool?.dispose();
    await single?.dispose();
  });

  const requests = () =>
    PROMPTS.map((prompt, i) => ({
      prompt,
      format: "raw" as const,
      n: 4,
      maxTokens: 24,
      seed: 50 + 4 * i,
      sampling: RAW,
    }));
  const strip = (rs: Rollout[][]) =>
    rs.map((g) =>
      g.map((r) => ({
        i: r.requestIndex,
        k: r.rolloutIndex,
        seed: r.seed,
        tokens: r.tokens,
        lp: r.logprobs,
      })),
    );

  it("generates what the single engine generates for the same seeds, groups spread over both workers", async () => {
    const seen: Rollout[] = [];
    const fromPool = await pool.generate(requests(), { onRollout: (r) => seen.push(r) });
    const fromOne = await single.generate(requests());
    expect(pool.size).toBe(2);
    expect(strip(fromPool)).toEqual(strip(fromOne));
    expect(seen).toHaveLength(PROMPTS.length * 4);
    expect(new Set(seen.map((r) => `${r.requestIndex}/${r.rolloutIndex}`)).size).toBe(PROMPTS.length * 4);
    // One group of 16 splits across both workers and keeps its seeds.
    const [one] = await single.generate([{ ...requests()[0], n: 16 }]);
    const [split] = await pool.generate([{ ...requests()[0], n: 16 }]);
    expect(strip([split])).toEqual(strip([one]));
    expect(pool.tokenizePrompt(PROMPTS[1], "raw")).toEqual(single.tokenizePrompt(PROMPTS[1], "raw"));
    expect(pool.info.path).toBe(STORIES);
  });

  it("scores and judges as the single engine does", async () => {
    const judge = PROMPTS.map((prompt) => ({
      prompt,
      format: "raw" as const,
      candidates: [" a", " the", " He"],
    }));
    expect(await pool.nextTokenProbs(judge)).toEqual(await single.nextTokenProbs(judge));
    const score = PROMPTS.map((prompt) => ({
      prompt,
      format: "raw" as const,
      continuation: " there was a dog",
    }));
    expect(await pool.score(score)).toEqual(await single.score(score));
  });

  it("loads LoRA adapters in every worker (a pool can be CaT-RL's policy)", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-pool-lora-"));
    const t = await openTrainer({
      modelPath: STORIES,
      threads: 1,
      lora: { rank: 2, alpha: 4, targets: ["q", "v"] },
    });
    const file = path.join(dir, "a.gguf");
    try {
      const s = t.getState();
      t.setState({ b: s.b.map((x, i) => noise(x.length, 7 + i, 0.5)) });
      await t.exportAdapter(file);
    } finally {
      t.dispose();
    }
    expect(canLoadAdapters(pool)).toBe(true);
    const before = await pool.generate(requests());
    await pool.setAdapters([{ path: file }]);
    await single.setAdapters([{ path: file }]);
    try {
      const withLora = await pool.generate(requests());
      expect(strip(withLora)).toEqual(strip(await single.generate(requests())));
      expect(strip(withLora)).not.toEqual(strip(before));
    } finally {
      await pool.setAdapters([]);
      await single.setAdapters([]);
    }
  });

  it("catrl infer --workers 2 writes the rollouts and references of a single-engine run", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-pool-infer-"));
    const data = path.join(dir, "d.jsonl");
    writeFileSync(data, `${PROMPTS.map((p, i) => JSON.stringify({ id: `p${i}`, prompt: p })).join("\n")}\n`);
    const env = { ...process.env, CATRL_THREADS: "1" };
    const task = path.join(REPO_ROOT, "examples/first-word-task.mjs");
    // biome-ignore format: flag pairs
    const args = (out: string, extra: string[]) => [CLI, "infer", "--model", STORIES, "--data", data, "--task", task,
      "-G", "4", "--max-tokens", "12", "--batch-prompts", "5", "--out", out, ...extra];
    await run("node", args(path.join(dir, "one"), []), { env });
    await run("node", args(path.join(dir, "pool"), ["--workers", "2"]), { env });
    const key = (f: string) =>
      readJsonlFile(f)
        .map((r) => ({
          id: r.id,
          rollouts: r.rollouts.map((x: { tokens: number[] }) => x.tokens),
          ref: r.reference,
        }))
        // Prompts are written in the order they complete, which batching makes run-dependent.
        .sort((a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id));
    expect(key(path.join(dir, "pool", "results.jsonl"))).toEqual(key(path.join(dir, "one", "results.jsonl")));
  });
});
