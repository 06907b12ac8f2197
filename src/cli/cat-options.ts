import path from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { MatchModeSchema } from "../cat/answers/match.js";
import {
  type CatEngines,
  type CatSettings,
  DEFAULT_ESTIMATORS,
  ESTIMATORS,
  EstimatorNameSchema,
} from "../cat/pipeline.js";
import { JudgeModeSchema } from "../cat/rubric-rewards.js";
import type { Task } from "../cat/task.js";
import type { LlamaEngine } from "../engine/llama-engine.js";
import {
  isSamplingPresetName,
  presetForFamily,
  SAMPLING_PRESETS,
  type SamplingPresetName,
} from "../engine/sampling-presets.js";
import { UserError } from "../util/errors.js";
import { openEngineFromCli } from "./open-engine.js";
import { parseOrExplain, type RuntimeOptions, resolveSampling } from "./options.js";

/**
 * The paper's new-token budgets when --max-tokens is not given: 1,536 for verifiable tasks (MATH-500) and
 * 1,024 for free-form ones (HealthBench); a thinking model needs the room (or --no-think).
 */
export const PAPER_MAX_TOKENS = { verifiable: 1536, freeform: 1024 } as const;

export const TASK_MAX_TOKENS_HELP = `${PAPER_MAX_TOKENS.verifiable} for verifiable tasks, ${PAPER_MAX_TOKENS.freeform} for freeform (the paper's)`;

export function paperMaxTokens(task: string): number {
  return task === "freeform" ? PAPER_MAX_TOKENS.freeform : PAPER_MAX_TOKENS.verifiable;
}

/** Options shared by `catrl infer` and `catrl train`: the CaT half (anchor, synthesis, rewards, judge). */
export function addCatOptions(cmd: Command): Command {
  return cmd
    .option(
      "--anchor <gguf>",
      "frozen anchor that synthesizes references (default: the --model file, without adapter)",
    )
    .option("--judge <gguf>", "judge for rubric criteria (default: the anchor)")
    .option("--task <task>", "math | gsm8k | freeform | path to an answer-extractor module", "math")
    .option("--match <mode>", "answer matching for math: exact (the paper's) | math (symbolic)", "math")
    .option("--field <name>", "JSONL field holding the prompt (default: auto-detect)")
    .option("--anchor-sees-question", "show the anchor the question (the paper's anchor is question-blind)")
    .option("--keep-think", "keep <think> blocks in rollouts shown to the anchor")
    .option(
      "--no-think",
      "no thinking: rollouts start after the template's closed thinking block, and the anchor's prompt gets Qwen3's /no_think",
    )
    .option(
      "--anchor-preset <name>",
      "sampling preset of the anchor's syntheses and rubrics (default: by model family)",
    )
    .option("--synthesis-max-tokens <n>", "max new tokens of a synthesis (default: 2 x --max-tokens)")
    .option(
      "--accept-incomplete-references",
      "use a synthesis cut off at the token limit or without its unified section as the reference (default: no reference for that group, reported)",
    )
    .option("--judge-mode <mode>", "logprob (P(yes) vs P(no), one forward pass) | generate", "logprob")
    .option("--judge-sees-conversation", "show the judge the conversation, not only the response")
    .option(
      "--length-penalty <tokens>",
      "free-form reward -1 for responses over this many tokens (the paper: 750)",
    )
    .option("--rubric-retries <n>", "extra tries when a rubric does not parse", "2");
}

export const CatArgsSchema = z.object({
  anchor: z.string().optional(),
  judge: z.string().optional(),
  task: z.string(),
  match: MatchModeSchema,
  field: z.string().optional(),
  anchorSeesQuestion: z.boolean().optional(),
  keepThink: z.boolean().optional(),
  acceptIncompleteReferences: z.boolean().optional(),
  think: z.boolean().optional(),
  synthesisMaxTokens: z.coerce.number().int().min(1).optional(),
  anchorPreset: z.string().optional(),
  judgeMode: JudgeModeSchema,
  judgeSeesConversation: z.boolean().optional(),
  lengthPenalty: z.coerce.number().int().min(1).optional(),
  rubricRetries: z.coerce.number().int().min(0),
});
export type CatArgs = z.infer<typeof CatArgsSchema>;

export function parseCatArgs(raw: Record<string, unknown>): CatArgs {
  return parseOrExplain(CatArgsSchema, raw);
}

export function parseEstimators(list: string | undefined): CatSettings["estimators"] {
  if (!list) return [...DEFAULT_ESTIMATORS];
  return list.split(",").map((s) => {
    const r = EstimatorNameSchema.safeParse(s.trim());
    if (!r.success)
      throw new UserError(`--estimators: unknown estimator '${s}' (known: ${ESTIMATORS.join(", ")})`);
    return r.data;
  });
}

/**
 * Policy, anchor and judge. Files that are the same on disk share one loaded model (two contexts), as the
 * anchor usually is the policy's own base.
 */
export async function openCatEngines(
  model: string,
  args: Pick<CatArgs, "anchor" | "judge">,
  rt: RuntimeOptions,
  opts: { verbose?: boolean } = {},
): Promise<{ policy: LlamaEngine; anchor: LlamaEngine; judge: LlamaEngine; owned: LlamaEngine[] }> {
  const policy = await openEngineFromCli(model, rt, opts);
  const owned = [policy];
  const same = (a: string | undefined, b: string) => a == null || path.resolve(a) === path.resolve(b);
  const anchor =
    args.anchor == null || same(args.anchor, policy.info.path)
      ? await openEngineFromCli(model, rt, { ...opts, shareModelWith: policy })
      : await openEngineFromCli(args.anchor, rt, opts);
  owned.push(anchor);
  let judge = anchor;
  if (args.judge != null && !same(args.judge, anchor.info.path)) {
    judge = same(args.judge, policy.info.path)
      ? await openEngineFromCli(model, rt, { ...opts, shareModelWith: policy })
      : await openEngineFromCli(args.judge, rt, opts);
    owned.push(judge);
  }
  return { policy, anchor, judge, owned };
}

export function catSettings(
  raw: Record<string, unknown>,
  args: CatArgs,
  rt: RuntimeOptions,
  engines: CatEngines,
  task: Task,
  G: number,
  estimators: CatSettings["estimators"],
): CatSettings & { samplingPreset: string } {
  const { sampling, preset } = resolveSampling(raw, presetForFamily(engines.policy.info.family));
  if (args.anchorPreset && !isSamplingPresetName(args.anchorPreset)) {
    throw new UserError(
      `--anchor-preset: unknown preset '${args.anchorPreset}' (known: ${Object.keys(SAMPLING_PRESETS).join(", ")})`,
    );
  }
  const anchorSampling =
    SAMPLING_PRESETS[
      (args.anchorPreset as SamplingPresetName | undefined) ?? presetForFamily(engines.anchor.info.family)
    ];
  const sweep = [1, 2, 4, 8, 16, 32].filter((g) => g < G);
  return {
    G,
    maxTokens: rt.maxTokens,
    sampling,
    samplingPreset: preset,
    seed: rt.seed,
    synthesis: {
      template: task.template,
      anchorSeesQuestion: args.anchorSeesQuestion === true,
      stripThink: args.keepThink !== true,
      noThink: args.think === false,
      maxTokens: args.synthesisMaxTokens ?? 2 * rt.maxTokens,
      sampling: anchorSampling,
      // An anchor with a chat template can follow the synthesis format, so only a complete unified
      // section is a reference; a raw model's continuation is its reference as it stands.
      requireComplete: engines.anchor.info.hasChatTemplate && args.acceptIncompleteReferences !== true,
    },
    gSweep: task.kind === "verifiable" ? sweep : [],
    estimators: task.kind === "verifiable" ? estimators : estimators.filter((e) => e !== "majority"),
    rubric: {
      rubricMaxTokens: 512,
      retries: args.rubricRetries,
      sampling: anchorSampling,
      judgeMode: args.judgeMode,
      threshold: 0.5,
      lengthPenalty: args.lengthPenalty
        ? { kind: "fixed", maxTokens: args.lengthPenalty, penalty: -1 }
        : undefined,
    },
    judgeSeesConversation: args.judgeSeesConversation === true,
    noThink: args.think === false,
  };
}
