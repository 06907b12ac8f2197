import { z } from "zod";

export const LengthPenaltySchema = z.discriminatedUnion("kind", [
  /** The paper's HealthBench setting: over `maxTokens` the reward is `penalty` (default -1), full stop. */
  z.object({
    kind: z.literal("fixed"),
    maxTokens: z.number().int().min(1),
    penalty: z.number().max(0).default(-1),
  }),
  /** A softer alternative: subtract `perToken` for each token over `maxTokens`, floored at `floor`. */
  z.object({
    kind: z.literal("scaled"),
    maxTokens: z.number().int().min(1),
    perToken: z.number().gt(0),
    floor: z.number().default(-1),
  }),
]);
export type LengthPenalty = z.input<typeof LengthPenaltySchema>;

export type RubricRewardOptions = {
  /** A criterion counts as met when pYes >= threshold. */
  threshold?: number;
  lengthPenalty?: LengthPenalty;
  /** Tokens in the graded response; required with `lengthPenalty`. */
  responseTokens?: number;
};

/**
 * The rubric reward: the fraction of criteria met. With a length penalty and a response over the limit:
 * `fixed` replaces the reward with the penalty (so every over-long response ranks below every response
 * within the limit, whatever its rubric score; the paper's "-1 over 750 tokens"); `scaled` subtracts
 * `perToken x excess` from the fraction, floored at `floor`. Within the limit the penalty has no effect.
 */
export function rubricReward(
  verdicts: ReadonlyArray<{ pYes: number }>,
  options: RubricRewardOptions = {},
): number {
  if (verdicts.length === 0) throw new Error("rubricReward: no verdicts");
  const threshold = options.threshold ?? 0.5;
  for (const v of verdicts) {
    if (!(v.pYes >= 0 && v.pYes <= 1)) throw new Error(`rubricReward: pYes ${v.pYes} is not in [0, 1]`);
  }
  const met = verdicts.filter((v) => v.pYes >= threshold).length / verdicts.length;
  if (!options.lengthPenalty) return met;
  const penalty = LengthPenaltySchema.parse(options.lengthPenalty);
  if (options.responseTokens === undefined)
    throw new Error("rubricReward: lengthPenalty needs responseTokens");
  const excess = options.responseTokens - penalty.maxTokens;
  if (excess <= 0) return met;
  if (penalty.kind === "fixed") return penalty.penalty;
  return Math.max(penalty.floor, met - penalty.perToken * excess);
}
