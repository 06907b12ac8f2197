import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pLimit from "p-limit";
import { z } from "zod";
import { openRemoteEngine } from "../src/engine/remote-engine.js";
import { UserError } from "../src/util/errors.js";
import { packageRoot } from "../src/util/version.js";
import { hasLlamaServer, LlamaServer, llamaServerBinary } from "./llama-cpp/llama-server.js";
import { machineInfo, modelInfo, versions } from "./rollouts/machine.js";
import { benchPrompts } from "./rollouts/prompts.js";
import { BENCH_SAMPLING } from "./rollouts.js";

/**
 * Rollouts through the remote engine against a plain HTTP client sending the same completions to the
 * same llama-server with the same parallelism: what the engine's own work (rendering, tokenizing,
 * parsing, bounded concurrency, retries) costs against the server's throughput. Cases interleaved, the
 * order alternating per repeat; fixed-length rollouts (`ignore_eos`) so both generate the same tokens.
 */

/**
 * A real model, not a random-weight one: random weights emit invalid UTF-8 byte tokens, which
 * llama-server's output parser answers with HTTP 500 ("does not match the expected Content-only
 * format"). stories260K is so fast that the server's time is mostly HTTP and JSON: the engine's own
 * overhead shows at its largest.
 */
const DEFAULT_REMOTE_BENCH_MODEL = path.join(packageRoot(), "..", "shared", "models", "stories260K.gguf");

export const RemoteBenchOptionsSchema = z.object({
  model: z.string().optional(),
  /** llama-server threads (-t). */
  threads: z.number().int().positive().default(1),
  maxTokens: z.number().int().positive().default(64),
  G: z.array(z.number().int().positive()).min(1).default([16]),
  prompts: z.array(z.number().int().positive()).min(1).default([1, 4]),
  repeats: z.number().int().positive().default(3),
  out: z.string().optional(),
});
export type RemoteBenchOptions = z.input<typeof RemoteBenchOptionsSchema>;

type Row = {
  variant: "engine" | "plain";
  prompts: number;
  G: number;
  repeat: number;
  seconds: number;
  tokens: number;
  rolloutsPerSec: number;
};

export async function runRemoteBench(
  options: RemoteBenchOptions = {},
  log = (l: string) => process.stderr.write(`${l}\n`),
) {
  const o = RemoteBenchOptionsSchema.parse(options);
  const model = path.resolve(o.model ?? DEFAULT_REMOTE_BENCH_MODEL);
  if (!existsSync(model)) throw new UserError(`--model ${model}: not found`);
  if (!hasLlamaServer())
    throw new UserError(
      `${llamaServerBinary()} not built: run bench/llama-cpp/build-batched-bench.sh llama-server`,
    );
  const slots = Math.max(...o.prompts) * Math.max(...o.G);
  const prompts = benchPrompts(Math.max(...o.prompts));
  // Every slot holds a prompt and its rollout, with room to spare.
  const server = await LlamaServer.start({
    model,
    threads: o.threads,
    parallel: slots,
    contextSize: slots * (o.maxTokens + 128),
  });
  const engine = await openRemoteEngine({ url: server.url, apiKey: undefined, concurrency: slots });
  const rows: Row[] = [];
  try {
    const viaEngine = async (P: number, G: number) => {
      const out = await engine.generate(
        prompts.slice(0, P).map((prompt, p) => ({
          prompt,
          format: "raw" as const,
          n: G,
          maxTokens: o.maxTokens,
          seed: 1 + p * G,
          sampling: BENCH_SAMPLING,
          ignoreEog: true,
        })),
      );
      return out.flat().reduce((s, r) => s + r.tokens.length, 0);
    };
    // The plain client: the same completions, text prompts, no tokenizing, parsing or retries of ours.
    const limit = pLimit(slots);
    const viaPlain = async (P: number, G: number) => {
      const jobs = prompts.slice(0, P).flatMap((prompt, p) =>
        Array.from({ length: G }, (_, i) =>
          limit(async () => {
            const res = await fetch(`${server.url}/completions`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({
                prompt,
                max_tokens: o.maxTokens,
                seed: 1 + p * G + i,
                temperature: 1,
                top_k: 0,
                top_p: 1,
                min_p: 0,
                logprobs: 1,
                post_sampling_probs: true,
                ignore_eos: true,
              }),
            });
            const j = (await res.json()) as { usage: { completion_tokens: number } };
            return j.usage.completion_tokens;
          }),
        ),
      );
      return (await Promise.all(jobs)).reduce((a, b) => a + b, 0);
    };
    await viaEngine(1, 2);
    await viaPlain(1, 2);
    for (let r = 0; r < o.repeats; r++)
      for (const P of o.prompts)
        for (const G of o.G) {
          const order = r % 2 === 0 ? (["engine", "plain"] as const) : (["plain", "engine"] as const);
          for (const variant of order) {
            const t0 = performance.now();
            const tokens = await (variant === "engine" ? viaEngine(P, G) : viaPlain(P, G));
            const seconds = (performance.now() - t0) / 1000;
            rows.push({
              variant,
              prompts: P,
              G,
              repeat: r,
              seconds,
              tokens,
              rolloutsPerSec: (P * G) / seconds,
            });
            log(
              `${variant} ${P}x${G} repeat ${r}: ${((P * G) / seconds).toFixed(2)} rollouts/s, ${(tokens / seconds).toFixed(1)} tok/s`,
            );
          }
        }
  } finally {
    await engine.dispose();
    await server.kill();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const summary = o.prompts.flatMap((P) =>
    o.G.map((G) => {
      const of = (v: Row["variant"]) =>
        median(
          rows.filter((x) => x.variant === v && x.prompts === P && x.G === G).map((x) => x.rolloutsPerSec),
        );
      return { prompts: P, G, engine: of("engine"), plain: of("plain"), ratio: of("engine") / of("plain") };
    }),
  );
  const result = {
    benchmark: "remote",
    date: new Date().toISOString(),
    machine: machineInfo(),
    versions: versions(),
    model: await modelInfo(model),
    server: { bin: llamaServerBinary(), version: engine.info.remote?.version, slots, threads: o.threads },
    maxTokens: o.maxTokens,
    sampling: BENCH_SAMPLING,
    measurements: rows,
    summary,
    target: { engineOverPlain: { want: 0.9, got: Math.min(...summary.map((s) => s.ratio)) } },
  };
  const outFile = o.out ?? path.join(packageRoot(), "bench", "results", `remote-${os.hostname()}.json`);
  await mkdir(path.dirname(outFile), { recursive: true });
  await writeFile(outFile, `${JSON.stringify(result, null, 2)}\n`);
  return { ...result, outFile };
}
