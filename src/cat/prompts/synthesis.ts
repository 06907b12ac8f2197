import { getSynthesisTemplate, type SynthesisTemplate } from "./templates.js";
import { stripThinking } from "./think.js";

export type BuildSynthesisPromptOptions = {
  template: SynthesisTemplate | string;
  /** The G rollouts, in sampling order. */
  rollouts: string[];
  /**
   * Only when the run sets anchorSeesQuestion. The paper's anchor is question-blind, so it cannot simply
   * answer the question itself as one more rollout.
   */
  question?: string;
  /** Drop `<think>` blocks from the rollouts (default): the anchor should reconcile answers, not scratch work. */
  stripThink?: boolean;
  /** Append Qwen3's "/no_think" switch so the anchor answers without a thinking block. */
  noThink?: boolean;
};

/** Marks a response with no content left (empty, or only thinking), so the anchor sees the slot was used. */
export const EMPTY_RESPONSE = "(empty response)";

/** The user message for the anchor: instructions, optionally the question, then "## RESPONSE i" blocks. */
export function buildSynthesisPrompt(options: BuildSynthesisPromptOptions): string {
  const template =
    typeof options.template === "string" ? getSynthesisTemplate(options.template) : options.template;
  if (options.rollouts.length === 0) throw new Error("buildSynthesisPrompt: no rollouts to synthesize");
  const strip = options.stripThink ?? true;
  const parts = [template.instructions];
  if (options.question !== undefined) parts.push(`# QUESTION\n\n${options.question.trim()}`);
  const blocks = options.rollouts.map((r, i) => {
    const body = (strip ? stripThinking(r) : r).trim();
    return `## RESPONSE ${i + 1}\n\n${body === "" ? EMPTY_RESPONSE : body}`;
  });
  parts.push(`# RESPONSES\n\n${blocks.join("\n\n")}`);
  parts.push(
    template.hasSummary
      ? "Now write the # SUMMARY section, then the # UNIFIED RESPONSE section."
      : "Now write the # UNIFIED RESPONSE section.",
  );
  let prompt = parts.join("\n\n");
  if (options.noThink) prompt += " /no_think";
  return prompt;
}
