/**
 * @wasmformer/bert — BERT encoders (Hugging Face `BertModel` with pooler) and sentence embeddings
 * as sentence-transformers computes them (mean / CLS / max pooling, L2 normalisation), with cosine
 * similarity and top-k search over an embedded corpus, on @wasmformer/core's kernels.
 */
export * from "./bert-model.js";
export * from "./config.js";
export type { BertPretrainedOptions } from "./pretrained.js";
export * from "./search.js";
export * from "./sentence.js";
