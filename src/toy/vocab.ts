import { type GgufKv, GgufValueType, gguf } from "../gguf/index.js";

/**
 * A SentencePiece-style ("llama") vocabulary made for the toy task, so the synthesis template's ~130
 * words cost ~150 tokens instead of stories260K's 495 and a digit is always one token. llama.cpp's SPM
 * tokenizer merges adjacent pieces only when the merged text is itself a token, highest score first;
 * every prefix of every word is a token (with and without the ▁ space marker) and scores grow with
 * length, so a known word always merges into one token and anything else falls back to characters,
 * then to the 256 byte tokens (newlines are <0x0A>, as in llama's own vocabularies).
 */
export const SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"] as const;
const UNK = 0;
const BOS = 1;
/** ChatML's turn end doubles as end of generation, so a rollout stops where its turn ends. */
const EOS = 4;
const TYPE = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;
const SPACE = "\u2581";

/** ChatML, the template node-llama-cpp recognises as its ChatMLChatWrapper. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export type ToyVocab = { tokens: string[]; scores: number[]; types: number[] };

/** The vocabulary covering every word of `texts` (deterministic: sorted, no randomness). */
export function buildToyVocab(texts: string[]): ToyVocab {
  const tokens: string[] = [...SPECIAL_TOKENS];
  const types: number[] = [TYPE.unknown, TYPE.control, TYPE.control, TYPE.control, TYPE.control];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TYPE.byte);
  }
  const pieces = new Set<string>();
  // Every printable ASCII character on its own, and the space marker.
  for (let c = 0x21; c < 0x7f; c++) pieces.add(String.fromCharCode(c));
  pieces.add(SPACE);
  for (const text of texts) {
    for (const m of text.matchAll(/[A-Za-z]+/g)) {
      const w = m[0];
      // A word after a space is written "▁word"; at a line start or after a symbol ("\\boxed"), bare.
      const before = m.index === 0 ? "" : text[m.index - 1];
      if (before === "" || before === " ")
        for (let k = 1; k <= w.length; k++) pieces.add(SPACE + w.slice(0, k));
      if (before !== " ") for (let k = 2; k <= w.length; k++) pieces.add(w.slice(0, k));
    }
  }
  // Also the markdown heading markers the template and the prompts use.
  for (const p of ["#", "##", `${SPACE}#`, `${SPACE}##`]) pieces.add(p);
  const sorted = [...pieces].sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
  const scores = tokens.map(() => 0);
  for (const p of sorted) {
    tokens.push(p);
    types.push(TYPE.normal);
    scores.push(p.length);
  }
  return { tokens, scores, types };
}

/** The `tokenizer.*` metadata of a GGUF using this vocabulary, with a ChatML chat template. */
export function toyTokenizerKv(vocab: ToyVocab): GgufKv {
  return new Map([
    ["tokenizer.ggml.model", gguf.str("llama")],
    ["tokenizer.ggml.tokens", gguf.arr(GgufValueType.STRING, vocab.tokens)],
    ["tokenizer.ggml.scores", gguf.arr(GgufValueType.FLOAT32, vocab.scores)],
    ["tokenizer.ggml.token_type", gguf.arr(GgufValueType.INT32, vocab.types)],
    ["tokenizer.ggml.unknown_token_id", gguf.u32(UNK)],
    ["tokenizer.ggml.bos_token_id", gguf.u32(BOS)],
    ["tokenizer.ggml.eos_token_id", gguf.u32(EOS)],
    ["tokenizer.ggml.add_bos_token", gguf.bool(true)],
    ["tokenizer.ggml.add_eos_token", gguf.bool(false)],
    ["tokenizer.chat_template", gguf.str(CHATML_TEMPLATE)],
  ]);
}
