// Products with 8- and 4-bit block-quantized weights (ggml's Q8_0 / Q4_0 blocks, repacked at load
// four rows at a time): quantBytes, xqRowBytes, quantizeRowsQ8, gemvQ, gemmQRange, dequantRowsQ.
// Layout and numeric contract: `Kernels.gemvQ` / `Kernels.gemmQ` in src/kernels.ts.
//
// ggml stores a weight W [N, K] (a Linear weight, rows = outputs) as N rows of K/32 blocks:
//   Q8_0 (ggml type 8):  { f16 d; i8 qs[32] }   w = qs[i]·d
//   Q4_0 (ggml type 2):  { f16 d; u8 qs[16] }   w = (nibble − 8)·d, low nibbles are values 0..15
//                                                of the block, high nibbles 16..31
// The kernels read it repacked (`repackQ` in src/quant.ts, a lossless rearrangement): rows in
// groups of four (rows past N zero), each group K/32 block groups in order, a block group being
//   { f32 d[4]; qs of row 0; qs of row 1; qs of row 2; qs of row 3 }   Q8_0: 144 bytes, Q4_0: 80
// with ggml's qs bytes as stored and its f16 scales widened exactly to f32. One load of a quantized
// x block then feeds four rows' integer dot products, whose four sums meet in one i32x4 (a 4×4
// transpose-add) and are scaled by one f32x4 of the four rows' scales.
//
// Decode (gemvQ, any M) follows ggml's vec_dot_q8_0_q8_0 / q4_0_q8_0: x is first quantized per block
// of 32 to int8 (quantizeRowsQ8: d = amax/127 kept in f32, q = roundf(x/d)), each block's dot
// product is an exact integer, and the f32 sum over blocks is acc += f32(Σ qw·qx) · (dw·dx), one
// f32x4 lane per output row, blocks in order. Integer dot products: `i32x4.dot_i16x8_s` on the
// sign-extended values (both builds), and for Q4_0 in the relaxed build
// `i16x8.relaxed_dot_i8x16_i7x16_s` with the raw nibbles (0..15, inside the i7 operand's range) as
// its second operand, the −8 folded into −8·Σqx per block. Both give the same integers, so every
// build gives the same bits.
//
// Prefill (gemmQRange) dequantizes each 8-column panel of W (exactly ggml's dequantize_row_*: f32
// q·d) into the GEMM's panel buffer just before the blocked GEMM's micro-kernel tiles use it: the
// same arithmetic as `gemmPacked` on the dequantized weight, without a full f32 copy.
import {
  KC,
  MCP,
  MR,
  NC,
  NR,
  applyAct,
  blockSize,
  emptyProduct,
  epi1,
  kernel,
  packA,
  packedA,
  packedBAt,
  transpose4,
} from "./gemm";

// @ts-ignore: decorator
@inline const Q8_0: i32 = 8;
// @ts-ignore: decorator
@inline const Q4_0: i32 = 2;

/** Bytes of one block group (four rows × 32 values) of `type`: f32 d[4] + four rows of quants. */
// @ts-ignore: decorator
@inline function groupBlockBytes(type: i32): usize {
  return type == Q8_0 ? 144 : 80;
}

/** Bytes of the quants of one row in one block (Q8_0 32, Q4_0 16). */
// @ts-ignore: decorator
@inline function quantBlockBytes(type: i32): usize {
  return type == Q8_0 ? 32 : 16;
}

/**
 * Bytes of a repacked [N, K] weight of ggml type `type`: ceil(N/4) row groups of K/32 block groups
 * (Q8_0 144 bytes, Q4_0 80); 0 for other types, N ≤ 0, or K not a positive multiple of 32.
 */
export function quantBytes(type: i32, N: i32, K: i32): i32 {
  if (N <= 0 || K <= 0 || (K & 31) != 0 || (type != Q8_0 && type != Q4_0)) return 0;
  return ((N + 3) >> 2) * (K >> 5) * <i32>groupBlockBytes(type);
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

/** The sums of the four i32 lanes of s0, s1, s2, s3, as lanes 0..3 (exact). */
// @ts-ignore: decorator
@inline function sum4x4(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const a = i32x4.add(i32x4.shuffle(s0, s1, 0, 1, 4, 5), i32x4.shuffle(s0, s1, 2, 3, 6, 7));
  const c = i32x4.add(i32x4.shuffle(s2, s3, 0, 1, 4, 5), i32x4.shuffle(s2, s3, 2, 3, 6, 7));
  return i32x4.add(i32x4.shuffle(a, c, 0, 2, 4, 6), i32x4.shuffle(a, c, 1, 3, 5, 7));
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
 * Σ nibble·qx over one Q4_0 block as eight i16 partial sums; relaxed SIMD on the i8 x block
 * (nibbles are the i7 operand). `i16x8.relaxed_dot_i8x16_i7x16_s`: the fused
 * `i32x4.relaxed_dot_i8x16_i7x16_add_s` gave wrong sums in Node 20's V8 (11.3).
 */
// @ts-ignore: decorator
@inline function dotQ4r(q: usize, xa: v128, xb: v128): v128 {
  const v = v128.load(q);
  // each i16 lane: two products ≤ 127·15, two dots added ≤ 7620: no overflow
  return i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xa, v128.and(v, i8x16.splat(15))), i16x8.relaxed_dot_i8x16_i7x16_s(xb, i8x16.shr_u(v, 4)));
}

/**
 * One row group (nb block groups at g) times one quantized x row, blocks in order, one lane per
 * row: acc = f32(acc + f32(f32(Σ qw·qx) · f32(dw·dx))).
 */
// @ts-ignore: decorator
@inline function groupDot(type: i32, nb: i32, g: usize, xr: usize, K: i32): v128 {
  const x8 = xr + (<usize>K << 1);
  const dp = xr + <usize>K * 3;
  const sp = dp + (<usize>nb << 2);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    let S: v128;
    if (type == Q8_0) {
      const xo = xr + (<usize>b << 6);
      const x0 = v128.load(xo);
      const x1 = v128.load(xo, 16);
      const x2 = v128.load(xo, 32);
      const x3 = v128.load(xo, 48);
      S = sum4x4(dotQ8(g + 16, x0, x1, x2, x3), dotQ8(g + 48, x0, x1, x2, x3), dotQ8(g + 80, x0, x1, x2, x3), dotQ8(g + 112, x0, x1, x2, x3));
    } else {
      if (ASC_FEATURE_RELAXED_SIMD) {
        const xo = x8 + (<usize>b << 5);
        const xa = v128.load(xo);
        const xb = v128.load(xo, 16);
        S = sum4x4(
          i32x4.extadd_pairwise_i16x8_s(dotQ4r(g + 16, xa, xb)),
          i32x4.extadd_pairwise_i16x8_s(dotQ4r(g + 32, xa, xb)),
          i32x4.extadd_pairwise_i16x8_s(dotQ4r(g + 48, xa, xb)),
          i32x4.extadd_pairwise_i16x8_s(dotQ4r(g + 64, xa, xb)),
        );
      } else {
        const xo = xr + (<usize>b << 6);
        const x0 = v128.load(xo);
        const x1 = v128.load(xo, 16);
        const x2 = v128.load(xo, 32);
        const x3 = v128.load(xo, 48);
        S = sum4x4(dotQ4(g + 16, x0, x1, x2, x3), dotQ4(g + 32, x0, x1, x2, x3), dotQ4(g + 48, x0, x1, x2, x3), dotQ4(g + 64, x0, x1, x2, x3));
      }
      S = i32x4.sub(S, i32x4.shl(v128.load32_splat(sp + (<usize>b << 2)), 3)); // (q − 8)·qx = q·qx − 8·qx
    }
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(S), f32x4.mul(v128.load(g), v128.load32_splat(dp + (<usize>b << 2)))));
    g += groupBlockBytes(type);
  }
  return acc;
}

// @ts-ignore: decorator
@noinline function groupDotQ8(nb: i32, g: usize, xr: usize, K: i32): v128 {
  return groupDot(Q8_0, nb, g, xr, K);
}

// @ts-ignore: decorator
@noinline function groupDotQ4(nb: i32, g: usize, xr: usize, K: i32): v128 {
  return groupDot(Q4_0, nb, g, xr, K);
}

/** Σ of four i16 weight vectors (one row's block, widened) times the i16 x block at xo. */
// @ts-ignore: decorator
@inline function dot4(w0: v128, w1: v128, w2: v128, w3: v128, xo: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(xo)), i32x4.dot_i16x8_s(w1, v128.load(xo, 16))),
    i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(xo, 32)), i32x4.dot_i16x8_s(w3, v128.load(xo, 48))),
  );
}

/** Σ nibble·qx of one Q4_0 block (its low and high nibbles) with the i8 x block (xa, xb); relaxed build. */
// @ts-ignore: decorator
@inline function dotNib(lo: v128, hi: v128, xa: v128, xb: v128): v128 {
  return i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xa, lo), i16x8.relaxed_dot_i8x16_i7x16_s(xb, hi)));
}

/** The four lanes of a row group's sums (n of them real) through the epilogue to y at yp. */
// @ts-ignore: decorator
@inline function epi4(acc: v128, yp: usize, bp: usize, n: i32, beta: f32, relu: bool): void {
  epi1(f32x4.extract_lane(acc, 0), yp, bp, 1, beta, true, relu);
  if (n > 1) epi1(f32x4.extract_lane(acc, 1), yp + 4, bp ? bp + 4 : 0, 1, beta, true, relu);
  if (n > 2) epi1(f32x4.extract_lane(acc, 2), yp + 8, bp ? bp + 8 : 0, 1, beta, true, relu);
  if (n > 3) epi1(f32x4.extract_lane(acc, 3), yp + 12, bp ? bp + 12 : 0, 1, beta, true, relu);
}

/**
 * `groupDot` for two x rows (xr0, xr1) at once, each weight block unpacked once for both; the
 * results go through the epilogue to yp0 and yp1. Each row's arithmetic is groupDot's.
 */
// @ts-ignore: decorator
@inline function groupDot2(
  type: i32, nb: i32, g: usize, xr0: usize, xr1: usize, K: i32,
  yp0: usize, yp1: usize, bp: usize, n: i32, beta: f32, relu: bool,
): void {
  const xd = <usize>K * 3; // f32 d[nb] of an x row, then i32 Σq[nb]
  const xs = xd + (<usize>nb << 2);
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    let S0: v128;
    let S1: v128;
    if (ASC_FEATURE_RELAXED_SIMD && type == Q4_0) {
      const xo0 = xr0 + (<usize>K << 1) + (<usize>b << 5);
      const xo1 = xr1 + (<usize>K << 1) + (<usize>b << 5);
      const xa0 = v128.load(xo0);
      const xb0 = v128.load(xo0, 16);
      const xa1 = v128.load(xo1);
      const xb1 = v128.load(xo1, 16);
      const m = i8x16.splat(15);
      const v0 = v128.load(g, 16);
      const v1 = v128.load(g, 32);
      const v2 = v128.load(g, 48);
      const v3 = v128.load(g, 64);
      const l0 = v128.and(v0, m);
      const h0 = i8x16.shr_u(v0, 4);
      const l1 = v128.and(v1, m);
      const h1 = i8x16.shr_u(v1, 4);
      const l2 = v128.and(v2, m);
      const h2 = i8x16.shr_u(v2, 4);
      const l3 = v128.and(v3, m);
      const h3 = i8x16.shr_u(v3, 4);
      S0 = sum4x4(dotNib(l0, h0, xa0, xb0), dotNib(l1, h1, xa0, xb0), dotNib(l2, h2, xa0, xb0), dotNib(l3, h3, xa0, xb0));
      S1 = sum4x4(dotNib(l0, h0, xa1, xb1), dotNib(l1, h1, xa1, xb1), dotNib(l2, h2, xa1, xb1), dotNib(l3, h3, xa1, xb1));
    } else {
      const xo0 = xr0 + (<usize>b << 6);
      const xo1 = xr1 + (<usize>b << 6);
      let t0 = i32x4.splat(0);
      let t1 = t0;
      let t2 = t0;
      let t3 = t0;
      let u0 = t0;
      let u1 = t0;
      let u2 = t0;
      let u3 = t0;
      // row by row: its block widened to four i16 vectors, dotted with both x rows
      for (let r = 0; r < 4; r++) {
        let w0: v128, w1: v128, w2: v128, w3: v128;
        if (type == Q8_0) {
          const a = v128.load(g + 16 + (<usize>r << 5));
          const c = v128.load(g + 32 + (<usize>r << 5));
          w0 = i16x8.extend_low_i8x16_s(a);
          w1 = i16x8.extend_high_i8x16_s(a);
          w2 = i16x8.extend_low_i8x16_s(c);
          w3 = i16x8.extend_high_i8x16_s(c);
        } else {
          const v = v128.load(g + 16 + (<usize>r << 4));
          const lo = v128.and(v, i8x16.splat(15));
          const hi = i8x16.shr_u(v, 4);
          w0 = i16x8.extend_low_i8x16_u(lo);
          w1 = i16x8.extend_high_i8x16_u(lo);
          w2 = i16x8.extend_low_i8x16_u(hi);
          w3 = i16x8.extend_high_i8x16_u(hi);
        }
        const p = dot4(w0, w1, w2, w3, xo0);
        const q = dot4(w0, w1, w2, w3, xo1);
        if (r == 0) {
          t0 = p;
          u0 = q;
        } else if (r == 1) {
          t1 = p;
          u1 = q;
        } else if (r == 2) {
          t2 = p;
          u2 = q;
        } else {
          t3 = p;
          u3 = q;
        }
      }
      S0 = sum4x4(t0, t1, t2, t3);
      S1 = sum4x4(u0, u1, u2, u3);
    }
    if (type == Q4_0) {
      S0 = i32x4.sub(S0, i32x4.shl(v128.load32_splat(xr0 + xs + (<usize>b << 2)), 3));
      S1 = i32x4.sub(S1, i32x4.shl(v128.load32_splat(xr1 + xs + (<usize>b << 2)), 3));
    }
    const dw = v128.load(g);
    acc0 = f32x4.add(acc0, f32x4.mul(f32x4.convert_i32x4_s(S0), f32x4.mul(dw, v128.load32_splat(xr0 + xd + (<usize>b << 2)))));
    acc1 = f32x4.add(acc1, f32x4.mul(f32x4.convert_i32x4_s(S1), f32x4.mul(dw, v128.load32_splat(xr1 + xd + (<usize>b << 2)))));
    g += groupBlockBytes(type);
  }
  epi4(acc0, yp0, bp, n, beta, relu);
  epi4(acc1, yp1, bp, n, beta, relu);
}

// @ts-ignore: decorator
@noinline function groupDot2Q8(
  nb: i32, g: usize, xr0: usize, xr1: usize, K: i32, yp0: usize, yp1: usize, bp: usize, n: i32, beta: f32, relu: bool,
): void {
  groupDot2(Q8_0, nb, g, xr0, xr1, K, yp0, yp1, bp, n, beta, relu);
}

// @ts-ignore: decorator
@noinline function groupDot2Q4(
  nb: i32, g: usize, xr0: usize, xr1: usize, K: i32, yp0: usize, yp1: usize, bp: usize, n: i32, beta: f32, relu: bool,
): void {
  groupDot2(Q4_0, nb, g, xr0, xr1, K, yp0, yp1, bp, n, beta, relu);
}

/**
 * y[m, j] = act(Σ_k W[j, k]·x[m, k] + bias[j] + beta·y[m, j]) for m < M, j < N: W [N, K] quantized
 * and repacked (type Q8_0 or Q4_0, `quantBytes(type, N, K)` bytes), x quantized by
 * `quantizeRowsQ8` (rows `xqRowBytes(K)` apart), y rows ldy floats apart. Row group by row group
 * of W, each read once for all M rows of x.
 */
export function gemvQ(
  type: i32, M: i32, N: i32, K: i32, xq: usize, w: usize, y: usize, ldy: i32, bias: usize, beta: f32, act: i32,
): void {
  if (M <= 0 || N <= 0 || quantBytes(type, N, K) == 0) return;
  const nb = K >> 5;
  const gB = <usize>quantBytes(type, 4, K);
  const xrB = <usize>xqRowBytes(K);
  const ldyB = <usize>ldy << 2;
  const relu = act == 1;
  for (let j = 0; j < N; j += 4) {
    const g = w + <usize>(j >> 2) * gB;
    const n = min(4, N - j);
    const o = <usize>j << 2;
    const bp = bias ? bias + o : 0;
    // x rows two at a time (each weight block unpacked once for both), then the odd one
    let m = 0;
    for (; m + 1 < M; m += 2) {
      const xr = xq + <usize>m * xrB;
      const yp = y + <usize>m * ldyB + o;
      if (type == Q8_0) groupDot2Q8(nb, g, xr, xr + xrB, K, yp, yp + ldyB, bp, n, beta, relu);
      else groupDot2Q4(nb, g, xr, xr + xrB, K, yp, yp + ldyB, bp, n, beta, relu);
    }
    if (m < M) {
      const xr = xq + <usize>m * xrB;
      const acc = type == Q8_0 ? groupDotQ8(nb, g, xr, K) : groupDotQ4(nb, g, xr, K);
      epi4(acc, y + <usize>m * ldyB + o, bp, n, beta, relu);
    }
  }
  if (act > 1) applyAct(y, ldyB, M, N, act);
}

/**
 * Dequantize row r of block groups [b0, b0 + nb) of the row group at g (ggml's dequantize_row_*:
 * f32(q·d)) to dst, floats `ds` bytes apart.
 */
// @ts-ignore: decorator
@inline function dequantBlocks(type: i32, g: usize, r: i32, b0: i32, nb: i32, dst: usize, ds: usize): void {
  const gbb = groupBlockBytes(type);
  let bp = g + <usize>b0 * gbb;
  let d = dst;
  for (let b = 0; b < nb; b++) {
    const s = load<f32>(bp + (<usize>r << 2));
    const q = bp + 16 + <usize>r * quantBlockBytes(type);
    if (type == Q8_0) {
      for (let i = 0; i < 32; i++) store<f32>(d + <usize>i * ds, <f32>load<i8>(q + i) * s);
    } else {
      for (let i = 0; i < 16; i++) {
        const v = load<u8>(q + i);
        store<f32>(d + <usize>i * ds, <f32>((<i32>v & 15) - 8) * s);
        store<f32>(d + <usize>(i + 16) * ds, <f32>((<i32>v >> 4) - 8) * s);
      }
    }
    bp += gbb;
    d += 32 * ds;
  }
}

/**
 * dst rows r < n = W[ids[r], :] dequantized (K floats each, contiguous): the embedding gather of a
 * quantized, repacked table. ids are i32 and must be in [0, N) (the caller checks them).
 */
export function dequantRowsQ(type: i32, K: i32, w: usize, ids: usize, n: i32, dst: usize): void {
  const gB = <usize>quantBytes(type, 4, K);
  if (gB == 0) return;
  for (let r = 0; r < n; r++) {
    const id = load<i32>(ids + (<usize>r << 2));
    const g = w + <usize>(id >> 2) * gB;
    const out = dst + (<usize>r * <usize>K << 2);
    if (type == Q8_0) dequantBlocks(Q8_0, g, id & 3, 0, K >> 5, out, 4);
    else dequantBlocks(Q4_0, g, id & 3, 0, K >> 5, out, 4);
  }
}

/** Q4_0: values 4c..4c+3 of row r of the block group at g, dequantized (ggml's arithmetic: f32((q − 8)·d)). */
// @ts-ignore: decorator
@inline function dequantQ4x4(g: usize, r: i32, c: i32, d: v128): v128 {
  const v = v128.load32_zero(g + 16 + <usize>(r * 16 + ((c & 3) << 2)));
  const n = c < 4 ? v128.and(v, i8x16.splat(15)) : i8x16.shr_u(v, 4); // low nibbles: values 0..15
  const q = i32x4.sub(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(n)), i32x4.splat(8));
  return f32x4.mul(f32x4.convert_i32x4_s(q), d);
}

/** Four k values of the four rows (bytes k·4 + r of t, i8), dequantized into panel rows at dst (NR floats apart). */
// @ts-ignore: decorator
@inline function dequantK4(t: v128, d: v128, dst: usize): void {
  const lo = i16x8.extend_low_i8x16_s(t);
  const hi = i16x8.extend_high_i8x16_s(t);
  v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), d));
  v128.store(dst + (NR << 2), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), d));
  v128.store(dst + (2 * NR << 2), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), d));
  v128.store(dst + (3 * NR << 2), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), d));
}

/**
 * Q8_0: 16 k values (from k0) of the four rows of the block group at bp into panel rows at dst:
 * the bytes are interleaved to k-major order (k·4 + r) first, so each f32x4 of a k is the panel's
 * four columns as they are stored, scaled by the four rows' d at once.
 */
// @ts-ignore: decorator
@inline function dequantQ8x16(bp: usize, k0: usize, d: v128, dst: usize): void {
  const v0 = v128.load(bp + 16 + k0);
  const v1 = v128.load(bp + 48 + k0);
  const v2 = v128.load(bp + 80 + k0);
  const v3 = v128.load(bp + 112 + k0);
  // rows 0,1 and 2,3 byte-interleaved: k·2 + r
  const a = i8x16.shuffle(v0, v1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const b = i8x16.shuffle(v0, v1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const c = i8x16.shuffle(v2, v3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const e = i8x16.shuffle(v2, v3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  // then the pairs interleaved: k·4 + r
  const s = NR << 4; // bytes of four panel rows
  dequantK4(i16x8.shuffle(a, c, 0, 8, 1, 9, 2, 10, 3, 11), d, dst);
  dequantK4(i16x8.shuffle(a, c, 4, 12, 5, 13, 6, 14, 7, 15), d, dst + s);
  dequantK4(i16x8.shuffle(b, e, 0, 8, 1, 9, 2, 10, 3, 11), d, dst + 2 * s);
  dequantK4(i16x8.shuffle(b, e, 4, 12, 5, 13, 6, 14, 7, 15), d, dst + 3 * s);
}

/**
 * The four rows of the row group at g (rows past N are zero blocks), block groups [b0, b0 + nb),
 * into panel columns at `col` (rows NR floats apart): Q8_0 through a byte interleave, Q4_0 four k
 * values at a time through a 4×4 transpose.
 */
// @ts-ignore: decorator
@inline function dequantGroup(type: i32, g: usize, b0: i32, nb: i32, col: usize): void {
  let bp = g + <usize>b0 * groupBlockBytes(type);
  if (type == Q8_0) {
    for (let b = 0; b < nb; b++) {
      const d = v128.load(bp);
      const dst = col + (<usize>(b * 32) * NR << 2);
      dequantQ8x16(bp, 0, d, dst);
      dequantQ8x16(bp, 16, d, dst + (16 * NR << 2));
      bp += groupBlockBytes(Q8_0);
    }
    return;
  }
  for (let b = 0; b < nb; b++) {
    const d0 = v128.load32_splat(bp);
    const d1 = v128.load32_splat(bp + 4);
    const d2 = v128.load32_splat(bp + 8);
    const d3 = v128.load32_splat(bp + 12);
    for (let c = 0; c < 8; c++) {
      transpose4(
        dequantQ4x4(bp, 0, c, d0),
        dequantQ4x4(bp, 1, c, d1),
        dequantQ4x4(bp, 2, c, d2),
        dequantQ4x4(bp, 3, c, d3),
        col + (<usize>(b * 32 + c * 4) * NR << 2),
        NR << 2,
      );
    }
    bp += groupBlockBytes(Q4_0);
  }
}

/** Write W[jc..jc+nc, pc..pc+kc]ᵀ as NR-wide GEMM panels (kc·NR floats each) at `to`; jc a multiple of 8. */
function dequantPanels(type: i32, w: usize, gB: usize, pc: i32, kc: i32, jc: i32, nc: i32, to: usize): void {
  let dst = to;
  const nb = kc >> 5;
  const b0 = pc >> 5;
  for (let j0 = 0; j0 < nc; j0 += NR) {
    const wd = min(NR, nc - j0);
    const g = w + <usize>((jc + j0) >> 2) * gB;
    // panel columns 0..3 and 4..7: two row groups (a missing second group gives zero columns)
    if (type == Q8_0) {
      dequantGroup(Q8_0, g, b0, nb, dst);
      if (wd > 4) dequantGroup(Q8_0, g + gB, b0, nb, dst + 16);
    } else {
      dequantGroup(Q4_0, g, b0, nb, dst);
      if (wd > 4) dequantGroup(Q4_0, g + gB, b0, nb, dst + 16);
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
  if (M <= 0 || n1 <= n0 || (K & 31) != 0 || (K > 0 && quantBytes(type, N, K) == 0)) return;
  const ldcB = <usize>ldc << 2;
  if (K <= 0) {
    emptyProduct(M, n1 - n0, c + (<usize>n0 << 2), ldcB, bias ? bias + (<usize>n0 << 2) : 0, 1, beta, act);
    return;
  }
  const gB = <usize>quantBytes(type, 4, K);
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
          dequantPanels(type, w, gB, pc, kc, jc + jr, w8, panel);
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
