import { mkdir } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import {
  encodeTensorData,
  GgmlType,
  type GgufKv,
  gguf,
  LLAMA_FTYPE,
  type TensorDataSource,
  writeGguf,
} from "../gguf/index.js";
import { UserError } from "../util/errors.js";
import { Mulberry32, mix32 } from "../util/rng.js";
import { parseOrThrow } from "../util/zod-error.js";
import { MODEL_PRESETS } from "./presets.js";
import {
  type ModelShape,
  ModelShapeSchema,
  type ModelTensor,
  modelTensors,
  type ResolvedModelShape,
  WEIGHT_TYPES,
  type WeightType,
} from "./shape.js";
import { readTokenizerKv, resolveTokenizerPath } from "./tokenizer.js";

export const WriteRandomModelOptionsSchema = z.object({
  preset: z.string().optional(),
  shape: ModelShapeSchema.optional(),
  type: z.enum(["f32", "f16", "q8_0"]),
  seed: z.number().int().min(0).max(0xffffffff),
  tokenizerFrom: z.string().optional(),
  out: z.string().min(1),
});

export type WriteRandomModelOptions = z.input<typeof WriteRandomModelOptionsSchema> & {
  /** A tokenizer made in code (every `tokenizer.*` key), used instead of copying one from a file. */
  tokenizerKv?: GgufKv;
  /** Metadata written last, over the defaults (a model that will be trained names itself here). */
  extraKv?: GgufKv;
  onProgress?: (p: { bytesWritten: number; bytesTotal: number }) => void;
};
export type WriteRandomModelResult = {
  path: string;
  bytes: number;
  parameters: number;
  shape: ResolvedModelShape;
};

/** Elements generated per chunk: a multiple of every block size, small enough that the 8B preset streams. */
const CHUNK = 1 << 20;

/**
 * Writes a GGUF of the given shape with random weights (noise, for speed and memory work only) and a real
 * tokenizer copied from another GGUF. Deterministic: the same options give a byte-identical file.
 */
export async function writeRandomModel(options: WriteRandomModelOptions): Promise<WriteRandomModelResult> {
  const opts = parseOrThrow(
    WriteRandomModelOptionsSchema,
    options,
    (i) => `writeRandomModel option ${i.field}: ${i.message}`,
    { root: "(root)" },
  );
  const preset = opts.preset === undefined ? undefined : MODEL_PRESETS[opts.preset];
  if (opts.preset !== undefined && !preset) {
    throw new UserError(`unknown preset "${opts.preset}"; known: ${Object.keys(MODEL_PRESETS).join(", ")}`);
  }
  const baseShape: ModelShape | undefined = opts.shape ?? preset?.shape;
  if (!baseShape) throw new UserError("writeRandomModel needs a preset or a shape");

  let tokenizerPath = opts.tokenizerFrom;
  if (tokenizerPath === undefined && !options.tokenizerKv) {
    if (!preset)
      throw new UserError("a custom shape needs tokenizerFrom (a GGUF to copy the tokenizer from)");
    tokenizerPath = await resolveTokenizerPath(preset.tokenizer);
  }
  const tokenizer = options.tokenizerKv
    ? { kv: options.tokenizerKv, nVocab: tokenizerTokenCount(options.tokenizerKv) }
    : await readTokenizerKv(tokenizerPath!);
  if (baseShape.n_vocab !== undefined && baseShape.n_vocab !== tokenizer.nVocab) {
    throw new UserError(
      `shape.n_vocab ${baseShape.n_vocab} differs from the ${tokenizer.nVocab} tokens of ${tokenizerPath ?? "the tokenizer given"}`,
    );
  }
  const shape: ResolvedModelShape = { ...baseShape, n_vocab: tokenizer.nVocab };
  const tensors = modelTensors(shape, opts.type);
  for (const t of tensors) {
    if (t.type === GgmlType.Q8_0 && t.ne[0] % 32 !== 0) {
      throw new UserError(
        `tensor ${t.name}: row length ${t.ne[0]} is not a multiple of 32, so it cannot be Q8_0`,
      );
    }
  }

  const kv = modelKv(shape, opts.type, preset?.name ?? "custom", opts.seed);
  for (const [k, v] of tokenizer.kv) kv.set(k, v);
  for (const [k, v] of options.extraKv ?? []) kv.set(k, v);

  const out = path.resolve(opts.out);
  await mkdir(path.dirname(out), { recursive: true });
  const { bytes } = await writeGguf({
    path: out,
    kv,
    tensors,
    data: randomData(tensors, opts.seed),
    onProgress: options.onProgress,
  });
  const parameters = tensors.reduce((s, t) => s + t.ne.reduce((a, b) => a * b, 1), 0);
  return { path: out, bytes, parameters, shape };
}

function tokenizerTokenCount(kv: GgufKv): number {
  const tokens = kv.get("tokenizer.ggml.tokens");
  if (!tokens || !Array.isArray(tokens.value) || tokens.value.length === 0)
    throw new UserError("tokenizerKv has no tokenizer.ggml.tokens array");
  return tokens.value.length;
}

function modelKv(shape: ResolvedModelShape, type: WeightType, name: string, seed: number): GgufKv {
  const a = shape.arch;
  const kv: GgufKv = new Map([
    ["general.architecture", gguf.str(a)],
    ["general.name", gguf.str(`catrl-random-${name}`)],
    [
      "general.description",
      gguf.str("random weights (noise) from catrl model make: for speed and memory work only"),
    ],
    ["general.file_type", gguf.u32(LLAMA_FTYPE[WEIGHT_TYPES[type]])],
    ["general.quantization_version", gguf.u32(2)],
    ["catrl.random_seed", gguf.u32(seed)],
    [`${a}.vocab_size`, gguf.u32(shape.n_vocab)],
    [`${a}.context_length`, gguf.u32(shape.context_length)],
    [`${a}.embedding_length`, gguf.u32(shape.n_embd)],
    [`${a}.block_count`, gguf.u32(shape.n_layer)],
    [`${a}.feed_forward_length`, gguf.u32(shape.n_ff)],
    [`${a}.attention.head_count`, gguf.u32(shape.n_head)],
    [`${a}.attention.head_count_kv`, gguf.u32(shape.n_head_kv)],
    [`${a}.attention.key_length`, gguf.u32(shape.head_dim)],
    [`${a}.attention.value_length`, gguf.u32(shape.head_dim)],
    [`${a}.attention.layer_norm_rms_epsilon`, gguf.f32(shape.rms_eps)],
    [`${a}.rope.freq_base`, gguf.f32(shape.rope_freq_base)],
    [`${a}.rope.dimension_count`, gguf.u32(shape.head_dim)],
  ]);
  // Keys llama.cpp's gemma3 loader reads (src/models/gemma3.cpp): without sliding_window every layer is global.
  if (shape.sliding_window !== undefined) {
    kv.set(`${a}.attention.sliding_window`, gguf.u32(shape.sliding_window));
    kv.set(`${a}.attention.sliding_window_pattern`, gguf.u32(shape.sliding_window_pattern ?? 6));
  }
  if (shape.rope_freq_base_swa !== undefined)
    kv.set(`${a}.rope.freq_base_swa`, gguf.f32(shape.rope_freq_base_swa));
  if (shape.rope_scale_linear !== undefined) {
    kv.set(`${a}.rope.scaling.type`, gguf.str("linear"));
    kv.set(`${a}.rope.scaling.factor`, gguf.f32(shape.rope_scale_linear));
  }
  return kv;
}

/** Uniform noise with the tensor's standard deviation; one PRNG stream per tensor, keyed by seed and index. */
function randomData(tensors: ModelTensor[], seed: number): TensorDataSource {
  return function* (layout, index) {
    const t = tensors[index];
    const n = t.ne.reduce((a, b) => a * b, 1);
    const rng = new Mulberry32(mix32(seed, index));
    const buf = new Float32Array(Math.min(CHUNK, n));
    for (let done = 0; done < n; done += buf.length) {
      const chunk = n - done < buf.length ? buf.subarray(0, n - done) : buf;
      if (t.init === "normal") rng.fillUniform(chunk, t.std * Math.sqrt(3));
      else chunk.fill(t.init === "ones" ? 1 : 0);
      yield encodeTensorData(layout.type, chunk);
    }
  };
}
