import { existsSync } from "node:fs";
import { describe, expect, test } from "vitest";
import {
  type HealthBenchCriterion,
  healthBenchMean,
  healthBenchPromptRow,
  healthBenchScore,
  readHealthBench,
} from "../src/data/healthbench.js";

const crit = (points: number): HealthBenchCriterion => ({ criterion: `c${points}`, points, tags: [] });

describe("healthBenchScore", () => {
  const rubric = [crit(10), crit(5), crit(-3), crit(5), crit(-8)];
  test("met points over positive points", () => {
    // 10 + 5 met, -3 met: (15 - 3) / 20
    expect(healthBenchScore(rubric, [true, true, true, false, false])).toBeCloseTo(0.6, 12);
    expect(healthBenchScore(rubric, [true, true, false, true, false])).toBe(1);
  });
  test("clipped to [0, 1]", () => {
    expect(healthBenchScore(rubric, [false, true, true, false, true])).toBe(0);
    expect(healthBenchScore([crit(4), crit(-2)], [false, false])).toBe(0);
  });
  test("verdict count must match and a rubric needs positive points", () => {
    expect(() => healthBenchScore(rubric, [true])).toThrow(/1 verdicts for 5 criteria/);
    expect(() => healthBenchScore([crit(-1)], [true])).toThrow(/no positive points/);
  });
  test("benchmark score is the mean", () => {
    expect(healthBenchMean([0, 0.5, 1])).toBeCloseTo(0.5, 12);
  });
});

const FILE = "../shared/data/healthbench_hard_sample.jsonl";

// The shared data lives outside the repo; a checkout without it cannot check the real structure.
describe.skipIf(!existsSync(FILE))("HealthBench hard sample (needs ../shared/data)", () => {
  test("all 64 rows load with the documented structure", async () => {
    const { rows, errors } = await readHealthBench(FILE);
    expect(errors).toEqual([]);
    expect(rows).toHaveLength(64);
    let positive = 0;
    let negative = 0;
    for (const { value, line } of rows) {
      expect(value.prompt.length).toBeGreaterThanOrEqual(1);
      expect(value.prompt.length).toBeLessThanOrEqual(13);
      expect(value.prompt.at(-1)?.role).toBe("user");
      expect(value.rubrics.length).toBeGreaterThanOrEqual(3);
      for (const r of value.rubrics) {
        expect(Number.isInteger(r.points)).toBe(true);
        if (r.points > 0) positive++;
        else negative++;
      }
      expect(healthBenchPromptRow(value, line).id).toBe(value.prompt_id);
      // Meeting every positive and no negative criterion is a perfect score; the reverse scores 0.
      expect(
        healthBenchScore(
          value.rubrics,
          value.rubrics.map((r) => r.points > 0),
        ),
      ).toBe(1);
      expect(
        healthBenchScore(
          value.rubrics,
          value.rubrics.map((r) => r.points < 0),
        ),
      ).toBe(0);
    }
    // PROVENANCE.md: 523 positive and 255 negative items.
    expect([positive, negative]).toEqual([523, 255]);
  });
});
