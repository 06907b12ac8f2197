import { GgufValueType, readGgufHeader } from "../../src/gguf/index.js";
import { ModelShapeSchema, type ResolvedModelShape } from "../../src/modelgen/index.js";
import { UserError } from "../../src/util/errors.js";

/**
 * A GGUF's transformer shape, read from its header, so that an anchor framework builds exactly the
 * model the native trainer loads (whatever file `--model` names, not only our presets).
 */
export async function ggufShape(file: string): Promise<ResolvedModelShape> {
  const h = await readGgufHeader(file);
  const get = (key: string): number | string | boolean | undefined => {
    const v = h.kv.get(key);
    if (!v || v.type === GgufValueType.ARRAY) return undefined;
    return typeof v.value === "bigint" ? Number(v.value) : v.value;
  };
  const arch = String(get("general.architecture") ?? "");
  const num = (key: string, fallback?: number): number => {
    const v = get(`${arch}.${key}`);
    if (typeof v === "number") return v;
    if (fallback !== undefined) return fallback;
    throw new UserError(`${file}: GGUF metadata ${arch}.${key} is missing`);
  };
  const embd = h.tensors.find((t) => t.name === "token_embd.weight");
  if (!embd) throw new UserError(`${file}: no token_embd.weight tensor`);
  const nEmbd = num("embedding_length");
  const nHead = num("attention.head_count");
  const parsed = ModelShapeSchema.safeParse({
    arch,
    n_vocab: embd.ne[1],
    n_embd: nEmbd,
    n_layer: num("block_count"),
    n_head: nHead,
    n_head_kv: num("attention.head_count_kv", nHead),
    head_dim: num("attention.key_length", nEmbd / nHead),
    n_ff: num("feed_forward_length"),
    rope_freq_base: num("rope.freq_base", 10000),
    rms_eps: num("attention.layer_norm_rms_epsilon"),
    context_length: num("context_length"),
    tied_embeddings: !h.tensors.some((t) => t.name === "output.weight"),
  });
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new UserError(`${file}: model shape ${i.path.join(".")}: ${i.message}`);
  }
  return { ...parsed.data, n_vocab: embd.ne[1] };
}
