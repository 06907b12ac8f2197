/**
 * Why the engine falls short of llama-batched-bench: counts llama_decode calls and their batch sizes,
 * and the time spent inside decode and inside sampling, during one `engine.generate` of G rollouts.
 * Run: node dist/bench/profile-engine-batching.js <model.gguf> [G] [maxTokens] [threads]
 */
import { openLlamaEngine } from "../src/engine/llama-engine.js";
import { BENCH_PROMPTS } from "./rollouts/prompts.js";
import { BENCH_SAMPLING } from "./rollouts.js";

type Addon = {
  initBatch(n: number): void;
  decodeBatch(): Promise<void>;
  sampleToken(...args: unknown[]): Promise<unknown>;
};

export async function profileEngineBatching(
  modelPath: string,
  G: number,
  maxTokens: number,
  threads: number,
) {
  const engine = await openLlamaEngine({ modelPath, threads, gpu: "cpu" });
  const req = {
    prompt: BENCH_PROMPTS[0],
    n: G,
    maxTokens,
    sampling: BENCH_SAMPLING,
    seed: 1,
    format: "raw" as const,
  };
  await engine.generate([req]); // creates the context this run reuses (same shape)
  // The addon's methods are read-only native properties, so the context gets a proxy in front of it.
  const holder = (engine as unknown as { context: { _ctx: Addon } }).context;
  const real = holder._ctx;
  const sizes: number[] = [];
  const times: number[] = [];
  let decodeMs = 0;
  let decodeCpuMs = 0;
  let sampleCalls = 0;
  let sampleBusy = 0;
  let inFlight = 0;
  let busySince = 0;
  const wrapped: Partial<Addon> = {
    initBatch: (n) => {
      sizes.push(n);
      real.initBatch(n);
    },
    decodeBatch: async () => {
      const t = performance.now();
      const cpu = process.cpuUsage();
      await real.decodeBatch();
      const d = process.cpuUsage(cpu);
      decodeCpuMs += (d.user + d.system) / 1000;
      times.push(performance.now() - t);
      decodeMs += performance.now() - t;
    },
    // Wall time during which at least one sampling call is pending (they overlap on the libuv pool).
    sampleToken: async (...args) => {
      sampleCalls++;
      if (inFlight++ === 0) busySince = performance.now();
      try {
        return await real.sampleToken(...args);
      } finally {
        if (--inFlight === 0) sampleBusy += performance.now() - busySince;
      }
    },
  };
  holder._ctx = new Proxy(real, {
    get(target, prop) {
      const w = wrapped[prop as keyof Addon];
      if (w) return w;
      const v = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  const t0 = performance.now();
  const out = await engine.generate([req]);
  const wallMs = performance.now() - t0;
  await engine.dispose();
  const tokens = out.flat().reduce((s, r) => s + r.tokens.length, 0);
  const hist = new Map<number, number>();
  for (const s of sizes) hist.set(s, (hist.get(s) ?? 0) + 1);
  return {
    G,
    tokens,
    wallMs,
    decodes: sizes.length,
    decodesPerStep: sizes.length / maxTokens,
    batchSizeHistogram: Object.fromEntries([...hist].sort((a, b) => b[0] - a[0])),
    decodeMs,
    /** Process CPU time while decodes were in flight: below decodeMs means the decode thread waited for a core. */
    decodeCpuMs,
    sampleCalls,
    samplePendingMs: sampleBusy,
    outsideDecodeMs: wallMs - decodeMs,
    tokensPerSec: tokens / (wallMs / 1000),
    decodeMsPercentiles: [0.1, 0.5, 0.9, 1].map((q) => {
      const gen = times.slice(1).sort((a, b) => a - b);
      return Math.round(gen[Math.min(gen.length - 1, Math.floor(q * gen.length))] * 10) / 10;
    }),
    /** Decode-only rate of the generation batches (the first decode is the prompt), as llama.cpp's S_TG. */
    generationDecodeTokensPerSec:
      sizes.slice(1).reduce((a, b) => a + b, 0) / (times.slice(1).reduce((a, b) => a + b, 0) / 1000),
  };
}

const isMain = process.argv[1]?.endsWith("profile-engine-batching.js");
if (isMain) {
  const [model, G = "16", maxTokens = "32", threads = "1"] = process.argv.slice(2);
  const r = await profileEngineBatching(model, Number(G), Number(maxTokens), Number(threads));
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
}
