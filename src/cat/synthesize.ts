import type { Engine, Prompt, Sampling } from "../engine/types.js";
import { type ParsedSynthesis, parseSynthesis } from "./prompts/parse.js";
import { buildSynthesisPrompt } from "./prompts/synthesis.js";
import type { SynthesisTemplateId } from "./prompts/templates.js";

export type SynthesisSettings = {
  template: SynthesisTemplateId;
  /** The paper's anchor is question-blind; this lets it see the question. */
  anchorSeesQuestion: boolean;
  stripThink: boolean;
  noThink: boolean;
  maxTokens: number;
  sampling: Sampling;
  /**
   * A reference must come from a complete unified section: a synthesis cut off at the token limit, or
   * without its "UNIFIED RESPONSE" section, gives the group no reference (reported) instead of a
   * half-written one. Off only for anchors that cannot follow the format (raw models without a chat
   * template, such as stories260K), whose whole continuation is the reference, as before.
   */
  requireComplete?: boolean;
};

export type SynthesisGroup = { rollouts: string[]; question?: string; seed: number };

export type SynthesisResult =
  | ({
      ok: true;
      prompt: string;
      text: string;
      finishReason: string;
      tokens: number;
    } & ParsedSynthesis)
  | {
      ok: false;
      error: string /** The anchor wrote, but no complete unified section. */;
      incomplete?: boolean;
    };

/** Why a synthesis is not a complete unified section, or null when it is. */
function incompleteReason(finish: string, usedWholeText: boolean, maxTokens: number): string | null {
  if (finish === "max_tokens") {
    return `the synthesis was cut off at the token limit (${maxTokens}) ${usedWholeText ? "before its unified section" : "inside its unified section"}; raise --synthesis-max-tokens`;
  }
  if (usedWholeText) return "the synthesis has no UNIFIED RESPONSE section";
  return null;
}

/**
 * The frozen anchor reads each group's rollouts and writes one reference. All groups generate
 * concurrently in the anchor's context; a group whose prompt cannot fit the anchor's context fails alone.
 */
export async function synthesizeBatch(
  anchor: Engine,
  groups: SynthesisGroup[],
  s: SynthesisSettings,
  signal?: AbortSignal,
): Promise<SynthesisResult[]> {
  const prompts = groups.map((g) =>
    buildSynthesisPrompt({
      template: s.template,
      rollouts: g.rollouts,
      question: s.anchorSeesQuestion ? g.question : undefined,
      stripThink: s.stripThink,
      noThink: s.noThink,
    }),
  );
  const results: SynthesisResult[] = new Array(groups.length);
  const runnable: number[] = [];
  prompts.forEach((p, i) => {
    const need = anchor.tokenizePrompt(p).length + s.maxTokens;
    if (need > anchor.info.trainContextSize) {
      results[i] = {
        ok: false,
        error: `synthesis prompt (${need - s.maxTokens} tokens) + ${s.maxTokens} new tokens exceeds the anchor's context of ${anchor.info.trainContextSize}; lower -G or the rollouts' --max-tokens`,
      };
    } else runnable.push(i);
  });
  if (runnable.length === 0) return results;
  const out = await anchor.generate(
    runnable.map((i) => ({
      prompt: prompts[i] as Prompt,
      n: 1,
      maxTokens: s.maxTokens,
      sampling: s.sampling,
      seed: groups[i].seed,
    })),
    { signal },
  );
  runnable.forEach((i, k) => {
    const r = out[k][0];
    if (!r) {
      results[i] = { ok: false, error: "synthesis aborted" };
      return;
    }
    const parsed = parseSynthesis(r.text, s.template);
    const incomplete = incompleteReason(r.finishReason, parsed.usedWholeText, s.maxTokens);
    if (s.requireComplete && incomplete) {
      results[i] = { ok: false, error: incomplete, incomplete: true };
      return;
    }
    results[i] = {
      ok: true,
      prompt: prompts[i],
      text: r.text,
      finishReason: r.finishReason,
      tokens: r.tokens.length,
      ...parsed,
    };
  });
  return results;
}
