import type { Engine, Prompt, Sampling } from "../../engine/types.js";
import { stripThinking } from "../prompts/think.js";
import type { EstimatorOutput, EstimatorRollout } from "./types.js";

export const SELF_BON_PROMPT_ID = "self-bon-v1";

/** The policy reads its own G responses (and the question) and names the best one. */
export function buildSelfBonPrompt(question: string, responses: readonly string[]): string {
  const blocks = responses.map(
    (r, i) => `## RESPONSE ${i + 1}\n\n${stripThinking(r).trim() || "(empty response)"}`,
  );
  return `Below is a question and ${responses.length} candidate responses. Pick the single best response: the most correct, complete and clearly reasoned one.

# QUESTION

${question.trim()}

# RESPONSES

${blocks.join("\n\n")}

Output only JSON of the form {"best": "<number of the best response>"}.`;
}

/**
 * Self best-of-N for many prompts at once: one constrained generation per prompt (the choice is an enum
 * of the response numbers, so it always parses), all prompts batched in the model's context.
 */
export async function selfBestOfN(
  model: Engine,
  items: { question: string; rollouts: readonly EstimatorRollout[]; seed: number }[],
  sampling: Sampling,
  signal?: AbortSignal,
): Promise<EstimatorOutput[]> {
  const out = await model.generate(
    items.map((it) => ({
      prompt: buildSelfBonPrompt(
        it.question,
        it.rollouts.map((r) => r.text),
      ) as Prompt,
      n: 1,
      maxTokens: 24,
      sampling,
      seed: it.seed,
      jsonSchema: {
        type: "object",
        properties: { best: { enum: it.rollouts.map((_, i) => String(i + 1)) } },
        required: ["best"],
        additionalProperties: false,
      },
    })),
    { signal },
  );
  return items.map((it, k) => {
    const raw = out[k][0]?.text ?? "";
    let index: number | null = null;
    try {
      const n = Number(JSON.parse(raw).best);
      if (Number.isInteger(n) && n >= 1 && n <= it.rollouts.length) index = n - 1;
    } catch {
      // Recorded below: a choice that does not parse picks nothing.
    }
    const r = index == null ? null : it.rollouts[index];
    return {
      estimator: "self-bon",
      index,
      text: r?.text ?? null,
      answer: r?.answer ?? null,
      why: { raw, ...(index == null ? { error: "the model's choice did not parse" } : {}) },
    };
  });
}
