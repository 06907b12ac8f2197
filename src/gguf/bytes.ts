import { GgufValueType } from "./constants.js";
import type { GgufScalar, GgufScalarType, GgufValue } from "./value.js";

/** Appends little-endian GGUF primitives to a list of buffers (headers can be megabytes: 150k-token vocabularies). */
export class ByteSink {
  private readonly parts: Buffer[] = [];
  private cur = Buffer.allocUnsafe(1 << 16);
  private pos = 0;
  length = 0;

  private room(n: number): Buffer {
    if (this.pos + n > this.cur.length) {
      this.flush();
      this.cur = Buffer.allocUnsafe(Math.max(1 << 16, n));
    }
    this.length += n;
    return this.cur;
  }

  private flush(): void {
    if (this.pos > 0) this.parts.push(this.cur.subarray(0, this.pos));
    this.pos = 0;
  }

  u8(v: number): void {
    this.room(1).writeUInt8(v, this.pos);
    this.pos += 1;
  }
  i8(v: number): void {
    this.room(1).writeInt8(v, this.pos);
    this.pos += 1;
  }
  u16(v: number): void {
    this.room(2).writeUInt16LE(v, this.pos);
    this.pos += 2;
  }
  i16(v: number): void {
    this.room(2).writeInt16LE(v, this.pos);
    this.pos += 2;
  }
  u32(v: number): void {
    this.room(4).writeUInt32LE(v, this.pos);
    this.pos += 4;
  }
  i32(v: number): void {
    this.room(4).writeInt32LE(v, this.pos);
    this.pos += 4;
  }
  f32(v: number): void {
    this.room(4).writeFloatLE(v, this.pos);
    this.pos += 4;
  }
  f64(v: number): void {
    this.room(8).writeDoubleLE(v, this.pos);
    this.pos += 8;
  }
  u64(v: number | bigint): void {
    this.room(8).writeBigUInt64LE(BigInt(v), this.pos);
    this.pos += 8;
  }
  i64(v: number | bigint): void {
    this.room(8).writeBigInt64LE(BigInt(v), this.pos);
    this.pos += 8;
  }
  string(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.room(b.length);
    b.copy(this.cur, this.pos);
    this.pos += b.length;
  }
  zeros(n: number): void {
    this.room(n).fill(0, this.pos, this.pos + n);
    this.pos += n;
  }

  scalar(type: GgufScalarType, v: GgufScalar): void {
    switch (type) {
      case GgufValueType.UINT8:
        this.u8(Number(v));
        return;
      case GgufValueType.INT8:
        this.i8(Number(v));
        return;
      case GgufValueType.UINT16:
        this.u16(Number(v));
        return;
      case GgufValueType.INT16:
        this.i16(Number(v));
        return;
      case GgufValueType.UINT32:
        this.u32(Number(v));
        return;
      case GgufValueType.INT32:
        this.i32(Number(v));
        return;
      case GgufValueType.FLOAT32:
        this.f32(Number(v));
        return;
      case GgufValueType.FLOAT64:
        this.f64(Number(v));
        return;
      case GgufValueType.BOOL:
        this.u8(v ? 1 : 0);
        return;
      case GgufValueType.STRING:
        this.string(String(v));
        return;
      case GgufValueType.UINT64:
        this.u64(typeof v === "bigint" ? v : BigInt(Number(v)));
        return;
      case GgufValueType.INT64:
        this.i64(typeof v === "bigint" ? v : BigInt(Number(v)));
        return;
      default:
        throw new Error(`unknown GGUF value type ${type}`);
    }
  }

  value(v: GgufValue): void {
    this.u32(v.type);
    if (v.type === GgufValueType.ARRAY) {
      this.u32(v.itemType);
      this.u64(v.value.length);
      for (const item of v.value) this.scalar(v.itemType, item);
    } else {
      this.scalar(v.type, v.value);
    }
  }

  toBuffer(): Buffer {
    this.flush();
    return Buffer.concat(this.parts, this.length);
  }
}
