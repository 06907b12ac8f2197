import os from "node:os";

/**
 * ggml spin-waits: more threads than free cores collapses generation by 100x or more, so every
 * component takes an explicit count. Default: the cores this process may use; CI and tests: 1.
 */
export function defaultThreads(): number {
  if (process.env.CI === "true" || process.env.VITEST) return 1;
  const env = Number(process.env.CATRL_THREADS);
  if (Number.isInteger(env) && env > 0) return env;
  return Math.max(
    1,
    typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length,
  );
}
