import type { ChatTurn } from "../../engine/types.js";
import { RUBRIC_MAX_CRITERIA, RUBRIC_MIN_CRITERIA } from "./schema.js";

export const RUBRIC_PROMPT_ID = "rubric-v1";
export const JUDGE_PROMPT_ID = "judge-v1";

/**
 * The anchor turns its synthesized reference into a rubric (the paper's self-proposed rubric). Criteria
 * must be checkable from a response alone, one yes/no fact each, so an independent judge can audit them.
 */
export function buildRubricPrompt(reference: string): string {
  return `Below is a reference response. Turn it into a grading rubric: a list of ${RUBRIC_MIN_CRITERIA} to ${RUBRIC_MAX_CRITERIA} criteria that a response should meet to be as good as the reference.

Each criterion must:
- be binary: a grader can answer it with yes or no;
- be auditable: checkable by reading the response alone, without outside knowledge;
- test one specific point (a fact, recommendation, warning, or question the reference makes), not general quality;
- be written as a statement about the response, e.g. "The response recommends ...".

Cover the most important content of the reference first. Do not add points that are not in the reference.

# REFERENCE RESPONSE

${reference.trim()}

Output only JSON of the form {"criteria": ["...", "..."]}.`;
}

/** A conversation as the judge sees it: role-labelled turns, or the caller's own text. */
export function renderConversation(conversation: string | readonly ChatTurn[]): string {
  if (typeof conversation === "string") return conversation.trim();
  return conversation.map((t) => `${t.role.toUpperCase()}: ${t.content.trim()}`).join("\n\n");
}

/**
 * The judge's prompt for one (response, criterion) pair. It ends with "Answer:" so the judge's next token
 * is the verdict; read it from next-token probabilities (`JUDGE_CANDIDATES`) or parse free text with
 * `parseVerdict`. Whether the judge sees the conversation is left to the run (the paper does not say).
 */
export function buildJudgePrompt(options: {
  criterion: string;
  response: string;
  conversation?: string | readonly ChatTurn[];
}): string {
  const parts = [
    "You are grading a response against one criterion. Decide strictly whether the response meets the criterion.",
  ];
  if (options.conversation !== undefined) {
    parts.push(`# CONVERSATION\n\n${renderConversation(options.conversation)}`);
  }
  parts.push(`# RESPONSE\n\n${options.response.trim()}`);
  parts.push(`# CRITERION\n\n${options.criterion.trim()}`);
  parts.push("Does the response meet the criterion? Reply with one word, yes or no.\n\nAnswer:");
  return parts.join("\n\n");
}

/** The verdict tokens to score after `buildJudgePrompt`: probability of yes vs no. */
export const JUDGE_CANDIDATES = ["yes", "no"] as const;

/**
 * Spellings a tokenizer may put first ("Answer: yes" tokenizes as " yes" on most vocabularies, a chat
 * reply starts with "Yes"). Sum the probabilities of each list, then normalise (`pYesFrom`).
 */
export const JUDGE_ALTERNATES = {
  yes: ["yes", " yes", "Yes", " Yes", "YES", " YES"],
  no: ["no", " no", "No", " No", "NO", " NO"],
} as const;

/** Every alternate in one flat list, yes spellings first, for one `nextTokenProbs` call. */
export const JUDGE_ALL_CANDIDATES: readonly string[] = [...JUDGE_ALTERNATES.yes, ...JUDGE_ALTERNATES.no];

/**
 * P(yes) renormalised over yes+no from probabilities given in the order of `candidates` (default
 * `JUDGE_ALL_CANDIDATES`). Spellings that tokenize to the same first token would be counted twice, so
 * duplicate probabilities for an identical token id must be removed by the caller; here equal candidate
 * strings are summed once. Returns null when both are zero: no information, so the pair is unjudged
 * (it once returned 0.5, which the default threshold counted as met).
 */
export function pYesFrom(
  probs: readonly number[],
  candidates: readonly string[] = JUDGE_ALL_CANDIDATES,
): number | null {
  return pYesBySide(probs, candidates, (c) => {
    const word = c.trim().toLowerCase();
    return word === "yes" ? "yes" : word === "no" ? "no" : null;
  });
}

/**
 * P(yes) over yes + no, each candidate's probability counted on its side (`side` of the candidate and
 * its index; null: neither); a candidate string repeated in the list counts once. Null without mass.
 */
export function pYesBySide(
  probs: readonly number[],
  candidates: readonly string[],
  side: (candidate: string, index: number) => "yes" | "no" | null,
): number | null {
  if (probs.length !== candidates.length) {
    throw new Error(`pYesFrom: ${probs.length} probabilities for ${candidates.length} candidates`);
  }
  const seen = new Set<string>();
  let yes = 0;
  let no = 0;
  candidates.forEach((c, i) => {
    if (seen.has(c)) return;
    seen.add(c);
    const v = side(c, i);
    if (v === "yes") yes += probs[i];
    else if (v === "no") no += probs[i];
  });
  return yes + no > 0 ? yes / (yes + no) : null;
}
