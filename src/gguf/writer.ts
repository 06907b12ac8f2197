import { open, rename, rm } from "node:fs/promises";
import { ByteSink } from "./bytes.js";
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, type GgmlType, tensorBytes } from "./constants.js";
import type { GgufKv } from "./value.js";

export type TensorSpec = {
  name: string;
  /** ggml order: ne[0] is the row length (the contiguous dimension). */
  ne: number[];
  type: GgmlType;
};
export type TensorLayout = TensorSpec & {
  /** Offset from the start of the data section. */
  offset: number;
  bytes: number;
};
export type GgufLayout = {
  header: Buffer;
  tensors: TensorLayout[];
  alignment: number;
  /** Header plus padding: where tensor data starts in the file. */
  dataOffset: number;
  totalBytes: number;
};

const align = (n: number, a: number): number => Math.ceil(n / a) * a;

export function alignmentOf(kv: GgufKv): number {
  const v = kv.get("general.alignment");
  const a = v ? Number(v.value) : GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(a) || a <= 0 || (a & (a - 1)) !== 0)
    throw new Error(`general.alignment ${a} is not a power of 2`);
  return a;
}

/** Serializes the header and places every tensor, without touching tensor data. */
export function layoutGguf(kv: GgufKv, tensors: readonly TensorSpec[]): GgufLayout {
  const alignment = alignmentOf(kv);
  const names = new Set<string>();
  const placed: TensorLayout[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`duplicate tensor name ${t.name}`);
    names.add(t.name);
    if (t.ne.length < 1 || t.ne.length > 4) throw new Error(`tensor ${t.name} has ${t.ne.length} dimensions`);
    const bytes = tensorBytes(t.type, t.ne);
    placed.push({ ...t, offset, bytes });
    offset = align(offset + bytes, alignment);
  }

  const sink = new ByteSink();
  sink.u32(GGUF_MAGIC);
  sink.u32(GGUF_VERSION);
  sink.u64(placed.length);
  sink.u64(kv.size);
  for (const [key, value] of kv) {
    sink.string(key);
    sink.value(value);
  }
  for (const t of placed) {
    sink.string(t.name);
    sink.u32(t.ne.length);
    for (const n of t.ne) sink.u64(n);
    sink.u32(t.type);
    sink.u64(t.offset);
  }
  const dataOffset = align(sink.length, alignment);
  sink.zeros(dataOffset - sink.length);
  return { header: sink.toBuffer(), tensors: placed, alignment, dataOffset, totalBytes: dataOffset + offset };
}

export type TensorDataSource = (tensor: TensorLayout, index: number) => Iterable<Uint8Array>;

/**
 * Writes a GGUF file, pulling each tensor's bytes from `data` chunk by chunk so that no tensor is ever
 * whole in memory. The file appears at `path` only when complete (written beside it, then renamed).
 */
export async function writeGguf(opts: {
  path: string;
  kv: GgufKv;
  tensors: readonly TensorSpec[];
  data: TensorDataSource;
  onProgress?: (p: { bytesWritten: number; bytesTotal: number }) => void;
}): Promise<{ bytes: number; layout: GgufLayout }> {
  const layout = layoutGguf(opts.kv, opts.tensors);
  const tmp = `${opts.path}.${process.pid}.tmp`;
  const fh = await open(tmp, "w");
  try {
    let written = 0;
    const put = async (buf: Uint8Array): Promise<void> => {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off, written + off);
        off += bytesWritten;
      }
      written += buf.length;
      opts.onProgress?.({ bytesWritten: written, bytesTotal: layout.totalBytes });
    };
    await put(layout.header);
    for (const [i, t] of layout.tensors.entries()) {
      const start = written;
      for (const chunk of opts.data(t, i)) await put(chunk);
      const got = written - start;
      if (got !== t.bytes)
        throw new Error(`tensor ${t.name}: data source gave ${got} bytes, expected ${t.bytes}`);
      const end =
        i + 1 < layout.tensors.length ? layout.dataOffset + layout.tensors[i + 1].offset : layout.totalBytes;
      if (end > written) await put(Buffer.alloc(end - written));
    }
    await fh.close();
    await rename(tmp, opts.path);
    return { bytes: written, layout };
  } catch (e) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  }
}
