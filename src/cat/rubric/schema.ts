import { z } from "zod";

export const RUBRIC_MIN_CRITERIA = 5;
export const RUBRIC_MAX_CRITERIA = 12;

/**
 * The rubric as a JSON schema for constrained generation (node-llama-cpp `createGrammarForJsonSchema`,
 * or the engine's `jsonSchema` request field). Only constructs that grammar supports: string items and
 * array length bounds, no integer or pattern types.
 */
export const RUBRIC_JSON_SCHEMA = {
  type: "object",
  properties: {
    criteria: {
      type: "array",
      items: { type: "string", minLength: 10, maxLength: 400 },
      minItems: RUBRIC_MIN_CRITERIA,
      maxItems: RUBRIC_MAX_CRITERIA,
    },
  },
  required: ["criteria"],
  additionalProperties: false,
} as const;

export const RubricSchema = z.object({
  criteria: z
    .array(z.string().trim().min(1, "a criterion is empty"))
    .min(RUBRIC_MIN_CRITERIA, `needs at least ${RUBRIC_MIN_CRITERIA} criteria`)
    .max(RUBRIC_MAX_CRITERIA, `allows at most ${RUBRIC_MAX_CRITERIA} criteria`),
});
export type Rubric = z.infer<typeof RubricSchema>;
