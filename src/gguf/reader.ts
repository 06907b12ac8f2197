import { open } from "node:fs/promises";
import { GGUF_MAGIC, GgufValueType } from "./constants.js";
import type { GgufKv, GgufScalar, GgufScalarType, GgufValue } from "./value.js";

export type GgufTensorInfo = { name: string; ne: number[]; type: number; offset: number };
export type GgufHeader = { version: number; kv: GgufKv; tensors: GgufTensorInfo[] };

/**
 * Reads a GGUF header (metadata and tensor infos) keeping every value's exact type and full arrays.
 * node-llama-cpp's readGgufFileInfo returns plain JS values, which loses the int/uint/float distinction
 * llama.cpp checks when the values are written back.
 */
export async function readGgufHeader(path: string): Promise<GgufHeader> {
  const fh = await open(path, "r");
  try {
    const r = new ChunkReader(async (buf, pos) => (await fh.read(buf, 0, buf.length, pos)).bytesRead);
    if ((await r.u32()) !== GGUF_MAGIC) throw new Error(`${path}: not a GGUF file (bad magic)`);
    const version = await r.u32();
    if (version !== 2 && version !== 3) throw new Error(`${path}: unsupported GGUF version ${version}`);
    const nTensors = await r.u64n();
    const nKv = await r.u64n();
    const kv: GgufKv = new Map();
    for (let i = 0; i < nKv; i++) {
      const key = await r.string();
      kv.set(key, await r.value());
    }
    const tensors: GgufTensorInfo[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = await r.string();
      const nDims = await r.u32();
      const ne: number[] = [];
      for (let d = 0; d < nDims; d++) ne.push(await r.u64n());
      tensors.push({ name, ne, type: await r.u32(), offset: await r.u64n() });
    }
    return { version, kv, tensors };
  } finally {
    await fh.close();
  }
}

class ChunkReader {
  private buf = Buffer.alloc(0);
  private pos = 0;
  private filePos = 0;

  constructor(private readonly readAt: (buf: Buffer, pos: number) => Promise<number>) {}

  private async need(n: number): Promise<void> {
    if (this.pos + n <= this.buf.length) return;
    const rest = this.buf.subarray(this.pos);
    const chunk = Buffer.allocUnsafe(Math.max(n, 1 << 20));
    const got = await this.readAt(chunk, this.filePos);
    this.filePos += got;
    this.buf = Buffer.concat([rest, chunk.subarray(0, got)]);
    this.pos = 0;
    if (this.buf.length < n) throw new Error("unexpected end of GGUF file");
  }

  async u32(): Promise<number> {
    await this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  async u64n(): Promise<number> {
    await this.need(8);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`GGUF count ${v} too large`);
    return Number(v);
  }

  async string(): Promise<string> {
    const len = await this.u64n();
    await this.need(len);
    const s = this.buf.toString("utf8", this.pos, this.pos + len);
    this.pos += len;
    return s;
  }

  async scalar(type: GgufScalarType): Promise<GgufScalar> {
    if (type === GgufValueType.STRING) return this.string();
    const size = SCALAR_SIZE[type];
    if (size === undefined) throw new Error(`unknown GGUF value type ${type}`);
    await this.need(size);
    const b = this.buf;
    const p = this.pos;
    this.pos += size;
    switch (type) {
      case GgufValueType.UINT8:
        return b.readUInt8(p);
      case GgufValueType.INT8:
        return b.readInt8(p);
      case GgufValueType.UINT16:
        return b.readUInt16LE(p);
      case GgufValueType.INT16:
        return b.readInt16LE(p);
      case GgufValueType.UINT32:
        return b.readUInt32LE(p);
      case GgufValueType.INT32:
        return b.readInt32LE(p);
      case GgufValueType.FLOAT32:
        return b.readFloatLE(p);
      case GgufValueType.FLOAT64:
        return b.readDoubleLE(p);
      case GgufValueType.BOOL:
        return b.readUInt8(p) !== 0;
      case GgufValueType.UINT64:
        return b.readBigUInt64LE(p);
      default:
        return b.readBigInt64LE(p);
    }
  }

  async value(): Promise<GgufValue> {
    const type = (await this.u32()) as GgufValueType;
    if (type !== GgufValueType.ARRAY) return { type, value: await this.scalar(type) };
    const itemType = (await this.u32()) as GgufScalarType;
    if (itemType === (GgufValueType.ARRAY as number)) throw new Error("nested GGUF arrays are not supported");
    const n = await this.u64n();
    const value: GgufScalar[] = new Array(n);
    for (let i = 0; i < n; i++) value[i] = await this.scalar(itemType);
    return { type, itemType, value };
  }
}

const SCALAR_SIZE: Partial<Record<GgufValueType, number>> = {
  [GgufValueType.UINT8]: 1,
  [GgufValueType.INT8]: 1,
  [GgufValueType.UINT16]: 2,
  [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4,
  [GgufValueType.INT32]: 4,
  [GgufValueType.FLOAT32]: 4,
  [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8,
  [GgufValueType.INT64]: 8,
  [GgufValueType.FLOAT64]: 8,
};
