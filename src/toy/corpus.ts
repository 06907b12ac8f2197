import { buildSynthesisPrompt } from "../cat/prompts/synthesis.js";
import { REASONING_V1_INSTRUCTIONS } from "../cat/prompts/templates.js";
import { Mulberry32, mix32 } from "../util/rng.js";
import {
  correctSolution,
  type Problem,
  questionText,
  randomProblem,
  sampleSolution,
  solutionText,
  solve,
  unifiedText,
} from "./arith.js";
import { consensusProblem, synthesisTargetText } from "./synthesis-target.js";

/** One training conversation: the user turn the engine renders, and the assistant turn to learn. */
export type ToyExample = { kind: "solve" | "synthesize"; user: string; assistant: string };
export type TestRow = { id: string; question: string; answer: string };

/**
 * How many candidates a synthesis example shows: mostly G = 8 (the benchmark's and the paper's), and
 * every smaller count too, since `catrl infer` also synthesizes over the first 1, 2, 4 rollouts.
 */
const SYNTHESIS_K_WEIGHTS = [0, 1, 2, 1, 2, 1, 1, 1, 8] as const;

// Distinct PRNG streams per purpose, so changing the corpus size never changes the test set.
const STREAM = { test: 1, solve: 2, synthesize: 3, shuffle: 4, rl: 5 } as const;

/** Held-out problems, distinct from each other; the corpus never contains one of their questions. */
export function testProblems(seed: number, n: number): Problem[] {
  const rng = new Mulberry32(mix32(seed, STREAM.test));
  const seen = new Set<string>();
  const out: Problem[] = [];
  while (out.length < n) {
    const p = randomProblem(rng);
    const q = questionText(p);
    if (seen.has(q)) continue;
    seen.add(q);
    out.push(p);
  }
  return out;
}

export function testRows(problems: Problem[]): TestRow[] {
  return problems.map((p, i) => ({ id: `arith-${i}`, question: questionText(p), answer: String(solve(p)) }));
}

/**
 * Unlabelled prompts for CaT-RL (`catrl train --data`): no answer field, since CaT's rewards come from
 * the anchor's syntheses; drawn apart from the held-out problems, so training never sees a test question.
 */
export function rlPromptRows(
  seed: number,
  n: number,
  heldOut: Set<string>,
): { id: string; question: string }[] {
  const rng = new Mulberry32(mix32(seed, STREAM.rl));
  const rows: { id: string; question: string }[] = [];
  while (rows.length < n) {
    const q = questionText(randomProblem(rng));
    if (!heldOut.has(q)) rows.push({ id: `rl-${rows.length}`, question: q });
  }
  return rows;
}

function weightedIndex(rng: Mulberry32, weights: readonly number[]): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let r = rng.next() * total;
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i];
    if (r < 0) return i;
  }
  return weights.length - 1;
}

export type CorpusStats = {
  solve_examples: number;
  synthesize_examples: number;
  /** Share of corpus solutions whose final answer is right (what a perfect imitator gets per sample). */
  solution_accuracy: number;
  /** Share of synthesis examples whose target answer is right (candidates can misstate the question). */
  synthesis_target_accuracy: number;
  /** Share of synthesis examples over 8 candidates where the majority answer is right. */
  majority_accuracy_k8: number;
  held_out_questions_excluded: number;
};

/**
 * The training corpus: solved problems (with the mistakes of MISTAKES) and synthesis examples over
 * candidates drawn the same way, each a chat turn pair. Deterministic from the seed; test questions
 * are skipped wherever a problem is drawn.
 */
export function buildCorpus(
  seed: number,
  counts: { solve: number; synthesize: number },
  heldOut: Set<string>,
): { examples: ToyExample[]; stats: CorpusStats } {
  const examples: ToyExample[] = [];
  let excluded = 0;
  const draw = (rng: Mulberry32): Problem => {
    for (;;) {
      const p = randomProblem(rng);
      if (!heldOut.has(questionText(p))) return p;
      excluded++;
    }
  };
  const solveRng = new Mulberry32(mix32(seed, STREAM.solve));
  let right = 0;
  for (let i = 0; i < counts.solve; i++) {
    const p = draw(solveRng);
    const steps = sampleSolution(p, solveRng);
    if (steps.at(-1)?.result === solve(p)) right++;
    examples.push({ kind: "solve", user: questionText(p), assistant: solutionText(steps) });
  }
  const synthRng = new Mulberry32(mix32(seed, STREAM.synthesize));
  let targetRight = 0;
  let k8 = 0;
  let k8MajorityRight = 0;
  for (let i = 0; i < counts.synthesize; i++) {
    const p = draw(synthRng);
    const k = weightedIndex(synthRng, SYNTHESIS_K_WEIGHTS);
    const candidates = Array.from({ length: k }, () => solutionText(sampleSolution(p, synthRng)));
    const target = consensusProblem(candidates);
    if (target && solve(target) === solve(p)) targetRight++;
    if (k === 8) {
      k8++;
      if (majorityRight(candidates, solve(p))) k8MajorityRight++;
    }
    examples.push({
      kind: "synthesize",
      user: buildSynthesisPrompt({ template: "reasoning-v1", rollouts: candidates }),
      assistant: synthesisTargetText(candidates),
    });
  }
  return {
    examples,
    stats: {
      solve_examples: counts.solve,
      synthesize_examples: counts.synthesize,
      solution_accuracy: right / Math.max(1, counts.solve),
      synthesis_target_accuracy: targetRight / Math.max(1, counts.synthesize),
      majority_accuracy_k8: k8MajorityRight / Math.max(1, k8),
      held_out_questions_excluded: excluded,
    },
  };
}

function majorityRight(candidates: string[], gold: number): boolean {
  const counts = new Map<string, number>();
  for (const c of candidates) {
    const a = /\\boxed\{(\d+)\}/.exec(c)?.[1] ?? "none";
    counts.set(a, (counts.get(a) ?? 0) + 1);
  }
  let best = "";
  let n = 0;
  for (const [a, c] of counts) if (c > n) [best, n] = [a, c];
  return best === String(gold);
}

/** Every text the tokenizer must cover: the template, the prompts' framing, and sample solutions. */
export function vocabularyTexts(): string[] {
  const p: Problem = { start: 12, steps: [{ op: "+", operand: 3 }] };
  const sol = solutionText(correctSolution(p));
  return [
    REASONING_V1_INSTRUCTIONS,
    buildSynthesisPrompt({ template: "reasoning-v1", rollouts: [sol, ""] }),
    synthesisTargetText([sol]),
    synthesisTargetText([sol, "none"]),
    unifiedText(correctSolution(p)),
    questionText(p),
    "system user assistant",
  ];
}
