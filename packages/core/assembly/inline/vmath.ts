// Vector (f32x4) transcendental functions for the activation, softmax and RNN kernels.
// exp: Cephes `expf` (range reduction x = n·ln2 + r with a two-part ln2, degree-6 polynomial);
// a short form (one 2^n scale) when every lane's result is a normal float, a general form with a
// two-step scale (subnormal results, overflow) otherwise. tanh: Cephes `tanhf` polynomial below
// 0.625, (1 − e^{−2|x|})/(1 + e^{−2|x|}) above. erfc: the Chebyshev fit of Numerical Recipes
// (`erfcc`, fractional error < 1.2e-7 everywhere) with x² carried exactly.
// Measured max relative error against float64 over normal results: exp 1.2e-7, tanh 1.2e-7,
// sigmoid/silu/gelu_tanh < 3.1e-7, gelu < 5e-7 (sweeps over [−120, 90]); log (Cephes `logf`) 1.2e-7.
// Special values: exp(−∞) = 0, exp(x > 88.72) = +∞, tanh(±large) = ±1, NaN in → NaN out.
// gelu: a polynomial fast path for vectors in [−1.25, 3]. tanhRational4 / sigmoidRational4: cheaper,
// absolute-accuracy forms for the recurrent cells.
// Horner steps use fma4 (fused in the relaxed build where the engine fuses, mul + add otherwise).
// Clamps use pmin/pmax (one minps/maxps in V8 on x64; f32x4.min/max cost about six instructions for
// their NaN and ±0 rules), with the clamped value first so that a NaN lane is kept.
import { fma4 } from "./fma";

// @ts-ignore: decorator
@inline const LOG2E: f32 = 1.44269504088896341;
// ln2 = EXP_C1 + EXP_C2; EXP_C1 has 9 significant bits, so n·EXP_C1 is exact for |n| ≤ 2^15.
// @ts-ignore: decorator
@inline const EXP_C1: f32 = 0.693359375;
// @ts-ignore: decorator
@inline const EXP_C2: f32 = -2.12194440e-4;

// 1.5·2^23: adding it rounds |v| < 2^22 to the nearest integer (ties to even), which then sits
// in the low mantissa bits: n = bits(v + MAGIC) − bits(MAGIC). Cheaper than nearest + trunc_sat.
// @ts-ignore: decorator
@inline const MAGIC: f32 = 12582912.0;
// @ts-ignore: decorator
@inline const MAGIC_127: f32 = 12583039.0;

// ---------------------------------------------------------------------------------------------
// Constant pool. Inside a loop V8 rematerialises every non-zero v128 constant with about five
// instructions (two 64-bit immediates and a lane merge) on each iteration; a load from static data
// is one. So vector constants live here, 16 bytes per entry, and kf/ki/kd load entry i.

const KF: usize = memory.data<f32>([
  1.0, 1.0, 1.0, 1.0, // K_ONE
  2.0, 2.0, 2.0, 2.0, // K_TWO
  0.5, 0.5, 0.5, 0.5, // K_HALF
  Infinity, Infinity, Infinity, Infinity, // K_INF
  -Infinity, -Infinity, -Infinity, -Infinity, // K_NINF
  NaN, NaN, NaN, NaN, // K_NAN
  LOG2E, LOG2E, LOG2E, LOG2E, // K_LOG2E
  EXP_C1, EXP_C1, EXP_C1, EXP_C1, // K_LN2_HI
  EXP_C2, EXP_C2, EXP_C2, EXP_C2, // K_LN2_LO
  MAGIC, MAGIC, MAGIC, MAGIC, // K_MAGIC
  MAGIC_127, MAGIC_127, MAGIC_127, MAGIC_127, // K_MAGIC_127
  -87.33654, -87.33654, -87.33654, -87.33654, // K_EXP_NORMAL_MIN
  88.0, 88.0, 88.0, 88.0, // K_EXP_SHORT_MAX
  -150.0, -150.0, -150.0, -150.0, // K_EXP_XMIN
  176.0, 176.0, 176.0, 176.0, // K_EXP_XMAX
  1.9875691500e-4, 1.9875691500e-4, 1.9875691500e-4, 1.9875691500e-4, // K_EXP_P
  1.3981999507e-3, 1.3981999507e-3, 1.3981999507e-3, 1.3981999507e-3, // K_EXP_P+1
  8.3334519073e-3, 8.3334519073e-3, 8.3334519073e-3, 8.3334519073e-3, // K_EXP_P+2
  4.1665795894e-2, 4.1665795894e-2, 4.1665795894e-2, 4.1665795894e-2, // K_EXP_P+3
  1.6666665459e-1, 1.6666665459e-1, 1.6666665459e-1, 1.6666665459e-1, // K_EXP_P+4
  5.0000001201e-1, 5.0000001201e-1, 5.0000001201e-1, 5.0000001201e-1, // K_EXP_P+5
  0.625, 0.625, 0.625, 0.625, // K_TANH_SMALL
  -5.70498872745e-3, -5.70498872745e-3, -5.70498872745e-3, -5.70498872745e-3, // K_TANH_P
  2.06390887954e-2, 2.06390887954e-2, 2.06390887954e-2, 2.06390887954e-2, // K_TANH_P+1
  -5.37397155531e-2, -5.37397155531e-2, -5.37397155531e-2, -5.37397155531e-2, // K_TANH_P+2
  1.33314422036e-1, 1.33314422036e-1, 1.33314422036e-1, 1.33314422036e-1, // K_TANH_P+3
  -3.33332819422e-1, -3.33332819422e-1, -3.33332819422e-1, -3.33332819422e-1, // K_TANH_P+4
  0.70710678118654752, 0.70710678118654752, 0.70710678118654752, 0.70710678118654752, // K_SQRT1_2
  20.0, 20.0, 20.0, 20.0, // K_GELU_ZMAX
  0.17087277, 0.17087277, 0.17087277, 0.17087277, // K_ERFC_P
  -0.82215223, -0.82215223, -0.82215223, -0.82215223, // K_ERFC_P+1
  1.48851587, 1.48851587, 1.48851587, 1.48851587, // K_ERFC_P+2
  -1.13520398, -1.13520398, -1.13520398, -1.13520398, // K_ERFC_P+3
  0.27886807, 0.27886807, 0.27886807, 0.27886807, // K_ERFC_P+4
  -0.18628806, -0.18628806, -0.18628806, -0.18628806, // K_ERFC_P+5
  0.09678418, 0.09678418, 0.09678418, 0.09678418, // K_ERFC_P+6
  0.37409196, 0.37409196, 0.37409196, 0.37409196, // K_ERFC_P+7
  1.00002368, 1.00002368, 1.00002368, 1.00002368, // K_ERFC_P+8
  -1.26551223, -1.26551223, -1.26551223, -1.26551223, // K_ERFC_P+9
  1e4, 1e4, 1e4, 1e4, // K_GT_LOMAX
  1.17549435e-38, 1.17549435e-38, 1.17549435e-38, 1.17549435e-38, // K_FLT_MIN
  8388608.0, 8388608.0, 8388608.0, 8388608.0, // K_TWO23
  7.0376836292e-2, 7.0376836292e-2, 7.0376836292e-2, 7.0376836292e-2, // K_LOG_P
  -1.1514610310e-1, -1.1514610310e-1, -1.1514610310e-1, -1.1514610310e-1, // K_LOG_P+1
  1.1676998740e-1, 1.1676998740e-1, 1.1676998740e-1, 1.1676998740e-1, // K_LOG_P+2
  -1.2420140846e-1, -1.2420140846e-1, -1.2420140846e-1, -1.2420140846e-1, // K_LOG_P+3
  1.4249322787e-1, 1.4249322787e-1, 1.4249322787e-1, 1.4249322787e-1, // K_LOG_P+4
  -1.6668057665e-1, -1.6668057665e-1, -1.6668057665e-1, -1.6668057665e-1, // K_LOG_P+5
  2.0000714765e-1, 2.0000714765e-1, 2.0000714765e-1, 2.0000714765e-1, // K_LOG_P+6
  -2.4999993993e-1, -2.4999993993e-1, -2.4999993993e-1, -2.4999993993e-1, // K_LOG_P+7
  3.3333331174e-1, 3.3333331174e-1, 3.3333331174e-1, 3.3333331174e-1, // K_LOG_P+8
  -1.5461576463593474e-11, -1.5461576463593474e-11, -1.5461576463593474e-11, -1.5461576463593474e-11, // K_GELU_Q
  9.707397108371651e-10, 9.707397108371651e-10, 9.707397108371651e-10, 9.707397108371651e-10, // K_GELU_Q+1
  -2.9530863088211845e-08, -2.9530863088211845e-08, -2.9530863088211845e-08, -2.9530863088211845e-08, // K_GELU_Q+2
  5.960993689768657e-07, 5.960993689768657e-07, 5.960993689768657e-07, 5.960993689768657e-07, // K_GELU_Q+3
  -9.170124030788429e-06, -9.170124030788429e-06, -9.170124030788429e-06, -9.170124030788429e-06, // K_GELU_Q+4
  0.00011474348866613582, 0.00011474348866613582, 0.00011474348866613582, 0.00011474348866613582, // K_GELU_Q+5
  -0.0011862671235576272, -0.0011862671235576272, -0.0011862671235576272, -0.0011862671235576272, // K_GELU_Q+6
  0.009972646832466125, 0.009972646832466125, 0.009972646832466125, 0.009972646832466125, // K_GELU_Q+7
  -0.06649000942707062, -0.06649000942707062, -0.06649000942707062, -0.06649000942707062, // K_GELU_Q+8
  0.398942232131958, 0.398942232131958, 0.398942232131958, 0.398942232131958, // K_GELU_Q+9
  -1.25, -1.25, -1.25, -1.25, // K_GELU_QLO
  3.0, 3.0, 3.0, 3.0, // K_GELU_QHI
  1.8416212999028403e-11, 1.8416212999028403e-11, 1.8416212999028403e-11, 1.8416212999028403e-11, // K_TANHR_P
  -1.2855402076183964e-08, -1.2855402076183964e-08, -1.2855402076183964e-08, -1.2855402076183964e-08, // K_TANHR_P+1
  9.296628377342131e-06, 9.296628377342131e-06, 9.296628377342131e-06, 9.296628377342131e-06, // K_TANHR_P+2
  0.0029243347235023975, 0.0029243347235023975, 0.0029243347235023975, 0.0029243347235023975, // K_TANHR_P+3
  0.12922711670398712, 0.12922711670398712, 0.12922711670398712, 0.12922711670398712, // K_TANHR_P+4
  1.0, 1.0, 1.0, 1.0, // K_TANHR_P+5
  0.00022857103613205254, 0.00022857103613205254, 0.00022857103613205254, 0.00022857103613205254, // K_TANHR_Q
  0.023778261616826057, 0.023778261616826057, 0.023778261616826057, 0.023778261616826057, // K_TANHR_Q+1
  0.46256008744239807, 0.46256008744239807, 0.46256008744239807, 0.46256008744239807, // K_TANHR_Q+2
  1.0, 1.0, 1.0, 1.0, // K_TANHR_Q+3
  9.0, 9.0, 9.0, 9.0, // K_TANHR_XMAX
  -9.0, -9.0, -9.0, -9.0, // K_TANHR_XMIN
  -1.0, -1.0, -1.0, -1.0, // K_MINUS_ONE
], 16);
const KI: usize = memory.data<i32>([
  127, 127, 127, 127, // KI_127
  126, 126, 126, 126, // KI_126
  23, 23, 23, 23, // KI_23
  0xfffff000, 0xfffff000, 0xfffff000, 0xfffff000, // KI_SPLIT
  0x80000000, 0x80000000, 0x80000000, 0x80000000, // KI_SIGN
  0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000, // KI_EXPMASK
  0x007fffff, 0x007fffff, 0x007fffff, 0x007fffff, // KI_MANTMASK
  0x3f000000, 0x3f000000, 0x3f000000, 0x3f000000, // KI_HALF_EXP
], 16);
const KD: usize = memory.data<f64>([
  1.0, 1.0, // KD_ONE
  0.044715, 0.044715, // KD_GT_K
  -1.5957691216057308, -1.5957691216057308, // KD_GT_C
], 16);

// @ts-ignore: decorator
@inline const K_ONE = 0;
// @ts-ignore: decorator
@inline const K_TWO = 1;
// @ts-ignore: decorator
@inline const K_HALF = 2;
// @ts-ignore: decorator
@inline const K_INF = 3;
// @ts-ignore: decorator
@inline const K_NINF = 4;
// @ts-ignore: decorator
@inline const K_NAN = 5;
// @ts-ignore: decorator
@inline const K_LOG2E = 6; // exp: n = round(x·log2e)
// @ts-ignore: decorator
@inline const K_LN2_HI = 7; // ln2 = LN2_HI + LN2_LO (exp, log)
// @ts-ignore: decorator
@inline const K_LN2_LO = 8;
// @ts-ignore: decorator
@inline const K_MAGIC = 9; // 1.5·2^23: n = bits(v + MAGIC) − bits(MAGIC)
// @ts-ignore: decorator
@inline const K_MAGIC_127 = 10; // MAGIC + 127: bits(x + it) << 23 = 2^round(x)
// @ts-ignore: decorator
@inline const K_EXP_NORMAL_MIN = 11; // below, e^x is subnormal (flushed by expNeg4)
// @ts-ignore: decorator
@inline const K_EXP_SHORT_MAX = 12; // expShort range top (2^127 is the largest scale)
// @ts-ignore: decorator
@inline const K_EXP_XMIN = 13; // exp argument clamp
// @ts-ignore: decorator
@inline const K_EXP_XMAX = 14;
// @ts-ignore: decorator
@inline const K_EXP_P = 15; // exp polynomial (Cephes expf), highest degree first (6 entries)
// @ts-ignore: decorator
@inline const K_TANH_SMALL = 21; // tanh: polynomial below, exp form above
// @ts-ignore: decorator
@inline const K_TANH_P = 22; // tanh polynomial (Cephes tanhf) (5 entries)
// @ts-ignore: decorator
@inline const K_SQRT1_2 = 27; // 1/√2 (gelu, log)
// @ts-ignore: decorator
@inline const K_GELU_ZMAX = 28; // gelu: erfc(20/√2) = 0 in f32
// @ts-ignore: decorator
@inline const K_ERFC_P = 29; // erfc fit (Numerical Recipes erfcc), highest degree first (10 entries)
// @ts-ignore: decorator
@inline const K_GT_LOMAX = 39; // gelu_tanh: |hi| bound for the lo correction
// @ts-ignore: decorator
@inline const K_FLT_MIN = 40; // log: smallest normal
// @ts-ignore: decorator
@inline const K_TWO23 = 41; // 2^23
// @ts-ignore: decorator
@inline const K_LOG_P = 42; // log polynomial (Cephes logf), highest degree first (9 entries)
// @ts-ignore: decorator
@inline const K_GELU_Q = 51; // gelu: Φ(x) − ½ = x·Q(x²) on [−1.25, 3], highest degree first (10 entries)
// @ts-ignore: decorator
@inline const K_GELU_QLO = 61; // gelu: the polynomial's range
// @ts-ignore: decorator
@inline const K_GELU_QHI = 62;
// @ts-ignore: decorator
@inline const K_TANHR_P = 63; // tanhRational4: numerator in x², highest degree first (6 entries)
// @ts-ignore: decorator
@inline const K_TANHR_Q = 69; // denominator in x², highest degree first (4 entries)
// @ts-ignore: decorator
@inline const K_TANHR_XMAX = 73; // |x| clamp: the rational gives 1 at 9
// @ts-ignore: decorator
@inline const K_TANHR_XMIN = 74;
// @ts-ignore: decorator
@inline const K_MINUS_ONE = 75;
// @ts-ignore: decorator
@inline const KI_127 = 0;
// @ts-ignore: decorator
@inline const KI_126 = 1;
// @ts-ignore: decorator
@inline const KI_23 = 2;
// @ts-ignore: decorator
@inline const KI_SPLIT = 3;
// @ts-ignore: decorator
@inline const KI_SIGN = 4;
// @ts-ignore: decorator
@inline const KI_EXPMASK = 5;
// @ts-ignore: decorator
@inline const KI_MANTMASK = 6;
// @ts-ignore: decorator
@inline const KI_HALF_EXP = 7;
// @ts-ignore: decorator
@inline const KD_ONE = 0;
// @ts-ignore: decorator
@inline const KD_GT_K = 1;
// @ts-ignore: decorator
@inline const KD_GT_C = 2;

// @ts-ignore: decorator
@inline function kf(i: i32): v128 {
  return v128.load(KF + (<usize>i << 4));
}
// @ts-ignore: decorator
@inline function ki(i: i32): v128 {
  return v128.load(KI + (<usize>i << 4));
}
// @ts-ignore: decorator
@inline function kd(i: i32): v128 {
  return v128.load(KD + (<usize>i << 4));
}

// e^x is computed in three inline pieces so that callers can share one range reduction:
//   tm = expRound(xc)              n = round(xc·log2e), held in the mantissa of tm (xc clamped)
//   q  = expMant(xh, xl, tm, two)  p(r)·2^n1, r = x − n·ln2 (x = xh + xl when `two`), a normal float
//   s2 = expScale2(tm)             2^n2, with n = n1 + n2 in [−217, 254]
// and e^x = q·s2, m·e^x = (q·m)·s2: both factors of 2^n are normal floats, so the product rounds
// once into the subnormal range, underflows to 0 or overflows to +∞.

/** x clamped to [−150, 176] (NaN passes through). */
// @ts-ignore: decorator
@inline function expClamp(x: v128): v128 {
  return f32x4.pmin(f32x4.pmax(x, kf(K_EXP_XMIN)), kf(K_EXP_XMAX)); // x first: a NaN x is kept
}

// @ts-ignore: decorator
@inline function expRound(xc: v128): v128 {
  return f32x4.add(f32x4.mul(xc, kf(K_LOG2E)), kf(K_MAGIC));
}

/**
 * r = x − n·ln2 for x = xh (+ xl when `two`) and n = fx (a whole number): ln2 in two parts, and
 * xh − n·C1 is exact when n·C1 is within a factor 2 of xh (|x| ≳ 1); xl joins after it.
 */
// @ts-ignore: decorator
@inline function expReduce(xh: v128, xl: v128, fx: v128, two: bool): v128 {
  let r = f32x4.sub(xh, f32x4.mul(fx, kf(K_LN2_HI)));
  if (two) r = f32x4.add(r, xl);
  return f32x4.sub(r, f32x4.mul(fx, kf(K_LN2_LO)));
}

/** The degree-5 part of Cephes' expf polynomial at r (e^r ≈ 1 + r + r²·P(r)). */
// @ts-ignore: decorator
@inline function expPoly(r: v128): v128 {
  let p = kf(K_EXP_P);
  p = fma4(p, r, kf(K_EXP_P + 1));
  p = fma4(p, r, kf(K_EXP_P + 2));
  p = fma4(p, r, kf(K_EXP_P + 3));
  p = fma4(p, r, kf(K_EXP_P + 4));
  return fma4(p, r, kf(K_EXP_P + 5));
}

// @ts-ignore: decorator
@inline function expMant(xh: v128, xl: v128, tm: v128, two: bool): v128 {
  const r = expReduce(xh, xl, f32x4.sub(tm, kf(K_MAGIC)), two);
  const p = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(expPoly(r), r), r), r), kf(K_ONE));
  const n1 = i32x4.shr_s(i32x4.sub(tm, kf(K_MAGIC)), 1);
  return f32x4.mul(p, i32x4.shl(i32x4.add(n1, ki(KI_127)), 23));
}

// @ts-ignore: decorator
@inline function expScale2(tm: v128): v128 {
  const n = i32x4.sub(tm, kf(K_MAGIC));
  const n2 = i32x4.sub(n, i32x4.shr_s(n, 1));
  return i32x4.shl(i32x4.add(n2, ki(KI_127)), 23);
}

/** m·0 where x < −150 (below the clamp e^x is 0; callers keep |m| ≪ e^{150} there), else y. */
// @ts-ignore: decorator
@inline function expGuard(x: v128, m: v128, y: v128): v128 {
  return v128.bitselect(f32x4.mul(m, f32x4.splat(0.0)), y, f32x4.lt(x, kf(K_EXP_XMIN)));
}

/** Lane-wise m·e^x for |m| ≤ max(1, |x|), rounded once (also when the result is subnormal). */
// @ts-ignore: decorator
@inline export function expMul4(x: v128, m: v128): v128 {
  const xc = expClamp(x);
  const tm = expRound(xc);
  const y = f32x4.mul(f32x4.mul(expMant(xc, xc, tm, false), m), expScale2(tm));
  return expGuard(x, m, y);
}

/** Lane-wise e^x (e^{x ≤ −150} = p·2^{−216} = 0 without a guard). */
// @ts-ignore: decorator
@inline export function exp4(x: v128): v128 {
  if (allIn(x, kf(K_EXP_NORMAL_MIN), kf(K_EXP_SHORT_MAX))) return expShort(x, x, false);
  const xc = expClamp(x);
  const tm = expRound(xc);
  return f32x4.mul(expMant(xc, xc, tm, false), expScale2(tm));
}

/**
 * e^x for x = xh (+ xl when `two`) with 2^round(x·log2e) a normal float (x in [−87.33, 88]):
 * one scale factor, built as bits(x·log2e + MAGIC + 127) << 23 (XNNPACK's trick), no clamping,
 * about half the work of the general form. Outside that range the result is garbage: callers
 * check the range (or flush, as expNeg4).
 */
// @ts-ignore: decorator
@inline function expShort(xh: v128, xl: v128, two: bool): v128 {
  const tm = fma4(two ? f32x4.add(xh, xl) : xh, kf(K_LOG2E), kf(K_MAGIC_127));
  const r = expReduce(xh, xl, f32x4.sub(tm, kf(K_MAGIC_127)), two);
  const p = f32x4.add(fma4(f32x4.mul(expPoly(r), r), r, r), kf(K_ONE));
  return f32x4.mul(p, i32x4.shl(tm, 23));
}

/** True when every lane of x is in [lo, hi] (NaN lanes are not). */
// @ts-ignore: decorator
@inline function allIn(x: v128, lo: v128, hi: v128): bool {
  return i32x4.all_true(v128.and(f32x4.ge(x, lo), f32x4.le(x, hi)));
}

/**
 * Lane-wise e^x for x ≤ 0 where results below 2^−126 may be flushed to 0 (softmax terms, whose
 * sum is ≥ 1). NaN stays NaN; −∞ gives 0.
 */
// @ts-ignore: decorator
@inline export function expNeg4(x: v128): v128 {
  return v128.andnot(expShort(x, x, false), f32x4.lt(x, kf(K_EXP_NORMAL_MIN)));
}

/**
 * Lane-wise n/(1 + e^{a}) without overflow: with t = e^{−|a|} ≤ 1 it is n·t/(1 + t) for a > 0 and
 * n/(1 + t) otherwise, so results keep their relative accuracy down to the subnormal range
 * (the naive form turns e^{a} = +∞ into 0 near the bottom of the normal range); n·t is rounded once.
 * `lo` is a small correction to a (a = hi + lo, e^{a} ≈ e^{hi}·(1 + lo)), zero when a is exact.
 */
// @ts-ignore: decorator
@inline function overOnePlusExp(n: v128, hi: v128, lo: v128): v128 {
  const pos = f32x4.gt(hi, f32x4.splat(0.0));
  const l1 = f32x4.add(kf(K_ONE), v128.bitselect(f32x4.neg(lo), lo, pos));
  const na = f32x4.neg(f32x4.abs(hi));
  if (i32x4.all_true(f32x4.ge(na, kf(K_EXP_NORMAL_MIN)))) {
    // common case: e^{−|a|} is a normal float in every lane, so the short exp serves and n·t
    // rounds once (NaN lanes take the general path below)
    const t1 = f32x4.mul(expNeg4(na), l1);
    return f32x4.div(v128.bitselect(f32x4.mul(t1, n), n, pos), f32x4.add(kf(K_ONE), t1));
  }
  const xc = expClamp(na);
  const tm = expRound(xc);
  const q = f32x4.mul(expMant(xc, xc, tm, false), l1);
  const s2 = expScale2(tm);
  const t = f32x4.mul(q, s2); // e^{−|a|}
  const nt = expGuard(na, n, f32x4.mul(f32x4.mul(q, n), s2)); // n·e^{−|a|}
  return f32x4.div(v128.bitselect(nt, n, pos), f32x4.add(kf(K_ONE), t));
}

/** Lane-wise 1/(1 + e^{−x}). */
// @ts-ignore: decorator
@inline export function sigmoid4(x: v128): v128 {
  return overOnePlusExp(kf(K_ONE), f32x4.neg(x), f32x4.splat(0.0));
}

/** Lane-wise x/(1 + e^{−x}) (SiLU / swish). */
// @ts-ignore: decorator
@inline export function silu4(x: v128): v128 {
  return overOnePlusExp(x, f32x4.neg(x), f32x4.splat(0.0));
}

/** Lane-wise tanh. */
// @ts-ignore: decorator
@inline export function tanh4(x: v128): v128 {
  const ax = f32x4.abs(x);
  // small |x|: odd polynomial (no cancellation near 0)
  const z = f32x4.mul(x, x);
  let p = kf(K_TANH_P);
  p = fma4(p, z, kf(K_TANH_P + 1));
  p = fma4(p, z, kf(K_TANH_P + 2));
  p = fma4(p, z, kf(K_TANH_P + 3));
  p = fma4(p, z, kf(K_TANH_P + 4));
  const small = f32x4.add(x, f32x4.mul(f32x4.mul(p, z), x));
  // large |x|: (1 − e)/(1 + e) with e = e^{−2|x|} ≤ 0.29 (flushed to 0, giving 1, past |x| ≈ 43)
  const e = expNeg4(f32x4.neg(f32x4.add(ax, ax)));
  const t = f32x4.div(f32x4.sub(kf(K_ONE), e), f32x4.add(kf(K_ONE), e));
  const large = v128.or(t, v128.and(x, ki(KI_SIGN)));
  return v128.bitselect(small, large, f32x4.lt(ax, kf(K_TANH_SMALL)));
}

/**
 * Lane-wise tanh as x·P(x²)/Q(x²) (degrees 5 and 3 in x², a least-squares fit on [0, 9], x clamped
 * to ±9, result clamped to [−1, 1]): absolute error ≤ 3.2e-7, relative ≤ 2.7e-7 — about 4× the
 * error of tanh4 and a third of its work (no exp, one division, no branch). For the recurrent cells,
 * whose outputs are checked to an absolute tolerance; `unary` keeps tanh4.
 */
// @ts-ignore: decorator
@inline export function tanhRational4(x: v128): v128 {
  const xc = f32x4.pmax(f32x4.pmin(x, kf(K_TANHR_XMAX)), kf(K_TANHR_XMIN)); // pmin/pmax: one instruction each, NaN kept
  const s = f32x4.mul(xc, xc);
  let p = kf(K_TANHR_P);
  p = fma4(p, s, kf(K_TANHR_P + 1));
  p = fma4(p, s, kf(K_TANHR_P + 2));
  p = fma4(p, s, kf(K_TANHR_P + 3));
  p = fma4(p, s, kf(K_TANHR_P + 4));
  p = fma4(p, s, kf(K_TANHR_P + 5));
  let q = kf(K_TANHR_Q);
  q = fma4(q, s, kf(K_TANHR_Q + 1));
  q = fma4(q, s, kf(K_TANHR_Q + 2));
  q = fma4(q, s, kf(K_TANHR_Q + 3));
  const t = f32x4.div(f32x4.mul(xc, p), q);
  return f32x4.pmax(f32x4.pmin(t, kf(K_ONE)), kf(K_MINUS_ONE));
}

/** Lane-wise 1/(1 + e^{−x}) as ½ + ½·tanh(x/2) through tanhRational4: absolute error ≤ 1.7e-7. */
// @ts-ignore: decorator
@inline export function sigmoidRational4(x: v128): v128 {
  return fma4(tanhRational4(f32x4.mul(x, kf(K_HALF))), kf(K_HALF), kf(K_HALF));
}

/**
 * Lane-wise exact GELU, 0.5·x·(1 + erf(x/√2)) = 0.5·x·erfc(−x/√2) (no cancellation for x < 0).
 * erfc(t), t = |x|/√2, is the Numerical Recipes `erfcc` fit u·e^{−t² + P(u)}, u = 1/(1 + t/2);
 * t² = x²/2 is split exactly (|x| = zh + zl, zh on 12 bits) so that e^{−t²} keeps full relative
 * accuracy deep in the tail (e^{−t² + P} is one exp of a two-part argument), and the x < 0 product
 * is rounded once (subnormal results included).
 */
// @ts-ignore: decorator
@inline export function gelu4(x: v128): v128 {
  if (allIn(x, kf(K_GELU_QLO), kf(K_GELU_QHI))) {
    // x·(½ + x·Q(x²)): a least-squares fit of Φ(x) − ½ = ½·erf(x/√2) in s = x², weighted so that
    // the error stays below 3.5e-7 of Φ where 1 − Φ(|x|) cancels (x ≥ −1.25); no division, no exp
    const s = f32x4.mul(x, x);
    let q = kf(K_GELU_Q);
    q = fma4(q, s, kf(K_GELU_Q + 1));
    q = fma4(q, s, kf(K_GELU_Q + 2));
    q = fma4(q, s, kf(K_GELU_Q + 3));
    q = fma4(q, s, kf(K_GELU_Q + 4));
    q = fma4(q, s, kf(K_GELU_Q + 5));
    q = fma4(q, s, kf(K_GELU_Q + 6));
    q = fma4(q, s, kf(K_GELU_Q + 7));
    q = fma4(q, s, kf(K_GELU_Q + 8));
    q = fma4(q, s, kf(K_GELU_Q + 9));
    return f32x4.mul(x, fma4(x, q, kf(K_HALF)));
  }
  return geluErfc4(x);
}

/** gelu4 for any lanes (the erfc form below); gelu4 takes it when a lane is outside [−1.25, 3]. */
// @ts-ignore: decorator
@inline function geluErfc4(x: v128): v128 {
  const ax = f32x4.abs(x);
  const z = f32x4.pmin(ax, kf(K_GELU_ZMAX)); // erfc(20/√2) = 0 in f32
  const t = f32x4.mul(z, kf(K_SQRT1_2));
  const u = f32x4.div(kf(K_ONE), f32x4.add(kf(K_ONE), f32x4.mul(t, kf(K_HALF))));
  let p = kf(K_ERFC_P);
  p = fma4(p, u, kf(K_ERFC_P + 1));
  p = fma4(p, u, kf(K_ERFC_P + 2));
  p = fma4(p, u, kf(K_ERFC_P + 3));
  p = fma4(p, u, kf(K_ERFC_P + 4));
  p = fma4(p, u, kf(K_ERFC_P + 5));
  p = fma4(p, u, kf(K_ERFC_P + 6));
  p = fma4(p, u, kf(K_ERFC_P + 7));
  p = fma4(p, u, kf(K_ERFC_P + 8));
  p = fma4(p, u, kf(K_ERFC_P + 9));
  const zh = v128.and(z, ki(KI_SPLIT));
  const zl = f32x4.sub(z, zh);
  const hi = f32x4.mul(f32x4.mul(zh, zh), kf(K_HALF)); // exact
  const lo = f32x4.add(f32x4.mul(zh, zl), f32x4.mul(f32x4.mul(zl, zl), kf(K_HALF)));
  // erfc(t) = u·e^{ah + al} with ah = −hi (exact) and al = P(u) − lo: one exp, two-part argument
  const ah = f32x4.neg(hi);
  const al = f32x4.sub(p, lo);
  const a = f32x4.add(ah, al);
  const halfx = f32x4.mul(x, kf(K_HALF));
  const neg = f32x4.lt(x, f32x4.splat(0.0));
  // x < 0: r = 0.5·x·erfc(t) in one rounding; x ≥ 0: r = erfc(t), result 0.5·x·(2 − r)
  const m = v128.bitselect(f32x4.mul(halfx, u), u, neg);
  let r: v128;
  if (i32x4.all_true(f32x4.ge(a, kf(K_EXP_NORMAL_MIN)))) {
    r = f32x4.mul(expShort(ah, al, true), m); // |x| ≲ 13: e^a is normal
  } else {
    const tm = expRound(expClamp(a));
    r = expGuard(a, m, f32x4.mul(f32x4.mul(expMant(ah, al, tm, true), m), expScale2(tm)));
  }
  const g = v128.bitselect(r, f32x4.mul(halfx, f32x4.sub(kf(K_TWO), r)), neg);
  // beyond the clamp erfc is 0: x < −20 gives −0 (NaN for −∞, as 0.5·x·0)
  return v128.bitselect(f32x4.mul(halfx, f32x4.splat(0.0)), g, v128.and(neg, f32x4.ge(ax, kf(K_GELU_ZMAX))));
}

/**
 * −2·√(2/π)·(x + 0.044715·x³) for two f64 lanes (promoted from f32): the exponent of the
 * logistic form of tanh-GELU, computed in f64 because its f32 rounding error (≈ |arg|·6e-8) would
 * be amplified by e^{arg} to ~2e-6 relative in the negative tail.
 */
// @ts-ignore: decorator
@inline function geluTanhArg2(xd: v128): v128 {
  const x2 = f64x2.mul(xd, xd);
  const w = f64x2.mul(xd, f64x2.add(kd(KD_ONE), f64x2.mul(x2, kd(KD_GT_K))));
  return f64x2.mul(w, kd(KD_GT_C));
}

/**
 * Lane-wise tanh-approximation GELU, 0.5·x·(1 + tanh(y)) with y = √(2/π)·(x + 0.044715·x³),
 * computed as x/(1 + e^{−2y}) (the same value, without cancellation for x < 0). The exponent is
 * formed in f64 and split as hi + lo in f32, e^{hi + lo} ≈ e^{hi}·(1 + lo).
 */
// @ts-ignore: decorator
@inline export function geluTanh4(x: v128): v128 {
  const d01 = geluTanhArg2(f64x2.promote_low_f32x4(x));
  const d23 = geluTanhArg2(f64x2.promote_low_f32x4(f32x4.shuffle(x, x, 2, 3, 0, 1)));
  const h01 = f32x4.demote_f64x2_zero(d01);
  const h23 = f32x4.demote_f64x2_zero(d23);
  const l01 = f32x4.demote_f64x2_zero(f64x2.sub(d01, f64x2.promote_low_f32x4(h01)));
  const l23 = f32x4.demote_f64x2_zero(f64x2.sub(d23, f64x2.promote_low_f32x4(h23)));
  const hi = i64x2.shuffle(h01, h23, 0, 2);
  // lo (|lo| ≤ ulp(hi)/2) is a valid first-order correction only for moderate hi; beyond 1e4 the
  // result is 0 or x anyway (and an infinite or NaN hi would leave lo = inf − inf = NaN)
  const lo = v128.and(i64x2.shuffle(l01, l23, 0, 2), f32x4.lt(f32x4.abs(hi), kf(K_GT_LOMAX)));
  return overOnePlusExp(x, hi, lo);
}

/** Lane-wise max(x, 0) as `x < 0 ? 0 : x` (pmax: one instruction; NaN stays NaN, as torch.relu). */
// @ts-ignore: decorator
@inline export function relu4(x: v128): v128 {
  return f32x4.pmax(x, f32x4.splat(0.0));
}

/**
 * Lane-wise natural log (Cephes `logf`: x = m·2^e with m in [√½, √2), log(1 + t) by a degree-9
 * polynomial, e·ln2 added in two parts). log(±0) = −∞, log(x < 0) = NaN, log(+∞) = +∞;
 * subnormal inputs are rescaled by 2^23 first.
 */
// @ts-ignore: decorator
@inline export function log4(x: v128): v128 {
  const sub = f32x4.lt(x, kf(K_FLT_MIN));
  const xs = v128.bitselect(f32x4.mul(x, kf(K_TWO23)), x, sub);
  // frexp: xs = m·2^e, m in [0.5, 1)
  let e = i32x4.sub(i32x4.shr_u(v128.and(xs, ki(KI_EXPMASK)), 23), ki(KI_126));
  e = i32x4.sub(e, v128.and(sub, ki(KI_23)));
  const m = v128.or(v128.and(xs, ki(KI_MANTMASK)), ki(KI_HALF_EXP));
  const lt = f32x4.lt(m, kf(K_SQRT1_2));
  e = i32x4.add(e, lt); // lt lanes are −1
  const t = f32x4.sub(f32x4.add(m, v128.and(m, lt)), kf(K_ONE));
  const ef = f32x4.convert_i32x4_s(e);
  const z = f32x4.mul(t, t);
  let p = kf(K_LOG_P);
  p = fma4(p, t, kf(K_LOG_P + 1));
  p = fma4(p, t, kf(K_LOG_P + 2));
  p = fma4(p, t, kf(K_LOG_P + 3));
  p = fma4(p, t, kf(K_LOG_P + 4));
  p = fma4(p, t, kf(K_LOG_P + 5));
  p = fma4(p, t, kf(K_LOG_P + 6));
  p = fma4(p, t, kf(K_LOG_P + 7));
  p = fma4(p, t, kf(K_LOG_P + 8));
  let y = f32x4.mul(f32x4.mul(p, t), z);
  y = f32x4.add(y, f32x4.mul(ef, kf(K_LN2_LO)));
  y = f32x4.sub(y, f32x4.mul(z, kf(K_HALF)));
  let r = f32x4.add(t, y);
  r = f32x4.add(r, f32x4.mul(ef, kf(K_LN2_HI)));
  // special values
  r = v128.bitselect(kf(K_INF), r, f32x4.eq(x, kf(K_INF)));
  r = v128.bitselect(kf(K_NINF), r, f32x4.eq(x, f32x4.splat(0.0)));
  return v128.bitselect(kf(K_NAN), r, v128.not(f32x4.ge(x, f32x4.splat(0.0))));
}
