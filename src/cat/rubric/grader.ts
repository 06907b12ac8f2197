import type { ChatTurn, Prompt, ReplyStart } from "../../engine/types.js";
import { parseVerdict } from "./parse.js";
import { buildJudgePrompt, JUDGE_ALTERNATES, JUDGE_PROMPT_ID, pYesBySide } from "./prompt.js";

/** One (response, criterion) pair as a grader sees it. */
export type GraderPair = {
  criterion: string;
  /** The criterion's weight where the rubric has one (HealthBench's physician points). */
  points?: number;
  response: string;
  conversation?: string | readonly ChatTurn[];
};

/**
 * How a judge is asked about one pair, in both judge modes: the prompt, where the verdict token sits for
 * `logprob` (the reply start after which the yes/no spellings are read), and, for `generate`, how long a
 * reply may run and how it is parsed (a reply that does not parse throws `ModelOutputError`).
 */
export type Grader = {
  /** Version of the grader prompt, recorded with every verdict. */
  id: string;
  prompt(pair: GraderPair): Prompt;
  verdictSlot: ReplyStart;
  /** Spellings of the two verdicts a tokenizer may put first; each side is summed. */
  alternates: { yes: readonly string[]; no: readonly string[] };
  generate: { maxTokens: number; reply: ReplyStart; parse(text: string): boolean };
};

/**
 * CaT's own judge (`judge-v1`): the criterion, the response and optionally the conversation, answered
 * with yes or no. The reply starts after a closed thinking block, so a thinking model's next token is the
 * verdict rather than `<think>`.
 */
export const CAT_JUDGE: Grader = {
  id: JUDGE_PROMPT_ID,
  prompt: (p) => buildJudgePrompt(p),
  verdictSlot: { closeThinking: true },
  alternates: JUDGE_ALTERNATES,
  generate: { maxTokens: 8, reply: { closeThinking: true }, parse: parseVerdict },
};

/** Candidate strings for one `nextTokenProbs` call: yes spellings first, then no. */
export function graderCandidates(g: Grader): string[] {
  return [...g.alternates.yes, ...g.alternates.no];
}

/**
 * P(yes) renormalised over yes + no from probabilities in the order of `graderCandidates`; a spelling
 * repeated in the list counts once. Null when neither side has any probability: the judge said nothing
 * about this pair, which is "unjudged", not a coin flip.
 */
export function pYesOf(probs: readonly number[], g: Grader): number | null {
  const yesN = g.alternates.yes.length;
  return pYesBySide(probs, graderCandidates(g), (_, i) => (i < yesN ? "yes" : "no"));
}
