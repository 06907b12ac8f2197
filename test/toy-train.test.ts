import { mkdtempSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readGgufHeader } from "../src/gguf/index.js";
import { trainToy } from "../src/toy/train-toy.js";
import { sha256File } from "../src/util/hash.js";
import { readJsonlFile } from "./helpers/shared.js";

/** Each tensor's bytes in a GGUF (both files written from one layout, so data starts at the same place). */
async function tensorBytes(file: string): Promise<Map<string, Buffer>> {
  const h = await readGgufHeader(file);
  const bytes = readFileSync(file);
  const size = (ne: number[]) => ne.reduce((a, b) => a * b, 1) * 4; // F32
  const end = Math.max(...h.tensors.map((t) => t.offset + size(t.ne)));
  const data0 = bytes.length - end;
  return new Map(
    h.tensors.map((t) => [t.name, bytes.subarray(data0 + t.offset, data0 + t.offset + size(t.ne))]),
  );
}

/**
 * The recipe end to end at a tiny corpus scale (a handful of 768-token windows, a few seconds of
 * llama_opt_epoch): corpus -> tokens -> windows -> native/full-train -> the shipped files, and resume.
 */
describe("catrl model train-toy (llama.cpp's optimizer through native/full-train)", () => {
  it("trains from random init, ships model + recipe + held-out set, and resumes without retraining", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-toy-train-"));
    const outDir = path.join(dir, "out");
    const workDir = path.join(dir, "work");
    const lines: string[] = [];
    const opts = { outDir, workDir, threads: 1, scale: 0.002, log: (l: string) => lines.push(l) };
    const r = await trainToy(opts);

    const checkpoints = lines.filter((l) => l.startsWith("checkpoint after chunk"));
    expect(checkpoints.length, lines.join("\n")).toBeGreaterThan(0);
    for (const l of checkpoints) {
      const loss = Number(/mean loss ([\d.]+)/.exec(l)?.[1]);
      // Finite and below the uniform guess over the vocabulary (ln 820 = 6.7).
      expect(loss).toBeGreaterThan(0);
      expect(loss).toBeLessThan(6.8);
    }

    const recipe = JSON.parse(readFileSync(r.recipe, "utf8"));
    expect(recipe.seed).toBe(13);
    expect(recipe.model.sha256).toBe(await sha256File(r.model));
    expect(recipe.corpus.solve_examples).toBe(30);
    expect(recipe.corpus.windows).toBeGreaterThan(0);
    const test = readJsonlFile(path.join(outDir, "test.jsonl"));
    expect(test).toHaveLength(200);
    const held = new Set(test.map((t) => t.question));
    const rl = readJsonlFile(path.join(outDir, "rl-prompts.jsonl"));
    expect(rl.length).toBeGreaterThan(0);
    expect(rl.some((p) => held.has(p.question) || "answer" in p)).toBe(false);

    // Trained tensors moved; the ones llama.cpp's training graph leaves alone did not: token_embd
    // (skipped by llama_opt_init) and attn_k / attn_v (written through the KV cache by ggml_set_rows,
    // which has no backward). If a llama.cpp upgrade trains them, models/arith-toy/README.md is stale.
    const init = await tensorBytes(path.join(workDir, "init.gguf"));
    const trained = await tensorBytes(r.model);
    for (const name of ["blk.0.attn_q.weight", "blk.3.ffn_down.weight", "output.weight"])
      expect(trained.get(name)?.equals(init.get(name)!), name).toBe(false);
    for (const name of ["token_embd.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"])
      expect(trained.get(name)?.equals(init.get(name)!), name).toBe(true);

    // Re-running the same command finds every chunk done: nothing is retrained, the model is the same.
    const mtime = statSync(path.join(workDir, "checkpoint.gguf")).mtimeMs;
    lines.length = 0;
    const again = await trainToy(opts);
    expect(lines.some((l) => l.startsWith("checkpoint after chunk"))).toBe(false);
    expect(statSync(path.join(workDir, "checkpoint.gguf")).mtimeMs).toBe(mtime);
    expect(await sha256File(again.model)).toBe(recipe.model.sha256);
  });
});
