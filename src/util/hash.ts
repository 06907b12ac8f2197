import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";

const cache = new Map<string, Promise<string>>();

/** sha256 of a file, streamed (models are GBs); memoised per path, size and mtime within a process. */
export async function sha256File(file: string): Promise<string> {
  const st = await stat(file);
  const key = `${file}:${st.size}:${st.mtimeMs}`;
  let p = cache.get(key);
  if (!p) {
    p = new Promise<string>((resolve, reject) => {
      const h = createHash("sha256");
      createReadStream(file)
        .on("data", (d) => h.update(d))
        .on("error", reject)
        .on("end", () => resolve(h.digest("hex")));
    });
    cache.set(key, p);
  }
  return p;
}
