import path from "node:path";
import { packageRoot } from "../util/version.js";

/**
 * The model `catrl demo` runs when no --model is given. It is the one real model committed to the
 * repository (models/stories260K.gguf: 1.1 MB, MIT, from the llama2.c project; see models/README.md), so
 * that a fresh clone shows CaT learning without any download: its rollouts differ, the anchor's greedy
 * synthesis picks one, rewards have variance and a few GRPO steps raise them. To make another shipped
 * model the demo's default, change this one place (and the prompts/task the demo pairs with it).
 */
export const DEMO_MODEL_FILE = "models/stories260K.gguf";

export function demoModelPath(): string {
  return path.join(packageRoot(), DEMO_MODEL_FILE);
}
