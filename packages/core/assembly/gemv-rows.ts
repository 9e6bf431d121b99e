// One row times a pre-packed weight, for recurrent steps and decoding at batch 1: packRows,
// gemvRows. Layout and semantics: `Kernels.packRows` / `Kernels.gemvRows` in src/kernels.ts.
//
// The weight [N, K] (a Linear weight, rows = outputs) is stored in groups of GR = 7 rows; within a
// group, the 4-float chunk c of each of its rows in turn:
//   packed[(g·K4 + 4c)·GR + 4r + (k mod 4)] = W[g·GR + r, k],  c = ⌊k/4⌋, K4 = ⌈K/4⌉·4,
// zero past K and in the rows past N of the last group. gemvRows reads one sequential stream
// through a single pointer with constant offsets: per 4-float chunk of x, one x load, seven weight
// loads and seven independent FMAs, and no per-row address arithmetic. In V8 (x64) that measured
// 10.9 µs for a 1024×256 weight against 13.5–14 µs for gemm's M = 1 row dots (six rows from six
// row pointers) and 14 µs for gemmPacked's M = 1 stream; 5 / 6 / 8 rows per group, or two x chunks
// per iteration, were slower (8 and the unrolled form spill accumulators).
import { fma4 } from "./inline/fma";
import { applyAct, epi1, epi4 } from "./gemm";

// @ts-ignore: decorator
@inline const GR = 7;

/** Floats of `packRows(N, K)`: ⌈N/7⌉·7·⌈K/4⌉·4 (0 when N or K ≤ 0). */
export function packedRowsSize(N: i32, K: i32): i32 {
  if (N <= 0 || K <= 0) return 0;
  return ((N + GR - 1) / GR) * GR * (((K + 3) >> 2) << 2);
}

/** Pack W [N, K] (row stride ldb floats) into the row-group layout at dst (packedRowsSize floats). */
export function packRows(N: i32, K: i32, b: usize, ldb: i32, dst: usize): void {
  if (N <= 0 || K <= 0) return;
  const k4 = ((K + 3) >> 2) << 2;
  const groups = (N + GR - 1) / GR;
  for (let g = 0; g < groups; g++) {
    const gBase = dst + (<usize>g * <usize>k4 * GR << 2);
    for (let r = 0; r < GR; r++) {
      const row = g * GR + r;
      const src = b + (<usize>row * <usize>ldb << 2);
      for (let k = 0; k < k4; k++) {
        const v: f32 = row < N && k < K ? load<f32>(src + (<usize>k << 2)) : 0;
        store<f32>(gBase + ((<usize>(k & ~3) * GR + <usize>(r * 4 + (k & 3))) << 2), v);
      }
    }
  }
}

/** Horizontal sums of four vectors as one vector: lane r = Σ lanes of v_r. */
// @ts-ignore: decorator
@inline function hsum4x4(v0: v128, v1: v128, v2: v128, v3: v128): v128 {
  const t0 = f32x4.add(f32x4.shuffle(v0, v1, 0, 4, 1, 5), f32x4.shuffle(v0, v1, 2, 6, 3, 7));
  const t1 = f32x4.add(f32x4.shuffle(v2, v3, 0, 4, 1, 5), f32x4.shuffle(v2, v3, 2, 6, 3, 7));
  return f32x4.add(f32x4.shuffle(t0, t1, 0, 1, 4, 5), f32x4.shuffle(t0, t1, 2, 3, 6, 7));
}

/** Three lanes of the horizontal sums of three vectors (lane 3 = 0). */
// @ts-ignore: decorator
@inline function hsum3(v0: v128, v1: v128, v2: v128): v128 {
  return hsum4x4(v0, v1, v2, f32x4.splat(0));
}

/** Scratch for a group's last three sums when it is cut by N. */
const tail: usize = memory.data(16, 16);

/**
 * y[j] = act(Σ_k x[k]·W[j, k] + bias[j] + beta·y[j]) for j < N with W packed by `packRows(N, K)`.
 * x holds K floats (nothing past them is read); y must not overlap x or the packed weight.
 */
export function gemvRows(N: i32, K: i32, x: usize, pw: usize, y: usize, bias: usize, beta: f32, act: i32): void {
  if (N <= 0) return;
  const relu = act == 1;
  const kFull = <usize>(K & ~3) << 2; // bytes of x in whole chunks
  const rem = K & 3;
  const groups = (N + GR - 1) / GR;
  let bp = pw;
  for (let g = 0; g < groups; g++) {
    let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
    let s4 = f32x4.splat(0), s5 = f32x4.splat(0), s6 = f32x4.splat(0);
    let xp = x;
    const end = x + kFull;
    while (xp < end) {
      const xv = v128.load(xp);
      s0 = fma4(v128.load(bp), xv, s0);
      s1 = fma4(v128.load(bp, 16), xv, s1);
      s2 = fma4(v128.load(bp, 32), xv, s2);
      s3 = fma4(v128.load(bp, 48), xv, s3);
      s4 = fma4(v128.load(bp, 64), xv, s4);
      s5 = fma4(v128.load(bp, 80), xv, s5);
      s6 = fma4(v128.load(bp, 96), xv, s6);
      bp += GR * 16;
      xp += 16;
    }
    if (rem) {
      // the last chunk: x's missing lanes are 0 (the packed lanes past K are 0 too)
      let xv = f32x4.splat(0);
      xv = f32x4.replace_lane(xv, 0, load<f32>(xp));
      if (rem > 1) xv = f32x4.replace_lane(xv, 1, load<f32>(xp, 4));
      if (rem > 2) xv = f32x4.replace_lane(xv, 2, load<f32>(xp, 8));
      s0 = fma4(v128.load(bp), xv, s0);
      s1 = fma4(v128.load(bp, 16), xv, s1);
      s2 = fma4(v128.load(bp, 32), xv, s2);
      s3 = fma4(v128.load(bp, 48), xv, s3);
      s4 = fma4(v128.load(bp, 64), xv, s4);
      s5 = fma4(v128.load(bp, 80), xv, s5);
      s6 = fma4(v128.load(bp, 96), xv, s6);
      bp += GR * 16;
    }
    const j = g * GR;
    const n = min(GR, N - j);
    const cp = y + (<usize>j << 2);
    const biasp = bias ? bias + (<usize>j << 2) : 0;
    const d0 = hsum4x4(s0, s1, s2, s3);
    const d1 = hsum3(s4, s5, s6);
    if (n == GR) {
      epi4(d0, cp, biasp, 1, beta, true, relu);
      epi1(f32x4.extract_lane(d1, 0), cp + 16, biasp ? biasp + 16 : 0, 1, beta, true, relu);
      epi1(f32x4.extract_lane(d1, 1), cp + 20, biasp ? biasp + 20 : 0, 1, beta, true, relu);
      epi1(f32x4.extract_lane(d1, 2), cp + 24, biasp ? biasp + 24 : 0, 1, beta, true, relu);
    } else {
      v128.store(tail, d0);
      for (let r = 0; r < n; r++) {
        const v = r < 4 ? load<f32>(tail + (<usize>r << 2)) : r == 4 ? f32x4.extract_lane(d1, 0) : f32x4.extract_lane(d1, 1);
        const o = <usize>r << 2;
        epi1(v, cp + o, biasp ? biasp + o : 0, 1, beta, true, relu);
      }
    }
  }
  if (act > 1) applyAct(y, 0, 1, N, act);
}
