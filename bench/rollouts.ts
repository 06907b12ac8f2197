import { existsSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import type { Sampling } from "../src/engine/types.js";
import { writeRandomModel } from "../src/modelgen/index.js";
import { UserError } from "../src/util/errors.js";
import { defaultThreads } from "../src/util/threads.js";
import { packageRoot } from "../src/util/version.js";
import { BatchedBenchVariant, ensureBatchedBench } from "./rollouts/batched-bench.js";
import { EngineVariant } from "./rollouts/engine-variant.js";
import { machineInfo, modelInfo, versions } from "./rollouts/machine.js";
import { NaiveVariant } from "./rollouts/naive-variant.js";
import { benchPrompts, longPrompt } from "./rollouts/prompts.js";
import { type CaseSummary, formatTable, summarize } from "./rollouts/summary.js";
import {
  type BenchCase,
  type Measurement,
  VARIANTS,
  type Variant,
  type VariantName,
} from "./rollouts/types.js";

/**
 * Rollout throughput: the project's engine against node-llama-cpp one completion at a time (what a user
 * writes without us) and against llama.cpp's llama-batched-bench (the ceiling), on one model file, one
 * thread count, the same prompt length and token budget, cases interleaved so machine noise hits all three.
 */

export const DEFAULT_BENCH_MODEL = "models/85m-q8_0.gguf";

export const RolloutBenchOptionsSchema = z.object({
  model: z.string().optional(),
  threads: z.number().int().positive().default(defaultThreads),
  /** New tokens per rollout; each value is its own set of cases. */
  maxTokens: z
    .union([z.number().int().positive(), z.array(z.number().int().positive()).min(1)])
    .default([64])
    .transform((x) => (Array.isArray(x) ? x : [x])),
  G: z.array(z.number().int().positive()).min(1).default([1, 4, 8, 16]),
  prompts: z.array(z.number().int().positive()).min(1).default([1, 4]),
  /**
   * Prompt length in tokens: the story openings are repeated up to this length (a long shared prompt, where
   * prefix sharing matters). Omitted: the openings as they are (~16-30 tokens).
   */
  promptTokens: z.number().int().positive().optional(),
  repeats: z.number().int().positive().default(2),
  variants: z
    .array(z.enum(VARIANTS as [VariantName, ...VariantName[]]))
    .min(1)
    .default(["engine", "naive", "llama.cpp", "llama.cpp-fa-off", "llama.cpp-pps"]),
  /** The naive loop is sequential, so its rate is measured on at most this many rollouts per case. */
  naiveMaxRollouts: z.number().int().positive().default(8),
  /** Build llama-batched-bench when missing (minutes); otherwise that variant is skipped with a note. */
  buildLlamaCpp: z.boolean().default(true),
  seed: z.number().int().min(0).default(1),
  /** JSON output; default bench/results/rollouts-<hostname>.json. */
  out: z.string().optional(),
});
export type RolloutBenchOptions = z.input<typeof RolloutBenchOptionsSchema>;

/** On-policy RL sampling: temperature 1, every filter off. */
export const BENCH_SAMPLING: Sampling = { temperature: 1, topK: 0, topP: 1, minP: 0 };

export type RolloutBenchResult = {
  benchmark: "rollouts";
  date: string;
  machine: ReturnType<typeof machineInfo>;
  /** 1/5/15-minute load averages when the run started (`machine.loadavg` is at its end). */
  loadavgStart: number[];
  versions: ReturnType<typeof versions>;
  model: { path: string; bytes: number; sha256: string };
  threads: number;
  maxTokens: number[];
  sampling: Sampling;
  prompts: { text: string; tokens: number }[];
  options: z.output<typeof RolloutBenchOptionsSchema>;
  notes: string[];
  llamaBatchedBench: { bin: string; exampleArgs: string[] } | null;
  measurements: Measurement[];
  summary: CaseSummary[];
  /** Issue 12's targets, per case at 16 and 64 sequences (null where a variant did not run). */
  targets: {
    want: { endToEndOverLlamaCpp: number; decodeOverSTg: number; sharedLongPromptOverLlamaCpp: number };
    cases: {
      prompts: number;
      G: number;
      maxTokens: number;
      promptTokens: number;
      endToEndOverLlamaCpp: number | null;
      endToEndOverLlamaCppPps: number | null;
      decodeOverSTg: number | null;
    }[];
  };
  outFile: string;
};

export async function runRolloutBench(
  options: RolloutBenchOptions = {},
  log: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): Promise<RolloutBenchResult> {
  const parsed = RolloutBenchOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new UserError(`bench rollouts option ${i.path.join(".")}: ${i.message}`);
  }
  const o = parsed.data;
  const notes: string[] = [];
  const loadavgStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const modelPath = await resolveModel(o.model, log);

  const variants: Variant[] = [];
  let engine: EngineVariant | undefined;
  let batched: BatchedBenchVariant | undefined;
  try {
    if (o.variants.includes("engine")) {
      engine = await EngineVariant.open(modelPath, o.threads);
      variants.push(engine);
    }
    if (o.variants.includes("engine-fa-off")) {
      variants.push(
        await EngineVariant.open(modelPath, o.threads, { flashAttention: false, shareWith: engine?.engine }),
      );
    }
    if (o.variants.includes("naive")) {
      variants.push(
        await NaiveVariant.open({
          modelPath,
          threads: o.threads,
          maxRollouts: o.naiveMaxRollouts,
          shareModel: engine?.engine.model,
        }),
      );
    }
    const llamaModes = (
      [
        ["llama.cpp", "defaults"],
        ["llama.cpp-fa-off", "fa-off"],
        ["llama.cpp-pps", "pps"],
      ] as const
    ).filter(([name]) => o.variants.includes(name));
    if (llamaModes.length > 0) {
      const bin = await ensureBatchedBench({ build: o.buildLlamaCpp });
      if (bin) {
        for (const [, mode] of llamaModes) {
          const v = new BatchedBenchVariant(bin, modelPath, o.threads, mode);
          batched ??= v;
          variants.push(v);
        }
      } else {
        notes.push(
          "llama-batched-bench not built (run bench/llama-cpp/build-batched-bench.sh): variant skipped",
        );
        log(`note: ${notes.at(-1)}`);
      }
    }
    if (variants.length === 0) throw new UserError("bench rollouts: no variant could run");

    const count = await promptTokenCounter(engine, modelPath, o.threads);
    let promptTexts = benchPrompts(Math.max(...o.prompts));
    if (o.promptTokens !== undefined) {
      const want = o.promptTokens;
      promptTexts = await Promise.all(promptTexts.map((_, i) => longPrompt(i, want, count)));
    }
    const promptTokens = await Promise.all(promptTexts.map(count));
    const cases: BenchCase[] = [];
    for (const maxTokens of o.maxTokens) {
      for (const p of o.prompts) {
        for (const G of o.G) {
          const toks = promptTokens.slice(0, p);
          cases.push({
            prompts: promptTexts.slice(0, p),
            promptTokens: Math.round(toks.reduce((a, b) => a + b, 0) / p),
            G,
            maxTokens,
            sampling: BENCH_SAMPLING,
            seed: o.seed,
          });
        }
      }
    }

    // Warm-up (not recorded): first contexts, page cache, JIT.
    const warm: BenchCase = {
      ...cases[0],
      G: Math.min(2, cases[0].G),
      maxTokens: Math.min(8, cases[0].maxTokens),
    };
    for (const v of variants) if (!v.name.startsWith("llama.cpp")) await v.run(warm, -1);

    const measurements: Measurement[] = [];
    for (let r = 0; r < o.repeats; r++) {
      for (const [ci, c] of cases.entries()) {
        // Rotate the order so no variant always runs first (or right after llama.cpp's process exits).
        const k = (r + ci) % variants.length;
        for (const v of [...variants.slice(k), ...variants.slice(0, k)]) {
          if (v.applies && !v.applies(c)) continue;
          const run = { ...c, seed: c.seed + 1000 * r };
          const t = performance.now();
          await v.prepare?.(run);
          const setupSeconds = (performance.now() - t) / 1000;
          let measured: Measurement;
          try {
            measured = await v.run(run, r);
          } catch (e) {
            // One failed run should not throw away minutes of others; it is reported and left out.
            notes.push(
              `repeat ${r + 1} prompts ${c.prompts.length} G ${c.G} ${v.name}: ${(e as Error).message}`,
            );
            log(`note: ${notes.at(-1)}`);
            continue;
          }
          const m = {
            ...measured,
            ...(v.prepare ? { setupSeconds } : {}),
            loadavg1: Math.round(os.loadavg()[0] * 100) / 100,
          };
          measurements.push(m);
          log(
            `repeat ${r + 1}/${o.repeats} prompts ${m.prompts} G ${m.G} prompt ${m.promptTokens} new ${m.maxTokens} ${m.variant.padEnd(16)} ` +
              `${m.tokensPerSec.toFixed(1)} tok/s ${m.rolloutsPerSec.toFixed(2)} rollouts/s (${m.rollouts} rollouts, ${m.tokens} tokens, ${m.seconds.toFixed(2)} s)`,
          );
        }
      }
    }

    const summary = summarize(measurements);
    notes.push(
      "contexts are created before each timed run (untimed, setupSeconds): training repeats one batch shape, and llama-batched-bench does not time its set-up either",
    );
    if (measurements.some((m) => !m.variant.startsWith("llama.cpp") && m.tokens < m.rollouts * m.maxTokens)) {
      notes.push(
        "some engine/naive rollouts ended early at end-of-generation; rates use the tokens actually generated",
      );
    }
    const outFile = path.resolve(
      o.out ?? path.join(packageRoot(), "bench", "results", `rollouts-${os.hostname()}.json`),
    );
    const result: RolloutBenchResult = {
      benchmark: "rollouts",
      date: new Date().toISOString(),
      machine: machineInfo(),
      loadavgStart,
      versions: versions(),
      model: await modelInfo(modelPath),
      threads: o.threads,
      maxTokens: o.maxTokens,
      sampling: BENCH_SAMPLING,
      prompts: promptTexts.map((text, i) => ({ text, tokens: promptTokens[i] })),
      options: o,
      notes,
      llamaBatchedBench: batched ? { bin: batched.bin, exampleArgs: batched.args(cases.at(-1)!) } : null,
      measurements,
      summary,
      targets: {
        want: { endToEndOverLlamaCpp: 1.2, decodeOverSTg: 0.95, sharedLongPromptOverLlamaCpp: 1.5 },
        cases: summary
          .filter((x) => x.G === 16)
          .map((x) => ({
            prompts: x.prompts,
            G: x.G,
            maxTokens: x.maxTokens,
            promptTokens: x.promptTokens,
            endToEndOverLlamaCpp: x.ratios.engineOverLlamaCpp,
            endToEndOverLlamaCppPps: x.ratios.engineOverLlamaCppPps,
            decodeOverSTg: x.ratios.engineDecodeOverSTg,
          })),
      },
      outFile,
    };
    await mkdir(path.dirname(outFile), { recursive: true });
    await writeFile(`${outFile}.tmp`, `${JSON.stringify(result, null, 2)}\n`);
    await rename(`${outFile}.tmp`, outFile);
    return result;
  } finally {
    for (const v of [...variants].reverse()) await v.dispose().catch(() => {});
  }
}

export { formatTable };

async function resolveModel(model: string | undefined, log: (l: string) => void): Promise<string> {
  if (model !== undefined) {
    if (!existsSync(model)) throw new UserError(`--model ${model}: file not found`);
    return path.resolve(model);
  }
  const file = path.join(packageRoot(), DEFAULT_BENCH_MODEL);
  if (!existsSync(file)) {
    log(`writing the benchmark model ${file} (85m preset, Q8_0, seed 1: random weights)`);
    await writeRandomModel({ preset: "85m", type: "q8_0", seed: 1, out: file });
  }
  return file;
}

/** Token counter for raw prompts (BOS included), from the engine's tokenizer or a vocabulary-only load. */
async function promptTokenCounter(
  engine: EngineVariant | undefined,
  modelPath: string,
  threads: number,
): Promise<(text: string) => Promise<number>> {
  if (engine) return async (p) => engine.engine.tokenizePrompt(p, "raw").length;
  const { loadLlama } = await import("../src/engine/llama-runtime.js");
  const llama = await loadLlama({ gpu: "cpu", threads });
  const model = await llama.loadModel({ modelPath, vocabOnly: true });
  const bos = model.tokens.bos == null ? 0 : 1;
  const counts = new Map<string, number>();
  return async (p) => {
    let n = counts.get(p);
    if (n === undefined) {
      n = model.tokenize(p).length + bos;
      counts.set(p, n);
    }
    return n;
  };
}
