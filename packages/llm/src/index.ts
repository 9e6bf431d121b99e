/**
 * @wasmformer/llm — GPT-2 (Hugging Face `GPT2LMHeadModel`) on the @wasmformer/core kernels: loading
 * from a Hugging Face folder, a KV cache planned once, batched and streamed generation with sampling.
 */
export * from "./config.js";
export * from "./generate.js";
export * from "./gpt2-model.js";
export { KVContext } from "./kv-context.js";
export * from "./pretrained.js";
export * from "./sampler.js";
export * from "./tokenizer.js";
