import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasLlamaServer, LlamaServer, llamaServerBinary } from "../bench/llama-cpp/llama-server.js";
import { openLlamaEngine } from "../src/engine/llama-engine.js";
import { openRemoteEngine, type RemoteEngine } from "../src/engine/remote-engine.js";
import { peftDirFor } from "../src/rl/peft-export.js";
import { CLI, hasStories, REPO_ROOT, readJsonlFile, STORIES } from "./helpers/shared.js";

/**
 * The remote engine against a real llama-server (built from the llama.cpp source node-llama-cpp bundles,
 * `bench/llama-cpp/build-batched-bench.sh llama-server`; .ci/run builds it before npm test) serving
 * stories260K on loopback: its answers agree with the local engine on the same file, `catrl infer` runs
 * with the anchor and judge on the server and the policy local, and a server killed mid-run loses nothing
 * that was finished.
 */

const run = promisify(execFile);
const inCI = process.env.CI === "true";
const ready = hasStories && hasLlamaServer();
const skipReason = !hasStories
  ? `skipped: ${STORIES} is absent`
  : `skipped: ${llamaServerBinary()} is not built (run bench/llama-cpp/build-batched-bench.sh llama-server, ~10 min on 2 cores; CI builds it)`;
if (!ready) console.warn(skipReason);

const TASK = path.join(REPO_ROOT, "examples/first-word-task.mjs");
const RAW = { temperature: 1, topK: 0, topP: 1, minP: 0 };
/**
 * Remote vs local log-probs of the same tokens. Both use F16 KV caches and the same CPU kernels, but
 * llama-server turns flash attention on by default (`-fa auto`) and batches differently: up to 1.5e-3
 * nats apart measured here.
 */
const LOGPROB_TOLERANCE = 5e-3;
// llama-server serves stories260K (no chat template of its own) with its ChatML fallback, so the served
// anchor has a chat template, yet a story model never writes the unified-response heading: without this
// flag every group would rightly have no reference, and these tests are about the transport.
const ACCEPT_INCOMPLETE = ["--accept-incomplete-references"];
const env = { ...process.env, CATRL_THREADS: "1", CATRL_REMOTE_RETRIES: "1" };

describe.runIf(inCI && hasStories)("llama-server in CI", () => {
  it("is built by .ci/run before the tests", () => {
    expect(hasLlamaServer(), `${llamaServerBinary()} missing: .ci/run must build it`).toBe(true);
  });
});

function writePrompts(dir: string, n: number): string {
  const starts = [
    "Tom went to the park.",
    "The sun was hot.",
    "A dog ran.",
    "Once upon a time, there was a girl.",
  ];
  const f = path.join(dir, "data.jsonl");
  const rows = Array.from({ length: n }, (_, i) =>
    JSON.stringify({ id: `p${i}`, prompt: starts[i % starts.length] }),
  );
  writeFileSync(f, `${rows.join("\n")}\n`);
  return f;
}

describe.skipIf(!ready)("RemoteEngine on a real llama-server (stories260K)", () => {
  let server: LlamaServer;
  let remote: RemoteEngine;

  beforeAll(async () => {
    // Two slots of 2,048 tokens (stories260K's training context).
    server = await LlamaServer.start({ model: STORIES, parallel: 2, contextSize: 4096 });
    remote = await openRemoteEngine({ url: server.url, apiKey: undefined, retries: 1 });
  });
  afterAll(async () => {
    await remote?.dispose();
    await server?.kill();
  });

  it("tokenizes, samples and judges as the local engine does on the same file", async () => {
    expect(remote.info.remote?.server).toBe("llama-server");
    expect(remote.info.remote?.modelId).toContain("stories260K");
    expect(remote.info.trainContextSize).toBe(2048);
    const local = await openLlamaEngine({ modelPath: STORIES, threads: 1, gpu: "cpu" });
    try {
      const prompt = "Once upon a time";
      expect(remote.tokenizePrompt(prompt, "raw")).toEqual(local.tokenizePrompt(prompt, "raw"));
      expect(remote.countTokens("a big dog")).toBe(local.countTokens("a big dog"));

      const [rollouts] = await remote.generate([
        { prompt, format: "raw", n: 4, maxTokens: 12, seed: 7, sampling: RAW },
      ]);
      expect(rollouts.map((r) => r.seed)).toEqual([7, 8, 9, 10]);
      expect(new Set(rollouts.map((r) => r.text)).size).toBeGreaterThan(1);
      // The same seed on the server samples the same rollout again.
      const [again] = await remote.generate([
        { prompt, format: "raw", n: 1, maxTokens: 12, seed: 7, sampling: RAW },
      ]);
      expect(again[0].tokens).toEqual(rollouts[0].tokens);
      // Each rollout's log-probs are the model's own (raw sampling): the local engine's teacher-forced ones.
      const scored = await local.score(
        rollouts.map((r) => ({ prompt, format: "raw" as const, continuation: r.tokens })),
      );
      rollouts.forEach((r, i) => {
        expect(r.tokens).toHaveLength(12);
        expect(r.finishReason).toBe("max_tokens");
        for (const [j, lp] of r.logprobs.entries())
          expect(Math.abs(lp - scored[i].logprobs[j])).toBeLessThan(LOGPROB_TOLERANCE);
      });

      // Judge probabilities: a candidate in the server's top alternatives gets the local engine's probability.
      const candidates = [" a", " time", " upon", "yes"];
      const req = [{ prompt: "Once", format: "raw" as const, candidates }];
      const [r] = await remote.nextTokenProbs(req);
      const [l] = await local.nextTokenProbs(req);
      expect(r.probs[2]).toBeGreaterThan(0.5);
      r.probs.forEach((p, j) => {
        if (p > 0) expect(Math.abs(p - l.probs[j])).toBeLessThan(LOGPROB_TOLERANCE);
        else expect(l.probs[j]).toBeLessThan(0.01);
      });
    } finally {
      await local.dispose();
    }
  });

  it("catrl infer: the policy local, the anchor and judge on the server, the server's identity in run.json", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-remote-"));
    const out = path.join(dir, "run");
    // biome-ignore format: one flag per line pair reads worse here
    await run("node", [CLI, "infer", "--model", STORIES, "--anchor", server.url, "--judge", server.url,
      "--data", writePrompts(dir, 2), "--task", "freeform", "-G", "3", "--max-tokens", "12",
      "--synthesis-max-tokens", "32", "--rubric-retries", "1", ...ACCEPT_INCOMPLETE, "--out", out], { env });
    const results = readJsonlFile(path.join(out, "results.jsonl"));
    // Results are written as each prompt completes: compare as sets.
    expect(results.map((r) => r.id).sort()).toEqual(["p0", "p1"]);
    for (const r of results) {
      expect(r.rollouts).toHaveLength(3);
      expect(r.reference.ok).toBe(true);
      if ("criteria" in r.rubric) {
        expect(r.verdicts).toHaveLength(3);
        for (const vs of r.verdicts)
          for (const v of vs) if (v.pYes != null) expect(v.met).toBe(v.pYes >= 0.5);
      }
    }
    const manifest = JSON.parse(readFileSync(path.join(out, "run.json"), "utf8"));
    expect(manifest.models[0].sha256).toMatch(/^[0-9a-f]{64}$/);
    for (const m of manifest.models.slice(1)) {
      expect(m).toMatchObject({
        url: server.url,
        server: "llama-server",
        version: remote.info.remote?.version,
      });
      expect(m.model_id).toContain("stories260K");
      expect(m.sha256).toBeUndefined();
    }
    expect(JSON.stringify(manifest)).not.toMatch(/api[_-]?key/i);
  });

  it("catrl train: the policy and trainer local, the frozen anchor on the server; a served policy is refused", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-remote-train-"));
    const out = path.join(dir, "run");
    const data = path.join(REPO_ROOT, "examples/stories-prompts.jsonl");
    // biome-ignore format: one flag per line pair reads worse here
    const common = ["--data", data, "--task", TASK, "--steps", "2", "--prompts-per-step", "2", "-G", "4",
      "--max-tokens", "8", "--lora-rank", "4", "--eval-every", "0", ...ACCEPT_INCOMPLETE];
    await run("node", [CLI, "train", "--model", STORIES, "--anchor", server.url, ...common, "--out", out], {
      env,
    });
    const steps = readJsonlFile(path.join(out, "steps.jsonl"));
    expect(steps.map((st) => st.step)).toEqual([1, 2]);
    // Each adapter in both formats: llama.cpp's GGUF and PEFT's folder beside it.
    const adapter = path.join(out, JSON.parse(readFileSync(path.join(out, "state.json"), "utf8")).adapter);
    expect(existsSync(adapter)).toBe(true);
    expect(existsSync(path.join(peftDirFor(adapter), "adapter_model.safetensors"))).toBe(true);
    const manifest = JSON.parse(readFileSync(path.join(out, "run.json"), "utf8"));
    expect(manifest.models.map((m: { role: string }) => m.role)).toEqual(["policy-base", "anchor", "judge"]);
    expect(manifest.models[1]).toMatchObject({ url: server.url, server: "llama-server" });

    const refused = await run(
      "node",
      [CLI, "train", "--model", server.url, ...common, "--out", path.join(dir, "refused")],
      { env },
    ).catch((e) => e);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr.trim().split("\n").at(-1)).toMatch(/--model .*cannot load LoRA adapters/);
  });

  it("a server killed mid-run: infer stops in one line keeping finished prompts, and the same command resumes", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-remote-kill-"));
    const out = path.join(dir, "run");
    const results = path.join(out, "results.jsonl");
    // biome-ignore format: one flag per line pair reads worse here
    const args = [CLI, "infer", "--model", STORIES, "--anchor", server.url, "--data", writePrompts(dir, 16),
      "--task", TASK, "-G", "3", "--max-tokens", "8", "--synthesis-max-tokens", "64", ...ACCEPT_INCOMPLETE,
      "--out", out];
    const first = spawn("node", args, { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    first.stderr?.on("data", (d) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((r) => first.once("exit", (code) => r(code)));
    await waitFor(() => existsSync(results) && readFileSync(results, "utf8").split("\n").length > 2, first);
    await server.kill();
    const code = await exited;
    expect(code).not.toBe(0);
    const lastLine = stderr.trim().split("\n").at(-1) ?? "";
    expect(lastLine).toMatch(/connection refused|closed the connection/);
    const kept = readFileSync(results, "utf8");
    const keptIds = readJsonlFile(results).map((r) => r.id);
    expect(keptIds.length).toBeGreaterThanOrEqual(2);
    expect(keptIds.length).toBeLessThan(16);

    server = await server.restart();
    const { stderr: resumed } = await run("node", args, { env });
    expect(resumed).toMatch(new RegExp(`resuming .*: ${keptIds.length} prompts already done`));
    const all = readFileSync(results, "utf8");
    // Nothing finished before the kill was lost or redone: the file grew from what was kept.
    expect(all.startsWith(kept)).toBe(true);
    // Results are written as each prompt completes: compare as sets.
    expect(
      readJsonlFile(results)
        .map((r) => r.id)
        .sort(),
    ).toEqual(Array.from({ length: 16 }, (_, i) => `p${i}`).sort());
  });
});

/** Polls `cond` every 50 ms while `proc` runs; fails when it exits first or after two minutes. */
async function waitFor(cond: () => boolean, proc: ChildProcess): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (proc.exitCode != null) throw new Error(`process exited (${proc.exitCode}) before the condition held`);
    if (Date.now() - t0 > 120_000) throw new Error("condition not met within 120 s");
    await new Promise((r) => setTimeout(r, 50));
  }
}
