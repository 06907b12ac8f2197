import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { parseOrExplain } from "../src/cli/options.js";
import { writeRandomModel } from "../src/modelgen/index.js";
import { UserError } from "../src/util/errors.js";
import { readJsonFile } from "../src/util/json-file.js";
import { describeZodError, parseOrThrow, zodIssue } from "../src/util/zod-error.js";

const Row = z.object({ prompt: z.array(z.object({ content: z.string() })), n: z.number().int() });

describe("one zod-error formatter", () => {
  it("names the first field at fault by its dotted path, or the caller's root word", () => {
    const bad = Row.safeParse({ prompt: [{ content: "a" }, { content: 3 }], n: 1 });
    expect(bad.success).toBe(false);
    if (!bad.success) expect(zodIssue(bad.error).field).toBe("prompt.1.content");
    const root = z.string().safeParse(4);
    if (!root.success) expect(zodIssue(root.error, "(root)").field).toBe("(root)");
  });

  it("parseOrThrow returns the parsed value or throws the caller's one line as a UserError", () => {
    expect(parseOrThrow(Row, { prompt: [], n: 2 }, () => "unused")).toEqual({ prompt: [], n: 2 });
    const run = () => parseOrThrow(Row, { prompt: [], n: 1.5 }, (i) => `f.json: ${i.field}: ${i.message}`);
    expect(run).toThrow(UserError);
    expect(run).toThrow(/^f\.json: n: /);
    class Other extends Error {}
    expect(() => parseOrThrow(Row, {}, (i) => i.field, { makeError: (m) => new Other(m) })).toThrow(Other);
  });

  it("describeZodError lists up to three issues and counts the rest", () => {
    const r = z.object({ a: z.string(), b: z.string(), c: z.string(), d: z.string() }).safeParse({});
    if (r.success) throw new Error("expected a failure");
    const text = describeZodError(r.error);
    expect(text.startsWith("a: ")).toBe(true);
    expect(text).toContain("; c: ");
    expect(text.endsWith("(+1 more)")).toBe(true);
  });

  it("keeps each boundary's wording: flags, JSON files, writeRandomModel options", async () => {
    expect(() => parseOrExplain(z.object({ promptsPerStep: z.number() }), { promptsPerStep: "x" })).toThrow(
      /^--prompts-per-step: /,
    );
    const dir = mkdtempSync(path.join(tmpdir(), "catrl-zod-"));
    const file = path.join(dir, "state.json");
    writeFileSync(file, JSON.stringify({ step: "one" }));
    await expect(readJsonFile(file, z.object({ step: z.number() }), "a state file")).rejects.toThrow(
      `${file}: not a state file or corrupt (step: `,
    );
    await expect(writeRandomModel({ out: path.join(dir, "m.gguf"), seed: -1 } as never)).rejects.toThrow(
      /^writeRandomModel option /,
    );
  });
});
