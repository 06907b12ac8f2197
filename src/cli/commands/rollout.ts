import { createWriteStream, type WriteStream } from "node:fs";
import type { Command } from "commander";
import { z } from "zod";
import { presetForFamily } from "../../engine/sampling-presets.js";
import type { Prompt, Rollout } from "../../engine/types.js";
import { UserError } from "../../util/errors.js";
import { ProgressLine } from "../../util/progress.js";
import { abortOnSigint, openModelFromCli } from "../open-engine.js";
import {
  addRuntimeOptions,
  addSamplingOptions,
  parseOrExplain,
  parseRuntimeOptions,
  resolveSampling,
} from "../options.js";
import { loadPrompts } from "../prompts-input.js";

/** The JSON line written per rollout by `catrl rollout --json`. */
export function rolloutJson(r: Rollout, promptIndex: number) {
  return {
    prompt_index: promptIndex,
    rollout_index: r.rolloutIndex,
    seed: r.seed,
    text: r.text,
    tokens: r.tokens,
    finish_reason: r.finishReason,
    logprobs: r.logprobs,
    prompt_tokens: r.promptTokens,
    timings_ms: r.timings,
  };
}

// Defaults of `catrl rollout`, each with why.
/** A few completions per prompt show the spread of the sampler without a long wait. */
const DEFAULT_G = "4";

const RolloutArgsSchema = z.object({
  model: z.string({ error: "--model is required" }),
  prompt: z.string().optional(),
  data: z.string().optional(),
  field: z.string().optional(),
  g: z.coerce.number().int().min(1, "-G must be >= 1"),
  json: z.boolean().optional(),
  out: z.string().optional(),
  maxSequences: z.coerce.number().int().min(1).optional(),
  limit: z.coerce.number().int().min(1).optional(),
});

export function register(program: Command): void {
  const cmd = program
    .command("rollout")
    .description("sample G rollouts per prompt, all concurrently, with seeds, tokens and log-probs")
    .option("--model <gguf>", "model file (or hf: URI available in the local cache)")
    .option("--prompt <text>", "one prompt")
    .option("--data <jsonl>", "prompts from JSONL (question | problem | prompt | messages)")
    .option("--field <name>", "JSONL field holding the prompt (default: auto-detect)")
    .option("--limit <n>", "only the first n prompts of --data")
    .option("-G, --g <n>", "rollouts per prompt", DEFAULT_G)
    .option("--json", "one JSON object per rollout (JSONL) instead of text")
    .option("--out <file>", "write to this file instead of stdout")
    .option("--max-sequences <n>", "most sequences in one context (larger batches run in waves)");
  addRuntimeOptions(cmd);
  addSamplingOptions(cmd);
  cmd.action(async (raw: Record<string, unknown>) => {
    const args = parseOrExplain(RolloutArgsSchema, raw);
    const rt = parseRuntimeOptions(raw);
    if ((args.prompt == null) === (args.data == null))
      throw new UserError("give exactly one of --prompt or --data");
    const prompts: Prompt[] =
      args.prompt != null
        ? [args.prompt]
        : await loadPrompts(args.data!, { field: args.field, limit: args.limit });
    const verbose = program.opts().verbose === true;
    const engine = await openModelFromCli(args.model, rt, { verbose, maxSequences: args.maxSequences });
    const { sampling, preset } = resolveSampling(raw, presetForFamily(engine.info.family));
    const sink: WriteStream | NodeJS.WriteStream = args.out ? createWriteStream(args.out) : process.stdout;
    const sig = abortOnSigint();
    const progress = new ProgressLine("rollouts");
    let kept = 0;
    const t0 = performance.now();
    try {
      const total = prompts.length * args.g;
      let tokens = 0;
      await engine.generate(
        prompts.map((prompt, i) => ({
          prompt,
          n: args.g,
          maxTokens: rt.maxTokens,
          sampling,
          seed: rt.seed + i * args.g,
        })),
        {
          signal: sig.signal,
          onProgress: (p) => {
            tokens = p.tokensGenerated;
            progress.update({
              done: p.rolloutsDone,
              total,
              elapsedMs: p.elapsedMs,
              rate: { value: (p.tokensGenerated * 1000) / Math.max(1, p.elapsedMs), unit: "tok/s" },
            });
          },
          // Written as each finishes, so Ctrl-C keeps every finished rollout.
          onRollout: (r) => {
            kept++;
            sink.write(args.json ? `${JSON.stringify(rolloutJson(r, r.requestIndex))}\n` : formatRollout(r));
          },
        },
      );
      progress.done();
      const s = (performance.now() - t0) / 1000;
      process.stderr.write(
        `${kept} rollouts (${prompts.length} prompts x G=${args.g}, preset ${preset}) in ${s.toFixed(2)}s: ` +
          `${(kept / s).toFixed(2)} rollouts/s, ${(tokens / s).toFixed(1)} tok/s\n`,
      );
    } finally {
      sig.dispose();
      if (sink !== process.stdout) await new Promise((res) => (sink as WriteStream).end(res));
      await engine.dispose();
    }
    if (sig.interrupted()) {
      process.stderr.write(`interrupted: kept ${kept} finished rollouts\n`);
      process.exitCode = 130;
    }
  });
}

function formatRollout(r: Rollout): string {
  return `--- prompt ${r.requestIndex} rollout ${r.rolloutIndex} (seed ${r.seed}, ${r.tokens.length} tokens, ${r.finishReason})\n${r.text}\n`;
}
