import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { appendLineDurable, writeFileAtomic } from "../src/util/atomic-write.js";
import { UserError } from "../src/util/errors.js";

describe("writes that fail name their file and leave no temporary", () => {
  it("a full disk (/dev/full) on append", async () => {
    const e = await appendLineDurable("/dev/full", "x").catch((x) => x);
    expect(e).toBeInstanceOf(UserError);
    expect(e.message).toBe("/dev/full: cannot write (ENOSPC: no space left on device)");
  });

  it("a missing directory", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-aw-"));
    const f = path.join(dir, "nope", "state.json");
    const e = await writeFileAtomic(f, "{}").catch((x) => x);
    expect(e.message).toBe(`${f}: cannot write (ENOENT: its directory does not exist)`);
  });

  it("a rename that fails removes the temporary", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-aw-"));
    const target = path.join(dir, "state.json");
    // A non-empty directory where the file should go: the write succeeds, the rename cannot.
    mkdirSync(target);
    writeFileSync(path.join(target, "keep"), "");
    const e = await writeFileAtomic(target, "{}").catch((x) => x);
    expect(e).toBeInstanceOf(UserError);
    expect(e.message).toMatch(new RegExp(`^${target}: cannot write \\((EISDIR|ENOTEMPTY|EEXIST)`));
    expect(readdirSync(dir)).toEqual(["state.json"]);
    await writeFileAtomic(path.join(dir, "ok.json"), "{}");
    expect(existsSync(path.join(dir, "ok.json"))).toBe(true);
  });
});
