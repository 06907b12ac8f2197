import { getLlama, type Llama, LlamaLogLevel } from "node-llama-cpp";
import { z } from "zod";
import { UserError } from "../util/errors.js";

export const GpuChoiceSchema = z.enum(["auto", "cuda", "vulkan", "cpu"]);
export type GpuChoice = z.infer<typeof GpuChoiceSchema>;

/**
 * One Llama (native backend) per GPU choice per process: node-llama-cpp's native state is process-global
 * and upstream recommends a single instance. Engines receive it explicitly; this cache only keeps two
 * engines in one process (policy and anchor) from loading the backend twice.
 */
const runtimes = new Map<string, Promise<Llama>>();

export function loadLlama(opts: { gpu: GpuChoice; threads: number; verbose?: boolean }): Promise<Llama> {
  const key = `${opts.gpu}:${opts.threads}:${opts.verbose ? 1 : 0}`;
  let p = runtimes.get(key);
  if (!p) {
    p = getLlama({
      gpu: opts.gpu === "cpu" ? false : opts.gpu,
      // Offline machines: never try to compile or download a backend; use the prebuilt binaries.
      build: "never",
      skipDownload: true,
      maxThreads: opts.threads,
      logLevel: opts.verbose ? LlamaLogLevel.info : LlamaLogLevel.error,
      progressLogs: false,
    }).catch((e: unknown) => {
      runtimes.delete(key);
      throw new UserError(`cannot start llama.cpp with --gpu ${opts.gpu}: ${(e as Error).message}`, 1, {
        cause: e,
      });
    });
    runtimes.set(key, p);
  }
  return p;
}
