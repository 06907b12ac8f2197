import path from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { extractGoldAnswer } from "../../cat/answers/extract.js";
import { MatchModeSchema } from "../../cat/answers/match.js";
import { createAnswerChecker } from "../../cat/answers/pool.js";
import { readResults } from "../../cat/infer-run.js";
import type { PromptResult } from "../../cat/pipeline.js";
import { HEALTHBENCH_GRADER, HEALTHBENCH_GRADER_ID } from "../../cat/rubric/healthbench-grader.js";
import { type JudgeMode, JudgeModeSchema, judgeItems } from "../../cat/rubric-rewards.js";
import {
  HEALTHBENCH_BOOTSTRAP_SAMPLES,
  type HealthBenchStat,
  healthBenchOverall,
  readHealthBench,
} from "../../data/healthbench.js";
import { readJsonl } from "../../data/jsonl.js";
import { toPromptRow } from "../../data/prompt-rows.js";
import { writeFileAtomic } from "../../util/atomic-write.js";
import { UserError } from "../../util/errors.js";
import { sha256File } from "../../util/hash.js";
import { defaultThreads } from "../../util/threads.js";
import { openEngineFromCli } from "../open-engine.js";
import { addRuntimeOptions, parseOrExplain, parseRuntimeOptions } from "../options.js";

const EvalArgsSchema = z.object({
  gold: z.string({ error: "--gold is required" }),
  match: MatchModeSchema,
  judge: z.string().optional(),
  judgeMode: JudgeModeSchema,
});

type EvalReport = {
  kind: "answers" | "healthbench";
  gold: string;
  n: number;
  missing_gold: number;
  accuracy: Record<string, number>;
  by_g: Record<string, Record<string, number>>;
  /** HealthBench: (response, criterion) pairs the judge could not grade (left out of the score). */
  unjudged?: number;
  /** HealthBench: the official aggregation per estimator, the grader's version and the judge's hash. */
  healthbench?: {
    aggregation: string;
    bootstrap_samples: number;
    bootstrap_seed: number;
    grader_prompt: string;
    judge: { path: string; sha256: string; mode: JudgeMode; threshold: number };
    verdicts_file: string;
    estimators: Record<
      string,
      {
        overall: number;
        bootstrap_std: number;
        n: number;
        unjudged: number;
        unscored: number;
        by_tag: Record<string, HealthBenchStat>;
      }
    >;
  };
};

/** P(true) at or above this counts as "criteria_met" in logprob mode. */
const HEALTHBENCH_THRESHOLD = 0.5;

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
    .option("--judge <gguf>", "grader for HealthBench rubrics (the official simple-evals grader prompt)")
    .option(
      "--judge-mode <mode>",
      "logprob (P(true) of criteria_met, one forward pass) | generate (the grader writes the JSON)",
      "logprob",
    );
  addRuntimeOptions(cmd);
  cmd.action(async (dir: string, raw: Record<string, unknown>) => {
    const args = parseOrExplain(EvalArgsSchema, raw);
    const results = await readResults(dir);
    const { rows } = await readJsonl<Record<string, unknown>>(args.gold);
    const isHealthBench = rows.length > 0 && Array.isArray(rows[0].value.rubrics);
    const report = isHealthBench
      ? await evalHealthBench(
          dir,
          results,
          args.gold,
          args.judge,
          args.judgeMode,
          raw,
          program.opts().verbose === true,
        )
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
    // Gold answers that are worked solutions (GSM8K's "... #### 72") go through extraction too.
    if (!p.error && p.row.gold !== undefined) goldById.set(p.row.id, extractGoldAnswer(p.row.gold));
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
  };
}

/** One graded response of `catrl eval --judge`, with every criterion's verdict: the audit trail. */
type HealthBenchVerdictRecord = {
  prompt_id: string;
  estimator: string;
  /** The rollout the estimator picked (null: the synthesized reference). */
  rollout_index: number | null;
  response: string;
  /** Unclipped score of this response (simple-evals `calculate_score`, unjudged criteria left out). */
  score: number | null;
  grader_prompt: string;
  judge_sha256: string;
  judge_mode: JudgeMode;
  verdicts: Array<{
    criterion: string;
    points: number;
    tags: string[];
    p_yes: number | null;
    met: boolean | null;
    error?: string;
  }>;
};

export const HEALTHBENCH_VERDICTS_FILE = "healthbench-verdicts.jsonl";

async function evalHealthBench(
  dir: string,
  results: PromptResult[],
  gold: string,
  judgePath: string | undefined,
  judgeMode: JudgeMode,
  raw: Record<string, unknown>,
  verbose: boolean,
): Promise<EvalReport> {
  if (!judgePath) throw new UserError(`${gold}: HealthBench rubrics need a grader: pass --judge J.gguf`);
  const { rows } = await readHealthBench(gold);
  const byId = new Map(rows.map((r) => [r.value.prompt_id, r.value]));
  const scored = results.filter((r) => byId.has(r.id));
  if (scored.length === 0) throw new UserError(`${gold}: no HealthBench row matches a prompt of the run`);
  const names = [...new Set(scored.flatMap((r) => Object.keys(r.estimators)))];
  const picked = (r: PromptResult, n: string): { index: number | null; text: string } => {
    if (n === "synthesis") return { index: null, text: r.reference.unified ?? "" };
    const i = r.estimators[n as keyof typeof r.estimators]?.index;
    return i == null ? { index: null, text: "" } : { index: i, text: r.rollouts[i]?.text ?? "" };
  };
  const runtime = parseRuntimeOptions(raw);
  const judgeSha = await sha256File(judgePath);
  const judge = await openEngineFromCli(judgePath, runtime, { verbose });
  try {
    const judged = await judgeItems(
      judge,
      scored.map((r) => {
        const hb = byId.get(r.id)!;
        return {
          criteria: hb.rubrics.map((c) => c.criterion),
          points: hb.rubrics.map((c) => c.points),
          responses: names.map((n) => picked(r, n).text),
          responseTokens: names.map(() => 0),
          // The official grader always reads the conversation, the graded response as its last turn.
          conversation: hb.prompt,
        };
      }),
      {
        rubricMaxTokens: 1,
        retries: 0,
        sampling: { temperature: 0, topK: 0, topP: 1, minP: 0 },
        judgeMode,
        threshold: HEALTHBENCH_THRESHOLD,
      },
      runtime.seed,
      undefined,
      HEALTHBENCH_GRADER,
    );
    const overall = names.map((_, k) =>
      healthBenchOverall(
        scored.map((r, i) => {
          const hb = byId.get(r.id)!;
          return {
            rubrics: hb.rubrics,
            met: judged[i].verdicts[k].map((v) => v.met),
            exampleTags: hb.example_tags,
          };
        }),
        { seed: runtime.seed },
      ),
    );
    const records: HealthBenchVerdictRecord[] = scored.flatMap((r, i) => {
      const hb = byId.get(r.id)!;
      return names.map((n, k) => ({
        prompt_id: r.id,
        estimator: n,
        rollout_index: picked(r, n).index,
        response: picked(r, n).text,
        score: overall[k].perExample[i],
        grader_prompt: HEALTHBENCH_GRADER_ID,
        judge_sha256: judgeSha,
        judge_mode: judgeMode,
        verdicts: judged[i].verdicts[k].map((v, c) => ({
          criterion: hb.rubrics[c].criterion,
          points: hb.rubrics[c].points,
          tags: hb.rubrics[c].tags,
          p_yes: v.pYes,
          met: v.met,
          ...(v.error ? { error: v.error } : {}),
        })),
      }));
    });
    await writeFileAtomic(
      path.join(dir, HEALTHBENCH_VERDICTS_FILE),
      records.map((x) => `${JSON.stringify(x)}\n`).join(""),
    );
    const unjudged = overall.reduce((n, o) => n + o.unjudged, 0);
    if (unjudged > 0)
      process.stderr.write(
        `${unjudged} (criterion, response) pairs could not be judged: left out of both numerator and denominator (see ${HEALTHBENCH_VERDICTS_FILE})\n`,
      );
    return {
      kind: "healthbench",
      unjudged,
      gold,
      n: scored.length,
      missing_gold: results.length - scored.length,
      accuracy: Object.fromEntries(names.map((n, k) => [n, overall[k].overall])),
      by_g: {},
      healthbench: {
        aggregation: "simple-evals healthbench_eval.py: mean of unclipped example scores, clipped to [0, 1]",
        bootstrap_samples: HEALTHBENCH_BOOTSTRAP_SAMPLES,
        bootstrap_seed: runtime.seed,
        grader_prompt: HEALTHBENCH_GRADER_ID,
        judge: { path: judgePath, sha256: judgeSha, mode: judgeMode, threshold: HEALTHBENCH_THRESHOLD },
        verdicts_file: HEALTHBENCH_VERDICTS_FILE,
        estimators: Object.fromEntries(
          names.map((n, k) => [
            n,
            {
              overall: overall[k].overall,
              bootstrap_std: overall[k].bootstrapStd,
              n: overall[k].n,
              unjudged: overall[k].unjudged,
              unscored: overall[k].unscored,
              by_tag: overall[k].byTag,
            },
          ]),
        ),
      },
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
  for (const [k, v] of Object.entries(r.accuracy)) {
    const hb = r.healthbench?.estimators[k];
    lines.push(
      `${k.padEnd(12)} ${v.toFixed(3)}${hb ? ` ± ${hb.bootstrap_std.toFixed(3)} (bootstrap std, n ${hb.n})` : ""}`,
    );
  }
  const gs = Object.keys(r.by_g.synthesis ?? {});
  if (gs.length > 0) {
    lines.push("", `G            ${gs.map((g) => g.padStart(6)).join("")}`);
    for (const [k, row] of Object.entries(r.by_g)) {
      lines.push(`${k.padEnd(12)} ${gs.map((g) => row[g].toFixed(3).padStart(6)).join("")}`);
    }
  }
  return `${lines.join("\n")}\n`;
}
