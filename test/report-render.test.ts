import { readFileSync } from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { describe, expect, it, vi } from "vitest";
import { register } from "../src/cli/commands/report.js";
import { movingAverage } from "../src/report/charts.js";
import { renderReport } from "../src/report/index.js";
import { formatTick, formatValue, niceDomain, ticks } from "../src/report/scale.js";
import { FIXTURE, syntheticSteps, tmpDir, writeRun } from "./report-helpers.js";

const GENERATED = "2026-11-30T10:00:00.000Z";
const charts = (html: string): string[] => html.match(/<svg class="chart"[\s\S]*?<\/svg>/g) ?? [];

describe("axis arithmetic", () => {
  it("picks 1-2-5 ticks and labels them with just enough decimals", () => {
    expect(ticks([0, 1]).values).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(ticks([0, 30], 6, true).values).toEqual([0, 5, 10, 15, 20, 25, 30]);
    expect(niceDomain([0.0123, 0.0871])).toEqual([0.01, 0.09]);
    expect(niceDomain([0.3, 0.3])).toEqual([0.27, 0.33]);
    expect(formatTick(0.30000000000000004, 0.1)).toBe("0.3");
    expect(formatTick(0.00002, 0.00001)).toBe("2e-5");
    expect(formatValue(0.123456)).toBe("0.1235");
    expect(formatValue(null)).toBe("–");
  });
});

describe("moving average", () => {
  it("is centred, skips missing values and keeps gaps", () => {
    expect(movingAverage([1, 2, 3, null, 5], 3)).toEqual([1.5, 2, 2.5, null, 5]);
  });
});

describe("renderReport", () => {
  it("renders the fixture run as one page with every plot and the provenance tables", async () => {
    const html = await renderReport(FIXTURE, { generated: GENERATED });
    // reward, eval, by-g, kl, loss, grad norm, zero-variance, clip, time, throughput
    expect(charts(html)).toHaveLength(10);
    for (const id of ["reward", "eval", "by-g", "kl", "loss", "grad-norm", "zero-variance", "time"]) {
      expect(html).toContain(`id="plot-${id}"`);
    }
    expect(html).toContain("9a3c1f0e5b7d2a48c6e1f3b5d7a9c0e2f4a6b8d0c2e4f6a8b0c2d4e6f8a0b2c4");
    expect(html).toContain("node_llama_cpp");
    expect(html).toContain("optim.lora.rank");
    expect(html).toContain("every group had zero reward variance");
    expect(html).not.toContain('id="problems"');
  });

  it("is self-contained: no URL, no external src or href, a CSP that forbids fetching", async () => {
    const html = await renderReport(FIXTURE, { generated: GENERATED });
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/\s(src|href)=/);
    expect(html).toContain("default-src 'none'");
  });

  it("says 'no steps yet' for an empty steps.jsonl and copes without evals or run.json", async () => {
    const html = await renderReport(writeRun({ steps: "" }), { generated: GENERATED });
    expect(html).toContain('id="no-steps"');
    expect(html).toMatch(/No steps yet/);
    expect(html).toContain("no evaluations yet");
    expect(html).toContain("no run.json in this directory");
    expect(charts(html)).toHaveLength(0);
  });

  it("labels accuracy as agreement when there is no gold", async () => {
    const evals = `${JSON.stringify({ step: 0, n_prompts: 5, policy_single_accuracy: 0.4, synthesis_accuracy: 0.6, gold_available: false })}\n`;
    const html = await renderReport(writeRun({ steps: "", evals }), { generated: GENERATED });
    expect(html).toContain("agreement with synthesized reference");
  });

  it("lists malformed lines in the page and still plots the valid ones", async () => {
    const steps = `${syntheticSteps(5)}{"step": 6, "kl": "high"}\nnot json\n`;
    const dir = writeRun({ steps });
    const html = await renderReport(dir, { generated: GENERATED });
    expect(html).toContain('id="problems"');
    expect(html).toContain(`${path.join(dir, "steps.jsonl")}:6: kl:`);
    expect(html).toContain(`${path.join(dir, "steps.jsonl")}:7: not valid JSON`);
    expect(charts(html).length).toBeGreaterThan(5);
  });

  it("handles hundreds of steps: stacked areas instead of bars, a page of sane size", async () => {
    const html = await renderReport(writeRun({ steps: syntheticSteps(600) }), { generated: GENERATED });
    const time = charts(html).find((c) => c.includes('aria-label="Time per step"')) ?? "";
    expect(time).toContain('class="mark area"');
    expect(time).not.toContain('class="mark bar"');
    // Raw values faint under a moving average, so the trend stays readable.
    expect(html).toContain('class="mark line faint"');
    expect(html).toMatch(/loss, moving average of \d+/);
    expect(html.length).toBeLessThan(1_500_000);
  });

  it("escapes run data in markup and in embedded JSON", async () => {
    const run = JSON.parse(readFileSync(path.join(FIXTURE, "run.json"), "utf8"));
    run.config.note = "</script><script>alert(1)</script>";
    const html = await renderReport(writeRun({ steps: syntheticSteps(3), run: JSON.stringify(run) }), {
      generated: GENERATED,
    });
    expect(html).not.toContain("<script>alert(1)");
    expect(html).toContain("&#60;/script&#62;");
  });
});

describe("catrl report", () => {
  it("writes DIR/report.html by default, or --out, and prints the path", async () => {
    const dir = writeRun({ steps: syntheticSteps(3), evals: "" });
    const out = path.join(tmpDir(), "r.html");
    const write = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    let printed: string[] = [];
    try {
      for (const args of [[dir], [dir, "--out", out]]) {
        const program = new Command().exitOverride();
        register(program);
        await program.parseAsync(["report", ...args], { from: "user" });
      }
      printed = write.mock.calls.map((c) => String(c[0]));
    } finally {
      write.mockRestore();
    }
    expect(printed).toEqual([`${path.join(dir, "report.html")}\n`, `${out}\n`]);
    expect(readFileSync(out, "utf8")).toMatch(/^<!doctype html>/);
  });
});
