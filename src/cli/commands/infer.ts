import type { Command } from "commander";
import { z } from "zod";
import { appendResult, finishedRows, INFER_KIND, openInferRun, rowsToRun } from "../../cat/infer-run.js";
import { type CatPhaseTimes, type PromptResult, runCat } from "../../cat/pipeline.js";
import { splitByContextFit } from "../../cat/prompt-fit.js";
import { SYNTHESIS_TEMPLATES } from "../../cat/prompts/templates.js";
import { JUDGE_PROMPT_ID, RUBRIC_PROMPT_ID } from "../../cat/rubric/prompt.js";
import { describeUnfinishedChecks, openTask } from "../../cat/task.js";
import { formatJsonlError } from "../../data/jsonl.js";
import { readPromptRows } from "../../data/prompt-rows.js";
import { hostInfo, modelIdentity, modelRecords, versions } from "../../run/provenance.js";
import { writeFileAtomic } from "../../util/atomic-write.js";
import { UserError } from "../../util/errors.js";
import { formatDuration, ProgressLine } from "../../util/progress.js";
import {
  addCatOptions,
  catSettings,
  openCatEngines,
  paperMaxTokens,
  parseCatArgs,
  parseEstimators,
  TASK_MAX_TOKENS_HELP,
} from "../cat-options.js";
import { abortOnSigint } from "../open-engine.js";
import { addRuntimeOptions, addSamplingOptions, parseOrExplain, parseRuntimeOptions } from "../options.js";

const InferArgsSchema = z.object({
  model: z.string({ error: "--model is required" }),
  data: z.string({ error: "--data is required" }),
  out: z.string({ error: "--out is required" }),
  g: z.coerce.number().int().min(1, "-G must be >= 1"),
  estimators: z.string().optional(),
  batchPrompts: z.union([z.literal("all"), z.coerce.number().int().min(1, "--batch-prompts must be >= 1")], {
    error: "--batch-prompts must be a number >= 1 or 'all'",
  }),
  gSweep: z
    .string()
    .regex(/^\s*\d+(\s*,\s*\d+)*\s*$/, "--g-sweep must be a comma list of group sizes, e.g. 1,2,4")
    .optional(),
  limit: z.coerce.number().int().min(1).optional(),
});

/**
 * Prompts handed to the pipeline at once unless asked otherwise: all of them. The engine runs them in
 * waves as large as its context allows, syntheses of finished groups overlap the next groups' rollouts,
 * and every prompt's result is persisted the moment it is complete, so a kill loses only unfinished ones.
 */
export const DEFAULT_BATCH_PROMPTS = "all";

/** Sizes of the accuracy-vs-G sweep from `--g-sweep`, checked against -G (g = G is the main synthesis, reused). */
export function parseGSweep(list: string | undefined, G: number): number[] {
  if (list === undefined) return [];
  const gs = [...new Set(list.split(",").map((x) => Number(x.trim())))].sort((a, b) => a - b);
  for (const g of gs) {
    if (g < 1 || g > G) throw new UserError(`--g-sweep: ${g} must be between 1 and -G (${G})`);
  }
  return gs;
}

export function register(program: Command): void {
  const cmd = program
    .command("infer")
    .description(
      "CaT at inference time: G rollouts, question-blind anchor synthesis, rewards and baselines per prompt",
    )
    .option("--model <gguf>", "policy model")
    .option("--data <jsonl>", "prompts (question | problem | prompt | messages; gold from answer)")
    .option("--out <dir>", "run directory (re-running on it resumes)")
    .option("-G, --g <n>", "rollouts per prompt", "8")
    .option(
      "--estimators <list>",
      "comma list of synthesis,single,majority,self-bon,min-ppl,mutual-predictability (default: all but mutual-predictability)",
    )
    .option(
      "--batch-prompts <n>",
      "prompts given to the engine together (all: the engine fills its context; results are still kept per prompt)",
      DEFAULT_BATCH_PROMPTS,
    )
    .option(
      "--g-sweep <list>",
      "also synthesize over the first g rollouts for each g (accuracy against G, e.g. 1,2,4); one synthesis per g per prompt",
    )
    .option("--limit <n>", "only the first n rows");
  addCatOptions(cmd);
  addRuntimeOptions(cmd, { description: TASK_MAX_TOKENS_HELP });
  addSamplingOptions(cmd);
  cmd.action(async (raw: Record<string, unknown>) => {
    const args = parseOrExplain(InferArgsSchema, raw);
    const cat = parseCatArgs(raw);
    const rt = parseRuntimeOptions(raw, paperMaxTokens(cat.task));
    const verbose = program.opts().verbose === true;

    const { rows: allRows, errors } = await readPromptRows(args.data, { field: cat.field });
    let rows = allRows.slice(0, args.limit ?? allRows.length);
    const reportBadRows = () => {
      for (const e of errors)
        process.stderr.write(`${formatJsonlError(args.data, e)} (row reported in bad-rows.jsonl)\n`);
    };
    const noRows = () => {
      for (const e of errors) process.stderr.write(`${formatJsonlError(args.data, e)}\n`);
      return new UserError(
        `${args.data}: no usable prompt rows${errors.length ? ` (${errors.length} bad rows, listed above)` : ""}`,
      );
    };
    if (rows.length === 0) throw noRows();
    const task = await openTask({ task: cat.task, matchMode: cat.match, threads: Math.max(1, rt.threads) });
    const engines = await openCatEngines(args.model, cat, rt, { verbose });
    const sig = abortOnSigint();
    try {
      // Prompts too long for the context are bad rows, found before any work (not when a batch meets them).
      const fitted = splitByContextFit(engines.policy, rows, rt.maxTokens);
      rows = fitted.fit;
      errors.push(...fitted.errors);
      errors.sort((a, b) => a.line - b.line);
      if (rows.length === 0) throw noRows();
      const settings = catSettings(raw, cat, rt, engines, task, args.g, parseEstimators(args.estimators));
      settings.gSweep = parseGSweep(args.gSweep, args.g);
      if (settings.gSweep.length > 0 && task.kind !== "verifiable") {
        throw new UserError(`--g-sweep: the ${task.name} task has no answers to compare across G`);
      }
      const models = await modelRecords([
        { role: "policy", path: engines.policy.info.path, remote: engines.policy.info.remote },
        { role: "anchor", path: engines.anchor.info.path, remote: engines.anchor.info.remote },
        { role: "judge", path: engines.judge.info.path, remote: engines.judge.info.remote },
      ]);
      const config = {
        data: args.data,
        task: task.name,
        match: cat.match,
        G: args.g,
        maxTokens: rt.maxTokens,
        seed: rt.seed,
        sampling: settings.sampling,
        sampling_preset: settings.samplingPreset,
        synthesis: settings.synthesis,
        g_sweep: settings.gSweep,
        estimators: settings.estimators,
        rubric: settings.rubric,
        judge_sees_conversation: settings.judgeSeesConversation,
        batch_prompts: args.batchPrompts,
        threads: rt.threads,
        gpu: rt.gpu,
        model_sha256: modelIdentity(models[0]),
        anchor_sha256: modelIdentity(models[1]),
      };
      const run = await openInferRun(args.out, {
        kind: INFER_KIND,
        created: new Date().toISOString(),
        config,
        seeds: { base: rt.seed },
        models,
        templates: {
          synthesis: SYNTHESIS_TEMPLATES[settings.synthesis.template],
          rubric_prompt: RUBRIC_PROMPT_ID,
          judge_prompt: JUDGE_PROMPT_ID,
        },
        versions: versions(),
        host: hostInfo(),
      });
      await writeFileAtomic(run.badRows, errors.map((e) => `${JSON.stringify(e)}\n`).join(""));
      reportBadRows();

      const done = await finishedRows(run.results);
      const todo = rowsToRun(args.data, args.out, rows, done);
      if (done.size > 0)
        process.stderr.write(
          `resuming ${args.out}: ${done.size} prompts already done, ${todo.length} to go\n`,
        );
      const progress = new ProgressLine("prompts");
      const t0 = performance.now();
      let finished = 0;
      let tokens = 0;
      let noReference = 0;
      const rowById = new Map(todo.map((r) => [r.id, r]));
      const step = args.batchPrompts === "all" ? Math.max(1, todo.length) : args.batchPrompts;
      const split = { rollouts_s: 0, synthesis_s: 0, synthesis_after_rollouts_s: 0, judging_s: 0 };
      for (let i = 0; i < todo.length && !sig.interrupted(); i += step) {
        const batch = todo.slice(i, i + step);
        const times: Partial<CatPhaseTimes> = {};
        let batchTokens = 0;
        try {
          await runCat(engines, task, batch, settings, {
            signal: sig.signal,
            times,
            // Each prompt is on disk the moment it is complete, so a kill loses only unfinished ones.
            onResult: async (r: PromptResult) => {
              const row = rowById.get(r.id);
              if (!row) throw new Error(`internal: a result for ${r.id}, which is not in this batch`);
              await appendResult(run.results, r, row);
              if (!r.reference.ok) noReference++;
              finished++;
              progress.update({ done: finished, total: todo.length, elapsedMs: performance.now() - t0 });
            },
            onProgress: (p) => {
              if (p.stage !== "rollouts") return;
              batchTokens = p.tokens ?? batchTokens;
              const elapsed = performance.now() - t0;
              progress.update({
                done: finished,
                total: todo.length,
                elapsedMs: elapsed,
                rate: { value: ((tokens + batchTokens) * 1000) / Math.max(1, elapsed), unit: "tok/s" },
              });
            },
          });
        } catch (e) {
          if (sig.interrupted()) break;
          throw e;
        }
        tokens += batchTokens;
        for (const k of Object.keys(split) as (keyof typeof split)[]) split[k] += times[k] ?? 0;
      }
      progress.done();
      const secs = (performance.now() - t0) / 1000;
      process.stderr.write(
        `${finished} prompts x G=${args.g} in ${formatDuration(secs * 1000)} (${((finished * args.g) / Math.max(secs, 1e-9)).toFixed(2)} rollouts/s); ` +
          `rollouts ${split.rollouts_s.toFixed(1)} s, synthesis ${split.synthesis_s.toFixed(1)} s (${split.synthesis_after_rollouts_s.toFixed(1)} s after the rollouts), ` +
          `rewards and baselines ${split.judging_s.toFixed(1)} s; ` +
          `results in ${run.results}${errors.length ? `; ${errors.length} bad rows in ${run.badRows}` : ""}` +
          `${noReference ? `; ${noReference} prompts without a reference (see reference.error)` : ""}\n`,
      );
      const unfinished =
        task.kind === "verifiable" ? describeUnfinishedChecks(task.unfinishedChecks()) : null;
      if (unfinished) process.stderr.write(`${unfinished}\n`);
      if (sig.interrupted()) {
        process.stderr.write(
          `interrupted: ${done.size + finished} prompts kept; run the same command to resume\n`,
        );
        process.exitCode = 130;
      }
    } finally {
      sig.dispose();
      await task.close();
      for (const e of engines.owned.reverse()) await e.dispose();
    }
  });
}
