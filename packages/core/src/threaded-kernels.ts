/**
 * The threaded build's kernels: the main instance's exports, with the large kernels split into
 * tiles that the `ThreadPool` spreads over its threads (several tiles per thread, so a slow or busy
 * core does not hold the others up).
 *
 * Every tile is a call of a kernel on a sub-block that computes each of its elements with exactly
 * the arithmetic of the whole call, so results are bitwise identical whatever the thread count:
 * - `gemm` by tiles of M (≥ 2 rows: one row takes the streaming M = 1 path) and of N (multiples
 *   of 24 columns: the M = 1 paths group 6 or 8 columns); K is never split (a reduction).
 * - `gemmPacked` by N (panels of 8, through `gemmPackedRange`), and by M (≥ 5 rows, the blocked
 *   path) when M > 4; `gemvRows` by groups of 24 rows; `bmm` by batch elements (or, when it is
 *   one tall GEMM, as that GEMM).
 * Small calls (little work) run directly on the calling thread.
 */
import type { Kernels } from "./kernels.js";
import type { ThreadPool } from "./threads.js";

/** Kernels the workers may be asked to run (the names index the pool's table). */
export const TILE_KERNELS = ["gemm", "gemmPackedRange", "gemvRows", "bmm"] as const;
type TileKernel = (typeof TILE_KERNELS)[number];
const FN: Record<TileKernel, number> = Object.fromEntries(TILE_KERNELS.map((n, i) => [n, i])) as Record<
  TileKernel,
  number
>;

/** Multiply-adds below which a call is not split (the hand-off costs a few microseconds). */
const MIN_WORK = 1 << 17;
/** Multiply-adds a tile should have at least. */
const TILE_WORK = 1 << 15;
/** Tiles per thread we aim for. */
const TILES_PER_THREAD = 4;

export interface ThreadedExports extends Kernels {
  gemmPackedRange(
    M: number,
    N: number,
    K: number,
    a: number,
    lda: number,
    transA: number,
    packedB: number,
    c: number,
    ldc: number,
    bias: number,
    alpha: number,
    beta: number,
    act: number,
    n0: number,
    n1: number,
  ): void;
}

/** Cut [0, n) into `parts` ranges whose inner bounds are multiples of `unit`. */
export function cuts(n: number, parts: number, unit: number): number[] {
  const units = Math.ceil(n / unit);
  const p = Math.max(1, Math.min(parts, units));
  const out = [0];
  for (let i = 1; i < p; i++) out.push(Math.min(n, Math.round((i * units) / p) * unit));
  out.push(n);
  return out.filter((v, i, a) => i === 0 || v > a[i - 1]);
}

/** How many tiles (at most) a call with `work` multiply-adds gets on `threads` threads. */
function tileBudget(work: number, threads: number): number {
  return Math.max(1, Math.min(threads * TILES_PER_THREAD, Math.floor(work / TILE_WORK)));
}

/**
 * Row and column counts of a tile grid for an M×N output: columns first (in `nUnit` steps, at
 * least 32 columns a tile), then rows (at least `mMin` rows a tile) for the rest of the budget.
 */
function grid(M: number, N: number, budget: number, nUnit: number, mMin: number): [number, number] {
  const nTiles = Math.max(1, Math.min(budget, Math.floor(N / Math.max(32, nUnit))));
  const mTiles = mMin > 0 ? Math.max(1, Math.min(Math.ceil(budget / nTiles), Math.floor(M / mMin))) : 1;
  return [mTiles, nTiles];
}

export function threadedKernels(ex: ThreadedExports, pool: ThreadPool, id: number): Kernels {
  // the exports object is frozen: copy its functions, then replace the split kernels
  const k = { ...ex } as Kernels;
  const on = (work: number) => pool.threads > 1 && work >= MIN_WORK && pool.has(id);

  const gemm: Kernels["gemm"] = (M, N, K, a, lda, transA, b, ldb, transB, c, ldc, bias, alpha, beta, act) => {
    const work = M * N * Math.max(K, 1);
    if (!on(work) || M <= 0 || N <= 0) {
      ex.gemm(M, N, K, a, lda, transA, b, ldb, transB, c, ldc, bias, alpha, beta, act);
      return;
    }
    const [mT, nT] = grid(M, N, tileBudget(work, pool.threads), 24, M === 1 ? 0 : Math.max(2, 16));
    const rows = cuts(M, mT, 1);
    const cols = cuts(N, nT, 24);
    const tiles: number[][] = [];
    for (let i = 0; i + 1 < rows.length; i++) {
      const i0 = rows[i];
      const mi = rows[i + 1] - i0;
      const ai = a + 4 * (transA ? i0 : i0 * lda);
      for (let j = 0; j + 1 < cols.length; j++) {
        const j0 = cols[j];
        const nj = cols[j + 1] - j0;
        const bj = b + 4 * (transB ? j0 * ldb : j0);
        const cij = c + 4 * (i0 * ldc + j0);
        tiles.push([mi, nj, K, ai, lda, transA, bj, ldb, transB, cij, ldc, bias ? bias + 4 * j0 : 0, alpha, beta, act]);
      }
    }
    pool.run(id, FN.gemm, "gemm", tiles, ex.gemm);
  };
  k.gemm = gemm;

  k.gemmPacked = (M, N, K, a, lda, transA, pb, c, ldc, bias, alpha, beta, act) => {
    const work = M * N * Math.max(K, 1);
    if (!on(work) || M <= 0 || N <= 0) {
      ex.gemmPacked(M, N, K, a, lda, transA, pb, c, ldc, bias, alpha, beta, act);
      return;
    }
    // M ≤ 4 streams the weight for all rows at once (its own arithmetic): split columns only
    const [mT, nT] = grid(M, N, tileBudget(work, pool.threads), 8, M <= 4 ? 0 : 16);
    const rows = cuts(M, mT, 1);
    const cols = cuts(N, nT, 8);
    const tiles: number[][] = [];
    for (let i = 0; i + 1 < rows.length; i++) {
      const i0 = rows[i];
      const ai = a + 4 * (transA ? i0 : i0 * lda);
      for (let j = 0; j + 1 < cols.length; j++) {
        tiles.push([
          rows[i + 1] - i0,
          N,
          K,
          ai,
          lda,
          transA,
          pb,
          c + 4 * i0 * ldc,
          ldc,
          bias,
          alpha,
          beta,
          act,
          cols[j],
          cols[j + 1],
        ]);
      }
    }
    pool.run(id, FN.gemmPackedRange, "gemmPacked", tiles, ex.gemmPackedRange);
  };

  k.gemvRows = (N, K, x, packed, y, bias, beta, act) => {
    const work = N * Math.max(K, 1);
    if (!on(work) || N <= 0) {
      ex.gemvRows(N, K, x, packed, y, bias, beta, act);
      return;
    }
    const groupBytes = Math.ceil(K / 4) * 4 * 24 * 4;
    const groups = cuts(Math.ceil(N / 24), tileBudget(work, pool.threads), 1);
    const tiles: number[][] = [];
    for (let g = 0; g + 1 < groups.length; g++) {
      const j0 = groups[g] * 24;
      const j1 = Math.min(N, groups[g + 1] * 24);
      tiles.push([j1 - j0, K, x, packed + groups[g] * groupBytes, y + 4 * j0, bias ? bias + 4 * j0 : 0, beta, act]);
    }
    pool.run(id, FN.gemvRows, "gemvRows", tiles, ex.gemvRows);
  };

  k.bmm = (batch, M, N, K, a, sA, lda, transA, b, sB, ldb, transB, c, sC, ldc, alpha, beta) => {
    const work = batch * M * N * Math.max(K, 1);
    if (!on(work) || batch <= 0 || M <= 0 || N <= 0) {
      ex.bmm(batch, M, N, K, a, sA, lda, transA, b, sB, ldb, transB, c, sC, ldc, alpha, beta);
      return;
    }
    if (sB === 0 && !transA && sA === M * lda && sC === M * ldc && batch * M <= 0x7fffffff) {
      // bmm runs this as one tall GEMM: split it as that GEMM
      gemm(batch * M, N, K, a, lda, 0, b, ldb, transB, c, ldc, 0, alpha, beta, 0);
      return;
    }
    if (batch === 1) {
      gemm(M, N, K, a, lda, transA, b, ldb, transB, c, ldc, 0, alpha, beta, 0);
      return;
    }
    const parts = cuts(batch, tileBudget(work, pool.threads), 1);
    const tiles: number[][] = [];
    for (let t = 0; t + 1 < parts.length; t++) {
      const t0 = parts[t];
      tiles.push([
        parts[t + 1] - t0,
        M,
        N,
        K,
        a + 4 * t0 * sA,
        sA,
        lda,
        transA,
        b + 4 * t0 * sB,
        sB,
        ldb,
        transB,
        c + 4 * t0 * sC,
        sC,
        ldc,
        alpha,
        beta,
      ]);
    }
    pool.run(id, FN.bmm, "bmm", tiles, ex.bmm);
  };
  return k;
}
