import { z } from "zod";
import { mathEquivalent } from "./equivalence.js";
import { normalizeAnswer } from "./normalize.js";

export const MatchModeSchema = z.enum(["exact", "math"]);
/**
 * `exact`: the paper's normalised string match (deliberately simple, what its reward used).
 * `math`: also symbolic/numeric equivalence (0.5 = \frac12, {1,2} = {2,1}, x=3 = 3).
 */
export type MatchMode = z.infer<typeof MatchModeSchema>;

/**
 * Final answers longer than this are not compared: 20x the longest MATH-500 answer (53 characters); a
 * longer "answer" is a runaway generation, and comparing it could take unbounded time.
 */
export const MAX_ANSWER_CHARS = 1_000;
/** Time allowed to one `math`-mode comparison in process (the worker pool adds its own, harder, timeout). */
export const DEFAULT_MATCH_TIME_LIMIT_MS = 2_000;

export type MatchOptions = { mode: MatchMode; timeLimitMs?: number };
/** `reason` says why a pair was not compared to the end: then `match` is false. */
export type MatchOutcome = { match: boolean; reason?: "too-long" | "time-limit" };

/**
 * Whether two final answers agree, and when they were not fully compared, why. A null/empty answer never
 * matches anything, not even another missing answer: two rollouts that both failed to answer do not
 * agree on an answer. Bounded: an answer over MAX_ANSWER_CHARS is "no match" (`too-long`), and a
 * `math` comparison past its time limit is "no match" (`time-limit`).
 */
export function checkAnswers(
  a: string | null | undefined,
  b: string | null | undefined,
  options: MatchOptions = { mode: "exact" },
): MatchOutcome {
  if (a == null || b == null) return { match: false };
  if (a.length > MAX_ANSWER_CHARS || b.length > MAX_ANSWER_CHARS) return { match: false, reason: "too-long" };
  const na = normalizeAnswer(a);
  const nb = normalizeAnswer(b);
  if (na === "" || nb === "") return { match: false };
  if (na === nb) return { match: true };
  if (options.mode !== "math") return { match: false };
  const r = mathEquivalent(a, b, options.timeLimitMs ?? DEFAULT_MATCH_TIME_LIMIT_MS);
  return r === "time-limit" ? { match: false, reason: "time-limit" } : { match: r };
}

/** `checkAnswers` without the reason. */
export function answersMatch(
  a: string | null | undefined,
  b: string | null | undefined,
  options: MatchOptions = { mode: "exact" },
): boolean {
  return checkAnswers(a, b, options).match;
}
