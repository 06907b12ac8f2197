import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ensureBatchedBench, parseBatchedBenchTable } from "../bench/rollouts/batched-bench.js";
import { formatTable, runRolloutBench } from "../bench/rollouts.js";

const STORIES = path.resolve(__dirname, "../../shared/models/stories260K.gguf");
const tmp = mkdtempSync(path.join(os.tmpdir(), "catrl-bench-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("llama-batched-bench output", () => {
  it("parses the markdown table rows", () => {
    const text = [
      "llama_batched_bench: n_kv_max = 1024, n_batch = 2048",
      "|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |",
      "|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|",
      "|    16 |     32 |   16 |    768 |    0.557 |   459.75 |    2.307 |   221.89 |    2.864 |   268.13 |",
    ].join("\n");
    expect(parseBatchedBenchTable(text)).toEqual([
      {
        pp: 16,
        tg: 32,
        b: 16,
        nKv: 768,
        tPp: 0.557,
        sPp: 459.75,
        tTg: 2.307,
        sTg: 221.89,
        t: 2.864,
        s: 268.13,
      },
    ]);
  });
});

describe.skipIf(!existsSync(STORIES))(
  "rollout benchmark smoke run on stories260K (needs shared/models)",
  () => {
    it("builds long prompts of at least the asked length", async () => {
      const { longPrompt } = await import("../bench/rollouts/prompts.js");
      const count = async (t: string) => t.split(" ").length;
      const p = await longPrompt(1, 40, count);
      expect(await count(p)).toBe(40);
      expect(p).not.toBe(await longPrompt(2, 40, count));
    });

    it("measures every variant it can and writes the table and JSON", async () => {
      // llama-batched-bench is compared when already built (building takes minutes, not a test's job).
      const haveLlamaCpp = (await ensureBatchedBench({ build: false })) !== null;
      const out = path.join(tmp, "rollouts.json");
      const lines: string[] = [];
      const r = await runRolloutBench(
        {
          model: STORIES,
          threads: 1,
          maxTokens: 8,
          G: [1, 4],
          prompts: [1, 2],
          repeats: 1,
          naiveMaxRollouts: 3,
          buildLlamaCpp: false,
          variants: ["engine", "engine-fa-off", "naive", "llama.cpp", "llama.cpp-fa-off", "llama.cpp-pps"],
          out,
        },
        (l) => lines.push(l),
      );
      const llama = ["llama.cpp", "llama.cpp-fa-off", "llama.cpp-pps"];
      const variants = ["engine", "engine-fa-off", "naive", ...(haveLlamaCpp ? llama : [])];
      expect(new Set(r.measurements.map((m) => m.variant))).toEqual(new Set(variants));
      // -pps shares one prompt among all sequences: measured on the two one-prompt cases only.
      // A llama-batched-bench run that printed no table is noted and left out, not fatal.
      const failedRuns = r.notes.filter((n) => /^repeat \d+ prompts .*llama\.cpp/.test(n)).length;
      expect(r.measurements.length + failedRuns).toBe(4 * variants.length - (haveLlamaCpp ? 2 : 0));
      expect(failedRuns).toBeLessThanOrEqual(2);
      expect(r.measurements.filter((m) => m.variant === "llama.cpp-pps").every((m) => m.prompts === 1)).toBe(
        true,
      );
      for (const m of r.measurements) {
        expect(m.tokens).toBeGreaterThan(0);
        expect(m.tokens).toBeLessThanOrEqual(m.rollouts * 8);
        expect(m.seconds).toBeGreaterThan(0);
        expect(m.tokensPerSec).toBeCloseTo(m.tokens / m.seconds, 6);
        expect(m.rolloutsPerSec).toBeGreaterThan(0);
      }
      const engine = r.measurements.filter((m) => m.variant === "engine");
      expect(engine.map((m) => m.rollouts)).toEqual([1, 4, 2, 8]);
      expect(r.measurements.filter((m) => m.variant === "naive").map((m) => m.rollouts)).toEqual([
        1, 3, 2, 3,
      ]);

      expect(r.measurements.every((m) => m.maxTokens === 8 && m.promptTokens > 5)).toBe(true);
      expect(r.summary.map((s) => [s.prompts, s.G, s.sequences])).toEqual([
        [1, 1, 1],
        [1, 4, 4],
        [2, 1, 2],
        [2, 4, 8],
      ]);
      for (const s of r.summary) {
        expect(s.ratios.engineOverNaive).toBeGreaterThan(0);
        expect(s.ratios.engineOverEngineFaOff).toBeGreaterThan(0);
        if (haveLlamaCpp) {
          expect(s.ratios.engineOverLlamaCppDecode).toBeGreaterThan(0);
          expect(s.ratios.engineOverLlamaCppFaOff).toBeGreaterThan(0);
          expect(s.ratios.engineDecodeOverSTg).toBeGreaterThan(0);
          expect(s.ratios.engineOverLlamaCppPps != null).toBe(s.prompts === 1);
        }
      }
      expect(r.targets.cases).toEqual([]);
      expect(r.loadavgStart).toHaveLength(3);
      expect(r.model.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(r.prompts[0].tokens).toBeGreaterThan(5);

      const onDisk = JSON.parse(readFileSync(out, "utf8"));
      expect(onDisk.summary).toEqual(r.summary);
      expect(onDisk.machine.cores).toBeGreaterThan(0);
      expect(onDisk.versions.nodeLlamaCpp).toBe("3.21.1");
      expect(onDisk.threads).toBe(1);

      const table = formatTable(r.summary).split("\n");
      expect(table[0]).toMatch(/engine tok\/s.*naive tok\/s.*llama\.cpp fa-off tok\/s.*eng\/naive/);
      expect(table.length).toBe(2 + r.summary.length);
      // One progress line per measurement, besides notes (e.g. llama-batched-bench not built on this machine).
      expect(lines.filter((l) => !l.startsWith("note: ")).length).toBe(r.measurements.length);
    });
  },
);
