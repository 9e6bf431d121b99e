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
 *   path) when M > 4; a small weight with enough rows by M alone, at multiples of the
 *   micro-kernel's MR rows (see `packedGrid`); `gemvRows` by groups of 24 rows (from 2¹⁹ multiply-adds); `gemvQ` by row groups of 4 (the repacked layout's); `gemmQ` as
 *   `gemmPacked` (through `gemmQRange`; each tile dequantizes its own panels); `bmm` by batch elements (or, when it is
 *   one tall GEMM, as that GEMM).
 * - `attention` (one (batch, head) slice a call) by query rows: tiles of ≥ 16 rows (fewer take the
 *   row-by-row path), aligned to the 64-row blocks of the causal path, the causal offset moved with
 *   the tile. `attentionHeads` (every (batch, head) slice of a layer, each with its own probs) by
 *   slices, and the slices' query rows as above when there are fewer slices than tiles wanted.
 * - `attentionBackwardHeads` by scratch groups (slices sharing a scratch, in their order), in
 *   rounds: round r runs the r-th slice of every group side by side (one slice's dK and dV are
 *   sums over its query rows, so a slice is never cut).
 * - Row kernels (norms, softmax, rope, their backward dx parts, normStats) by rows; elementwise
 *   kernels (`unary`, `scale`, same-shape or scalar `binary`, `unaryBackward`, `fill`, the
 *   optimizer steps `adamStep` and `sgdStep`) by chunks of 64 floats, so the scalar tail stays at
 *   the end; `biasGrad` by columns (its sums over rows stay whole). Norm backward: dx by rows;
 *   dgamma/dbeta (sums over all rows) only with the forward's saved statistics, as one more tile
 *   over all rows beside the dx tiles (without them it runs whole).
 * - `rnnSteps` (the steps of a recurrent layer) as one tile a thread, each owning a range of
 *   hidden units (its rows of W_hh, its gates and cell) for all steps; the tiles wait for each other
 *   once a step inside the kernel (rnn.ts).
 * Small calls (little work) run directly on the calling thread; kernels not listed (reductions
 * such as `softmaxCrossEntropy`, a single `attentionBackward`, scatter-adds) always do.
 */

import { WasmError } from "./errors.js";
import type { AttentionArgs, AttentionBackwardArgs, Kernels } from "./kernels.js";
import type { ThreadPool } from "./threads.js";

/** Kernels the workers may be asked to run (the names index the pool's table). */
export const TILE_KERNELS = [
  "gemm",
  "gemmPackedRange",
  "gemvRows",
  "gemvQ",
  "gemmQRange",
  "bmm",
  "attention",
  "layerNorm",
  "rmsNorm",
  "softmax",
  "logSoftmax",
  "unary",
  "binary",
  "scale",
  "rope",
  "unaryBackward",
  "biasGrad",
  "softmaxBackward",
  "normStats",
  "layerNormBackward",
  "rmsNormBackward",
  "fill",
  "adamStep",
  "sgdStep",
  "attentionBackward",
  "rnnSteps",
] as const;
type TileKernel = (typeof TILE_KERNELS)[number];
const FN: Record<TileKernel, number> = Object.fromEntries(TILE_KERNELS.map((n, i) => [n, i])) as Record<
  TileKernel,
  number
>;

/** Multiply-adds below which a call is not split (the hand-off costs a few microseconds). */
const MIN_WORK = 1 << 17;
/**
 * Multiply-adds below which a `gemvRows` call is not split: a product of about 10 µs (an LSTM step's
 * 1024×256) gained nothing from a hand-off a call. Recurrent layers split their steps inside
 * `rnnSteps` instead; GPT-2's decode GEMVs (≥ 768×768) split here.
 */
const MIN_GEMV_WORK = 1 << 19;
/** Elements below which a memory-bound (row or elementwise) call is not split. */
const MIN_ELEMS = 1 << 15;
/** Multiply-adds a tile should have at least. */
const TILE_WORK = 1 << 15;
/** Tiles per thread we aim for. */
const TILES_PER_THREAD = 4;
/**
 * Packed weights up to this size (bytes, about an L2 cache) are split by rows only: each tile packs
 * its own rows of A once and reads the cached weight whole. Cutting N as well would pack every A row
 * once per column tile: +6–18% of the work of ViT-Tiny's 197-row products (192–768 wide) on one
 * thread, against −4 to +10% with row tiles (tiles run in a row on one thread, CPU time,
 * 2026-12-06). Larger weights (GPT-2, ViT-Base) keep the column split, which reads each weight once.
 */
const ROWS_ONLY_BYTES = 1 << 20;

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
  /** MR, the rows of the GEMM micro-kernel (absent from custom modules built before it). */
  gemmRowBlock?(): number;
  gemmQRange(
    type: number,
    M: number,
    N: number,
    K: number,
    a: number,
    lda: number,
    w: number,
    c: number,
    ldc: number,
    bias: number,
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

/** Bytes of `rnnSteps`'s sync block for `tiles` tiles: a 64-byte line for `done` and `failed`, one a tile. */
export function rnnSyncBytes(tiles: number): number {
  return 64 * (1 + tiles);
}

/**
 * Multiply-adds of one recurrent step below which `rnnSteps` runs on one thread: its tiles wait for
 * each other once a step and read the hidden state the others wrote, about 1 µs a step on this
 * machine kind (2 cores, 2026-12-06). LSTM / GRU µs per step at 1 → 2 threads: H = 128 3.6 → 3.7–4.1
 * and 2.8 → 2.6–3.1 (no gain), H = 192 7.0 → 5.5–7.0 and 5.1 → 4.0–5.2, H = 256 14.0 → 8.2–11.
 */
const MIN_STEP_WORK = 3 << 15;

/**
 * The calling thread's instance `ex`, split over `pool` (runtime `id`). `sync`: the shared memory's
 * `rnnSyncBytes(pool.threads)` bytes for `rnnSteps`, 64-byte aligned, out of the allocator's reach.
 */
export function threadedKernels(
  ex: ThreadedExports,
  pool: ThreadPool,
  id: number,
  sync: { memory: WebAssembly.Memory; at: number },
): Kernels {
  // the exports object is frozen: copy its functions, then replace the split kernels
  const k = { ...ex } as Kernels;
  const on = (work: number) => pool.threads > 1 && work >= MIN_WORK && pool.has(id);

  const gemm: Kernels["gemm"] = (M, N, K, a, lda, transA, b, ldb, transB, c, ldc, bias, alpha, beta, act) => {
    const work = M * N * Math.max(K, 1);
    if (!on(work) || M <= 0 || N <= 0) {
      ex.gemm(M, N, K, a, lda, transA, b, ldb, transB, c, ldc, bias, alpha, beta, act);
      return;
    }
    const budget = tileBudget(work, pool.threads);
    // a product with a short K (a rank-K update such as the LM head's weight gradient) is bound by
    // streaming C: tiles of whole rows keep each tile's part of C contiguous
    const [mT, nT] =
      K <= 32 && M >= 64 ? [Math.min(budget, Math.floor(M / 16)), 1] : grid(M, N, budget, 24, M === 1 ? 0 : 16);
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

  // the micro-kernel's rows (6 relaxed, 5 plain SIMD); 0 for a custom module without the export
  const mr = typeof ex.gemmRowBlock === "function" ? ex.gemmRowBlock() : 0;

  /**
   * Row and column cuts of a packed product. A small weight (≤ ROWS_ONLY_BYTES) whose rows give
   * every thread three tiles of ≥ 4·MR rows: rows only, cut at multiples of MR, so that every tile but
   * the last has whole micro-kernel panels (and each has ≥ 3 of them: the blocked path, as the whole
   * product takes). Otherwise (more threads, larger weights, M ≤ 4) the `grid` of tiles.
   */
  const packedGrid = (M: number, N: number, K: number, budget: number): [number[], number[]] => {
    const rowTiles = mr > 0 ? Math.min(budget, Math.floor(M / (4 * mr))) : 0;
    if (rowTiles >= 3 * pool.threads && 4 * N * K <= ROWS_ONLY_BYTES) return [cuts(M, rowTiles, mr), [0, N]];
    // M ≤ 4 streams the weight for all rows at once (its own arithmetic): split columns only
    const [mT, nT] = grid(M, N, budget, 8, M <= 4 ? 0 : 16);
    return [cuts(M, mT, 1), cuts(N, nT, 8)];
  };

  k.gemmPacked = (M, N, K, a, lda, transA, pb, c, ldc, bias, alpha, beta, act) => {
    const work = M * N * Math.max(K, 1);
    if (!on(work) || M <= 0 || N <= 0) {
      ex.gemmPacked(M, N, K, a, lda, transA, pb, c, ldc, bias, alpha, beta, act);
      return;
    }
    const [rows, cols] = packedGrid(M, N, K, tileBudget(work, pool.threads));
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
    if (!on(work) || work < MIN_GEMV_WORK || N <= 0) {
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

  k.gemvQ = (type, M, N, K, xq, w, y, ldy, bias, beta, act) => {
    const work = M * N * Math.max(K, 1);
    const gB = ex.quantBytes(type, 4, K); // one row group
    if (!on(work) || M <= 0 || N <= 0 || gB === 0) {
      ex.gemvQ(type, M, N, K, xq, w, y, ldy, bias, beta, act);
      return;
    }
    // whole row groups of 4: each output row's arithmetic is its own, whatever the split
    const groups = cuts(Math.ceil(N / 4), tileBudget(work, pool.threads), 1);
    const tiles: number[][] = [];
    for (let g = 0; g + 1 < groups.length; g++) {
      const j0 = groups[g] * 4;
      const j1 = Math.min(N, groups[g + 1] * 4);
      tiles.push([type, M, j1 - j0, K, xq, w + groups[g] * gB, y + 4 * j0, ldy, bias ? bias + 4 * j0 : 0, beta, act]);
    }
    pool.run(id, FN.gemvQ, "gemvQ", tiles, ex.gemvQ);
  };

  k.gemmQ = (type, M, N, K, a, lda, w, c, ldc, bias, beta, act) => {
    const work = M * N * Math.max(K, 1);
    if (!on(work) || M <= 0 || N <= 0) {
      ex.gemmQ(type, M, N, K, a, lda, w, c, ldc, bias, beta, act);
      return;
    }
    const [mT, nT] = grid(M, N, tileBudget(work, pool.threads), 8, 16);
    const rows = cuts(M, mT, 1);
    const cols = cuts(N, nT, 8);
    const tiles: number[][] = [];
    for (let i = 0; i + 1 < rows.length; i++) {
      const i0 = rows[i];
      for (let j = 0; j + 1 < cols.length; j++) {
        tiles.push([
          type,
          rows[i + 1] - i0,
          N,
          K,
          a + 4 * i0 * lda,
          lda,
          w,
          c + 4 * i0 * ldc,
          ldc,
          bias,
          beta,
          act,
          cols[j],
          cols[j + 1],
        ]);
      }
    }
    pool.run(id, FN.gemmQRange, "gemmQ", tiles, ex.gemmQRange);
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

  /**
   * Split `rows` rows (`perRow` elements of work each) into tiles; `at(r0, r1)` gives a tile's
   * arguments. `minRows`: fewest rows a tile may have (the last one is merged into the one before);
   * `unit`: tile bounds are multiples of it; `extra`: one more tile's arguments, run beside the row
   * tiles (it is claimed first).
   */
  const byRows = (
    name: TileKernel,
    rows: number,
    perRow: number,
    at: (r0: number, r1: number) => number[],
    minRows = 1,
    unit = 1,
    extra?: number[],
  ): boolean => {
    const work = rows * perRow;
    if (!pool.has(id) || pool.threads < 2 || work < MIN_ELEMS || rows < 2 * minRows) return false;
    const b = cuts(rows, Math.max(1, Math.min(pool.threads * TILES_PER_THREAD, Math.floor(work / 8192))), unit);
    if (b.length > 2 && b[b.length - 1] - b[b.length - 2] < minRows) b.splice(b.length - 2, 1);
    if (b.length < 3) return false;
    const tiles: number[][] = [];
    for (let i = 0; i + 1 < b.length; i++) tiles.push(at(b[i], b[i + 1]));
    if (extra) tiles.push(extra);
    pool.run(id, FN[name], name, tiles, (ex as unknown as Record<string, (...a: number[]) => unknown>)[name]);
    return true;
  };

  /** The arguments of query rows [r0, r1) of one attention slice (the causal offset moves along). */
  const attentionRows = (a: AttentionArgs, r0: number, r1: number): number[] => {
    const [q, ldq, kk, ldk, v, ldv, o, ldo, probs, , S, dk, dv, scale, mask, maskLd, kpm, causal] = a;
    return [
      q + 4 * r0 * ldq,
      ldq,
      kk,
      ldk,
      v,
      ldv,
      o + 4 * r0 * ldo,
      ldo,
      probs + 4 * r0 * S,
      r1 - r0,
      S,
      dk,
      dv,
      scale,
      mask ? mask + 4 * r0 * maskLd : 0,
      maskLd,
      kpm,
      causal >= 0 ? causal + r0 : -1,
    ];
  };

  k.attention = (...a) => {
    const [, , , , , , , , , L, S, dk, dv, , , , , causal] = a;
    const per = Math.max(S, 1) * (Math.max(dk, 0) + Math.max(dv, 0));
    const split =
      L >= 32 &&
      per * L >= MIN_WORK &&
      byRows(
        "attention",
        L,
        per / 16, // in elements of MIN_ELEMS' scale: a row is ~S·(dk + dv) multiply-adds
        (r0, r1) => attentionRows(a, r0, r1),
        16,
        causal >= 0 ? 64 : 16,
      );
    if (!split) ex.attention(...a);
  };

  // slices as tiles: each slice whole, or its query rows cut as `attention` cuts them (several tiles
  // per thread in all); small batches of slices run on the calling thread
  k.attentionHeads = (slices) => {
    let work = 0;
    for (const a of slices) work += a[9] * Math.max(a[10], 1) * (Math.max(a[11], 0) + Math.max(a[12], 0));
    if (slices.length < 2 || !on(work)) {
      for (const a of slices) ex.attention(...a);
      return;
    }
    const budget = pool.threads * TILES_PER_THREAD;
    // parts per slice: enough for the budget, then a tile count the threads share evenly (ViT-Tiny's
    // 3 heads on 2 threads: 12 tiles, not 9) where the rows allow
    const least = Math.ceil(budget / slices.length);
    let per = least;
    while ((slices.length * per) % pool.threads !== 0 && per < 2 * least) per++;
    if ((slices.length * per) % pool.threads !== 0) per = least;
    const tiles: number[][] = [];
    for (const a of slices) {
      const L = a[9];
      const parts = L >= 32 ? Math.min(per, Math.floor(L / 16)) : 1;
      const b = cuts(L, parts, a[17] >= 0 ? 64 : 16);
      // every tile of a split slice takes the blocked path, as the whole slice does (≥ 16 rows)
      if (b.length > 2 && b[b.length - 1] - b[b.length - 2] < 16) b.splice(b.length - 2, 1);
      for (let i = 0; i + 1 < b.length; i++) tiles.push(attentionRows(a, b[i], b[i + 1]));
    }
    pool.run(id, FN.attention, "attention", tiles, ex.attention as (...a: number[]) => unknown);
  };

  // scratch groups in rounds: the slices of a group run in order (they may add into one dK/dV)
  k.attentionBackwardHeads = (slices) => {
    let work = 0;
    for (const a of slices) work += 2 * a[14] * Math.max(a[15], 1) * (Math.max(a[16], 0) + Math.max(a[17], 0));
    const groups = new Map<number, AttentionBackwardArgs[]>();
    for (const a of slices) {
      const g = groups.get(a[13]);
      if (g) g.push(a);
      else groups.set(a[13], [a]);
    }
    if (groups.size < 2 || !on(work)) {
      for (const a of slices) ex.attentionBackward(...a);
      return;
    }
    const lists = [...groups.values()];
    const rounds = Math.max(...lists.map((g) => g.length));
    for (let r = 0; r < rounds; r++) {
      const tiles = lists.filter((g) => r < g.length).map((g) => g[r]);
      if (tiles.length === 1) ex.attentionBackward(...tiles[0]);
      else
        pool.run(
          id,
          FN.attentionBackward,
          "attentionBackward",
          tiles,
          ex.attentionBackward as (...a: number[]) => unknown,
        );
    }
  };

  // the steps of a recurrent layer: one tile a thread, each keeping its rows of W_hh (rnn.ts)
  k.rnnSteps = (mode, act, reverse, T, B, H, pw, bias, xproj, gh, c, h0, out, so, ldo) => {
    const GH = (mode === 1 ? 4 : mode === 2 ? 3 : 1) * H;
    const n = Math.min(pool.threads, Math.ceil(H / 24));
    if (T < 2 || n < 2 || B * GH * H < MIN_STEP_WORK || !on(T * B * GH * H)) {
      ex.rnnSteps(mode, act, reverse, T, B, H, pw, bias, xproj, gh, c, h0, out, so, ldo, 0, 0, 1);
      return;
    }
    const words = new Int32Array(sync.memory.buffer, sync.at, rnnSyncBytes(n) >> 2);
    words[0] = 0; // chunks done
    words[1] = 0; // failed
    for (let i = 16; i < words.length; i += 16) words[i] = -1; // no step of this chunk taken yet
    const tiles: number[][] = [];
    for (let i = 0; i < n; i++)
      tiles.push([mode, act, reverse, T, B, H, pw, bias, xproj, gh, c, h0, out, so, ldo, sync.at, i, n]);
    pool.run(id, FN.rnnSteps, "rnnSteps", tiles, ex.rnnSteps as (...a: number[]) => unknown);
    if (Atomics.load(words, 1) !== 0)
      throw new WasmError("kernel rnnSteps: a tile waited too long for another's chunk");
  };

  k.layerNorm = (x, y, rows, d, gamma, beta, eps) => {
    if (!byRows("layerNorm", rows, d, (r0, r1) => [x + 4 * r0 * d, y + 4 * r0 * d, r1 - r0, d, gamma, beta, eps]))
      ex.layerNorm(x, y, rows, d, gamma, beta, eps);
  };
  k.rmsNorm = (x, y, rows, d, gamma, eps) => {
    if (!byRows("rmsNorm", rows, d, (r0, r1) => [x + 4 * r0 * d, y + 4 * r0 * d, r1 - r0, d, gamma, eps]))
      ex.rmsNorm(x, y, rows, d, gamma, eps);
  };
  k.softmax = (x, y, rows, cols, ld, mask, maskLd) => {
    const at = (r0: number, r1: number) => [
      x + 4 * r0 * ld,
      y + 4 * r0 * ld,
      r1 - r0,
      cols,
      ld,
      mask ? mask + 4 * r0 * maskLd : 0,
      maskLd,
    ];
    if (!byRows("softmax", rows, cols, at)) ex.softmax(x, y, rows, cols, ld, mask, maskLd);
  };
  k.logSoftmax = (x, y, rows, cols, ld) => {
    if (!byRows("logSoftmax", rows, cols, (r0, r1) => [x + 4 * r0 * ld, y + 4 * r0 * ld, r1 - r0, cols, ld]))
      ex.logSoftmax(x, y, rows, cols, ld);
  };
  k.rope = (x, ldx, rows, heads, d, pos, invFreq) => {
    const at = (r0: number, r1: number) => [x + 4 * r0 * ldx, ldx, r1 - r0, heads, d, pos + 4 * r0, invFreq];
    if (!byRows("rope", rows, heads * d * 4, at)) ex.rope(x, ldx, rows, heads, d, pos, invFreq);
  };
  // elementwise: chunks of 64 floats as "rows" of one element
  k.unary = (x, y, n, act) => {
    if (act === 0 || !byRows("unary", n, 1, (i0, i1) => [x + 4 * i0, y + 4 * i0, i1 - i0, act], 64, 64))
      ex.unary(x, y, n, act);
  };
  k.scale = (x, y, n, alpha, beta) => {
    if (!byRows("scale", n, 1, (i0, i1) => [x + 4 * i0, y + 4 * i0, i1 - i0, alpha, beta], 64, 64))
      ex.scale(x, y, n, alpha, beta);
  };
  k.binary = (a, b, y, rows, cols, bRow, bCol, op) => {
    let split = false;
    if (rows > 0 && cols > 0) {
      if (bCol === 1 && bRow === cols) {
        // one flat array: chunks of it, each a one-row call of the same flat loop
        const n = rows * cols;
        split = byRows(
          "binary",
          n,
          1,
          (i0, i1) => [a + 4 * i0, b + 4 * i0, y + 4 * i0, 1, i1 - i0, i1 - i0, 1, op],
          64,
          64,
        );
      } else if (bCol === 0 && bRow === 0) {
        const n = rows * cols;
        split = byRows("binary", n, 1, (i0, i1) => [a + 4 * i0, b, y + 4 * i0, 1, i1 - i0, 0, 0, op], 64, 64);
      } else {
        const at = (r0: number, r1: number) => [
          a + 4 * r0 * cols,
          b + 4 * r0 * bRow,
          y + 4 * r0 * cols,
          r1 - r0,
          cols,
          bRow,
          bCol,
          op,
        ];
        split = byRows("binary", rows, cols, at);
      }
    }
    if (!split) ex.binary(a, b, y, rows, cols, bRow, bCol, op);
  };
  k.unaryBackward = (dx, dy, src, n, act) => {
    const at = (i0: number, i1: number) => [dx + 4 * i0, dy + 4 * i0, src + 4 * i0, i1 - i0, act];
    if (!byRows("unaryBackward", n, 1, at, 64, 64)) ex.unaryBackward(dx, dy, src, n, act);
  };
  k.fill = (y, n, value) => {
    if (!byRows("fill", n, 1, (i0, i1) => [y + 4 * i0, i1 - i0, value], 64, 64)) ex.fill(y, n, value);
  };
  // optimizer steps: ranges of the parameter (each float's update is its own arithmetic)
  k.adamStep = (theta, grad, m, v, vmax, n, ...rest) => {
    const at = (i0: number, i1: number) => {
      const o = 4 * i0;
      return [theta + o, grad + o, m + o, v + o, vmax ? vmax + o : 0, i1 - i0, ...rest];
    };
    if (!byRows("adamStep", n, 4, at, 64, 64)) ex.adamStep(theta, grad, m, v, vmax, n, ...rest);
  };
  k.sgdStep = (theta, grad, buf, n, ...rest) => {
    const at = (i0: number, i1: number) => [theta + 4 * i0, grad + 4 * i0, buf ? buf + 4 * i0 : 0, i1 - i0, ...rest];
    if (!byRows("sgdStep", n, 2, at, 64, 64)) ex.sgdStep(theta, grad, buf, n, ...rest);
  };
  k.biasGrad = (db, dy, rows, cols, ld) => {
    // split the columns: each column's sum over the rows stays whole
    const at = (j0: number, j1: number) => [db + 4 * j0, dy + 4 * j0, rows, j1 - j0, ld];
    if (!byRows("biasGrad", cols, rows, at, 16, 16)) ex.biasGrad(db, dy, rows, cols, ld);
  };
  k.softmaxBackward = (dx, dy, y, rows, cols, ld) => {
    const at = (r0: number, r1: number) => [dx + 4 * r0 * ld, dy + 4 * r0 * ld, y + 4 * r0 * ld, r1 - r0, cols, ld];
    if (!byRows("softmaxBackward", rows, cols, at)) ex.softmaxBackward(dx, dy, y, rows, cols, ld);
  };
  k.normStats = (x, rows, d, eps, mean, rstd) => {
    const at = (r0: number, r1: number) => [x + 4 * r0 * d, r1 - r0, d, eps, mean ? mean + 4 * r0 : 0, rstd + 4 * r0];
    if (!byRows("normStats", rows, d, at)) ex.normStats(x, rows, d, eps, mean, rstd);
  };
  k.layerNormBackward = (dx, dgamma, dbeta, dy, x, gamma, mean, rstd, rows, d, eps) => {
    const at = (r0: number, r1: number) => [
      dx + 4 * r0 * d,
      0,
      0,
      dy + 4 * r0 * d,
      x + 4 * r0 * d,
      gamma,
      mean ? mean + 4 * r0 : 0,
      rstd ? rstd + 4 * r0 : 0,
      r1 - r0,
      d,
      eps,
    ];
    // with saved statistics dgamma/dbeta are one pass over the rows: a tile of its own beside dx's
    const grads = dgamma || dbeta;
    const params = [0, dgamma, dbeta, dy, x, gamma, mean, rstd, rows, d, eps];
    if (
      !dx ||
      (grads && !(mean && rstd)) ||
      !byRows("layerNormBackward", rows, 2 * d, at, 1, 1, grads ? params : undefined)
    )
      ex.layerNormBackward(dx, dgamma, dbeta, dy, x, gamma, mean, rstd, rows, d, eps);
  };
  k.rmsNormBackward = (dx, dgamma, dy, x, gamma, rstd, rows, d, eps) => {
    const at = (r0: number, r1: number) => [
      dx + 4 * r0 * d,
      0,
      dy + 4 * r0 * d,
      x + 4 * r0 * d,
      gamma,
      rstd ? rstd + 4 * r0 : 0,
      r1 - r0,
      d,
      eps,
    ];
    const params = [0, dgamma, dy, x, gamma, rstd, rows, d, eps];
    if (!dx || (dgamma && !rstd) || !byRows("rmsNormBackward", rows, 2 * d, at, 1, 1, dgamma ? params : undefined))
      ex.rmsNormBackward(dx, dgamma, dy, x, gamma, rstd, rows, d, eps);
  };
  return k;
}
