import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { loadExtractor } from "../src/cat/answers/custom-extractor.js";
import { extractFinalAnswer, extractGoldAnswer } from "../src/cat/answers/extract.js";
import { normalizeAnswer } from "../src/cat/answers/normalize.js";
import { UserError } from "../src/util/errors.js";

describe("extractFinalAnswer", () => {
  test.each([
    ["So the answer is $\\boxed{5}$.", "5"],
    ["First $\\boxed{3}$, then corrected: $\\boxed{4}$", "4"],
    ["$\\boxed{\\frac{1}{\\sqrt{2}}}$", "\\frac{1}{\\sqrt{2}}"],
    ["$\\boxed{\\{1,2\\}}$", "\\{1,2\\}"],
    [
      "Therefore, the final answer is: $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$",
      "\\left( 3, \\frac{\\pi}{2} \\right)",
    ],
    ["the answer is $\\boxed 5$.", "5"],
    ["$\\fbox{12}$", "12"],
    ["\\boxed {7}", "7"],
    ["The final answer is $\\frac{3}{4}$, as shown.", "\\frac{3}{4}"],
    ["Final Answer: 42", "42"],
    ["**Answer:** 17.", "17"],
    ["so my answer is 8\nwhich is even", "8"],
    ["Answer: first 3\nlater... Answer: 9", "9"],
  ])("%s", (text, want) => {
    expect(extractFinalAnswer(text)).toBe(want);
  });

  test("an unclosed box (truncated generation) falls back to the previous complete one", () => {
    expect(extractFinalAnswer("$\\boxed{2}$ ... so $\\boxed{\\frac{3}{")).toBe("2");
  });

  test("text after </think> wins over scratch boxes inside the thinking", () => {
    expect(extractFinalAnswer("<think>maybe \\boxed{1}</think> It is \\boxed{2}.")).toBe("2");
    // Issue 8: only the visible text counts (what the anchor reads); this used to fall back to the
    // box inside the thinking and give "1".
    expect(extractFinalAnswer("<think>so \\boxed{1}</think> I am not sure.")).toBeNull();
  });

  test("a rollout cut off inside <think> has no answer, whatever the thinking boxed", () => {
    expect(extractFinalAnswer("<think>Let me try: 3 + 4, so \\boxed{7}. But wait")).toBeNull();
    expect(extractFinalAnswer("<think>\\boxed{7}</think>")).toBeNull();
  });

  test.each([
    ["Natalia sold 48/2 = 24 clips in May.\nAltogether she sold 48+24 = 72 clips.\n#### 72", "72"],
    ["#### 18", "18"],
    ["So she makes 9 * 2 = $18 every day.\n#### 18\n", "18"],
    ["#### 1,000", "1,000"],
    ["Final Answer: The final answer is $18$. I hope it is correct.", "18"],
    ["Final Answer: The final answer is 18. I hope it is correct.", "18"],
    ["The answer is 18 apples.", "18"],
    ["So the answer is 3.5 dollars.", "3.5"],
    ["The answer is x = 5.", "x = 5"],
    ["The answer is $\\frac{1}{2}$, which is one half.", "\\frac{1}{2}"],
  ])("common endings: %j -> %j", (text, want) => {
    expect(extractFinalAnswer(text)).toBe(want);
  });

  test("nothing to extract", () => {
    expect(extractFinalAnswer("I cannot solve this.")).toBeNull();
    expect(extractFinalAnswer("\\boxed{}")).toBeNull();
    expect(extractFinalAnswer("")).toBeNull();
  });

  test("\\boxed is not matched inside a longer command name", () => {
    expect(extractFinalAnswer("\\boxedx{3}")).toBeNull();
  });
});

describe("normalizeAnswer", () => {
  test.each([
    ["\\dfrac{1}{2}", "\\frac{1}{2}"],
    ["\\frac12", "\\frac{1}{2}"],
    ["\\frac{\\sqrt3}2", "\\frac{\\sqrt{3}}{2}"],
    ["\\left( 1, 2 \\right)", "(1,2)"],
    ["10,\\!080", "10080"],
    ["\\$ 5.50", "5.50"],
    ["90^\\circ", "90"],
    ["5 \\text{ cm}", "5"],
    ["\\text{Evelyn}", "Evelyn"],
    ["x = 3", "3"],
    ["3/4", "\\frac{3}{4}"],
    [".5", "0.5"],
    ["5.", "5"],
    ["\\cot x", "\\cot x"],
    ["1 \\text{ and } 2", "1,2"],
    ["4210_{5}", "4210_5"],
    ["\\textbf{(B)}", "B"],
  ])("%s -> %s", (raw, want) => {
    expect(normalizeAnswer(raw)).toBe(want);
  });
});

describe("loadExtractor", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "catrl-extractor-"));
  const write = (name: string, body: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, body);
    return p;
  };

  test("loads extract and match", async () => {
    const p = write(
      "mc.mjs",
      "export function extract(t) { const m = /ANSWER: ([A-D])/.exec(t); return m ? m[1] : null; }\n" +
        "export function match(a, b) { return a.toLowerCase() === b.toLowerCase(); }\n",
    );
    const ex = await loadExtractor(p);
    expect(ex.extract("blah ANSWER: C")).toBe("C");
    expect(ex.extract("no idea")).toBeNull();
    expect(ex.match?.("c", "C")).toBe(true);
  });

  test("a default export object works and match is optional", async () => {
    const ex = await loadExtractor(write("def.mjs", "export default { extract: (t) => t.trim() };\n"));
    expect(ex.extract(" x ")).toBe("x");
    expect(ex.match).toBeUndefined();
  });

  test("a module without extract is a UserError naming the file and field", async () => {
    const p = write("bad.mjs", "export const foo = 1;\n");
    await expect(loadExtractor(p)).rejects.toThrow(UserError);
    await expect(loadExtractor(p)).rejects.toThrow(/bad\.mjs: field `extract`/);
  });

  test("extract returning a non-string is reported", async () => {
    const ex = await loadExtractor(write("num.mjs", "export function extract() { return 5; }\n"));
    expect(() => ex.extract("x")).toThrow(/returned number/);
  });

  test("missing file and syntax error", async () => {
    await expect(loadExtractor(path.join(dir, "nope.mjs"))).rejects.toThrow(/not found/);
    await expect(loadExtractor(write("syn.mjs", "export function extract( {"))).rejects.toThrow(
      /failed to load/,
    );
  });
});

describe("extractGoldAnswer", () => {
  test("a worked solution gives its final answer; a bare answer stays as it is", () => {
    expect(extractGoldAnswer("Janet sells 16 - 3 - 4 = 9 eggs.\nShe makes 9 * 2 = $18.\n#### 18")).toBe("18");
    expect(extractGoldAnswer("so the area is $\\boxed{\\frac{1}{2}}$.")).toBe("\\frac{1}{2}");
    expect(extractGoldAnswer("72")).toBe("72");
    expect(extractGoldAnswer(" \\frac{14}{3} ")).toBe("\\frac{14}{3}");
    expect(extractGoldAnswer("(3,4]")).toBe("(3,4]");
  });
});
