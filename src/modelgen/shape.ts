import { z } from "zod";
import { GgmlType } from "../gguf/index.js";

/**
 * The shape of a decoder-only transformer in llama.cpp's terms. `n_vocab` comes from the tokenizer the
 * model is written with; when given it must match.
 */
export const ModelShapeSchema = z
  .object({
    arch: z.enum(["llama", "qwen2", "qwen3", "gemma3"]),
    n_vocab: z.number().int().positive().optional(),
    n_embd: z.number().int().positive(),
    n_layer: z.number().int().positive(),
    n_head: z.number().int().positive(),
    n_head_kv: z.number().int().positive(),
    head_dim: z.number().int().positive(),
    n_ff: z.number().int().positive(),
    rope_freq_base: z.number().positive(),
    rms_eps: z.number().positive(),
    context_length: z.number().int().positive(),
    tied_embeddings: z.boolean(),
    /** gemma3: local (sliding-window) attention, as llama.cpp's gemma3 loader reads it. */
    sliding_window: z.number().int().positive().optional(),
    /** gemma3: every n-th layer is global, the others local (llama.cpp's default for gemma3 is 6). */
    sliding_window_pattern: z.number().int().positive().optional(),
    /** gemma3: the local layers' RoPE base (the global layers take rope_freq_base). */
    rope_freq_base_swa: z.number().positive().optional(),
    /** Linear RoPE scaling factor of the global layers (Gemma 3 4B: 8); the local layers take none. */
    rope_scale_linear: z.number().positive().optional(),
  })
  .refine((s) => s.n_head % s.n_head_kv === 0, {
    message: "n_head must be a multiple of n_head_kv",
    path: ["n_head_kv"],
  })
  .refine((s) => s.head_dim % 2 === 0, { message: "head_dim must be even (RoPE)", path: ["head_dim"] })
  .refine((s) => s.arch === "gemma3" || s.sliding_window === undefined, {
    message: "sliding_window is only written for arch gemma3",
    path: ["sliding_window"],
  });
export type ModelShape = z.infer<typeof ModelShapeSchema>;
export type ResolvedModelShape = ModelShape & { n_vocab: number };

export type WeightType = "f32" | "f16" | "q8_0";
export const WEIGHT_TYPES: Record<WeightType, GgmlType> = {
  f32: GgmlType.F32,
  f16: GgmlType.F16,
  q8_0: GgmlType.Q8_0,
};

export type InitKind = "ones" | "zeros" | "normal";
export type ModelTensor = { name: string; ne: number[]; type: GgmlType; init: InitKind; std: number };

const INIT_STD = 0.02;

/**
 * Tensors llama.cpp's loader expects for each architecture (src/llama-model.cpp, load_tensors). As
 * llama-quantize does for a uniform file type, every matrix (token_embd and output included) takes the
 * weight type; norms and biases stay F32.
 */
export function modelTensors(shape: ResolvedModelShape, weightType: WeightType): ModelTensor[] {
  const w = WEIGHT_TYPES[weightType];
  const { n_embd, n_ff, n_vocab, head_dim } = shape;
  const qDim = shape.n_head * head_dim;
  const kvDim = shape.n_head_kv * head_dim;
  // Residual-branch outputs scaled down with depth (GPT-2 style) so the residual stream stays O(1).
  const outStd = INIT_STD / Math.sqrt(2 * shape.n_layer);
  const mat = (name: string, nIn: number, nOut: number, std = INIT_STD): ModelTensor => ({
    name,
    ne: [nIn, nOut],
    type: w,
    init: "normal",
    std,
  });
  const vec = (name: string, n: number, init: InitKind): ModelTensor => ({
    name,
    ne: [n],
    type: GgmlType.F32,
    init,
    std: 0,
  });

  const out: ModelTensor[] = [mat("token_embd.weight", n_embd, n_vocab)];
  for (let i = 0; i < shape.n_layer; i++) {
    const p = `blk.${i}.`;
    out.push(vec(`${p}attn_norm.weight`, n_embd, "ones"));
    out.push(mat(`${p}attn_q.weight`, n_embd, qDim));
    out.push(mat(`${p}attn_k.weight`, n_embd, kvDim));
    out.push(mat(`${p}attn_v.weight`, n_embd, kvDim));
    if (shape.arch === "qwen2") {
      out.push(vec(`${p}attn_q.bias`, qDim, "zeros"));
      out.push(vec(`${p}attn_k.bias`, kvDim, "zeros"));
      out.push(vec(`${p}attn_v.bias`, kvDim, "zeros"));
    }
    if (shape.arch === "qwen3" || shape.arch === "gemma3") {
      out.push(vec(`${p}attn_q_norm.weight`, head_dim, "ones"));
      out.push(vec(`${p}attn_k_norm.weight`, head_dim, "ones"));
    }
    out.push(mat(`${p}attn_output.weight`, qDim, n_embd, outStd));
    // gemma3 normalises each branch's output before the residual add (llama.cpp's ATTN_POST_NORM, FFN_POST_NORM)
    if (shape.arch === "gemma3") out.push(vec(`${p}post_attention_norm.weight`, n_embd, "ones"));
    out.push(vec(`${p}ffn_norm.weight`, n_embd, "ones"));
    out.push(mat(`${p}ffn_gate.weight`, n_embd, n_ff));
    out.push(mat(`${p}ffn_up.weight`, n_embd, n_ff));
    out.push(mat(`${p}ffn_down.weight`, n_ff, n_embd, outStd));
    if (shape.arch === "gemma3") out.push(vec(`${p}post_ffw_norm.weight`, n_embd, "ones"));
  }
  out.push(vec("output_norm.weight", n_embd, "ones"));
  if (!shape.tied_embeddings) out.push(mat("output.weight", n_embd, n_vocab));
  return out;
}

export function countParameters(shape: ResolvedModelShape): number {
  let n = 0;
  for (const t of modelTensors(shape, "f32")) n += t.ne.reduce((a, b) => a * b, 1);
  return n;
}
