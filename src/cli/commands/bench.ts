import type { Command } from "commander";
import { z } from "zod";
import { UserError } from "../../util/errors.js";

/**
 * `catrl bench <what>`: performance measurements. Each subcommand is one entry of `subcommands`; the
 * benchmark code itself lives under bench/ and is imported only when its subcommand runs.
 */
const subcommands: Array<(group: Command) => void> = [
  registerRollouts,
  registerTrain,
  registerJudge,
  registerPrefixShare,
  registerRemote,
  registerPool,
];

export function register(program: Command): void {
  const group = program.command("bench").description("performance benchmarks (results under bench/results/)");
  for (const add of subcommands) add(group);
}

const intList = (flag: string) =>
  z.string().transform((s, ctx) => {
    const xs = s.split(",").map((x) => Number(x.trim()));
    if (xs.length === 0 || xs.some((x) => !Number.isInteger(x) || x <= 0)) {
      ctx.addIssue({
        code: "custom",
        message: `${flag} wants positive integers separated by commas, got "${s}"`,
      });
      return z.NEVER;
    }
    return xs;
  });

const RolloutsCliSchema = z.object({
  model: z.string().optional(),
  threads: z.coerce.number().int().positive().optional(),
  maxTokens: intList("--max-tokens"),
  promptTokens: z.coerce.number().int().positive().optional(),
  groupSizes: intList("-G"),
  prompts: intList("--prompts"),
  repeats: z.coerce.number().int().positive(),
  variants: z
    .string()
    .transform((s) => s.split(",").map((x) => x.trim()))
    .pipe(
      z.array(
        z.enum(["engine", "engine-fa-off", "naive", "llama.cpp", "llama.cpp-fa-off", "llama.cpp-pps"], {
          message: "--variants: engine, engine-fa-off, naive, llama.cpp, llama.cpp-fa-off, llama.cpp-pps",
        }),
      ),
    ),
  naiveMaxRollouts: z.coerce.number().int().positive(),
  build: z.boolean(),
  out: z.string().optional(),
});

function registerRollouts(group: Command): void {
  group
    .command("rollouts")
    .description(
      "rollouts/s and tokens/s of the engine vs node-llama-cpp one completion at a time vs llama-batched-bench",
    )
    .option("--model <file>", "GGUF to run (default models/85m-q8_0.gguf, written if missing)")
    .option("--threads <n>", "CPU threads for every variant (default: the cores this process may use)")
    .option("--max-tokens <list>", "new tokens per rollout (each value its own cases)", "64")
    .option("--prompt-tokens <n>", "repeat the prompts up to this many tokens (a long shared prompt)")
    .option("-G, --group-sizes <list>", "rollouts per prompt", "1,4,8,16")
    .option("--prompts <list>", "prompts per batch", "1,4")
    .option("--repeats <n>", "repeats of every case (the table shows medians)", "2")
    .option(
      "--variants <list>",
      "which of engine,engine-fa-off,naive,llama.cpp (defaults: -fa auto),llama.cpp-fa-off,llama.cpp-pps to run",
      "engine,naive,llama.cpp,llama.cpp-fa-off,llama.cpp-pps",
    )
    .option("--naive-max-rollouts <n>", "rollouts timed per case in the one-at-a-time loop", "8")
    .option("--no-build", "skip llama-batched-bench instead of building it when missing")
    .option("--out <file>", "JSON results (default bench/results/rollouts-<hostname>.json)")
    .action(async (raw: Record<string, unknown>) => {
      const o = parseBenchOptions(RolloutsCliSchema, raw, "rollouts");
      const { runRolloutBench, formatTable } = await import("../../../bench/rollouts.js");
      const r = await runRolloutBench({
        model: o.model,
        threads: o.threads,
        maxTokens: o.maxTokens,
        promptTokens: o.promptTokens,
        G: o.groupSizes,
        prompts: o.prompts,
        repeats: o.repeats,
        variants: o.variants,
        naiveMaxRollouts: o.naiveMaxRollouts,
        buildLlamaCpp: o.build,
        out: o.out,
      });
      process.stdout.write(
        `${r.model.path} (${(r.model.bytes / 1e6).toFixed(1)} MB), ${r.threads} thread(s), ${r.maxTokens.join("/")} tokens per rollout, medians of ${r.options.repeats}, load average ${r.loadavgStart.join(" ")} at the start, ${r.machine.loadavg.join(" ")}\n`,
      );
      process.stdout.write(`${formatTable(r.summary)}\n`);
      for (const n of r.notes) process.stdout.write(`note: ${n}\n`);
      process.stdout.write(`${r.outFile}\n`);
    });
}

const TrainCliSchema = z.object({
  model: z.string().optional(),
  preset: z
    .enum(["tiny", "85m", "qwen3-0.6b", "qwen3-4b", "llama-3.1-8b", "gemma3-tiny", "gemma3-4b"], {
      message: "--preset: tiny, 85m, qwen3-0.6b, qwen3-4b, llama-3.1-8b, gemma3-tiny, gemma3-4b",
    })
    .optional(),
  backend: z.enum(["cpu", "cuda"], { message: "--backend: cpu, cuda" }),
  threads: z.coerce.number().int().positive().optional(),
  rank: z.coerce.number().int().positive(),
  cases: z.string().optional(),
  seqs: z.coerce.number().int().positive(),
  promptTokens: z.coerce.number().int().positive(),
  completionTokens: z.coerce.number().int().positive(),
  microBatch: z.union([z.literal("auto"), z.coerce.number().int().positive()], {
    message: "--micro-batch: auto or a positive integer",
  }),
  trainMemory: z.coerce.number().positive().optional(),
  repeats: z.coerce.number().int().positive(),
  warmup: z.coerce.number().int().nonnegative(),
  gradModes: z
    .string()
    .transform((s) => s.split(",").map((x) => x.trim()))
    .pipe(z.array(z.enum(["transpose", "outprod"], { message: "--grad-modes: transpose, outprod" }))),
  anchor: z.enum(["peft"], { message: "--anchor: peft" }).optional(),
  python: z.string().optional(),
  out: z.string().optional(),
});

function registerTrain(group: Command): void {
  group
    .command("train")
    .description(
      "native LoRA trainer: forward and GRPO-step tokens/s and peak memory per batch shape, optionally against PyTorch+PEFT",
    )
    .option("--model <file>", "GGUF base (default: the preset's random-weight model)")
    .option(
      "--preset <name>",
      "random-weight Q8_0 model of this shape, written to ~/.cache/catrl/models if missing (default qwen3-0.6b)",
    )
    .option("--backend <name>", "cpu or cuda (the anchor runs on the same device)", "cpu")
    .option("--threads <n>", "CPU threads (default: the cores this process may use)")
    .option("--rank <n>", "LoRA rank on all seven projections", "16")
    .option("--cases <list>", "batch shapes SEQSxPROMPT+COMPLETION, e.g. 2x32+32,1x64+512,1x256+1536")
    .option("--seqs <n>", "sequences per step (without --cases)", "2")
    .option("--prompt-tokens <n>", "prompt tokens per sequence (without --cases)", "32")
    .option("--completion-tokens <n>", "completion tokens per sequence (without --cases)", "32")
    .option(
      "--micro-batch <n>",
      "sequences per micro-batch: auto (the memory plan picks) or an upper bound",
      "auto",
    )
    .option("--train-memory <GiB>", "the trainer's memory budget (default: what is free when it opens)")
    .option("--repeats <n>", "timed repeats after the warm-up (medians reported)", "3")
    .option("--warmup <n>", "untimed steps before the timed ones", "1")
    .option("--grad-modes <list>", "gradient through frozen weights: transpose,outprod", "transpose,outprod")
    .option("--anchor <name>", "also run PyTorch+PEFT on each case (peft; needs torch, transformers, peft)")
    .option("--python <path>", "Python for the anchor (default $CATRL_PYTHON, else python3)")
    .option("--out <file>", "JSON results (default bench/results/train-<hostname>.json)")
    .action(async (raw: Record<string, unknown>) => {
      const opts = parseBenchOptions(TrainCliSchema, raw, "train");
      const { runTrainBench, formatTrainTable, parseBatchCases } = await import("../../../bench/train.js");
      const { cases, seqs, promptTokens, completionTokens, trainMemory, ...rest } = opts;
      const r = await runTrainBench({
        ...rest,
        trainMemoryGiB: trainMemory,
        cases: cases ? parseBatchCases(cases) : [{ seqs, promptTokens, completionTokens }],
      });
      process.stdout.write(
        `${r.model.path} (${r.model.arch}, ${r.model.weightType}, ${(r.model.bytes / 1e6).toFixed(0)} MB), ${r.backend}, LoRA r=${r.lora.rank}, ${r.threads} thread(s), micro-batch ${r.microBatch}, load average ${r.machine.loadavg.join(" ")}\n`,
      );
      process.stdout.write(`${formatTrainTable(r)}\n`);
      if (r.transposeSpeedup !== null)
        process.stdout.write(
          `training step, mul_mat(W^T) over out_prod: ${r.transposeSpeedup.toFixed(2)}x\n`,
        );
      for (const n of r.notes) process.stdout.write(`note: ${n}\n`);
      process.stdout.write(`${r.outFile}\n`);
    });
}

const JudgeCliSchema = z.object({
  model: z.string({ error: "--model is required" }),
  threads: z.coerce.number().int().positive().optional(),
  pairs: z.coerce.number().int().positive(),
  repeats: z.coerce.number().int().positive(),
  llamaCpp: z.boolean(),
});

function registerJudge(group: Command): void {
  group
    .command("judge")
    .description("judge verdicts from next-token probabilities (one forward pass) vs free generation")
    .option("--model <file>", "judge GGUF")
    .option("--threads <n>", "CPU threads (default: the cores this process may use)")
    .option("--pairs <n>", "(response, criterion) pairs", "64")
    .option("--repeats <n>", "repeats of each mode, interleaved (best reported)", "3")
    .option("--no-llama-cpp", "skip llama-batched-bench's S_PP at the judge's prompt length")
    .action(async (raw: Record<string, unknown>) => {
      const opts = parseBenchOptions(JudgeCliSchema, raw, "judge");
      const { benchJudge } = await import("../../../bench/judge.js");
      const { defaultThreads } = await import("../../util/threads.js");
      await benchJudge({ ...opts, threads: opts.threads ?? defaultThreads() });
    });
}

const PrefixCliSchema = z.object({
  model: z.string({ error: "--model is required" }),
  threads: z.coerce.number().int().positive().optional(),
  g: z.coerce.number().int().min(2),
  promptTokens: intList("--prompt-tokens"),
  maxTokens: z.coerce.number().int().positive(),
  repeats: z.coerce.number().int().positive(),
});

function registerPrefixShare(group: Command): void {
  group
    .command("prefix-share")
    .description("prompt KV state copied into the G sequences vs re-evaluated by each, by prompt length")
    .option("--model <file>", "GGUF to run")
    .option("--threads <n>", "CPU threads (default: the cores this process may use)")
    .option("-G, --g <n>", "rollouts per prompt", "8")
    .option("--prompt-tokens <list>", "prompt lengths", "16,64,256")
    .option("--max-tokens <n>", "new tokens per rollout", "16")
    .option("--repeats <n>", "repeats of each variant, interleaved (best reported)", "2")
    .action(async (raw: Record<string, unknown>) => {
      const opts = parseBenchOptions(PrefixCliSchema, raw, "prefix-share");
      const { benchPrefixShare } = await import("../../../bench/prefix-share.js");
      const { defaultThreads } = await import("../../util/threads.js");
      await benchPrefixShare({ ...opts, threads: opts.threads ?? defaultThreads() });
    });
}

/** A subcommand's options through its zod schema; a bad value is one line naming the option. */
function parseBenchOptions<T extends z.ZodType>(schema: T, raw: unknown, name: string): z.output<T> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new UserError(`bench ${name} --${String(i.path[0] ?? "")}: ${i.message}`);
  }
  return parsed.data;
}

const RemoteCliSchema = z.object({
  model: z.string().optional(),
  threads: z.coerce.number().int().positive(),
  maxTokens: z.coerce.number().int().positive(),
  groupSizes: intList("-G"),
  prompts: intList("--prompts"),
  repeats: z.coerce.number().int().positive(),
  out: z.string().optional(),
});

function registerRemote(group: Command): void {
  group
    .command("remote")
    .description(
      "rollouts through the remote engine vs a plain HTTP client, same llama-server, same parallelism",
    )
    .option("--model <file>", "GGUF the server loads (default ../shared/models/stories260K.gguf)")
    .option("--threads <n>", "llama-server threads", "1")
    .option("--max-tokens <n>", "tokens per rollout", "64")
    .option("-G, --group-sizes <list>", "rollouts per prompt", "16")
    .option("--prompts <list>", "prompts per batch", "1,4")
    .option("--repeats <n>", "repeats, interleaved (medians reported)", "3")
    .option("--out <file>", "JSON results (default bench/results/remote-<hostname>.json)")
    .action(async (raw: Record<string, unknown>) => {
      const o = parseBenchOptions(RemoteCliSchema, raw, "remote");
      const { runRemoteBench } = await import("../../../bench/remote.js");
      const r = await runRemoteBench({ ...o, G: o.groupSizes });
      for (const s of r.summary)
        process.stdout.write(
          `${s.prompts}x${s.G}: engine ${s.engine.toFixed(2)} rollouts/s, plain client ${s.plain.toFixed(2)}, ratio ${s.ratio.toFixed(3)}\n`,
        );
      process.stdout.write(`load average ${r.machine.loadavg.join(" ")}; results in ${r.outFile}\n`);
    });
}

const PoolCliSchema = z.object({
  model: z.string().optional(),
  workers: z.coerce.number().int().min(2),
  g: z.coerce.number().int().positive(),
  prompts: z.coerce.number().int().positive(),
  maxTokens: z.coerce.number().int().positive(),
  repeats: z.coerce.number().int().positive(),
  out: z.string().optional(),
});

function registerPool(group: Command): void {
  group
    .command("pool")
    .description("N CPU worker processes x 1 thread vs one engine x N threads, same rollouts")
    .option("--model <file>", "GGUF (default models/85m-q8_0.gguf)")
    .option("--workers <n>", "workers (and the single engine's threads)", "2")
    .option("-G, --g <n>", "rollouts per prompt", "16")
    .option("--prompts <n>", "prompts", "1")
    .option("--max-tokens <n>", "tokens per rollout", "64")
    .option("--repeats <n>", "repeats, interleaved (medians reported)", "3")
    .option("--out <file>", "JSON results (default bench/results/pool-<hostname>.json)")
    .action(async (raw: Record<string, unknown>) => {
      const o = parseBenchOptions(PoolCliSchema, raw, "pool");
      const { runPoolBench } = await import("../../../bench/pool.js");
      const r = await runPoolBench({ ...o, G: o.g });
      const s = r.summary;
      process.stdout.write(
        `engine ${s.engineTokensPerSec.toFixed(1)} tok/s, pool ${s.poolTokensPerSec.toFixed(1)} tok/s, pool/engine ${s.poolOverEngine.toFixed(3)}; load average ${r.machine.loadavg.join(" ")}; results in ${r.outFile}\n`,
      );
    });
}
