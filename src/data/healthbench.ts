import { z } from "zod";
import { ChatTurnSchema } from "../engine/types.js";
import { Mulberry32, mix32 } from "../modelgen/rng.js";
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
 * HealthBench's score for one response, as OpenAI simple-evals `healthbench_eval.py` (`calculate_score`)
 * computes it: the points of the criteria it meets (a met negative criterion subtracts) over the sum of the
 * positive points, **not clipped** (an example can score below 0; only the benchmark mean is clipped, in
 * `healthBenchOverall`). `met[i]` is the grader's verdict on `rubrics[i]`; `null` marks a criterion the
 * grader could not judge, which is left out of both the numerator and the denominator (simple-evals
 * retries until every criterion parses; we report instead of guessing). Throws when no judged criterion
 * carries positive points.
 */
export function healthBenchScore(
  rubrics: readonly HealthBenchCriterion[],
  met: readonly (boolean | null)[],
): number {
  if (met.length !== rubrics.length) {
    throw new Error(`healthBenchScore: ${met.length} verdicts for ${rubrics.length} criteria`);
  }
  if (!rubrics.some((r) => r.points > 0)) throw new Error("healthBenchScore: rubric has no positive points");
  const score = scoreOf(rubrics, met);
  if (score == null) throw new Error("healthBenchScore: no criterion with positive points was judged");
  return score;
}

/** `calculate_score` over the judged criteria: null when they carry no positive points. */
function scoreOf(
  rubrics: ReadonlyArray<{ points: number }>,
  met: readonly (boolean | null)[],
): number | null {
  let possible = 0;
  let achieved = 0;
  rubrics.forEach((r, i) => {
    if (met[i] == null) return;
    if (r.points > 0) possible += r.points;
    if (met[i]) achieved += r.points;
  });
  return possible > 0 ? achieved / possible : null;
}

/** The plain mean of scores, unclipped. HealthBench's benchmark score is `healthBenchOverall`. */
export function healthBenchMean(scores: readonly number[]): number {
  if (scores.length === 0) throw new Error("healthBenchMean: no scores");
  return scores.reduce((a, b) => a + b, 0) / scores.length;
}

/** Bootstrap resamples for the std of the clipped mean: simple-evals' `_compute_clipped_stats` draws 1000. */
export const HEALTHBENCH_BOOTSTRAP_SAMPLES = 1000;
/** Seed of the bootstrap draw when none is given, so the reported std is reproducible. */
export const HEALTHBENCH_BOOTSTRAP_SEED = 0;

/** One graded response: its rubric, the verdict per criterion (null = unjudged) and its example tags. */
export type HealthBenchExample = {
  rubrics: ReadonlyArray<{ criterion: string; points: number; tags?: readonly string[] }>;
  met: readonly (boolean | null)[];
  /** The row's `example_tags` (`theme:*`, ...): each gets the example's overall score. */
  exampleTags?: readonly string[];
};

/** A metric as simple-evals reports it: the mean clipped to [0, 1], its bootstrap std, and n. */
export type HealthBenchStat = { score: number; bootstrapStd: number; n: number };

export type HealthBenchOverall = {
  /** The HealthBench score: the mean of the unclipped per-example scores, then clipped to [0, 1]. */
  overall: number;
  /** Std of the clipped mean over bootstrap resamples of the examples (simple-evals `bootstrap_std`). */
  bootstrapStd: number;
  /** Examples that entered the mean. */
  n: number;
  /** Unclipped score per example, in input order; null when none of its positive criteria was judged. */
  perExample: (number | null)[];
  /**
   * Per tag: rubric-level tags (`axis:*`, `level:*`, `cluster:*`) score each example on the criteria that
   * carry the tag (an example only counts when those include positive points); example-level tags
   * (`theme:*`) take the example's overall score. Each is aggregated as the overall score is.
   */
  byTag: Record<string, HealthBenchStat>;
  /** Criteria without a verdict, left out of numerator and denominator. */
  unjudged: number;
  /** Examples left out because no criterion with positive points was judged. */
  unscored: number;
};

/**
 * The HealthBench benchmark score exactly as simple-evals `healthbench_eval.py` aggregates it
 * (`calculate_score` per example, `_aggregate_get_clipped_mean` + `_compute_clipped_stats` over them):
 * unclipped per-example scores, their mean clipped to [0, 1], and the standard deviation (population,
 * numpy's default) of the clipped means of `bootstrapSamples` resamples with replacement. The resampling
 * is seeded (`seed`), so the std is reproducible; simple-evals uses numpy's global RNG, so its std moves
 * from run to run by about 1/sqrt(2 x 1000) of itself while ours is fixed for a seed.
 */
export function healthBenchOverall(
  examples: readonly HealthBenchExample[],
  options: { bootstrapSamples?: number; seed?: number } = {},
): HealthBenchOverall {
  if (examples.length === 0) throw new Error("healthBenchOverall: no examples");
  const samples = options.bootstrapSamples ?? HEALTHBENCH_BOOTSTRAP_SAMPLES;
  const seed = options.seed ?? HEALTHBENCH_BOOTSTRAP_SEED;
  const perExample: (number | null)[] = [];
  const overallValues: number[] = [];
  const tagValues = new Map<string, number[]>();
  const push = (tag: string, v: number) => {
    const list = tagValues.get(tag) ?? [];
    list.push(v);
    tagValues.set(tag, list);
  };
  let unjudged = 0;
  examples.forEach((ex, e) => {
    if (ex.met.length !== ex.rubrics.length) {
      throw new Error(
        `healthBenchOverall: example ${e}: ${ex.met.length} verdicts for ${ex.rubrics.length} criteria`,
      );
    }
    unjudged += ex.met.filter((m) => m == null).length;
    const score = scoreOf(ex.rubrics, ex.met);
    perExample.push(score);
    if (score == null) return;
    overallValues.push(score);
    for (const tag of new Set(ex.exampleTags ?? [])) push(tag, score);
    // Rubric-level tags: the example's score on only the criteria carrying that tag.
    const byTag = new Map<string, number[]>();
    ex.rubrics.forEach((r, i) => {
      for (const tag of new Set(r.tags ?? [])) byTag.set(tag, [...(byTag.get(tag) ?? []), i]);
    });
    for (const [tag, idx] of byTag) {
      const s = scoreOf(
        idx.map((i) => ex.rubrics[i]),
        idx.map((i) => ex.met[i]),
      );
      if (s != null) push(tag, s);
    }
  });
  if (overallValues.length === 0) {
    throw new Error("healthBenchOverall: no example has a judged criterion with positive points");
  }
  const stat = (values: number[], salt: number): HealthBenchStat => ({
    score: clippedMean(values),
    bootstrapStd: bootstrapStd(values, samples, mix32(seed, salt)),
    n: values.length,
  });
  const overall = stat(overallValues, 0);
  const tags = [...tagValues.keys()].sort();
  return {
    overall: overall.score,
    bootstrapStd: overall.bootstrapStd,
    n: overall.n,
    perExample,
    byTag: Object.fromEntries(tags.map((t, k) => [t, stat(tagValues.get(t)!, k + 1)])),
    unjudged,
    unscored: perExample.filter((s) => s == null).length,
  };
}

function clippedMean(values: readonly number[]): number {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.min(1, Math.max(0, mean));
}

/** Population std of the clipped means of `samples` resamples (with replacement, same size) of `values`. */
function bootstrapStd(values: readonly number[], samples: number, seed: number): number {
  const n = values.length;
  const rng = new Mulberry32(seed);
  const u = new Float32Array(n);
  const means = new Float64Array(samples);
  for (let b = 0; b < samples; b++) {
    rng.fillUniform(u, 0.5);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[Math.min(n - 1, Math.floor((u[i] + 0.5) * n))];
    means[b] = Math.min(1, Math.max(0, sum / n));
  }
  const m = means.reduce((a, b) => a + b, 0) / samples;
  return Math.sqrt(means.reduce((a, b) => a + (b - m) ** 2, 0) / samples);
}
