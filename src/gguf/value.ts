import { GgufValueType } from "./constants.js";

/**
 * A metadata value with its exact GGUF type: llama.cpp rejects keys whose stored type differs from the one
 * it expects (a uint32 token id stored as int32 fails), so types survive a read-copy-write unchanged.
 */
export type GgufScalarType = Exclude<GgufValueType, GgufValueType.ARRAY>;
export type GgufScalar = number | bigint | boolean | string;
export type GgufValue =
  | { type: GgufScalarType; value: GgufScalar }
  | { type: GgufValueType.ARRAY; itemType: GgufScalarType; value: GgufScalar[] };

export type GgufKv = Map<string, GgufValue>;

export const gguf = {
  u32: (value: number): GgufValue => ({ type: GgufValueType.UINT32, value }),
  i32: (value: number): GgufValue => ({ type: GgufValueType.INT32, value }),
  f32: (value: number): GgufValue => ({ type: GgufValueType.FLOAT32, value }),
  bool: (value: boolean): GgufValue => ({ type: GgufValueType.BOOL, value }),
  str: (value: string): GgufValue => ({ type: GgufValueType.STRING, value }),
  arr: (itemType: GgufScalarType, value: GgufScalar[]): GgufValue => ({
    type: GgufValueType.ARRAY,
    itemType,
    value,
  }),
};
