import { z } from "zod";

/**
 * The files of a training run directory (`catrl train --out DIR`): the training loop writes them, the
 * report (src/report) reads them. Both sides use these schemas so the format has one definition.
 *
 * Steps are lenient about presence (early or skipped steps lack a loss, a KL, timings...) but strict about
 * types. Metric fields also accept `null` and read it as "absent": `JSON.stringify` writes NaN and
 * Infinity as `null`, and a diverged step must still show up in the report rather than reject the line.
 */

const metric = z.number().nullish();
const nonNegative = z.number().min(0).nullish();
const share = z.number().min(0).max(1).nullish();
const count = z.number().int().min(0).nullish();
/** ISO 8601 with an offset or Z, as `new Date().toISOString()` writes. */
const timestamp = z.iso.datetime({ offset: true });

export const StepTimeSchema = z.object({
  rollouts_s: nonNegative,
  synthesis_s: nonNegative,
  judging_s: nonNegative,
  training_s: nonNegative,
  /** Wall time of the whole step; may exceed the sum of the parts (bookkeeping, checkpointing). */
  total_s: nonNegative,
});
export type StepTime = z.infer<typeof StepTimeSchema>;

/** One line of DIR/steps.jsonl: one optimisation step. */
export const StepRecordSchema = z.object({
  step: z.number().int().min(0),
  reward_mean: metric,
  reward_std: nonNegative,
  /** Groups whose G rewards were all equal, so their GRPO advantages are zero. */
  zero_variance_groups: count,
  zero_variance_share: share,
  kl: metric,
  loss: metric,
  grad_norm: nonNegative,
  clip_fraction: share,
  /** Absent means false. */
  skipped: z.boolean().optional(),
  skip_reason: z.string().optional(),
  tokens_generated: count,
  /** Sequences the trainer left out because they could not fit its memory budget even alone. */
  sequences_skipped: count,
  time: StepTimeSchema.optional(),
  rollouts_per_s: nonNegative,
  /** File name of the adapter (LoRA) saved after this step, relative to DIR. */
  adapter: z.string().min(1).optional(),
  timestamp: timestamp.optional(),
});
export type StepRecord = z.infer<typeof StepRecordSchema>;

/** G (as a decimal string, e.g. "8") -> accuracy of synthesis over G rollouts. */
export const AccuracyByGSchema = z.record(
  z.string().regex(/^[1-9][0-9]*$/, "G must be a positive integer"),
  share,
);

/** One line of DIR/evals.jsonl: one evaluation of the policy as of `step`. */
export const EvalRecordSchema = z.object({
  step: z.number().int().min(0),
  n_prompts: z.number().int().min(1),
  /** The trained policy, one sample per prompt. */
  policy_single_accuracy: z.number().min(0).max(1),
  /** Inference-time synthesis over G rollouts of the policy. */
  synthesis_accuracy: z.number().min(0).max(1),
  majority_accuracy: share,
  accuracy_by_g: AccuracyByGSchema.optional(),
  /**
   * False: the eval set has no gold answers and every "accuracy" is agreement with the synthesized
   * reference instead.
   */
  gold_available: z.boolean(),
  timestamp: timestamp.optional(),
});
export type EvalRecord = z.infer<typeof EvalRecordSchema>;

export const ModelEntrySchema = z.object({
  /** policy, anchor, judge, ... */
  role: z.string().min(1),
  path: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "sha256 must be 64 lowercase hex digits"),
  bytes: z.number().int().min(0),
});
export type ModelEntry = z.infer<typeof ModelEntrySchema>;

/** DIR/run.json: what ran, with what, where. Written once when the run starts. */
export const RunManifestSchema = z.object({
  kind: z.literal("catrl-train"),
  /** Version of this file's format. */
  version: z.union([z.string().min(1), z.number().int().min(1)]),
  created: timestamp,
  /** The resolved training config; its shape belongs to the training loop, so it is not checked here. */
  config: z.record(z.string(), z.unknown()),
  /** Named seeds (sampling, data order, init...). */
  seeds: z.record(z.string(), z.number().int()),
  models: z.array(ModelEntrySchema),
  versions: z.object({
    catrl: z.string().min(1),
    node: z.string().min(1),
    node_llama_cpp: z.string().min(1),
    ggml: z.string().min(1).optional(),
  }),
  /** Hostname, platform, CPU/GPU description...: shown as is. */
  host: z.union([z.string(), z.record(z.string(), z.unknown())]),
});
export type RunManifest = z.infer<typeof RunManifestSchema>;

export const RUN_FILES = {
  steps: "steps.jsonl",
  evals: "evals.jsonl",
  run: "run.json",
} as const;
