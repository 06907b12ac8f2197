import type { Engine } from "../../engine/types.js";
import { permutation } from "../../util/rng.js";
import { stripThinking } from "../prompts/think.js";
import { meanNll } from "./min-ppl.js";
import type { EstimatorOutput, EstimatorRollout } from "./types.js";

/**
 * Mutual predictability (a baseline of the CaT paper): each rollout is placed last after the other G-1 in
 * a random order, and scored by its mean negative log-prob in that context; the rollout the others make
 * most predictable wins. All G x prompts scorings go to the engine in one batch. Teacher-forced scoring
 * reads the full next-token distribution at every position, so this costs more than the other baselines
 * on large vocabularies; it is not in the default estimator list.
 */
export function buildMutualPrompt(question: string, others: readonly string[]): string {
  const blocks = others.map(
    (r, i) => `## RESPONSE ${i + 1}\n\n${stripThinking(r).trim() || "(empty response)"}`,
  );
  return `${question.trim()}\n\n${blocks.join("\n\n")}\n\n## RESPONSE ${others.length + 1}\n\n`;
}

export async function mutualPredictability(
  model: Engine,
  items: { question: string; rollouts: readonly EstimatorRollout[]; seed: number }[],
  signal?: AbortSignal,
): Promise<EstimatorOutput[]> {
  const requests = items.flatMap((it) =>
    it.rollouts.map((r, i) => {
      const others = it.rollouts.filter((_, j) => j !== i);
      const order = permutation(others.length, it.seed + i);
      return {
        prompt: buildMutualPrompt(
          it.question,
          order.map((k) => others[k].text),
        ),
        continuation: stripThinking(r.text).trim() || " ",
        format: "raw" as const,
      };
    }),
  );
  const scored = await model.score(requests, { signal });
  let k = 0;
  return items.map((it) => {
    const nll = it.rollouts.map(() => meanNll(scored[k++].logprobs));
    let index = -1;
    nll.forEach((v, i) => {
      if (v !== null && Number.isFinite(v) && (index < 0 || v < nll[index]!)) index = i;
    });
    const r = index < 0 ? null : it.rollouts[index];
    return {
      estimator: "mutual-predictability",
      index: index < 0 ? null : index,
      text: r?.text ?? null,
      answer: r?.answer ?? null,
      why: { meanNll: nll },
    };
  });
}
