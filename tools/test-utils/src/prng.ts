/**
 * A seeded PRNG for tests (mulberry32): the same seed gives the same numbers on every run and
 * machine. No imports, so that core's own tests can use it too (they import it by path: a package
 * dependency core → test-utils → core would be a cycle).
 */

/** mulberry32: uniform numbers in [0, 1) from a 32-bit seed. */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal numbers (Box–Muller, one pair of `mulberry32(seed)` draws each). */
export function normalGen(seed: number): () => number {
  const rand = mulberry32(seed);
  return () => {
    const u = Math.max(rand(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  };
}

export interface Prng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number;
  /** An integer in [lo, hi). */
  int(lo: number, hi: number): number;
  /** `n` floats uniform in [lo, hi). */
  f32(n: number, lo?: number, hi?: number): Float32Array;
  /** One element of `xs`. */
  pick<T>(xs: readonly T[]): T;
}

/** A `Prng` over `mulberry32(seed)`. */
export function prng(seed: number): Prng {
  const next = mulberry32(seed);
  return {
    next,
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    int: (lo, hi) => lo + Math.floor((hi - lo) * next()),
    f32: (n, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * next()),
    pick: <T>(xs: readonly T[]) => xs[Math.floor(xs.length * next())] as T,
  };
}
