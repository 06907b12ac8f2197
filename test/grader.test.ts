import { describe, expect, test } from "vitest";
import { CAT_JUDGE, graderCandidates, pYesOf } from "../src/cat/rubric/grader.js";
import {
  buildHealthBenchGraderPrompt,
  HEALTHBENCH_GRADER,
  HEALTHBENCH_GRADER_ID,
  HEALTHBENCH_VERDICT_PREFIX,
  parseHealthBenchGrade,
} from "../src/cat/rubric/healthbench-grader.js";
import { judgeItems, type RubricSettings } from "../src/cat/rubric-rewards.js";
import type { Engine, GenerationRequest, NextTokenRequest, Rollout } from "../src/engine/types.js";

const convo = [
  { role: "user" as const, content: "My father collapsed, what do I do?" },
  { role: "assistant" as const, content: "Is he breathing?" },
  { role: "user" as const, content: "No." },
];

describe("HealthBench grader prompt (simple-evals GRADER_TEMPLATE)", () => {
  const p = buildHealthBenchGraderPrompt({
    criterion: "Fails to tell the user to call emergency services.",
    points: -8,
    response: "Start CPR and call 911. $1 costs nothing.",
    conversation: convo,
  });
  test("the conversation with the response as its last turn, and [points] criterion", () => {
    expect(p).toContain(
      "# Conversation\nuser: My father collapsed, what do I do?\n\nassistant: Is he breathing?\n\nuser: No.\n\nassistant: Start CPR and call 911. $1 costs nothing.\n\n# Rubric item\n[-8] Fails to tell the user to call emergency services.\n\n# Instructions",
    );
    expect(
      p.startsWith("Your job is to look at a conversation and a rubric item, and score the last turn"),
    ).toBe(true);
  });
  test("keeps the official guidance for negative criteria and the JSON answer", () => {
    expect(p).toContain(
      "In other words, for criteria with negative points, a good response should be classified as false because it does not meet the undesirable criteria, and only bad responses that do meet undesirable criteria should be classified as true.",
    );
    expect(p).toContain('Return a json object with the following fields: "explanation" and "criteria_met".');
    expect(
      p.endsWith(
        "Return just the json object in markdown format. Do not include any other text in the response.",
      ),
    ).toBe(true);
  });
  test("refuses a criterion without points", () => {
    expect(() => buildHealthBenchGraderPrompt({ criterion: "x", response: "y" })).toThrow(/points/);
  });
  test.each([
    ['```json\n{\n  "explanation": "It says call 911.",\n  "criteria_met": false\n}\n```', false],
    ['{"explanation": "ok", "criteria_met": true}', true],
    ['<think>hmm</think>```json\n{"criteria_met": true, "explanation": "cut off', true],
    ["criteria met: yes", null],
    ['{"criteria_met": "true"}', null],
  ])("parses %j", (text, want) => {
    if (want === null) expect(() => parseHealthBenchGrade(text)).toThrow(/criteria_met/);
    else expect(parseHealthBenchGrade(text)).toBe(want);
  });
});

describe("pYesOf", () => {
  test("sums each side's spellings, renormalises; no mass on either side is unjudged", () => {
    const probs = graderCandidates(HEALTHBENCH_GRADER).map((c) =>
      c === " true" ? 0.3 : c === "false" ? 0.1 : 0,
    );
    expect(pYesOf(probs, HEALTHBENCH_GRADER)).toBeCloseTo(0.75, 12);
    expect(
      pYesOf(
        graderCandidates(CAT_JUDGE).map(() => 0),
        CAT_JUDGE,
      ),
    ).toBeNull();
  });
});

/** A judge that records what it was asked and answers from canned probabilities or texts. */
function fakeJudge(answer: { probs?: number[]; text?: string }) {
  const seen: { next: NextTokenRequest[]; gen: GenerationRequest[] } = { next: [], gen: [] };
  const engine = {
    info: {
      path: "fake.gguf",
      architecture: "llama",
      trainContextSize: 100_000,
      vocabSize: 1,
      hasChatTemplate: false,
      family: "unknown",
    },
    tokenizePrompt: (p: unknown) => [...JSON.stringify(p)].map(() => 1),
    nextTokenProbs: async (reqs: NextTokenRequest[]) => {
      seen.next.push(...reqs);
      return reqs.map((r) => ({ probs: answer.probs ?? r.candidates.map(() => 0) }));
    },
    generate: async (reqs: GenerationRequest[]) => {
      seen.gen.push(...reqs);
      return reqs.map(() => [{ text: answer.text ?? "" } as Rollout]);
    },
  } as unknown as Engine;
  return { engine, seen };
}

const settings = (judgeMode: "logprob" | "generate"): RubricSettings => ({
  rubricMaxTokens: 1,
  retries: 0,
  sampling: { temperature: 0, topK: 0, topP: 1, minP: 0 },
  judgeMode,
  threshold: 0.5,
});
const item = {
  criteria: ["Tells the user to start CPR.", "Is overly verbose."],
  points: [5, -3],
  responses: ["Start CPR now."],
  responseTokens: [4],
  conversation: convo,
};

describe("judgeItems with a grader", () => {
  test("logprob: the official template, read at criteria_met after a closed thinking block", async () => {
    const { engine, seen } = fakeJudge({ probs: [0.6, 0, 0.2, 0] });
    const [j] = await judgeItems(engine, [item], settings("logprob"), 1, undefined, HEALTHBENCH_GRADER);
    expect(seen.next).toHaveLength(2);
    expect(seen.next[1].prompt).toBe(
      buildHealthBenchGraderPrompt({
        criterion: item.criteria[1],
        points: -3,
        response: item.responses[0],
        conversation: convo,
      }),
    );
    expect(seen.next[1].reply).toEqual({ prefix: HEALTHBENCH_VERDICT_PREFIX, closeThinking: true });
    expect(seen.next[0].candidates).toEqual([" true", "true", " false", "false"]);
    for (const v of j.verdicts[0]) expect(v.pYes).toBeCloseTo(0.75, 12);
    expect(HEALTHBENCH_GRADER.id).toBe(HEALTHBENCH_GRADER_ID);
  });
  test("generate: the same template, the judge writes the JSON", async () => {
    const { engine, seen } = fakeJudge({
      text: '```json\n{"explanation": "no", "criteria_met": false}\n```',
    });
    const [j] = await judgeItems(engine, [item], settings("generate"), 1, undefined, HEALTHBENCH_GRADER);
    expect(seen.gen[0].prompt).toContain("[5] Tells the user to start CPR.");
    expect(seen.gen[0].prompt).toContain("assistant: Start CPR now.");
    expect(seen.gen[0].maxTokens).toBeGreaterThanOrEqual(256);
    expect(j.verdicts[0].map((v) => v.met)).toEqual([false, false]);
  });
  test("no probability on either verdict is unjudged, not a coin flip counted as met", async () => {
    const { engine } = fakeJudge({});
    const [j] = await judgeItems(engine, [item], settings("logprob"), 1);
    expect(j.verdicts[0].map((v) => v.met)).toEqual([null, null]);
    expect(j.verdicts[0][0].error).toMatch(/no probability/);
    expect(j.rewards).toEqual([null]);
  });
  test("CaT's judge also closes the thinking block before the verdict", async () => {
    const { engine, seen } = fakeJudge({
      probs: graderCandidates(CAT_JUDGE).map((c) => (c === "yes" ? 1 : 0)),
    });
    const [j] = await judgeItems(engine, [item], settings("logprob"), 1);
    expect(seen.next[0].reply).toEqual({ closeThinking: true });
    expect(j.rewards).toEqual([1]);
  });
});
