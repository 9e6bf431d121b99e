// Products with 8- and 4-bit block-quantized weights, in ggml's block layouts as GGUF stores them:
// quantRowBytes, xqRowBytes, quantizeRowsQ8, gemvQ, gemmQRange, dequantRowsQ. Layout and
// numeric contract: `Kernels.gemvQ` / `Kernels.gemmQ` in src/kernels.ts.
//
// A weight W [N, K] (a Linear weight, rows = outputs) is N rows of K/32 blocks, row after row:
//   Q8_0 (ggml type 8):  { f16 d; i8 qs[32] }   34 bytes, w = qs[i]·d
//   Q4_0 (ggml type 2):  { f16 d; u8 qs[16] }   18 bytes, w = (nibble − 8)·d, low nibbles are
//                                                 values 0..15 of the block, high nibbles 16..31
//
// Decode (gemvQ) follows ggml's vec_dot_q8_0_q8_0 / q4_0_q8_0: x is first quantized per block of
// 32 to int8 (quantizeRowsQ8: d = amax/127 kept in f32, q = roundf(x/d)), each block's dot product
// is an exact integer, and the f32 sum over blocks is acc += f32(Σ qw·qx) · (dw·dx), a scalar per
// output row, blocks in order. Integer dot products: `i32x4.dot_i16x8_s` on the sign-extended
// values (both builds), and for Q4_0 in the relaxed build `i16x8.relaxed_dot_i8x16_i7x16_s`
// with the raw nibbles (0..15, inside the i7 operand's range) as its second operand, the −8 folded
// into −8·Σqx per block. Both give the same integers, so every build gives the same bits.
//
// Prefill (gemmQRange) dequantizes each K block × 1024-column slice of W (exactly ggml's
// dequantize_row_*) into the GEMM's per-call B panel buffer and runs the blocked GEMM on it: the
// same arithmetic as `gemmPacked` on the dequantized weight, without a full f32 copy.
import { KC, MCP, MR, NC, NR, applyAct, blockSize, emptyProduct, epi1, kernel, packA, packedA, packedBAt } from "./gemm";

// @ts-ignore: decorator
@inline const Q8_0: i32 = 8;
// @ts-ignore: decorator
@inline const Q4_0: i32 = 2;

/** Bytes of one row of K values of ggml type `type` (Q8_0: 34 per 32, Q4_0: 18 per 32), 0 if unknown. */
export function quantRowBytes(type: i32, K: i32): i32 {
  if (K <= 0) return 0;
  if (type == Q8_0) return (K >> 5) * 34;
  if (type == Q4_0) return (K >> 5) * 18;
  return 0;
}

/**
 * Bytes of one quantized activation row (K a multiple of 32), 16-byte multiple:
 * i16 q[K] at 0, i8 q[K] at 2K, f32 d[K/32] at 3K, i32 Σq[K/32] at 3K + K/8.
 */
export function xqRowBytes(K: i32): i32 {
  if (K <= 0) return 0;
  return ((3 * K + (K >> 2)) + 15) & ~15;
}

/** roundf (halves away from zero) of four lanes, exact for |v| < 2²³. */
// @ts-ignore: decorator
@inline function roundAway4(v: v128): v128 {
  const t = f32x4.trunc(v);
  const half = f32x4.ge(f32x4.abs(f32x4.sub(v, t)), f32x4.splat(0.5));
  const one = v128.or(v128.and(v, i32x4.splat(0x80000000)), f32x4.splat(1));
  return f32x4.add(t, v128.and(half, one));
}

/**
 * Quantize M rows of x (K floats each, row stride ldx floats) per block of 32 into the xq layout
 * (`xqRowBytes(K)` bytes a row): d = amax/127, id = d ? 1/d : 0, q = roundf(x·id), as ggml's
 * quantize_row_q8_0_ref, but d kept in f32 (ggml rounds it to f16).
 */
export function quantizeRowsQ8(x: usize, ldx: i32, M: i32, K: i32, xq: usize): void {
  const nb = K >> 5;
  const rowB = <usize>xqRowBytes(K);
  for (let r = 0; r < M; r++) {
    const xr = x + (<usize>r * <usize>ldx << 2);
    const q16 = xq + <usize>r * rowB;
    const q8 = q16 + (<usize>K << 1);
    const dp = q16 + <usize>K * 3;
    const sp = dp + (<usize>nb << 2);
    for (let b = 0; b < nb; b++) {
      const xb = xr + (<usize>b << 7);
      let m = f32x4.abs(v128.load(xb));
      for (let i = 16; i < 128; i += 16) m = f32x4.max(m, f32x4.abs(v128.load(xb + i)));
      const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
      const d: f32 = amax / 127;
      const id: f32 = d != 0 ? <f32>1 / d : 0;
      const idv = f32x4.splat(id);
      let sum = i32x4.splat(0);
      for (let i = 0; i < 32; i += 8) {
        const a = i32x4.trunc_sat_f32x4_s(roundAway4(f32x4.mul(v128.load(xb + (<usize>i << 2)), idv)));
        const c = i32x4.trunc_sat_f32x4_s(roundAway4(f32x4.mul(v128.load(xb + (<usize>i << 2), 16), idv)));
        sum = i32x4.add(sum, i32x4.add(a, c));
        const h = i16x8.narrow_i32x4_s(a, c);
        v128.store(q16 + (<usize>(b * 32 + i) << 1), h);
        v128.store64_lane(q8 + <usize>(b * 32 + i), i8x16.narrow_i16x8_s(h, h), 0);
      }
      store<f32>(dp + (<usize>b << 2), d);
      store<i32>(
        sp + (<usize>b << 2),
        i32x4.extract_lane(sum, 0) + i32x4.extract_lane(sum, 1) + i32x4.extract_lane(sum, 2) + i32x4.extract_lane(sum, 3),
      );
    }
  }
}

/** An f16 value (bits h) as f32, exactly (subnormals, ±∞, NaN). */
// @ts-ignore: decorator
@inline function f16ToF32(h: u32): f32 {
  // exponent and mantissa moved to f32's place, then scaled by 2^(127−15): exact for normal and
  // subnormal halves alike; exponent 31 (∞, NaN) maps to 255 instead
  const o = (h & 0x7fff) << 13;
  let v = reinterpret<f32>(o) * reinterpret<f32>(0x77800000);
  if (o >= 0x0f800000) v = reinterpret<f32>(o | 0x70000000);
  return reinterpret<f32>(reinterpret<u32>(v) | ((h & 0x8000) << 16));
}

/** The sum of the four i32 lanes (exact). */
// @ts-ignore: decorator
@inline function hsumI(s: v128): i32 {
  const t = i32x4.add(s, i32x4.shuffle(s, s, 2, 3, 0, 1));
  return i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1);
}

/** Σ over one Q8_0 block (quants at q) times the i16 x block (4 vectors). */
// @ts-ignore: decorator
@inline function dotQ8(q: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const a = v128.load(q);
  const b = v128.load(q, 16);
  const s = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(a), x0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(a), x1));
  return i32x4.add(s, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(b), x2), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(b), x3)));
}

/** Σ nibble·qx over one Q4_0 block (nibbles at q); plain SIMD on the i16 x block. */
// @ts-ignore: decorator
@inline function dotQ4(q: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const v = v128.load(q);
  const lo = v128.and(v, i8x16.splat(15));
  const hi = i8x16.shr_u(v, 4);
  const s = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), x0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), x1));
  return i32x4.add(s, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), x2), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), x3)));
}

/**
 * Σ nibble·qx over one Q4_0 block; relaxed SIMD on the i8 x block (nibbles are the i7 operand).
 * `i16x8.relaxed_dot_i8x16_i7x16_s` then a pairwise widening add: the fused
 * `i32x4.relaxed_dot_i8x16_i7x16_add_s` gave wrong sums in Node 20's V8 (11.3).
 */
// @ts-ignore: decorator
@inline function dotQ4r(q: usize, xa: v128, xb: v128): v128 {
  const v = v128.load(q);
  // each i16 lane: two products ≤ 127·15, two dots added ≤ 7620: no overflow
  const s = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xa, v128.and(v, i8x16.splat(15))), i16x8.relaxed_dot_i8x16_i7x16_s(xb, i8x16.shr_u(v, 4)));
  return i32x4.extadd_pairwise_i16x8_s(s);
}

/**
 * One weight row (nb blocks at w) times one quantized x row, blocks in order:
 * acc = f32(acc + f32(f32(Σ qw·qx) · f32(dw·dx))).
 */
// @ts-ignore: decorator
@inline function rowDot(type: i32, nb: i32, w: usize, xr: usize, K: i32): f32 {
  const x8 = xr + (<usize>K << 1);
  const dp = xr + <usize>K * 3;
  const sp = dp + (<usize>nb << 2);
  let acc: f32 = 0;
  for (let b = 0; b < nb; b++) {
    let S: i32;
    if (type == Q8_0) {
      const xo = xr + (<usize>b << 6);
      S = hsumI(dotQ8(w + 2, v128.load(xo), v128.load(xo, 16), v128.load(xo, 32), v128.load(xo, 48)));
      w += 34;
    } else {
      if (ASC_FEATURE_RELAXED_SIMD) {
        const xo = x8 + (<usize>b << 5);
        S = hsumI(dotQ4r(w + 2, v128.load(xo), v128.load(xo, 16)));
      } else {
        const xo = xr + (<usize>b << 6);
        S = hsumI(dotQ4(w + 2, v128.load(xo), v128.load(xo, 16), v128.load(xo, 32), v128.load(xo, 48)));
      }
      S -= load<i32>(sp + (<usize>b << 2)) << 3; // (q − 8)·qx = q·qx − 8·qx
      w += 18;
    }
    acc += <f32>S * (f16ToF32(load<u16>(w - (type == Q8_0 ? 34 : 18))) * load<f32>(dp + (<usize>b << 2)));
  }
  return acc;
}

// @ts-ignore: decorator
@noinline function rowDotQ8(nb: i32, w: usize, xr: usize, K: i32): f32 {
  return rowDot(Q8_0, nb, w, xr, K);
}

// @ts-ignore: decorator
@noinline function rowDotQ4(nb: i32, w: usize, xr: usize, K: i32): f32 {
  return rowDot(Q4_0, nb, w, xr, K);
}

/**
 * y[m, j] = act(Σ_k W[j, k]·x[m, k] + bias[j] + beta·y[m, j]) for m < M, j < N: W [N, K] quantized
 * (type Q8_0 or Q4_0, rows `quantRowBytes(type, K)` apart), x quantized by `quantizeRowsQ8`
 * (rows `xqRowBytes(K)` apart), y rows ldy floats apart. Row by row of W, each read once for all M
 * rows of x. (Four rows at a time with one SIMD lane per row, which needs the four scales and the
 * four block sums gathered into vectors per block, measured 3.9× slower: 0.63 against 0.16 ms of
 * CPU for a 3072×768 Q8_0 weight.)
 */
export function gemvQ(
  type: i32, M: i32, N: i32, K: i32, xq: usize, w: usize, y: usize, ldy: i32, bias: usize, beta: f32, act: i32,
): void {
  if (M <= 0 || N <= 0 || K <= 0 || (K & 31) != 0 || quantRowBytes(type, K) == 0) return;
  const nb = K >> 5;
  const rb = <usize>quantRowBytes(type, K);
  const xrB = <usize>xqRowBytes(K);
  const ldyB = <usize>ldy << 2;
  const relu = act == 1;
  for (let j = 0; j < N; j++) {
    const wr = w + <usize>j * rb;
    const o = <usize>j << 2;
    for (let m = 0; m < M; m++) {
      const xr = xq + <usize>m * xrB;
      const acc = type == Q8_0 ? rowDotQ8(nb, wr, xr, K) : rowDotQ4(nb, wr, xr, K);
      epi1(acc, y + <usize>m * ldyB + o, bias ? bias + o : 0, 1, beta, true, relu);
    }
  }
  if (act > 1) applyAct(y, ldyB, M, N, act);
}

/** Dequantize values [k0, k0 + 32·nb) of one weight row (ggml's dequantize_row_*) to dst (floats `ds` bytes apart). */
// @ts-ignore: decorator
@inline function dequantBlocks(type: i32, row: usize, k0: i32, nb: i32, dst: usize, ds: usize): void {
  const bsz: usize = type == Q8_0 ? 34 : 18;
  let bp = row + <usize>(k0 >> 5) * bsz;
  let d = dst;
  for (let b = 0; b < nb; b++) {
    const s = f16ToF32(load<u16>(bp));
    if (type == Q8_0) {
      for (let i = 0; i < 32; i++) store<f32>(d + <usize>i * ds, <f32>load<i8>(bp + 2 + i) * s);
    } else {
      for (let i = 0; i < 16; i++) {
        const q = load<u8>(bp + 2 + i);
        store<f32>(d + <usize>i * ds, <f32>((<i32>q & 15) - 8) * s);
        store<f32>(d + <usize>(i + 16) * ds, <f32>((<i32>q >> 4) - 8) * s);
      }
    }
    bp += bsz;
    d += 32 * ds;
  }
}

/**
 * dst rows r < n = W[ids[r], :] dequantized (K floats each, contiguous): the embedding gather of a
 * quantized table. ids are i32 and must be in [0, rows of W) (the caller checks them).
 */
export function dequantRowsQ(type: i32, K: i32, w: usize, ids: usize, n: i32, dst: usize): void {
  const rb = <usize>quantRowBytes(type, K);
  if (rb == 0 || (K & 31) != 0) return;
  for (let r = 0; r < n; r++) {
    const id = <usize>load<i32>(ids + (<usize>r << 2));
    if (type == Q8_0) dequantBlocks(Q8_0, w + id * rb, 0, K >> 5, dst + (<usize>r * <usize>K << 2), 4);
    else dequantBlocks(Q4_0, w + id * rb, 0, K >> 5, dst + (<usize>r * <usize>K << 2), 4);
  }
}

/** Values 4c..4c+3 of block b of a weight row, dequantized (ggml's arithmetic: f32(q · d)). */
// @ts-ignore: decorator
@inline function dequant4(type: i32, row: usize, b: i32, c: i32, d: v128): v128 {
  let q: v128;
  if (type == Q8_0) {
    q = i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(v128.load32_zero(row + <usize>b * 34 + 2 + <usize>(c << 2))));
  } else {
    const v = v128.load32_zero(row + <usize>b * 18 + 2 + <usize>((c & 3) << 2));
    const n = c < 4 ? v128.and(v, i8x16.splat(15)) : i8x16.shr_u(v, 4); // low nibbles: values 0..15
    q = i32x4.sub(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(n)), i32x4.splat(8));
  }
  return f32x4.mul(f32x4.convert_i32x4_s(q), d);
}

/** Write the 4×4 block (rows r0..r3) transposed: column t goes to dst + t·stride bytes. */
// @ts-ignore: decorator
@inline function transpose4(r0: v128, r1: v128, r2: v128, r3: v128, dst: usize, stride: usize): void {
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
 * Four rows (r0 at `row`, `n` < 4 of them real: the others give 0) of blocks [b0, b0 + nb) into
 * panel columns at `col` (rows NR floats apart), four k values at a time through a 4×4 transpose.
 */
// @ts-ignore: decorator
@inline function dequantRows4(type: i32, row: usize, rb: usize, n: i32, b0: i32, nb: i32, col: usize): void {
  const bsz: usize = type == Q8_0 ? 34 : 18;
  const z = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const bb = b0 + b;
    const d0 = f32x4.splat(f16ToF32(load<u16>(row + <usize>bb * bsz)));
    const d1 = n > 1 ? f32x4.splat(f16ToF32(load<u16>(row + rb + <usize>bb * bsz))) : z;
    const d2 = n > 2 ? f32x4.splat(f16ToF32(load<u16>(row + 2 * rb + <usize>bb * bsz))) : z;
    const d3 = n > 3 ? f32x4.splat(f16ToF32(load<u16>(row + 3 * rb + <usize>bb * bsz))) : z;
    for (let c = 0; c < 8; c++) {
      const v0 = dequant4(type, row, bb, c, d0);
      const v1 = n > 1 ? dequant4(type, row + rb, bb, c, d1) : z;
      const v2 = n > 2 ? dequant4(type, row + 2 * rb, bb, c, d2) : z;
      const v3 = n > 3 ? dequant4(type, row + 3 * rb, bb, c, d3) : z;
      transpose4(v0, v1, v2, v3, col + (<usize>(b * 32 + c * 4) * NR << 2), NR << 2);
    }
  }
}

/** Write W[jc..jc+nc, pc..pc+kc]ᵀ as NR-wide GEMM panels (kc·NR floats each, zero past nc) at `to`. */
function dequantPanels(type: i32, w: usize, rb: usize, pc: i32, kc: i32, jc: i32, nc: i32, to: usize): void {
  let dst = to;
  const nb = kc >> 5;
  const b0 = pc >> 5;
  for (let j0 = 0; j0 < nc; j0 += NR) {
    const wd = min(NR, nc - j0);
    const row = w + <usize>(jc + j0) * rb;
    // panel rows 0..3 and 4..7 (absent rows past nc are zero columns)
    if (type == Q8_0) {
      dequantRows4(Q8_0, row, rb, min(4, wd), b0, nb, dst);
      if (wd > 4) dequantRows4(Q8_0, row + 4 * rb, rb, wd - 4, b0, nb, dst + 16);
    } else {
      dequantRows4(Q4_0, row, rb, min(4, wd), b0, nb, dst);
      if (wd > 4) dequantRows4(Q4_0, row + 4 * rb, rb, wd - 4, b0, nb, dst + 16);
    }
    if (wd <= 4) {
      for (let p = 0; p < kc; p++) v128.store(dst + (<usize>p * NR << 2), f32x4.splat(0), 16);
    }
    dst += <usize>kc * NR << 2;
  }
}

/** `Kernels.gemmQ`: all N columns of gemmQRange. */
export function gemmQ(
  type: i32, M: i32, N: i32, K: i32, a: usize, lda: i32, w: usize, c: usize, ldc: i32,
  bias: usize, beta: f32, act: i32,
): void {
  gemmQRange(type, M, N, K, a, lda, w, c, ldc, bias, beta, act, 0, N);
}

/**
 * C[:, n0..n1] = act(A (M×K, row stride lda) · Wᵀ + bias + beta·C) with W [N, K] quantized as in
 * gemvQ: the blocked GEMM of `gemmPacked` (K blocks of 512, 1024-column slices), each 8-column
 * panel of W dequantized just before the micro-kernel tiles that use it. n0 a multiple of 8 (or 0).
 */
export function gemmQRange(
  type: i32, M: i32, N: i32, K: i32, a: usize, lda: i32, w: usize, c: usize, ldc: i32,
  bias: usize, beta: f32, act: i32, n0: i32, n1: i32,
): void {
  n0 = max(n0, 0);
  n1 = min(n1, N);
  if (M <= 0 || n1 <= n0 || (K & 31) != 0 || (K > 0 && quantRowBytes(type, K) == 0)) return;
  const ldcB = <usize>ldc << 2;
  if (K <= 0) {
    emptyProduct(M, n1 - n0, c + (<usize>n0 << 2), ldcB, bias ? bias + (<usize>n0 << 2) : 0, 1, beta, act);
    return;
  }
  const rb = <usize>quantRowBytes(type, K);
  const mcMax = blockSize(M, MCP, MR);
  const panel = packedBAt(); // one kc×NR panel at a time: it stays in L1
  const tileAct = act == 1 ? 1 : 0;
  for (let jc = n0; jc < n1; jc += NC) {
    const nc = min(NC, n1 - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      const first = pc == 0;
      const last = pc + kc >= K;
      // `blockPass` of gemmPacked with each 8-column panel dequantized just before its tiles:
      // the same micro-kernel calls on the same values, in the same order per C element
      for (let ic = 0; ic < M; ic += mcMax) {
        const mc = min(mcMax, M - ic);
        packA(a, lda, 0, ic, mc, pc, kc);
        const cBlock = c + <usize>ic * ldcB + (<usize>jc << 2);
        for (let jr = 0; jr < nc; jr += NR) {
          const w8 = min(NR, nc - jr);
          dequantPanels(type, w, rb, pc, kc, jc + jr, w8, panel);
          const biasp = bias ? bias + (<usize>(jc + jr) << 2) : 0;
          for (let ir = 0; ir < mc; ir += MR) {
            kernel(
              kc, packedA + (<usize>ir * <usize>kc << 2), panel, cBlock + <usize>ir * ldcB + (<usize>jr << 2), ldcB,
              min(MR, mc - ir), w8, biasp, 1, beta, first, last, tileAct,
            );
          }
        }
        if (last && act > 1) applyAct(cBlock, ldcB, mc, nc, act);
      }
    }
  }
}
