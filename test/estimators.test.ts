import { describe, expect, test } from "vitest";
import { groupAnswers, majorityEstimator } from "../src/cat/estimators/majority.js";
import { meanNll, minPplEstimator } from "../src/cat/estimators/min-ppl.js";
import { singleEstimator } from "../src/cat/estimators/single.js";
import { type AnswerMatcher, inlineMatcher } from "../src/cat/estimators/types.js";

const roll = (answer: string | null, logprobs?: number[]) => ({
  text: `text for ${answer}`,
  answer,
  logprobs,
});

describe("single", () => {
  test("takes the first rollout", async () => {
    const out = await singleEstimator().estimate({ rollouts: [roll("3"), roll("4")] });
    expect(out).toMatchObject({ estimator: "single", index: 0, answer: "3", text: "text for 3" });
  });
  test("no rollouts is an error", async () => {
    await expect(singleEstimator().estimate({ rollouts: [] })).rejects.toThrow(/no rollouts/);
  });
});

describe("majority", () => {
  test("math mode groups equivalent answers before voting", async () => {
    const rollouts = [roll("4"), roll("\\frac12"), roll("0.5"), roll(null), roll("\\dfrac{1}{2}"), roll("4")];
    const out = await majorityEstimator(inlineMatcher("math")).estimate({ rollouts });
    expect(out.index).toBe(1);
    expect(out.answer).toBe("\\frac12");
    expect(out.why).toMatchObject({
      groups: [
        { answer: "4", votes: 2, members: [0, 5] },
        { answer: "\\frac12", votes: 3, members: [1, 2, 4] },
      ],
      noAnswer: 1,
      tie: false,
    });
  });
  test("exact mode keeps 0.5 and 1/2 apart, so 4 wins", async () => {
    const rollouts = [roll("\\frac12"), roll("4"), roll("0.5"), roll("4")];
    const out = await majorityEstimator(inlineMatcher("exact")).estimate({ rollouts });
    expect(out).toMatchObject({ index: 1, answer: "4" });
  });
  test("ties go to the first answer to appear", async () => {
    const rollouts = [roll("7"), roll("9"), roll("9"), roll("7")];
    const out = await majorityEstimator(inlineMatcher("exact")).estimate({ rollouts });
    expect(out).toMatchObject({ index: 0, answer: "7" });
    expect(out.why.tie).toBe(true);
  });
  test("no answers: nothing chosen", async () => {
    const out = await majorityEstimator(inlineMatcher("exact")).estimate({
      rollouts: [roll(null), roll(null)],
    });
    expect(out).toMatchObject({ index: null, answer: null, text: null });
  });
  test("the matcher gets every pair once, in one batch", async () => {
    const calls: number[] = [];
    const matcher: AnswerMatcher = async (pairs) => {
      calls.push(pairs.length);
      return pairs.map((p) => p.a === p.b);
    };
    const groups = await groupAnswers(["a", "b", null, "a", "c"], matcher);
    expect(calls).toEqual([6]);
    expect(groups).toEqual([
      { answer: "a", members: [0, 3] },
      { answer: "b", members: [1] },
      { answer: "c", members: [4] },
    ]);
  });
});

describe("min-ppl", () => {
  test("mean negative log-prob", () => {
    expect(meanNll([-1, -3])).toBe(2);
    expect(meanNll([])).toBeNull();
    expect(meanNll(undefined)).toBeNull();
  });
  test("picks the lowest mean NLL, not the lowest total", async () => {
    const rollouts = [
      roll("a", [-0.5, -0.5]), // mean 0.5, total 1
      roll("b", [-0.2, -0.2, -0.2, -0.2, -0.2, -0.2]), // mean 0.2, total 1.2
      roll("c", []),
    ];
    const out = await minPplEstimator().estimate({ rollouts });
    expect(out).toMatchObject({ estimator: "min-ppl", index: 1, answer: "b" });
    expect((out.why.meanNll as Array<number | null>)[2]).toBeNull();
    expect((out.why.perplexity as number[])[1]).toBeCloseTo(Math.exp(0.2), 12);
  });
  test("ties go to the earlier rollout; no log-probs at all is an error", async () => {
    const out = await minPplEstimator().estimate({ rollouts: [roll("a", [-1]), roll("b", [-1])] });
    expect(out.index).toBe(0);
    await expect(minPplEstimator().estimate({ rollouts: [roll("a")] })).rejects.toThrow(
      /no rollout has token log-probs/,
    );
  });
});
