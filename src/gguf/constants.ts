/** GGUF on-disk constants (ggml/include/gguf.h, ggml/include/ggml.h of the llama.cpp release we link). */

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** Only the tensor types this project writes; the reader passes any other id through unchanged. */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q8_0 = 8,
}

/** Elements per block and bytes per block, as ggml's type traits define them. */
export const GGML_BLOCK: Record<GgmlType, { size: number; bytes: number }> = {
  [GgmlType.F32]: { size: 1, bytes: 4 },
  [GgmlType.F16]: { size: 1, bytes: 2 },
  [GgmlType.Q8_0]: { size: 32, bytes: 34 },
};

/** llama.cpp's `general.file_type` (enum llama_ftype) for a model whose matrices are all of one type. */
export const LLAMA_FTYPE: Record<GgmlType, number> = {
  [GgmlType.F32]: 0,
  [GgmlType.F16]: 1,
  [GgmlType.Q8_0]: 7,
};

export function tensorBytes(type: GgmlType, ne: readonly number[]): number {
  const traits = GGML_BLOCK[type];
  if (!traits) throw new Error(`unsupported ggml type ${type}`);
  if (ne[0] % traits.size !== 0) {
    throw new Error(
      `row length ${ne[0]} is not a multiple of the ${GgmlType[type]} block size ${traits.size}`,
    );
  }
  const n = ne.reduce((a, b) => a * b, 1);
  return (n / traits.size) * traits.bytes;
}
