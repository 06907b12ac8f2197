import { createReadStream, existsSync } from "node:fs";
import { createInterface } from "node:readline";
import type { z } from "zod";
import { UserError } from "../util/errors.js";
import { zodIssue } from "../util/zod-error.js";

/** A row that could not be used: 1-based line, the offending field (`(json)` for a syntax error), why. */
export type JsonlError = { line: number; field: string; message: string };
export type JsonlRow<T> = { line: number; value: T };
export type JsonlItem<T> =
  | { line: number; value: T; error?: undefined }
  | { line: number; error: JsonlError };

/**
 * Streams a JSONL file line by line (1-based numbers; blank lines skipped). A malformed line or a row
 * failing `schema` is yielded as an error item instead of thrown, so a long run can go on and report
 * every bad row at the end. A missing file is a UserError.
 */
export async function* streamJsonl<T = unknown>(
  file: string,
  schema?: z.ZodType<T>,
): AsyncGenerator<JsonlItem<T>> {
  if (!existsSync(file)) throw new UserError(`${file}: file not found`);
  const lines = createInterface({ input: createReadStream(file, { encoding: "utf8" }), crlfDelay: Infinity });
  let line = 0;
  for await (const text of lines) {
    line++;
    if (text.trim() !== "") yield parseJsonlLine(text, line, schema);
  }
}

/** JSONL text already in memory, item by item as `streamJsonl` yields them (blank lines skipped). */
export function parseJsonl<T = unknown>(text: string, schema?: z.ZodType<T>): JsonlItem<T>[] {
  const items: JsonlItem<T>[] = [];
  text.split("\n").forEach((l, i) => {
    if (l.trim() !== "") items.push(parseJsonlLine(l, i + 1, schema));
  });
  return items;
}

/** One JSONL line (1-based `line`): its value, or why it cannot be used (never throws). */
export function parseJsonlLine<T = unknown>(text: string, line: number, schema?: z.ZodType<T>): JsonlItem<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { line, error: { line, field: "(json)", message: e instanceof Error ? e.message : String(e) } };
  }
  if (!schema) return { line, value: raw as T };
  const parsed = schema.safeParse(raw);
  if (parsed.success) return { line, value: parsed.data };
  const { field, message } = zodIssue(parsed.error);
  return { line, error: { line, field, message } };
}

/** All rows of a JSONL file, with the errors collected beside them (see `streamJsonl`). */
export async function readJsonl<T = unknown>(
  file: string,
  schema?: z.ZodType<T>,
): Promise<{ rows: JsonlRow<T>[]; errors: JsonlError[] }> {
  const rows: JsonlRow<T>[] = [];
  const errors: JsonlError[] = [];
  for await (const item of streamJsonl(file, schema)) {
    if (item.error) errors.push(item.error);
    else rows.push({ line: item.line, value: item.value });
  }
  return { rows, errors };
}

/** One line per error, `file:line: field: message`, for a run's end-of-run report. */
export function formatJsonlError(file: string, e: JsonlError): string {
  return `${file}:${e.line}: ${e.field}: ${e.message}`;
}
