import { UserError } from "../util/errors.js";
import type { AdapterSpec, Engine } from "./types.js";

/** An engine that can load LoRA adapters: what CaT-RL's policy must be. */
export type AdapterEngine = Engine & { setAdapters(adapters: AdapterSpec[]): Promise<void> };

export function canLoadAdapters(engine: Engine): engine is AdapterEngine {
  return typeof engine.setAdapters === "function";
}

/** Refuses, in one line naming the flag, an engine that cannot load the adapters training writes. */
export function requireAdapters(engine: Engine, flag: string): AdapterEngine {
  if (!canLoadAdapters(engine))
    throw new UserError(
      `${flag} ${engine.info.path}: this engine cannot load LoRA adapters, which training swaps every step; give a local GGUF as the policy (the anchor and judge may stay on a server)`,
    );
  return engine;
}
