import { formatJsonlError } from "../data/jsonl.js";
import { readPromptRows } from "../data/prompt-rows.js";
import type { Prompt } from "../engine/types.js";
import { UserError } from "../util/errors.js";

/** Prompts of a JSONL file for commands that only need the prompts; bad rows are reported on stderr. */
export async function loadPrompts(file: string, opts: { field?: string; limit?: number }): Promise<Prompt[]> {
  const { rows, errors } = await readPromptRows(file, { field: opts.field });
  for (const e of errors) process.stderr.write(`${formatJsonlError(file, e)} (row skipped)\n`);
  if (rows.length === 0) throw new UserError(`${file}: no usable prompt rows`);
  return rows.slice(0, opts.limit ?? rows.length).map((r) => r.prompt);
}
