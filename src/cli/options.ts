import { type Command, Option } from "commander";
import { z } from "zod";
import { GpuChoiceSchema } from "../engine/llama-runtime.js";
import {
  isSamplingPresetName,
  SAMPLING_PRESETS,
  type SamplingPresetName,
} from "../engine/sampling-presets.js";
import type { Sampling } from "../engine/types.js";
import { UserError } from "../util/errors.js";
import { defaultThreads } from "../util/threads.js";

/**
 * Options that mean the same in every command (--threads, --gpu, --seed, --max-tokens, sampling), with
 * one zod schema so that a bad value gets one line naming the option.
 */
export function addRuntimeOptions(
  cmd: Command,
  /** Commands whose default budget depends on the task (`catrl infer`, `catrl train`) say so here. */
  maxTokensDefault: { value: string } | { description: string } = { value: String(DEFAULT_MAX_TOKENS) },
): Command {
  return cmd
    .addOption(new Option("--gpu <backend>", "auto | cuda | vulkan | cpu").default("auto"))
    .option("--threads <n>", "CPU threads for llama.cpp (default: the cores; 1 under CI)")
    .option("--seed <n>", "base seed; rollout i of a prompt uses seed + i", "1")
    .option(
      "--max-tokens <n>",
      `maximum new tokens per completion${"description" in maxTokensDefault ? ` (default: ${maxTokensDefault.description})` : ""}`,
      "value" in maxTokensDefault ? maxTokensDefault.value : undefined,
    );
}

/** New tokens per completion for commands without a task (rollout, bench, eval's judge). */
export const DEFAULT_MAX_TOKENS = 256;

export function addSamplingOptions(cmd: Command): Command {
  return cmd
    .option(
      "--preset <name>",
      `sampling preset: ${Object.keys(SAMPLING_PRESETS).join(" | ")} (default: by model family)`,
    )
    .option("--temperature <t>", "override the preset's temperature")
    .option("--top-k <k>", "override the preset's top-k (0 = off)")
    .option("--top-p <p>", "override the preset's top-p (1 = off)")
    .option("--min-p <p>", "override the preset's min-p (0 = off)")
    .option("--repeat-penalty <x>", "repeat penalty over the last 64 tokens (off unless given)");
}

const intString = (name: string, min: number) =>
  z
    .string()
    .or(z.number())
    .transform((v, ctx) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) {
        ctx.addIssue({ code: "custom", message: `--${name} must be an integer >= ${min} (got '${v}')` });
        return z.NEVER;
      }
      return n;
    });
const numString = (name: string) =>
  z
    .string()
    .or(z.number())
    .transform((v, ctx) => {
      const n = Number(v);
      if (!Number.isFinite(n)) {
        ctx.addIssue({ code: "custom", message: `--${name} must be a number (got '${v}')` });
        return z.NEVER;
      }
      return n;
    });

export const RuntimeOptionsSchema = z.object({
  gpu: GpuChoiceSchema,
  threads: intString("threads", 1).optional(),
  seed: intString("seed", 0),
  maxTokens: intString("max-tokens", 1).optional(),
});
export type RuntimeOptions = {
  gpu: z.infer<typeof GpuChoiceSchema>;
  threads: number;
  seed: number;
  maxTokens: number;
};

/** `defaultMaxTokens`: the budget when --max-tokens was not given (the task's, for infer and train). */
export function parseRuntimeOptions(
  raw: Record<string, unknown>,
  defaultMaxTokens: number = DEFAULT_MAX_TOKENS,
): RuntimeOptions {
  const r = parseOrExplain(RuntimeOptionsSchema, raw);
  return { ...r, threads: r.threads ?? defaultThreads(), maxTokens: r.maxTokens ?? defaultMaxTokens };
}

const SamplingOverridesSchema = z.object({
  preset: z.string().optional(),
  temperature: numString("temperature").optional(),
  topK: intString("top-k", 0).optional(),
  topP: numString("top-p").optional(),
  minP: numString("min-p").optional(),
  repeatPenalty: numString("repeat-penalty").optional(),
});

/** The preset named, else the model family's, then any per-field overrides. */
export function resolveSampling(
  raw: Record<string, unknown>,
  familyPreset: SamplingPresetName,
): {
  preset: SamplingPresetName;
  sampling: Sampling;
} {
  const o = parseOrExplain(SamplingOverridesSchema, raw);
  if (o.preset && !isSamplingPresetName(o.preset)) {
    throw new UserError(
      `--preset: unknown preset '${o.preset}' (known: ${Object.keys(SAMPLING_PRESETS).join(", ")})`,
    );
  }
  const preset = (o.preset as SamplingPresetName | undefined) ?? familyPreset;
  const sampling: Sampling = { ...SAMPLING_PRESETS[preset] };
  if (o.temperature != null) sampling.temperature = o.temperature;
  if (o.topK != null) sampling.topK = o.topK;
  if (o.topP != null) sampling.topP = o.topP;
  if (o.minP != null) sampling.minP = o.minP;
  if (o.repeatPenalty != null) sampling.repeatPenalty = o.repeatPenalty;
  return { preset, sampling };
}

export function parseOrExplain<T extends z.ZodType>(schema: T, raw: unknown): z.output<T> {
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue.path.length
      ? `--${String(issue.path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: `
      : "";
    throw new UserError(issue.code === "custom" ? issue.message : `${field}${issue.message}`);
  }
  return r.data;
}
