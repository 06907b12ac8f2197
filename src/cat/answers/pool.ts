import { existsSync } from "node:fs";
import path from "node:path";
import { Piscina } from "piscina";
import { z } from "zod";
import { UserError } from "../../util/errors.js";
import { packageRoot } from "../../util/version.js";
import type { MatchMode, MatchOutcome } from "./match.js";

export type AnswerPair = { a: string | null; b: string | null };
/** `reason` is set when the pair was not compared to the end (then `match` is false). */
export type CheckResult = { match: boolean; timedOut?: boolean; reason?: MatchOutcome["reason"] };

export type AnswerChecker = {
  /** Results in the order of `pairs`; a check that ran past the timeout is `{ match: false, timedOut: true }`. */
  check(pairs: AnswerPair[], mode: MatchMode): Promise<CheckResult[]>;
  close(): Promise<void>;
};

export const AnswerCheckerOptionsSchema = z.object({
  threads: z.number().int().min(1),
  timeoutMs: z.number().int().min(1),
  /** Heap cap per worker: a runaway expression dies there instead of taking the run down. */
  maxHeapMb: z.number().int().min(64).default(512),
});
export type AnswerCheckerOptions = z.input<typeof AnswerCheckerOptionsSchema>;

/** The compiled worker: Node cannot start a worker from a .ts file, so even vitest uses dist/. */
export function answerWorkerPath(): string {
  return path.join(packageRoot(), "dist", "src", "cat", "answers", "worker.js");
}

/**
 * A pool of workers running `answersMatch`. Each check gets its own timeout counted from when it starts
 * running (at most `threads` checks are in flight, so none waits in piscina's queue with its clock
 * ticking); on timeout piscina terminates that worker and starts a fresh one, and the check reports
 * `timedOut` instead of hanging the run.
 */
export function createAnswerChecker(options: AnswerCheckerOptions): AnswerChecker {
  const opts = AnswerCheckerOptionsSchema.parse(options);
  const filename = answerWorkerPath();
  if (!existsSync(filename)) {
    throw new UserError(`answer-check worker not built: ${filename} is missing (run \`npm run build\`)`);
  }
  const pool = new Piscina({
    filename,
    minThreads: 1,
    maxThreads: opts.threads,
    idleTimeout: 30_000,
    resourceLimits: { maxOldGenerationSizeMb: opts.maxHeapMb },
  });

  async function one(pair: AnswerPair, mode: MatchMode): Promise<CheckResult> {
    // Missing answers never match; no need to pay a worker round trip.
    if (pair.a == null || pair.b == null) return { match: false };
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), opts.timeoutMs);
    try {
      const r: MatchOutcome = await pool.run({ a: pair.a, b: pair.b, mode }, { signal: controller.signal });
      return r.reason ? { match: false, reason: r.reason } : { match: r.match === true };
    } catch (e) {
      // Abort, or the worker died (heap limit): both mean the check did not finish in bounds.
      if (controller.signal.aborted || isWorkerDeath(e)) return { match: false, timedOut: true };
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    async check(pairs, mode) {
      const results = new Array<CheckResult>(pairs.length);
      let next = 0;
      const lanes = Array.from({ length: Math.min(opts.threads, pairs.length) }, async () => {
        while (next < pairs.length) {
          const i = next++;
          results[i] = await one(pairs[i], mode);
        }
      });
      await Promise.all(lanes);
      return results;
    },
    async close() {
      await pool.destroy();
    },
  };
}

function isWorkerDeath(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === "ERR_WORKER_OUT_OF_MEMORY" || code === "ERR_WORKER_INIT_FAILED";
}
