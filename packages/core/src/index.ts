/**
 * @wasmformer/core — tensors, SIMD kernels (AssemblyScript, with a pure-TS reference backend),
 * the wasm loader, safetensors and config.json reading.
 */

export { refKernels } from "./backend/ref.js";
export { relaxedSimdSupported, simdSupported } from "./backend/wasm.js";
export * from "./config.js";
export * from "./dtype.js";
export * from "./errors.js";
export * from "./float16.js";
export * from "./gguf.js";
export * from "./grad-ops.js";
export * from "./heap.js";
export * from "./hub.js";
export * from "./kernels.js";
export { erf } from "./math.js";
export * from "./ops.js";
export * from "./packed.js";
export type { KindRegistry, KindResult, KindRunner, ParityCase, TensorFile } from "./parity.js";
export * from "./quant.js";
export { mulberry32 } from "./random.js";
export * from "./rnn-grad.js";
export * from "./runtime.js";
export * from "./safetensors.js";
export * from "./state-dict.js";
export * from "./tensor.js";
