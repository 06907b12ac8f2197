import { readFile } from "node:fs/promises";
import type { z } from "zod";
import { UserError } from "./errors.js";
import { parseOrThrow } from "./zod-error.js";

/**
 * Reads a JSON file against a schema; every failure is one line naming the file and what it should be:
 * empty, not JSON (V8's message quotes the text, newlines and all: they are escaped here), or not the
 * expected shape (the first field at fault).
 */
export async function readJsonFile<T>(file: string, schema: z.ZodType<T>, what: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new UserError(`${file}: cannot read ${what} (${flat((e as Error).message)})`, 1, { cause: e });
  }
  if (text.trim() === "") throw new UserError(`${file}: empty; expected ${what}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(
      `${file}: corrupt: not valid JSON (${flat((e as Error).message)}); expected ${what}`,
      1,
      {
        cause: e,
      },
    );
  }
  return parseOrThrow(
    schema,
    json,
    (i) => `${file}: not ${what} or corrupt (${flat(`${i.field ? `${i.field}: ` : ""}${i.message}`)})`,
    { root: "" },
  );
}

/** One line: raw newlines in a message become `\n`. */
export function flat(message: string): string {
  return message.replace(/\r?\n/g, "\\n");
}
