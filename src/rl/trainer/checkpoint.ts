import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { UserError } from "../../util/errors.js";
import type { NativeState } from "./native.js";

/**
 * A checkpoint directory: checkpoint.json (this schema) and state.bin, the float32 little-endian
 * concatenation of every LoRA A, then every B, then the AdamW first moments (A, B) and second moments
 * (A, B), in the order of `tensors`. Together with the step count and RNG state, resuming gives the
 * same next step as not stopping.
 */
export const CheckpointMetaSchema = z.object({
  format: z.literal("catrl-lora-checkpoint"),
  version: z.literal(1),
  model: z.object({ path: z.string(), bytes: z.number().int(), arch: z.string() }),
  lora: z.object({ rank: z.number().int(), alpha: z.number(), targets: z.array(z.string()) }),
  seed: z.number().int(),
  step: z.number().int().nonnegative(),
  skippedSteps: z.number().int().nonnegative(),
  rngState: z.array(z.number().int()).length(4),
  adamw: z.object({ beta1: z.number(), beta2: z.number(), eps: z.number() }),
  tensors: z.array(z.object({ base: z.string(), nIn: z.number().int(), nOut: z.number().int() })),
  stateFile: z.string(),
  createdAt: z.string(),
});
export type CheckpointMeta = z.infer<typeof CheckpointMetaSchema>;

const KINDS = ["a", "b", "mA", "mB", "vA", "vB"] as const;

export async function writeCheckpoint(dir: string, meta: CheckpointMeta, state: NativeState): Promise<void> {
  await mkdir(dir, { recursive: true });
  const parts: Buffer[] = [];
  for (const k of KINDS)
    for (const arr of state[k]) parts.push(Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength));
  const bin = path.join(dir, meta.stateFile);
  // write-then-rename so a crash never leaves a half-written checkpoint that looks complete
  await writeFile(`${bin}.tmp`, Buffer.concat(parts));
  await rename(`${bin}.tmp`, bin);
  const json = path.join(dir, "checkpoint.json");
  await writeFile(`${json}.tmp`, `${JSON.stringify(meta, null, 2)}\n`);
  await rename(`${json}.tmp`, json);
}

export async function readCheckpoint(dir: string): Promise<{ meta: CheckpointMeta; state: NativeState }> {
  const json = path.join(dir, "checkpoint.json");
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(json, "utf8"));
  } catch (e) {
    throw new UserError(`${json}: cannot read checkpoint (${e instanceof Error ? e.message : e})`);
  }
  const parsed = CheckpointMetaSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new UserError(`${json}: ${i?.path.join(".") || "checkpoint"}: ${i?.message}`);
  }
  const meta = parsed.data;
  const buf = await readFile(path.join(dir, meta.stateFile));
  const sizes = {
    a: meta.tensors.map((t) => t.nIn * meta.lora.rank),
    b: meta.tensors.map((t) => t.nOut * meta.lora.rank),
  };
  const total = 3 * (sizes.a.reduce((x, y) => x + y, 0) + sizes.b.reduce((x, y) => x + y, 0));
  if (buf.byteLength !== total * 4)
    throw new UserError(
      `${path.join(dir, meta.stateFile)}: expected ${total * 4} bytes, found ${buf.byteLength}`,
    );
  // copy into an aligned buffer (readFile's Buffer may share a pool with an odd offset)
  const all = new Float32Array(total);
  new Uint8Array(all.buffer).set(buf);
  let off = 0;
  const take = (n: number) => {
    const v = all.slice(off, off + n);
    off += n;
    return v;
  };
  const state = {} as NativeState;
  for (const k of KINDS) state[k] = (k.endsWith("A") || k === "a" ? sizes.a : sizes.b).map(take);
  return { meta, state };
}
