import type { z } from "zod";
import { UserError } from "./errors.js";

/**
 * The one place a zod failure becomes words. Every boundary (files, flags, module contracts, model output)
 * names the first field at fault the same way: its path joined with dots (`prompt.2.content`), or the
 * caller's word for the value itself when the path is empty.
 */
export type ZodIssueLine = { field: string; message: string; code: string };

/** The first issue of `error`; `root` names the field when the value itself is at fault. */
export function zodIssue(error: z.ZodError, root = "(row)"): ZodIssueLine {
  const issue = error.issues[0];
  return {
    field: issue?.path.map(String).join(".") || root,
    message: issue?.message ?? "invalid row",
    code: issue?.code ?? "custom",
  };
}

/** Up to `max` issues as `field: message; ...` with a count of the rest, for reports that list problems. */
export function describeZodError(error: z.ZodError, max = 3): string {
  const parts = error.issues.slice(0, max).map((i) => {
    const where = i.path.length > 0 ? i.path.join(".") : "(record)";
    return `${where}: ${i.message}`;
  });
  const more = error.issues.length > max ? ` (+${error.issues.length - max} more)` : "";
  return parts.join("; ") + more;
}

/**
 * `schema.parse(value)`, but a failure throws one line made by `describe` from the first issue (a
 * UserError unless `makeError` says otherwise, e.g. for model output). `root` is as in `zodIssue`.
 */
export function parseOrThrow<T extends z.ZodType>(
  schema: T,
  value: unknown,
  describe: (issue: ZodIssueLine) => string,
  options: { root?: string; makeError?: (message: string) => Error } = {},
): z.output<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const message = describe(zodIssue(parsed.error, options.root));
  throw options.makeError ? options.makeError(message) : new UserError(message);
}
