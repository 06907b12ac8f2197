export { GGML_BLOCK, GgmlType, GgufValueType, LLAMA_FTYPE, tensorBytes } from "./constants.js";
export { f16BitsToF32, f32ToF16Bits } from "./fp16.js";
export { encodeTensorData } from "./quantize.js";
export { type GgufHeader, type GgufTensorInfo, readGgufHeader } from "./reader.js";
export { type GgufKv, type GgufScalar, type GgufValue, gguf } from "./value.js";
export {
  type GgufLayout,
  layoutGguf,
  type TensorDataSource,
  type TensorLayout,
  type TensorSpec,
  writeGguf,
} from "./writer.js";
