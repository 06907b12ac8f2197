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
 *                        { lr: 1e-4, beta: 0.01, clipEps: 0.2, microBatch: 4, maxGradNorm: 1, weightDecay: 0 });
 * const file = await t.exportVersion(dir);               // new llama.cpp LoRA GGUF per version
 * await t.saveCheckpoint(ckptDir);                       // openTrainer({ ..., resumeFrom: ckptDir })
 * t.dispose();
 * ```
 *
 * Loss per step (GRPO, one update per batch): for sequence i with advantage A_i and completion
 * tokens j, r_ij = exp(logp_ij - old_ij), L = mean_i mean_j [ -min(r A, clip(r, 1-eps, 1+eps) A)
 * + beta * (exp(ref - logp) - (ref - logp) - 1) ]. Prompt tokens are masked. `old` defaults to the
 * trainer's own log-probs under the current adapter (ratio 1 on the first update of a batch), `ref`
 * to the base with LoRA off; both are computed by the trainer when not given, because node-llama-cpp's
 * quantized kernels differ from the trainer's by up to ~3e-2 nats. Micro-batches accumulate gradients;
 * then global-norm clipping and AdamW. A step whose loss or gradient norm is not finite is reported
 * with skipped: true and not applied (parameters and moments unchanged).
 */
import { existsSync, statSync } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { tmpNameFor, writeError } from "../../util/atomic-write.js";
import { UserError } from "../../util/errors.js";
import { readCheckpoint, writeCheckpoint } from "./checkpoint.js";
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
import { chunks, lossInputs, packBatch, stepStats, type TokenSeq } from "./pack.js";
import { kaimingUniformA, TrainerRng } from "./rng.js";

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
   * Sequences per forward/backward graph; gradients accumulate across micro-batches. Sequences in a
   * micro-batch are padded to the longest, and the graph keeps every layer's attention
   * probabilities for the backward pass: about 4 * n_head * S * Tm^2 bytes per layer (no flash
   * attention / checkpointing), so use 1-2 for sequences of ~1000 tokens and more.
   */
  microBatch: z.number().int().positive(),
  /** 0 disables clipping. */
  maxGradNorm: z.number().nonnegative(),
  weightDecay: z.number().nonnegative(),
});
export type StepOptions = z.infer<typeof StepOptionsSchema>;

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

  /** @internal use openTrainer */
  constructor(
    private readonly native: NativeTrainer,
    readonly info: NativeDescribe,
    readonly options: z.infer<typeof TrainerOptionsSchema>,
    private rng: TrainerRng,
    private applied: number,
    private skippedSteps: number,
  ) {}

  /** Applied updates so far. */
  get stepCount(): number {
    return this.applied;
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

  /** Log-probabilities of each completion token (one Float32Array per sequence). */
  logprobs(seqs: TokenSeq[], opts: { lora: boolean; microBatch?: number }): Promise<Float32Array[]> {
    const parsed = parse(z.array(SeqSchema), seqs, "logprobs");
    parsed.forEach((s, i) => {
      this.checkSeq(s, i);
    });
    return this.serial(() => this.logprobsUnqueued(parsed, opts.lora, opts.microBatch ?? 8));
  }

  private async logprobsUnqueued(
    seqs: TokenSeq[],
    lora: boolean,
    microBatch: number,
  ): Promise<Float32Array[]> {
    const out: Float32Array[] = seqs.map(() => new Float32Array(0));
    const todo = seqs.map((s, i) => ({ s, i })).filter((x) => x.s.completion.length > 0);
    for (const group of chunks(todo.length, microBatch)) {
      const items = group.map((g) => todo[g]);
      const batch = packBatch(
        items.map((x) => x.s),
        this.info.nVocab,
      );
      const r = ForwardResultSchema.parse(await this.native.forward(batch, lora));
      let off = 0;
      for (const x of items) {
        out[x.i] = r.logp.slice(off, off + x.s.completion.length);
        off += x.s.completion.length;
      }
    }
    return out;
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
  ): Promise<{ loss: number; grads: z.infer<typeof GradsSchema>; logprobs: Float32Array[] }> {
    const o = parse(StepOptionsSchema, opts, "step options");
    const parsed = this.parseStepSeqs(seqs);
    return this.serial(async () => {
      const r = await this.accumulateAll(parsed, o);
      const grads = GradsSchema.parse(this.native.getGrads());
      this.native.zeroGrad();
      return { loss: r.loss, grads, logprobs: r.logps };
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

  /** Fills in missing old/ref log-probs, then accumulates the gradient of every micro-batch. */
  private async accumulateAll(
    all: z.infer<typeof StepSeqSchema>[],
    o: StepOptions,
  ): Promise<{ loss: number; logps: Float32Array[]; seqs: z.infer<typeof StepSeqSchema>[] }> {
    const seqs = all.filter((s) => s.completion.length > 0);
    if (seqs.length === 0) throw new UserError("step: no completion tokens to train on");
    // old / reference log-probs the caller did not supply, from this trainer's own forward pass
    const needOld = seqs.filter((s) => !s.oldLogprobs);
    if (needOld.length) {
      const lp = await this.logprobsUnqueued(needOld, true, o.microBatch);
      needOld.forEach((s, i) => {
        s.oldLogprobs = lp[i];
      });
    }
    const withKl = o.beta > 0;
    const needRef = withKl ? seqs.filter((s) => !s.refLogprobs) : [];
    if (needRef.length) {
      const lp = await this.logprobsUnqueued(needRef, false, o.microBatch);
      needRef.forEach((s, i) => {
        s.refLogprobs = lp[i];
      });
    }
    let loss = 0;
    const logps: Float32Array[] = [];
    this.native.zeroGrad();
    for (const group of chunks(seqs.length, o.microBatch)) {
      const items = group.map((g) => seqs[g]);
      const batch = {
        ...packBatch(items, this.info.nVocab),
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
      loss += r.loss;
      let off = 0;
      for (const s of items) {
        logps.push(r.logp.slice(off, off + s.completion.length));
        off += s.completion.length;
      }
    }
    return { loss, logps, seqs };
  }

  private async stepUnqueued(all: z.infer<typeof StepSeqSchema>[], o: StepOptions): Promise<StepResult> {
    const t0 = performance.now();
    const { loss, logps, seqs } = await this.accumulateAll(all, o);
    const withKl = o.beta > 0;
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
    };
  }

  /** Writes the adapter in llama.cpp's LoRA GGUF format (atomically: temp file, then rename). */
  exportAdapter(file: string): Promise<void> {
    return this.serial(async () => {
      const tmp = tmpNameFor(file);
      try {
        // Opened here first so that a missing directory or a full disk gets Node's error code.
        await (await open(tmp, "w")).close();
        this.native.exportAdapter(tmp);
        await rename(tmp, file);
      } catch (e) {
        await rm(tmp, { force: true }).catch(() => {});
        // The addon's failure carries no errno: the GGUF writer's fwrite failed.
        const code = (e as NodeJS.ErrnoException).code;
        throw writeError(file, code ? e : new Error("writing the GGUF failed: disk full or I/O error"));
      }
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
  try {
    native = new Ctor({
      modelPath: o.modelPath,
      backend: o.backend,
      libDir,
      ...(cudaLib ? { cudaLib } : {}),
      threads: o.threads,
      rank: o.lora.rank,
      alpha: o.lora.alpha,
      gradMode: o.gradMode,
      targets: o.lora.targets,
    });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // backend failures are about the machine, not the model file
    throw new UserError(/backend/i.test(msg.split(":")[0]) ? msg : `${o.modelPath}: ${msg}`, 1, { cause: e });
  }
  const info = NativeDescribeSchema.parse(native.describe());
  if (ckpt) {
    const names = info.lora.map((t) => t.base).join();
    if (
      ckpt.meta.tensors.map((t) => t.base).join() !== names ||
      ckpt.meta.model.arch !== info.arch ||
      ckpt.meta.model.bytes !== statSync(o.modelPath).size
    ) {
      native.dispose();
      throw new UserError(
        `${o.resumeFrom}: checkpoint was made for a different model (${ckpt.meta.model.path}, ${ckpt.meta.model.bytes} bytes)`,
      );
    }
    native.setState(ckpt.state);
    return new Trainer(
      native,
      info,
      o,
      new TrainerRng(ckpt.meta.rngState),
      ckpt.meta.step,
      ckpt.meta.skippedSteps,
    );
  }
  const rng = new TrainerRng(o.seed);
  const a = info.lora.map((t) => kaimingUniformA(rng, t.nIn, o.lora.rank));
  native.setState({ a });
  return new Trainer(native, info, o, rng, 0, 0);
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
