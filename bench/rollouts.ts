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
import { benchPrompts } from "./rollouts/prompts.js";
import { type CaseSummary, formatTable, summarize } from "./rollouts/summary.js";
import { type BenchCase, type Measurement, VARIANTS, type Variant } from "./rollouts/types.js";

/**
 * Rollout throughput: the project's engine against node-llama-cpp one completion at a time (what a user
 * writes without us) and against llama.cpp's llama-batched-bench (the ceiling), on one model file, one
 * thread count, the same prompt length and token budget, cases interleaved so machine noise hits all three.
 */

export const DEFAULT_BENCH_MODEL = "models/85m-q8_0.gguf";

export const RolloutBenchOptionsSchema = z.object({
  model: z.string().optional(),
  threads: z.number().int().positive().default(defaultThreads),
  maxTokens: z.number().int().positive().default(64),
  G: z.array(z.number().int().positive()).min(1).default([1, 4, 8, 16]),
  prompts: z.array(z.number().int().positive()).min(1).default([1, 4]),
  repeats: z.number().int().positive().default(2),
  variants: z
    .array(z.enum(["engine", "naive", "llama.cpp"]))
    .min(1)
    .default([...VARIANTS]),
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
  versions: ReturnType<typeof versions>;
  model: { path: string; bytes: number; sha256: string };
  threads: number;
  maxTokens: number;
  sampling: Sampling;
  prompts: { text: string; tokens: number }[];
  options: z.output<typeof RolloutBenchOptionsSchema>;
  notes: string[];
  llamaBatchedBench: { bin: string; exampleArgs: string[] } | null;
  measurements: Measurement[];
  summary: CaseSummary[];
  targets: {
    engineOverNaiveAtG16: { want: number; got: number | null };
    engineOverLlamaCppAtG16: { want: number; got: number | null; gotDecodeOnly: number | null };
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
  const modelPath = await resolveModel(o.model, log);

  const variants: Variant[] = [];
  let engine: EngineVariant | undefined;
  let batched: BatchedBenchVariant | undefined;
  try {
    if (o.variants.includes("engine")) {
      engine = await EngineVariant.open(modelPath, o.threads);
      variants.push(engine);
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
    if (o.variants.includes("llama.cpp")) {
      const bin = await ensureBatchedBench({ build: o.buildLlamaCpp });
      if (bin) {
        batched = new BatchedBenchVariant(bin, modelPath, o.threads);
        variants.push(batched);
      } else {
        notes.push(
          "llama-batched-bench not built (run bench/llama-cpp/build-batched-bench.sh): variant skipped",
        );
        log(`note: ${notes.at(-1)}`);
      }
    }
    if (variants.length === 0) throw new UserError("bench rollouts: no variant could run");

    const promptTexts = benchPrompts(Math.max(...o.prompts));
    const promptTokens = await countPromptTokens(engine, modelPath, o.threads, promptTexts);
    const cases: BenchCase[] = [];
    for (const p of o.prompts) {
      for (const G of o.G) {
        const toks = promptTokens.slice(0, p);
        cases.push({
          prompts: promptTexts.slice(0, p),
          promptTokens: Math.round(toks.reduce((a, b) => a + b, 0) / p),
          G,
          maxTokens: o.maxTokens,
          sampling: BENCH_SAMPLING,
          seed: o.seed,
        });
      }
    }

    // Warm-up (not recorded): first contexts, page cache, JIT.
    const warm: BenchCase = { ...cases[0], G: Math.min(2, cases[0].G), maxTokens: Math.min(8, o.maxTokens) };
    for (const v of variants) if (v.name !== "llama.cpp") await v.run(warm, -1);

    const measurements: Measurement[] = [];
    for (let r = 0; r < o.repeats; r++) {
      for (const [ci, c] of cases.entries()) {
        // Rotate the order so no variant always runs first (or right after llama.cpp's process exits).
        const k = (r + ci) % variants.length;
        for (const v of [...variants.slice(k), ...variants.slice(0, k)]) {
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
          const m = { ...measured, ...(v.prepare ? { setupSeconds } : {}) };
          measurements.push(m);
          log(
            `repeat ${r + 1}/${o.repeats} prompts ${m.prompts} G ${m.G} ${m.variant.padEnd(9)} ` +
              `${m.tokensPerSec.toFixed(1)} tok/s ${m.rolloutsPerSec.toFixed(2)} rollouts/s (${m.rollouts} rollouts, ${m.tokens} tokens, ${m.seconds.toFixed(2)} s)`,
          );
        }
      }
    }

    const summary = summarize(measurements);
    const atG16 = summary.filter((s) => s.G === 16 && s.prompts === 1)[0] ?? null;
    notes.push(
      "contexts are created before each timed run (untimed, setupSeconds): training repeats one batch shape, and llama-batched-bench does not time its set-up either",
    );
    if (measurements.some((m) => m.variant !== "llama.cpp" && m.tokens < m.rollouts * o.maxTokens)) {
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
        engineOverNaiveAtG16: { want: 1.5, got: atG16?.ratios.engineOverNaive ?? null },
        engineOverLlamaCppAtG16: {
          want: 0.85,
          got: atG16?.ratios.engineOverLlamaCpp ?? null,
          gotDecodeOnly: atG16?.ratios.engineOverLlamaCppDecode ?? null,
        },
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

async function countPromptTokens(
  engine: EngineVariant | undefined,
  modelPath: string,
  threads: number,
  prompts: string[],
): Promise<number[]> {
  if (engine) return prompts.map((p) => engine.engine.tokenizePrompt(p, "raw").length);
  const { loadLlama } = await import("../src/engine/llama-runtime.js");
  const llama = await loadLlama({ gpu: "cpu", threads });
  const model = await llama.loadModel({ modelPath, vocabOnly: true });
  try {
    const bos = model.tokens.bos == null ? 0 : 1;
    return prompts.map((p) => model.tokenize(p).length + bos);
  } finally {
    await model.dispose();
  }
}
