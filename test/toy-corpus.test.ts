import { describe, expect, it } from "vitest";
import { extractFinalAnswer } from "../src/cat/answers/extract.js";
import { parseSynthesis } from "../src/cat/prompts/parse.js";
import {
  correctSolution,
  MAX_VALUE,
  parseSteps,
  questionText,
  randomProblem,
  sampleSolution,
  solutionText,
  solve,
} from "../src/toy/arith.js";
import { buildCorpus, testProblems, testRows, vocabularyTexts } from "../src/toy/corpus.js";
import { consensusProblem, synthesisTargetText } from "../src/toy/synthesis-target.js";
import { buildToyVocab, SPECIAL_TOKENS } from "../src/toy/vocab.js";
import { Mulberry32 } from "../src/util/rng.js";

describe("toy arithmetic problems", () => {
  it("keeps every running value in range and solves left to right", () => {
    const rng = new Mulberry32(7);
    for (let i = 0; i < 500; i++) {
      const p = randomProblem(rng);
      let v = p.start;
      for (const s of p.steps) {
        v = s.op === "+" ? v + s.operand : v - s.operand;
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(MAX_VALUE);
      }
      expect(solve(p)).toBe(v);
      // The correct solution's text parses back to its steps and boxes the answer.
      const text = solutionText(correctSolution(p));
      expect(extractFinalAnswer(text)).toBe(String(v));
      expect(parseSteps(text)).toEqual(correctSolution(p));
    }
  });

  it("writes mistakes at about the designed rate, and wrong answers disagree with each other", () => {
    const rng = new Mulberry32(11);
    let right = 0;
    let wrongPairs = 0;
    let agreeingWrongPairs = 0;
    const n = 2000;
    for (let i = 0; i < n; i++) {
      const p = randomProblem(rng);
      const a = sampleSolution(p, rng).at(-1)?.result;
      const b = sampleSolution(p, rng).at(-1)?.result;
      if (a === solve(p)) right++;
      if (a !== solve(p) && b !== solve(p)) {
        wrongPairs++;
        if (a === b) agreeingWrongPairs++;
      }
    }
    // 2-3 steps at 25% per step (+ skipped steps): a single solution is right about half the time.
    expect(right / n).toBeGreaterThan(0.4);
    expect(right / n).toBeLessThan(0.7);
    expect(agreeingWrongPairs / wrongPairs).toBeLessThan(0.4);
  });
});

describe("toy synthesis target", () => {
  it("rebuilds the question by consensus, so it is right even when no candidate is", () => {
    const candidates = [
      "13+4=18. 18-5=13. \\boxed{13}", // slip in step 1
      "13+4=17. 17-5=11. \\boxed{11}", // slip in step 2
      "13+3=16. 16-5=11. \\boxed{11}", // miscopied operand
    ];
    expect(consensusProblem(candidates)).toEqual({
      start: 13,
      steps: [
        { op: "+", operand: 4 },
        { op: "-", operand: 5 },
      ],
    });
    const target = synthesisTargetText(candidates);
    const parsed = parseSynthesis(target, "reasoning-v1");
    expect(parsed.usedWholeText).toBe(false);
    expect(parsed.summary).toBe("The responses disagree.");
    expect(extractFinalAnswer(parsed.unified)).toBe("12");
  });

  it("is right on most corpus examples over 8 candidates, more often than their majority", () => {
    const { stats } = buildCorpus(5, { solve: 10, synthesize: 400 }, new Set());
    expect(stats.synthesis_target_accuracy).toBeGreaterThan(0.9);
    expect(stats.synthesis_target_accuracy).toBeGreaterThan(stats.majority_accuracy_k8 + 0.05);
    expect(stats.majority_accuracy_k8).toBeGreaterThan(stats.solution_accuracy);
  });
});

describe("toy corpus", () => {
  it("never contains a held-out question, and is the same for the same seed", () => {
    const test = testProblems(13, 200);
    expect(new Set(test.map(questionText)).size).toBe(200);
    const heldOut = new Set(test.map(questionText));
    const a = buildCorpus(13, { solve: 3000, synthesize: 50 }, heldOut);
    const b = buildCorpus(13, { solve: 3000, synthesize: 50 }, heldOut);
    expect(a.examples).toEqual(b.examples);
    expect(a.stats.held_out_questions_excluded).toBeGreaterThan(0);
    for (const e of a.examples) {
      if (e.kind === "solve") expect(heldOut.has(e.user)).toBe(false);
      // A synthesis prompt's candidates start with the question's first number and operation; the
      // consensus question of its candidates is never a held-out one either.
      else {
        const p = consensusProblem(e.user.split("## RESPONSE").slice(1));
        if (p) expect(heldOut.has(questionText(p)) && solve(p) >= 0).toBe(false);
      }
    }
    const rows = testRows(test);
    expect(rows[0]).toEqual({
      id: "arith-0",
      question: questionText(test[0]),
      answer: String(solve(test[0])),
    });
  });

  it("has a vocabulary with the chat tokens and one token per template word", () => {
    const v = buildToyVocab(vocabularyTexts());
    expect(v.tokens.slice(0, SPECIAL_TOKENS.length)).toEqual([...SPECIAL_TOKENS]);
    expect(new Set(v.tokens).size).toBe(v.tokens.length);
    for (const w of ["\u2581responses", "\u2581UNIFIED", "boxed", "Compute", "\u2581Compute"])
      expect(v.tokens).toContain(w);
    expect(v.tokens.length).toBeLessThan(1024);
  });
});
