import { loadExtractor } from "./answers/custom-extractor.js";
import { extractFinalAnswer } from "./answers/extract.js";
import { answersMatch, type MatchMode } from "./answers/match.js";
import { type AnswerChecker, createAnswerChecker } from "./answers/pool.js";

/**
 * What kind of supervision a task gets. Verifiable tasks compare extracted final answers (boxed math, or
 * a user's extractor module); free-form tasks get a self-proposed rubric judged per rollout.
 */
export type VerifiableTask = {
  kind: "verifiable";
  name: string;
  /** Which synthesis template fits its rollouts. */
  template: "reasoning-v1" | "freeform-v1";
  extract(text: string): string | null;
  /** Pairwise agreement of extracted answers, in order. */
  matchMany(pairs: { a: string | null; b: string | null }[]): Promise<boolean[]>;
  close(): Promise<void>;
};
export type FreeformTask = {
  kind: "freeform";
  name: "freeform";
  template: "freeform-v1";
  close(): Promise<void>;
};
export type Task = VerifiableTask | FreeformTask;

export type TaskSpec = { task: string; matchMode?: MatchMode; threads: number; checkTimeoutMs?: number };

/** Built-in verifiable tasks: boxed math (MATH-500) and grade-school word problems (GSM8K). */
export const BUILTIN_VERIFIABLE_TASKS = ["math", "gsm8k"] as const;

/**
 * `math` | `gsm8k` | `freeform` | a path to an extractor module (see src/cat/answers/custom-extractor.ts).
 * `math` and `gsm8k` share the extraction (boxed, `#### N`, "The answer is ...") and the matching; the
 * name says which benchmark a run is, and `gsm8k` gold answers (worked solutions) are extracted the same.
 */
export async function openTask(spec: TaskSpec): Promise<Task> {
  if (spec.task === "freeform")
    return { kind: "freeform", name: "freeform", template: "freeform-v1", close: async () => {} };
  if ((BUILTIN_VERIFIABLE_TASKS as readonly string[]).includes(spec.task)) {
    const mode = spec.matchMode ?? "math";
    // Symbolic checks run in a worker pool with a per-check timeout: a pathological expression from a
    // model must not hang a run.
    let checker: AnswerChecker | null = null;
    return {
      kind: "verifiable",
      name: spec.task,
      template: "reasoning-v1",
      extract: extractFinalAnswer,
      async matchMany(pairs) {
        if (mode === "exact") return pairs.map((p) => answersMatch(p.a, p.b, { mode }));
        checker ??= createAnswerChecker({ threads: spec.threads, timeoutMs: spec.checkTimeoutMs ?? 5000 });
        return (await checker.check(pairs, mode)).map((r) => r.match);
      },
      close: async () => {
        await checker?.close();
      },
    };
  }
  const custom = await loadExtractor(spec.task);
  return {
    kind: "verifiable",
    name: custom.source,
    template: "freeform-v1",
    extract: (t) => custom.extract(t),
    matchMany: async (pairs) =>
      pairs.map((p) =>
        p.a == null || p.b == null ? false : custom.match ? custom.match(p.a, p.b) : answersMatch(p.a, p.b),
      ),
    close: async () => {},
  };
}
