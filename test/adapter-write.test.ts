import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { trainerAvailability } from "../src/rl/trainer/index.js";
import { REPO_ROOT, SHIPPED_STORIES } from "./helpers/shared.js";

const exec = promisify(execFile);

// In a child process: ggml writes its log lines to the process's own stderr, which only a parent sees.
// The adapter's temporary file is made a link to /dev/full, so the GGUF writer itself hits ENOSPC.
const SCRIPT = `
import { symlinkSync } from "node:fs";
import path from "node:path";
import { openTrainer } from ${JSON.stringify(path.join(REPO_ROOT, "dist/src/rl/trainer/index.js"))};
const [model, dir] = process.argv.slice(1);
const t = await openTrainer({ modelPath: model, threads: 1, lora: { rank: 4, alpha: 8, targets: ["q", "v"] } });
const tries = [path.join(dir, "full.gguf"), path.join(dir, "no-such-dir", "a.gguf")];
symlinkSync("/dev/full", tries[0] + ".tmp-" + process.pid);
for (const f of tries) {
  try { await t.exportAdapter(f); console.log("written " + f); } catch (e) { console.log("error: " + e.message); }
}
t.dispose();
`;

describe.skipIf(!trainerAvailability().ok)("adapter write failures", () => {
  it("are one line naming the file, with no llama.cpp log lines, and leave no temporary", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-adapter-write-"));
    const { stdout, stderr } = await exec(
      "node",
      ["--input-type=module", "-e", SCRIPT, SHIPPED_STORIES, dir],
      {
        env: { ...process.env, CATRL_THREADS: "1" },
      },
    );
    expect(stdout.trim().split("\n")).toEqual([
      `error: ${path.join(dir, "full.gguf")}: cannot write (writing the GGUF failed: disk full or I/O error)`,
      `error: ${path.join(dir, "no-such-dir", "a.gguf")}: cannot write (ENOENT: its directory does not exist)`,
    ]);
    expect(stderr).not.toMatch(/gguf|failed to write/i);
    expect(existsSync(path.join(dir, "full.gguf"))).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });
});
