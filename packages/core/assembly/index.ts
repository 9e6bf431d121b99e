// @wasmformer/core kernels: one file per family, re-exported here. ABI documented in src/kernels.ts.
export { abiVersion, heapBase, simdFlavor, scratchBytes, setScratch, threadsBuild } from "./memory";
export { gemm, bmm, gemv, gemmRowBlock } from "./gemm";
export { packedSize, packB, gemmPacked, gemmPackedRange } from "./gemm-packed";
export { packedRowsSize, packRows, gemvRows } from "./gemv-rows";
export { quantBytes, xqRowBytes, quantizeRowsQ8, gemvQ, gemmQ, gemmQRange, dequantRowsQ } from "./quant";
export { unary } from "./activations";
export { softmax, logSoftmax } from "./softmax";
export { layerNorm } from "./layernorm";
export { binary, scale, reduce, fill, copy2d, transpose2d } from "./elementwise";
export { gather } from "./embedding";
export { im2colPatch } from "./conv";
export { attention } from "./attention";
export { lstmCell, gruCell, rnnSteps } from "./rnn";
export { topk } from "./topk";
export { w2vSgns, w2vCbow } from "./word2vec";
export { rmsNorm } from "./rmsnorm";
export { rope } from "./rope";
// ---- backward kernels (training) ----
export { unaryBackward, biasGrad, embeddingBackward, im2colPatchBackward } from "./backward-elementwise";
export { normStats, layerNormBackward, rmsNormBackward } from "./backward-norm";
export { softmaxBackward, attentionBackward, softmaxCrossEntropy } from "./backward-softmax";
export { lstmCellBackward, gruCellBackward } from "./backward-rnn";
// ---- optimizer updates (training) ----
export { adamStep, sgdStep } from "./optim";
