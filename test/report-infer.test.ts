import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, REPO_ROOT, readJsonlFile, SHIPPED_STORIES } from "./helpers/shared.js";
import { chromium, haveChromium, inCI } from "./report-helpers.js";

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

/** `catrl report` on a `catrl infer` directory (the shipped model, 3 prompts x G=4, 6 tokens). */
describe("catrl report on an infer run", { timeout: BUDGET_MS }, () => {
  let dir: string;
  let data: string;
  let out: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "catrl-report-infer-"));
    data = path.join(dir, "data.jsonl");
    const prompts = ["Tom went to the park.", "The sun was hot.", "A dog ran."];
    writeFileSync(
      data,
      prompts.map((p, i) => JSON.stringify({ id: `p${i}`, prompt: p, answer: "he" })).join("\n"),
    );
    out = path.join(dir, "run");
    const r = await catrl([
      "infer",
      "--model",
      SHIPPED_STORIES,
      "--data",
      data,
      "--task",
      TASK,
      "-G",
      "4",
      "--max-tokens",
      "6",
      // Accuracy vs G needs the (opt-in) sweep of syntheses over the first 1, 2 rollouts.
      "--g-sweep",
      "1,2",
      "--out",
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
  }, BUDGET_MS);

  it("without eval.json: agreement per estimator and vs G, the reward distribution, and says it is agreement", async () => {
    const r = await catrl(["report", out]);
    expect(r.code, r.stderr).toBe(0);
    const file = path.join(out, "report.html");
    expect(r.stdout.trim()).toBe(file);
    expect(r.stderr).toBe("");
    const html = readFileSync(file, "utf8");
    expect(html).toContain("CaT inference run");
    expect(html).not.toContain("CaT-RL run");
    expect(html).toContain("agreement with the synthesized reference");
    // Every estimator the run recorded (synthesis is the reference itself here) has a row.
    for (const e of ["single", "majority", "self-bon", "min-ppl"])
      expect(html).toContain(`<code>${e}</code>`);
    // The rollouts' rewards, counted into bins: as many as the results hold.
    const results = readJsonlFile(path.join(out, "results.jsonl"));
    const n = results.flatMap((x) => x.rewards).filter((x: unknown) => typeof x === "number").length;
    expect(html).toContain(`${n} rollouts of 3 prompts`);
    expect(html).toMatch(/id="plot-by-g"/);
    if (inCI) expect(haveChromium).toBe(true);
    if (haveChromium) {
      const dom = await chromium(["--dump-dom", pathToFileURL(file).href]);
      expect(dom).toContain('data-rendered="ok"');
      const charts = dom.match(/<svg class="chart"[^>]*data-drawn="(\d+)"/g) ?? [];
      expect(charts).toHaveLength(2);
      for (const c of charts) expect(Number(/data-drawn="(\d+)"/.exec(c)?.[1])).toBeGreaterThan(0);
    }
  });

  it("with eval.json: accuracy against the gold answers, as catrl eval computed it", async () => {
    const ev = await catrl(["eval", out, "--gold", data, "--match", "exact"]);
    expect(ev.code, ev.stderr).toBe(0);
    const evalJson = JSON.parse(readFileSync(path.join(out, "eval.json"), "utf8"));
    const r = await catrl(["report", out, "--out", path.join(dir, "with-gold.html")]);
    expect(r.code, r.stderr).toBe(0);
    const html = readFileSync(path.join(dir, "with-gold.html"), "utf8");
    expect(html).toContain(`against ${data} (catrl eval), 3 prompts`);
    expect(html).toContain("<code>synthesis</code>");
    expect(Object.keys(evalJson.accuracy)).toContain("synthesis");
  });

  it("refuses, with exit 1, a directory another command wrote", async () => {
    const other = path.join(dir, "other");
    mkdirSync(other);
    writeFileSync(path.join(other, "run.json"), JSON.stringify({ kind: "catrl-bench" }));
    const r = await catrl(["report", other]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      `catrl: ${other}: holds a \`catrl bench\` run; catrl report renders training and infer runs`,
    );
  });
});
