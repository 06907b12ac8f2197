import { defineConfig } from "vitest/config";

// Two workers at most: the machines have two cores and every test runs ggml with one thread
// (more threads than free cores makes ggml spin-wait and collapse).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    env: { CATRL_THREADS: "1" },
  },
});
