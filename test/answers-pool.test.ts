import { existsSync } from "node:fs";
import { afterAll, describe, expect, test } from "vitest";
import { answerWorkerPath, createAnswerChecker } from "../src/cat/answers/pool.js";

const HANG = "__catrl_test_hang__";
process.env.CATRL_ANSWER_WORKER_TEST_HANG = HANG;

// `npm test` builds dist/ first; the worker cannot run from .ts. Fail loudly rather than skip.
describe("answer checker pool", () => {
  test("worker is built", () => {
    expect(existsSync(answerWorkerPath()), `${answerWorkerPath()} (run npm run build)`).toBe(true);
  });

  const checker = createAnswerChecker({ threads: 2, timeoutMs: 1500 });
  afterAll(() => checker.close());

  test("checks pairs in order, in math mode", async () => {
    const res = await checker.check(
      [
        { a: "0.5", b: "\\frac12" },
        { a: "(1,2)", b: "(2,1)" },
        { a: null, b: "3" },
        { a: "\\{1,2\\}", b: "\\{2,1\\}" },
      ],
      "math",
    );
    expect(res.map((r) => r.match)).toEqual([true, false, false, true]);
    expect(res.some((r) => r.timedOut)).toBe(false);
  });

  test("exact mode does not use equivalence", async () => {
    const res = await checker.check([{ a: "0.5", b: "\\frac12" }], "exact");
    expect(res).toEqual([{ match: false }]);
  });

  test("an answer over the length limit is no match, reported as too long", async () => {
    const huge = "{".repeat(2 ** 19) + "}".repeat(2 ** 19);
    const res = await checker.check(
      [
        { a: huge, b: "5" },
        { a: "2", b: "2.0" },
      ],
      "math",
    );
    expect(res).toEqual([{ match: false, reason: "too-long" }, { match: true }]);
  });

  test("a hanging check times out, its worker is replaced, and later checks still run", async () => {
    const started = Date.now();
    const res = await checker.check(
      [
        { a: HANG, b: "1" },
        { a: "2", b: "2.0" },
        { a: HANG, b: "1" },
        { a: "\\sqrt8", b: "2\\sqrt2" },
      ],
      "math",
    );
    expect(res).toEqual([
      { match: false, timedOut: true },
      { match: true },
      { match: false, timedOut: true },
      { match: true },
    ]);
    expect(Date.now() - started).toBeLessThan(10_000);
    const after = await checker.check([{ a: "1,000", b: "1000" }], "math");
    expect(after).toEqual([{ match: true }]);
  });
});
