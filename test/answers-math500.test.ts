import { existsSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { runMath500Extract } from "../bench/math500-extract.js";

const FILE = "../shared/data/math500.jsonl";

// The shared data lives outside the repo; a checkout without it cannot run this measurement.
describe.skipIf(!existsSync(FILE))(
  "MATH-500: answers extracted from reference solutions (needs ../shared/data)",
  () => {
    test("match the gold answer for >= 99% in math mode", async () => {
      const report = await runMath500Extract(FILE);
      expect(report.total).toBe(500);
      expect(report.math.timedOut).toBe(0);
      expect(report.math.rate, JSON.stringify(report.misses.slice(0, 5))).toBeGreaterThanOrEqual(0.99);
      expect(report.exact.rate).toBeGreaterThanOrEqual(0.95);
    });
  },
);
