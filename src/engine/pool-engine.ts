import { type ChildProcess, fork } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import type { LlamaModel } from "node-llama-cpp";
import { z } from "zod";
import { UserError } from "../util/errors.js";
import { packageRoot } from "../util/version.js";
import { type GpuChoice, loadLlama } from "./llama-runtime.js";
import type { PoolCall, PoolMethod, PoolReply, PoolRequest } from "./pool-protocol.js";
import { PromptRenderer } from "./prompt-renderer.js";
import type {
  AdapterSpec,
  Engine,
  GenerateOptions,
  GenerationRequest,
  ModelInfo,
  NextTokenRequest,
  NextTokenResult,
  Prompt,
  Rollout,
  ScoreRequest,
  ScoreResult,
} from "./types.js";

/**
 * Per-device workers behind one `Engine`: one process per device, each owning its own copy of the model
 * and its context, with the rollouts of every call spread across them (contiguous equal shares: a group
 * of G rollouts also splits) and the answers put back in order. Rollout i of a request keeps seed `seed + i` wherever it runs, so on
 * a batch-invariant backend the results are those of a single engine (tested on CPU).
 *
 * Processes rather than worker threads: the device must be chosen before the GPU backend loads, and
 * CUDA_VISIBLE_DEVICES is per process; node-llama-cpp's native state is also process-global (one log
 * callback, and a worker thread's exit disposes the backend of the whole process, see
 * ../shared/docs/llama-stack.md). The parent keeps only the vocabulary (for the synchronous tokenizer
 * methods), not the weights.
 */

export type PoolDevice = { gpu: GpuChoice; index?: number };

export const DeviceListSchema = z
  .string()
  .transform((s) => s.split(",").map((d) => d.trim()))
  .pipe(
    z.array(
      z
        .string()
        .regex(/^(cpu|(cuda|vulkan):\d+)$/, "each device is cpu, cuda:N or vulkan:N")
        .transform((d): PoolDevice => {
          const [gpu, index] = d.split(":");
          return { gpu: gpu as GpuChoice, ...(index == null ? {} : { index: Number(index) }) };
        }),
    ),
  );

export type PoolEngineOptions = {
  modelPath: string;
  devices: PoolDevice[];
  /** ggml threads in each worker. */
  threads: number;
  verbose?: boolean;
  maxSequences?: number;
};

/** The compiled worker: Node cannot fork a .ts file, so even vitest uses dist/ (as the answer pool does). */
export function poolWorkerPath(): string {
  return path.join(packageRoot(), "dist", "src", "engine", "pool-worker.js");
}

type Pending = {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onRollout?: (r: Rollout) => void;
  onProgress?: (p: { rolloutsDone: number; tokensGenerated: number }) => void;
};

class PoolWorker {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private exited: string | null = null;

  constructor(
    readonly proc: ChildProcess,
    readonly label: string,
  ) {
    proc.on("message", (m: PoolReply) => this.onMessage(m));
    proc.on("exit", (code, signal) => {
      this.exited = `pool worker ${label} exited (${signal ?? code})`;
      for (const p of this.pending.values()) p.reject(new UserError(this.exited));
      this.pending.clear();
    });
  }

  private onMessage(m: PoolReply): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.type === "rollout") p.onRollout?.(m.rollout);
    else if (m.type === "progress") p.onProgress?.(m.progress);
    else {
      this.pending.delete(m.id);
      if (m.type === "result") p.resolve(m.value);
      else p.reject(m.user ? new UserError(m.message) : new Error(`pool worker ${this.label}: ${m.message}`));
    }
  }

  request(
    msg: PoolCall,
    extra: Omit<Pending, "resolve" | "reject"> & { signal?: AbortSignal } = {},
  ): Promise<unknown> {
    if (this.exited) return Promise.reject(new UserError(this.exited));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      // An abort reaches the worker, which stops its sequences and answers with what finished.
      const onAbort = () => this.proc.send({ type: "abort", id } satisfies PoolRequest);
      const settle = () => extra.signal?.removeEventListener("abort", onAbort);
      this.pending.set(id, {
        resolve: (v) => {
          settle();
          resolve(v);
        },
        reject: (e) => {
          settle();
          reject(e);
        },
        onRollout: extra.onRollout,
        onProgress: extra.onProgress,
      });
      extra.signal?.addEventListener("abort", onAbort, { once: true });
      this.proc.send({ ...msg, id } as PoolRequest);
    });
  }

  get alive(): boolean {
    return this.exited == null;
  }
}

function deviceEnv(d: PoolDevice): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (d.index == null) return env;
  if (d.gpu === "cuda") env.CUDA_VISIBLE_DEVICES = String(d.index);
  if (d.gpu === "vulkan") env.GGML_VK_VISIBLE_DEVICES = String(d.index);
  return env;
}

export async function openPoolEngine(opts: PoolEngineOptions): Promise<PoolEngine> {
  if (opts.devices.length === 0) throw new UserError("--devices/--workers: at least one worker is needed");
  const file = poolWorkerPath();
  if (!existsSync(file))
    throw new UserError(`pool worker not built: ${file} is missing (run \`npm run build\`)`);
  const workers = opts.devices.map(
    (d, k) =>
      new PoolWorker(
        fork(file, [], {
          env: deviceEnv(d),
          serialization: "advanced",
          stdio: ["ignore", "inherit", "inherit", "ipc"],
        }),
        d.index == null ? `${d.gpu}#${k}` : `${d.gpu}:${d.index}`,
      ),
  );
  try {
    const infos = (await Promise.all(
      workers.map((w, k) =>
        w.request({
          type: "open",
          options: {
            modelPath: opts.modelPath,
            gpu: opts.devices[k].gpu,
            threads: opts.threads,
            verbose: opts.verbose,
            maxSequences: opts.maxSequences,
          },
        }),
      ),
    )) as ModelInfo[];
    // The vocabulary alone, for tokenizePrompt & co. (synchronous by contract, so not a worker round trip).
    const llama = await loadLlama({ gpu: "cpu", threads: 1, verbose: opts.verbose });
    const vocab = await llama.loadModel({ modelPath: opts.modelPath, vocabOnly: true });
    return new PoolEngine(workers, infos[0], new PromptRenderer(vocab), vocab, opts);
  } catch (e) {
    for (const w of workers) w.proc.kill();
    throw e;
  }
}

export class PoolEngine implements Engine {
  private disposed = false;

  constructor(
    private readonly workers: PoolWorker[],
    readonly info: ModelInfo,
    private readonly renderer: PromptRenderer,
    private readonly vocab: LlamaModel,
    readonly opts: PoolEngineOptions,
  ) {}

  get size(): number {
    return this.workers.length;
  }

  /**
   * Items of one call in contiguous, nearly equal shares, one per worker, with their original positions.
   * Contiguous, because neighbouring judge prompts share prefixes that an engine evaluates once.
   */
  private spread<T>(items: T[]): { worker: PoolWorker; items: T[]; at: number[] }[] {
    const n = this.workers.length;
    return this.workers
      .map((worker, w) => {
        const from = Math.floor((w * items.length) / n);
        const to = Math.floor(((w + 1) * items.length) / n);
        const at = Array.from({ length: to - from }, (_, j) => from + j);
        return { worker, items: at.map((k) => items[k]), at };
      })
      .filter((p) => p.items.length > 0);
  }

  private async fanOut<T, R>(method: PoolMethod, items: T[], signal?: AbortSignal, extra = {}): Promise<R[]> {
    this.assertOpen();
    const out: R[] = new Array(items.length);
    await Promise.all(
      this.spread(items).map(async (part) => {
        const res = (await part.worker.request(
          { type: "call", method, args: [part.items] },
          { signal, ...extra },
        )) as R[];
        part.at.forEach((k, j) => {
          out[k] = res[j];
        });
      }),
    );
    return out;
  }

  /**
   * Rollouts (not only prompts) in contiguous equal shares: a worker's share is sub-requests of
   * consecutive rollouts, each starting at its own seed (`seed + first`), so one group of G also runs on
   * every device and keeps the seeds it has on one engine.
   */
  private shareRollouts(
    requests: GenerationRequest[],
  ): { worker: PoolWorker; parts: { k: number; first: number; request: GenerationRequest }[] }[] {
    const units = requests.flatMap((r, k) => Array.from({ length: r.n }, (_, i) => ({ k, i })));
    const n = this.workers.length;
    return this.workers
      .map((worker, w) => {
        const mine = units.slice(
          Math.floor((w * units.length) / n),
          Math.floor(((w + 1) * units.length) / n),
        );
        const parts: { k: number; first: number; request: GenerationRequest }[] = [];
        for (const u of mine) {
          const last = parts.at(-1);
          if (last && last.k === u.k) last.request.n++;
          else
            parts.push({
              k: u.k,
              first: u.i,
              request: { ...requests[u.k], n: 1, seed: requests[u.k].seed + u.i },
            });
        }
        return { worker, parts };
      })
      .filter((s) => s.parts.length > 0);
  }

  async generate(requests: GenerationRequest[], options: GenerateOptions = {}): Promise<Rollout[][]> {
    this.assertOpen();
    const total = requests.reduce((s, r) => s + r.n, 0);
    const t0 = performance.now();
    const done = new Map<PoolWorker, { rolloutsDone: number; tokensGenerated: number }>();
    const out: Rollout[][] = requests.map(() => []);
    await Promise.all(
      this.shareRollouts(requests).map(async ({ worker, parts }) => {
        // Workers number their sub-requests and rollouts from 0; callers see the original indices.
        const fix = (r: Rollout): Rollout => {
          const p = parts[r.requestIndex];
          return { ...r, requestIndex: p.k, rolloutIndex: p.first + r.rolloutIndex };
        };
        const res = (await worker.request(
          { type: "call", method: "generate", args: [parts.map((p) => p.request)] },
          {
            signal: options.signal,
            onRollout: (r) => options.onRollout?.(fix(r)),
            onProgress: (p) => {
              done.set(worker, p);
              if (!options.onProgress) return;
              let rolloutsDone = 0;
              let tokensGenerated = 0;
              for (const d of done.values()) {
                rolloutsDone += d.rolloutsDone;
                tokensGenerated += d.tokensGenerated;
              }
              options.onProgress({
                rolloutsDone,
                rolloutsTotal: total,
                tokensGenerated,
                elapsedMs: performance.now() - t0,
              });
            },
          },
        )) as Rollout[][];
        for (const group of res)
          for (const r of group) {
            const f = fix(r);
            out[f.requestIndex][f.rolloutIndex] = f;
          }
      }),
    );
    // Aborted runs may leave holes, as the single engine returns only the rollouts it has.
    return out.map((g) => g.filter(Boolean));
  }

  score(requests: ScoreRequest[], options: { signal?: AbortSignal } = {}): Promise<ScoreResult[]> {
    return this.fanOut("score", requests, options.signal);
  }

  nextTokenProbs(
    requests: NextTokenRequest[],
    options: { signal?: AbortSignal } = {},
  ): Promise<NextTokenResult[]> {
    return this.fanOut("nextTokenProbs", requests, options.signal);
  }

  /** Every worker loads the same adapters (CaT-RL's policy can be a pool). */
  async setAdapters(adapters: AdapterSpec[]): Promise<void> {
    this.assertOpen();
    const abs = adapters.map((a) => ({ ...a, path: path.resolve(a.path) }));
    await Promise.all(
      this.workers.map((w) => w.request({ type: "call", method: "setAdapters", args: [abs] })),
    );
  }

  renderPrompt(prompt: Prompt, format: "auto" | "chat" | "raw" = "auto"): string {
    return this.renderer.render(prompt, format).text.toString();
  }

  tokenizePrompt(prompt: Prompt, format: "auto" | "chat" | "raw" = "auto"): number[] {
    return this.renderer.tokenize(prompt, format);
  }

  countTokens(text: string): number {
    return this.vocab.tokenize(text, false).length;
  }

  private assertOpen(): void {
    if (this.disposed) throw new Error("pool engine is disposed");
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all(
      this.workers.map(async (w) => {
        if (!w.alive) return;
        const exited = new Promise((r) => w.proc.once("exit", r));
        await w.request({ type: "dispose" }).catch(() => undefined);
        await exited;
      }),
    );
    await this.vocab.dispose();
  }
}
