import { type AnswerMatcher, checkRollouts, type Estimator } from "./types.js";

export type AnswerGroup = { answer: string; members: number[] };

/**
 * Groups rollouts by equivalent final answers. Each rollout joins the first earlier group whose
 * representative (its first member) it matches; all pairs go to the matcher in one batch so a pool can
 * run them in parallel. Rollouts without an answer join no group.
 */
export async function groupAnswers(
  answers: ReadonlyArray<string | null | undefined>,
  matcher: AnswerMatcher,
): Promise<AnswerGroup[]> {
  const present = answers.flatMap((a, i) => (a == null || a.trim() === "" ? [] : [i]));
  const pairs: Array<{ a: string; b: string }> = [];
  const key = new Map<string, number>();
  for (let x = 0; x < present.length; x++) {
    for (let y = 0; y < x; y++) {
      key.set(`${present[y]},${present[x]}`, pairs.length);
      pairs.push({ a: answers[present[y]]!, b: answers[present[x]]! });
    }
  }
  const same = pairs.length > 0 ? await matcher(pairs) : [];
  const groups: AnswerGroup[] = [];
  for (const i of present) {
    const g = groups.find((grp) => same[key.get(`${grp.members[0]},${i}`)!]);
    if (g) g.members.push(i);
    else groups.push({ answer: answers[i]!, members: [i] });
  }
  return groups;
}

/**
 * Majority vote: the plurality of extracted final answers, grouped by equivalence (pass a pool-backed
 * matcher for math mode). Ties go to the answer that appeared first. The chosen rollout is the first
 * member of the winning group. With no answers at all, nothing is chosen.
 */
export function majorityEstimator(matcher: AnswerMatcher): Estimator {
  return {
    name: "majority",
    async estimate(input) {
      checkRollouts(input, "majority");
      const groups = await groupAnswers(
        input.rollouts.map((r) => r.answer),
        matcher,
      );
      const why = {
        groups: groups.map((g) => ({ answer: g.answer, votes: g.members.length, members: g.members })),
        noAnswer: input.rollouts.length - groups.reduce((s, g) => s + g.members.length, 0),
      };
      if (groups.length === 0) return { estimator: "majority", index: null, text: null, answer: null, why };
      // Groups are in order of first appearance, so the first maximum is the tie-break winner.
      const best = groups.reduce((b, g) => (g.members.length > b.members.length ? g : b));
      const index = best.members[0];
      return {
        estimator: "majority",
        index,
        text: input.rollouts[index].text,
        answer: best.answer,
        why: { ...why, tie: groups.filter((g) => g.members.length === best.members.length).length > 1 },
      };
    },
  };
}
