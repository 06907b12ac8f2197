import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { z } from "zod";
import { loadLlama } from "../engine/llama-runtime.js";
import { PromptRenderer } from "../engine/prompt-renderer.js";
import { gguf } from "../gguf/index.js";
import { countParameters, type ModelShape, writeRandomModel } from "../modelgen/index.js";
import { versions } from "../run/provenance.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { UserError } from "../util/errors.js";
import { sha256File } from "../util/hash.js";
import { Mulberry32, mix32 } from "../util/rng.js";
import { questionText } from "./arith.js";
import {
  buildCorpus,
  type CorpusStats,
  rlPromptRows,
  type ToyExample,
  testProblems,
  testRows,
  vocabularyTexts,
} from "./corpus.js";
import { fullTrainBinary, prebuiltLibDir } from "./full-train-binary.js";
import { buildToyVocab, toyTokenizerKv } from "./vocab.js";

/** The shipped model's name: its folder under models/ and its general.name. */
export const TOY_NAME = "arith-toy";

/**
 * The recipe, all settings in one place. ~1M parameters: 4 layers of width 128 (4 heads of 32), FFN 384,
 * an 820-token vocabulary; a 768-token context (llama.cpp rounds contexts up to a multiple of 256, and
 * a synthesis prompt over 8 rollouts with its answer is up to ~570 tokens). Small because llama.cpp's CPU
 * backward pass trains ~450-800 tokens/s at this size on one core of this shared machine (measured).
 */
export const TOY_RECIPE = {
  seed: 13,
  shape: {
    arch: "llama",
    n_embd: 128,
    n_layer: 4,
    n_head: 4,
    n_head_kv: 4,
    head_dim: 32,
    n_ff: 384,
    rope_freq_base: 10000,
    rms_eps: 1e-5,
    context_length: 768,
    tied_embeddings: false,
  } satisfies ModelShape,
  /**
   * Conversations of each kind: ~1.5M trained tokens (~2,000 optimizer steps), about 45% solutions and
   * 55% synthesis prompts (whose rollout blocks are solutions too): ~40 minutes of one core here.
   */
  corpus: { solve: 15000, synthesize: 2000 },
  testSize: 200,
  /** Unlabelled prompts shipped for CaT-RL (models/arith-toy/rl-prompts.jsonl). */
  rlPrompts: 400,
  /** Data files = checkpoints: one every ~1/16 of the run (~2.5 minutes). */
  chunks: 16,
  /** AdamW, one step per window; short warm-up then cosine (nanoGPT's schedule), a small model's lr. */
  lr: 1e-3,
  lrMin: 1e-4,
  warmupSteps: 50,
} as const;

export const TrainToyOptionsSchema = z.object({
  /** Where the model, recipe.json and test.jsonl go (models/arith-toy). */
  outDir: z.string().min(1),
  /** Intermediate files: corpus windows, the random-init model, checkpoints, the log. */
  workDir: z.string().min(1),
  threads: z.number().int().positive(),
  /** Scales both corpus sizes (0.05 for a quick end-to-end check); the test set is unchanged. */
  scale: z.number().positive().max(10).default(1),
  seed: z.number().int().min(0).default(TOY_RECIPE.seed),
});
export type TrainToyOptions = z.input<typeof TrainToyOptionsSchema> & { log?: (line: string) => void };

const ProgressSchema = z.discriminatedUnion("event", [
  z.object({
    event: z.literal("progress"),
    step: z.number(),
    batch: z.number(),
    batches: z.number(),
    loss: z.number(),
    accuracy: z.number(),
    tokens_per_s: z.number(),
  }),
  z.object({ event: z.literal("checkpoint"), data: z.string(), step: z.number(), loss: z.number() }),
]);

const StateSchema = z.object({ chunksDone: z.number().int().min(0), step: z.number().int().min(0) });

/**
 * Trains the toy model from random initialisation: corpus → tokens (through the same chat template and
 * tokenizer the engine uses) → packed windows → llama.cpp's optimizer in native/full-train → the
 * trained GGUF in outDir with recipe.json (seed, shape, corpus statistics, hashes) and test.jsonl.
 * Resumable: re-running with the same options continues after the last finished chunk.
 */
export async function trainToy(options: TrainToyOptions): Promise<{ model: string; recipe: string }> {
  const o = TrainToyOptionsSchema.parse(options);
  const log = options.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  await mkdir(o.workDir, { recursive: true });
  await mkdir(o.outDir, { recursive: true });
  const initPath = path.join(o.workDir, "init.gguf");
  const ckptPath = path.join(o.workDir, "checkpoint.gguf");
  const statePath = path.join(o.workDir, "state.json");

  // --- the held-out set first: the corpus is drawn around it
  const test = testProblems(o.seed, TOY_RECIPE.testSize);
  const heldOut = new Set(test.map(questionText));
  const counts = {
    solve: Math.round(TOY_RECIPE.corpus.solve * o.scale),
    synthesize: Math.round(TOY_RECIPE.corpus.synthesize * o.scale),
  };
  const { examples, stats } = buildCorpus(o.seed, counts, heldOut);

  // --- a random-init model with the toy vocabulary and ChatML (written by the project's GGUF writer)
  const vocab = buildToyVocab(vocabularyTexts());
  if (!existsSync(initPath)) {
    await writeRandomModel({
      shape: TOY_RECIPE.shape,
      type: "f32",
      seed: o.seed,
      tokenizerKv: toyTokenizerKv(vocab),
      extraKv: new Map([
        ["general.name", gguf.str(TOY_NAME)],
        [
          "general.description",
          gguf.str(
            "catrl's toy arithmetic model, trained from random initialisation on a synthetic corpus (catrl model train-toy); a designed task, not a general model",
          ),
        ],
        ["general.license", gguf.str("MIT")],
      ]),
      out: initPath,
    });
  }

  // --- tokens, through the engine's own prompt rendering, packed into windows
  const windows = await tokenizeAndPack(initPath, examples, TOY_RECIPE.shape.context_length, o.seed);
  const chunkFiles: string[] = [];
  const perChunk = Math.ceil(windows.length / TOY_RECIPE.chunks);
  for (let c = 0; c * perChunk < windows.length; c++) {
    const file = path.join(o.workDir, `windows-${c}.bin`);
    const part = windows.slice(c * perChunk, (c + 1) * perChunk);
    const flat = new Int32Array(part.length * (TOY_RECIPE.shape.context_length + 1));
    for (const [i, w] of part.entries()) flat.set(w, i * (TOY_RECIPE.shape.context_length + 1));
    await writeFile(file, new Uint8Array(flat.buffer));
    chunkFiles.push(file);
  }
  const totalSteps = windows.length;
  const tokens = windows.length * TOY_RECIPE.shape.context_length;
  log(
    `corpus: ${examples.length} conversations (${counts.solve} solve, ${counts.synthesize} synthesize), ${windows.length} windows, ${tokens} tokens, ${chunkFiles.length} chunks`,
  );

  // --- train (resuming after the last finished chunk)
  const state = existsSync(statePath)
    ? StateSchema.parse(JSON.parse(await readFile(statePath, "utf8")))
    : { chunksDone: 0, step: 0 };
  const t0 = performance.now();
  if (state.chunksDone < chunkFiles.length) {
    if (state.chunksDone > 0) log(`resuming after chunk ${state.chunksDone} (step ${state.step})`);
    const start = state.chunksDone > 0 ? ckptPath : initPath;
    // The binary patches weights into a copy of its input; resuming reads the checkpoint, so keep a
    // pristine copy to read from while the checkpoint is rewritten.
    const input = path.join(o.workDir, "input.gguf");
    await copyFile(start, input);
    await runFullTrain(
      [
        input,
        ckptPath,
        String(o.threads),
        String(TOY_RECIPE.lr),
        String(TOY_RECIPE.lrMin),
        String(TOY_RECIPE.warmupSteps),
        String(totalSteps),
        String(state.step),
        ...chunkFiles.slice(state.chunksDone),
      ],
      async (ev) => {
        if (ev.event === "progress") {
          log(
            `step ${ev.step}/${totalSteps} loss ${ev.loss.toFixed(4)} acc ${ev.accuracy.toFixed(3)} ${ev.tokens_per_s.toFixed(0)} tok/s`,
          );
        } else {
          state.chunksDone++;
          state.step = ev.step;
          await writeFileAtomic(statePath, JSON.stringify(state));
          log(
            `checkpoint after chunk ${state.chunksDone}/${chunkFiles.length}: mean loss ${ev.loss.toFixed(4)}`,
          );
        }
      },
    );
  }
  const trainSeconds = (performance.now() - t0) / 1000;

  // --- ship: the model, its recipe and statistics, the held-out problems
  const model = path.join(o.outDir, `${TOY_NAME}.gguf`);
  await copyFile(ckptPath, model);
  await writeFile(
    path.join(o.outDir, "test.jsonl"),
    `${testRows(test)
      .map((r) => JSON.stringify(r))
      .join("\n")}\n`,
  );
  await writeFile(
    path.join(o.outDir, "rl-prompts.jsonl"),
    `${rlPromptRows(o.seed, TOY_RECIPE.rlPrompts, heldOut)
      .map((r) => JSON.stringify(r))
      .join("\n")}\n`,
  );
  const recipe = path.join(o.outDir, "recipe.json");
  await writeFile(
    recipe,
    `${JSON.stringify(
      recipeRecord({
        o,
        stats,
        windows: windows.length,
        tokens,
        vocabSize: vocab.tokens.length,
        trainSeconds,
      }),
      null,
      2,
    )}\n`,
  );
  const withHash = JSON.parse(await readFile(recipe, "utf8"));
  withHash.model = { file: path.basename(model), sha256: await sha256File(model) };
  await writeFile(recipe, `${JSON.stringify(withHash, null, 2)}\n`);
  return { model, recipe };
}

function recipeRecord(r: {
  o: z.infer<typeof TrainToyOptionsSchema>;
  stats: CorpusStats;
  windows: number;
  tokens: number;
  vocabSize: number;
  trainSeconds: number;
}) {
  return {
    name: TOY_NAME,
    command: `catrl model train-toy --seed ${r.o.seed} --scale ${r.o.scale} --threads ${r.o.threads}`,
    seed: r.o.seed,
    scale: r.o.scale,
    recipe: TOY_RECIPE,
    parameters: countParameters({ ...TOY_RECIPE.shape, n_vocab: r.vocabSize }),
    vocab_size: r.vocabSize,
    corpus: { ...r.stats, windows: r.windows, trained_tokens: r.tokens },
    training: {
      method:
        "llama.cpp llama_opt_epoch (AdamW, full parameters except token_embd, which llama.cpp keeps frozen)",
      threads: r.o.threads,
      seconds_this_invocation: Math.round(r.trainSeconds),
      loss_mask: "none: every position is trained (llama_opt_epoch has no mask), prompts included",
    },
    versions: versions(),
    license: "MIT (model and corpus generated by this project; no third-party data or weights)",
  };
}

/**
 * Tokenizes every conversation as the engine will see it (the model's chat template rendered by
 * node-llama-cpp, then the assistant turn and its end-of-turn token) and packs whole conversations
 * into windows of contextLength + 1 tokens, longest first, padding the remainder with the end token
 * (so no conversation is cut, and a rollout never starts mid-example). Windows are shuffled.
 */
async function tokenizeAndPack(
  modelPath: string,
  examples: ToyExample[],
  contextLength: number,
  seed: number,
): Promise<Int32Array[]> {
  const llama = await loadLlama({ gpu: "cpu", threads: 1 });
  const model = await llama.loadModel({ modelPath });
  try {
    const renderer = new PromptRenderer(model);
    if (!renderer.hasChatTemplate) throw new Error(`${modelPath}: the toy vocabulary lost its chat template`);
    const eos = model.tokens.eos;
    if (eos == null) throw new Error(`${modelPath}: no end-of-sequence token`);
    const seqs = examples.map((e) => {
      const prompt = renderer.tokenize([{ role: "user", content: e.user }]);
      const answer = model.tokenize(e.assistant, false, "trimLeadingSpace");
      return [...prompt, ...answer, eos];
    });
    const tooLong = seqs.findIndex((s) => s.length > contextLength + 1);
    if (tooLong >= 0) {
      throw new UserError(
        `toy corpus: conversation ${tooLong} has ${seqs[tooLong].length} tokens, more than the ${contextLength}-token context`,
      );
    }
    // First-fit decreasing: long synthesis conversations first, solutions fill the gaps.
    const order = seqs.map((_, i) => i).sort((a, b) => seqs[b].length - seqs[a].length || a - b);
    const bins: { fill: number; parts: number[][] }[] = [];
    for (const i of order) {
      const s = seqs[i];
      let bin = bins.find((b) => b.fill + s.length <= contextLength + 1);
      if (!bin) {
        bin = { fill: 0, parts: [] };
        bins.push(bin);
      }
      bin.parts.push(s);
      bin.fill += s.length;
    }
    const rng = new Mulberry32(mix32(seed, 4));
    const windows = bins.map((b) => {
      const w = new Int32Array(contextLength + 1).fill(eos);
      let at = 0;
      for (const p of b.parts) {
        w.set(p, at);
        at += p.length;
      }
      return w;
    });
    for (let i = windows.length - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [windows[i], windows[j]] = [windows[j], windows[i]];
    }
    return windows;
  } finally {
    // The Llama instance is the process's shared one (loadLlama caches it): free only the model.
    await model.dispose();
  }
}

async function runFullTrain(
  args: string[],
  onEvent: (e: z.infer<typeof ProgressSchema>) => Promise<void>,
): Promise<void> {
  const bin = await fullTrainBinary();
  const child = spawn(bin, args, {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, FULL_TRAIN_BACKENDS: prebuiltLibDir() },
  });
  const lines = createInterface({ input: child.stdout });
  const done = new Promise<number>((resolve) => child.on("close", (code) => resolve(code ?? 1)));
  for await (const line of lines) {
    // A crash can print a backtrace on stdout too: pass anything that is not an event through.
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      process.stderr.write(`${line}\n`);
      continue;
    }
    const parsed = ProgressSchema.safeParse(raw);
    if (!parsed.success) throw new Error(`full-train printed an unexpected event: ${line}`);
    await onEvent(parsed.data);
  }
  const code = await done;
  if (code !== 0) throw new Error(`full-train exited with code ${code}`);
}
