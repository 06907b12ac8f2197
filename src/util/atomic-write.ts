import { open, rename, rm } from "node:fs/promises";
import { UserError } from "./errors.js";

/**
 * A failed write as one line that names the file: Node's own message for a full disk is
 * `ENOSPC: no space left on device, write`, with no path.
 */
export function writeError(file: string, e: unknown): UserError {
  const err = e as NodeJS.ErrnoException;
  const why = err?.code ? `${err.code}: ${describeCode(err.code) ?? oneLineMessage(err)}` : oneLineMessage(e);
  return new UserError(`${file}: cannot write (${why})`, 1, { cause: e });
}

function describeCode(code: string): string | undefined {
  return {
    ENOSPC: "no space left on device",
    EDQUOT: "disk quota exceeded",
    EROFS: "read-only file system",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    ENOENT: "its directory does not exist",
    ENOTDIR: "a part of its path is not a directory",
    EISDIR: "it is a directory",
    EIO: "input/output error",
  }[code];
}

function oneLineMessage(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, " ");
}

/** The temporary name writeFileAtomic uses; cleanup on the next start recognises it. */
export const tmpNameFor = (file: string) => `${file}.tmp-${process.pid}`;
/** Temporaries of writeFileAtomic (`x.tmp-PID`), of checkpoint writes (`x.tmp`) and of adapter exports. */
export const TMP_FILE = /\.tmp(?:-\d+)?$/;

/**
 * Writes a file so that a crash leaves either the old or the new content, never half of one. On failure
 * the temporary is removed and the error names the file.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = tmpNameFor(file);
  try {
    const fh = await open(tmp, "w");
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    throw writeError(file, e);
  }
}

/** Appends one line and syncs it: a kill after this returns cannot lose the line. */
export async function appendLineDurable(file: string, line: string): Promise<void> {
  try {
    const fh = await open(file, "a");
    try {
      await fh.write(`${line}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw writeError(file, e);
  }
}
