import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The package root, found from this file whether it runs from src (vitest) or dist (the CLI). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8"));
      if (pkg.name === "compute-as-teacher") return dir;
    } catch {}
    const up = path.dirname(dir);
    if (up === dir) throw new Error("package.json of compute-as-teacher not found");
    dir = up;
  }
}

export function packageVersion(): string {
  return JSON.parse(readFileSync(path.join(packageRoot(), "package.json"), "utf8")).version;
}
