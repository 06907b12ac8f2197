import { z } from "zod";
import type { PromptRow } from "../data/prompt-rows.js";
import type { Engine, Prompt, ReplyStart, Rollout, Sampling } from "../engine/types.js";
import { extractGoldAnswer } from "./answers/extract.js";
import { groupAnswers } from "./estimators/majority.js";
import { minPplEstimator } from "./estimators/min-ppl.js";
import { mutualPredictability } from "./estimators/mutual-predictability.js";
import { selfBestOfN } from "./estimators/self-bon.js";
import { singleEstimator } from "./estimators/single.js";
import type { EstimatorOutput, EstimatorRollout } from "./estimators/types.js";
import { stripThinking } from "./prompts/think.js";
import { renderConversation } from "./rubric/prompt.js";
import { judgeItems, proposeRubrics, type RubricSettings, type Verdict } from "./rubric-rewards.js";
import { type SynthesisResult, type SynthesisSettings, synthesizeBatch } from "./synthesize.js";
import type { Task } from "./task.js";

export const ESTIMATORS = [
  "synthesis",
  "single",
  "majority",
  "self-bon",
  "min-ppl",
  "mutual-predictability",
] as const;
/** The estimators run unless asked otherwise: mutual-predictability re-scores G contexts per prompt. */
export const DEFAULT_ESTIMATORS = ["synthesis", "single", "majority", "self-bon", "min-ppl"] as const;
export const EstimatorNameSchema = z.enum(ESTIMATORS);
export type EstimatorName = z.infer<typeof EstimatorNameSchema>;

export type CatSettings = {
  G: number;
  maxTokens: number;
  sampling: Sampling;
  seed: number;
  synthesis: SynthesisSettings;
  /** Syntheses over the first g rollouts too, for accuracy against G (g < G). */
  gSweep: number[];
  estimators: EstimatorName[];
  rubric: RubricSettings;
  judgeSeesConversation: boolean;
  /**
   * Rollouts answer without thinking: the reply starts after the template's closed, empty thinking block
   * (Qwen 3's no-think form), so a thinking model cannot spend the whole token budget mid-thought. The
   * recorded prompt tokens (what the trainer conditions on) include that block.
   */
  noThink?: boolean;
};

export type CatEngines = { policy: Engine; anchor: Engine; judge: Engine };

export type RolloutRecord = {
  index: number;
  seed: number;
  text: string;
  tokens: number[];
  logprobs: number[];
  finish_reason: string;
  answer?: string | null;
  reward: number | null;
};

export type PromptResult = {
  id: string;
  line: number;
  gold?: string;
  prompt_tokens: number[];
  rollouts: RolloutRecord[];
  reference: {
    ok: boolean;
    error?: string;
    text?: string;
    unified?: string;
    summary?: string;
    used_whole_text?: boolean;
    finish_reason?: string;
    answer?: string | null;
  };
  rubric?: { criteria: string[]; attempts: number } | { error: string; attempts: number };
  verdicts?: Verdict[][];
  rewards: (number | null)[];
  reward_note?: string;
  estimators: Partial<Record<EstimatorName, { index: number | null; answer: string | null; why?: unknown }>>;
  g_sweep?: Record<
    string,
    { synthesis_answer: string | null; synthesis_ok: boolean; majority_answer: string | null }
  >;
  timings: { rollouts_s: number; synthesis_s: number; judging_s: number };
};

export type CatProgress = {
  stage: "rollouts" | "synthesis" | "judging";
  done: number;
  total: number;
  tokens?: number;
};

/** Seeds derive from the row's line so that a resumed or re-ordered run samples the same rollouts. */
function rowSeed(base: number, row: PromptRow, G: number, salt: number): number {
  return base + salt * 1_000_003 + (row.line - 1) * G;
}

function rolloutReply(s: CatSettings): ReplyStart | undefined {
  return s.noThink ? { closeThinking: true } : undefined;
}

/** Tokens of the response itself, for length penalties: the end-of-generation token is not one. */
function responseLength(ro: RolloutRecord): number {
  return ro.tokens.length - (ro.finish_reason === "eog" ? 1 : 0);
}

function questionText(prompt: Prompt): string {
  return typeof prompt === "string" ? prompt : renderConversation(prompt);
}

/**
 * One CaT pass over a batch of prompts: G rollouts each from the policy (all concurrently), question-blind
 * synthesis by the frozen anchor (batched), rewards against the reference (answer match, or a rubric the
 * anchor proposes and the judge checks), and every requested baseline. The training loop calls this with
 * the policy's current adapter; `catrl infer` with none.
 */
export async function runCat(
  engines: CatEngines,
  task: Task,
  rows: PromptRow[],
  s: CatSettings,
  opts: { signal?: AbortSignal; onProgress?: (p: CatProgress) => void } = {},
): Promise<PromptResult[]> {
  const t0 = performance.now();
  const total = rows.length * s.G;
  const generated = await engines.policy.generate(
    rows.map((row) => ({
      prompt: row.prompt,
      n: s.G,
      maxTokens: s.maxTokens,
      sampling: s.sampling,
      seed: rowSeed(s.seed, row, s.G, 0),
      reply: rolloutReply(s),
    })),
    {
      signal: opts.signal,
      onProgress: (p) =>
        opts.onProgress?.({ stage: "rollouts", done: p.rolloutsDone, total, tokens: p.tokensGenerated }),
    },
  );
  opts.signal?.throwIfAborted();
  const t1 = performance.now();

  // Answers come from the text the anchor reads (thinking stripped unless --keep-think).
  const visible = (text: string) => (s.synthesis.stripThink ? stripThinking(text) : text);
  const answersOf = (rs: Rollout[]) =>
    rs.map((r) => (task.kind === "verifiable" ? task.extract(visible(r.text)) : undefined));
  const answers = generated.map(answersOf);

  // Synthesis over all G rollouts, plus over the first g for the accuracy-vs-G sweep.
  const sweep = s.gSweep.filter((g) => g < s.G);
  const groups = rows.flatMap((row, i) =>
    [s.G, ...sweep].map((g) => ({
      rollouts: generated[i].slice(0, g).map((r) => r.text),
      question: questionText(row.prompt),
      seed: rowSeed(s.seed, row, s.G, g),
    })),
  );
  opts.onProgress?.({ stage: "synthesis", done: 0, total: groups.length });
  const syn = await synthesizeBatch(engines.anchor, groups, s.synthesis, opts.signal);
  opts.signal?.throwIfAborted();
  const per = 1 + sweep.length;
  const refOf = (i: number) => syn[i * per];
  const t2 = performance.now();

  const results: PromptResult[] = rows.map((row, i) => {
    const ref = refOf(i);
    const refAnswer = ref.ok && task.kind === "verifiable" ? task.extract(ref.unified) : undefined;
    return {
      id: row.id,
      line: row.line,
      // A worked gold solution (GSM8K's "... #### 72") is compared by its final answer, as responses are.
      ...(row.gold !== undefined ? { gold: extractGoldAnswer(row.gold) } : {}),
      prompt_tokens: engines.policy.tokenizePrompt(row.prompt, "auto", rolloutReply(s)),
      rollouts: generated[i].map((r, k) => ({
        index: r.rolloutIndex,
        seed: r.seed,
        text: r.text,
        tokens: r.tokens,
        logprobs: r.logprobs,
        finish_reason: r.finishReason,
        ...(task.kind === "verifiable" ? { answer: answers[i][k] ?? null } : {}),
        reward: null,
      })),
      reference: ref.ok
        ? {
            ok: true,
            text: ref.text,
            unified: ref.unified,
            summary: ref.summary,
            used_whole_text: ref.usedWholeText,
            finish_reason: ref.finishReason,
            ...(refAnswer !== undefined ? { answer: refAnswer } : {}),
          }
        : { ok: false, error: ref.error },
      rewards: generated[i].map(() => null),
      estimators: {},
      timings: {
        rollouts_s: (t1 - t0) / 1000 / rows.length,
        synthesis_s: (t2 - t1) / 1000 / rows.length,
        judging_s: 0,
      },
    };
  });

  if (task.kind === "verifiable") await verifiableRewards(task, results);
  else await rubricRewards(engines, rows, results, s, opts.signal);
  const t3 = performance.now();
  for (const r of results) r.timings.judging_s = (t3 - t2) / 1000 / rows.length;

  await runEstimators(engines, task, rows, results, syn, per, sweep, s, opts.signal);
  return results;
}

async function verifiableRewards(
  task: Extract<Task, { kind: "verifiable" }>,
  results: PromptResult[],
): Promise<void> {
  const pairs = results.flatMap((r) =>
    r.rollouts.map((ro) => ({ a: ro.answer ?? null, b: r.reference.answer ?? null })),
  );
  const matches = await task.matchMany(pairs);
  let k = 0;
  for (const r of results) {
    // A reference without a final answer gives no signal: every rollout gets 0 and the record says why
    // (the group then has zero variance and is left out of the update).
    if (!r.reference.ok) r.reward_note = `no reference (${r.reference.error ?? "synthesis failed"})`;
    else if (r.reference.answer == null) r.reward_note = "the reference has no final answer";
    r.rewards = r.rollouts.map((ro) => {
      const v = matches[k++] ? 1 : 0;
      ro.reward = v;
      return v;
    });
  }
}

async function rubricRewards(
  engines: CatEngines,
  rows: PromptRow[],
  results: PromptResult[],
  s: CatSettings,
  signal?: AbortSignal,
): Promise<void> {
  const withRef = results.flatMap((r, i) => (r.reference.ok ? [i] : []));
  const rubrics = await proposeRubrics(
    engines.anchor,
    withRef.map((i) => results[i].reference.unified ?? ""),
    s.rubric,
    s.seed + 7_000_001,
    signal,
  );
  const judgeable: number[] = [];
  withRef.forEach((i, k) => {
    const rb = rubrics[k];
    results[i].rubric = rb.ok
      ? { criteria: rb.criteria, attempts: rb.attempts }
      : { error: rb.error, attempts: rb.attempts };
    if (rb.ok) judgeable.push(i);
    else results[i].reward_note = `rubric failed after ${rb.attempts} attempts: ${rb.error}`;
  });
  for (const r of results)
    if (!r.reference.ok) r.reward_note = `no reference (${r.reference.error ?? "synthesis failed"})`;
  const judged = await judgeItems(
    engines.judge,
    judgeable.map((i) => ({
      criteria: (results[i].rubric as { criteria: string[] }).criteria,
      responses: results[i].rollouts.map((ro) => ro.text),
      responseTokens: results[i].rollouts.map((ro) => responseLength(ro)),
      conversation: s.judgeSeesConversation ? rows[i].prompt : undefined,
    })),
    s.rubric,
    s.seed + 9_000_011,
    signal,
  );
  judgeable.forEach((i, k) => {
    results[i].verdicts = judged[k].verdicts;
    results[i].rewards = judged[k].rewards;
    results[i].rollouts.forEach((ro, j) => {
      ro.reward = judged[k].rewards[j];
    });
  });
}

/** The sampling is the raw model: temperature 1, no filters, no penalty. */
function isRawSampling(s: Sampling): boolean {
  return s.temperature === 1 && s.topK === 0 && s.topP === 1 && s.minP === 0 && !s.repeatPenalty;
}

/**
 * Each rollout's log-probs under the policy itself (a teacher-forced pass over its tokens), which is
 * what perplexity means; the recorded ones are the sampler's, which differ under a preset (~0.1 nats a
 * token under Qwen 3's). With raw sampling they are the same, and no pass is spent.
 */
async function ownLogprobs(
  policy: Engine,
  row: PromptRow,
  r: PromptResult,
  s: CatSettings,
  signal?: AbortSignal,
): Promise<number[][]> {
  if (isRawSampling(s.sampling)) return r.rollouts.map((ro) => ro.logprobs);
  const scorable = r.rollouts.flatMap((ro, k) => (ro.tokens.length > 0 ? [k] : []));
  const scored = await policy.score(
    scorable.map((k) => ({ prompt: row.prompt, continuation: r.rollouts[k].tokens, reply: rolloutReply(s) })),
    { signal },
  );
  const out: number[][] = r.rollouts.map(() => []);
  scorable.forEach((k, j) => {
    out[k] = scored[j].logprobs;
  });
  return out;
}

async function runEstimators(
  engines: CatEngines,
  task: Task,
  rows: PromptRow[],
  results: PromptResult[],
  syn: SynthesisResult[],
  per: number,
  sweep: number[],
  s: CatSettings,
  signal?: AbortSignal,
): Promise<void> {
  const want = new Set(s.estimators);
  const estRollouts = (r: PromptResult): EstimatorRollout[] =>
    r.rollouts.map((ro) => ({ text: ro.text, logprobs: ro.logprobs, answer: ro.answer }));
  const matcher =
    task.kind === "verifiable"
      ? (pairs: ReadonlyArray<{ a: string; b: string }>) => task.matchMany([...pairs])
      : null;
  const record = (o: EstimatorOutput) => ({ index: o.index, answer: o.answer, why: o.why });

  for (const [i, r] of results.entries()) {
    const input = { rollouts: estRollouts(r) };
    if (want.has("synthesis")) {
      r.estimators.synthesis = {
        index: null,
        answer: r.reference.answer ?? null,
        why: { ok: r.reference.ok },
      };
    }
    if (want.has("single")) r.estimators.single = record(await singleEstimator().estimate(input));
    if (want.has("min-ppl")) {
      // Ranked by the model's own log-probs, not the sampler's (temperature and filters reshape those).
      const own = await ownLogprobs(engines.policy, rows[i], r, s, signal);
      const rollouts = input.rollouts.map((x, k) => ({ ...x, logprobs: own[k] }));
      r.estimators["min-ppl"] = record(await minPplEstimator().estimate({ rollouts }));
    }
    if (want.has("majority") && matcher) {
      const groups = await groupAnswers(
        input.rollouts.map((x) => x.answer),
        matcher,
      );
      const best = groups.reduce<(typeof groups)[number] | null>(
        (b, g) => (!b || g.members.length > b.members.length ? g : b),
        null,
      );
      r.estimators.majority = {
        index: best?.members[0] ?? null,
        answer: best?.answer ?? null,
        why: { votes: groups.map((g) => g.members.length) },
      };
    }
    if (task.kind === "verifiable" && sweep.length > 0) {
      r.g_sweep = {};
      for (const [k, g] of [s.G, ...sweep].entries()) {
        const sr = syn[i * per + k];
        const groups = matcher
          ? await groupAnswers(
              input.rollouts.slice(0, g).map((x) => x.answer),
              matcher,
            )
          : [];
        const best = groups.reduce<(typeof groups)[number] | null>(
          (b, gr) => (!b || gr.members.length > b.members.length ? gr : b),
          null,
        );
        r.g_sweep[String(g)] = {
          synthesis_ok: sr.ok,
          synthesis_answer: sr.ok ? task.extract(sr.unified) : null,
          majority_answer: best?.answer ?? null,
        };
      }
    }
  }
  if (want.has("mutual-predictability")) {
    const picks = await mutualPredictability(
      engines.policy,
      results.map((r, i) => ({
        question: questionText(rows[i].prompt),
        rollouts: estRollouts(r),
        seed: rowSeed(s.seed, rows[i], s.G, 6),
      })),
      signal,
    );
    results.forEach((r, i) => {
      r.estimators["mutual-predictability"] = record(picks[i]);
    });
  }
  if (want.has("self-bon")) {
    const picks = await selfBestOfN(
      engines.policy,
      results.map((r, i) => ({
        question: questionText(rows[i].prompt),
        rollouts: estRollouts(r),
        seed: rowSeed(s.seed, rows[i], s.G, 5),
      })),
      { temperature: 0, topK: 0, topP: 1, minP: 0 },
      signal,
    );
    results.forEach((r, i) => {
      r.estimators["self-bon"] = record(picks[i]);
    });
  }
}
