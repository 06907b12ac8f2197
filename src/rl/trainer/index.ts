/**
 * Native LoRA trainer for CaT-RL: GRPO updates of a LoRA adapter on a local GGUF base model, computed
 * by the addon in native/ on node-llama-cpp's own ggml (one ggml in the process).
 *
 * ```ts
 * if (!trainerAvailability().ok) ...                    // one-line reason when the addon is missing
 * const t = await openTrainer({ modelPath, backend: "cpu", threads: 1, seed: 1,
 *                               lora: { rank: 16, alpha: 32, targets: ["q", "k", "v", "o", "gate", "up", "down"] } });
 * // sequences: prompt token ids as fed to the model (BOS included) + completion token ids
 * const lp = await t.logprobs(seqs, { lora: true });     // Float32Array per sequence, one per completion token
 * const r = await t.step(seqs.map((s, i) => ({ ...s, advantage: adv[i] })),
 *                        { lr: 1e-4, beta: 0.01, clipEps: 0.2, maxGradNorm: 1, weightDecay: 0, temperature: 0.7 });
 * // r.skippedSequences: what the memory plan left out (one line each); r.plan.predictedPeakRss
 * const plan = t.memoryPlan(seqs);                       // the same plan without running anything
 * const file = await t.exportVersion(dir);               // new llama.cpp LoRA GGUF per version
 * await t.saveCheckpoint(ckptDir);                       // openTrainer({ ..., resumeFrom: ckptDir })
 * t.dispose();
 * ```
 *
 * Loss per step (GRPO, one update per batch): with logp the log-probs of softmax(logits / temperature)
 * (the rollouts' sampling temperature), for sequence i with advantage A_i and completion tokens j, r_ij = exp(logp_ij - old_ij), L = mean_i mean_j [ -min(r A, clip(r, 1-eps, 1+eps) A)
 * + beta * (exp(ref - logp) - (ref - logp) - 1) ]. Prompt tokens are masked. `old` defaults to the
 * trainer's own log-probs under the current adapter (ratio 1 on the first update of a batch), `ref`
 * to the base with LoRA off; both are computed by the trainer when not given, because node-llama-cpp's
 * quantized kernels differ from the trainer's by up to ~3e-2 nats. Micro-batches (sized by the memory
 * plan, memory-plan.ts; computed layer by layer, native/README.md) accumulate gradients;
 * then global-norm clipping and AdamW. A step whose loss or gradient norm is not finite is reported
 * with skipped: true and not applied (parameters and moments unchanged).
 */
import { existsSync, statSync } from "node:fs";
import { rename } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { UserError } from "../../util/errors.js";
import { readCheckpoint, writeCheckpoint } from "./checkpoint.js";
import {
  activationBytes,
  availableMemoryBytes,
  computeBytes,
  type FixedMemory,
  gib,
  groupMicroBatches,
  headChunkFor,
  PLAN_GRAIN,
  type PlanSizes,
  PlanSizesSchema,
  type StepPlan,
  workBytes,
} from "./memory-plan.js";
import {
  AccumulateResultSchema,
  AdamWResultSchema,
  cpuLibDir,
  cudaLibPath,
  ForwardResultSchema,
  f32,
  GradsSchema,
  MemorySchema,
  type NativeDescribe,
  NativeDescribeSchema,
  type NativeState,
  NativeStateSchema,
  type NativeTrainer,
  nativeAvailability,
  nativeModule,
} from "./native.js";
import { lossInputs, packBatch, stepStats, type TokenSeq } from "./pack.js";
import { kaimingUniformA, TrainerRng } from "./rng.js";

export type { MicroBatchPlan, StepPlan } from "./memory-plan.js";
export type { TokenSeq } from "./pack.js";

export const LORA_TARGETS = ["q", "k", "v", "o", "gate", "up", "down"] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export const TrainerOptionsSchema = z.object({
  modelPath: z.string().min(1),
  backend: z.enum(["cpu", "cuda"]).default("cpu"),
  threads: z.number().int().positive(),
  seed: z.number().int().nonnegative().default(0),
  lora: z.object({
    rank: z.number().int().positive().max(1024),
    alpha: z.number().positive(),
    targets: z.array(z.enum(LORA_TARGETS)).min(1),
  }),
  /** Longest sequence (prompt + completion) accepted; longer ones are refused. */
  maxSeqLen: z.number().int().positive().default(4096),
  /**
   * How the gradient crosses frozen weights: "transpose" = mul_mat(W^T, g) with a transposed copy of
   * each weight made at load (Q8_0 for quantized bases); "outprod" = ggml's out_prod(W, g^T). See
   * bench/train.ts for the measured difference (transpose is the faster on CPU).
   */
  gradMode: z.enum(["transpose", "outprod"]).default("transpose"),
  /**
   * Bytes the trainer may use (weights, transposed copies, LoRA state, activations, compute buffers);
   * default: the memory free when it opens (CPU: MemAvailable; CUDA: the GPU's free memory). The
   * memory plan (memory-plan.ts) sizes micro-batches to it, falls back from "transpose" to "outprod"
   * when the transposed copies do not fit, and leaves out a sequence that cannot fit even alone.
   */
  trainMemory: z.number().positive().optional(),
  /**
   * "layers" (default): a no-grad forward keeps each layer's input, the backward recomputes one layer
   * at a time, the output head runs over chunks of positions; memory is bounded by one layer.
   * "whole": one graph for the whole model (every layer's activations and the full [n_vocab x N]
   * head alive at once); kept to check the layer-by-layer gradients against.
   */
  graph: z.enum(["layers", "whole"]).default("layers"),
  /** Output-head positions per chunk (tests, tuning); default HEAD_CHUNK_BYTES / (4 n_vocab). */
  headChunk: z.number().int().positive().optional(),
  adamw: z
    .object({ beta1: z.number().min(0).lt(1), beta2: z.number().min(0).lt(1), eps: z.number().positive() })
    .default({ beta1: 0.9, beta2: 0.999, eps: 1e-8 }),
  /** A checkpoint directory written by saveCheckpoint: parameters, moments, step and RNG state. */
  resumeFrom: z.string().optional(),
});
export type TrainerOptions = z.input<typeof TrainerOptionsSchema>;

export const StepOptionsSchema = z.object({
  lr: z.number().nonnegative(),
  beta: z.number().nonnegative(),
  clipEps: z.number().positive(),
  /**
   * Sequences per micro-batch (gradients accumulate across micro-batches; sequences in one are padded
   * to the longest). "auto" (default): as many as the memory plan fits, up to AUTO_MAX_SEQS sequences
   * and AUTO_MAX_ROWS rows. A number is an upper bound: the plan still splits what does not fit.
   */
  microBatch: z.union([z.number().int().positive(), z.literal("auto")]).default("auto"),
  /**
   * The temperature the rollouts were sampled at: the policy's log-probs (ratio and KL alike) are of
   * softmax(logits / temperature), as TRL's GRPOTrainer computes them. Default 1 (raw logits).
   */
  temperature: z.number().positive().default(1),
  /** 0 disables clipping. */
  maxGradNorm: z.number().nonnegative(),
  weightDecay: z.number().nonnegative(),
});
export type StepOptions = z.input<typeof StepOptionsSchema>;

/**
 * graph "whole" keeps every node of the model's forward and backward in one graph; at 1,088 rows on
 * the Qwen3-0.6B shape ggml's allocator aborts ("out of free blocks"), so it is refused above this.
 */
export const WHOLE_GRAPH_MAX_ROWS = 576;
type StepOpts = z.infer<typeof StepOptionsSchema>;

const TokenIds = z.array(z.number().int().nonnegative());
const StepSeqSchema = z.object({
  prompt: TokenIds.min(1),
  completion: TokenIds,
  advantage: z.number().finite(),
  oldLogprobs: f32.optional(),
  refLogprobs: f32.optional(),
});
export type StepSeq = z.input<typeof StepSeqSchema>;
const SeqSchema = z.object({ prompt: TokenIds.min(1), completion: TokenIds });

export interface StepResult {
  /** Mean over sequences of the per-token loss (what was differentiated). */
  loss: number;
  /** Mean over sequences of the per-token k3 KL estimate to the reference (0 when beta = 0 and no ref given). */
  kl: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  clipFraction: number;
  skipped: boolean;
  reason?: string;
  /** Completion tokens in the loss. */
  tokens: number;
  ms: number;
  /** Applied updates so far (the AdamW step count). */
  step: number;
  /**
   * Sequences left out because they cannot fit the memory budget even alone, each with its one-line
   * message (length and budget); the step went on without them.
   */
  skippedSequences: { index: number; tokens: number; message: string }[];
  /** The memory plan the step ran under (micro-batches, predicted peak RSS). */
  plan: StepPlan;
  /** Of ms: building + allocating graphs vs computing them (both summed over every pass). */
  graphMs: number;
  computeMs: number;
}

/**
 * Whether training can run here. `reason` is one line saying why not (addon not built, failed to load,
 * ggml version mismatch), without a prefix, e.g. "the native trainer is not built (...)".
 */
export function trainerAvailability(): { ok: true } | { ok: false; reason: string } {
  const a = nativeAvailability();
  return a.ok ? { ok: true } : a;
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new UserError(`${what}: ${i?.path.join(".") || "value"}: ${i?.message}`);
  }
  return r.data;
}

export class Trainer {
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;
  private readonly planCache = new Map<string, PlanSizes>();

  /** @internal use openTrainer */
  constructor(
    private readonly native: NativeTrainer,
    readonly info: NativeDescribe,
    readonly options: z.infer<typeof TrainerOptionsSchema>,
    private rng: TrainerRng,
    private applied: number,
    private skippedSteps: number,
    /** Bytes the trainer may use (TrainerOptions.trainMemory or what was free at open). */
    readonly memoryBudget: number,
    private readonly baseRss: number,
    /** Decisions the memory plan took at open, one line each (e.g. the out_prod fallback). */
    readonly notes: string[],
  ) {}

  /** Applied updates so far. */
  get stepCount(): number {
    return this.applied;
  }

  /** How the gradient crosses frozen weights now (the plan may have fallen back to outprod). */
  get gradMode(): "transpose" | "outprod" {
    return this.memory().gradMode;
  }

  // The addon runs one operation at a time; calls queue here so callers may overlap them freely.
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.disposed) throw new Error("trainer was disposed");
      return fn();
    });
    this.queue = run.catch(() => {});
    return run;
  }

  private checkSeq(s: { prompt: number[]; completion: number[] }, i: number): void {
    const len = s.prompt.length + s.completion.length;
    if (len > this.options.maxSeqLen)
      throw new UserError(`sequence ${i}: ${len} tokens exceed maxSeqLen ${this.options.maxSeqLen}`);
    for (const t of s.prompt.concat(s.completion))
      if (t >= this.info.nVocab)
        throw new UserError(`sequence ${i}: token id ${t} is outside the vocabulary (${this.info.nVocab})`);
  }

  private get whole(): boolean {
    return this.options.graph === "whole";
  }

  private get headChunk(): number {
    return this.whole ? 0 : (this.options.headChunk ?? headChunkFor(this.info.nVocab));
  }

  // Graph sizes grow with rows and targets, so planning at both rounded up to PLAN_GRAIN is a slight
  // over-estimate that lets one measurement serve many nearby shapes (a step plans every grouping it tries).
  private planSizes(rowsPerSeq: number, nSeq: number, targets: number, withKl: boolean): PlanSizes {
    const up = (n: number) => Math.ceil(n / PLAN_GRAIN) * PLAN_GRAIN;
    const tm = up(rowsPerSeq);
    const t = this.whole ? up(targets) : Math.min(up(targets), this.headChunk);
    const key = `${tm}x${nSeq}x${t}x${withKl}`;
    let p = this.planCache.get(key);
    if (!p) {
      p = PlanSizesSchema.parse(
        this.native.plan({
          rows: tm * nSeq,
          nSeq,
          targets: t,
          headChunk: this.headChunk,
          withKl,
          whole: this.whole,
        }),
      );
      this.planCache.set(key, p);
    }
    return p;
  }

  private fixedMemory(): FixedMemory {
    const m = this.memory();
    const params = this.info.lora.reduce((a, t) => a + (t.nIn + t.nOut) * this.options.lora.rank, 0);
    return {
      weights: m.weights,
      transposed: m.transposed,
      lora: m.lora + 8 * 4 * params,
      baseRss: this.baseRss,
      loadScratch: m.transposed > 0 ? m.transposeScratch : 0,
    };
  }

  /**
   * The memory plan for a step over `seqs` (withGrad, the default) or a logprobs call: the
   * micro-batches, the sequences left out, the predicted peak RSS. Synchronous and cheap (graphs are
   * built and measured, nothing is computed or allocated); step() and logprobs() run under it.
   */
  memoryPlan(
    seqs: TokenSeq[],
    o: { microBatch?: number | "auto"; withGrad?: boolean; withKl?: boolean } = {},
  ): StepPlan {
    const withGrad = o.withGrad ?? true;
    const withKl = o.withKl ?? false;
    if (this.whole) {
      const rows = Math.max(0, ...seqs.map((s) => s.prompt.length + s.completion.length - 1));
      if (rows > WHOLE_GRAPH_MAX_ROWS)
        throw new UserError(
          `graph "whole" takes sequences of at most ${WHOLE_GRAPH_MAX_ROWS + 1} tokens (this one: ${rows + 1}); beyond, ggml's allocator can run out of free blocks: use graph "layers"`,
        );
    }
    const fixed = this.fixedMemory();
    const fixedBytes = fixed.weights + fixed.transposed + fixed.lora;
    const d = this.info;
    const allocated = this.memory().compute;
    const size = (rowsPerSeq: number, nSeq: number, targets: number) => {
      const rows = rowsPerSeq * nSeq;
      const p = this.planSizes(rowsPerSeq, nSeq, targets, withKl);
      return {
        activations: this.whole ? 0 : activationBytes(d, rows, targets, withGrad, this.headChunk),
        // the allocator's buffer only grows: what an earlier, larger graph took stays allocated
        compute: Math.max(allocated, computeBytes(p, withGrad, this.whole)) + workBytes(d, rows),
      };
    };
    const room = this.memoryBudget - fixedBytes;
    const { batches, skipped } = groupMicroBatches(
      seqs.map((s) => ({ rows: s.prompt.length + s.completion.length - 1, targets: s.completion.length })),
      { cap: o.microBatch ?? "auto", room, size },
    );
    const perMicroBatch = Math.max(0, ...batches.map((b) => b.activations + b.compute));
    const trainerBytes = fixedBytes + perMicroBatch;
    const loadPeak = fixed.weights + fixed.transposed + fixed.loadScratch;
    return {
      budget: this.memoryBudget,
      fixed,
      microBatches: batches,
      skipped: skipped.map((x) => {
        const tokens = seqs[x.index].prompt.length + seqs[x.index].completion.length;
        return {
          index: x.index,
          tokens,
          needs: fixedBytes + x.needs,
          message: `sequence ${x.index} (${tokens} tokens) needs ${gib(fixedBytes + x.needs)} to ${withGrad ? "train" : "score"}, over the trainer's memory budget of ${gib(this.memoryBudget)} (--train-memory); left out of this step`,
        };
      }),
      perMicroBatch,
      trainerBytes,
      predictedPeakRss: fixed.baseRss + Math.max(trainerBytes, loadPeak),
      headChunk: this.headChunk,
    };
  }

  /** @internal the plan's cached graph sizes, stale once the grad mode changes */
  forgetPlans(): void {
    this.planCache.clear();
  }

  private batchExtras(temperature: number) {
    return { temperature, whole: this.whole, headChunk: this.headChunk };
  }

  /**
   * Log-probabilities of each completion token (one Float32Array per sequence), of
   * softmax(logits / temperature) (default 1). A sequence that cannot fit the memory budget even
   * alone is refused with one line naming its length and the budget.
   */
  logprobs(
    seqs: TokenSeq[],
    opts: { lora: boolean; microBatch?: number | "auto"; temperature?: number },
  ): Promise<Float32Array[]> {
    const parsed = parse(z.array(SeqSchema), seqs, "logprobs");
    parsed.forEach((s, i) => {
      this.checkSeq(s, i);
    });
    const temperature = parse(z.number().positive().default(1), opts.temperature, "logprobs temperature");
    return this.serial(async () => {
      const r = await this.logprobsUnqueued(parsed, opts.lora, opts.microBatch ?? "auto", temperature);
      if (r.skipped.length) throw new UserError(`logprobs: ${r.skipped[0].message}`);
      return r.logps;
    });
  }

  private async logprobsUnqueued(
    seqs: TokenSeq[],
    lora: boolean,
    microBatch: number | "auto",
    temperature: number,
  ): Promise<{ logps: Float32Array[]; skipped: StepPlan["skipped"]; graphMs: number; computeMs: number }> {
    const out: Float32Array[] = seqs.map(() => new Float32Array(0));
    const todo = seqs.map((s, i) => ({ s, i })).filter((x) => x.s.completion.length > 0);
    const plan = this.memoryPlan(
      todo.map((x) => x.s),
      { microBatch, withGrad: false },
    );
    let graphMs = 0;
    let computeMs = 0;
    for (const mb of plan.microBatches) {
      const items = mb.seqs.map((g) => todo[g]);
      const batch = { ...packBatch(items.map((x) => x.s)), ...this.batchExtras(temperature) };
      const r = ForwardResultSchema.parse(await this.native.forward(batch, lora));
      graphMs += r.graphMs;
      computeMs += r.computeMs;
      let off = 0;
      for (const x of items) {
        out[x.i] = r.logp.slice(off, off + x.s.completion.length);
        off += x.s.completion.length;
      }
    }
    const skipped = plan.skipped.map((k) => ({ ...k, index: todo[k.index].i }));
    return { logps: out, skipped, graphMs, computeMs };
  }

  /** One GRPO update over `seqs` (see the module comment). */
  step(seqs: StepSeq[], opts: StepOptions): Promise<StepResult> {
    const o = parse(StepOptionsSchema, opts, "step options");
    const parsed = this.parseStepSeqs(seqs);
    return this.serial(() => this.stepUnqueued(parsed, o));
  }

  /**
   * Loss and gradient of a step's loss at the current parameters, without updating anything
   * (diagnostics and gradient checks). Same inputs as step().
   */
  lossAndGradient(
    seqs: StepSeq[],
    opts: StepOptions,
  ): Promise<{
    loss: number;
    grads: z.infer<typeof GradsSchema>;
    logprobs: Float32Array[];
    skippedSequences: StepResult["skippedSequences"];
  }> {
    const o = parse(StepOptionsSchema, opts, "step options");
    const parsed = this.parseStepSeqs(seqs);
    return this.serial(async () => {
      const r = await this.accumulateAll(parsed, o);
      const grads = GradsSchema.parse(this.native.getGrads());
      this.native.zeroGrad();
      return { loss: r.loss, grads, logprobs: r.logps, skippedSequences: r.plan.skipped };
    });
  }

  private parseStepSeqs(seqs: StepSeq[]): z.infer<typeof StepSeqSchema>[] {
    const parsed = parse(z.array(StepSeqSchema), seqs, "step");
    parsed.forEach((s, i) => {
      this.checkSeq(s, i);
      for (const [k, v] of [
        ["oldLogprobs", s.oldLogprobs],
        ["refLogprobs", s.refLogprobs],
      ] as const)
        if (v && v.length !== s.completion.length)
          throw new UserError(
            `step: sequence ${i}: ${k} has ${v.length} values for ${s.completion.length} completion tokens`,
          );
    });
    return parsed;
  }

  /**
   * Plans the step, fills in missing old/ref log-probs, then accumulates the gradient of every
   * micro-batch. Sequences the plan leaves out take no part (nor count in the mean).
   */
  private async accumulateAll(
    all: z.infer<typeof StepSeqSchema>[],
    o: StepOpts,
  ): Promise<{
    loss: number;
    logps: Float32Array[];
    seqs: z.infer<typeof StepSeqSchema>[];
    plan: StepPlan;
    graphMs: number;
    computeMs: number;
  }> {
    const withKl = o.beta > 0;
    const nonEmpty = all.map((s, i) => ({ s, i })).filter((x) => x.s.completion.length > 0);
    if (nonEmpty.length === 0) throw new UserError("step: no completion tokens to train on");
    const planned = this.memoryPlan(
      nonEmpty.map((x) => x.s),
      { microBatch: o.microBatch, withGrad: true, withKl },
    );
    const plan: StepPlan = {
      ...planned,
      skipped: planned.skipped.map((k) => ({
        ...k,
        index: nonEmpty[k.index].i,
        message: k.message.replace(/^sequence \d+/, `sequence ${nonEmpty[k.index].i}`),
      })),
    };
    const left = new Set(planned.skipped.map((k) => k.index));
    const seqs = nonEmpty.filter((_, j) => !left.has(j)).map((x) => x.s);
    if (seqs.length === 0) return { loss: Number.NaN, logps: [], seqs, plan, graphMs: 0, computeMs: 0 };
    let graphMs = 0;
    let computeMs = 0;
    // old / reference log-probs the caller did not supply, from this trainer's own forward pass
    const fill = async (key: "oldLogprobs" | "refLogprobs", lora: boolean) => {
      const need = seqs.filter((s) => !s[key]);
      if (!need.length) return;
      const r = await this.logprobsUnqueued(need, lora, o.microBatch, o.temperature);
      graphMs += r.graphMs;
      computeMs += r.computeMs;
      need.forEach((s, i) => {
        s[key] = r.logps[i];
      });
    };
    await fill("oldLogprobs", true);
    if (withKl) await fill("refLogprobs", false);
    // the micro-batches of the plan, re-indexed to the sequences kept
    const keptIndex = new Map<number, number>();
    nonEmpty.forEach((_, j) => {
      if (!left.has(j)) keptIndex.set(j, keptIndex.size);
    });
    let loss = 0;
    const logps: Float32Array[] = seqs.map(() => new Float32Array(0));
    this.native.zeroGrad();
    for (const mb of planned.microBatches) {
      const idx = mb.seqs.map((j) => keptIndex.get(j)!);
      const items = idx.map((k) => seqs[k]);
      const batch = {
        ...packBatch(items),
        ...this.batchExtras(o.temperature),
        ...lossInputs(
          items.map((s) => ({
            completionLength: s.completion.length,
            advantage: s.advantage,
            old: s.oldLogprobs!,
            ref: withKl ? s.refLogprobs : undefined,
          })),
          { beta: o.beta, clipEps: o.clipEps, nSeqsInStep: seqs.length },
        ),
      };
      const r = AccumulateResultSchema.parse(await this.native.accumulate(batch));
      graphMs += r.graphMs;
      computeMs += r.computeMs;
      loss += r.loss;
      let off = 0;
      idx.forEach((k, n) => {
        logps[k] = r.logp.slice(off, off + items[n].completion.length);
        off += items[n].completion.length;
      });
    }
    return { loss, logps, seqs, plan, graphMs, computeMs };
  }

  private async stepUnqueued(all: z.infer<typeof StepSeqSchema>[], o: StepOpts): Promise<StepResult> {
    const t0 = performance.now();
    const { loss, logps, seqs, plan, graphMs, computeMs } = await this.accumulateAll(all, o);
    const withKl = o.beta > 0;
    const skippedSequences = plan.skipped.map(({ index, tokens, message }) => ({ index, tokens, message }));
    if (seqs.length === 0) {
      this.skippedSteps++;
      this.native.zeroGrad();
      return {
        loss: Number.NaN,
        kl: 0,
        gradNorm: Number.NaN,
        clipFraction: 0,
        skipped: true,
        reason: `every sequence is over the trainer's memory budget (${gib(this.memoryBudget)})`,
        tokens: 0,
        ms: performance.now() - t0,
        step: this.applied,
        skippedSequences,
        plan,
        graphMs,
        computeMs,
      };
    }
    const lossFinite = Number.isFinite(loss);
    const ad = AdamWResultSchema.parse(
      await this.native.applyAdamW({
        lr: o.lr,
        ...this.options.adamw,
        weightDecay: o.weightDecay,
        maxGradNorm: o.maxGradNorm,
        step: this.applied + 1,
        apply: lossFinite,
      }),
    );
    let reason: string | undefined;
    if (!lossFinite) reason = `loss is not finite (${loss})`;
    else if (!ad.applied) reason = `gradient norm is not finite (${ad.gradNorm})`;
    if (ad.applied) this.applied++;
    else this.skippedSteps++;
    const stats = stepStats(
      seqs.map((s, i) => ({
        logp: logps[i],
        old: s.oldLogprobs!,
        ref: withKl ? s.refLogprobs : undefined,
        advantage: s.advantage,
      })),
      o.clipEps,
    );
    return {
      loss,
      kl: stats.kl,
      gradNorm: ad.gradNorm,
      clipFraction: stats.clipFraction,
      skipped: !ad.applied,
      ...(reason ? { reason } : {}),
      tokens: stats.tokens,
      ms: performance.now() - t0,
      step: this.applied,
      skippedSequences,
      plan,
      graphMs,
      computeMs,
    };
  }

  /** Writes the adapter in llama.cpp's LoRA GGUF format (atomically: temp file, then rename). */
  exportAdapter(file: string): Promise<void> {
    return this.serial(async () => {
      const tmp = `${file}.tmp-${process.pid}`;
      this.native.exportAdapter(tmp);
      await rename(tmp, file);
    });
  }

  /**
   * Exports to a new file per version, `<dir>/<prefix>-step<NNNNNN>[-k].gguf`: node-llama-cpp caches
   * adapters by path, so a version must never reuse a file name. Returns the path.
   */
  async exportVersion(dir: string, prefix = "adapter"): Promise<string> {
    const stem = `${prefix}-step${String(this.applied).padStart(6, "0")}`;
    let file = path.join(dir, `${stem}.gguf`);
    for (let k = 1; existsSync(file); k++) file = path.join(dir, `${stem}-${k}.gguf`);
    await this.exportAdapter(file);
    return file;
  }

  saveCheckpoint(dir: string): Promise<void> {
    return this.serial(async () => {
      const state = NativeStateSchema.parse(this.native.getState());
      await writeCheckpoint(
        dir,
        {
          format: "catrl-lora-checkpoint",
          version: 1,
          model: {
            path: path.resolve(this.options.modelPath),
            bytes: statSync(this.options.modelPath).size,
            arch: this.info.arch,
          },
          lora: this.options.lora,
          seed: this.options.seed,
          step: this.applied,
          skippedSteps: this.skippedSteps,
          rngState: this.rng.state(),
          adamw: this.options.adamw,
          tensors: this.info.lora,
          stateFile: "state.bin",
          createdAt: new Date().toISOString(),
        },
        state,
      );
    });
  }

  /**
   * LoRA parameters and AdamW moments (copies), in `info.lora` order. Synchronous: call it between
   * operations (the addon refuses while a step is computing).
   */
  getState(): NativeState {
    return NativeStateSchema.parse(this.native.getState());
  }

  /**
   * Test hook / warm start: replaces any of A, B and the moments (sizes must match `info.lora`).
   * Synchronous, like getState.
   */
  setState(s: Partial<NativeState>): void {
    this.native.setState(s);
  }

  setThreads(n: number): void {
    this.native.setThreads(parse(z.number().int().positive(), n, "threads"));
  }

  /** Bytes in the addon's buffers: weights, transposed weights, LoRA, largest compute graph so far. */
  memory(): z.infer<typeof MemorySchema> {
    return MemorySchema.parse(this.native.memory());
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    void this.queue.then(() => this.native.dispose());
  }
}

export async function openTrainer(options: TrainerOptions): Promise<Trainer> {
  const o = parse(TrainerOptionsSchema, options, "trainer options");
  const avail = nativeAvailability();
  if (!avail.ok) throw new UserError(`training unavailable: ${avail.reason}`);
  if (!existsSync(o.modelPath)) throw new UserError(`${o.modelPath}: model file not found`);
  const libDir = cpuLibDir();
  if (!libDir)
    throw new UserError(
      "training unavailable: @node-llama-cpp/linux-x64 (node-llama-cpp's ggml) is not installed",
    );
  const cudaLib = o.backend === "cuda" ? cudaLibPath() : undefined;
  if (o.backend === "cuda" && !cudaLib)
    throw new UserError("CUDA backend unavailable: @node-llama-cpp/linux-x64-cuda is not installed");
  const ckpt = o.resumeFrom ? await readCheckpoint(o.resumeFrom) : undefined;
  if (ckpt) {
    const m = ckpt.meta;
    if (
      m.lora.rank !== o.lora.rank ||
      m.lora.alpha !== o.lora.alpha ||
      m.lora.targets.join() !== o.lora.targets.join()
    )
      throw new UserError(
        `${o.resumeFrom}: checkpoint LoRA (rank ${m.lora.rank}, alpha ${m.lora.alpha}, ${m.lora.targets.join(",")}) differs from the requested one`,
      );
  }
  const Ctor = nativeModule().Trainer;
  let native: NativeTrainer;
  // the memory plan's baseline and (CPU) default budget: before anything of the trainer is loaded
  const baseRss = process.memoryUsage().rss;
  const freeAtOpen = availableMemoryBytes();
  try {
    native = new Ctor({
      modelPath: o.modelPath,
      backend: o.backend,
      libDir,
      ...(cudaLib ? { cudaLib } : {}),
      threads: o.threads,
      rank: o.lora.rank,
      alpha: o.lora.alpha,
      // the transposed copies are made below, once the memory plan has found room for them
      gradMode: "outprod",
      targets: o.lora.targets,
    });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // backend failures are about the machine, not the model file
    throw new UserError(/backend/i.test(msg.split(":")[0]) ? msg : `${o.modelPath}: ${msg}`, 1, { cause: e });
  }
  const info = NativeDescribeSchema.parse(native.describe());
  let trainer: Trainer;
  try {
    trainer = restoreOrInit(native, info, o, ckpt, (rng, applied, skipped) => {
      const mem = MemorySchema.parse(native.memory());
      // CUDA: what the GPU had free before the weights and LoRA went there
      const budget =
        o.trainMemory ?? (o.backend === "cuda" ? mem.deviceFree + mem.weights + mem.lora : freeAtOpen);
      return new Trainer(native, info, o, rng, applied, skipped, budget, baseRss, []);
    });
  } catch (e) {
    native.dispose();
    throw e;
  }
  try {
    planAtOpen(trainer, native, o);
  } catch (e) {
    trainer.dispose();
    throw e;
  }
  return trainer;
}

/**
 * The transposed copies make the backward ~4x faster on CPU but double the frozen weights: keep them
 * only when a sequence of this many tokens still trains beside them within the budget.
 */
export const TRANSPOSE_REFERENCE_TOKENS = 512;

function planAtOpen(t: Trainer, native: NativeTrainer, o: z.infer<typeof TrainerOptionsSchema>): void {
  const m = t.memory();
  const fixed = m.weights + m.lora;
  if (fixed > t.memoryBudget)
    throw new UserError(
      `${o.modelPath}: the weights and LoRA state need ${gib(fixed)}, over the trainer's memory budget of ${gib(t.memoryBudget)} (--train-memory)`,
    );
  if (o.gradMode !== "transpose") return;
  const n = Math.min(TRANSPOSE_REFERENCE_TOKENS, o.maxSeqLen);
  const ref = { prompt: [0], completion: Array.from({ length: n - 1 }, () => 0) };
  const plan = t.memoryPlan([ref], { microBatch: 1, withGrad: true, withKl: true });
  const need = plan.skipped.length ? Number.POSITIVE_INFINITY : plan.trainerBytes + m.transposedNeeded;
  if (need > t.memoryBudget) {
    t.notes.push(
      `the transposed weight copy (${gib(m.transposedNeeded)}) does not fit the trainer's memory budget of ${gib(t.memoryBudget)} beside a ${n}-token sequence; the gradient through frozen weights uses out_prod (slower, less memory)`,
    );
    return;
  }
  native.enableTranspose();
  t.forgetPlans();
}

function restoreOrInit(
  native: NativeTrainer,
  info: NativeDescribe,
  o: z.infer<typeof TrainerOptionsSchema>,
  ckpt: Awaited<ReturnType<typeof readCheckpoint>> | undefined,
  make: (rng: TrainerRng, applied: number, skipped: number) => Trainer,
): Trainer {
  if (ckpt) {
    const names = info.lora.map((t) => t.base).join();
    if (
      ckpt.meta.tensors.map((t) => t.base).join() !== names ||
      ckpt.meta.model.arch !== info.arch ||
      ckpt.meta.model.bytes !== statSync(o.modelPath).size
    )
      throw new UserError(
        `${o.resumeFrom}: checkpoint was made for a different model (${ckpt.meta.model.path}, ${ckpt.meta.model.bytes} bytes)`,
      );
    native.setState(ckpt.state);
    return make(new TrainerRng(ckpt.meta.rngState), ckpt.meta.step, ckpt.meta.skippedSteps);
  }
  const rng = new TrainerRng(o.seed);
  const a = info.lora.map((t) => kaimingUniformA(rng, t.nIn, o.lora.rank));
  native.setState({ a });
  return make(rng, 0, 0);
}

export type { NativeState as TrainerState } from "./native.js";

/**
 * Test/benchmark utility: copies a GGUF with its 2-D weights converted to `type` (a ggml type name
 * such as "q4_K", where the row length allows) and, with noise > 0, its 1-D F32 tensors (norms,
 * biases) perturbed by uniform noise of that amplitude (seeded).
 */
export function convertModel(o: {
  input: string;
  output: string;
  type?: string;
  noise?: number;
  seed?: number;
}): void {
  const avail = nativeAvailability();
  if (!avail.ok) throw new UserError(`training unavailable: ${avail.reason}`);
  nativeModule().convertModel(o.input, o.output, o.type ?? null, o.noise ?? 0, o.seed ?? 1);
}
