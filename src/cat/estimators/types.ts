import { answersMatch, type MatchMode } from "../answers/match.js";
import type { AnswerChecker } from "../answers/pool.js";

/** One of the G rollouts as an estimator sees it. */
export type EstimatorRollout = {
  text: string;
  /** Natural log-prob of each generated token (the engine's `Rollout.logprobs`); needed by min-ppl. */
  logprobs?: readonly number[];
  /** The extracted final answer (verifiable tasks); null when the rollout has none. */
  answer?: string | null;
};

export type EstimatorInput = {
  rollouts: readonly EstimatorRollout[];
  /** The question, for estimators that may see it (self-bon); the synthesis anchor is question-blind by default. */
  question?: string;
  signal?: AbortSignal;
};

/**
 * What an estimator chose. `index` points at a rollout when the estimate is one of them (single,
 * majority, min-ppl, self-bon); synthesis writes a new text and has `index: null`. `why` is a small
 * JSON-serialisable record for the run log (votes, perplexities, the anchor's summary...).
 */
export type EstimatorOutput = {
  estimator: string;
  index: number | null;
  text: string | null;
  answer: string | null;
  why: Record<string, unknown>;
};

export interface Estimator {
  readonly name: string;
  estimate(input: EstimatorInput): Promise<EstimatorOutput>;
}

/**
 * Decides equivalence for a batch of answer pairs, in order. Batched and async so math mode can go
 * through the worker pool; a pair that timed out counts as not equivalent.
 */
export type AnswerMatcher = (pairs: ReadonlyArray<{ a: string; b: string }>) => Promise<boolean[]>;

/** In-process matcher: fine for `exact` mode, no timeout protection in `math` mode. */
export function inlineMatcher(mode: MatchMode): AnswerMatcher {
  return async (pairs) => pairs.map((p) => answersMatch(p.a, p.b, { mode }));
}

/** Matcher backed by the worker pool, so a pathological answer cannot hang a run. */
export function poolMatcher(checker: AnswerChecker, mode: MatchMode): AnswerMatcher {
  return async (pairs) => (await checker.check([...pairs], mode)).map((r) => r.match);
}

export function checkRollouts(input: EstimatorInput, estimator: string): void {
  if (input.rollouts.length === 0) throw new Error(`${estimator}: no rollouts`);
  input.signal?.throwIfAborted();
}
