import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { z } from "zod";
import { appendResult, finishedIds, INFER_KIND, openInferRun } from "../../cat/infer-run.js";
import { type PromptResult, runCat } from "../../cat/pipeline.js";
import { SYNTHESIS_TEMPLATES } from "../../cat/prompts/templates.js";
import { JUDGE_PROMPT_ID, RUBRIC_PROMPT_ID } from "../../cat/rubric/prompt.js";
import { openTask } from "../../cat/task.js";
import { formatJsonlError } from "../../data/jsonl.js";
import { readPromptRows } from "../../data/prompt-rows.js";
import { hostInfo, modelRecords, versions } from "../../run/provenance.js";
import { appendLineDurable } from "../../util/atomic-write.js";
import { UserError } from "../../util/errors.js";
import { formatSeconds, ProgressLine } from "../../util/progress.js";
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
  batchPrompts: z.coerce.number().int().min(1),
  limit: z.coerce.number().int().min(1).optional(),
});

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
    .option("--batch-prompts <n>", "prompts processed together (a kill loses at most these)", "1")
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
    const rows = allRows.slice(0, args.limit ?? allRows.length);
    if (rows.length === 0) throw new UserError(`${args.data}: no usable prompt rows`);
    const task = await openTask({ task: cat.task, matchMode: cat.match, threads: Math.max(1, rt.threads) });
    const engines = await openCatEngines(args.model, cat, rt, { verbose });
    const sig = abortOnSigint();
    try {
      const settings = catSettings(raw, cat, rt, engines, task, args.g, parseEstimators(args.estimators));
      const models = await modelRecords([
        { role: "policy", path: engines.policy.info.path },
        { role: "anchor", path: engines.anchor.info.path },
        { role: "judge", path: engines.judge.info.path },
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
        model_sha256: models[0].sha256,
        anchor_sha256: models[1].sha256,
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
      await writeFile(
        run.badRows,
        errors.map((e) => JSON.stringify(e)).join("\n") + (errors.length ? "\n" : ""),
      );
      for (const e of errors)
        process.stderr.write(`${formatJsonlError(args.data, e)} (row reported in bad-rows.jsonl)\n`);

      const done = await finishedIds(run.results);
      const todo = rows.filter((r) => !done.has(r.id));
      if (done.size > 0)
        process.stderr.write(
          `resuming ${args.out}: ${done.size} prompts already done, ${todo.length} to go\n`,
        );
      const progress = new ProgressLine("prompts");
      const t0 = performance.now();
      let finished = 0;
      let tokens = 0;
      let noReference = 0;
      for (let i = 0; i < todo.length && !sig.interrupted(); i += args.batchPrompts) {
        const batch = todo.slice(i, i + args.batchPrompts);
        let results: PromptResult[];
        try {
          results = await runCat(engines, task, batch, settings, {
            signal: sig.signal,
            onProgress: (p) => {
              if (p.stage !== "rollouts") return;
              const elapsed = performance.now() - t0;
              progress.update({
                done: finished,
                total: todo.length,
                elapsedMs: elapsed,
                rate: { value: ((tokens + (p.tokens ?? 0)) * 1000) / Math.max(1, elapsed), unit: "tok/s" },
              });
            },
          });
        } catch (e) {
          if (sig.interrupted()) break;
          // A prompt too long for the model is that row's problem, not the run's: report it and go on.
          if (e instanceof UserError && /context too small/.test(e.message) && batch.length === 1) {
            const bad = { line: batch[0].line, field: "prompt", message: e.message };
            errors.push(bad);
            await appendLineDurable(run.badRows, JSON.stringify(bad));
            process.stderr.write(`${formatJsonlError(args.data, bad)} (row reported in bad-rows.jsonl)\n`);
            continue;
          }
          throw e;
        }
        for (const r of results) {
          await appendResult(run.results, r);
          tokens += r.rollouts.reduce((s, ro) => s + ro.tokens.length, 0);
          if (!r.reference.ok) noReference++;
        }
        finished += batch.length;
        progress.update({ done: finished, total: todo.length, elapsedMs: performance.now() - t0 });
      }
      progress.done();
      const secs = (performance.now() - t0) / 1000;
      process.stderr.write(
        `${finished} prompts x G=${args.g} in ${formatSeconds(secs * 1000)} (${((finished * args.g) / Math.max(secs, 1e-9)).toFixed(2)} rollouts/s); ` +
          `results in ${run.results}${errors.length ? `; ${errors.length} bad rows in ${run.badRows}` : ""}` +
          `${noReference ? `; ${noReference} prompts without a reference (see reference.error)` : ""}\n`,
      );
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
