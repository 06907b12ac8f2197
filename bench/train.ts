import { existsSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { writeRandomModel } from "../src/modelgen/index.js";
import { cacheDir } from "../src/modelgen/tokenizer.js";
import {
  LORA_TARGETS,
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
import { ggufShape } from "./anchors/gguf-shape.js";
import { type PeftCaseResult, peftAvailability, resolvePython, runPeftCase } from "./anchors/peft.js";
import { runJsonChild } from "./child-json.js";
import { machineInfo, modelInfo, versions } from "./rollouts/machine.js";

/**
 * Native trainer throughput: forward (log-probs) and GRPO training-step tokens/s and peak memory on a
 * random-weight model of a real shape (Q8_0, LoRA on all seven projections), per batch shape
 * (`--cases 1x64+512,...`), for either way of taking the gradient through frozen weights (mul_mat with
 * a transposed copy vs ggml's out_prod), optionally side by side with PyTorch + PEFT on the same shape,
 * threads and tokens (`--anchor peft`). Every case runs in its own child process, so each peak RSS is
 * its own and a case that aborts is reported while the rest still run.
 */

export const DEFAULT_TRAIN_BENCH_PRESET = "qwen3-0.6b";
/** Presets `--preset` offers (the shapes the targets are stated on, plus the small test ones). */
export const TRAIN_BENCH_PRESETS = [
  "tiny",
  "85m",
  "qwen3-0.6b",
  "qwen3-4b",
  "llama-3.1-8b",
  "gemma3-tiny",
  "gemma3-4b",
] as const;
const MODEL_SEED = 1;

export const BatchCaseSchema = z.object({
  seqs: z.number().int().positive(),
  promptTokens: z.number().int().positive(),
  completionTokens: z.number().int().positive(),
});
export type BatchCase = z.infer<typeof BatchCaseSchema>;

/** "2x32+32" = 2 sequences of 32 prompt + 32 completion tokens. */
export function parseBatchCases(s: string): BatchCase[] {
  const parts = s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
  if (parts.length === 0) throw new UserError(`--cases: no case in "${s}"`);
  return parts.map((p) => {
    const m = /^(\d+)x(\d+)\+(\d+)$/.exec(p);
    const n = m ? m.slice(1).map(Number) : [];
    if (!m || n.some((x) => x <= 0))
      throw new UserError(
        `--cases: "${p}" is not SEQSxPROMPT+COMPLETION with positive numbers (e.g. 1x64+512)`,
      );
    return { seqs: n[0], promptTokens: n[1], completionTokens: n[2] };
  });
}

export const caseLabel = (c: BatchCase) => `${c.seqs}x${c.promptTokens}+${c.completionTokens}`;

export const TrainBenchOptionsSchema = z.object({
  /** A GGUF to train on; else the preset's random-weight model (written to the cache when missing). */
  model: z.string().optional(),
  preset: z.enum(TRAIN_BENCH_PRESETS).optional(),
  backend: z.enum(["cpu", "cuda"]).default("cpu"),
  threads: z.number().int().positive().default(defaultThreads),
  rank: z.number().int().positive().default(16),
  cases: z
    .array(BatchCaseSchema)
    .min(1)
    .default([{ seqs: 2, promptTokens: 32, completionTokens: 32 }]),
  /**
   * Sequences per micro-batch of the native trainer: "auto" lets its memory plan choose, a number is an
   * upper bound (the anchor takes each case in one batch).
   */
  microBatch: z.union([z.number().int().positive(), z.literal("auto")]).default("auto"),
  /** The trainer's memory budget in GiB (default: what is free when it opens). */
  trainMemoryGiB: z.number().positive().optional(),
  repeats: z.number().int().positive().default(3),
  /** Untimed steps before the timed ones (graph allocation happens on first use). */
  warmup: z.number().int().nonnegative().default(1),
  gradModes: z
    .array(z.enum(["transpose", "outprod"]))
    .min(1)
    .default(["transpose", "outprod"]),
  anchor: z.enum(["peft"]).optional(),
  /** Python with torch, transformers and peft (default CATRL_PYTHON, else python3). */
  python: z.string().optional(),
  out: z.string().optional(),
});
export type TrainBenchOptions = z.input<typeof TrainBenchOptionsSchema>;

type Failed = { ok: false; error: string };

export type CatrlCaseMetrics = {
  ok: true;
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
};

export type TrainBenchCase = BatchCase & { label: string } & (
    | ({ variant: "catrl"; gradMode: "transpose" | "outprod" } & (CatrlCaseMetrics | Failed))
    | ({ variant: "peft" } & (({ ok: true } & PeftCaseResult) | Failed))
  );

/** Ours against the anchor on one batch shape (the first grad mode that ran). */
export type TrainBenchComparison = {
  label: string;
  gradMode: "transpose" | "outprod";
  stepTokPerS: { catrl: number; peft: number; ratio: number };
  peakRssBytes: { catrl: number; peft: number; ratio: number };
};

export type TrainBenchResult = {
  benchmark: "train";
  date: string;
  /** Load average when the run began (`machine.loadavg` is at its end). */
  loadavgStart: number[];
  machine: ReturnType<typeof machineInfo>;
  versions: ReturnType<typeof versions> & {
    ggml: string;
    anchor?: { python: string; torch: string; transformers: string; peft: string };
  };
  model: {
    path: string;
    bytes: number;
    sha256: string;
    preset: string | null;
    seed: number | null;
    arch: string;
    weightType: string;
  };
  backend: "cpu" | "cuda";
  threads: number;
  lora: { rank: number; alpha: number; targets: string[] };
  microBatch: number | "auto";
  trainMemoryGiB: number | null;
  repeats: number;
  warmup: number;
  stepOptions: StepOptions;
  cases: TrainBenchCase[];
  comparisons: TrainBenchComparison[];
  /** stepTokPerS(transpose) / stepTokPerS(outprod) on the first case, when both ran. */
  transposeSpeedup: number | null;
  /** False while cases are still running (the file is rewritten after each case). */
  complete: boolean;
  notes: string[];
  outFile: string;
};

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Where `--preset` models live: outside the repo, shared by every checkout on the machine. */
export function presetModelPath(preset: string): string {
  return path.join(cacheDir(), "models", `${preset}-q8_0-seed${MODEL_SEED}.gguf`);
}

async function ensurePresetModel(preset: string, log: (l: string) => void): Promise<string> {
  const file = presetModelPath(preset);
  if (existsSync(file)) return file;
  log(`writing ${file} (random ${preset}-shape weights, Q8_0, seed ${MODEL_SEED})...`);
  await mkdir(path.dirname(file), { recursive: true });
  // written beside and renamed, so that an interrupted write is never taken for a model
  const tmp = `${file}.tmp-${process.pid}`;
  await writeRandomModel({ preset, type: "q8_0", seed: MODEL_SEED, out: tmp });
  await rename(tmp, file);
  return file;
}

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
  const loadavgStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const avail = trainerAvailability();
  if (!avail.ok) throw new UserError(`bench train: training unavailable: ${avail.reason}`);
  const root = packageRoot();
  const notes: string[] = [];
  let modelPath: string;
  let preset: string | null = null;
  if (o.model) {
    modelPath = path.resolve(o.model);
    if (!existsSync(modelPath)) throw new UserError(`${modelPath}: model file not found`);
  } else {
    preset = o.preset ?? DEFAULT_TRAIN_BENCH_PRESET;
    modelPath = await ensurePresetModel(preset, log);
  }
  const lora = { rank: o.rank, alpha: 2 * o.rank, targets: [...LORA_TARGETS] };
  const stepOptions = TRAIN_STEP_OPTIONS(o.microBatch);

  let python: string | undefined;
  let anchorVersions: TrainBenchResult["versions"]["anchor"];
  if (o.anchor === "peft") {
    python = resolvePython(o.python);
    const pa = peftAvailability(python);
    if (pa.ok) log(`anchor: ${python} (torch ${pa.versions.torch}, peft ${pa.versions.peft})`);
    else {
      notes.push(`anchor peft skipped: ${pa.reason}`);
      log(`note: anchor peft skipped: ${pa.reason}`);
      python = undefined;
    }
  }
  const shape = python ? await ggufShape(modelPath) : undefined;

  const cases: TrainBenchCase[] = [];
  let arch = "";
  let weightType = "";
  const nat = nativeAvailability();
  const outFile = path.resolve(root, o.out ?? path.join("bench", "results", `train-${os.hostname()}.json`));
  const model = await modelInfo(modelPath);
  const first = caseLabel(o.cases[0]);
  const stepOf = (g: string) => {
    const c = cases.find((x) => x.label === first && x.variant === "catrl" && x.gradMode === g && x.ok);
    return c?.ok ? c.stepTokPerS : undefined;
  };
  // Rewritten after every case, so that an interrupted run keeps what it measured.
  const save = async (complete: boolean): Promise<TrainBenchResult> => {
    const tr = stepOf("transpose");
    const op = stepOf("outprod");
    const result: TrainBenchResult = {
      benchmark: "train",
      date: new Date().toISOString(),
      loadavgStart,
      machine: machineInfo(),
      versions: {
        ...versions(),
        ggml: nat.ok ? `${nat.ggmlVersion} (${nat.ggmlCommit})` : "unavailable",
        ...(anchorVersions ? { anchor: anchorVersions } : {}),
      },
      model: { ...model, preset, seed: preset ? MODEL_SEED : null, arch, weightType },
      backend: o.backend,
      threads: o.threads,
      lora,
      microBatch: o.microBatch,
      trainMemoryGiB: o.trainMemoryGiB ?? null,
      repeats: o.repeats,
      warmup: o.warmup,
      stepOptions,
      cases,
      comparisons: compareToAnchor(cases),
      transposeSpeedup: tr && op ? tr / op : null,
      complete,
      notes,
      outFile,
    };
    await mkdir(path.dirname(outFile), { recursive: true });
    await writeFile(`${outFile}.tmp`, `${JSON.stringify(result, null, 2)}\n`);
    await rename(`${outFile}.tmp`, outFile);
    return result;
  };
  // Interleaved: every batch shape runs ours then the anchor before the next shape, so that a change
  // in the machine's load hits both sides of a comparison alike.
  for (const bc of o.cases) {
    const label = caseLabel(bc);
    for (const gradMode of o.gradModes) {
      log(`case ${label}, catrl ${gradMode}...`);
      const input: CaseInput = {
        modelPath,
        backend: o.backend,
        threads: o.threads,
        rank: o.rank,
        ...bc,
        microBatch: o.microBatch,
        trainMemoryGiB: o.trainMemoryGiB,
        repeats: o.repeats,
        warmup: o.warmup,
        gradMode,
      };
      const r = await runJsonChild(process.execPath, [caseScript(), CASE_FLAG, JSON.stringify(input)], {
        log,
      });
      const out = r.ok ? CaseOutputSchema.safeParse(r.value) : undefined;
      if (out?.success) {
        arch = out.data.arch;
        weightType = out.data.weightType;
        notes.push(...out.data.notes);
        cases.push({ ...bc, label, variant: "catrl", gradMode, ...out.data.result });
      } else {
        const error = r.ok ? "the case printed an unexpected result" : r.error;
        notes.push(`${label} catrl ${gradMode}: ${error}`);
        log(`case ${label}, catrl ${gradMode} failed: ${error}`);
        cases.push({ ...bc, label, variant: "catrl", gradMode, ok: false, error });
      }
      await save(false);
    }
    if (python && shape) {
      log(`case ${label}, peft...`);
      const r = await runPeftCase(
        {
          python,
          shape,
          device: o.backend,
          threads: o.threads,
          ...bc,
          rank: lora.rank,
          alpha: lora.alpha,
          targets: lora.targets,
          repeats: o.repeats,
          warmup: o.warmup,
          step: stepOptions,
        },
        log,
      );
      if (r.ok) {
        anchorVersions = r.result.versions;
        cases.push({ ...bc, label, variant: "peft", ...r.result, ok: true });
      } else {
        notes.push(`${label} peft: ${r.error}`);
        log(`case ${label}, peft failed: ${r.error}`);
        cases.push({ ...bc, label, variant: "peft", ok: false, error: r.error });
      }
      await save(false);
    }
  }
  return save(true);
}

/** Per batch shape where both ran: ours (the first grad mode that succeeded) over the anchor. */
export function compareToAnchor(cases: TrainBenchCase[]): TrainBenchComparison[] {
  const out: TrainBenchComparison[] = [];
  for (const label of new Set(cases.map((c) => c.label))) {
    const ours = cases.find((c) => c.label === label && c.variant === "catrl" && c.ok);
    const peft = cases.find((c) => c.label === label && c.variant === "peft" && c.ok);
    if (!ours?.ok || ours.variant !== "catrl" || !peft?.ok || peft.variant !== "peft") continue;
    out.push({
      label,
      gradMode: ours.gradMode,
      stepTokPerS: {
        catrl: ours.stepTokPerS,
        peft: peft.stepTokPerS,
        ratio: ours.stepTokPerS / peft.stepTokPerS,
      },
      peakRssBytes: {
        catrl: ours.peakRssBytes,
        peft: peft.peakRssBytes,
        ratio: ours.peakRssBytes / peft.peakRssBytes,
      },
    });
  }
  return out;
}

export function formatTrainTable(r: TrainBenchResult): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const rows = [
    ["case", "variant", "load s", "forward tok/s", "step tok/s", "W^T", "compute", "peak RSS", "plan"],
    ...r.cases.map((c) => {
      const variant =
        c.variant === "peft"
          ? `PEFT ${c.ok ? c.dtype : ""}`.trim()
          : c.gradMode === "transpose"
            ? "mul_mat(W^T, g)"
            : "out_prod(W, g^T)";
      if (!c.ok) return [c.label, variant, "failed", "-", "-", "-", "-", "-", "-"];
      return [
        c.label,
        variant,
        (c.loadMs / 1000).toFixed(1),
        c.forwardTokPerS.toFixed(1),
        c.stepTokPerS.toFixed(1),
        c.variant === "catrl" ? mib(c.memory.transposed) : "-",
        c.variant === "catrl" ? mib(c.memory.compute) : "-",
        mib(c.peakRssBytes),
        c.variant === "catrl" ? mib(c.predictedPeakRssBytes) : "-",
      ];
    }),
  ];
  const w = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const table = rows.map((row) => row.map((x, i) => x.padStart(w[i])).join("  ")).join("\n");
  const cmp = r.comparisons.map(
    (c) =>
      `${c.label}: catrl/PEFT step tok/s ${c.stepTokPerS.ratio.toFixed(2)}x, peak RSS ${c.peakRssBytes.ratio.toFixed(2)}x`,
  );
  const failed = r.cases.flatMap((c) => (c.ok ? [] : [`${c.label} ${c.variant}: ${c.error}`]));
  return [table, ...cmp, ...failed].join("\n");
}

const CaseInputSchema = BatchCaseSchema.extend({
  modelPath: z.string(),
  backend: z.enum(["cpu", "cuda"]),
  threads: z.number().int().positive(),
  rank: z.number().int().positive(),
  microBatch: z.union([z.number().int().positive(), z.literal("auto")]),
  trainMemoryGiB: z.number().positive().optional(),
  repeats: z.number().int().positive(),
  warmup: z.number().int().nonnegative(),
  gradMode: z.enum(["transpose", "outprod"]),
});
type CaseInput = z.infer<typeof CaseInputSchema>;
const CaseOutputSchema = z.object({
  arch: z.string(),
  weightType: z.string(),
  notes: z.array(z.string()),
  result: z.object({
    ok: z.literal(true),
    loadMs: z.number(),
    tokensPerPass: z.number().int(),
    forwardMs: z.array(z.number()),
    forwardTokPerS: z.number(),
    stepMs: z.array(z.number()),
    stepTokPerS: z.number(),
    memory: z.object({ weights: z.number(), transposed: z.number(), lora: z.number(), compute: z.number() }),
    peakRssBytes: z.number(),
    predictedPeakRssBytes: z.number(),
    plan: z.object({
      microBatches: z.number().int(),
      trainerBytes: z.number(),
      budget: z.number(),
      headChunk: z.number().int(),
    }),
    graphShare: z.number(),
  }),
});
type CaseOutput = z.infer<typeof CaseOutputSchema>;

export const TRAIN_STEP_OPTIONS = (microBatch: number | "auto"): StepOptions => ({
  lr: 1e-4,
  beta: 0.01,
  clipEps: 0.2,
  microBatch,
  maxGradNorm: 1,
  weightDecay: 0,
});

const CASE_FLAG = "--catrl-train-bench-case";

/** This module's compiled file, which runs one case: under vitest this module is TypeScript. */
function caseScript(): string {
  const self = fileURLToPath(import.meta.url);
  return self.endsWith(".ts") ? path.join(packageRoot(), "dist", "bench", "train.js") : self;
}

/** Token ids spread over the vocabulary (peft_step.py feeds the same); content does not matter for speed. */
export function benchSequences(c: BatchCase, nVocab: number): TokenSeq[] {
  return Array.from({ length: c.seqs }, (_, s) => ({
    prompt: Array.from({ length: c.promptTokens }, (_, j) => (7919 * (s * 131 + j + 1)) % nVocab),
    completion: Array.from({ length: c.completionTokens }, (_, j) => (104729 * (s * 17 + j + 3)) % nVocab),
  }));
}

async function runTrainCase(input: CaseInput, log: (line: string) => void): Promise<CaseOutput> {
  const { gradMode } = input;
  const notes: string[] = [];
  const stepOptions = TRAIN_STEP_OPTIONS(input.microBatch);
  log(
    `${gradMode}: loading ${path.basename(input.modelPath)} (${input.backend}, ${input.threads} thread(s))...`,
  );
  const t0 = performance.now();
  const t = await openTrainer({
    modelPath: input.modelPath,
    backend: input.backend,
    threads: input.threads,
    seed: 1,
    gradMode,
    maxSeqLen: Math.max(4096, input.promptTokens + input.completionTokens),
    ...(input.trainMemoryGiB ? { trainMemory: input.trainMemoryGiB * 2 ** 30 } : {}),
    lora: { rank: input.rank, alpha: 2 * input.rank, targets: [...LORA_TARGETS] },
  });
  const loadMs = performance.now() - t0;
  notes.push(...t.notes.map((n) => `${gradMode}: ${n}`));
  try {
    const seqs = benchSequences(input, t.info.nVocab);
    const tokensPerPass = seqs.reduce((a, s) => a + s.prompt.length + s.completion.length - 1, 0);
    // old/ref log-probs from a forward pass each, as a GRPO step computes them; the timed step then
    // measures the update alone (forward + backward + AdamW). Untimed warm-up steps first: graph
    // allocation happens on first use.
    const old = await t.logprobs(seqs, { lora: true, microBatch: input.microBatch });
    const ref = await t.logprobs(seqs, { lora: false, microBatch: input.microBatch });
    const stepSeqs = seqs.map((s, i) => ({
      ...s,
      advantage: i % 2 ? -1 : 1,
      oldLogprobs: old[i],
      refLogprobs: ref[i],
    }));
    for (let w = 0; w < input.warmup; w++) await t.step(stepSeqs, stepOptions);
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
      for (const q of res.skippedSequences) notes.push(`${gradMode}: step ${r}: ${q.message}`);
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
        ok: true,
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
