import type { JsonlError } from "../data/jsonl.js";
import type { PromptRow } from "../data/prompt-rows.js";
import type { Engine } from "../engine/types.js";

/**
 * Splits rows into those whose prompt plus the completion budget fits the model's context and those that
 * do not, before any work starts. A row that does not fit fails every time it is drawn: in training that
 * stopped the run at the step that drew it, and `--resume` died at the same step again. The check
 * tokenizes each prompt exactly as the rollouts will (chat template and BOS included).
 */
export function splitByContextFit(
  engine: Pick<Engine, "info" | "tokenizePrompt">,
  rows: PromptRow[],
  maxTokens: number,
): { fit: PromptRow[]; errors: JsonlError[] } {
  const fit: PromptRow[] = [];
  const errors: JsonlError[] = [];
  const context = engine.info.trainContextSize;
  for (const row of rows) {
    const n = engine.tokenizePrompt(row.prompt).length;
    if (n + maxTokens <= context) fit.push(row);
    else
      errors.push({
        line: row.line,
        field: "prompt",
        message: `too long for the model: ${n} prompt tokens + ${maxTokens} max tokens = ${n + maxTokens} exceeds its context of ${context}`,
      });
  }
  return { fit, errors };
}
