/**
 * @wasmformer/vit — Vision Transformer inference on @wasmformer/core: Hugging Face ViT
 * (`ViTModel`, `ViTForImageClassification`, DINO) and timm checkpoints, image preprocessing,
 * classification, and attention introspection (CLS maps, rollout, mean attention distance).
 */
export { actCode, parseViTConfig, patchGrid, type ViTConfig } from "./config.js";
export { type DecodeOptions, decodeImage, type ImageInput, loadImage, sniffFormat, toImageData } from "./image-io.js";
export {
  centerCrop,
  type ImageProcessorConfig,
  parseImageProcessorConfig,
  type RawImage,
  resizeOutputSize,
  type SizeSpec,
  toRgb,
  ViTImageProcessor,
} from "./image-processing.js";
export {
  attentionRollout,
  clsAttentionMap,
  meanAttentionDistance,
  type RolloutOptions,
  rolloutMap,
  thresholdAttention,
  upsampleNearest,
} from "./introspection.js";
export { interpolateBicubic, PIL_RESAMPLE, type PilFilter, resamplePil, resamplePilF32 } from "./resample.js";
export { initViTParameters, type ViTExample, type ViTParam } from "./training.js";
export {
  type AttentionMapOptions,
  type ForwardOptions,
  type LoadOptions,
  loadViTForImageClassification,
  loadViTModel,
  openCheckpointFolder,
  type PosInterpolation,
  type Prediction,
  type PretrainedLoadOptions,
  type PretrainedSource,
  type TimmSource,
  timmConfig,
  ViTForImageClassification,
  ViTModel,
  type ViTOutput,
  type WeightsInput,
} from "./vit-model.js";
export { detectNaming, type Naming, type TensorSource, tensorSource } from "./weights.js";
