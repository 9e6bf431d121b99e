/**
 * @wasmformer/vlm — vision-language models on @wasmformer/core: a frozen ViT (@wasmformer/vit), a
 * BLIP-2 Q-Former with `language_projection` (or a LLaVA projector), and GPT-2 or a Llama-family
 * decoder (@wasmformer/llm), with MiniGPT-4 prompts that carry an image slot; `MiniGPT4` loads
 * MiniGPT-4's projection beside BLIP-2's Q-Former and a Llama.
 */
export {
  type EmbedFn,
  type ImageAdapter,
  type ImageProjection,
  idRows,
  imagePrompt,
  QFormerAdapter,
  spliceImageEmbeds,
} from "./adapter.js";
export {
  MINIGPT4_TEMPLATE,
  parseQFormerConfig,
  parseVLMConfig,
  type QFormerConfig,
  QFormerConfigSchema,
  VLM_LLAMA_MODEL_TYPE,
  VLM_MODEL_TYPE,
  type VLMConfig,
} from "./config.js";
export {
  MiniGPT4,
  type MiniGPT4FolderConfig,
  type MiniGPT4Folders,
  type MiniGPT4Options,
  type MiniGPT4Sources,
} from "./minigpt4.js";
export {
  type FeatureSelectStrategy,
  LinearProjector,
  LlavaProjector,
  type LlavaProjectorOptions,
  type ProjectorOptions,
} from "./projector.js";
export {
  answerText,
  fillImagePrompt,
  IMAGE_PLACEHOLDER,
  type ImagePromptIds,
  type ImagePromptParts,
  QUESTION_PLACEHOLDER,
  splitImagePrompt,
  TURN_SEPARATOR,
  tokenizeImagePrompt,
} from "./prompt.js";
export {
  Blip2QFormerModel,
  checkQFormerWeights,
  type QFormerNames,
  type QFormerOptions,
  qformerWants,
} from "./qformer.js";
export type { VLMExample, VLMTrainOptions } from "./train.js";
export {
  type ImageArg,
  type ImageFeatures,
  type QuestionArg,
  type VisionEncoder,
  VisionLanguageModel,
  type VLMGenerateOptions,
  type VLMGenerationChunk,
  type VLMGenerationResult,
  type VLMLoadOptions,
  type VLMPretrainedSource,
} from "./vlm-model.js";
export { prefixView, type WeightSource, weightSource } from "./weights.js";
