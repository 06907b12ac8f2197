import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { openLlamaEngine } from "../src/engine/llama-engine.js";
import { openPoolEngine } from "../src/engine/pool-engine.js";
import type { Engine } from "../src/engine/types.js";
import { UserError } from "../src/util/errors.js";
import { packageRoot } from "../src/util/version.js";
import { machineInfo, modelInfo, versions } from "./rollouts/machine.js";
import { benchPrompts } from "./rollouts/prompts.js";
import { BENCH_SAMPLING, DEFAULT_BENCH_MODEL } from "./rollouts.js";

/**
 * N CPU worker processes x 1 thread against one engine x N threads on the same cores: the same G
 * rollouts, fixed length, interleaved. On a 2-core machine there is no target (the point of pools is one
 * model per GPU); the ratio says what splitting the batch costs or gains against ggml's own threads.
 */

export const PoolBenchOptionsSchema = z.object({
  model: z.string().optional(),
  workers: z.number().int().min(2).default(2),
  G: z.number().int().positive().default(16),
  prompts: z.number().int().positive().default(1),
  maxTokens: z.number().int().positive().default(64),
  repeats: z.number().int().positive().default(3),
  out: z.string().optional(),
});
export type PoolBenchOptions = z.input<typeof PoolBenchOptionsSchema>;

export async function runPoolBench(
  options: PoolBenchOptions = {},
  log = (l: string) => process.stderr.write(`${l}\n`),
) {
  const o = PoolBenchOptionsSchema.parse(options);
  const model = path.resolve(o.model ?? path.join(packageRoot(), DEFAULT_BENCH_MODEL));
  if (!existsSync(model))
    throw new UserError(
      `${model}: not found (catrl model make --preset 85m --type q8_0 --out ${DEFAULT_BENCH_MODEL})`,
    );
  const single = await openLlamaEngine({ modelPath: model, threads: o.workers, gpu: "cpu" });
  const pool = await openPoolEngine({
    modelPath: model,
    devices: Array.from({ length: o.workers }, () => ({ gpu: "cpu" as const })),
    threads: 1,
  });
  const requests = benchPrompts(o.prompts).map((prompt, p) => ({
    prompt,
    format: "raw" as const,
    n: o.G,
    maxTokens: o.maxTokens,
    seed: 1 + p * o.G,
    sampling: BENCH_SAMPLING,
    ignoreEog: true,
  }));
  const variants: [string, Engine][] = [
    [`engine x ${o.workers} threads`, single],
    [`pool ${o.workers} workers x 1 thread`, pool],
  ];
  const rows: { variant: string; repeat: number; seconds: number; tokens: number; tokensPerSec: number }[] =
    [];
  try {
    for (const [, e] of variants) await e.generate(requests.map((r) => ({ ...r, maxTokens: 4 })));
    for (let r = 0; r < o.repeats; r++) {
      const order = r % 2 === 0 ? variants : [...variants].reverse();
      for (const [name, e] of order) {
        const t0 = performance.now();
        const out = await e.generate(requests);
        const seconds = (performance.now() - t0) / 1000;
        const tokens = out.flat().reduce((s, x) => s + x.tokens.length, 0);
        rows.push({ variant: name, repeat: r, seconds, tokens, tokensPerSec: tokens / seconds });
        log(
          `${name} repeat ${r}: ${(tokens / seconds).toFixed(1)} tok/s (load ${os.loadavg()[0].toFixed(2)})`,
        );
      }
    }
  } finally {
    await pool.dispose();
    await single.dispose();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const of = (name: string) => median(rows.filter((x) => x.variant === name).map((x) => x.tokensPerSec));
  const result = {
    benchmark: "pool",
    date: new Date().toISOString(),
    machine: machineInfo(),
    versions: versions(),
    model: await modelInfo(model),
    options: o,
    sampling: BENCH_SAMPLING,
    measurements: rows,
    summary: {
      engineTokensPerSec: of(variants[0][0]),
      poolTokensPerSec: of(variants[1][0]),
      poolOverEngine: of(variants[1][0]) / of(variants[0][0]),
    },
  };
  const outFile = o.out ?? path.join(packageRoot(), "bench", "results", `pool-${os.hostname()}.json`);
  await mkdir(path.dirname(outFile), { recursive: true });
  await writeFile(outFile, `${JSON.stringify(result, null, 2)}\n`);
  return { ...result, outFile };
}
