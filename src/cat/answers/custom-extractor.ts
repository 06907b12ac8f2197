import { existsSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { UserError } from "../../util/errors.js";
import { parseOrThrow } from "../../util/zod-error.js";

/**
 * A user-supplied answer extractor for verifiable tasks other than boxed math (multiple choice, code
 * output, a JSON field...). The module contract:
 *
 * ```js
 * // my-extractor.mjs (ESM; a CommonJS module with module.exports = { extract } also works)
 * // Required. The final answer in one model response, or null when there is none.
 * export function extract(text) { const m = /ANSWER: ([A-D])/.exec(text); return m ? m[1] : null; }
 * // Optional. Whether two extracted answers agree; defaults to the built-in `exact` normalised match.
 * // Must be synchronous, pure and fast: it runs once per pair of rollouts.
 * export function match(a, b) { return a.toUpperCase() === b.toUpperCase(); }
 * ```
 *
 * Both functions may also be exported as properties of the default export. Whatever they return is
 * checked on every call: `extract` must return a string or null, `match` a boolean.
 */
export type CustomExtractor = {
  source: string;
  extract(text: string): string | null;
  match?: (a: string, b: string) => boolean;
};

const ModuleShape = z.object({
  extract: z.custom<(text: string) => unknown>((v) => typeof v === "function", "must export a function"),
  match: z
    .custom<(a: string, b: string) => unknown>((v) => typeof v === "function", "must be a function")
    .optional(),
});

export async function loadExtractor(modulePath: string): Promise<CustomExtractor> {
  const abs = path.resolve(modulePath);
  if (!existsSync(abs)) throw new UserError(`${modulePath}: extractor module not found`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
  } catch (e) {
    const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new UserError(`${modulePath}: extractor module failed to load: ${msg}`, 1, { cause: e });
  }
  const candidate = typeof mod.extract === "function" ? mod : (mod.default as Record<string, unknown>);
  const { extract, match } = parseOrThrow(
    ModuleShape,
    candidate ?? {},
    (i) => `${modulePath}: field \`${i.field}\` ${i.message} (see the extractor contract)`,
    { root: "extract" },
  );
  return {
    source: abs,
    extract(text) {
      const out = extract(text);
      if (out === null || out === undefined) return null;
      if (typeof out !== "string") {
        throw new UserError(
          `${modulePath}: extract() returned ${typeof out}; it must return a string or null`,
        );
      }
      return out;
    },
    match: match
      ? (a, b) => {
          const out = match(a, b);
          if (typeof out !== "boolean") {
            throw new UserError(`${modulePath}: match() returned ${typeof out}; it must return a boolean`);
          }
          return out;
        }
      : undefined,
  };
}
