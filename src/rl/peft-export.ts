import { mkdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../util/atomic-write.js";
import { encodeSafetensors, type F32Tensor } from "../util/safetensors.js";
import type { Trainer } from "./trainer/index.js";

/**
 * Every adapter also in PEFT's format, beside its llama.cpp GGUF, so that vLLM (`--enable-lora`,
 * runtime loading) and transformers + peft serve or load the trained policy: a folder with
 * `adapter_config.json` and `adapter_model.safetensors`, tensors named as Hugging Face names the base's
 * modules (`base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`).
 *
 * Shapes carry over as they are: the GGUF's lora_a (ggml ne [n_in, r]) is row-major (r, n_in), PEFT's
 * lora_A.weight; lora_b (ne [r, n_out]) is (n_out, r), lora_B.weight. Scaling is the same (alpha / r).
 * One difference: llama.cpp's converter permutes the rows of Llama's q_proj and k_proj for its RoPE
 * layout (convert_hf_to_gguf.py `LlamaModel.permute`), so B's rows of those two go back through the
 * inverse permutation. Qwen 2 / 3 are converted without it.
 */

/** GGUF tensor name (after `blk.N.`) -> Hugging Face module under `model.layers.N.`. */
const HF_MODULE = {
  "attn_q.weight": "self_attn.q_proj",
  "attn_k.weight": "self_attn.k_proj",
  "attn_v.weight": "self_attn.v_proj",
  "attn_output.weight": "self_attn.o_proj",
  "ffn_gate.weight": "mlp.gate_proj",
  "ffn_up.weight": "mlp.up_proj",
  "ffn_down.weight": "mlp.down_proj",
} as const;
type GgufTensor = keyof typeof HF_MODULE;

export const PEFT_FILES = { config: "adapter_config.json", weights: "adapter_model.safetensors" } as const;

/** The PEFT folder written beside an adapter GGUF: `step-000003.gguf` -> `step-000003.peft/`. */
export function peftDirFor(ggufFile: string): string {
  return ggufFile.replace(/\.gguf$/, "") + ".peft";
}

export type PeftSource = {
  /** The trainer's architectures; only llama's q/k rows are permuted by llama.cpp's converter (not gemma3's or qwen's). */
  arch: "llama" | "qwen2" | "qwen3" | "gemma3";
  nHead: number;
  nHeadKv: number;
  rank: number;
  alpha: number;
  /** In the trainer's order: GGUF base tensor name and shape. */
  tensors: { base: string; nIn: number; nOut: number }[];
  a: Float32Array[];
  b: Float32Array[];
  /** Recorded as base_model_name_or_path. */
  baseModel: string;
};

function hfName(base: string): { layer: number; module: string } {
  const m = /^blk\.(\d+)\.(.+)$/.exec(base);
  const module = m ? HF_MODULE[m[2] as GgufTensor] : undefined;
  if (!m || !module) throw new Error(`${base}: no Hugging Face name known for this LoRA target`);
  return { layer: Number(m[1]), module };
}

/** Rows of a (n_out, r) matrix from llama.cpp's RoPE order back to Hugging Face's (inverse of `permute`). */
export function unpermuteRows(b: Float32Array, nOut: number, r: number, nHeads: number): Float32Array {
  const hd = nOut / nHeads;
  const out = new Float32Array(b.length);
  for (let h = 0; h < nHeads; h++)
    for (let j = 0; j < hd / 2; j++)
      for (let t = 0; t < 2; t++) {
        const from = (h * hd + 2 * j + t) * r;
        const to = (h * hd + t * (hd / 2) + j) * r;
        out.set(b.subarray(from, from + r), to);
      }
  return out;
}

export function peftTensors(src: PeftSource): F32Tensor[] {
  const out: F32Tensor[] = [];
  src.tensors.forEach((t, i) => {
    const { layer, module } = hfName(t.base);
    const prefix = `base_model.model.model.layers.${layer}.${module}`;
    let b = src.b[i];
    if (src.arch === "llama" && module === "self_attn.q_proj")
      b = unpermuteRows(b, t.nOut, src.rank, src.nHead);
    if (src.arch === "llama" && module === "self_attn.k_proj")
      b = unpermuteRows(b, t.nOut, src.rank, src.nHeadKv);
    out.push({ name: `${prefix}.lora_A.weight`, shape: [src.rank, t.nIn], data: src.a[i] });
    out.push({ name: `${prefix}.lora_B.weight`, shape: [t.nOut, src.rank], data: b });
  });
  return out;
}

export function peftConfig(src: PeftSource): Record<string, unknown> {
  const modules = [...new Set(src.tensors.map((t) => hfName(t.base).module.split(".")[1]))];
  return {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: src.baseModel,
    r: src.rank,
    lora_alpha: src.alpha,
    lora_dropout: 0,
    target_modules: modules,
    bias: "none",
    fan_in_fan_out: false,
    use_rslora: false,
    use_dora: false,
    init_lora_weights: true,
    inference_mode: true,
    modules_to_save: null,
    layers_to_transform: null,
  };
}

/** Writes `dir` (adapter_config.json + adapter_model.safetensors) whole or not at all. */
export async function writePeftAdapter(dir: string, src: PeftSource): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await writeFileAtomic(
    path.join(tmp, PEFT_FILES.weights),
    encodeSafetensors(peftTensors(src), { format: "pt" }),
  );
  await writeFileAtomic(path.join(tmp, PEFT_FILES.config), `${JSON.stringify(peftConfig(src), null, 2)}\n`);
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
}

/** The trainer's current LoRA as PEFT source (read through its public state API). */
export function peftSourceOf(trainer: Trainer): PeftSource {
  const state = trainer.getState();
  return {
    arch: trainer.info.arch,
    nHead: trainer.info.nHead,
    nHeadKv: trainer.info.nHeadKv,
    rank: trainer.options.lora.rank,
    alpha: trainer.options.lora.alpha,
    tensors: trainer.info.lora,
    a: state.a,
    b: state.b,
    baseModel: path.resolve(trainer.options.modelPath),
  };
}

/** The adapter in both formats: llama.cpp's GGUF at `file` and PEFT's folder beside it. */
export async function exportAdapterFiles(trainer: Trainer, file: string): Promise<void> {
  await trainer.exportAdapter(file);
  await writePeftAdapter(peftDirFor(file), peftSourceOf(trainer));
}

/** Removes an adapter in both formats. */
export async function removeAdapterFiles(file: string): Promise<void> {
  await rm(file, { force: true });
  await rm(peftDirFor(file), { recursive: true, force: true });
}
