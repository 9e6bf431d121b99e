// @wasmformer/core kernels: one file per family, re-exported here. ABI documented in src/kernels.ts.
export { abiVersion, heapBase, simdFlavor } from "./memory";
export { gemm, bmm, gemv } from "./gemm";
