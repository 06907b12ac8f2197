import os from "node:os";
import { GGML_BLOCK, GgmlType } from "./constants.js";
import { f32ToF16Bits } from "./fp16.js";

// Typed-array views write host byte order; GGUF data is little-endian.
if (os.endianness() !== "LE") throw new Error("the GGUF writer supports little-endian hosts only");

/**
 * Encodes a run of F32 values in a ggml tensor type. `src.length` must be a whole number of blocks; rows
 * of every quantized tensor are multiples of the block size, so chunks cut at block boundaries never
 * split a row's block.
 */
export function encodeTensorData(type: GgmlType, src: Float32Array): Buffer {
  switch (type) {
    case GgmlType.F32:
      return Buffer.from(src.buffer, src.byteOffset, src.byteLength);
    case GgmlType.F16:
      return encodeF16(src);
    case GgmlType.Q8_0:
      return encodeQ8_0(src);
    default:
      throw new Error(`cannot encode ggml type ${type}`);
  }
}

function encodeF16(src: Float32Array): Buffer {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** block_q8_0 { ggml_half d; int8_t qs[32]; }, computed as quantize_row_q8_0_ref does. */
function encodeQ8_0(src: Float32Array): Buffer {
  const { size, bytes } = GGML_BLOCK[GgmlType.Q8_0];
  if (src.length % size !== 0) throw new Error(`Q8_0 data length ${src.length} is not a multiple of ${size}`);
  const nb = src.length / size;
  const u8 = new Uint8Array(nb * bytes);
  const i8 = new Int8Array(u8.buffer);
  for (let b = 0; b < nb; b++) {
    const base = b * size;
    let amax = 0;
    for (let j = 0; j < size; j++) {
      const v = Math.abs(src[base + j]);
      if (v > amax) amax = v;
    }
    // ggml computes in float: d and 1/d are rounded to f32 before use.
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const o = b * bytes;
    const h = f32ToF16Bits(d);
    u8[o] = h & 0xff;
    u8[o + 1] = h >>> 8;
    for (let j = 0; j < size; j++) {
      const v = Math.fround(src[base + j] * id);
      // roundf rounds halves away from zero; Math.round rounds them up.
      i8[o + 2 + j] = v < 0 ? -Math.round(-v) : Math.round(v);
    }
  }
  return Buffer.from(u8.buffer, 0, u8.byteLength);
}
