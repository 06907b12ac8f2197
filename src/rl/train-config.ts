import { readFileSync } from "node:fs";
import { z } from "zod";
import { UserError } from "../util/errors.js";
import { LORA_TARGETS } from "./trainer/index.js";

/**
 * The settings of `catrl train` that are not shared with `catrl infer` (those are validated by the same
 * schemas as there). Defaults follow the paper where it has one: G = 8, KL beta 1e-3, clip 0.2 (verl's),
 * LoRA rank 32 (its SFT baseline). The learning rate is LoRA's, not the paper's full-parameter 5e-7.
 */
const int = (min: number) => z.coerce.number().int().min(min);
const num = (min: number) => z.coerce.number().min(min);

export const TrainArgsSchema = z.object({
  model: z.string({ error: "--model is required" }),
  data: z.string({ error: "--data is required" }),
  out: z.string({ error: "--out is required" }),
  eval: z.string().optional(),
  steps: int(1),
  promptsPerStep: int(1),
  g: int(2),
  loraRank: int(1),
  loraAlpha: num(0).optional(),
  loraTargets: z.string(),
  lr: num(0),
  beta: num(0),
  clipEps: num(0),
  /** "auto" (the trainer's memory plan decides) or an upper bound. */
  microBatch: z.union([z.literal("auto"), int(1)], { error: "expected a positive integer or auto" }),
  /** GiB the trainer may use (default: the memory free when it opens). */
  trainMemory: num(0).positive().optional(),
  maxGradNorm: num(0),
  weightDecay: num(0),
  evalEvery: int(0),
  evalLimit: int(1),
  keepAdapters: int(1),
});
export type TrainArgs = z.infer<typeof TrainArgsSchema>;

export const TRAIN_DEFAULTS = {
  steps: "50",
  promptsPerStep: "4",
  g: "8",
  loraRank: "32",
  loraTargets: LORA_TARGETS.join(","),
  lr: "1e-4",
  beta: "1e-3",
  clipEps: "0.2",
  microBatch: "auto",
  maxGradNorm: "1",
  weightDecay: "0",
  evalEvery: "10",
  evalLimit: "32",
  keepAdapters: "3",
} as const;

/**
 * The temperature the trainer's log-probs use: the rollouts' sampling temperature, so that ratios and
 * KL are of the distribution the tokens were drawn from (TRL's GRPOTrainer divides the logits the same
 * way). Greedy rollouts (temperature 0) have no such distribution: the raw model's (1) is used.
 */
export function trainingTemperature(samplingTemperature: number): number {
  return samplingTemperature > 0 ? samplingTemperature : 1;
}

export function parseTargets(list: string): (typeof LORA_TARGETS)[number][] {
  return list.split(",").map((t) => {
    const s = t.trim();
    if (!(LORA_TARGETS as readonly string[]).includes(s)) {
      throw new UserError(`--lora-targets: unknown projection '${s}' (known: ${LORA_TARGETS.join(", ")})`);
    }
    return s as (typeof LORA_TARGETS)[number];
  });
}

/** A config file holds the same keys as the flags, camelCased (`promptsPerStep`, `loraRank`, ...). */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new UserError(`${file}: config file not found`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file}: not JSON (${(e as Error).message})`);
  }
  if (typeof obj !== "object" || obj == null || Array.isArray(obj))
    throw new UserError(`${file}: expected a JSON object`);
  return obj as Record<string, unknown>;
}
