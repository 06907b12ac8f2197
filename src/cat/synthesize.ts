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
  | { ok: false; error: string };

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
    results[i] = {
      ok: true,
      prompt: prompts[i],
      text: r.text,
      finishReason: r.finishReason,
      tokens: r.tokens.length,
      ...parseSynthesis(r.text, s.template),
    };
  });
  return results;
}
