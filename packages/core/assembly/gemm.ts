// GEMM family: C = act(alpha·op(A)·op(B) + bias + beta·C), batched matmul, GEMV. Layout: src/kernels.ts.
//
// Design (Goto & van de Geijn, "Anatomy of high-performance matrix multiplication", 2008; BLIS):
// - B is packed per (NC × KC) block into column panels of NR = 8 floats: panel q holds
//   B[pc + p, jc + 8q + jj] at (p·8 + jj), contiguous, zero-padded past N.
// - A is packed per (MC × KC) block into row panels of MR floats: panel s holds
//   A[ic + MR·s + r, pc + p] at (p·MR + r), zero-padded past M. Packing hides transA/transB and lda/ldb.
// - An MR×8 register-blocked micro-kernel keeps 2·MR f32x4 accumulators and per k step loads two
//   B vectors and MR broadcast A values. MR = 6 in the relaxed build (12 accumulators, fused
//   `relaxed_madd`); MR = 5 in the plain build, whose separate mul + add needs one more temporary.
//   Both fit V8's 15 allocatable SIMD registers on x64 with no spills (checked with --print-wasm-code);
//   unrolling the k loop made TurboFan hoist all loads and spill, so the loop is kept simple.
// - The epilogue is applied by the micro-kernel on the way out of registers: on the first K block
//   `alpha·acc + bias + beta·C`, on later blocks `C + alpha·acc`, and the activation on the last.
// - M = 1 (token-by-token decoding, a Linear on one vector) is bandwidth bound and takes its own
//   path that streams each weight once, with no packing.
// Scratch is static (`memory.data`); kernels never allocate. A threaded build's worker instances
// move it to a region of their own (`gemmScratch`, called by `setScratch` in memory.ts).
import { fma4, hsum4 } from "./inline/fma";
import { act1, unary } from "./activations";
import { relu4 } from "./inline/vmath";

// @ts-ignore: decorator
@inline export const MR = ASC_FEATURE_RELAXED_SIMD ? 6 : 5;
// @ts-ignore: decorator
@inline export const NR = 8;

/** Rows of the micro-kernel (MR): threaded callers cut the rows of a product at multiples of it. */
export function gemmRowBlock(): i32 {
  return MR;
}
/**
 * K block: an MR×KC A panel (≤ 12 KiB) and a KC×8 B panel (16 KiB) stay in L1 (48 KiB here). 512
 * rather than 256: +0.5–1.3% on products with K ≥ 512 (fewer passes over C), nothing elsewhere.
 * Also the K block of the packed layout: `PACK_KC` in src/packed.ts must be equal.
 */
// @ts-ignore: decorator
@inline export const KC = 512;
/** M block, a multiple of MR: the packed MC×KC A block (≤ 288 KiB) stays in L2. */
// @ts-ignore: decorator
@inline export const MC = MR * 24;
/** N block: the packed KC×NC B block (2 MiB); a larger NC means fewer re-packs of A (+4% at 1024³ vs 256). */
// @ts-ignore: decorator
@inline export const NC = 1024;

let packedB: usize = memory.data(KC * NC * 4, 64);
/** This instance's per-call B panel buffer (KC·NC floats); quant.ts dequantizes weights into it. */
export function packedBAt(): usize {
  return packedB;
}
/**
 * M block of `gemmPacked` (gemm-packed.ts), a multiple of MR: with no B packing to amortise, one
 * taller A block (≤ 480 KiB, in L2) means the B panels are read once for up to 240 rows (200 plain),
 * e.g. a ViT's 197 tokens: +2–5% over MC at M = 197, no change at 256…1024 (measured in-process).
 */
// @ts-ignore: decorator
@inline export const MCP = MR * 40;

/** Packed A block, sized for MCP (> MC). */
export let packedA: usize = memory.data(MCP * KC * 4, 64);
const TILE_BUF: usize = memory.data(MR * NR * 4, 16);
export let tileBufT: usize = TILE_BUF;
/** The register-tile spill buffer: a constant address in the single-thread builds. */
// @ts-ignore: decorator
@inline export function tileBufAt(): usize {
  return ASC_FEATURE_THREADS ? tileBufT : TILE_BUF;
}

// ---------------------------------------------------------------------------------------------
// Epilogue helpers

/**
 * Store four accumulated lanes to C at `cp`: first K block `alpha·acc + bias + beta·C` (C is not
 * read when beta = 0), later blocks `C + alpha·acc`; `relu` on the last block. Other activations
 * are applied by the caller to whole rows (`applyAct`), which keeps this inlined code small.
 */
// @ts-ignore: decorator
@inline export function epi4(acc: v128, cp: usize, bp: usize, alpha: f32, beta: f32, first: bool, relu: bool): void {
  let v = f32x4.mul(acc, f32x4.splat(alpha));
  if (first) {
    if (bp) v = f32x4.add(v, v128.load(bp));
    if (beta != 0) v = f32x4.add(v, f32x4.mul(f32x4.splat(beta), v128.load(cp)));
  } else {
    v = f32x4.add(v, v128.load(cp));
  }
  if (relu) v = relu4(v);
  v128.store(cp, v);
}

/** Scalar twin of epi4 for tails. */
// @ts-ignore: decorator
@inline export function epi1(acc: f32, cp: usize, bp: usize, alpha: f32, beta: f32, first: bool, relu: bool): void {
  let v = alpha * acc;
  if (first) {
    if (bp) v += load<f32>(bp);
    if (beta != 0) v += beta * load<f32>(cp);
  } else {
    v += load<f32>(cp);
  }
  if (relu) v = act1(v, 1);
  store<f32>(cp, v);
}

/** Apply a non-relu activation in place to `rows` rows of `w` floats (row stride ldc bytes). */
export function applyAct(c: usize, ldc: usize, rows: i32, w: i32, act: i32): void {
  for (let r = 0; r < rows; r++) unary(c + <usize>r * ldc, c + <usize>r * ldc, w, act);
}

// ---------------------------------------------------------------------------------------------
// Packing

/** Write the 4×4 block (rows r0..r3) transposed: column t goes to dst + t·stride bytes. */
// @ts-ignore: decorator
@inline export function transpose4(r0: v128, r1: v128, r2: v128, r3: v128, dst: usize, stride: usize): void {
  const t0 = f32x4.shuffle(r0, r1, 0, 4, 1, 5);
  const t1 = f32x4.shuffle(r0, r1, 2, 6, 3, 7);
  const t2 = f32x4.shuffle(r2, r3, 0, 4, 1, 5);
  const t3 = f32x4.shuffle(r2, r3, 2, 6, 3, 7);
  v128.store(dst, f32x4.shuffle(t0, t2, 0, 1, 4, 5));
  v128.store(dst + stride, f32x4.shuffle(t0, t2, 2, 3, 6, 7));
  v128.store(dst + 2 * stride, f32x4.shuffle(t1, t3, 0, 1, 4, 5));
  v128.store(dst + 3 * stride, f32x4.shuffle(t1, t3, 2, 3, 6, 7));
}

/**
 * Rows p0..kc−1 of a W-wide packed panel (row p at dst + p·W floats) from element (p, j) at
 * src + p·ps + j·js bytes for j < w, and 0 for w ≤ j < W: the edge panels and the k tails of the
 * packing routines below.
 */
// @ts-ignore: decorator
@inline function packScalar(src: usize, ps: usize, js: usize, p0: i32, kc: i32, w: i32, W: i32, dst: usize): void {
  for (let p = p0; p < kc; p++) {
    const s = src + <usize>p * ps;
    const d = dst + (<usize>(p * W) << 2);
    for (let j = 0; j < W; j++) store<f32>(d + (<usize>j << 2), j < w ? load<f32>(s + <usize>j * js) : 0);
  }
}

/** Pack op(B)[pc..pc+kc, jc..jc+nc] into NR-wide panels (kc·NR floats each, zero-padded) at `to`. */
export function packBBlock(b: usize, ldb: i32, transB: i32, pc: i32, kc: i32, jc: i32, nc: i32, to: usize): void {
  const ld = <usize>ldb << 2;
  let dst = to;
  for (let j0 = 0; j0 < nc; j0 += NR) {
    const w = min(NR, nc - j0);
    if (!transB) {
      // B[p, j] = b[p·ldb + j]: rows of the panel are contiguous runs of 8 floats
      const src = b + ((<usize>pc * <usize>ldb + <usize>(jc + j0)) << 2);
      if (w == NR) {
        for (let p = 0; p < kc; p++) {
          const s = src + <usize>p * ld;
          const d = dst + (<usize>p << 5);
          v128.store(d, v128.load(s));
          v128.store(d, v128.load(s, 16), 16);
        }
      } else packScalar(src, ld, 4, 0, kc, w, NR, dst);
    } else {
      // B[p, j] = b[j·ldb + p]: 8 rows of b become the panel's columns (4×4 transposes)
      const src = b + ((<usize>(jc + j0) * <usize>ldb + <usize>pc) << 2);
      let p = 0;
      if (w == NR) {
        // 4 k steps per iteration, each 4×4 transpose writes 4 panel rows (never past row kc)
        for (; p + 4 <= kc; p += 4) {
          const s = src + (<usize>p << 2);
          const d = dst + (<usize>p << 5);
          transpose4(v128.load(s), v128.load(s + ld), v128.load(s + 2 * ld), v128.load(s + 3 * ld), d, NR << 2);
          const s4 = s + 4 * ld;
          transpose4(v128.load(s4), v128.load(s4 + ld), v128.load(s4 + 2 * ld), v128.load(s4 + 3 * ld), d + 16, NR << 2);
        }
      }
      packScalar(src, 4, ld, p, kc, w, NR, dst);
    }
    dst += <usize>kc * NR << 2;
  }
}

/** Pack op(A)[ic..ic+mc, pc..pc+kc] into MR-tall panels at packedA. */
export function packA(a: usize, lda: i32, transA: i32, ic: i32, mc: i32, pc: i32, kc: i32): void {
  const ld = <usize>lda << 2;
  let dst = packedA;
  for (let i0 = 0; i0 < mc; i0 += MR) {
    const h = min(MR, mc - i0);
    if (transA) {
      // A[i, p] = a[p·lda + i]: the panel's k-th group of MR is contiguous
      const src = a + ((<usize>pc * <usize>lda + <usize>(ic + i0)) << 2);
      if (h == MR) {
        for (let p = 0; p < kc; p++) {
          const s = src + <usize>p * ld;
          const d = dst + (<usize>(p * MR) << 2);
          v128.store(d, v128.load(s));
          for (let r = 4; r < MR; r++) store<f32>(d + (<usize>r << 2), load<f32>(s + (<usize>r << 2)));
        }
      } else packScalar(src, ld, 4, 0, kc, h, MR, dst);
    } else {
      // A[i, p] = a[i·lda + p]: 4×4 transposes for rows 0..3 of the panel, rows 4.. zipped
      const src = a + ((<usize>(ic + i0) * <usize>lda + <usize>pc) << 2);
      let p = 0;
      if (h == MR) {
        for (; p + 4 <= kc; p += 4) {
          const s = src + (<usize>p << 2);
          const d = dst + <usize>(p * MR << 2);
          transpose4(v128.load(s), v128.load(s + ld), v128.load(s + 2 * ld), v128.load(s + 3 * ld), d, MR << 2);
          // rows 4.. of these 4 columns: lane t of row r goes to d + (t·MR + r)·4
          const r4 = v128.load(s + 4 * ld);
          if (MR == 6) {
            const r5 = v128.load(s + 5 * ld);
            const lo = f32x4.shuffle(r4, r5, 0, 4, 1, 5);
            const hi = f32x4.shuffle(r4, r5, 2, 6, 3, 7);
            v128.store64_lane(d + 16, lo, 0);
            v128.store64_lane(d + 16 + MR * 4, lo, 1);
            v128.store64_lane(d + 16 + MR * 8, hi, 0);
            v128.store64_lane(d + 16 + MR * 12, hi, 1);
          } else {
            v128.store32_lane(d + 16, r4, 0);
            v128.store32_lane(d + 16 + MR * 4, r4, 1);
            v128.store32_lane(d + 16 + MR * 8, r4, 2);
            v128.store32_lane(d + 16 + MR * 12, r4, 3);
          }
        }
      }
      packScalar(src, 4, ld, p, kc, h, MR, dst);
    }
    dst += <usize>kc * MR << 2;
  }
}

// ---------------------------------------------------------------------------------------------
// Micro-kernel

/**
 * C[0..h, 0..w] (row stride ldc bytes) ← epilogue(packed A panel · packed B panel) over kc steps,
 * computing R rows of the panel (R = MR, 4 or 2, a constant once inlined; h ≤ R). Full tiles are
 * stored with SIMD, with a stores-only epilogue in the plain case (first K block, alpha = 1,
 * beta = 0, no bias, no relu: +3–9% at 64³…256³, where a tile is only 64–256 k steps); R < MR tiles
 * 8 wide with SIMD row by row; other edge tiles (h = 5 of MR = 6, or w < 8) go through tileBuf.
 * `act` is 0 or 1 (relu, applied on the last K block); the callers apply other activations once
 * to the finished block (`applyAct`).
 */
// @ts-ignore: decorator
@inline function kernelR(
  R: i32, kc: i32, ap: usize, bp: usize, c: usize, ldc: usize, h: i32, w: i32,
  bias: usize, alpha: f32, beta: f32, first: bool, last: bool, act: i32,
): void {
  const tileBuf = tileBufAt();
  // rows 2..5 exist only when R is large enough (compile-time branches); the loop ends on bp, with
  // no separate counter
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0);
  let c50 = f32x4.splat(0), c51 = f32x4.splat(0);
  let b0: v128, b1: v128, a: v128;
  const bEnd = bp + (<usize>kc << 5);
  for (; bp < bEnd; ) {
    b0 = v128.load(bp, 0);
    b1 = v128.load(bp, 16);
    a = v128.load32_splat(ap, 0);
    c00 = fma4(a, b0, c00);
    c01 = fma4(a, b1, c01);
    a = v128.load32_splat(ap, 4);
    c10 = fma4(a, b0, c10);
    c11 = fma4(a, b1, c11);
    if (R > 2) {
      a = v128.load32_splat(ap, 8);
      c20 = fma4(a, b0, c20);
      c21 = fma4(a, b1, c21);
      a = v128.load32_splat(ap, 12);
      c30 = fma4(a, b0, c30);
      c31 = fma4(a, b1, c31);
    }
    if (R > 4) {
      a = v128.load32_splat(ap, 16);
      c40 = fma4(a, b0, c40);
      c41 = fma4(a, b1, c41);
    }
    if (R > 5) {
      a = v128.load32_splat(ap, 20);
      c50 = fma4(a, b0, c50);
      c51 = fma4(a, b1, c51);
    }
    ap += MR << 2;
    bp += NR << 2;
  }
  const relu = last && act == 1;
  if (R == MR && h == MR && w == NR && first && beta == 0 && alpha == 1 && !bias && !relu) {
    // plain C = A·B tile (the common case): only stores
    v128.store(c, c00);
    v128.store(c, c01, 16);
    c += ldc;
    v128.store(c, c10);
    v128.store(c, c11, 16);
    c += ldc;
    v128.store(c, c20);
    v128.store(c, c21, 16);
    c += ldc;
    v128.store(c, c30);
    v128.store(c, c31, 16);
    if (MR > 4) {
      c += ldc;
      v128.store(c, c40);
      v128.store(c, c41, 16);
    }
    if (MR > 5) {
      c += ldc;
      v128.store(c, c50);
      v128.store(c, c51, 16);
    }
    return;
  }
  if (R == MR && h == MR && w == NR && !first && alpha == 1 && !relu) {
    // a later K block of a plain product: C += acc
    v128.store(c, f32x4.add(v128.load(c), c00));
    v128.store(c, f32x4.add(v128.load(c, 16), c01), 16);
    c += ldc;
    v128.store(c, f32x4.add(v128.load(c), c10));
    v128.store(c, f32x4.add(v128.load(c, 16), c11), 16);
    c += ldc;
    v128.store(c, f32x4.add(v128.load(c), c20));
    v128.store(c, f32x4.add(v128.load(c, 16), c21), 16);
    c += ldc;
    v128.store(c, f32x4.add(v128.load(c), c30));
    v128.store(c, f32x4.add(v128.load(c, 16), c31), 16);
    if (MR > 4) {
      c += ldc;
      v128.store(c, f32x4.add(v128.load(c), c40));
      v128.store(c, f32x4.add(v128.load(c, 16), c41), 16);
    }
    if (MR > 5) {
      c += ldc;
      v128.store(c, f32x4.add(v128.load(c), c50));
      v128.store(c, f32x4.add(v128.load(c, 16), c51), 16);
    }
    return;
  }
  if (R == MR && h == MR && w == NR) {
    const b1 = bias ? bias + 16 : 0;
    epi4(c00, c, bias, alpha, beta, first, relu);
    epi4(c01, c + 16, b1, alpha, beta, first, relu);
    c += ldc;
    epi4(c10, c, bias, alpha, beta, first, relu);
    epi4(c11, c + 16, b1, alpha, beta, first, relu);
    c += ldc;
    epi4(c20, c, bias, alpha, beta, first, relu);
    epi4(c21, c + 16, b1, alpha, beta, first, relu);
    c += ldc;
    epi4(c30, c, bias, alpha, beta, first, relu);
    epi4(c31, c + 16, b1, alpha, beta, first, relu);
    if (MR > 4) {
      c += ldc;
      epi4(c40, c, bias, alpha, beta, first, relu);
      epi4(c41, c + 16, b1, alpha, beta, first, relu);
    }
    if (MR > 5) {
      c += ldc;
      epi4(c50, c, bias, alpha, beta, first, relu);
      epi4(c51, c + 16, b1, alpha, beta, first, relu);
    }
    return;
  }
  if (R < MR && w == NR) {
    const b1 = bias ? bias + 16 : 0;
    epi4(c00, c, bias, alpha, beta, first, relu);
    epi4(c01, c + 16, b1, alpha, beta, first, relu);
    if (h > 1) {
      epi4(c10, c + ldc, bias, alpha, beta, first, relu);
      epi4(c11, c + ldc + 16, b1, alpha, beta, first, relu);
    }
    if (R > 2 && h > 2) {
      epi4(c20, c + 2 * ldc, bias, alpha, beta, first, relu);
      epi4(c21, c + 2 * ldc + 16, b1, alpha, beta, first, relu);
    }
    if (R > 3 && h > 3) {
      epi4(c30, c + 3 * ldc, bias, alpha, beta, first, relu);
      epi4(c31, c + 3 * ldc + 16, b1, alpha, beta, first, relu);
    }
    return;
  }
  v128.store(tileBuf, c00, 0);
  v128.store(tileBuf, c01, 16);
  v128.store(tileBuf, c10, 32);
  v128.store(tileBuf, c11, 48);
  if (R > 2) {
    v128.store(tileBuf, c20, 64);
    v128.store(tileBuf, c21, 80);
    v128.store(tileBuf, c30, 96);
    v128.store(tileBuf, c31, 112);
  }
  if (R > 4) {
    v128.store(tileBuf, c40, 128);
    v128.store(tileBuf, c41, 144);
  }
  if (R > 5) {
    v128.store(tileBuf, c50, 160);
    v128.store(tileBuf, c51, 176);
  }
  for (let r = 0; r < h; r++) {
    const cr = c + <usize>r * ldc;
    const tr = tileBuf + (<usize>(r * NR) << 2);
    for (let j = 0; j < w; j++) {
      const o = <usize>j << 2;
      epi1(load<f32>(tr + o), cr + o, bias ? bias + o : 0, alpha, beta, first, relu);
    }
  }
}

function kernelMR(
  kc: i32, ap: usize, bp: usize, c: usize, ldc: usize, h: i32, w: i32,
  bias: usize, alpha: f32, beta: f32, first: bool, last: bool, act: i32,
): void {
  kernelR(MR, kc, ap, bp, c, ldc, h, w, bias, alpha, beta, first, last, act);
}

function kernel4(
  kc: i32, ap: usize, bp: usize, c: usize, ldc: usize, h: i32, w: i32,
  bias: usize, alpha: f32, beta: f32, first: bool, last: bool, act: i32,
): void {
  kernelR(4, kc, ap, bp, c, ldc, h, w, bias, alpha, beta, first, last, act);
}

function kernel2(
  kc: i32, ap: usize, bp: usize, c: usize, ldc: usize, h: i32, w: i32,
  bias: usize, alpha: f32, beta: f32, first: bool, last: bool, act: i32,
): void {
  kernelR(2, kc, ap, bp, c, ldc, h, w, bias, alpha, beta, first, last, act);
}

/**
 * The h×w tile of a packed A panel (h ≤ MR rows) times a packed B panel (w ≤ 8 columns). An edge
 * tile of h ≤ 4 (≤ 2) rows runs a 4-row (2-row) register tile rather than MR rows of which some are
 * zero padding (+5% at 64³ and +2% at 128³, whose last tiles have 4 and 2 rows).
 */
// @ts-ignore: decorator
@inline export function kernel(
  kc: i32, ap: usize, bp: usize, c: usize, ldc: usize, h: i32, w: i32,
  bias: usize, alpha: f32, beta: f32, first: bool, last: bool, act: i32,
): void {
  if (h > 4) kernelMR(kc, ap, bp, c, ldc, h, w, bias, alpha, beta, first, last, act);
  else if (h > 2) kernel4(kc, ap, bp, c, ldc, h, w, bias, alpha, beta, first, last, act);
  else kernel2(kc, ap, bp, c, ldc, h, w, bias, alpha, beta, first, last, act);
}

// ---------------------------------------------------------------------------------------------
// M = 1: one row times a matrix, weights streamed once

/** Horizontal sums of four vectors as one vector: lane r = Σ lanes of v_r. */
// @ts-ignore: decorator
@inline function hsum4x4(v0: v128, v1: v128, v2: v128, v3: v128): v128 {
  const t0 = f32x4.add(f32x4.shuffle(v0, v1, 0, 4, 1, 5), f32x4.shuffle(v0, v1, 2, 6, 3, 7)); // v0,v1 pairwise
  const t1 = f32x4.add(f32x4.shuffle(v2, v3, 0, 4, 1, 5), f32x4.shuffle(v2, v3, 2, 6, 3, 7));
  return f32x4.add(f32x4.shuffle(t0, t1, 0, 1, 4, 5), f32x4.shuffle(t0, t1, 2, 3, 6, 7));
}

/**
 * y[j] = epilogue(Σ_p x[p]·B[j, p]) for j < N, B rows of ldb floats (transB = 1, a Linear weight).
 * Six weight rows are streamed side by side against one x vector, each read exactly once.
 */
function rowDots(
  N: i32, K: i32, x: usize, b: usize, ldb: i32, y: usize,
  bias: usize, alpha: f32, beta: f32, relu: bool,
): void {
  const ld = <usize>ldb << 2;
  const end4 = <usize>(K & ~3) << 2;
  const endK = <usize>K << 2;
  let j = 0;
  for (; j + 6 <= N; j += 6) {
    // six rows: 6 accumulators + 6 loaded vectors + x fit V8's 15 SIMD registers without spills
    const r0 = b + <usize>j * ld;
    const r1 = r0 + ld, r2 = r1 + ld, r3 = r2 + ld, r4 = r3 + ld, r5 = r4 + ld;
    let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
    let s4 = f32x4.splat(0), s5 = f32x4.splat(0);
    let o: usize = 0;
    for (; o < end4; o += 16) {
      const xv = v128.load(x + o);
      s0 = fma4(v128.load(r0 + o), xv, s0);
      s1 = fma4(v128.load(r1 + o), xv, s1);
      s2 = fma4(v128.load(r2 + o), xv, s2);
      s3 = fma4(v128.load(r3 + o), xv, s3);
      s4 = fma4(v128.load(r4 + o), xv, s4);
      s5 = fma4(v128.load(r5 + o), xv, s5);
    }
    let d0 = hsum4x4(s0, s1, s2, s3);
    let d4 = hsum4(s4), d5 = hsum4(s5);
    for (; o < endK; o += 4) {
      const xs = load<f32>(x + o);
      let t = f32x4.replace_lane(f32x4.splat(load<f32>(r0 + o)), 1, load<f32>(r1 + o));
      t = f32x4.replace_lane(f32x4.replace_lane(t, 2, load<f32>(r2 + o)), 3, load<f32>(r3 + o));
      d0 = fma4(t, f32x4.splat(xs), d0);
      d4 += load<f32>(r4 + o) * xs;
      d5 += load<f32>(r5 + o) * xs;
    }
    const cp = y + (<usize>j << 2);
    const bp = bias ? bias + (<usize>j << 2) : 0;
    epi4(d0, cp, bp, alpha, beta, true, relu);
    epi1(d4, cp + 16, bp ? bp + 16 : 0, alpha, beta, true, relu);
    epi1(d5, cp + 20, bp ? bp + 20 : 0, alpha, beta, true, relu);
  }
  for (; j < N; j++) {
    const r0 = b + <usize>j * ld;
    let s0 = f32x4.splat(0);
    let o: usize = 0;
    for (; o < end4; o += 16) s0 = fma4(v128.load(r0 + o), v128.load(x + o), s0);
    let d0 = hsum4(s0);
    for (; o < endK; o += 4) d0 += load<f32>(r0 + o) * load<f32>(x + o);
    const o2 = <usize>j << 2;
    epi1(d0, y + o2, bias ? bias + o2 : 0, alpha, beta, true, relu);
  }
}

/** Column chunk of the transB = 0 row path: its partial sums (NCH floats) stay in L1. */
// @ts-ignore: decorator
@inline const NCH = 1024;
let rowAcc: usize = memory.data(NCH * 4, 64);

/**
 * y[j] = epilogue(Σ_p x[p]·B[p, j]) for j < N, B rows of ldb floats (transB = 0).
 * Per column chunk, four rows of B are streamed at once into partial sums held in L1.
 */
function rowTimesMatrix(
  N: i32, K: i32, x: usize, b: usize, ldb: i32, y: usize,
  bias: usize, alpha: f32, beta: f32, relu: bool,
): void {
  const ld = <usize>ldb << 2;
  for (let j0 = 0; j0 < N; j0 += NCH) {
    const n = min(NCH, N - j0);
    const n8 = <usize>(n & ~7) << 2;
    const nB = <usize>n << 2;
    memory.fill(rowAcc, 0, nB);
    let p = 0;
    for (; p + 4 <= K; p += 4) {
      // four rows: 8 loaded vectors + 2 partial sums + 4 broadcasts fit the SIMD registers
      const r0 = b + ((<usize>p * <usize>ldb + <usize>j0) << 2);
      const r1 = r0 + ld, r2 = r1 + ld, r3 = r2 + ld;
      const xp = x + (<usize>p << 2);
      const x0 = v128.load32_splat(xp), x1 = v128.load32_splat(xp, 4);
      const x2 = v128.load32_splat(xp, 8), x3 = v128.load32_splat(xp, 12);
      let o: usize = 0;
      for (; o < n8; o += 32) {
        let y0 = v128.load(rowAcc + o);
        let y1 = v128.load(rowAcc + o, 16);
        y0 = fma4(x0, v128.load(r0 + o), y0);
        y1 = fma4(x0, v128.load(r0 + o, 16), y1);
        y0 = fma4(x1, v128.load(r1 + o), y0);
        y1 = fma4(x1, v128.load(r1 + o, 16), y1);
        y0 = fma4(x2, v128.load(r2 + o), y0);
        y1 = fma4(x2, v128.load(r2 + o, 16), y1);
        y0 = fma4(x3, v128.load(r3 + o), y0);
        y1 = fma4(x3, v128.load(r3 + o, 16), y1);
        v128.store(rowAcc + o, y0);
        v128.store(rowAcc + o, y1, 16);
      }
      for (; o < nB; o += 4) {
        let s = load<f32>(rowAcc + o);
        s += load<f32>(xp) * load<f32>(r0 + o) + load<f32>(xp, 4) * load<f32>(r1 + o);
        s += load<f32>(xp, 8) * load<f32>(r2 + o) + load<f32>(xp, 12) * load<f32>(r3 + o);
        store<f32>(rowAcc + o, s);
      }
    }
    for (; p < K; p++) {
      const r0 = b + ((<usize>p * <usize>ldb + <usize>j0) << 2);
      const xs = load<f32>(x + (<usize>p << 2));
      const x0 = f32x4.splat(xs);
      let o: usize = 0;
      for (; o + 16 <= nB; o += 16) v128.store(rowAcc + o, fma4(x0, v128.load(r0 + o), v128.load(rowAcc + o)));
      for (; o < nB; o += 4) store<f32>(rowAcc + o, load<f32>(rowAcc + o) + xs * load<f32>(r0 + o));
    }
    const cp = y + (<usize>j0 << 2);
    const bp = bias ? bias + (<usize>j0 << 2) : 0;
    let o: usize = 0;
    for (; o + 16 <= nB; o += 16) epi4(v128.load(rowAcc + o), cp + o, bp ? bp + o : 0, alpha, beta, true, relu);
    for (; o < nB; o += 4) epi1(load<f32>(rowAcc + o), cp + o, bp ? bp + o : 0, alpha, beta, true, relu);
  }
}

// ---------------------------------------------------------------------------------------------
// Drivers

/** Split n into ceil(n/max) near-equal blocks; returns the block size (a multiple of `unit` when possible). */
// @ts-ignore: decorator
@inline export function blockSize(n: i32, max: i32, unit: i32): i32 {
  const blocks = (n + max - 1) / max;
  const s = (n + blocks - 1) / blocks;
  return min(max, (s + unit - 1) / unit * unit);
}

/** K = 0: C = act(bias + beta·C) over M×N (row stride ldcB bytes). */
export function emptyProduct(M: i32, N: i32, c: usize, ldcB: usize, bias: usize, alpha: f32, beta: f32, act: i32): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      const o = <usize>j << 2;
      epi1(0, c + <usize>i * ldcB + o, bias ? bias + o : 0, alpha, beta, true, act == 1);
    }
  }
  if (act > 1) applyAct(c, ldcB, M, N, act);
}

/**
 * One K block (rows pc..pc+kc of op(B)) of the blocked product into C's columns jc..jc+nc: per M block
 * of up to mcMax rows, pack A, then run the micro-kernel on every tile against the B block packed
 * at bBlock (its 8-column panels kc·NR floats apart). Relu is fused in the tiles of the last K block;
 * other activations are applied once to each finished block, row by row (not per tile: six 8-float
 * calls). Shared by `gemm` (B packed per call) and `gemmPacked` (B packed once).
 */
export function blockPass(
  M: i32, mcMax: i32, a: usize, lda: i32, transA: i32, pc: i32, kc: i32, bBlock: usize,
  c: usize, ldcB: usize, jc: i32, nc: i32, bias: usize, alpha: f32, beta: f32, first: bool, last: bool, act: i32,
): void {
  const tileAct = act == 1 ? 1 : 0;
  for (let ic = 0; ic < M; ic += mcMax) {
    const mc = min(mcMax, M - ic);
    packA(a, lda, transA, ic, mc, pc, kc);
    const cBlock = c + <usize>ic * ldcB + (<usize>jc << 2);
    for (let jr = 0; jr < nc; jr += NR) {
      const bp = bBlock + (<usize>jr * <usize>kc << 2);
      const biasp = bias ? bias + (<usize>(jc + jr) << 2) : 0;
      const w = min(NR, nc - jr);
      for (let ir = 0; ir < mc; ir += MR) {
        kernel(
          kc, packedA + (<usize>ir * <usize>kc << 2), bp, cBlock + <usize>ir * ldcB + (<usize>jr << 2), ldcB,
          min(MR, mc - ir), w, biasp, alpha, beta, first, last, tileAct,
        );
      }
    }
    if (last && act > 1) applyAct(cBlock, ldcB, mc, nc, act);
  }
}

function gemmImpl(
  M: i32, N: i32, K: i32,
  a: usize, lda: i32, transA: i32,
  b: usize, ldb: i32, transB: i32,
  c: usize, ldc: i32,
  bias: usize, alpha: f32, beta: f32, act: i32,
): void {
  if (M <= 0 || N <= 0) return;
  const ldcB = <usize>ldc << 2;
  if (K <= 0) {
    emptyProduct(M, N, c, ldcB, bias, alpha, beta, act);
    return;
  }
  if (M == 1 && (!transA || lda == 1)) {
    // op(A) is one contiguous row
    if (transB) rowDots(N, K, a, b, ldb, c, bias, alpha, beta, act == 1);
    else rowTimesMatrix(N, K, a, b, ldb, c, bias, alpha, beta, act == 1);
    if (act > 1) unary(c, c, N, act);
    return;
  }
  const kcMax = blockSize(K, KC, 4);
  const mcMax = blockSize(M, MC, MR);
  for (let jc = 0; jc < N; jc += NC) {
    const nc = min(NC, N - jc);
    for (let pc = 0; pc < K; pc += kcMax) {
      const kc = min(kcMax, K - pc);
      const first = pc == 0;
      const last = pc + kc >= K;
      packBBlock(b, ldb, transB, pc, kc, jc, nc, packedB);
      blockPass(M, mcMax, a, lda, transA, pc, kc, packedB, c, ldcB, jc, nc, bias, alpha, beta, first, last, act);
    }
  }
}

/**
 * General matrix multiply `C = act(alpha·op(A)·op(B) + bias + beta·C)`; see `Kernels.gemm` in
 * src/kernels.ts for the layout contract. C must not alias A or B.
 */
export function gemm(
  M: i32, N: i32, K: i32,
  a: usize, lda: i32, transA: i32,
  b: usize, ldb: i32, transB: i32,
  c: usize, ldc: i32,
  bias: usize, alpha: f32, beta: f32, act: i32,
): void {
  gemmImpl(M, N, K, a, lda, transA, b, ldb, transB, c, ldc, bias, alpha, beta, act);
}

/** Batched matmul: `gemm` per batch element at `a + t·strideA` etc. (strides in floats, 0 broadcasts). */
export function bmm(
  batch: i32, M: i32, N: i32, K: i32,
  a: usize, strideA: i32, lda: i32, transA: i32,
  b: usize, strideB: i32, ldb: i32, transB: i32,
  c: usize, strideC: i32, ldc: i32,
  alpha: f32, beta: f32,
): void {
  if (batch <= 0) return;
  if (strideB == 0 && !transA && strideA == M * lda && strideC == M * ldc && <i64>batch * <i64>M <= <i64>i32.MAX_VALUE) {
    // one B for every batch element and A, C batches stacked row after row: a single taller GEMM
    // (B is packed once instead of once per batch element)
    gemmImpl(batch * M, N, K, a, lda, 0, b, ldb, transB, c, ldc, 0, alpha, beta, 0);
    return;
  }
  for (let t = 0; t < batch; t++) {
    gemmImpl(M, N, K,
      a + (<usize>t * <usize>strideA << 2), lda, transA,
      b + (<usize>t * <usize>strideB << 2), ldb, transB,
      c + (<usize>t * <usize>strideC << 2), ldc, 0, alpha, beta, 0);
  }
}

/** y[r] = dot(m[r, :], v) for r < rows, rows of d floats (contiguous). */
export function gemv(m: usize, rows: i32, d: i32, v: usize, y: usize): void {
  if (rows <= 0) return;
  if (d <= 0) {
    memory.fill(y, 0, <usize>rows << 2);
    return;
  }
  rowDots(rows, d, v, m, d, y, 0, 1, 0, false);
}

/** Bytes of this file's scratch (packedB, packedA, tileBuf, rowAcc), each 64-byte aligned. */
// @ts-ignore: decorator
@inline export const GEMM_SCRATCH: usize = KC * NC * 4 + MCP * KC * 4 + 256 + NCH * 4;

/** Point this instance's GEMM scratch at `base` (64-byte aligned, GEMM_SCRATCH bytes). */
export function gemmScratch(base: usize): void {
  packedB = base;
  packedA = base + KC * NC * 4;
  tileBufT = packedA + MCP * KC * 4;
  rowAcc = tileBufT + 256;
}
