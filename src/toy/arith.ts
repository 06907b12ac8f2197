import type { Mulberry32 } from "../util/rng.js";

/**
 * The toy task: a chain of small integer operations read left to right ("Compute 13+4-5."), solved one
 * step at a time ("13+4=17. 17-5=12. \boxed{12}"). Every running value stays in [0, MAX_VALUE] and
 * every operand is one digit, so the table of facts is small enough for a model trained in minutes on
 * two cores (a few hundred facts), and the steps restate the operands, so a question-blind reader of
 * the solutions can rebuild the question.
 */
export type Op = "+" | "-";
export type Step = { op: Op; operand: number };
export type Problem = { start: number; steps: Step[] };
/** One written step "a op b=c" as a solution states it (possibly wrong). */
export type WrittenStep = { left: number; op: Op; operand: number; result: number };

export const MAX_VALUE = 19;
export const START_RANGE = [1, 19] as const;
export const OPERAND_RANGE = [1, 9] as const;
export const STEP_COUNTS = [2, 3] as const;
/** The closing line of a unified response (the synthesis template asks for it). */
export const FINAL_LINE = (answer: number) => `Therefore, the final answer is: $\\boxed{${answer}}$`;

export function apply(a: number, s: Step): number {
  return s.op === "+" ? a + s.operand : a - s.operand;
}

export function solve(p: Problem): number {
  return p.steps.reduce(apply, p.start);
}

export function questionText(p: Problem): string {
  return `Compute ${p.start}${p.steps.map((s) => `${s.op}${s.operand}`).join("")}.`;
}

export function randomProblem(rng: Mulberry32): Problem {
  const nSteps = STEP_COUNTS[rng.int(0, STEP_COUNTS.length - 1)];
  const start = rng.int(START_RANGE[0], START_RANGE[1]);
  const steps: Step[] = [];
  let v = start;
  for (let i = 0; i < nSteps; i++) {
    const operand = rng.int(OPERAND_RANGE[0], OPERAND_RANGE[1]);
    // Keep the running value in range: a forced op where the other one would leave it.
    let op: Op = rng.next() < 0.5 ? "+" : "-";
    if (op === "+" && v + operand > MAX_VALUE) op = "-";
    if (op === "-" && v - operand < 0) op = "+";
    steps.push({ op, operand });
    v = apply(v, { op, operand });
  }
  return { start, steps };
}

/**
 * How often each kind of mistake is written into a corpus solution. A step is wrong with probability
 * `stepError`; a wrong step is a slip in the result (±1 or ±2) or an operand copied wrong (the step is
 * then consistent, but not the question's); a whole step is
 * skipped with probability `skipStep` per solution. Later steps carry a wrong value on, so wrong final
 * answers are spread out and rarely agree with each other.
 */
export const MISTAKES = { stepError: 0.25, skipStep: 0.04, slip1: 0.5, slip2: 0.2 } as const;

/** A worked solution with mistakes drawn from MISTAKES; the steps actually written, in order. */
export function sampleSolution(p: Problem, rng: Mulberry32): WrittenStep[] {
  const skip = rng.next() < MISTAKES.skipStep && p.steps.length > 2 ? rng.int(0, p.steps.length - 1) : -1;
  const out: WrittenStep[] = [];
  let v = p.start;
  p.steps.forEach((s, i) => {
    if (i === skip) return;
    let operand = s.operand;
    let result = apply(v, s);
    if (rng.next() < MISTAKES.stepError) {
      const r = rng.next();
      const sign = rng.next() < 0.5 ? -1 : 1;
      if (r < MISTAKES.slip1) result += sign;
      else if (r < MISTAKES.slip1 + MISTAKES.slip2) result += 2 * sign;
      else {
        operand = operand + (operand >= OPERAND_RANGE[1] ? -1 : operand <= OPERAND_RANGE[0] ? 1 : sign);
        result = apply(v, { op: s.op, operand });
      }
      if (result < 0) result = apply(v, s) + 1;
    }
    out.push({ left: v, op: s.op, operand, result });
    v = result;
  });
  return out;
}

export function correctSolution(p: Problem): WrittenStep[] {
  const out: WrittenStep[] = [];
  let v = p.start;
  for (const s of p.steps) {
    const result = apply(v, s);
    out.push({ left: v, op: s.op, operand: s.operand, result });
    v = result;
  }
  return out;
}

export function stepsText(steps: WrittenStep[]): string {
  return steps.map((s) => `${s.left}${s.op}${s.operand}=${s.result}.`).join(" ");
}

/** A policy's solution, kept short (the answer boxed at the end): "13+4=17. 17-5=12. \boxed{12}" */
export function solutionText(steps: WrittenStep[]): string {
  return `${stepsText(steps)} \\boxed{${finalValue(steps)}}`;
}

/** A unified response as the synthesis template asks: the steps, then its closing line. */
export function unifiedText(steps: WrittenStep[]): string {
  return `${stepsText(steps)}\n${FINAL_LINE(finalValue(steps))}`;
}

function finalValue(steps: WrittenStep[]): number {
  return steps.length > 0 ? steps[steps.length - 1].result : 0;
}

const STEP_RE = /(\d+)([+-])(\d+)=(\d+)\./g;

/** The steps a response writes, as parsed back from its text (a model's rollout, or a corpus solution). */
export function parseSteps(text: string): WrittenStep[] {
  return [...text.matchAll(STEP_RE)].map((m) => ({
    left: Number(m[1]),
    op: m[2] as Op,
    operand: Number(m[3]),
    result: Number(m[4]),
  }));
}
