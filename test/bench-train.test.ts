import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ggufShape } from "../bench/anchors/gguf-shape.js";
import { peftAvailability, resolvePython } from "../bench/anchors/peft.js";
import { runJsonChild } from "../bench/child-json.js";
import {
  caseLabel,
  compareToAnchor,
  parseBatchCases,
  runTrainBench,
  type TrainBenchCase,
} from "../bench/train.js";
import { writeRandomModel } from "../src/modelgen/index.js";
import { STORIES } from "./helpers/shared.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "catrl-bench-train-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("bench train cases", () => {
  it("parses SEQSxPROMPT+COMPLETION lists and names the bad entry", () => {
    expect(parseBatchCases("2x32+32, 1x256+1536")).toEqual([
      { seqs: 2, promptTokens: 32, completionTokens: 32 },
      { seqs: 1, promptTokens: 256, completionTokens: 1536 },
    ]);
    expect(caseLabel({ seqs: 1, promptTokens: 64, completionTokens: 512 })).toBe("1x64+512");
    expect(() => parseBatchCases("2x32+32,1x64")).toThrow(/"1x64" is not SEQSxPROMPT\+COMPLETION/);
    expect(() => parseBatchCases("0x8+8")).toThrow(/"0x8\+8"/);
    expect(() => parseBatchCases(" , ")).toThrow(/no case/);
  });

  it("compares ours to the anchor only where both ran", () => {
    const base = { seqs: 1, promptTokens: 8, completionTokens: 8 };
    const ok = (variant: "catrl" | "peft", label: string, tokS: number, rss: number) =>
      ({
        ...base,
        label,
        variant,
        gradMode: "transpose",
        ok: true,
        stepTokPerS: tokS,
        peakRssBytes: rss,
      }) as unknown as TrainBenchCase;
    const failed = { ...base, label: "b", variant: "catrl", gradMode: "transpose", ok: false, error: "x" };
    const c = compareToAnchor([
      ok("catrl", "a", 30, 1000),
      ok("peft", "a", 20, 4000),
      failed as TrainBenchCase,
      ok("peft", "b", 10, 100),
    ]);
    expect(c).toEqual([
      {
        label: "a",
        gradMode: "transpose",
        stepTokPerS: { catrl: 30, peft: 20, ratio: 1.5 },
        peakRssBytes: { catrl: 1000, peft: 4000, ratio: 0.25 },
      },
    ]);
  });
});

describe("benchmark children", () => {
  it("returns the last stdout line as JSON", async () => {
    const r = await runJsonChild(
      process.execPath,
      ["-e", 'console.log("progress"); console.log(\'{"x":1}\')'],
      {
        log: () => {},
      },
    );
    expect(r).toEqual({ ok: true, value: { x: 1 } });
  });

  it("reports a child that aborts after an assert with its assert line, and does not throw", async () => {
    const lines: string[] = [];
    const r = await runJsonChild(
      process.execPath,
      [
        "-e",
        'process.stderr.write("compute\\nggml-alloc.c:136: GGML_ASSERT(chunk->n_free_blocks < MAX_FREE_BLOCKS) failed\\nstack\\n"); process.abort()',
      ],
      { log: (l) => lines.push(l) },
    );
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toMatch(/^killed by SIGABRT: .*GGML_ASSERT\(chunk->n_free_blocks/);
    }
    expect(lines).toContain("compute");
  });
});

describe("PyTorch + PEFT anchor discovery", () => {
  it("says in one line why a Python cannot run the anchor", () => {
    const r = peftAvailability(path.join(tmp, "no-such-python"));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toContain("no-such-python");
      expect(r.reason).not.toContain("\n");
    }
  });

  it("takes --python first, then CATRL_PYTHON, then python3", () => {
    const saved = process.env.CATRL_PYTHON;
    try {
      process.env.CATRL_PYTHON = "/opt/py/bin/python";
      expect(resolvePython("/x/python")).toBe("/x/python");
      expect(resolvePython()).toBe("/opt/py/bin/python");
      delete process.env.CATRL_PYTHON;
      expect(resolvePython()).toBe("python3");
    } finally {
      if (saved === undefined) delete process.env.CATRL_PYTHON;
      else process.env.CATRL_PYTHON = saved;
    }
  });
});

describe(`bench train on a generated model`, () => {
  it("reads the shape the anchor builds from the GGUF header", async () => {
    const file = path.join(tmp, "shape.gguf");
    await writeRandomModel({
      shape: {
        arch: "qwen3",
        n_embd: 64,
        n_layer: 3,
        n_head: 4,
        n_head_kv: 2,
        head_dim: 32,
        n_ff: 96,
        rope_freq_base: 1e6,
        rms_eps: 1e-6,
        context_length: 256,
        tied_embeddings: true,
      },
      type: "q8_0",
      seed: 2,
      tokenizerFrom: STORIES,
      out: file,
    });
    expect(await ggufShape(file)).toEqual({
      arch: "qwen3",
      n_vocab: 512,
      n_embd: 64,
      n_layer: 3,
      n_head: 4,
      n_head_kv: 2,
      head_dim: 32,
      n_ff: 96,
      rope_freq_base: 1e6,
      rms_eps: expect.closeTo(1e-6, 12),
      context_length: 256,
      tied_embeddings: true,
    });
  });

  it("runs every case in its own process and notes a missing anchor without failing", async () => {
    const model = path.join(tmp, "tiny.gguf");
    await writeRandomModel({ preset: "tiny", type: "q8_0", seed: 1, out: model });
    const out = path.join(tmp, "train.json");
    const r = await runTrainBench(
      {
        model,
        threads: 1,
        rank: 4,
        cases: parseBatchCases("2x8+8,1x4+20"),
        gradModes: ["transpose"],
        repeats: 1,
        anchor: "peft",
        python: path.join(tmp, "no-such-python"),
        out,
      },
      () => {},
    );
    expect(r.cases.map((c) => [c.label, c.variant, c.ok])).toEqual([
      ["2x8+8", "catrl", true],
      ["1x4+20", "catrl", true],
    ]);
    const [a, b] = r.cases;
    if (!a.ok || !b.ok || a.variant !== "catrl" || b.variant !== "catrl") throw new Error("unreachable");
    expect(a.tokensPerPass).toBe(2 * (8 + 8 - 1));
    expect(b.tokensPerPass).toBe(4 + 20 - 1);
    expect(a.stepTokPerS).toBeGreaterThan(0);
    expect(a.peakRssBytes).toBeGreaterThan(10 * 2 ** 20);
    expect(r.notes.some((n) => /^anchor peft skipped: .*no-such-python/.test(n))).toBe(true);
    expect(r.comparisons).toEqual([]);
    expect(r.model.preset).toBeNull();
    expect(r.outFile).toBe(out);
    expect(r.complete).toBe(true);
  }, 120_000);
});
