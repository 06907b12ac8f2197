import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it, vi } from "vitest";
import { CLI, REPO_ROOT, readJsonlFile, STORIES } from "./helpers/shared.js";

const run = promisify(execFile);

const TASK = path.join(REPO_ROOT, "examples/first-word-task.mjs");

function writeData(dir: string, n: number, bad = false): string {
  const starts = [
    "Once upon a time, there was a girl.",
    "Tom went to the park.",
    "The sun was hot.",
    "A dog ran.",
  ];
  const lines = Array.from({ length: n }, (_, i) =>
    JSON.stringify({ id: `p${i}`, prompt: starts[i % starts.length], answer: "it" }),
  );
  if (bad) lines.splice(1, 0, '{"id": "broken", "prompt": ', JSON.stringify({ id: "noprompt", text: "x" }));
  const f = path.join(dir, "data.jsonl");
  writeFileSync(f, `${lines.join("\n")}\n`);
  return f;
}

const readJsonl = readJsonlFile;
// The kill case: 5 prompts of up to 64 tokens (was 8 of 200: ~104 s on a loaded machine).
const KILL_ROWS = 5;
const KILL_MAX_TOKENS = "64";
// An explicit budget for this file's cases, far above their time on a loaded 2-core machine.
vi.setConfig({ testTimeout: 300_000 });

const inferArgs = (data: string, out: string, extra: string[] = []) => [
  CLI,
  "infer",
  "--model",
  STORIES,
  "--data",
  data,
  "--task",
  TASK,
  "-G",
  "4",
  "--max-tokens",
  "12",
  "--out",
  out,
  ...extra,
];

describe("catrl infer on stories260K with a custom task (real llama.cpp)", () => {
  it("runs the whole pipeline with every estimator, records run.json, reports bad rows", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-infer-"));
    const data = writeData(dir, 3, true);
    const out = path.join(dir, "run");
    const { stderr } = await run("node", inferArgs(data, out, ["--g-sweep", "1,2,4"]), {
      env: { ...process.env, CATRL_THREADS: "1" },
    });
    expect(stderr).toMatch(/data\.jsonl:2: \(json\)/);
    expect(stderr).toMatch(/data\.jsonl:3: .*prompt/);
    // Prompts are batched: results land in completion order.
    const results = readJsonl(path.join(out, "results.jsonl")).sort((a, b) => a.line - b.line);
    // Results are written as each prompt completes: compare as sets.
    expect(results.map((r) => r.id).sort()).toEqual(["p0", "p1", "p2"]);
    for (const r of results) {
      expect(r.rollouts).toHaveLength(4);
      expect(new Set(r.rollouts.map((x: { seed: number }) => x.seed)).size).toBe(4);
      expect(r.reference.ok).toBe(true);
      expect(typeof r.reference.unified).toBe("string");
      // Reward = does the rollout's first word match the reference's first word.
      r.rollouts.forEach((x: { answer: string | null; reward: number }) => {
        expect(x.reward).toBe(x.answer != null && x.answer === r.reference.answer ? 1 : 0);
      });
      expect(Object.keys(r.estimators).sort()).toEqual([
        "majority",
        "min-ppl",
        "self-bon",
        "single",
        "synthesis",
      ]);
      expect(r.estimators.single.answer).toBe(r.rollouts[0].answer);
      expect(r.estimators.synthesis.answer).toBe(r.reference.answer);
      expect(Object.keys(r.g_sweep).sort()).toEqual(["1", "2", "4"]);
    }
    const manifest = JSON.parse(readFileSync(path.join(out, "run.json"), "utf8"));
    expect(manifest.kind).toBe("catrl-infer");
    expect(manifest.models[0].sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.versions.node_llama_cpp).toBe("3.21.1");
    expect(manifest.templates.synthesis.instructions.length).toBeGreaterThan(50);
    expect(readJsonl(path.join(out, "bad-rows.jsonl")).map((e) => e.line)).toEqual([2, 3]);

    // Eval against the gold answers in the same file: every estimator gets an accuracy, and G 1, 2, 4.
    const ev = await run("node", [CLI, "eval", out, "--gold", data], { env: process.env });
    const evalJson = JSON.parse(readFileSync(path.join(out, "eval.json"), "utf8"));
    expect(Object.keys(evalJson.accuracy).sort()).toEqual([
      "majority",
      "min-ppl",
      "self-bon",
      "single",
      "synthesis",
    ]);
    expect(evalJson.n).toBe(3);
    const expectedSynth = results.filter((r) => r.reference.answer === "it").length / 3;
    expect(evalJson.accuracy.synthesis).toBeCloseTo(expectedSynth, 10);
    expect(Object.keys(evalJson.by_g.synthesis)).toEqual(["1", "2", "4"]);
    expect(ev.stdout).toMatch(/synthesis/);
  });

  it("synthesizes once per prompt by default, and eval says the G sweep is absent", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-infer-nosweep-"));
    const data = writeData(dir, 3);
    const out = path.join(dir, "run");
    const { stderr } = await run("node", inferArgs(data, out, ["--estimators", "single"]), {
      env: { ...process.env, CATRL_THREADS: "1" },
    });
    // The time split is reported.
    expect(stderr).toMatch(/rollouts [0-9.]+ s, synthesis [0-9.]+ s \([0-9.]+ s after the rollouts\)/);
    const results = readJsonl(path.join(out, "results.jsonl"));
    expect(results.map((r) => r.id).sort()).toEqual(["p0", "p1", "p2"]);
    for (const r of results) {
      expect(r.g_sweep).toBeUndefined();
      expect(r.reference.ok).toBe(true);
      expect(r.timings.synthesis_s).toBeGreaterThan(0);
    }
    const manifest = JSON.parse(readFileSync(path.join(out, "run.json"), "utf8"));
    expect(manifest.config.g_sweep).toEqual([]);
    expect(manifest.config.batch_prompts).toBe("all");
    const ev = await run("node", [CLI, "eval", out, "--gold", data], { env: process.env });
    expect(ev.stdout).toMatch(/accuracy against G not measured: the run had no --g-sweep/);
    const evalJson = JSON.parse(readFileSync(path.join(out, "eval.json"), "utf8"));
    expect(evalJson.by_g).toEqual({});
    expect(evalJson.by_g_note).toMatch(/--g-sweep/);
  });

  it("rejects a --g-sweep size above -G", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-infer-badsweep-"));
    const data = writeData(dir, 1);
    const r = await run("node", inferArgs(data, path.join(dir, "run"), ["--g-sweep", "1,5"]), {
      env: { ...process.env, CATRL_THREADS: "1" },
    }).catch((e) => e);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--g-sweep: 5 must be between 1 and -G \(4\)/);
  });

  it("runs the mutual-predictability baseline on request", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-infer-mp-"));
    const data = writeData(dir, 2);
    const out = path.join(dir, "run");
    await run("node", inferArgs(data, out, ["--estimators", "mutual-predictability,single"]), {
      env: { ...process.env, CATRL_THREADS: "1" },
    });
    for (const r of readJsonl(path.join(out, "results.jsonl"))) {
      expect(Object.keys(r.estimators).sort()).toEqual(["mutual-predictability", "single"]);
      const mp = r.estimators["mutual-predictability"];
      const nll: number[] = mp.why.meanNll;
      expect(nll).toHaveLength(4);
      // The pick is the rollout the other three make most predictable.
      expect(mp.index).toBe(nll.indexOf(Math.min(...nll)));
      expect(mp.answer).toBe(r.rollouts[mp.index].answer);
    }
  });

  for (const [name, extra, killAt] of [
    ["in batches of 2 prompts", ["--batch-prompts", "2"], 2],
    ["with all prompts batched (the default)", [], 1],
  ] as const) {
    it(`resumes after being killed ${name}, without repeating or losing finished prompts`, async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-infer-kill-"));
      const data = writeData(dir, KILL_ROWS);
      const out = path.join(dir, "run");
      const results = path.join(out, "results.jsonl");
      const child = spawn("node", inferArgs(data, out, ["--max-tokens", KILL_MAX_TOKENS, ...extra]), {
        env: { ...process.env, CATRL_THREADS: "1" },
      });
      let stderr0 = "";
      child.stderr.on("data", (d) => {
        stderr0 += d;
      });
      const exited = new Promise((res) => child.on("close", res));
      // Kill -9 as soon as the first prompts are on disk; a run that fails first fails here, not at the timeout.
      await new Promise<void>((res, rej) => {
        const t = setInterval(() => {
          try {
            if (readFileSync(results, "utf8").split("\n").filter(Boolean).length >= killAt) {
              clearInterval(t);
              res();
            }
          } catch {}
        }, 20);
        child.on("close", () => {
          clearInterval(t);
          rej(new Error(`infer exited before the kill:\n${stderr0}`));
        });
      });
      child.kill("SIGKILL");
      await exited;
      const before = readJsonl(results);
      expect(before.length).toBeGreaterThanOrEqual(killAt);
      // In batches of two, the kill lands before the last batch; batched whole, it may land after the end.
      if (extra.length > 0) expect(before.length).toBeLessThan(KILL_ROWS);

      const { stderr } = await run(
        "node",
        inferArgs(data, out, ["--max-tokens", KILL_MAX_TOKENS, ...extra]),
        {
          env: { ...process.env, CATRL_THREADS: "1" },
        },
      );
      expect(stderr).toMatch(new RegExp(`resuming .*: ${before.length} prompts already done`));
      const after = readJsonl(results);
      expect(after.map((r) => r.id).sort()).toEqual(Array.from({ length: KILL_ROWS }, (_, i) => `p${i}`));
      // The prompts finished before the kill are kept as they were.
      expect(after.slice(0, before.length)).toEqual(before);
    });
  }

  it("refuses a directory that holds a run with other settings", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-infer-foreign-"));
    const data = writeData(dir, 1);
    const out = path.join(dir, "run");
    await run("node", inferArgs(data, out), { env: { ...process.env, CATRL_THREADS: "1" } });
    const r = await run("node", inferArgs(data, out, ["-G", "2"]), { env: process.env }).catch((e) => e);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/other settings \(G\)/);
  });
});
