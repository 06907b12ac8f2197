import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { gguf, writeGguf } from "../../src/gguf/index.js";
import { MODEL_PRESETS, readTokenizerKv, writeRandomModel } from "../../src/modelgen/index.js";
import { llamaCppSource } from "../../src/modelgen/tokenizer.js";

/**
 * A tiny random-weight qwen3 model that carries Qwen 3's real vocabulary and chat template (the
 * tokenizer-only GGUF and the template file from the llama.cpp source node-llama-cpp bundles), so chat
 * rendering, `<think>` handling and special tokens behave as on Qwen 3, without a 0.6B download.
 */
export async function makeQwen3TemplateModel(): Promise<string> {
  const src = await llamaCppSource();
  const template = path.join(src, "models/templates/Qwen-Qwen3-0.6B.jinja");
  if (!existsSync(template)) throw new Error(`${template}: Qwen 3 chat template not in the llama.cpp source`);
  const dir = mkdtempSync(path.join(os.tmpdir(), "catrl-qwen3-tpl-"));
  const { kv } = await readTokenizerKv(path.join(src, "models/ggml-vocab-qwen2.gguf"));
  kv.set("tokenizer.chat_template", gguf.str(readFileSync(template, "utf8")));
  const tokenizer = path.join(dir, "tokenizer.gguf");
  await writeGguf({ path: tokenizer, kv, tensors: [], data: () => [] });
  const out = path.join(dir, "qwen3-template.gguf");
  await writeRandomModel({
    shape: { ...MODEL_PRESETS.tiny.shape, arch: "qwen3", tied_embeddings: true, context_length: 4096 },
    type: "q8_0",
    seed: 3,
    tokenizerFrom: tokenizer,
    out,
  });
  return out;
}
