import { existsSync } from "node:fs";
import { describe, expect, test } from "vitest";
import {
  type HealthBenchCriterion,
  type HealthBenchExample,
  healthBenchMean,
  healthBenchOverall,
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
  test("unclipped, as simple-evals' calculate_score (issue 8: the old per-example clip was wrong)", () => {
    // 5 - 3 - 8 over 20
    expect(healthBenchScore(rubric, [false, true, true, false, true])).toBeCloseTo(-0.3, 12);
    expect(healthBenchScore([crit(4), crit(-2)], [false, false])).toBe(0);
    // The example: +5 and -8 both met give -3/5, not 0 (and not a clipped 0.5 of anything).
    expect(healthBenchScore([crit(5), crit(-8)], [true, true])).toBeCloseTo(-0.6, 12);
  });
  test("unjudged criteria leave both numerator and denominator", () => {
    // Only +10 (met) and -3 (not met) judged: 10 / 10, where "unjudged = not met" would give 10 / 20.
    expect(healthBenchScore(rubric, [true, null, false, null, null])).toBe(1);
    // An unjudged negative criterion no longer counts in the response's favour: -3 met is all there is.
    expect(healthBenchScore([crit(4), crit(-3), crit(-8)], [false, true, null])).toBeCloseTo(-0.75, 12);
    expect(() => healthBenchScore([crit(4), crit(-3)], [null, true])).toThrow(
      /no criterion with positive points was judged/,
    );
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
      // Meeting only the negatives scores their (negative) sum over the positive points, unclipped.
      const neg = value.rubrics.reduce((s, r) => s + Math.min(r.points, 0), 0);
      const pos = value.rubrics.reduce((s, r) => s + Math.max(r.points, 0), 0);
      expect(
        healthBenchScore(
          value.rubrics,
          value.rubrics.map((r) => r.points < 0),
        ),
      ).toBeCloseTo(neg / pos, 12);
    }
    // PROVENANCE.md: 523 positive and 255 negative items.
    expect([positive, negative]).toEqual([523, 255]);
  });
});

describe("healthBenchOverall (simple-evals aggregation)", () => {
  const ex = (points: number[], met: (boolean | null)[], tags: string[][] = [], exampleTags: string[] = []) =>
    ({
      rubrics: points.map((p, i) => ({ criterion: `c${i}`, points: p, tags: tags[i] ?? [] })),
      met,
      exampleTags,
    }) satisfies HealthBenchExample;

  test("clips the mean, not each example", () => {
    // Per example: 1, -0.6. Clipping each first gives (1 + 0) / 2 = 0.5; the official mean is 0.2.
    const r = healthBenchOverall([ex([5, 5], [true, true]), ex([5, -8], [true, true])]);
    expect(r.perExample[0]).toBe(1);
    expect(r.perExample[1]).toBeCloseTo(-0.6, 12);
    expect(r.overall).toBeCloseTo(0.2, 12);
    expect(r.n).toBe(2);
    // A negative mean is clipped to 0.
    expect(healthBenchOverall([ex([5, -8], [true, true])]).overall).toBe(0);
  });

  test("per-tag scores: rubric tags on their own criteria, example tags take the example's score", () => {
    const r = healthBenchOverall([
      ex(
        [4, 6, -2],
        [true, false, true],
        [["axis:accuracy"], ["axis:completeness"], ["axis:accuracy"]],
        ["theme:hedging"],
      ),
      ex(
        [10, -5],
        [true, false],
        [["axis:completeness"], ["axis:completeness"]],
        ["theme:hedging", "theme:global_health"],
      ),
    ]);
    // Example 1: (4 - 2) / 10 = 0.2; accuracy (4 - 2) / 4 = 0.5; completeness 0 / 6 = 0.
    // Example 2: 1; completeness 10 / 10 = 1.
    expect(r.perExample).toEqual([0.2, 1]);
    expect(r.byTag["axis:accuracy"].score).toBeCloseTo(0.5, 12);
    expect(r.byTag["axis:accuracy"].n).toBe(1);
    expect(r.byTag["axis:completeness"].score).toBeCloseTo(0.5, 12);
    expect(r.byTag["axis:completeness"].n).toBe(2);
    expect(r.byTag["theme:hedging"].score).toBeCloseTo(0.6, 12);
    expect(r.byTag["theme:global_health"]).toMatchObject({ score: 1, n: 1, bootstrapStd: 0 });
  });

  test("a tag whose criteria in an example are all negative does not count that example", () => {
    const r = healthBenchOverall([ex([4, -2], [true, true], [["axis:a"], ["axis:b"]])]);
    expect(r.byTag["axis:a"].score).toBe(1);
    expect(r.byTag["axis:b"]).toBeUndefined();
  });

  test("unjudged criteria are reported and left out; an example with no judged positive is unscored", () => {
    const r = healthBenchOverall([ex([4, -2, 6], [true, null, null]), ex([3, -1], [null, true])]);
    expect(r.unjudged).toBe(3);
    expect(r.unscored).toBe(1);
    expect(r.perExample).toEqual([1, null]);
    expect(r.overall).toBe(1);
    expect(r.n).toBe(1);
  });

  test("bootstrap std: seeded, matches the analytic std of the mean, 0 for constant scores", () => {
    // 200 examples scoring 0.3 or 0.7 alternately: std of the mean = 0.2 / sqrt(200) = 0.01414.
    const many = Array.from({ length: 200 }, (_, i) => ex([10, i % 2 === 0 ? -7 : -3], [true, true]));
    const a = healthBenchOverall(many);
    expect(a.overall).toBeCloseTo(0.5, 12);
    expect(a.bootstrapStd).toBeGreaterThan((0.2 / Math.sqrt(200)) * 0.85);
    expect(a.bootstrapStd).toBeLessThan((0.2 / Math.sqrt(200)) * 1.15);
    expect(healthBenchOverall(many).bootstrapStd).toBe(a.bootstrapStd);
    expect(healthBenchOverall(many, { seed: 7 }).bootstrapStd).not.toBe(a.bootstrapStd);
    expect(healthBenchOverall([ex([5], [true]), ex([5], [true])]).bootstrapStd).toBe(0);
    // Every resample's mean is clipped before the std: all resamples of negative scores clip to 0.
    expect(healthBenchOverall([ex([5, -8], [true, true]), ex([5, -9], [true, true])]).bootstrapStd).toBe(0);
  });

  test("verdict count must match", () => {
    expect(() => healthBenchOverall([ex([1, 2], [true])])).toThrow(/example 0: 1 verdicts for 2 criteria/);
    expect(() => healthBenchOverall([])).toThrow(/no examples/);
  });
});

describe.skipIf(!existsSync(FILE))(
  "healthBenchOverall on the HealthBench hard sample (needs ../shared/data)",
  () => {
    // The official formula written out by hand: per example sum(points of met) / sum(positive points),
    // mean over examples, clip the mean to [0, 1]; rubric tags over their own criteria.
    const hand = (
      rows: { rubrics: { points: number; tags: string[] }[] }[],
      met: (r: number, i: number) => boolean,
    ) => {
      let total = 0;
      const tag: Record<string, number[]> = {};
      rows.forEach((row, r) => {
        let pos = 0;
        let got = 0;
        const tp: Record<string, [number, number]> = {};
        row.rubrics.forEach((c, i) => {
          if (c.points > 0) pos += c.points;
          if (met(r, i)) got += c.points;
          for (const t of c.tags) {
            tp[t] ??= [0, 0];
            if (c.points > 0) tp[t][0] += c.points;
            if (met(r, i)) tp[t][1] += c.points;
          }
        });
        total += got / pos;
        for (const [t, [p, g]] of Object.entries(tp))
          if (p > 0) {
            tag[t] ??= [];
            tag[t].push(g / p);
          }
      });
      const clip = (x: number) => Math.min(1, Math.max(0, x));
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      return {
        overall: clip(total / rows.length),
        tag: Object.fromEntries(Object.entries(tag).map(([t, v]) => [t, clip(mean(v))])),
      };
    };

    for (const [name, met] of [
      ["all criteria met", () => true],
      ["a mixed pattern", (r: number, i: number) => (r + i) % 3 !== 0],
    ] as const) {
      test(name, async () => {
        const rows = (await readHealthBench(FILE)).rows.map((r) => r.value);
        const got = healthBenchOverall(
          rows.map((row, r) => ({
            rubrics: row.rubrics,
            met: row.rubrics.map((_, i) => met(r, i)),
            exampleTags: row.example_tags,
          })),
        );
        const want = hand(rows, met);
        expect(got.overall).toBeCloseTo(want.overall, 12);
        expect(got.n).toBe(64);
        for (const [t, v] of Object.entries(want.tag)) expect(got.byTag[t].score).toBeCloseTo(v, 12);
        expect(got.byTag["axis:accuracy"]).toBeDefined();
        expect(got.byTag["theme:hedging"]).toBeDefined();
        expect(got.bootstrapStd).toBeGreaterThan(0);
      });
    }

    test("all met: the official 0.410 where clipping each example gave 0.468", async () => {
      const rows = (await readHealthBench(FILE)).rows.map((r) => r.value);
      const got = healthBenchOverall(
        rows.map((row) => ({ rubrics: row.rubrics, met: row.rubrics.map(() => true) })),
      );
      expect(got.overall).toBeCloseTo(0.4102, 4);
      const clippedEach = healthBenchMean(got.perExample.map((s) => Math.min(1, Math.max(0, s!))));
      expect(clippedEach).toBeCloseTo(0.4685, 4);
    });
  },
);
