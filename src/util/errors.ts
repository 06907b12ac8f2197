/**
 * An error meant for the person at the terminal: one line that names the file, line or field and the
 * problem. The CLI prints `message` alone (no stack) unless --verbose.
 */
export class UserError extends Error {
  override readonly name = "UserError";
  constructor(
    message: string,
    readonly exitCode = 1,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}

/** Formats any thrown value as one line. */
export function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split("\n").find((l) => l.trim() !== "") ?? msg;
}
