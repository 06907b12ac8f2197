import { parseOrThrow } from "../../util/zod-error.js";
import { stripThinking } from "../prompts/think.js";
import { type Rubric, RubricSchema } from "./schema.js";

/** A rubric or verdict that the model wrote in a form we cannot use; the message names what is wrong. */
export class ModelOutputError extends Error {
  override readonly name = "ModelOutputError";
}

function excerpt(text: string, max = 80): string {
  const one = text.replace(/\s+/g, " ").trim();
  return JSON.stringify(one.length > max ? `${one.slice(0, max)}...` : one);
}

/**
 * Reads a rubric from model output: JSON `{"criteria": [...]}` (possibly in a code fence or after some
 * prose), or, as the paper asked for, XML `<criterion>...</criterion>` items. Validated with zod; the
 * error says which part is wrong (not JSON, missing `criteria`, too few items, an empty item).
 */
export function parseRubric(text: string): Rubric {
  const body = stripThinking(text);
  const start = body.indexOf("{");
  const end = body.lastIndexOf("}");
  let candidate: unknown;
  if (start >= 0 && end > start) {
    try {
      candidate = JSON.parse(body.slice(start, end + 1));
    } catch (e) {
      if (!/<criterion>/i.test(body)) {
        throw new ModelOutputError(`rubric: not valid JSON (${(e as Error).message}) in ${excerpt(body)}`);
      }
    }
  }
  if (candidate === undefined) {
    const items = [...body.matchAll(/<criterion>([\s\S]*?)<\/criterion>/gi)].map((m) => m[1].trim());
    if (items.length === 0) {
      throw new ModelOutputError(`rubric: no JSON object or <criterion> items in ${excerpt(body)}`);
    }
    candidate = { criteria: items };
  }
  return parseOrThrow(RubricSchema, candidate, (i) => `rubric: ${i.field}: ${i.message}`, {
    root: "(root)",
    makeError: (m) => new ModelOutputError(m),
  });
}

/**
 * A free-generation judge verdict: yes (true) or no (false). Accepts `<verdict>yes</verdict>`, "Yes.",
 * "**No**", "Answer: yes", "Verdict - NO", and a longer reply whose only yes/no word is unambiguous.
 * Anything else is an error quoting the text, so an unparsable verdict is never silently a "no".
 */
export function parseVerdict(text: string): boolean {
  const body = stripThinking(text);
  const xml = /<(?:verdict|answer)>\s*([a-z]+)\s*<\/(?:verdict|answer)>/i.exec(body);
  if (xml) {
    const w = xml[1].toLowerCase();
    if (w === "yes" || w === "no") return w === "yes";
  }
  const lead = body
    .replace(/^[\s*_#>`"'([-]+/, "")
    .replace(/^(?:final\s+)?(?:answer|verdict|judgement|judgment)\s*[:=-]?\s*[*_"'`]*\s*/i, "");
  const first = /^(yes|no)\b/i.exec(lead);
  if (first) return first[1].toLowerCase() === "yes";
  const words = [...body.matchAll(/\b(yes|no)\b/gi)].map((m) => m[1].toLowerCase());
  const kinds = new Set(words);
  if (kinds.size === 1) return words[0] === "yes";
  throw new ModelOutputError(`verdict: expected yes or no, got ${excerpt(body)}`);
}
