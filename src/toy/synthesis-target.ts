import { extractFinalAnswer } from "../cat/answers/extract.js";
import { correctSolution, FINAL_LINE, type Op, type Problem, parseSteps, unifiedText } from "./arith.js";

/**
 * What the anchor is taught to write for a set of candidate responses, question-blind: the question as
 * the candidates state it by consensus (the most common start, number of steps and operand per step:
 * one candidate's miscopied operand is outvoted), solved again step by step. So the unified answer is
 * right whenever the candidates agree on what was asked, even when no two of them agree on the answer;
 * and it is wrong where they misstate the question the same way (the candidates do not allow better).
 */
export function consensusProblem(candidates: string[]): Problem | null {
  const parsed = candidates.map(parseSteps).filter((s) => s.length > 0);
  if (parsed.length === 0) return null;
  const nSteps = mostCommon(parsed.map((s) => s.length));
  const aligned = parsed.filter((s) => s.length === nSteps);
  const start = mostCommon(parsed.map((s) => s[0].left));
  const steps = Array.from({ length: nSteps }, (_, i) => {
    const key = mostCommon(aligned.map((s) => `${s[i].op}${s[i].operand}`));
    return { op: key[0] as Op, operand: Number(key.slice(1)) };
  });
  return { start, steps };
}

/** The first most frequent value (ties go to the earliest, so the result is deterministic). */
function mostCommon<T>(values: T[]): T {
  const counts = new Map<T, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best = values[0];
  for (const v of values) if ((counts.get(v) ?? 0) > (counts.get(best) ?? 0)) best = v;
  return best;
}

/** The SUMMARY line, kept to one short sentence (every token of it is trained and generated). */
export function summaryText(candidates: string[]): string {
  const answers = new Set(candidates.map((c) => extractFinalAnswer(c) ?? "none"));
  return answers.size === 1 ? "The responses agree." : "The responses disagree.";
}

/** The anchor's whole target output for the reasoning-v1 template: summary, then the unified response. */
export function synthesisTargetText(candidates: string[]): string {
  const p = consensusProblem(candidates);
  const unified = p ? unifiedText(correctSolution(p)) : FINAL_LINE(0);
  return `# SUMMARY\n${summaryText(candidates)}\n\n# UNIFIED RESPONSE\n${unified}`;
}
