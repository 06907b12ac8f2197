import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { HEALTHBENCH, MATH500, SHARED_STORIES } from "./helpers/shared.js";

/**
 * Tests that need ../shared skip when it is absent (a developer machine without it). CI always has it,
 * so there a missing file must fail the run instead of silently turning those tests into skips.
 */
describe("../shared in CI", () => {
  it.runIf(process.env.CI === "true")("holds the model and data the integration tests need", () => {
    for (const f of [SHARED_STORIES, MATH500, HEALTHBENCH])
      expect(existsSync(f), `${f} is missing in CI`).toBe(true);
  });
});
