/**
 * Isolates node-llama-cpp's batching from the engine: G sequences of one context each run an
 * evaluateWithMetadata loop (as src/engine/sequence-generate.ts does), with or without yielding one
 * macrotask per token before asking for the next. Prints decode batch sizes and tokens/s for both.
 * Run: node dist/bench/profile-sequence-loop.js <model.gguf> [G] [maxTokens] [rounds]
 */
import type { LlamaContext, Token } from "node-llama-cpp";
import { loadLlama } from "../src/engine/llama-runtime.js";
import { BENCH_PROMPTS } from "./rollouts/prompts.js";

type Addon = { initBatch(n: number): void };

function countBatches(context: LlamaContext): number[] {
  const holder = context as unknown as { _ctx: Addon };
  const real = holder._ctx;
  const sizes: number[] = [];
  holder._ctx = new Proxy(real, {
    get(target, prop) {
      if (prop === "initBatch") {
        return (n: number) => {
          sizes.push(n);
          real.initBatch(n);
        };
      }
      const v = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return sizes;
}

async function runOnce(
  context: LlamaContext,
  prompt: Token[],
  G: number,
  maxTokens: number,
  yieldEachToken: boolean,
) {
  const sizes = countBatches(context);
  const t0 = performance.now();
  let tokens = 0;
  await Promise.all(
    Array.from({ length: G }, async (_, g) => {
      const seq = context.getSequence();
      try {
        const gen = seq.evaluateWithMetadata(
          prompt,
          { confidence: true },
          { temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1 + g },
        );
        let n = 0;
        for await (const _out of gen) {
          tokens++;
          if (++n >= maxTokens) break;
          if (yieldEachToken) await new Promise<void>((r) => setImmediate(r));
        }
      } finally {
        seq.dispose();
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const hist = new Map<number, number>();
  for (const s of sizes.slice(1)) hist.set(s, (hist.get(s) ?? 0) + 1);
  return {
    yieldEachToken,
    tokensPerSec: Math.round((tokens / seconds) * 10) / 10,
    decodes: sizes.length,
    generationBatchSizes: Object.fromEntries([...hist].sort((a, b) => b[0] - a[0])),
  };
}

/**
 * One driver for all sequences: each step starts every active sequence's one-token controlledEvaluate in
 * the same tick, so all of them are queued before node-llama-cpp dispatches, and awaits them all.
 */
async function runLockstep(context: LlamaContext, prompt: Token[], G: number, maxTokens: number) {
  const sizes = countBatches(context);
  const t0 = performance.now();
  let tokens = 0;
  const seqs = Array.from({ length: G }, () => context.getSequence());
  const opts = (g: number, step: number) => ({
    token: true,
    confidence: true,
    options: { temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1 + g + step * G },
  });
  // Prompt: all but the last token without output, the last one samples the first token.
  let last = await Promise.all(
    seqs.map(async (s, g) => {
      const input = prompt.map((t, i) =>
        i === prompt.length - 1 ? ([t, { generateNext: opts(g, 0) }] as const) : t,
      );
      const out = await s.controlledEvaluate(input as never);
      return out[prompt.length - 1]?.next.token as Token;
    }),
  );
  tokens += G;
  for (let step = 1; step < maxTokens; step++) {
    last = await Promise.all(
      seqs.map(async (s, g) => {
        const out = await s.controlledEvaluate([[last[g], { generateNext: opts(g, step) }]]);
        return out[0]?.next.token as Token;
      }),
    );
    tokens += G;
  }
  for (const s of seqs) s.dispose();
  const seconds = (performance.now() - t0) / 1000;
  const hist = new Map<number, number>();
  for (const s of sizes.slice(1)) hist.set(s, (hist.get(s) ?? 0) + 1);
  return {
    lockstep: true,
    tokensPerSec: Math.round((tokens / seconds) * 10) / 10,
    decodes: sizes.length,
    generationBatchSizes: Object.fromEntries([...hist].sort((a, b) => b[0] - a[0])),
  };
}

/**
 * A step barrier over per-sequence generators (keeps evaluateWithMetadata: persistent samplers, grammars,
 * repeat penalty): a sequence that got its token waits until every live sequence has one; the last one
 * releases them all from a macrotask, after node-llama-cpp's dispatch loop has found nothing queued and
 * let go, so all of them queue before the next dispatch.
 */
class StepBarrier {
  private waiting: Array<() => void> = [];
  constructor(private live: number) {}
  arrive(): Promise<void> {
    const p = new Promise<void>((r) => this.waiting.push(r));
    this.check();
    return p;
  }
  leave(): void {
    this.live--;
    this.check();
  }
  private check(): void {
    if (this.live > 0 && this.waiting.length >= this.live) {
      const release = this.waiting;
      this.waiting = [];
      setImmediate(() => {
        for (const r of release) r();
      });
    }
  }
}

async function runBarrier(context: LlamaContext, prompt: Token[], G: number, maxTokens: number) {
  const sizes = countBatches(context);
  const t0 = performance.now();
  let tokens = 0;
  const barrier = new StepBarrier(G);
  await Promise.all(
    Array.from({ length: G }, async (_, g) => {
      const seq = context.getSequence();
      try {
        const gen = seq.evaluateWithMetadata(
          prompt,
          { confidence: true },
          { temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1 + g },
        );
        let n = 0;
        for await (const _out of gen) {
          tokens++;
          if (++n >= maxTokens) break;
          await barrier.arrive();
        }
      } finally {
        barrier.leave();
        seq.dispose();
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const hist = new Map<number, number>();
  for (const s of sizes.slice(1)) hist.set(s, (hist.get(s) ?? 0) + 1);
  return {
    barrier: true,
    tokensPerSec: Math.round((tokens / seconds) * 10) / 10,
    decodes: sizes.length,
    generationBatchSizes: Object.fromEntries([...hist].sort((a, b) => b[0] - a[0])),
  };
}

const isMain = process.argv[1]?.endsWith("profile-sequence-loop.js");
if (isMain) {
  const [modelPath, G = "16", maxTokens = "32", rounds = "2"] = process.argv.slice(2);
  const llama = await loadLlama({ gpu: "cpu", threads: 1 });
  const model = await llama.loadModel({ modelPath });
  const prompt = model.tokenize(BENCH_PROMPTS[0]) as Token[];
  for (let r = 0; r < Number(rounds); r++) {
    for (const y of [false, "lockstep", "barrier"] as const) {
      const context = await model.createContext({
        sequences: Number(G),
        contextSize: prompt.length + Number(maxTokens) + 8,
        threads: 1,
        flashAttention: false,
        // The barrier run also delays node-llama-cpp's dispatch by a timer tick instead of setImmediate, so
        // sequences whose queueing takes more than one macrotask still make the batch.
        ...(y === "barrier"
          ? { batching: { dispatchSchedule: (d: () => void) => void setTimeout(d, 0) } }
          : {}),
      });
      const res =
        y === "lockstep"
          ? await runLockstep(context, prompt, Number(G), Number(maxTokens))
          : y === "barrier"
            ? await runBarrier(context, prompt, Number(G), Number(maxTokens))
            : await runOnce(context, prompt, Number(G), Number(maxTokens), y);
      process.stdout.write(`${JSON.stringify(res)}\n`);
      await context.dispose();
    }
  }
  await model.dispose();
}
