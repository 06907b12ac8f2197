import { existsSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import path from "node:path";
import { type CatEngines, type CatSettings, type PromptResult, runCat } from "../cat/pipeline.js";
import type { Task } from "../cat/task.js";
import type { PromptRow } from "../data/prompt-rows.js";
import type { LlamaEngine } from "../engine/llama-engine.js";
import { appendLineDurable } from "../util/atomic-write.js";
import { formatSeconds, ProgressLine } from "../util/progress.js";
import { groupAdvantages, meanStd } from "./advantages.js";
import { promptsForStep } from "./prompt-schedule.js";
import { type EvalRecord, RUN_FILES, type StepRecord } from "./records.js";
import { type TrainState, writeState } from "./train-run.js";
import type { Trainer } from "./trainer/index.js";

export type LoopSettings = {
  dir: string;
  steps: number;
  promptsPerStep: number;
  evalEvery: number;
  keepAdapters: number;
  step: {
    lr: number;
    beta: number;
    clipEps: number;
    microBatch: number | "auto";
    maxGradNorm: number;
    weightDecay: number;
    /** The rollouts' sampling temperature (the trainer's log-probs divide the logits by it). */
    temperature: number;
  };
};

export type LoopContext = {
  engines: CatEngines & { policy: LlamaEngine };
  task: Task;
  trainer: Trainer;
  rows: PromptRow[];
  evalRows: PromptRow[];
  cat: CatSettings;
  signal: AbortSignal;
  log: (line: string) => void;
};

const stepName = (n: number) => `step-${String(n).padStart(6, "0")}`;

/**
 * CaT-RL: each step samples B prompts x G rollouts from the policy (base + current adapter), lets the
 * frozen anchor (same base, no adapter) synthesize a reference per prompt, scores the rollouts against
 * it, turns rewards into group-normalised advantages and takes one GRPO update of the LoRA adapter; the
 * new adapter file serves the next step's rollouts. After each step the adapter, a trainer checkpoint
 * and state.json are written so that a crash or SIGKILL resumes at the next step.
 */
export async function trainLoop(ctx: LoopContext, s: LoopSettings, state: TrainState): Promise<TrainState> {
  const t0 = performance.now();
  const startedAt = state.steps_done;
  if (state.adapter) await ctx.engines.policy.setAdapters([{ path: path.join(s.dir, state.adapter) }]);

  if (s.evalEvery > 0 && !state.evals_done.includes(0) && state.steps_done === 0) {
    await evaluate(ctx, s, state, 0);
  }
  while (state.steps_done < s.steps && !ctx.signal.aborted) {
    const step = state.steps_done + 1;
    const rec = await trainStep(ctx, s, step);
    if (ctx.signal.aborted) break;

    const name = stepName(step);
    const adapter = `adapters/${name}.gguf`;
    const checkpoint = `checkpoints/${name}`;
    let written = state.adapter;
    if (!rec.skipped || !state.adapter) {
      await ctx.trainer.exportAdapter(path.join(s.dir, adapter));
      written = adapter;
    }
    await ctx.trainer.saveCheckpoint(path.join(s.dir, checkpoint));
    rec.adapter = written ?? undefined;
    await appendLineDurable(path.join(s.dir, RUN_FILES.steps), JSON.stringify(rec));
    const previous = state.checkpoint;
    state = { ...state, steps_done: step, adapter: written, checkpoint };
    await writeState(s.dir, state);
    if (previous && previous !== checkpoint)
      await rm(path.join(s.dir, previous), { recursive: true, force: true });
    await pruneAdapters(s.dir, state, s.keepAdapters);
    if (written) await ctx.engines.policy.setAdapters([{ path: path.join(s.dir, written) }]);

    const per = (performance.now() - t0) / (step - startedAt);
    ctx.log(
      `step ${step}/${s.steps} | reward ${fmt(rec.reward_mean)} ± ${fmt(rec.reward_std)} | kl ${fmt(rec.kl, 4)} | ` +
        `${(per / 1000).toFixed(2)} s/step | ETA ${formatSeconds(per * (s.steps - step))}${rec.skipped ? ` | skipped: ${rec.skip_reason}` : ""}`,
    );
    if (s.evalEvery > 0 && (step % s.evalEvery === 0 || step === s.steps)) {
      await evaluate(ctx, s, state, step);
    }
  }
  return state;
}

const fmt = (x: number | null | undefined, d = 3) => (x == null || !Number.isFinite(x) ? "-" : x.toFixed(d));

async function trainStep(ctx: LoopContext, s: LoopSettings, step: number): Promise<StepRecord> {
  const idx = promptsForStep(ctx.rows.length, s.promptsPerStep, ctx.cat.seed, step - 1);
  const rows = idx.map((i) => ctx.rows[i]);
  // Distinct samples every step, even for a prompt seen before: the seed moves with the step.
  const cat: CatSettings = { ...ctx.cat, seed: ctx.cat.seed + step * 1_000_033, estimators: [], gSweep: [] };
  const tR = performance.now();
  // Within a step (minutes on real models): rollouts done and tokens/s.
  const progress = new ProgressLine(`step ${step}/${s.steps} rollouts`);
  const results = await runCat(ctx.engines, ctx.task, rows, cat, {
    signal: ctx.signal,
    onProgress: (p) => {
      if (p.stage !== "rollouts") return;
      const elapsedMs = performance.now() - tR;
      progress.update({
        done: p.done,
        total: p.total,
        elapsedMs,
        rate: { value: ((p.tokens ?? 0) * 1000) / Math.max(1, elapsedMs), unit: "tok/s" },
      });
    },
  });
  progress.done();
  const catSecs = (performance.now() - tR) / 1000;
  const rewards = results.map((r) => r.rewards);
  const flat = rewards.flat().filter((x): x is number => x != null);
  const { mean, std } = meanStd(flat);
  const adv = groupAdvantages(rewards);
  const seqs = results.flatMap((r, g) =>
    r.rollouts.flatMap((ro, k) => {
      const a = adv.advantages[g][k];
      return a == null || ro.tokens.length === 0
        ? []
        : [{ prompt: r.prompt_tokens, completion: ro.tokens, advantage: a }];
    }),
  );
  const timing = sumTimings(results);
  const tokens = results.reduce((n, r) => n + r.rollouts.reduce((m, ro) => m + ro.tokens.length, 0), 0);
  const base: StepRecord = {
    step,
    reward_mean: mean,
    reward_std: std,
    zero_variance_groups: adv.zeroVarianceGroups,
    zero_variance_share: adv.zeroVarianceGroups / results.length,
    tokens_generated: tokens,
    rollouts_per_s: (results.length * ctx.cat.G) / Math.max(timing.rollouts_s, 1e-9),
    timestamp: new Date().toISOString(),
  };
  const tT = performance.now();
  if (seqs.length === 0) {
    return {
      ...base,
      skipped: true,
      skip_reason: "every group had zero reward variance (no signal)",
      time: { ...timing, training_s: 0, total_s: catSecs },
    };
  }
  const r = await ctx.trainer.step(seqs, s.step);
  const training_s = (performance.now() - tT) / 1000;
  for (const k of r.skippedSequences) ctx.log(`step ${step}: ${k.message}`);
  return {
    ...base,
    sequences_skipped: r.skippedSequences.length,
    loss: r.loss,
    kl: r.kl,
    grad_norm: Number.isFinite(r.gradNorm) ? r.gradNorm : null,
    clip_fraction: r.clipFraction,
    skipped: r.skipped,
    ...(r.skipped ? { skip_reason: r.reason ?? "non-finite loss or gradient" } : {}),
    time: { ...timing, training_s, total_s: catSecs + training_s },
  };
}

function sumTimings(results: PromptResult[]) {
  const t = { rollouts_s: 0, synthesis_s: 0, judging_s: 0 };
  for (const r of results) {
    t.rollouts_s += r.timings.rollouts_s;
    t.synthesis_s += r.timings.synthesis_s;
    t.judging_s += r.timings.judging_s;
  }
  return t;
}

/**
 * The trained policy with one sample against inference-time synthesis over G (and majority), on the eval
 * prompts. With gold answers: accuracy; without: agreement with the synthesized reference.
 */
async function evaluate(ctx: LoopContext, s: LoopSettings, state: TrainState, step: number): Promise<void> {
  if (ctx.task.kind !== "verifiable" || ctx.evalRows.length === 0) return;
  const cat: CatSettings = {
    ...ctx.cat,
    seed: ctx.cat.seed + 500_000_003,
    estimators: ["single", "synthesis", "majority"],
    gSweep: [1, 2, 4, 8, 16].filter((g) => g < ctx.cat.G),
  };
  const results = await runCat(ctx.engines, ctx.task, ctx.evalRows, cat, { signal: ctx.signal });
  if (ctx.signal.aborted) return;
  const gold = results.every((r) => r.gold !== undefined);
  const truth = (r: PromptResult) => (gold ? (r.gold ?? null) : (r.reference.answer ?? null));
  const task = ctx.task;
  const agree = async (pick: (r: PromptResult) => string | null | undefined) => {
    const ok = await task.matchMany(results.map((r) => ({ a: pick(r) ?? null, b: truth(r) })));
    return ok.filter(Boolean).length / results.length;
  };
  const byG: Record<string, number> = {};
  for (const g of [...cat.gSweep, ctx.cat.G]) {
    byG[String(g)] = await agree(
      (r) => r.g_sweep?.[String(g)]?.synthesis_answer ?? (g === ctx.cat.G ? r.reference.answer : null),
    );
  }
  const rec: EvalRecord = {
    step,
    n_prompts: results.length,
    policy_single_accuracy: await agree((r) => r.estimators.single?.answer),
    synthesis_accuracy: gold ? await agree((r) => r.reference.answer) : 1,
    majority_accuracy: await agree((r) => r.estimators.majority?.answer),
    accuracy_by_g: byG,
    gold_available: gold,
    timestamp: new Date().toISOString(),
  };
  await appendLineDurable(path.join(s.dir, RUN_FILES.evals), JSON.stringify(rec));
  state.evals_done.push(step);
  await writeState(s.dir, state);
  ctx.log(
    `eval @ step ${step}: policy single ${rec.policy_single_accuracy.toFixed(3)} | synthesis ${rec.synthesis_accuracy.toFixed(3)} | majority ${fmt(rec.majority_accuracy)}${gold ? "" : " (agreement with the synthesized reference: no gold)"}`,
  );
}

/** Keeps the newest `keep` adapters (the one in use among them); adapters are MBs each on real models. */
async function pruneAdapters(dir: string, state: TrainState, keep: number): Promise<void> {
  const adir = path.join(dir, "adapters");
  if (!existsSync(adir)) return;
  const files = (await readdir(adir)).filter((f) => f.endsWith(".gguf")).sort();
  const stale = files
    .slice(0, Math.max(0, files.length - keep))
    .filter((f) => `adapters/${f}` !== state.adapter);
  for (const f of stale) await rm(path.join(adir, f), { force: true });
}
