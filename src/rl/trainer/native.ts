import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { z } from "zod";
import { oneLine } from "../../util/errors.js";
import { packageRoot } from "../../util/version.js";

/**
 * Loader for the native addon (native/, built by the package's install script) and zod schemas for
 * everything that crosses the boundary. The addon is optional: when it is missing or fails to load,
 * `nativeAvailability()` says why in one line and inference keeps working.
 */

const GgmlInfoSchema = z.object({ version: z.string(), commit: z.string(), expected: z.string() });

export const NativeDescribeSchema = z.object({
  arch: z.enum(["llama", "qwen2", "qwen3", "gemma3"]),
  nVocab: z.number().int().positive(),
  nEmbd: z.number().int().positive(),
  nLayer: z.number().int().positive(),
  nHead: z.number().int().positive(),
  nHeadKv: z.number().int().positive(),
  headDim: z.number().int().positive(),
  nFf: z.number().int().positive(),
  ropeFreqBase: z.number(),
  ropeFreqScale: z.number(),
  rmsEps: z.number(),
  weightType: z.string(),
  backend: z.string(),
  lora: z.array(z.object({ base: z.string(), nIn: z.number().int(), nOut: z.number().int() })),
});
export type NativeDescribe = z.infer<typeof NativeDescribeSchema>;

export const f32 = z.custom<Float32Array>((v) => v instanceof Float32Array, "expected a Float32Array");
export const ForwardResultSchema = z.object({
  logp: f32,
  ms: z.number(),
  /** Of ms: building and allocating graphs (the layer-by-layer pass builds one per layer), and computing. */
  graphMs: z.number(),
  computeMs: z.number(),
});
// loss and gradient norm may be NaN or infinite: such steps are reported as skipped, not rejected
const anyNumber = z.custom<number>((v) => typeof v === "number", "expected a number");
export const AccumulateResultSchema = ForwardResultSchema.extend({ loss: anyNumber });
export const AdamWResultSchema = z.object({ gradNorm: anyNumber, applied: z.boolean() });
export const NativeStateSchema = z.object({
  a: z.array(f32),
  b: z.array(f32),
  mA: z.array(f32),
  mB: z.array(f32),
  vA: z.array(f32),
  vB: z.array(f32),
});
export type NativeState = z.infer<typeof NativeStateSchema>;
export const GradsSchema = z.object({ a: z.array(f32), b: z.array(f32) });
export const MemorySchema = z.object({
  weights: z.number(),
  transposed: z.number(),
  lora: z.number(),
  compute: z.number(),
  /** What the transposed copies take (or would take, when gradMode is outprod). */
  transposedNeeded: z.number(),
  gradMode: z.enum(["transpose", "outprod"]),
  /** Host scratch while the transposed copies are made (load-time peak). */
  transposeScratch: z.number(),
  /** The backend device's free / total memory as ggml reports it (CUDA: the GPU's). */
  deviceFree: z.number(),
  deviceTotal: z.number(),
});

/** A packed micro-batch as the addon takes it (see pack.ts). */
export interface NativeBatch {
  tokens: Int32Array;
  pos: Int32Array;
  /** Sequences in the batch; tokens holds nSeq * Tm rows (each sequence padded to Tm). */
  nSeq: number;
  outRows: Int32Array;
  /** The token each of outRows predicts. */
  targets: Int32Array;
  /** Sampling temperature: log-probs are of softmax(logits / temperature). Default 1. */
  temperature?: number;
  /** One graph for the whole model instead of layer by layer (tests, comparisons). */
  whole?: boolean;
  /** Target positions per output-head graph (0 or absent: all at once). */
  headChunk?: number;
  old?: Float32Array;
  negAdvW?: Float32Array;
  clipC?: Float32Array;
  sgn?: Float32Array;
  ref?: Float32Array;
  betaW?: Float32Array;
}

export interface NativeTrainerOptions {
  modelPath: string;
  backend: "cpu" | "cuda";
  libDir: string;
  cudaLib?: string;
  threads: number;
  rank: number;
  alpha: number;
  gradMode: "transpose" | "outprod";
  targets: string[];
}

export interface NativeTrainer {
  describe(): unknown;
  forward(batch: NativeBatch, lora: boolean): Promise<unknown>;
  accumulate(batch: NativeBatch): Promise<unknown>;
  applyAdamW(o: {
    lr: number;
    beta1: number;
    beta2: number;
    eps: number;
    weightDecay: number;
    maxGradNorm: number;
    step: number;
    apply: boolean;
  }): Promise<unknown>;
  zeroGrad(): void;
  getGrads(): unknown;
  getState(): unknown;
  setState(s: Partial<NativeState>): void;
  exportAdapter(path: string): void;
  setThreads(n: number): void;
  memory(): unknown;
  /** Compute-buffer bytes of each graph of one micro-batch (see PlanSizesSchema). */
  plan(o: {
    rows: number;
    nSeq: number;
    targets: number;
    headChunk: number;
    withKl: boolean;
    whole: boolean;
  }): unknown;
  /** Makes the transposed weight copies and switches to gradMode transpose. */
  enableTranspose(): void;
  dispose(): void;
}

interface NativeModule {
  ggmlInfo(): unknown;
  convertModel(input: string, output: string, type: string | null, noise: number, seed: number): void;
  Trainer: new (o: NativeTrainerOptions) => NativeTrainer;
}

/** node_modules/<name> above the package root (the packages' "exports" hide their package.json). */
export function findPackageDir(name: string): string | undefined {
  for (let dir = packageRoot(); ; dir = path.dirname(dir)) {
    const c = path.join(dir, "node_modules", name);
    if (existsSync(path.join(c, "package.json"))) return c;
    if (path.dirname(dir) === dir) return undefined;
  }
}

/** Directory of node-llama-cpp's prebuilt CPU ggml libraries (the ones the addon links). */
export function cpuLibDir(): string | undefined {
  const d = findPackageDir("@node-llama-cpp/linux-x64");
  return d ? path.join(d, "bins", "linux-x64") : undefined;
}

/** node-llama-cpp's CUDA backend library, when its CUDA package is installed. */
export function cudaLibPath(): string | undefined {
  const d = findPackageDir("@node-llama-cpp/linux-x64-cuda");
  const p = d ? path.join(d, "bins", "linux-x64-cuda", "libggml-cuda.so") : undefined;
  return p && existsSync(p) ? p : undefined;
}

type Loaded =
  | { ok: true; mod: NativeModule; ggml: z.infer<typeof GgmlInfoSchema> }
  | { ok: false; reason: string };
let loaded: Loaded | undefined;

function load(): Loaded {
  if (loaded) return loaded;
  loaded = (() => {
    let root: string;
    try {
      root = packageRoot();
    } catch (e) {
      return { ok: false, reason: oneLine(e) };
    }
    // CATRL_NATIVE_TRAINER overrides the addon path (tests of the unavailable path use it)
    const addon =
      process.env.CATRL_NATIVE_TRAINER || path.join(root, "native", "build", "Release", "catrl_trainer.node");
    if (!existsSync(addon)) {
      const status = path.join(root, "native", "build", "status.json");
      try {
        const s = z
          .object({ ok: z.boolean(), reason: z.string().optional() })
          .parse(JSON.parse(readFileSync(status, "utf8")));
        if (!s.ok && s.reason) return { ok: false, reason: s.reason };
      } catch {}
      return {
        ok: false,
        reason: "the native trainer is not built (run npm install where g++ and make are available)",
      };
    }
    try {
      const mod = createRequire(import.meta.url)(addon) as NativeModule;
      const ggml = GgmlInfoSchema.parse(mod.ggmlInfo());
      if (ggml.version !== ggml.expected)
        return {
          ok: false,
          reason: `the native trainer was built for ggml ${ggml.expected} but the loaded ggml is ${ggml.version} (reinstall to rebuild it)`,
        };
      return { ok: true, mod, ggml };
    } catch (e) {
      return { ok: false, reason: `the native trainer failed to load: ${oneLine(e)}` };
    }
  })();
  return loaded;
}

/** Whether the addon loaded; `reason` is one line, without a "training unavailable" prefix. */
export function nativeAvailability():
  | { ok: true; ggmlVersion: string; ggmlCommit: string }
  | { ok: false; reason: string } {
  const l = load();
  return l.ok
    ? { ok: true, ggmlVersion: l.ggml.version, ggmlCommit: l.ggml.commit }
    : { ok: false, reason: l.reason };
}

export function nativeModule(): NativeModule {
  const l = load();
  if (!l.ok) throw new Error(l.reason);
  return l.mod;
}
