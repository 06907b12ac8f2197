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
 * Whether two final answers agree. A null/empty answer never matches anything, not even another
 * missing answer: two rollouts that both failed to answer do not agree on an answer.
 */
export function answersMatch(
  a: string | null | undefined,
  b: string | null | undefined,
  options: { mode: MatchMode } = { mode: "exact" },
): boolean {
  if (a == null || b == null) return false;
  const na = normalizeAnswer(a);
  const nb = normalizeAnswer(b);
  if (na === "" || nb === "") return false;
  if (na === nb) return true;
  return options.mode === "math" ? mathEquivalent(a, b) : false;
}
