import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { z } from "zod";
import { readResults } from "../../cat/infer-run.js";
import { formatJsonlError, parseJsonl } from "../../data/jsonl.js";
import { resolveTokenizerPath, stories260KCandidates } from "../../modelgen/tokenizer.js";
import { EvalRecordSchema, RUN_FILES, StepRecordSchema } from "../../rl/records.js";
import { UserError } from "../../util/errors.js";
import { formatDuration } from "../../util/progress.js";
import { defaultThreads } from "../../util/threads.js";
import { packageRoot } from "../../util/version.js";
import { DEMO_MODEL_FILE, demoModelPath } from "../demo-model.js";
import { parseOrExplain } from "../options.js";

const DemoArgsSchema = z.object({
  model: z.string().optional(),
  out: z.string().optional(),
  steps: z.coerce.number().int().min(1).optional(),
  threads: z.coerce.number().int().min(1).optional(),
});

type Found = { path: string; how: string; noise: boolean };

/**
 * The demo's settings in one place, each with why. "tiny" is a model without a chat template (the shipped
 * one) or a random-weight one; "chat" a real chat model, which gets the paper's kind of settings.
 */
const DEMO = {
  /** Enough tokens for a boxed answer with a short working; the first-word task needs a few words. */
  maxTokens: { chat: "256", tiny: "12" },
  /** Stage 1 shows the spread of G = 8 completions in one batch. */
  rolloutG: "8",
  /** Stage 2: G = 4 keeps inference quick while still giving synthesis several drafts to reconcile. */
  inferG: "4",
  /** CaT-RL steps: 12 (about 2 s each on one thread) show the shipped model learning; 3 keep a real one short. */
  steps: { tiny: 12, chat: 3 },
  /** All four of the demo's prompts in every step. */
  promptsPerStep: "4",
  /** The paper's G = 8 where a step is cheap; 4 on a real model to keep the demo in minutes. */
  trainG: { tiny: "8", chat: "4" },
  /** Evaluate halfway and at the end on the tiny model (the learning curve); not at all on a real one. */
  evalEvery: { tiny: "6", chat: "0" },
  /** A tiny model learns in a few steps only with a high rate; a real one takes LoRA's usual settings. */
  lora: { tiny: { rank: "8", lr: "3e-3" }, chat: { rank: "16", lr: "1e-4" } },
} as const;

/**
 * The main job on a fresh machine: takes --model or the model shipped in the repository (DEMO_MODEL_FILE;
 * then stories260K beside the checkout, then, only if both are gone, a generated random-weight model that
 * writes noise), runs CaT at inference time on a few prompts, then a short CaT-RL run, writes its HTML
 * report and ends with the numbers that show whether it learned. Each stage is the real `catrl` command,
 * so what the demo prints is what a user's own runs print.
 */
export function register(program: Command): void {
  program
    .command("demo")
    .description(
      "run CaT end to end on a local model: rollouts, synthesis, rewards, a short CaT-RL run, report",
    )
    .option("--model <gguf>", `model to use (default: ${DEMO_MODEL_FILE}, shipped with the project)`)
    .option("--out <dir>", "where runs go (default: runs/demo-<time>)")
    .option("--steps <n>", "CaT-RL steps (default: 12 on tiny models, 3 on others)")
    .option("--threads <n>", "CPU threads (default: 1 on tiny models, else the cores; 1 under CI)")
    .action(async (raw: Record<string, unknown>) => {
      const args = parseOrExplain(DemoArgsSchema, raw);
      const t0 = performance.now();
      const found = await findModel(args.model);
      say(`model: ${found.path} (${found.how})`);
      if (found.noise)
        say(
          "note: this is a generated random-weight model: it writes noise; the pipeline runs, the text means nothing",
        );

      const chat = await hasChatTemplate(found.path);
      const out = path.resolve(
        args.out ?? path.join("runs", `demo-${new Date().toISOString().replace(/[:.]/g, "-")}`),
      );
      await mkdir(out, { recursive: true });
      const data = path.join(out, "prompts.jsonl");
      const task = chat ? "math" : path.join(packageRoot(), "examples", "first-word-task.mjs");
      await writeFile(
        data,
        (chat ? ARITHMETIC : STORY_PROMPTS).map((r) => JSON.stringify(r)).join("\n") + "\n",
      );
      const tiny = !chat || found.noise;
      // A tiny model gains nothing from more threads, and ggml's spin-waiting threads collapse on a busy
      // machine (the shipped model: 2 s a step on 1 thread, 66 s on 2 threads of a loaded 2-core box).
      const threads = args.threads ?? (tiny ? 1 : defaultThreads());
      const maxTokens = chat ? DEMO.maxTokens.chat : DEMO.maxTokens.tiny;
      const common = ["--model", found.path, "--threads", String(threads), "--max-tokens", maxTokens];
      say(
        `task: ${chat ? "math (boxed answers)" : "first word of the completion (examples/first-word-task.mjs)"}; runs in ${out}`,
      );

      say("\n1/4 rollouts: G completions per prompt, all sequences in one batch");
      await catrl([
        "rollout",
        ...common,
        "--prompt",
        chat ? ARITHMETIC[0].problem : STORY_PROMPTS[0].prompt,
        "-G",
        DEMO.rolloutG,
      ]);

      say(
        "\n2/4 CaT at inference time: rollouts -> question-blind anchor synthesis -> rewards -> estimators",
      );
      const inferDir = path.join(out, "infer");
      await catrl([
        "infer",
        ...common,
        "--data",
        data,
        "--task",
        task,
        "-G",
        DEMO.inferG,
        "--out",
        inferDir,
        ...(tiny ? ["--anchor-preset", "greedy"] : []),
      ]);
      if (chat) await catrl(["eval", inferDir, "--gold", data]);
      await summarizeInfer(inferDir);

      const steps = String(args.steps ?? (tiny ? DEMO.steps.tiny : DEMO.steps.chat));
      say(`\n3/4 CaT-RL: ${steps} GRPO steps on a LoRA adapter, anchor frozen`);
      const trainDir = path.join(out, "train");
      await catrl([
        "train",
        ...common,
        "--data",
        data,
        "--task",
        task,
        "--out",
        trainDir,
        "--steps",
        steps,
        "--prompts-per-step",
        DEMO.promptsPerStep,
        "-G",
        tiny ? DEMO.trainG.tiny : DEMO.trainG.chat,
        "--eval-every",
        tiny ? DEMO.evalEvery.tiny : DEMO.evalEvery.chat,
        "--lora-rank",
        tiny ? DEMO.lora.tiny.rank : DEMO.lora.chat.rank,
        "--lr",
        tiny ? DEMO.lora.tiny.lr : DEMO.lora.chat.lr,
        ...(tiny ? ["--anchor-preset", "greedy"] : []),
      ]);

      say("\n4/4 report");
      await catrl(["report", trainDir]);
      say(`\ndone in ${formatDuration(performance.now() - t0)}`);
      for (const line of trainingSummary(trainDir)) say(line);
    });
}

function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

function catrl(args: string[]): Promise<void> {
  const cli = fileURLToPath(new URL("../main.js", import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "inherit", "inherit"] });
    child.on("close", (code) =>
      code === 0
        ? resolve()
        : reject(new UserError(`demo stopped: \`catrl ${args[0]}\` exited with ${code}`)),
    );
  });
}

async function findModel(explicit: string | undefined): Promise<Found> {
  if (explicit) return { path: explicit, how: "--model", noise: false };
  const shipped = demoModelPath();
  if (existsSync(shipped))
    return { path: shipped, how: "the real tiny model shipped in models/", noise: false };
  const stories = stories260KCandidates().find((p) => existsSync(p));
  if (stories)
    return { path: stories, how: "the real tiny stories260K found beside the checkout", noise: false };
  const generated = path.join(packageRoot(), "models", "demo-tiny-f32.gguf");
  if (!existsSync(generated)) {
    say(`${shipped} is missing: generating a tiny random-weight model (models/demo-tiny-f32.gguf)`);
    // stories260K's tokenizer is not here either: take llama's SentencePiece vocabulary from the llama.cpp
    // source node-llama-cpp bundles (no chat template, so the demo runs its raw-text task).
    const tokenizer = await resolveTokenizerPath({ kind: "llama.cpp-vocab", name: "llama-spm" });
    await catrl([
      "model",
      "make",
      "--preset",
      "tiny",
      "--type",
      "f32",
      "--seed",
      "1",
      "--tokenizer-from",
      tokenizer,
      "--out",
      generated,
    ]);
  }
  return { path: generated, how: "generated", noise: true };
}

/**
 * The three numbers that say whether CaT-RL worked: the mean reward at the first and the last step, and
 * the policy's single-sample accuracy (agreement with the synthesized reference when there is no gold)
 * before training and after the last evaluation.
 */
export function trainingSummary(dir: string): string[] {
  const read = <T>(file: string, parse: (v: unknown) => T): T[] => {
    const f = path.join(dir, file);
    if (!existsSync(f)) return [];
    return parseJsonl(readFileSync(f, "utf8")).map((item) => {
      if (item.error) throw new UserError(formatJsonlError(f, item.error));
      return parse(item.value);
    });
  };
  const steps = read(RUN_FILES.steps, (v) => StepRecordSchema.parse(v));
  const evals = read(RUN_FILES.evals, (v) => EvalRecordSchema.parse(v));
  const f = (x: number | null | undefined) => (x == null ? "-" : x.toFixed(2));
  const lines = [`report: ${path.join(dir, "report.html")}`];
  if (steps.length > 0) {
    const [first, last] = [steps[0], steps[steps.length - 1]];
    lines.push(
      `mean reward: step ${first.step} ${f(first.reward_mean)} -> step ${last.step} ${f(last.reward_mean)}`,
    );
  }
  if (evals.length > 0) {
    const [before, after] = [evals[0], evals[evals.length - 1]];
    const what = after.gold_available
      ? "accuracy"
      : "agreement with the synthesized reference (no gold answers)";
    lines.push(
      `policy single-sample ${what}: ${f(before.policy_single_accuracy)} at step ${before.step} -> ${f(after.policy_single_accuracy)} at step ${after.step}`,
    );
  }
  return lines;
}

async function hasChatTemplate(file: string): Promise<boolean> {
  const { readGgufFileInfo } = await import("node-llama-cpp");
  const info = await readGgufFileInfo(file, { logWarnings: false, readTensorInfo: false }).catch(() => null);
  if (!info) throw new UserError(`${file}: not a readable GGUF`);
  return Boolean(info.metadata?.tokenizer?.chat_template);
}

async function summarizeInfer(dir: string): Promise<void> {
  for (const r of await readResults(dir)) {
    const answers = r.rollouts.map((x) => x.answer ?? "-").join(", ");
    say(
      `  ${r.id}: rollouts [${answers}] -> reference ${r.reference.answer ?? "(none)"}; rewards ${r.rewards.join(" ")}`,
    );
  }
}

const STORY_PROMPTS = [
  { id: "s1", prompt: "Once upon a time, there was a little girl named Lily." },
  { id: "s2", prompt: "Tom and his dog went to the park." },
  { id: "s3", prompt: "The sun was shining and the birds were singing." },
  { id: "s4", prompt: "One day, a little boy found a big red ball." },
];

const ARITHMETIC = [
  [17, 25],
  [48, 36],
  [123, 89],
  [64, 57],
].map(([a, b], i) => ({
  id: `a${i + 1}`,
  problem: `What is ${a} + ${b}? Reason briefly, then give the final answer as \\boxed{...}.`,
  answer: String(a + b),
}));
