import { type LlamaEngine, type LlamaEngineOptions, openLlamaEngine } from "./llama-engine.js";
import type { PoolReply, PoolRequest } from "./pool-protocol.js";

/**
 * One pool worker: a child process that owns one model and context on its device (the parent sets
 * CUDA_VISIBLE_DEVICES) and runs the Engine calls its parent sends, streaming finished rollouts back.
 */

let engine: LlamaEngine | null = null;
const aborts = new Map<number, AbortController>();

function reply(msg: PoolReply): void {
  process.send?.(msg);
}

async function handle(msg: PoolRequest): Promise<void> {
  if (msg.type === "abort") {
    aborts.get(msg.id)?.abort();
    return;
  }
  if (msg.type === "dispose") {
    await engine?.dispose();
    engine = null;
    reply({ type: "result", id: msg.id, value: null });
    process.disconnect?.();
    return;
  }
  const ac = new AbortController();
  aborts.set(msg.id, ac);
  try {
    let value: unknown;
    if (msg.type === "open") {
      engine = await openLlamaEngine(msg.options as LlamaEngineOptions);
      value = engine.info;
    } else {
      if (!engine) throw new Error("pool worker: no engine open");
      const signal = ac.signal;
      switch (msg.method) {
        case "generate":
          value = await engine.generate(msg.args[0] as never, {
            signal,
            onRollout: (rollout) => reply({ type: "rollout", id: msg.id, rollout }),
            onProgress: (progress) => reply({ type: "progress", id: msg.id, progress }),
          });
          break;
        case "score":
          value = await engine.score(msg.args[0] as never, { signal });
          break;
        case "nextTokenProbs":
          value = await engine.nextTokenProbs(msg.args[0] as never, { signal });
          break;
        case "setAdapters":
          value = await engine.setAdapters(msg.args[0] as never);
          break;
      }
    }
    reply({ type: "result", id: msg.id, value: value ?? null });
  } catch (e) {
    const err = e as Error & { exitCode?: number };
    reply({ type: "error", id: msg.id, message: err.message, user: err.name === "UserError" });
  } finally {
    aborts.delete(msg.id);
  }
}

process.on("message", (msg: PoolRequest) => {
  void handle(msg);
});
// The parent went away: nothing left to serve.
process.on("disconnect", () => {
  void (engine?.dispose() ?? Promise.resolve()).finally(() => process.exit(0));
});
