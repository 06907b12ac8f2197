import { open, rename } from "node:fs/promises";

/** Writes a file so that a crash leaves either the old or the new content, never half of one. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, "w");
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

/** Appends one line and syncs it: a kill after this returns cannot lose the line. */
export async function appendLineDurable(file: string, line: string): Promise<void> {
  const fh = await open(file, "a");
  try {
    await fh.write(`${line}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
