import type { Command } from "commander";
import { z } from "zod";
import { countParameters, MODEL_PRESETS, writeRandomModel } from "../../modelgen/index.js";
import { TOY_NAME, TOY_RECIPE, trainToy } from "../../toy/train-toy.js";
import { UserError } from "../../util/errors.js";
import { defaultThreads } from "../../util/threads.js";
import { parseOrThrow } from "../../util/zod-error.js";

const MakeOptionsSchema = z.object({
  preset: z.string(),
  type: z.enum(["f32", "f16", "q8_0"], { message: "--type must be f32, f16 or q8_0" }),
  seed: z.coerce.number().int().min(0).max(0xffffffff),
  tokenizerFrom: z.string().optional(),
  out: z.string().optional(),
});

const TrainToyCliSchema = z.object({
  seed: z.coerce.number().int().min(0).max(0xffffffff),
  scale: z.coerce.number().positive().max(10),
  threads: z.coerce.number().int().positive(),
  out: z.string().min(1),
  work: z.string().min(1),
});

// Defaults of `catrl model make`, each with why.
/** q8_0: what speed and memory work measures against (llama.cpp's common deployment type). */
const DEFAULT_TYPE = "q8_0";
/** Any fixed seed: the same options then give a byte-identical file. */
const DEFAULT_SEED = "1";
/** Progress at most this often (ms): a multi-GB write would otherwise print thousands of lines. */
const PROGRESS_EVERY_MS = 500;

/**
 * `catrl model make|presets|train-toy`: random-weight GGUFs of real shapes, for measuring speed and memory without
 * downloading weights. They write noise; nothing trained on or sampled from them means anything.
 */
export function register(program: Command): void {
  const model = program.command("model").description("random-weight GGUF models for speed and memory work");

  model
    .command("presets")
    .description("list model presets with their parameter counts")
    .action(() => {
      for (const p of Object.values(MODEL_PRESETS)) {
        const n = countParameters({ ...p.shape, n_vocab: p.n_vocab });
        const size = n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : `${(n / 1e6).toFixed(1)}M`;
        process.stdout.write(
          `${p.name.padEnd(14)} ${size.padStart(7)}  ${p.shape.arch.padEnd(7)} ${`${p.shape.n_layer}x${p.shape.n_embd}`.padEnd(8)} ${p.description}\n`,
        );
      }
    });

  model
    .command("make")
    .description("write a GGUF with random weights (noise: for speed/memory only) and a real tokenizer")
    .requiredOption("--preset <name>", `one of ${Object.keys(MODEL_PRESETS).join(", ")}`)
    .option("--type <type>", "f32, f16 or q8_0", DEFAULT_TYPE)
    .option("--seed <n>", "random seed (same seed, same bytes)", DEFAULT_SEED)
    .option("--tokenizer-from <file>", "GGUF to copy the tokenizer from (default: the preset's)")
    .option("--out <file>", "output path (default models/<preset>-<type>.gguf)")
    .action(async (raw: Record<string, unknown>) => {
      const o = parseOrThrow(
        MakeOptionsSchema,
        raw,
        (i) => `model make --${i.field.split(".")[0]}: ${i.message}`,
        {
          root: "",
        },
      );
      const out = o.out ?? `models/${o.preset}-${o.type}.gguf`;
      const t0 = performance.now();
      let last = 0;
      const tty = process.stderr.isTTY;
      const r = await writeRandomModel({
        preset: o.preset,
        type: o.type,
        seed: o.seed,
        tokenizerFrom: o.tokenizerFrom,
        out,
        onProgress: ({ bytesWritten, bytesTotal }) => {
          const now = performance.now();
          if (now - last < PROGRESS_EVERY_MS && bytesWritten < bytesTotal) return;
          last = now;
          const s = (now - t0) / 1000;
          const rate = bytesWritten / 1e6 / Math.max(s, 1e-3);
          const eta = rate > 0 ? (bytesTotal - bytesWritten) / 1e6 / rate : 0;
          const line = `${(bytesWritten / 1e6).toFixed(0)}/${(bytesTotal / 1e6).toFixed(0)} MB  ${rate.toFixed(0)} MB/s  ETA ${eta.toFixed(0)} s`;
          process.stderr.write(tty ? `\r${line}   ` : `${line}\n`);
        },
      });
      if (tty) process.stderr.write("\n");
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      process.stdout.write(
        `${r.path}: ${(r.parameters / 1e6).toFixed(1)}M parameters, ${(r.bytes / 1e6).toFixed(1)} MB, ${secs} s. ` +
          "Random weights (noise): use it for speed and memory measurements only.\n",
      );
    });

  model
    .command("train-toy")
    .description(
      `train the toy arithmetic model from random initialisation (full parameters, llama.cpp's optimizer) into models/${TOY_NAME}`,
    )
    .option(
      "--seed <n>",
      "seed of the corpus, the held-out set and the initial weights",
      String(TOY_RECIPE.seed),
    )
    .option("--scale <x>", "corpus size relative to the recipe's (0.05: a quick end-to-end check)", "1")
    .option("--threads <n>", "ggml threads (default: the cores; 1 under CI)", String(defaultThreads()))
    .option("--out <dir>", "where the model, recipe.json and test.jsonl go", `models/${TOY_NAME}`)
    .option("--work <dir>", "corpus windows, checkpoints (re-run to resume)", `runs/train-toy`)
    .action(async (raw: Record<string, unknown>) => {
      const parsed = TrainToyCliSchema.safeParse(raw);
      if (!parsed.success) {
        const i = parsed.error.issues[0];
        throw new UserError(`model train-toy --${String(i.path[0] ?? "")}: ${i.message}`);
      }
      const o = parsed.data;
      const r = await trainToy({
        outDir: o.out,
        workDir: o.work,
        threads: o.threads,
        scale: o.scale,
        seed: o.seed,
      });
      process.stdout.write(`${r.model} (recipe: ${r.recipe})\n`);
    });
}
