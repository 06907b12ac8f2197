import type { GenerateProgress, Rollout } from "./types.js";

/** Messages between a pool engine and its worker processes (structured clone over IPC). */
export type PoolMethod = "generate" | "score" | "nextTokenProbs" | "setAdapters";

export type PoolRequest =
  | { type: "open"; id: number; options: Record<string, unknown> }
  | { type: "call"; id: number; method: PoolMethod; args: unknown[] }
  | { type: "abort"; id: number }
  | { type: "dispose"; id: number };

/** A request before the pool numbers it. */
export type PoolCall =
  | { type: "open"; options: Record<string, unknown> }
  | { type: "call"; method: PoolMethod; args: unknown[] }
  | { type: "dispose" };

export type PoolReply =
  | { type: "result"; id: number; value: unknown }
  | { type: "error"; id: number; message: string; user: boolean }
  | { type: "rollout"; id: number; rollout: Rollout }
  | { type: "progress"; id: number; progress: GenerateProgress };
