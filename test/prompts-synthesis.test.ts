import { describe, expect, test } from "vitest";
import { parseSynthesis } from "../src/cat/prompts/parse.js";
import { buildSynthesisPrompt, EMPTY_RESPONSE } from "../src/cat/prompts/synthesis.js";
import {
  FREEFORM_V1_INSTRUCTIONS,
  getSynthesisTemplate,
  REASONING_V1_INSTRUCTIONS,
  SYNTHESIS_TEMPLATES,
} from "../src/cat/prompts/templates.js";
import { stripThinking } from "../src/cat/prompts/think.js";
import { UserError } from "../src/util/errors.js";

describe("templates", () => {
  test("reasoning-v1 asks for the paper's two sections and boxed ending", () => {
    expect(REASONING_V1_INSTRUCTIONS).toContain("# SUMMARY");
    expect(REASONING_V1_INSTRUCTIONS).toContain("# UNIFIED RESPONSE");
    expect(REASONING_V1_INSTRUCTIONS).toContain("Therefore, the final answer is: $\\boxed{answer}$");
    expect(FREEFORM_V1_INSTRUCTIONS).toContain("# UNIFIED RESPONSE");
    expect(FREEFORM_V1_INSTRUCTIONS).not.toContain("# SUMMARY");
    expect(FREEFORM_V1_INSTRUCTIONS).toMatch(/not be much longer/);
  });
  test("lookup by id; unknown ids are user errors", () => {
    expect(getSynthesisTemplate("freeform-v1")).toBe(SYNTHESIS_TEMPLATES["freeform-v1"]);
    expect(() => getSynthesisTemplate("reasoning-v9")).toThrow(UserError);
    expect(() => getSynthesisTemplate("reasoning-v9")).toThrow(/known: reasoning-v1, freeform-v1/);
  });
});

describe("stripThinking", () => {
  test.each([
    ["<think>hmm</think>\nThe answer is 4.", "The answer is 4."],
    ["A <think>x</think> B <think>y</think> C", "A  B  C"],
    ["<think>still thinking when cut off", ""],
    ["Answer 3. <think>more", "Answer 3."],
    ["scratch opened in the prompt</think> Final: 7", "Final: 7"],
    ["no thinking here", "no thinking here"],
  ])("%j", (input, want) => {
    expect(stripThinking(input)).toBe(want);
  });
});

describe("buildSynthesisPrompt", () => {
  test("question-blind by default, numbered responses, thinking stripped", () => {
    const p = buildSynthesisPrompt({
      template: "reasoning-v1",
      rollouts: ["<think>zzdraftzz</think>It is $\\boxed{4}$.", "It is $\\boxed{5}$.", "<think>cut off"],
    });
    expect(p.startsWith(REASONING_V1_INSTRUCTIONS)).toBe(true);
    expect(p).not.toContain("# QUESTION");
    expect(p).not.toContain("zzdraftzz");
    expect(p).toContain("## RESPONSE 1\n\nIt is $\\boxed{4}$.");
    expect(p).toContain("## RESPONSE 2\n\nIt is $\\boxed{5}$.");
    expect(p).toContain(`## RESPONSE 3\n\n${EMPTY_RESPONSE}`);
    expect(p.indexOf("## RESPONSE 1")).toBeLessThan(p.indexOf("## RESPONSE 2"));
    expect(p).not.toContain("/no_think");
  });
  test("question only when given; stripThink off keeps thinking; noThink appends the switch", () => {
    const p = buildSynthesisPrompt({
      template: SYNTHESIS_TEMPLATES["freeform-v1"],
      rollouts: ["<think>a</think>b"],
      question: "What is CPR?",
      stripThink: false,
      noThink: true,
    });
    expect(p).toContain("# QUESTION\n\nWhat is CPR?");
    expect(p.indexOf("# QUESTION")).toBeLessThan(p.indexOf("## RESPONSE 1"));
    expect(p).toContain("<think>a</think>b");
    expect(p.endsWith(" /no_think")).toBe(true);
  });
  test("no rollouts is an error", () => {
    expect(() => buildSynthesisPrompt({ template: "freeform-v1", rollouts: [] })).toThrow(/no rollouts/);
  });
});

describe("parseSynthesis", () => {
  const canonical =
    "# SUMMARY\nThey agree on 4.\n\n# UNIFIED RESPONSE\nStep 1...\nTherefore, the final answer is: $\\boxed{4}$";
  test("canonical output", () => {
    expect(parseSynthesis(canonical, "reasoning-v1")).toEqual({
      summary: "They agree on 4.",
      unified: "Step 1...\nTherefore, the final answer is: $\\boxed{4}$",
      usedWholeText: false,
    });
  });
  test.each([
    ["## Summary:\nS\n## Unified Response:\nU", "S", "U"],
    ["**SUMMARY**\nS\n\n**UNIFIED RESPONSE**\nU", "S", "U"],
    ["**Summary:** S\n**Unified response:** U", "S", "U"],
    ["Summary:\nS\nUnified Response:\nU", "S", "U"],
    ["### unified_response\nU", undefined, "U"],
    ["#UNIFIED RESPONSE\nU", undefined, "U"],
    ["<think>plan: # UNIFIED RESPONSE then</think># SUMMARY\nS\n# UNIFIED RESPONSE\nU", "S", "U"],
    [
      "# SUMMARY\nS mentions # UNIFIED RESPONSE below\n# UNIFIED RESPONSE\nU",
      "S mentions # UNIFIED RESPONSE below",
      "U",
    ],
    ["# SUMMARY\nS\n# UNIFIED RESPONSE\nU\n# UNIFIED RESPONSE\n", "S", "U"],
  ])("variant %#", (text, summary, unified) => {
    const got = parseSynthesis(text, "reasoning-v1");
    expect(got.unified).toBe(unified);
    expect(got.summary).toBe(summary);
    expect(got.usedWholeText).toBe(false);
  });
  test("prose that merely starts with the words is not a heading", () => {
    const got = parseSynthesis("Unified response writing is hard.\nThe answer is 3.", "reasoning-v1");
    expect(got.usedWholeText).toBe(true);
  });
  test("no heading: the whole text (without thinking), flagged", () => {
    expect(parseSynthesis("<think>x</think>Just the answer: $\\boxed{2}$", "reasoning-v1")).toEqual({
      unified: "Just the answer: $\\boxed{2}$",
      usedWholeText: true,
    });
  });
  test("freeform template ignores a summary", () => {
    expect(parseSynthesis("# SUMMARY\nS\n# UNIFIED RESPONSE\nU", "freeform-v1")).toEqual({
      unified: "U",
      usedWholeText: false,
    });
  });
});
