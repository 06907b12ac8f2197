import path from "node:path";
import type { Command } from "commander";
import { openTask } from "../../cat/task.js";
import { formatJsonlError } from "../../data/jsonl.js";
import { type PromptRow, readPromptRows } from "../../data/prompt-rows.js";
import { RUN_FILES } from "../../rl/records.js";
import {
  parseTargets,
  readConfigFile,
  TRAIN_DEFAULTS,
  TrainArgsSchema,
  trainingTemperature,
} from "../../rl/train-config.js";
import { trainLoop } from "../../rl/train-loop.js";
import {
  initialState,
  prepareNewRun,
  readRunForResume,
  trimRecords,
  writeState,
} from "../../rl/train-run.js";
import { openTrainer, trainerAvailability } from "../../rl/trainer/index.js";
import { hostInfo, modelRecords, versions } from "../../run/provenance.js";
import { writeFileAtomic } from "../../util/atomic-write.js";
import { UserError } from "../../util/errors.js";
import { addCatOptions, catSettings, openCatEngines, parseCatArgs } from "../cat-options.js";
import { abortOnSigint } from "../open-engine.js";
import { addRuntimeOptions, addSamplingOptions, parseOrExplain, parseRuntimeOptions } from "../options.js";

export function register(program: Command): void {
  const cmd = program
    .command("train")
    .description(
      "CaT-RL: rollouts -> question-blind anchor synthesis -> rewards -> GRPO update of a LoRA adapter, resumable",
    )
    .option("--model <gguf>", "base model (policy = base + adapter; the frozen anchor = base)")
    .option("--data <jsonl>", "training prompts")
    .option(
      "--eval <jsonl>",
      "evaluation prompts (default: the training prompts, as the paper's test-time RL)",
    )
    .option("--out <dir>", "run directory")
    .option("--config <json>", "settings file with the same keys as the flags (camelCase); flags win")
    .option("--resume <dir>", "continue a run after a crash or kill (no other flags needed)")
    .option("--steps <n>", "training steps", TRAIN_DEFAULTS.steps)
    .option("--prompts-per-step <n>", "prompts per step (B)", TRAIN_DEFAULTS.promptsPerStep)
    .option("-G, --g <n>", "rollouts per prompt", TRAIN_DEFAULTS.g)
    .option("--lora-rank <r>", "LoRA rank", TRAIN_DEFAULTS.loraRank)
    .option("--lora-alpha <a>", "LoRA alpha (default: 2 x rank)")
    .option("--lora-targets <list>", "projections with LoRA", TRAIN_DEFAULTS.loraTargets)
    .option("--lr <x>", "AdamW learning rate", TRAIN_DEFAULTS.lr)
    .option("--beta <x>", "KL coefficient to the base policy (the paper: 1e-3)", TRAIN_DEFAULTS.beta)
    .option("--clip-eps <x>", "PPO clip epsilon", TRAIN_DEFAULTS.clipEps)
    .option(
      "--micro-batch <n|auto>",
      "sequences per micro-batch (gradient accumulation); auto: as many as the memory plan fits",
      TRAIN_DEFAULTS.microBatch,
    )
    .option(
      "--train-memory <GiB>",
      "memory the trainer may use (default: what is free when it opens; GPU: the device's free memory)",
    )
    .option("--max-grad-norm <x>", "gradient-norm clip (0 = off)", TRAIN_DEFAULTS.maxGradNorm)
    .option("--weight-decay <x>", "AdamW weight decay", TRAIN_DEFAULTS.weightDecay)
    .option("--eval-every <k>", "evaluate every k steps (0 = never)", TRAIN_DEFAULTS.evalEvery)
    .option("--eval-limit <n>", "evaluation prompts used", TRAIN_DEFAULTS.evalLimit)
    .option("--keep-adapters <n>", "adapter files kept in DIR/adapters", TRAIN_DEFAULTS.keepAdapters);
  addCatOptions(cmd);
  addRuntimeOptions(cmd);
  addSamplingOptions(cmd);
  cmd.action(async (cliRaw: Record<string, unknown>) => {
    const verbose = program.opts().verbose === true;
    let raw: Record<string, unknown>;
    let state = initialState();
    const resuming = typeof cliRaw.resume === "string";
    if (resuming) {
      const dir = cliRaw.resume as string;
      const r = await readRunForResume(dir);
      raw = { ...r.options, out: dir };
      state = r.state;
      await trimRecords(dir, state);
    } else {
      // Defaults < config file < flags given on the command line.
      const fromFile = typeof cliRaw.config === "string" ? readConfigFile(cliRaw.config) : {};
      raw = { ...cliRaw };
      for (const [k, v] of Object.entries(fromFile)) {
        if (cmd.getOptionValueSource(k) !== "cli") raw[k] = v;
      }
      delete raw.config;
    }
    delete raw.resume;
    const args = parseOrExplain(TrainArgsSchema, raw);
    const cat = parseCatArgs(raw);
    const rt = parseRuntimeOptions(raw);
    const targets = parseTargets(args.loraTargets);
    const avail = trainerAvailability();
    if (!avail.ok) throw new UserError(`training needs the native trainer: ${avail.reason}`);

    const rows = await loadRows(args.data, cat.field);
    const evalRows = (args.eval ? await loadRows(args.eval, cat.field) : rows).slice(0, args.evalLimit);
    if (!resuming) await prepareNewRun(args.out);

    const task = await openTask({ task: cat.task, matchMode: cat.match, threads: 1 });
    if (cat.anchor && path.resolve(cat.anchor) !== path.resolve(args.model)) {
      throw new UserError(
        "--anchor: in CaT-RL the anchor is the initial policy, i.e. --model without adapter",
      );
    }
    const engines = await openCatEngines(args.model, { judge: cat.judge }, rt, { verbose });
    const sig = abortOnSigint();
    try {
      const settings = catSettings(raw, cat, rt, engines, task, args.g, ["synthesis"]);
      const lora = { rank: args.loraRank, alpha: args.loraAlpha ?? 2 * args.loraRank, targets };
      const trainer = await openTrainer({
        modelPath: engines.policy.info.path,
        backend: rt.gpu === "cuda" ? "cuda" : "cpu",
        threads: rt.threads,
        seed: rt.seed,
        lora,
        ...(args.trainMemory ? { trainMemory: args.trainMemory * 2 ** 30 } : {}),
        resumeFrom: state.checkpoint ? path.join(args.out, state.checkpoint) : undefined,
      });
      for (const note of trainer.notes) process.stderr.write(`trainer: ${note}\n`);
      const step = stepOptions(args, trainingTemperature(settings.sampling.temperature));
      try {
        if (!resuming) {
          const models = await modelRecords([
            { role: "policy-base", path: engines.policy.info.path },
            { role: "judge", path: engines.judge.info.path },
          ]);
          const options = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
          await writeFileAtomic(
            path.join(args.out, RUN_FILES.run),
            `${JSON.stringify(
              {
                kind: "catrl-train",
                version: 1,
                created: new Date().toISOString(),
                config: {
                  options,
                  resolved: {
                    ...settings,
                    lora,
                    step,
                    trainer: { memoryBudgetBytes: trainer.memoryBudget, gradMode: trainer.gradMode },
                  },
                },
                seeds: { base: rt.seed },
                models,
                versions: versions(),
                host: hostInfo(),
              },
              null,
              2,
            )}\n`,
          );
          await writeState(args.out, state);
        } else {
          process.stderr.write(`resuming ${args.out} after step ${state.steps_done}\n`);
        }
        state = await trainLoop(
          {
            engines,
            task,
            trainer,
            rows,
            evalRows,
            cat: settings,
            signal: sig.signal,
            log: (l) => process.stderr.write(`${l}\n`),
          },
          {
            dir: args.out,
            steps: args.steps,
            promptsPerStep: args.promptsPerStep,
            evalEvery: args.evalEvery,
            keepAdapters: args.keepAdapters,
            step,
          },
          state,
        );
      } finally {
        trainer.dispose();
      }
      process.stderr.write(
        `${state.steps_done}/${args.steps} steps done in ${args.out}; adapter: ${state.adapter ?? "(none)"}; report: catrl report ${args.out}\n`,
      );
      if (sig.interrupted()) process.exitCode = 130;
    } finally {
      sig.dispose();
      await task.close();
      for (const e of engines.owned.reverse()) await e.dispose();
    }
  });
}

function stepOptions(
  a: {
    lr: number;
    beta: number;
    clipEps: number;
    microBatch: number | "auto";
    maxGradNorm: number;
    weightDecay: number;
  },
  temperature: number,
) {
  return {
    temperature,
    lr: a.lr,
    beta: a.beta,
    clipEps: a.clipEps,
    microBatch: a.microBatch,
    maxGradNorm: a.maxGradNorm,
    weightDecay: a.weightDecay,
  };
}

async function loadRows(file: string, field?: string): Promise<PromptRow[]> {
  const { rows, errors } = await readPromptRows(file, { field });
  for (const e of errors) process.stderr.write(`${formatJsonlError(file, e)} (row skipped)\n`);
  if (rows.length === 0) throw new UserError(`${file}: no usable prompt rows`);
  return rows;
}
