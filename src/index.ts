// The package's public API. Each area adds its own block; keep them grouped by concept.

// Verifiable answers
export { type CustomExtractor, loadExtractor } from "./cat/answers/custom-extractor.js";
export { boxedContents, extractFinalAnswer } from "./cat/answers/extract.js";
export { answersMatch, type MatchMode, MatchModeSchema } from "./cat/answers/match.js";
export { normalizeAnswer } from "./cat/answers/normalize.js";
export {
  type AnswerChecker,
  type AnswerCheckerOptions,
  type AnswerPair,
  type CheckResult,
  createAnswerChecker,
} from "./cat/answers/pool.js";

// Data
export {
  type HealthBenchCriterion,
  type HealthBenchRow,
  healthBenchMean,
  healthBenchPromptRow,
  healthBenchScore,
  readHealthBench,
} from "./data/healthbench.js";
export { formatJsonlError, type JsonlError, type JsonlRow, readJsonl, streamJsonl } from "./data/jsonl.js";
export { type PromptRow, readPromptRows, toPromptRow } from "./data/prompt-rows.js";
