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
// Estimators (model-free)
export { type AnswerGroup, groupAnswers, majorityEstimator } from "./cat/estimators/majority.js";
export { meanNll, minPplEstimator } from "./cat/estimators/min-ppl.js";
export { singleEstimator } from "./cat/estimators/single.js";
export {
  type AnswerMatcher,
  type Estimator,
  type EstimatorInput,
  type EstimatorOutput,
  type EstimatorRollout,
  inlineMatcher,
  poolMatcher,
} from "./cat/estimators/types.js";
// Synthesis prompts
export { type ParsedSynthesis, parseSynthesis } from "./cat/prompts/parse.js";
export {
  type BuildSynthesisPromptOptions,
  buildSynthesisPrompt,
  EMPTY_RESPONSE,
} from "./cat/prompts/synthesis.js";
export {
  FREEFORM_V1_INSTRUCTIONS,
  getSynthesisTemplate,
  REASONING_V1_INSTRUCTIONS,
  SYNTHESIS_TEMPLATES,
  type SynthesisTemplate,
  type SynthesisTemplateId,
} from "./cat/prompts/templates.js";
export { stripThinking } from "./cat/prompts/think.js";
// Rubrics and judging
export { ModelOutputError, parseRubric, parseVerdict } from "./cat/rubric/parse.js";
export {
  buildJudgePrompt,
  buildRubricPrompt,
  JUDGE_ALL_CANDIDATES,
  JUDGE_ALTERNATES,
  JUDGE_CANDIDATES,
  JUDGE_PROMPT_ID,
  pYesFrom,
  RUBRIC_PROMPT_ID,
  renderConversation,
} from "./cat/rubric/prompt.js";
export { type LengthPenalty, type RubricRewardOptions, rubricReward } from "./cat/rubric/reward.js";
export { RUBRIC_JSON_SCHEMA, type Rubric, RubricSchema } from "./cat/rubric/schema.js";
// Data
export {
  HEALTHBENCH_BOOTSTRAP_SAMPLES,
  type HealthBenchCriterion,
  type HealthBenchExample,
  type HealthBenchOverall,
  type HealthBenchRow,
  type HealthBenchStat,
  healthBenchMean,
  healthBenchOverall,
  healthBenchPromptRow,
  healthBenchScore,
  readHealthBench,
} from "./data/healthbench.js";
export { formatJsonlError, type JsonlError, type JsonlRow, readJsonl, streamJsonl } from "./data/jsonl.js";
export { type PromptRow, readPromptRows, toPromptRow } from "./data/prompt-rows.js";
