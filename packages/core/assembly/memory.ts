// Module-level facts the JS loader needs: ABI version, where free memory starts, SIMD flavour.
// Kernels never allocate: JS owns a bump allocator over [heapBase(), memory.size).

/** Must equal ABI_VERSION in src/kernels.ts. */
export function abiVersion(): i32 {
  return 4;
}

/** First byte after static data: the JS heap starts here. */
export function heapBase(): usize {
  return __heap_base;
}

/** 1 when built with relaxed SIMD, 0 for plain SIMD. */
export function simdFlavor(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}
