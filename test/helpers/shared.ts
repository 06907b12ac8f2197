import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { formatJsonlError, parseJsonl } from "../../src/data/jsonl.js";

/** ../shared beside the checkout: present on developer machines and in CI. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const SHARED = path.resolve(REPO_ROOT, "../shared");
/** The real tiny model committed in models/ (the demo's default): present in every checkout. */
export const SHIPPED_STORIES = path.join(REPO_ROOT, "models/stories260K.gguf");
export const SHARED_STORIES = path.join(SHARED, "models/stories260K.gguf");
/**
 * stories260K for the tests: ../shared's copy where it is, else the committed one (the same bytes), so
 * the tests that need the real tiny model run in every checkout.
 */
export const STORIES = existsSync(SHARED_STORIES) ? SHARED_STORIES : SHIPPED_STORIES;
export const MATH500 = path.join(SHARED, "data/math500.jsonl");
export const HEALTHBENCH = path.join(SHARED, "data/healthbench_hard_sample.jsonl");

export const hasStories = existsSync(STORIES);
/** Why a test that needs ../shared is skipped (only ever when the file is absent). */
export const noStoriesReason = `skipped: ${STORIES} is absent (tests that need the real tiny model run where ../shared exists, as in CI)`;

export const CLI = path.join(REPO_ROOT, "dist/src/cli/main.js");

/** The JSON objects of a JSONL file (blank lines skipped). */
// biome-ignore lint/suspicious/noExplicitAny: test fixtures are read as loose JSON
export function readJsonlFile(file: string): any[] {
  return parseJsonl(readFileSync(file, "utf8")).map((item) => {
    if (item.error) throw new Error(formatJsonlError(file, item.error));
    return item.value;
  });
}
