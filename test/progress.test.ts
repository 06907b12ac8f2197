import { describe, expect, it } from "vitest";
import { formatSeconds as formatReportSeconds } from "../src/report/page.js";
import { formatDuration, formatProgress } from "../src/util/progress.js";

describe("progress line", () => {
  it("shows done/total, the rate and an ETA extrapolated from the elapsed time", () => {
    const line = formatProgress("rollouts", {
      done: 4,
      total: 16,
      elapsedMs: 2000,
      rate: { value: 123.45, unit: "tok/s" },
    });
    expect(line).toBe("rollouts 4/16 | 123.5 tok/s | ETA 6s");
  });

  it("shows the elapsed time instead of an ETA before the first item and at the end", () => {
    expect(formatProgress("steps", { done: 0, total: 3, elapsedMs: 1500 })).toBe("steps 0/3 | 2s elapsed");
    expect(formatProgress("steps", { done: 3, total: 3, elapsedMs: 61_000 })).toBe(
      "steps 3/3 | 1m01s elapsed",
    );
  });

  it("formats durations in s, m and h", () => {
    expect(formatDuration(59_400)).toBe("59s");
    expect(formatDuration(125_000)).toBe("2m05s");
    expect(formatDuration(3_725_000)).toBe("1h02m");
  });

  it("one unit per name: formatDuration takes milliseconds, the report's formatSeconds seconds", () => {
    expect(formatDuration(125_000)).toBe("2m05s");
    expect(formatReportSeconds(125)).toBe("2 min 5 s");
    expect(formatReportSeconds(3725)).toBe("1 h 2 min");
  });
});
