/**
 * @wasmformer/llm — GPT-2 (Hugging Face `GPT2LMHeadModel`) and the Llama family (`LlamaForCausalLM`:
 * Llama, Qwen2, Mistral) as configurations of one decoder engine on the @wasmformer/core kernels:
 * loading from a Hugging Face folder (`AutoModelForCausalLM`), a KV cache planned once, batched and
 * streamed generation with sampling; a training mode (`train()`, `lossAndGrad`, nn's `fit`, `save`).
 */
export * from "./auto.js";
export * from "./config.js";
export type { BlockNames, DecoderArch, WeightSpec } from "./decoder-arch.js";
export * from "./generate.js";
export * from "./gguf-model.js";
export * from "./gguf-tokenizer.js";
export * from "./gpt2-model.js";
export { KVContext } from "./kv-context.js";
export * from "./llama.js";
export * from "./llama-model.js";
export * from "./pretrained.js";
export * from "./rope.js";
export * from "./sampler.js";
export * from "./tokenizer.js";
export type { LMBatchResult, LMEmbedsPart, LMExample, TrainOptions } from "./train.js";
