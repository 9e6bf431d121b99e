/**
 * @wasmformer/nn — PyTorch-compatible layers on core's kernels: Linear, Embedding, LayerNorm,
 * activations, positional encodings, scaled dot-product and multi-head attention, Transformer
 * encoder/decoder layers and stacks, `Transformer`, a seq2seq translation model (greedy and beam
 * search), RNN/LSTM/GRU with streaming `step()`, an RNN encoder–decoder, and a trainable LSTM
 * encoder–decoder with Luong attention (`AttentionSeq2Seq`, `translate(text)` with attention weights).
 * Weights load from a safetensors state dict by PyTorch name (`loadModule`, `StateDict`).
 * Training: every layer is a `Module` (`train()`/`eval()`, `parameters()`, `backward`), losses,
 * optimizers, schedules, `fit`, and two trainable classifiers (`MLPClassifier`, `LSTMClassifier`).
 */
export * from "./activations.js";
export * from "./attention.js";
export * from "./attention-seq2seq.js";
export * from "./classifiers.js";
export * from "./embedding.js";
export * from "./fit.js";
export * from "./layer-norm.js";
export * from "./linear.js";
export * from "./losses.js";
export * from "./module.js";
export * from "./optim.js";
export * from "./positional-encoding.js";
export * from "./rnn.js";
export * from "./rnn-seq2seq.js";
export * from "./schedules.js";
export * from "./seq2seq.js";
export * from "./state-dict.js";
export * from "./transformer.js";
export { ModuleLife, missingKernels, nnRuntime, sharedRuntime } from "./util.js";
