import { z } from "zod";
import { UserError } from "../../util/errors.js";

/**
 * The synthesis prompts the frozen anchor reads. Their text is versioned and exported so a run can
 * record exactly what the anchor saw; changing a word means a new id, never an edit in place.
 */
export type SynthesisTemplate = {
  id: SynthesisTemplateId;
  /** reasoning: math with a boxed final answer; freeform: open-ended answers (health dialogue). */
  kind: "reasoning" | "freeform";
  /** The instructions placed before the responses. */
  instructions: string;
  /** Whether the output has a "# SUMMARY" section before "# UNIFIED RESPONSE". */
  hasSummary: boolean;
};

export const SynthesisTemplateIdSchema = z.enum(["reasoning-v1", "freeform-v1"]);
export type SynthesisTemplateId = z.infer<typeof SynthesisTemplateIdSchema>;

// Follows the paper's reasoning prompt as described in docs/cat-method.md (paraphrased there, so this is
// our wording of the same instructions).
export const REASONING_V1_INSTRUCTIONS = `You are given several responses to the same problem. Aggregate them into a single, cohesive response.

Identify the common themes, reconcile the differences and synthesize the responses. Keep the key insights of every response, and make the result logically consistent and comprehensive. Do not discard unique or contradictory insights: address them, decide which reasoning is correct, and explain why.

Write your output in exactly two sections:

# SUMMARY
A summary that integrates the responses, states where they contradict each other, and proposes a resolution for each contradiction.

# UNIFIED RESPONSE
A complete, self-contained new solution, written from scratch using the best reasoning above. End it with the line:
Therefore, the final answer is: $\\boxed{answer}$`;

// Reconstructed (the paper does not publish this one verbatim): the same aggregation without a summary,
// and a length limit so the pseudo-reference does not reward verbosity.
export const FREEFORM_V1_INSTRUCTIONS = `You are given several responses to the same request. Combine them into a single, cohesive response.

Identify the common themes, reconcile the differences, and keep all the key insights of every response. Where the responses disagree, give the answer best supported by the responses as a whole. Write the result as a direct reply to the original request, not as a description of the responses.

Output a single section:

# UNIFIED RESPONSE
The combined response. It must not be much longer than the individual responses.`;

export const SYNTHESIS_TEMPLATES: Readonly<Record<SynthesisTemplateId, SynthesisTemplate>> = {
  "reasoning-v1": {
    id: "reasoning-v1",
    kind: "reasoning",
    instructions: REASONING_V1_INSTRUCTIONS,
    hasSummary: true,
  },
  "freeform-v1": {
    id: "freeform-v1",
    kind: "freeform",
    instructions: FREEFORM_V1_INSTRUCTIONS,
    hasSummary: false,
  },
};

/** Looks up a template by id; an unknown id (from a config file or flag) is a UserError listing the known ones. */
export function getSynthesisTemplate(id: string): SynthesisTemplate {
  const parsed = SynthesisTemplateIdSchema.safeParse(id);
  if (!parsed.success) {
    throw new UserError(
      `unknown synthesis template "${id}" (known: ${SynthesisTemplateIdSchema.options.join(", ")})`,
    );
  }
  return SYNTHESIS_TEMPLATES[parsed.data];
}
