import { describe, expect, test } from "vitest";
import { answersMatch, checkAnswers, MAX_ANSWER_CHARS } from "../src/cat/answers/match.js";
import { normalizeAnswer } from "../src/cat/answers/normalize.js";
import { describeUnfinishedChecks, openTask } from "../src/cat/task.js";

// Inputs a runaway generation can produce. Before normalisation was linear, the nested braces alone took
// 11 s at 128k characters and `answersMatch` on 2^19 of them did not return in 60 s: these tests then
// ran into their own timeout. They assert results, not speed; the timeout only stops a hang.
const nested = (n: number, inner = "") => "{".repeat(n) + inner + "}".repeat(n);
const GUARD_MS = 20_000;

describe("answer normalisation on adversarial input", () => {
  test(
    "braces wrapping the whole answer are dropped in one pass, however deep",
    () => {
      expect(normalizeAnswer(nested(2 ** 17, "5"))).toBe("5");
      expect(normalizeAnswer(nested(3, "\\frac12"))).toBe("\\frac{1}{2}");
      // Not wrapping the whole answer: kept.
      expect(normalizeAnswer("{1}+{2}")).toBe("{1}+{2}");
      expect(normalizeAnswer(`${nested(2 ** 16, "5")}}`)).toBe(`${nested(2 ** 16, "5")}}`);
      // An escaped brace is content, not a group.
      expect(normalizeAnswer("{\\{1,2\\}}")).toBe("\\{1,2\\}");
      expect(normalizeAnswer("{a\\}")).toBe("{a\\}");
    },
    GUARD_MS,
  );

  test(
    "a long run of trailing dots and deeply nested fractions",
    () => {
      expect(normalizeAnswer(`5${".".repeat(200_000)}`)).toBe("5");
      // 20k nested \frac groups overflowed the stack; the first levels are still rewritten.
      const fracs = `${"\\frac{".repeat(20_000)}1${"}2".repeat(20_000)}`;
      const out = normalizeAnswer(fracs);
      expect(out.startsWith("\\frac{\\frac{")).toBe(true);
      expect(out).toContain("}{2}");
      expect(normalizeAnswer("\\frac{\\frac12}3")).toBe("\\frac{\\frac{1}{2}}{3}");
    },
    GUARD_MS,
  );
});

describe("public equivalence calls are bounded", () => {
  test(
    "an answer over the length limit is no match, with the reason",
    () => {
      const huge = nested(2 ** 19);
      for (const mode of ["exact", "math"] as const) {
        expect(answersMatch(huge, huge, { mode })).toBe(false);
        expect(checkAnswers(huge, "5", { mode })).toEqual({ match: false, reason: "too-long" });
        expect(checkAnswers("5", huge, { mode })).toEqual({ match: false, reason: "too-long" });
      }
      const limit = `1${" ".repeat(MAX_ANSWER_CHARS - 1)}`;
      expect(checkAnswers(limit, "1")).toEqual({ match: true });
      expect(checkAnswers(`${limit} `, "1")).toEqual({ match: false, reason: "too-long" });
    },
    GUARD_MS,
  );

  test("a math comparison past its time limit is no match, with the reason", () => {
    const pair = ["(x+1)^2", "x^2+2x+1"] as const;
    expect(checkAnswers(...pair, { mode: "math" })).toEqual({ match: true });
    expect(checkAnswers(...pair, { mode: "math", timeLimitMs: 0 })).toEqual({
      match: false,
      reason: "time-limit",
    });
    // Equal after normalisation needs no engine, so no time limit applies.
    expect(checkAnswers("\\frac12", "\\dfrac{1}{2}", { mode: "math", timeLimitMs: 0 })).toEqual({
      match: true,
    });
  });
});

describe("a run's task counts the comparisons that did not finish", () => {
  test.each(["exact", "math"] as const)(
    "%s mode: a too-long answer is counted and reported",
    async (matchMode) => {
      const task = await openTask({ task: "math", matchMode, threads: 1 });
      try {
        if (task.kind !== "verifiable") throw new Error("math is verifiable");
        const huge = nested(2 ** 12);
        const ok = await task.matchMany([
          { a: huge, b: "5" },
          { a: "5", b: "5" },
          { a: null, b: "5" },
        ]);
        expect(ok).toEqual([false, true, false]);
        expect(task.unfinishedChecks()).toEqual({ "too-long": 1, "time-limit": 0, timeout: 0 });
        expect(describeUnfinishedChecks(task.unfinishedChecks())).toBe(
          `answer comparisons counted as no match: 1 with an answer over ${MAX_ANSWER_CHARS} characters`,
        );
        expect(describeUnfinishedChecks({ "too-long": 0, "time-limit": 0, timeout: 0 })).toBeNull();
      } finally {
        await task.close();
      }
    },
  );
});
