import path from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { MatchModeSchema } from "../../cat/answers/match.js";
import { createAnswerChecker } from "../../cat/answers/pool.js";
import { readResults } from "../../cat/infer-run.js";
import type { PromptResult } from "../../cat/pipeline.js";
import { judgeItems } from "../../cat/rubric-rewards.js";
import { healthBenchMean, healthBenchScore, readHealthBench } from "../../data/healthbench.js";
import { readJsonl } from "../../data/jsonl.js";
import { toPromptRow } from "../../data/prompt-rows.js";
import { writeFileAtomic } from "../../util/atomic-write.js";
import { UserError } from "../../util/errors.js";
import { defaultThreads } from "../../util/threads.js";
import { openEngineFromCli } from "../open-engine.js";
import { addRuntimeOptions, parseOrExplain, parseRuntimeOptions } from "../options.js";

const EvalArgsSchema = z.object({
  gold: z.string({ error: "--gold is required" }),
  match: MatchModeSchema,
  judge: z.string().optional(),
});

type EvalReport = {
  kind: "answers" | "healthbench";
  gold: string;
  n: number;
  missing_gold: number;
  accuracy: Record<string, number>;
  by_g: Record<string, Record<string, number>>;
  /** Why `by_g` is empty where it could have been measured. */
  by_g_note?: string;
  /** HealthBench: criteria the judge could not grade (counted as not met). */
  unjudged?: number;
};

export function register(program: Command): void {
  const cmd = program
    .command("eval <dir>")
    .description(
      "score a `catrl infer` run against gold answers (accuracy) or HealthBench rubrics, per estimator and per G",
    )
    .option(
      "--gold <jsonl>",
      "gold file: rows with `answer` (e.g. MATH-500) or HealthBench rows with `rubrics`",
    )
    .option("--match <mode>", "answer matching: math (symbolic) | exact", "math")
    .option("--judge <gguf>", "grader for HealthBench rubrics");
  addRuntimeOptions(cmd);
  cmd.action(async (dir: string, raw: Record<string, unknown>) => {
    const args = parseOrExplain(EvalArgsSchema, raw);
    const results = await readResults(dir);
    const { rows } = await readJsonl<Record<string, unknown>>(args.gold);
    const isHealthBench = rows.length > 0 && Array.isArray(rows[0].value.rubrics);
    const report = isHealthBench
      ? await evalHealthBench(results, args.gold, args.judge, raw, program.opts().verbose === true)
      : await evalAnswers(results, args.gold, rows, args.match);
    await writeFileAtomic(path.join(dir, "eval.json"), `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(formatReport(report));
    process.stderr.write(`written to ${path.join(dir, "eval.json")}\n`);
  });
}

async function evalAnswers(
  results: PromptResult[],
  gold: string,
  rows: { line: number; value: Record<string, unknown> }[],
  mode: z.infer<typeof MatchModeSchema>,
): Promise<EvalReport> {
  const goldById = new Map<string, string>();
  for (const r of rows) {
    const p = toPromptRow(r.value, r.line);
    if (!p.error && p.row.gold !== undefined) goldById.set(p.row.id, p.row.gold);
  }
  const scored = results.filter((r) => goldById.has(r.id));
  if (scored.length === 0)
    throw new UserError(`${gold}: no gold answer for any prompt of the run (ids must match)`);
  const names = [...new Set(scored.flatMap((r) => Object.keys(r.estimators)))];
  const gs = [...new Set(scored.flatMap((r) => Object.keys(r.g_sweep ?? {})))].sort(
    (a, b) => Number(a) - Number(b),
  );
  // Every (answer, gold) pair goes through the timed worker pool in one batch.
  const pairs: { a: string | null; b: string | null }[] = [];
  const slot = (a: string | null | undefined, g: string) => pairs.push({ a: a ?? null, b: g }) - 1;
  const idx = scored.map((r) => {
    const g = goldById.get(r.id)!;
    return {
      est: Object.fromEntries(
        names.map((n) => [n, slot(r.estimators[n as keyof typeof r.estimators]?.answer, g)]),
      ),
      syn: Object.fromEntries(gs.map((k) => [k, slot(r.g_sweep?.[k]?.synthesis_answer, g)])),
      maj: Object.fromEntries(gs.map((k) => [k, slot(r.g_sweep?.[k]?.majority_answer, g)])),
    };
  });
  const checker = createAnswerChecker({ threads: defaultThreads(), timeoutMs: 5000 });
  let ok: boolean[];
  try {
    ok = (await checker.check(pairs, mode)).map((c) => c.match);
  } finally {
    await checker.close();
  }
  const mean = (slots: number[]) => slots.filter((s) => ok[s]).length / slots.length;
  const accuracy = Object.fromEntries(names.map((n) => [n, mean(idx.map((i) => i.est[n]))]));
  const by_g: EvalReport["by_g"] = {};
  if (gs.length > 0) {
    by_g.synthesis = Object.fromEntries(gs.map((k) => [k, mean(idx.map((i) => i.syn[k]))]));
    by_g.majority = Object.fromEntries(gs.map((k) => [k, mean(idx.map((i) => i.maj[k]))]));
  }
  return {
    kind: "answers",
    gold,
    n: scored.length,
    missing_gold: results.length - scored.length,
    accuracy,
    by_g,
    ...(gs.length === 0
      ? {
          by_g_note:
            "accuracy against G not measured: the run had no --g-sweep (catrl infer --g-sweep 1,2,4)",
        }
      : {}),
  };
}

async function evalHealthBench(
  results: PromptResult[],
  gold: string,
  judgePath: string | undefined,
  raw: Record<string, unknown>,
  verbose: boolean,
): Promise<EvalReport> {
  if (!judgePath) throw new UserError(`${gold}: HealthBench rubrics need a grader: pass --judge J.gguf`);
  const { rows } = await readHealthBench(gold);
  const byId = new Map(rows.map((r) => [r.value.prompt_id, r.value]));
  const scored = results.filter((r) => byId.has(r.id));
  if (scored.length === 0) throw new UserError(`${gold}: no HealthBench row matches a prompt of the run`);
  const names = [...new Set(scored.flatMap((r) => Object.keys(r.estimators)))];
  const textOf = (r: PromptResult, n: string): string => {
    if (n === "synthesis") return r.reference.unified ?? "";
    const i = r.estimators[n as keyof typeof r.estimators]?.index;
    return i == null ? "" : (r.rollouts[i]?.text ?? "");
  };
  const judge = await openEngineFromCli(judgePath, parseRuntimeOptions(raw), { verbose });
  try {
    const judged = await judgeItems(
      judge,
      scored.map((r) => {
        const hb = byId.get(r.id)!;
        return {
          criteria: hb.rubrics.map((c) => c.criterion),
          responses: names.map((n) => textOf(r, n)),
          responseTokens: names.map(() => 0),
          conversation: hb.prompt,
        };
      }),
      {
        rubricMaxTokens: 1,
        retries: 0,
        sampling: { temperature: 0, topK: 0, topP: 1, minP: 0 },
        judgeMode: "logprob",
        threshold: 0.5,
      },
      1,
    );
    const scores = names.map((_, k) =>
      healthBenchMean(
        scored.map((r, i) =>
          healthBenchScore(
            byId.get(r.id)!.rubrics,
            judged[i].verdicts[k].map((v) => v.met === true),
          ),
        ),
      ),
    );
    const unjudged = judged.reduce((n, j) => n + j.verdicts.flat().filter((v) => v.met == null).length, 0);
    if (unjudged > 0)
      process.stderr.write(
        `${unjudged} (criterion, response) pairs could not be judged (counted as not met); see the judge's context\n`,
      );
    return {
      kind: "healthbench",
      unjudged,
      gold,
      n: scored.length,
      missing_gold: results.length - scored.length,
      accuracy: Object.fromEntries(names.map((n, k) => [n, scores[k]])),
      by_g: {},
    };
  } finally {
    await judge.dispose();
  }
}

function formatReport(r: EvalReport): string {
  const metric = r.kind === "healthbench" ? "HealthBench score" : "accuracy";
  const lines = [
    `${r.n} prompts scored against ${r.gold}${r.missing_gold ? ` (${r.missing_gold} without gold)` : ""}`,
  ];
  lines.push("", `estimator    ${metric}`);
  for (const [k, v] of Object.entries(r.accuracy)) lines.push(`${k.padEnd(12)} ${v.toFixed(3)}`);
  const gs = Object.keys(r.by_g.synthesis ?? {});
  if (gs.length > 0) {
    lines.push("", `G            ${gs.map((g) => g.padStart(6)).join("")}`);
    for (const [k, row] of Object.entries(r.by_g)) {
      lines.push(`${k.padEnd(12)} ${gs.map((g) => row[g].toFixed(3).padStart(6)).join("")}`);
    }
  }
  if (r.by_g_note) lines.push("", r.by_g_note);
  return `${lines.join("\n")}\n`;
}
