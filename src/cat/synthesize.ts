import type { Engine, Prompt, Rollout, Sampling } from "../engine/types.js";
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
  /** Called as each group's reference is ready (and for groups that cannot run, at once). */
  onResult?: (i: number, r: SynthesisResult) => void,
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
  results.forEach((r, i) => {
    onResult?.(i, r);
  });
  if (runnable.length === 0) return results;
  const toResult = (i: number, r: Rollout | undefined): SynthesisResult =>
    r && r.finishReason !== "aborted"
      ? {
          ok: true,
          prompt: prompts[i],
          text: r.text,
          finishReason: r.finishReason,
          tokens: r.tokens.length,
          ...parseSynthesis(r.text, s.template),
        }
      : { ok: false, error: "synthesis aborted" };
  const out = await anchor.generate(
    runnable.map((i) => ({
      prompt: prompts[i] as Prompt,
      n: 1,
      maxTokens: s.maxTokens,
      sampling: s.sampling,
      seed: groups[i].seed,
    })),
    {
      signal,
      onRollout: onResult
        ? (r) => {
            const i = runnable[r.requestIndex];
            results[i] = toResult(i, r);
            onResult(i, results[i]);
          }
        : undefined,
    },
  );
  runnable.forEach((i, k) => {
    results[i] ??= toResult(i, out[k][0]);
  });
  return results;
}
