import { checkRollouts, type Estimator } from "./types.js";

/** The baseline: the first rollout, as one sample from the policy would be. */
export function singleEstimator(): Estimator {
  return {
    name: "single",
    async estimate(input) {
      checkRollouts(input, "single");
      const r = input.rollouts[0];
      return { estimator: "single", index: 0, text: r.text, answer: r.answer ?? null, why: {} };
    },
  };
}
