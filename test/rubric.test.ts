import { describe, expect, test } from "vitest";
import { ModelOutputError, parseRubric, parseVerdict } from "../src/cat/rubric/parse.js";
import {
  buildJudgePrompt,
  buildRubricPrompt,
  JUDGE_ALL_CANDIDATES,
  JUDGE_CANDIDATES,
  pYesFrom,
} from "../src/cat/rubric/prompt.js";
import { rubricReward } from "../src/cat/rubric/reward.js";
import { RUBRIC_JSON_SCHEMA } from "../src/cat/rubric/schema.js";

const five = [
  "The response says A.",
  "The response says B.",
  "The response says C.",
  "The response says D.",
  "The response says E.",
];

describe("rubric schema and prompt", () => {
  test("schema bounds and no integer types (grammar-friendly)", () => {
    expect(RUBRIC_JSON_SCHEMA.properties.criteria.minItems).toBe(5);
    expect(RUBRIC_JSON_SCHEMA.properties.criteria.maxItems).toBeLessThanOrEqual(12);
    expect(JSON.stringify(RUBRIC_JSON_SCHEMA)).not.toContain("integer");
  });
  test("rubric prompt carries the reference and asks for binary, auditable criteria as JSON", () => {
    const p = buildRubricPrompt("  Call emergency services now.  ");
    expect(p).toContain("# REFERENCE RESPONSE\n\nCall emergency services now.\n");
    expect(p).toMatch(/binary/);
    expect(p).toMatch(/auditable/);
    expect(p).toMatch(/5 to 12 criteria/);
    expect(p.trim().endsWith('{"criteria": ["...", "..."]}.')).toBe(true);
  });
});

describe("parseRubric", () => {
  test("plain JSON, fenced JSON, JSON after prose and thinking", () => {
    const json = JSON.stringify({ criteria: five });
    expect(parseRubric(json).criteria).toEqual(five);
    expect(parseRubric("```json\n" + json + "\n```").criteria).toEqual(five);
    expect(parseRubric("<think>hm {x}</think>Here it is: " + json).criteria).toEqual(five);
  });
  test("XML criteria (the paper's format)", () => {
    const xml = `<rubric>${five.map((c) => `<criterion>${c}</criterion>`).join("\n")}</rubric>`;
    expect(parseRubric(xml).criteria).toEqual(five);
  });
  test.each([
    ["not json at all", /no JSON object or <criterion> items/],
    ['{"criteria": ["a", "b"', /no JSON object|not valid JSON/],
    ['{"criteria": ["a", }', /not valid JSON/],
    ['{"items": []}', /criteria: /],
    ['{"criteria": ["a","b","c"]}', /criteria: needs at least 5 criteria/],
    [JSON.stringify({ criteria: [...five, ...five, ...five] }), /at most 12/],
    [JSON.stringify({ criteria: ["a", "b", "c", "d", "  "] }), /criteria\.4: a criterion is empty/],
    [JSON.stringify({ criteria: ["a", "b", "c", "d", 5] }), /criteria\.4/],
  ])("rejects %s", (text, msg) => {
    expect(() => parseRubric(text)).toThrow(ModelOutputError);
    expect(() => parseRubric(text)).toThrow(msg);
  });
});

describe("judge", () => {
  test("prompt ends on the verdict slot; conversation only when given", () => {
    const p = buildJudgePrompt({ criterion: "Mentions CPR.", response: "Start CPR." });
    expect(p.endsWith("yes or no.\n\nAnswer:")).toBe(true);
    expect(p).not.toContain("# CONVERSATION");
    const q = buildJudgePrompt({
      criterion: "Mentions CPR.",
      response: "Start CPR.",
      conversation: [{ role: "user", content: "He collapsed!" }],
    });
    expect(q).toContain("# CONVERSATION\n\nUSER: He collapsed!");
    expect(q.indexOf("# CONVERSATION")).toBeLessThan(q.indexOf("# RESPONSE"));
    expect(JUDGE_CANDIDATES).toEqual(["yes", "no"]);
  });
  test("pYesFrom sums spellings and renormalises", () => {
    const probs = JUDGE_ALL_CANDIDATES.map((c) =>
      c === " yes" ? 0.3 : c === "Yes" ? 0.1 : c === " no" ? 0.1 : 0,
    );
    expect(pYesFrom(probs)).toBeCloseTo(0.8, 12);
    expect(pYesFrom([0.2, 0.6], ["yes", "no"])).toBeCloseTo(0.25, 12);
    // Issue 8: no mass on either verdict is unjudged (null); it was 0.5, which counted as met.
    expect(pYesFrom([0, 0], ["yes", "no"])).toBeNull();
    expect(pYesFrom([0.4, 0.4, 0.2], ["yes", "yes", "no"])).toBeCloseTo(2 / 3, 12);
    expect(() => pYesFrom([1], ["yes", "no"])).toThrow(/1 probabilities for 2/);
  });
  test.each([
    ["yes", true],
    ["No", false],
    [" Yes.", true],
    ["**No**", false],
    ["Answer: yes", true],
    ["Verdict - NO", false],
    ["<verdict>yes</verdict>", true],
    ["<think>maybe no</think>Yes", true],
    ["The response clearly meets it, so yes.", true],
    ["yesterday it would not", null],
    ["Yes and no.", true],
    ["I would say no, not really... well yes", null],
    ["maybe", null],
    ["", null],
  ])("parseVerdict(%j)", (text, want) => {
    if (want === null) {
      expect(() => parseVerdict(text)).toThrow(ModelOutputError);
      expect(() => parseVerdict(text)).toThrow(/verdict: expected yes or no, got/);
    } else expect(parseVerdict(text)).toBe(want);
  });
});

describe("rubricReward", () => {
  const v = (...p: number[]) => p.map((pYes) => ({ pYes }));
  test("fraction of criteria at or over the threshold", () => {
    expect(rubricReward(v(1, 0, 1, 0.5, 0.2))).toBeCloseTo(0.6, 12);
    expect(rubricReward(v(0.6, 0.7), { threshold: 0.65 })).toBe(0.5);
  });
  test("fixed length penalty replaces the reward only when over the limit", () => {
    const opts = { lengthPenalty: { kind: "fixed" as const, maxTokens: 750 } };
    expect(rubricReward(v(1, 1), { ...opts, responseTokens: 750 })).toBe(1);
    expect(rubricReward(v(1, 1), { ...opts, responseTokens: 751 })).toBe(-1);
    expect(
      rubricReward(v(1, 1), {
        lengthPenalty: { kind: "fixed", maxTokens: 10, penalty: -0.5 },
        responseTokens: 11,
      }),
    ).toBe(-0.5);
  });
  test("scaled length penalty subtracts per excess token, floored", () => {
    const lengthPenalty = { kind: "scaled" as const, maxTokens: 100, perToken: 0.01 };
    expect(rubricReward(v(1, 1), { lengthPenalty, responseTokens: 120 })).toBeCloseTo(0.8, 12);
    expect(rubricReward(v(1, 1), { lengthPenalty, responseTokens: 1000 })).toBe(-1);
  });
  test("errors", () => {
    expect(() => rubricReward([])).toThrow(/no verdicts/);
    expect(() => rubricReward(v(1.5))).toThrow(/not in \[0, 1\]/);
    expect(() => rubricReward(v(1), { lengthPenalty: { kind: "fixed", maxTokens: 5 } })).toThrow(
      /responseTokens/,
    );
  });
});
