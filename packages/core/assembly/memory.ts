// Module-level facts the JS loader needs: ABI version, where free memory starts, SIMD flavour.
// Kernels never allocate: JS owns a bump allocator over [heapBase(), memory.size).

/** Must equal ABI_VERSION in src/kernels.ts. */
export function abiVersion(): i32 {
  return 7;
}

/** First byte after static data: the JS heap starts here. */
export function heapBase(): usize {
  return __heap_base;
}

/** 1 when built with relaxed SIMD, 0 for plain SIMD. */
export function simdFlavor(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}

import { GEMM_SCRATCH, gemmScratch } from "./gemm";
import { gemvRowsScratch } from "./gemv-rows";
import { normScratch } from "./backward-norm";
import { rnnScratch } from "./backward-rnn";

/** Bytes `setScratch` needs: every kernel's static scratch, 64-byte aligned. */
export function scratchBytes(): usize {
  return GEMM_SCRATCH + 128 + 64 + 448;
}

/**
 * Move this instance's static scratch to `base` (64-byte aligned, `scratchBytes()` bytes). Wasm
 * globals are per instance, so in a threaded build each worker's instance gets its own scratch on
 * the shared memory and kernels running side by side never share a buffer.
 */
export function setScratch(base: usize): void {
  gemmScratch(base);
  gemvRowsScratch(base + GEMM_SCRATCH);
  normScratch(base + GEMM_SCRATCH + 128);
  rnnScratch(base + GEMM_SCRATCH + 192);
}

/** 1 when built with wasm threads (shared, imported memory), else 0. */
export function threadsBuild(): i32 {
  return ASC_FEATURE_THREADS ? 1 : 0;
}
