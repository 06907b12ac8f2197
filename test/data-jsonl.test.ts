import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { z } from "zod";
import { formatJsonlError, parseJsonl, readJsonl } from "../src/data/jsonl.js";
import { readPromptRows, toPromptRow } from "../src/data/prompt-rows.js";
import { UserError } from "../src/util/errors.js";

const dir = mkdtempSync(path.join(tmpdir(), "catrl-data-"));
function file(name: string, lines: string[]): string {
  const p = path.join(dir, name);
  writeFileSync(p, lines.join("\n"));
  return p;
}

describe("readJsonl", () => {
  test("collects malformed and invalid rows with 1-based lines, keeps the good ones", async () => {
    const p = file("mixed.jsonl", ['{"a": 1}', "", "{not json", '{"a": "x"}', '{"a": 4}']);
    const { rows, errors } = await readJsonl(p, z.object({ a: z.number() }));
    expect(rows).toEqual([
      { line: 1, value: { a: 1 } },
      { line: 5, value: { a: 4 } },
    ]);
    expect(errors.map((e) => [e.line, e.field])).toEqual([
      [3, "(json)"],
      [4, "a"],
    ]);
    expect(formatJsonlError(p, errors[1])).toMatch(/mixed\.jsonl:4: a: /);
  });

  test("nested field paths are joined with dots", async () => {
    const p = file("nested.jsonl", ['{"xs": [{"v": 1}, {"v": "no"}]}']);
    const { errors } = await readJsonl(p, z.object({ xs: z.array(z.object({ v: z.number() })) }));
    expect(errors[0].field).toBe("xs.1.v");
  });

  test("a missing file is a UserError", async () => {
    await expect(readJsonl(path.join(dir, "nope.jsonl"))).rejects.toThrow(UserError);
  });
});

describe("prompt rows", () => {
  test("auto-detects the prompt field, gold and id", () => {
    expect(toPromptRow({ problem: "1+1?", answer: "2", unique_id: "test/a.json" }, 3)).toEqual({
      row: { id: "test/a.json", line: 3, prompt: "1+1?", gold: "2" },
    });
    expect(toPromptRow({ question: "q", answer: 42 }, 7)).toEqual({
      row: { id: "7", line: 7, prompt: "q", gold: "42" },
    });
    const chat = [{ role: "user", content: "hi" }];
    expect(toPromptRow({ messages: chat, id: 9 }, 1)).toEqual({ row: { id: "9", line: 1, prompt: chat } });
    expect(toPromptRow({ prompt: chat, prompt_id: "p1" }, 1)).toEqual({
      row: { id: "p1", line: 1, prompt: chat },
    });
  });

  test("question wins over problem when both are present; a named field overrides", () => {
    const raw = { question: "Q", problem: "P" };
    const rowOf = (r: ReturnType<typeof toPromptRow>) => ("row" in r ? r.row : undefined);
    expect(rowOf(toPromptRow(raw, 1))?.prompt).toBe("Q");
    expect(rowOf(toPromptRow(raw, 1, { field: "problem" }))?.prompt).toBe("P");
  });

  test("errors name the line and the field", () => {
    expect(toPromptRow({ text: "x" }, 2).error).toMatchObject({ line: 2, field: "(row)" });
    expect(toPromptRow({ prompt: 5 }, 4).error).toMatchObject({ line: 4, field: "prompt" });
    expect(toPromptRow({ messages: [{ role: "robot", content: "x" }] }, 5).error).toMatchObject({
      line: 5,
      field: "messages.0.role",
    });
    expect(toPromptRow({ question: "q" }, 6, { field: "problem" }).error).toMatchObject({
      field: "problem",
      message: "missing",
    });
    expect(toPromptRow({ question: "q", answer: { x: 1 } }, 8).error).toMatchObject({ field: "answer" });
  });

  test("readPromptRows goes on past bad rows", async () => {
    const p = file("prompts.jsonl", [
      '{"question": "a"}',
      "[1,2]",
      '{"question": ""}',
      '{"question": "b", "id": "B"}',
    ]);
    const { rows, errors } = await readPromptRows(p);
    expect(rows.map((r) => r.id)).toEqual(["1", "B"]);
    expect(errors.map((e) => e.line)).toEqual([2, 3]);
  });
});

describe("parseJsonl (text in memory) reads as readJsonl does", () => {
  test("same lines, values and errors as the streaming reader", async () => {
    const lines = ['{"a": 1}', "", "{not json", '{"a": "x"}', '{"a": 4}'];
    const schema = z.object({ a: z.number() });
    const items = parseJsonl(lines.join("\n"), schema);
    const { rows, errors } = await readJsonl(file("same.jsonl", lines), schema);
    expect(items.filter((i) => !i.error).map((i) => ({ line: i.line, value: i.value }))).toEqual(rows);
    expect(items.flatMap((i) => (i.error ? [i.error] : []))).toEqual(errors);
    expect(errors.map((e) => [e.line, e.field])).toEqual([
      [3, "(json)"],
      [4, "a"],
    ]);
  });
});
