import { checkAnswers, type MatchMode, type MatchOutcome } from "./match.js";

// Test hook: an answer equal to this env value spins forever, so the kill-on-timeout path can be tested
// without hunting for an input that really hangs the engine (they change between engine versions).
const HANG = process.env.CATRL_ANSWER_WORKER_TEST_HANG;

/** One equivalence check, run in a piscina worker so a pathological input can be killed. */
export default function check(task: { a: string; b: string; mode: MatchMode }): MatchOutcome {
  if (HANG && task.a === HANG) for (;;);
  return checkAnswers(task.a, task.b, { mode: task.mode });
}
