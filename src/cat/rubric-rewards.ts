import { z } from "zod";
import type { ChatTurn, Engine, Prompt, Sampling } from "../engine/types.js";
import { CAT_JUDGE, type Grader, graderCandidates, pYesOf } from "./rubric/grader.js";
import { ModelOutputError, parseRubric } from "./rubric/parse.js";
import { buildRubricPrompt } from "./rubric/prompt.js";
import { type LengthPenalty, rubricReward } from "./rubric/reward.js";
import { RUBRIC_JSON_SCHEMA } from "./rubric/schema.js";

export const JudgeModeSchema = z.enum(["logprob", "generate"]);
export type JudgeMode = z.infer<typeof JudgeModeSchema>;

export type RubricSettings = {
  rubricMaxTokens: number;
  /** Extra tries (fresh seeds) when a rubric does not parse; then the failure is reported. */
  retries: number;
  sampling: Sampling;
  judgeMode: JudgeMode;
  threshold: number;
  lengthPenalty?: LengthPenalty;
};

export type RubricResult =
  | { ok: true; criteria: string[]; attempts: number; raw: string }
  | { ok: false; error: string; attempts: number; raw: string[] };

/** The anchor turns each reference into >= 5 binary criteria, grammar-constrained to the rubric JSON schema. */
export async function proposeRubrics(
  anchor: Engine,
  references: string[],
  s: RubricSettings,
  seed: number,
  signal?: AbortSignal,
): Promise<RubricResult[]> {
  const results: RubricResult[] = new Array(references.length);
  const raws: string[][] = references.map(() => []);
  let pending = references.map((_, i) => i);
  for (let attempt = 0; attempt <= s.retries && pending.length > 0; attempt++) {
    const out = await anchor.generate(
      pending.map((i) => ({
        prompt: buildRubricPrompt(references[i]),
        n: 1,
        maxTokens: s.rubricMaxTokens,
        sampling: s.sampling,
        seed: seed + i * (s.retries + 1) + attempt,
        jsonSchema: RUBRIC_JSON_SCHEMA as unknown as Record<string, unknown>,
      })),
      { signal },
    );
    const still: number[] = [];
    pending.forEach((i, k) => {
      const text = out[k][0]?.text ?? "";
      raws[i].push(text);
      try {
        results[i] = { ok: true, criteria: parseRubric(text).criteria, attempts: attempt + 1, raw: text };
      } catch (e) {
        if (!(e instanceof ModelOutputError)) throw e;
        still.push(i);
        results[i] = { ok: false, error: e.message, attempts: attempt + 1, raw: raws[i] };
      }
    });
    pending = still;
  }
  return results;
}

export type Verdict = { criterion: number; pYes: number | null; met: boolean | null; error?: string };

export type JudgeItem = {
  criteria: string[];
  /** Weights of the criteria, for graders that show them (HealthBench's `[points] criterion`). */
  points?: number[];
  responses: string[];
  responseTokens: number[];
  conversation?: ChatTurn[] | string;
};

export type JudgedItem = { verdicts: Verdict[][]; rewards: (number | null)[] };

/**
 * The judge answers every (response, criterion) pair, asked as `grader` says (default CaT's own judge
 * prompt). `logprob` reads P(yes) against P(no) from the next-token distribution in one forward pass per
 * pair, all pairs batched; `generate` lets the judge write an answer and parses it. A verdict that does
 * not parse, or a next token with no probability on either verdict, is recorded as unjudged (met null,
 * with the reason), never as "no".
 */
export async function judgeItems(
  judge: Engine,
  items: JudgeItem[],
  s: RubricSettings,
  seed: number,
  signal?: AbortSignal,
  grader: Grader = CAT_JUDGE,
): Promise<JudgedItem[]> {
  const pairs: { item: number; response: number; criterion: number; prompt: Prompt }[] = [];
  items.forEach((it, item) => {
    it.responses.forEach((response, r) => {
      it.criteria.forEach((criterion, c) => {
        pairs.push({
          item,
          response: r,
          criterion: c,
          prompt: grader.prompt({
            criterion,
            points: it.points?.[c],
            response,
            conversation: it.conversation,
          }),
        });
      });
    });
  });
  const verdicts: Verdict[] = new Array(pairs.length);
  // A pair the judge cannot read whole is recorded as unjudged, not guessed.
  const logprob = s.judgeMode === "logprob";
  const reply = logprob ? grader.verdictSlot : grader.generate.reply;
  const room = judge.info.trainContextSize - (logprob ? 1 : grader.generate.maxTokens);
  const fits: number[] = [];
  pairs.forEach((p, k) => {
    const n = judge.tokenizePrompt(p.prompt, "auto", reply).length;
    if (n <= room) fits.push(k);
    else
      verdicts[k] = {
        criterion: p.criterion,
        pYes: null,
        met: null,
        error: `judge prompt of ${n} tokens does not fit the judge's context of ${judge.info.trainContextSize}`,
      };
  });
  if (logprob) {
    const res = await judge.nextTokenProbs(
      fits.map((k) => ({ prompt: pairs[k].prompt, candidates: graderCandidates(grader), reply })),
      { signal },
    );
    res.forEach((r, i) => {
      const k = fits[i];
      const pYes = pYesOf(r.probs, grader);
      verdicts[k] =
        pYes == null
          ? {
              criterion: pairs[k].criterion,
              pYes: null,
              met: null,
              error: "the judge's next token puts no probability on either verdict",
            }
          : { criterion: pairs[k].criterion, pYes, met: pYes >= s.threshold };
    });
  } else {
    const out = await judge.generate(
      fits.map((k) => ({
        prompt: pairs[k].prompt,
        n: 1,
        maxTokens: grader.generate.maxTokens,
        sampling: { temperature: 0, topK: 0, topP: 1, minP: 0 },
        seed: seed + k,
        reply,
      })),
      { signal },
    );
    out.forEach(([r], i) => {
      const k = fits[i];
      try {
        const met = grader.generate.parse(r?.text ?? "");
        verdicts[k] = { criterion: pairs[k].criterion, pYes: met ? 1 : 0, met };
      } catch (e) {
        verdicts[k] = { criterion: pairs[k].criterion, pYes: null, met: null, error: (e as Error).message };
      }
    });
  }
  const judged: JudgedItem[] = items.map((it) => ({
    verdicts: it.responses.map(() => []),
    rewards: [],
  }));
  pairs.forEach((p, k) => {
    judged[p.item].verdicts[p.response].push(verdicts[k]);
  });
  judged.forEach((j, i) => {
    j.rewards = j.verdicts.map((vs, r) => {
      const usable = vs.filter((v) => v.pYes != null) as { pYes: number }[];
      if (usable.length === 0) return null;
      return rubricReward(usable, {
        threshold: s.threshold,
        lengthPenalty: s.lengthPenalty,
        responseTokens: items[i].responseTokens[r],
      });
    });
  });
  return judged;
}
