import { checkRollouts, type Estimator } from "./types.js";

/** Mean negative log-prob per token; null for a rollout without tokens (nothing to judge it by). */
export function meanNll(logprobs: readonly number[] | undefined): number | null {
  if (!logprobs || logprobs.length === 0) return null;
  let s = 0;
  for (const lp of logprobs) s -= lp;
  return s / logprobs.length;
}

/**
 * Minimum perplexity: the rollout with the lowest mean negative log-prob (equivalently the lowest
 * per-token perplexity); ties go to the earlier rollout. Rollouts without log-probs are skipped; if none
 * has any, that is a caller error (the engine was not asked for them).
 */
export function minPplEstimator(): Estimator {
  return {
    name: "min-ppl",
    async estimate(input) {
      checkRollouts(input, "min-ppl");
      const nll = input.rollouts.map((r) => meanNll(r.logprobs));
      let index = -1;
      nll.forEach((v, i) => {
        if (v !== null && Number.isFinite(v) && (index < 0 || v < nll[index]!)) index = i;
      });
      if (index < 0) throw new Error("min-ppl: no rollout has token log-probs");
      const r = input.rollouts[index];
      return {
        estimator: "min-ppl",
        index,
        text: r.text,
        answer: r.answer ?? null,
        why: { meanNll: nll, perplexity: nll.map((v) => (v === null ? null : Math.exp(v))) },
      };
    },
  };
}
