import { z } from "zod";
import { ChatTurnSchema } from "../engine/types.js";
import { type JsonlError, readJsonl } from "./jsonl.js";
import type { PromptRow } from "./prompt-rows.js";

export const HealthBenchCriterionSchema = z.object({
  criterion: z.string().min(1),
  /** Physician-assigned weight; negative for behaviours the response must avoid. */
  points: z.number().refine((p) => p !== 0, "must be nonzero"),
  tags: z.array(z.string()).default([]),
});
export type HealthBenchCriterion = z.infer<typeof HealthBenchCriterionSchema>;

export const HealthBenchRowSchema = z.looseObject({
  prompt_id: z.string().min(1),
  /** The conversation so far (1-13 turns in the hard split), ending with the user turn to answer. */
  prompt: z.array(ChatTurnSchema).min(1),
  rubrics: z.array(HealthBenchCriterionSchema).min(1),
  example_tags: z.array(z.string()).default([]),
});
export type HealthBenchRow = z.infer<typeof HealthBenchRowSchema>;

/** Loads HealthBench JSONL; rows that fail the schema are collected as errors, the rest still load. */
export async function readHealthBench(
  file: string,
): Promise<{ rows: Array<{ line: number; value: HealthBenchRow }>; errors: JsonlError[] }> {
  return readJsonl(file, HealthBenchRowSchema);
}

export function healthBenchPromptRow(row: HealthBenchRow, line: number): PromptRow {
  return { id: row.prompt_id, line, prompt: row.prompt };
}

/**
 * HealthBench's score for one response: points of the criteria it meets (a met negative criterion
 * subtracts) over the sum of the positive points, clipped to [0, 1]. `met[i]` is the grader's verdict on
 * `rubrics[i]`.
 */
export function healthBenchScore(rubrics: readonly HealthBenchCriterion[], met: readonly boolean[]): number {
  if (met.length !== rubrics.length) {
    throw new Error(`healthBenchScore: ${met.length} verdicts for ${rubrics.length} criteria`);
  }
  const possible = rubrics.reduce((s, r) => s + Math.max(r.points, 0), 0);
  if (possible <= 0) throw new Error("healthBenchScore: rubric has no positive points");
  const achieved = rubrics.reduce((s, r, i) => s + (met[i] ? r.points : 0), 0);
  return Math.min(1, Math.max(0, achieved / possible));
}

/** The benchmark score: the mean of per-conversation scores. */
export function healthBenchMean(scores: readonly number[]): number {
  if (scores.length === 0) throw new Error("healthBenchMean: no scores");
  return scores.reduce((a, b) => a + b, 0) / scores.length;
}
