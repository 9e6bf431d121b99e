/**
 * @wasmformer/core — tensors, SIMD kernels (AssemblyScript, with a pure-TS reference backend),
 * the wasm loader, safetensors and config.json reading.
 */
export * from "./errors.js";
export * from "./heap.js";
export * from "./kernels.js";
export * from "./runtime.js";
export * from "./tensor.js";
export * from "./dtype.js";
export { refKernels } from "./backend/ref.js";
export { relaxedSimdSupported, simdSupported } from "./backend/wasm.js";
export * from "./ops.js";
export * from "./safetensors.js";
export * from "./float16.js";
export * from "./config.js";
export { erf } from "./math.js";
export type { KindRegistry, KindResult, KindRunner, ParityCase, TensorFile } from "./parity.js";
