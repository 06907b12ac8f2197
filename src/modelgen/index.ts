export { MODEL_PRESETS, type ModelPreset, type TokenizerSource } from "./presets.js";
export {
  countParameters,
  type ModelShape,
  ModelShapeSchema,
  modelTensors,
  type ResolvedModelShape,
  type WeightType,
} from "./shape.js";
export { readTokenizerKv, resolveTokenizerPath } from "./tokenizer.js";
export {
  type WriteRandomModelOptions,
  type WriteRandomModelResult,
  writeRandomModel,
} from "./write-random-model.js";
