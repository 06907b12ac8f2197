import { fork } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { writeRandomModel } from "../src/modelgen/index.js";
import {
  openTrainer,
  type StepOptions,
  type StepPlan,
  type TokenSeq,
  trainerAvailability,
} from "../src/rl/trainer/index.js";
import { nativeAvailability } from "../src/rl/trainer/native.js";
import { UserError } from "../src/util/errors.js";
import { defaultThreads } from "../src/util/threads.js";
import { packageRoot } from "../src/util/version.js";
import { machineInfo, modelInfo, versions } from "./rollouts/machine.js";

/**
 * Native trainer throughput: forward (log-probs) and GRPO training-step tokens/s and peak memory on a
 * random-weight Qwen3-0.6B-shape Q8_0 model with LoRA rank 16 on all seven projections, for both ways
 * of taking the gradient through frozen weights (mul_mat with a transposed copy vs ggml's out_prod).
 */

export const DEFAULT_TRAIN_BENCH_MODEL = "models/qwen3-0.6b-q8_0.gguf";

export const TrainBenchOptionsSchema = z.object({
  model: z.string().optional(),
  threads: z.number().int().positive().default(defaultThreads),
  rank: z.number().int().positive().default(16),
  /** Sequences per step (one micro-batch each unless microBatch says otherwise). */
  seqs: z.number().int().positive().default(2),
  promptTokens: z.number().int().positive().default(32),
  completionTokens: z.number().int().positive().default(32),
  microBatch: z.number().int().positive().default(2),
  repeats: z.number().int().positive().default(3),
  gradModes: z
    .array(z.enum(["transpose", "outprod"]))
    .min(1)
    .default(["transpose", "outprod"]),
  out: z.string().optional(),
});
export type TrainBenchOptions = z.input<typeof TrainBenchOptionsSchema>;

export interface TrainBenchCase {
  gradMode: "transpose" | "outprod";
  loadMs: number;
  /** Tokens fed through the model per pass (prompt + completion - 1, summed over sequences). */
  tokensPerPass: number;
  forwardMs: number[];
  forwardTokPerS: number;
  stepMs: number[];
  stepTokPerS: number;
  memory: { weights: number; transposed: number; lora: number; compute: number };
  /** This case's own process peak (each case runs in its own child process). */
  peakRssBytes: number;
  /** The trainer's memory plan for the timed step: its predicted peak RSS (compare with peakRssBytes). */
  predictedPeakRssBytes: number;
  plan: { microBatches: number; trainerBytes: number; budget: number; headChunk: number };
  /** Share of the step's time spent building and allocating graphs (one per layer and head chunk). */
  graphShare: number;
}

export type TrainBenchResult = {
  benchmark: "train";
  date: string;
  machine: ReturnType<typeof machineInfo>;
  versions: ReturnType<typeof versions> & { ggml: string };
  model: { path: string; bytes: number; sha256: string; arch: string; weightType: string };
  threads: number;
  lora: { rank: number; alpha: number; targets: string[] };
  batch: { seqs: number; promptTokens: number; completionTokens: number; microBatch: number };
  stepOptions: StepOptions;
  cases: TrainBenchCase[];
  /** stepTokPerS(transpose) / stepTokPerS(outprod), when both ran. */
  transposeSpeedup: number | null;
  notes: string[];
  outFile: string;
};

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export async function runTrainBench(
  options: TrainBenchOptions = {},
  log: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): Promise<TrainBenchResult> {
  const parsed = TrainBenchOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new UserError(`bench train option ${i.path.join(".")}: ${i.message}`);
  }
  const o = parsed.data;
  const avail = trainerAvailability();
  if (!avail.ok) throw new UserError(`bench train: training unavailable: ${avail.reason}`);
  const root = packageRoot();
  const modelPath = path.resolve(root, o.model ?? DEFAULT_TRAIN_BENCH_MODEL);
  const notes: string[] = [];
  if (!existsSync(modelPath)) {
    if (o.model) throw new UserError(`${modelPath}: model file not found`);
    log(`writing ${modelPath} (random Qwen3-0.6B-shape weights, Q8_0)...`);
    await mkdir(path.dirname(modelPath), { recursive: true });
    await writeRandomModel({ preset: "qwen3-0.6b", type: "q8_0", seed: 1, out: modelPath });
  }
  const lora = {
    rank: o.rank,
    alpha: 2 * o.rank,
    targets: ["q", "k", "v", "o", "gate", "up", "down"] as const,
  };
  const stepOptions = TRAIN_STEP_OPTIONS(o.microBatch);
  const cases: TrainBenchCase[] = [];
  let arch = "";
  let weightType = "";
  for (const gradMode of o.gradModes) {
    const c = await runCaseInChild({
      modelPath,
      threads: o.threads,
      rank: o.rank,
      seqs: o.seqs,
      promptTokens: o.promptTokens,
      completionTokens: o.completionTokens,
      microBatch: o.microBatch,
      repeats: o.repeats,
      gradMode,
    });
    arch = c.arch;
    weightType = c.weightType;
    notes.push(...c.notes);
    cases.push(c.result);
  }
  const tr = cases.find((c) => c.gradMode === "transpose");
  const op = cases.find((c) => c.gradMode === "outprod");
  const nat = nativeAvailability();
  const outFile = path.resolve(root, o.out ?? path.join("bench", "results", `train-${os.hostname()}.json`));
  const result: TrainBenchResult = {
    benchmark: "train",
    date: new Date().toISOString(),
    machine: machineInfo(),
    versions: { ...versions(), ggml: nat.ok ? `${nat.ggmlVersion} (${nat.ggmlCommit})` : "unavailable" },
    model: { ...(await modelInfo(modelPath)), arch, weightType },
    threads: o.threads,
    lora: { ...lora, targets: [...lora.targets] },
    batch: {
      seqs: o.seqs,
      promptTokens: o.promptTokens,
      completionTokens: o.completionTokens,
      microBatch: o.microBatch,
    },
    stepOptions,
    cases,
    transposeSpeedup: tr && op ? tr.stepTokPerS / op.stepTokPerS : null,
    notes,
    outFile,
  };
  await mkdir(path.dirname(outFile), { recursive: true });
  await writeFile(`${outFile}.tmp`, `${JSON.stringify(result, null, 2)}\n`);
  await rename(`${outFile}.tmp`, outFile);
  return result;
}

export function formatTrainTable(r: TrainBenchResult): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const rows = [
    ["grad mode", "load s", "forward tok/s", "step tok/s", "weights", "W^T", "compute", "peak RSS", "plan"],
    ...r.cases.map((c) => [
      c.gradMode === "transpose" ? "mul_mat(W^T, g)" : "out_prod(W, g^T)",
      (c.loadMs / 1000).toFixed(1),
      c.forwardTokPerS.toFixed(1),
      c.stepTokPerS.toFixed(1),
      mib(c.memory.weights),
      mib(c.memory.transposed),
      mib(c.memory.compute),
      mib(c.peakRssBytes),
      mib(c.predictedPeakRssBytes),
    ]),
  ];
  const w = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => row.map((x, i) => x.padStart(w[i])).join("  ")).join("\n");
}

const CaseInputSchema = z.object({
  modelPath: z.string(),
  threads: z.number().int().positive(),
  rank: z.number().int().positive(),
  seqs: z.number().int().positive(),
  promptTokens: z.number().int().positive(),
  completionTokens: z.number().int().positive(),
  microBatch: z.number().int().positive(),
  repeats: z.number().int().positive(),
  gradMode: z.enum(["transpose", "outprod"]),
});
type CaseInput = z.infer<typeof CaseInputSchema>;
type CaseOutput = { result: TrainBenchCase; arch: string; weightType: string; notes: string[] };

export const TRAIN_STEP_OPTIONS = (microBatch: number): StepOptions => ({
  lr: 1e-4,
  beta: 0.01,
  clipEps: 0.2,
  microBatch,
  maxGradNorm: 1,
  weightDecay: 0,
});

/**
 * Each case runs in its own process so that its peak RSS is its own (maxRSS only grows) and one
 * mode's buffers cannot linger into the other's measurement.
 */
function runCaseInChild(input: CaseInput): Promise<CaseOutput> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [CASE_FLAG, JSON.stringify(input)], {
      stdio: ["ignore", "pipe", "inherit", "ipc"],
      execArgv: [],
    });
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`bench train: the ${input.gradMode} case exited with ${code}`));
      try {
        resolve(JSON.parse(out.trim().split("\n").at(-1) ?? "") as CaseOutput);
      } catch (e) {
        reject(e);
      }
    });
  });
}

const CASE_FLAG = "--catrl-train-bench-case";

async function runTrainCase(input: CaseInput, log: (line: string) => void): Promise<CaseOutput> {
  const { gradMode } = input;
  const notes: string[] = [];
  const stepOptions = TRAIN_STEP_OPTIONS(input.microBatch);
  log(`${gradMode}: loading ${path.basename(input.modelPath)} with ${input.threads} thread(s)...`);
  const t0 = performance.now();
  const t = await openTrainer({
    modelPath: input.modelPath,
    threads: input.threads,
    seed: 1,
    gradMode,
    lora: { rank: input.rank, alpha: 2 * input.rank, targets: ["q", "k", "v", "o", "gate", "up", "down"] },
  });
  const loadMs = performance.now() - t0;
  notes.push(...t.notes.map((n) => `${gradMode}: ${n}`));
  try {
    // token ids spread over the vocabulary; the content does not matter for speed
    const seqs: TokenSeq[] = Array.from({ length: input.seqs }, (_, s) => ({
      prompt: Array.from(
        { length: input.promptTokens },
        (_, j) => (7919 * (s * 131 + j + 1)) % t.info.nVocab,
      ),
      completion: Array.from(
        { length: input.completionTokens },
        (_, j) => (104729 * (s * 17 + j + 3)) % t.info.nVocab,
      ),
    }));
    const tokensPerPass = seqs.reduce((a, s) => a + s.prompt.length + s.completion.length - 1, 0);
    // old/ref log-probs from a forward pass each, as a GRPO step computes them; the timed step then
    // measures the update alone (forward + backward + AdamW). One untimed step first: graph
    // allocation happens on first use.
    const old = await t.logprobs(seqs, { lora: true, microBatch: input.microBatch });
    const ref = await t.logprobs(seqs, { lora: false, microBatch: input.microBatch });
    const stepSeqs = seqs.map((s, i) => ({
      ...s,
      advantage: i % 2 ? -1 : 1,
      oldLogprobs: old[i],
      refLogprobs: ref[i],
    }));
    await t.step(stepSeqs, stepOptions);
    const forwardMs: number[] = [];
    const stepMs: number[] = [];
    let graphMs = 0;
    for (let r = 0; r < input.repeats; r++) {
      let s0 = performance.now();
      await t.logprobs(seqs, { lora: true, microBatch: input.microBatch });
      forwardMs.push(performance.now() - s0);
      s0 = performance.now();
      const res = await t.step(stepSeqs, stepOptions);
      stepMs.push(performance.now() - s0);
      graphMs += res.graphMs;
      if (res.skipped) notes.push(`${gradMode}: step ${r} skipped: ${res.reason}`);
      log(
        `${gradMode}: forward ${(forwardMs.at(-1)! / 1000).toFixed(2)} s, step ${(stepMs.at(-1)! / 1000).toFixed(2)} s (${tokensPerPass} tokens)`,
      );
    }
    return {
      arch: t.info.arch,
      weightType: t.info.weightType,
      notes,
      result: {
        gradMode,
        loadMs,
        tokensPerPass,
        forwardMs,
        forwardTokPerS: tokensPerPass / (median(forwardMs) / 1000),
        stepMs,
        stepTokPerS: tokensPerPass / (median(stepMs) / 1000),
        memory: t.memory(),
        peakRssBytes: process.resourceUsage().maxRSS * 1024,
        ...planFigures(t.memoryPlan(stepSeqs, { microBatch: input.microBatch, withKl: true })),
        graphShare: graphMs / stepMs.reduce((a, b) => a + b, 0),
      },
    };
  } finally {
    t.dispose();
  }
}

function planFigures(p: StepPlan) {
  return {
    predictedPeakRssBytes: p.predictedPeakRss,
    plan: {
      microBatches: p.microBatches.length,
      trainerBytes: p.trainerBytes,
      budget: p.budget,
      headChunk: p.headChunk,
    },
  };
}

if (process.argv[2] === CASE_FLAG) {
  runTrainCase(CaseInputSchema.parse(JSON.parse(process.argv[3] ?? "")), (l) =>
    process.stderr.write(`${l}\n`),
  )
    .then((r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exit(0);
    })
    .catch((e: unknown) => {
      process.stderr.write(`bench train case failed: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    });
}
