// The toy model's CaT figures: `catrl infer` + `catrl eval` on the held-out problems (single sample vs
// majority vs synthesis, with paired 95% intervals), then `catrl train` with CaT rewards only (no gold in
// training) and the policy's single-sample accuracy on the held-out problems before and after.
//
//   npm run build && node dist/bench/toy-cat.js [--threads 1] [--limit 200] [--steps 40] [--skip-train]
//
// Writes bench/results/toy-cat-<host>.json (figures, intervals, settings, seeds, model sha256, load).
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import { z } from "zod";
import { answersMatch } from "../src/cat/answers/match.js";
import { formatJsonlError, readJsonl } from "../src/data/jsonl.js";
import { hostInfo, versions } from "../src/run/provenance.js";
import { TOY_NAME } from "../src/toy/train-toy.js";
import { sha256File } from "../src/util/hash.js";
import { packageRoot } from "../src/util/version.js";

const ROOT = packageRoot();
const CLI = path.join(ROOT, "dist", "src", "cli", "main.js");
const MODEL_DIR = path.join(ROOT, "models", TOY_NAME);
const MODEL = path.join(MODEL_DIR, `${TOY_NAME}.gguf`);
const TEST = path.join(MODEL_DIR, "test.jsonl");
const RL_PROMPTS = path.join(MODEL_DIR, "rl-prompts.jsonl");

/**
 * The settings every figure uses. The policy samples with temperature 1 and no filters (`raw`: the
 * model's own distribution, whose mistakes are what CaT corrects); the anchor synthesizes greedily.
 */
export const TOY_CAT_SETTINGS = {
  g: 8,
  maxTokens: 40,
  synthesisMaxTokens: 64,
  preset: "raw",
  anchorPreset: "greedy",
  seed: 1,
  /** CaT-RL: LoRA on every projection of the 4 layers, high lr (a ~1M-parameter model moves slowly). */
  train: { promptsPerStep: 8, loraRank: 8, lr: 1e-2, beta: 1e-3, evalEvery: 40 },
} as const;

const EvalJsonSchema = z.object({ accuracy: z.record(z.string(), z.number()), n: z.number() });
const ResultRowSchema = z.object({
  id: z.string(),
  gold: z.string().optional(),
  rollouts: z.array(z.object({ answer: z.string().nullable() })),
  estimators: z.record(z.string(), z.object({ answer: z.string().nullable() })),
});
const EvalRecordSchema = z.object({
  step: z.number(),
  policy_single_accuracy: z.number(),
  synthesis_accuracy: z.number(),
  majority_accuracy: z.number().nullable().optional(),
});
const StepRecordSchema = z.object({ step: z.number(), reward_mean: z.number().optional() }).passthrough();

const run = promisify(execFile);

/** Every row of a JSONL file the bench reads, checked: a bad row is an error naming file and line. */
async function rowsOf<T>(file: string, schema: z.ZodType<T>): Promise<T[]> {
  const { rows, errors } = await readJsonl(file, schema);
  if (errors.length > 0) throw new Error(formatJsonlError(file, errors[0]));
  return rows.map((r) => r.value);
}
const TestRowSchema = z.object({ id: z.string(), question: z.string(), answer: z.string() });

async function catrl(args: string[], threads: number): Promise<string> {
  const { stdout, stderr } = await run("node", [CLI, ...args, "--threads", String(threads)], {
    maxBuffer: 1 << 26,
    env: { ...process.env, CATRL_THREADS: String(threads) },
  });
  process.stderr.write(
    stderr
      .split("\n")
      .filter((l) => !l.startsWith("[node-llama-cpp]"))
      .join("\n"),
  );
  return stdout;
}

/** Mean and 95% normal interval half-width of paired per-problem differences. */
export function pairedGap(a: number[], b: number[]): { gap: number; ci95: number; significant: boolean } {
  const d = a.map((x, i) => x - b[i]);
  const mean = d.reduce((s, x) => s + x, 0) / d.length;
  const variance = d.reduce((s, x) => s + (x - mean) ** 2, 0) / Math.max(1, d.length - 1);
  const ci95 = 1.96 * Math.sqrt(variance / d.length);
  return { gap: mean, ci95, significant: mean - ci95 > 0 };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      threads: { type: "string", default: "1" },
      limit: { type: "string", default: "200" },
      steps: { type: "string", default: "40" },
      out: { type: "string", default: path.join(ROOT, "runs", "toy-cat") },
      "skip-train": { type: "boolean", default: false },
    },
  });
  const threads = Number(values.threads);
  const limit = Number(values.limit);
  const steps = Number(values.steps);
  if (!existsSync(MODEL)) throw new Error(`${MODEL} not found: run catrl model train-toy first`);
  const s = TOY_CAT_SETTINGS;
  const out = values.out;
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  const load0 = os.loadavg();
  const common = ["--model", MODEL, "-G", String(s.g), "--max-tokens", String(s.maxTokens)];
  const sampling = ["--preset", s.preset, "--anchor-preset", s.anchorPreset, "--seed", String(s.seed)];

  // --- inference: rollouts, synthesis, estimators on the held-out problems
  const testRows = (await rowsOf(TEST, TestRowSchema)).slice(0, limit);
  const testFile = path.join(out, "test.jsonl");
  await writeFile(testFile, `${testRows.map((r) => JSON.stringify(r)).join("\n")}\n`);
  const inferDir = path.join(out, "infer");
  const t0 = performance.now();
  await catrl(
    [
      "infer",
      ...common,
      ...sampling,
      "--data",
      testFile,
      "--task",
      "math",
      "--match",
      "exact",
      "--estimators",
      "synthesis,single,majority",
      "--synthesis-max-tokens",
      String(s.synthesisMaxTokens),
      "--out",
      inferDir,
    ],
    threads,
  );
  const inferSeconds = (performance.now() - t0) / 1000;
  await catrl(["eval", inferDir, "--gold", testFile, "--match", "exact"], threads);
  const evalJson = EvalJsonSchema.parse(JSON.parse(readFileSync(path.join(inferDir, "eval.json"), "utf8")));
  const rows = await rowsOf(path.join(inferDir, "results.jsonl"), ResultRowSchema);
  const right = (a: string | null | undefined, gold: string | undefined) =>
    answersMatch(a, gold, { mode: "exact" }) ? 1 : 0;
  // Single-sample accuracy per problem: the share of its G rollouts that are right (the expected
  // accuracy of one sample; the `single` estimator is rollout 0 alone, noisier, reported too).
  const single = rows.map(
    (r) => r.rollouts.reduce((n, x) => n + right(x.answer, r.gold), 0) / r.rollouts.length,
  );
  const majority = rows.map((r) => right(r.estimators.majority?.answer, r.gold));
  const synthesis = rows.map((r) => right(r.estimators.synthesis?.answer, r.gold));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const infer = {
    n: rows.length,
    seconds: Math.round(inferSeconds),
    single_sample_accuracy: mean(single),
    single_estimator_accuracy: evalJson.accuracy.single,
    majority_accuracy: mean(majority),
    synthesis_accuracy: mean(synthesis),
    majority_minus_single: pairedGap(majority, single),
    synthesis_minus_majority: pairedGap(synthesis, majority),
    eval_json: evalJson.accuracy,
  };
  process.stdout.write(
    `infer (${rows.length} held-out, G=${s.g}): single ${infer.single_sample_accuracy.toFixed(3)} | majority ${infer.majority_accuracy.toFixed(3)} | synthesis ${infer.synthesis_accuracy.toFixed(3)}\n` +
      `  majority - single ${fmtGap(infer.majority_minus_single)}; synthesis - majority ${fmtGap(infer.synthesis_minus_majority)}\n`,
  );

  // --- CaT-RL: rewards from the anchor's syntheses only; the held-out problems are the eval set
  let train: Record<string, unknown> | null = null;
  if (!values["skip-train"]) {
    const trainDir = path.join(out, "train");
    const t1 = performance.now();
    await catrl(
      [
        "train",
        ...common,
        ...sampling,
        "--data",
        RL_PROMPTS,
        "--eval",
        testFile,
        "--eval-limit",
        String(limit),
        "--task",
        "math",
        "--match",
        "exact",
        "--synthesis-max-tokens",
        String(s.synthesisMaxTokens),
        "--steps",
        String(steps),
        "--prompts-per-step",
        String(s.train.promptsPerStep),
        "--lora-rank",
        String(s.train.loraRank),
        "--lr",
        String(s.train.lr),
        "--beta",
        String(s.train.beta),
        "--eval-every",
        String(s.train.evalEvery),
        "--out",
        trainDir,
      ],
      threads,
    );
    const trainSeconds = (performance.now() - t1) / 1000;
    const evals = await rowsOf(path.join(trainDir, "evals.jsonl"), EvalRecordSchema);
    const stepsRec = await rowsOf(path.join(trainDir, "steps.jsonl"), StepRecordSchema);
    const first = evals[0];
    const last = evals[evals.length - 1];
    const rewards = stepsRec.map((r) => r.reward_mean ?? 0);
    const q = Math.max(1, Math.floor(rewards.length / 4));
    train = {
      steps,
      seconds: Math.round(trainSeconds),
      evals,
      policy_single_accuracy_before: first?.policy_single_accuracy,
      policy_single_accuracy_after: last?.policy_single_accuracy,
      rise_points: first && last ? 100 * (last.policy_single_accuracy - first.policy_single_accuracy) : null,
      reward_first_quarter: mean(rewards.slice(0, q)),
      reward_last_quarter: mean(rewards.slice(-q)),
    };
    process.stdout.write(
      `train (${steps} steps, ${Math.round(trainSeconds)} s): policy single ${first?.policy_single_accuracy.toFixed(3)} -> ${last?.policy_single_accuracy.toFixed(3)} on the held-out problems; reward ${mean(rewards.slice(0, q)).toFixed(3)} -> ${mean(rewards.slice(-q)).toFixed(3)}\n`,
    );
  }

  const result = {
    bench: "toy-cat",
    model: { path: path.relative(ROOT, MODEL), sha256: await sha256File(MODEL) },
    settings: { ...s, threads, limit, steps },
    infer,
    train,
    load_average: { start: load0, end: os.loadavg() },
    host: hostInfo(),
    versions: versions(),
    timestamp: new Date().toISOString(),
  };
  const file = path.join(ROOT, "bench", "results", `toy-cat-${os.hostname()}.json`);
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(
    `load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}; written to ${file}\n`,
  );
}

function fmtGap(g: { gap: number; ci95: number; significant: boolean }): string {
  return `${g.gap >= 0 ? "+" : ""}${g.gap.toFixed(3)} ± ${g.ci95.toFixed(3)}${g.significant ? "" : " (not significant)"}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
