import { z } from "zod";
import { zodIssue } from "../util/zod-error.js";
import { type JsonlError, streamJsonl } from "./jsonl.js";
import { ChatTurnSchema, type Prompt } from "./prompt.js";

/** A task input: what to prompt with, an id for the run's records, and the gold answer when there is one. */
export type PromptRow = { id: string; line: number; prompt: Prompt; gold?: string };

/** Fields tried, in order, when no `field` is named: MATH uses `problem`, HealthBench `prompt`. */
export const PROMPT_FIELDS = ["question", "problem", "prompt", "messages"] as const;
const ID_FIELDS = ["id", "unique_id", "prompt_id"] as const;

const ChatTurns = z.array(ChatTurnSchema).min(1);
const PromptValue = z.union([z.string().min(1), ChatTurns]);
const IdValue = z.union([z.string().min(1), z.number()]);
// Numeric gold answers (GSM8K-style) are compared as text like every other answer.
const GoldValue = z.union([z.string(), z.number()]).transform(String);

/**
 * Turns one parsed JSONL object into a `PromptRow`. The prompt comes from `field` when given, else the
 * first of question/problem/prompt/messages present; it is a string or chat turns `[{role, content}]`.
 */
export function toPromptRow(
  raw: unknown,
  line: number,
  options: { field?: string } = {},
): { row: PromptRow; error?: undefined } | { error: JsonlError } {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { error: { line, field: "(row)", message: "expected a JSON object" } };
  }
  const obj = raw as Record<string, unknown>;
  const field = options.field ?? PROMPT_FIELDS.find((f) => obj[f] !== undefined);
  if (!field) {
    return {
      error: { line, field: "(row)", message: `no prompt field (one of ${PROMPT_FIELDS.join(", ")})` },
    };
  }
  // Parse by the value's own kind: a union's error would not say which turn or key is wrong.
  const prompt = (Array.isArray(obj[field]) ? ChatTurns : PromptValue).safeParse(obj[field]);
  if (!prompt.success) {
    const issue = zodIssue(prompt.error);
    const sub = issue.field === "(row)" ? "" : `.${issue.field}`;
    return {
      error: {
        line,
        field: `${field}${sub}`,
        message: obj[field] === undefined ? "missing" : `expected a string or chat turns: ${issue.message}`,
      },
    };
  }
  let gold: string | undefined;
  if (obj.answer !== undefined && obj.answer !== null) {
    const g = GoldValue.safeParse(obj.answer);
    if (!g.success) return { error: { line, field: "answer", message: "expected a string or number" } };
    gold = g.data;
  }
  const idField = ID_FIELDS.find((f) => obj[f] !== undefined && obj[f] !== null);
  let id = String(line);
  if (idField) {
    const v = IdValue.safeParse(obj[idField]);
    if (!v.success)
      return { error: { line, field: idField, message: "expected a non-empty string or number" } };
    id = String(v.data);
  }
  return { row: { id, line, prompt: prompt.data, ...(gold !== undefined ? { gold } : {}) } };
}

/** Reads task inputs from JSONL; bad rows are collected as errors, the rest still load. */
export async function readPromptRows(
  file: string,
  options: { field?: string } = {},
): Promise<{ rows: PromptRow[]; errors: JsonlError[] }> {
  const rows: PromptRow[] = [];
  const errors: JsonlError[] = [];
  for await (const item of streamJsonl(file)) {
    if (item.error) {
      errors.push(item.error);
      continue;
    }
    const r = toPromptRow(item.value, item.line, options);
    if (r.error) errors.push(r.error);
    else rows.push(r.row);
  }
  return { rows, errors };
}
