// Vector (f32x4) transcendental functions for the activation, softmax and RNN kernels.
// exp: Cephes `expf` (range reduction x = n·ln2 + r with a two-part ln2, degree-6 polynomial),
// tanh: Cephes `tanhf` polynomial below 0.625, 1 − 2/(e^{2|x|} + 1) above; erfc: the Chebyshev fit of
// Numerical Recipes (`erfcc`, fractional error < 1.2e-7 everywhere) with x² carried exactly.
// Measured max relative error against float64 over normal results: exp 1.2e-7, tanh 1.2e-7,
// sigmoid/silu/gelu_tanh < 3e-7, gelu < 6e-7 (sweeps over [−120, 90]); log (Cephes `logf`) 1.2e-7.
// Special values: exp(−∞) = 0, exp(x > 88.72) = +∞, tanh(±large) = ±1, NaN in → NaN out.

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
@inline const MAGIC_BITS: i32 = 0x4b400000;

/**
 * m·e^x (guard: x < −150 gives m·0). 2^n is applied as ((p·2^n1)·m)·2^n2 with n = n1 + n2 in
 * [−217, 254], so both factors are normal floats and the product rounds once into the subnormal
 * range, underflows to 0 or overflows to +∞.
 */
// @ts-ignore: decorator
@inline function expCore(x: v128, m: v128, guard: bool): v128 {
  // clamp keeps 2^n inside the two-step scale; NaN passes through min/max
  const xc = f32x4.min(f32x4.max(x, f32x4.splat(-150.0)), f32x4.splat(176.0));
  const tm = f32x4.add(f32x4.mul(xc, f32x4.splat(LOG2E)), f32x4.splat(MAGIC));
  const fx = f32x4.sub(tm, f32x4.splat(MAGIC));
  let r = f32x4.sub(xc, f32x4.mul(fx, f32x4.splat(EXP_C1)));
  r = f32x4.sub(r, f32x4.mul(fx, f32x4.splat(EXP_C2)));
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(p, r), r), r), f32x4.splat(1.0));
  const n = i32x4.sub(tm, i32x4.splat(MAGIC_BITS));
  const n1 = i32x4.shr_s(n, 1);
  const n2 = i32x4.sub(n, n1);
  const s1 = i32x4.shl(i32x4.add(n1, i32x4.splat(127)), 23);
  const s2 = i32x4.shl(i32x4.add(n2, i32x4.splat(127)), 23);
  const y = f32x4.mul(f32x4.mul(f32x4.mul(p, s1), m), s2);
  if (!guard) return y;
  // below the clamp e^x is taken as 0 (m·0: signed zero, NaN for infinite m); callers pass m with
  // |m| ≪ e^{150} there (m = x or 1), where the exact result is 0 in f32 too
  return v128.bitselect(f32x4.mul(m, f32x4.splat(0.0)), y, f32x4.lt(x, f32x4.splat(-150.0)));
}

/** Lane-wise m·e^x for |m| ≤ max(1, |x|), rounded once (also when the result is subnormal). */
// @ts-ignore: decorator
@inline export function expMul4(x: v128, m: v128): v128 {
  return expCore(x, m, true);
}

/** Lane-wise e^x (e^{x ≤ −150} = p·2^{−216} = 0 without the guard). */
// @ts-ignore: decorator
@inline export function exp4(x: v128): v128 {
  return expCore(x, f32x4.splat(1.0), false);
}

/**
 * Lane-wise n/(1 + e^{a}) without overflow: with t = e^{−|a|} ≤ 1 it is n·t/(1 + t) for a > 0 and
 * n/(1 + t) otherwise, so results keep their relative accuracy down to the subnormal range
 * (the naive form turns e^{a} = +∞ into 0 near the bottom of the normal range).
 * `lo` is a small correction to a (a = hi + lo, e^{a} ≈ e^{hi}·(1 + lo)), zero when a is exact.
 */
// @ts-ignore: decorator
@inline function overOnePlusExp(n: v128, hi: v128, lo: v128): v128 {
  const pos = f32x4.gt(hi, f32x4.splat(0.0));
  const l = v128.bitselect(f32x4.neg(lo), lo, pos);
  const l1 = f32x4.add(f32x4.splat(1.0), l);
  const na = f32x4.neg(f32x4.abs(hi));
  const t = f32x4.mul(exp4(na), l1);
  const num = v128.bitselect(expMul4(na, f32x4.mul(n, l1)), n, pos);
  return f32x4.div(num, f32x4.add(f32x4.splat(1.0), t));
}

/** Lane-wise 1/(1 + e^{−x}). */
// @ts-ignore: decorator
@inline export function sigmoid4(x: v128): v128 {
  return overOnePlusExp(f32x4.splat(1.0), f32x4.neg(x), f32x4.splat(0.0));
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
  let p = f32x4.splat(-5.70498872745e-3);
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(2.06390887954e-2));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(-5.37397155531e-2));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(1.33314422036e-1));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(-3.33332819422e-1));
  const small = f32x4.add(x, f32x4.mul(f32x4.mul(p, z), x));
  // large |x|: 1 − 2/(e^{2|x|} + 1), sign restored (e^{2|x|} = +∞ gives exactly 1)
  const e = exp4(f32x4.add(ax, ax));
  const t = f32x4.sub(f32x4.splat(1.0), f32x4.div(f32x4.splat(2.0), f32x4.add(e, f32x4.splat(1.0))));
  const large = v128.or(t, v128.and(x, i32x4.splat(0x80000000)));
  return v128.bitselect(small, large, f32x4.lt(ax, f32x4.splat(0.625)));
}

/**
 * Lane-wise exact GELU, 0.5·x·(1 + erf(x/√2)) = 0.5·x·erfc(−x/√2) (no cancellation for x < 0).
 * erfc(t), t = |x|/√2, is the Numerical Recipes `erfcc` fit u·e^{−t² + P(u)}, u = 1/(1 + t/2);
 * t² = x²/2 is split exactly (|x| = zh + zl, zh on 12 bits) so that e^{−t²} keeps full relative
 * accuracy deep in the tail, and the x < 0 product is rounded once (subnormal results included).
 */
// @ts-ignore: decorator
@inline export function gelu4(x: v128): v128 {
  const ax = f32x4.abs(x);
  const z = f32x4.min(ax, f32x4.splat(20.0)); // erfc(20/√2) = 0 in f32
  const t = f32x4.mul(z, f32x4.splat(0.70710678118654752));
  const u = f32x4.div(f32x4.splat(1.0), f32x4.add(f32x4.splat(1.0), f32x4.mul(t, f32x4.splat(0.5))));
  let p = f32x4.splat(0.17087277);
  p = f32x4.add(f32x4.mul(p, u), f32x4.splat(-0.82215223));
  p = f32x4.add(f32x4.mul(p, u), f32x4.splat(1.48851587));
  p = f32x4.add(f32x4.mul(p, u), f32x4.splat(-1.13520398));
  p = f32x4.add(f32x4.mul(p, u), f32x4.splat(0.27886807));
  p = f32x4.add(f32x4.mul(p, u), f32x4.splat(-0.18628806));
  p = f32x4.add(f32x4.mul(p, u), f32x4.splat(0.09678418));
  p = f32x4.add(f32x4.mul(p, u), f32x4.splat(0.37409196));
  p = f32x4.add(f32x4.mul(p, u), f32x4.splat(1.00002368));
  p = f32x4.add(f32x4.mul(p, u), f32x4.splat(-1.26551223));
  const zh = v128.and(z, i32x4.splat(0xfffff000));
  const zl = f32x4.sub(z, zh);
  const hi = f32x4.mul(f32x4.mul(zh, zh), f32x4.splat(0.5)); // exact
  const lo = f32x4.add(f32x4.mul(zh, zl), f32x4.mul(f32x4.mul(zl, zl), f32x4.splat(0.5)));
  const e2 = f32x4.mul(u, exp4(f32x4.sub(p, lo))); // erfc(t) = e2·e^{−hi}
  const halfx = f32x4.mul(x, f32x4.splat(0.5));
  const neg = f32x4.lt(x, f32x4.splat(0.0));
  // x < 0: 0.5·x·erfc(t) in one rounding; x ≥ 0: 0.5·x·(2 − erfc(t))
  const r = expMul4(f32x4.neg(hi), v128.bitselect(f32x4.mul(halfx, e2), e2, neg));
  const g = v128.bitselect(r, f32x4.mul(halfx, f32x4.sub(f32x4.splat(2.0), r)), neg);
  // beyond the clamp erfc is 0: x < −20 gives −0 (NaN for −∞, as 0.5·x·0)
  return v128.bitselect(f32x4.mul(halfx, f32x4.splat(0.0)), g, v128.and(neg, f32x4.ge(ax, f32x4.splat(20.0))));
}

/**
 * −2·√(2/π)·(x + 0.044715·x³) for two f64 lanes (promoted from f32): the exponent of the
 * logistic form of tanh-GELU, computed in f64 because its f32 rounding error (≈ |arg|·6e-8) would
 * be amplified by e^{arg} to ~2e-6 relative in the negative tail.
 */
// @ts-ignore: decorator
@inline function geluTanhArg2(xd: v128): v128 {
  const x2 = f64x2.mul(xd, xd);
  const w = f64x2.mul(xd, f64x2.add(f64x2.splat(1.0), f64x2.mul(x2, f64x2.splat(0.044715))));
  return f64x2.mul(w, f64x2.splat(-1.5957691216057308));
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
  const lo = v128.and(i64x2.shuffle(l01, l23, 0, 2), f32x4.lt(f32x4.abs(hi), f32x4.splat(1e4)));
  return overOnePlusExp(x, hi, lo);
}

/** Lane-wise max(x, 0), NaN → 0 (as `x > 0 ? x : 0`). */
// @ts-ignore: decorator
@inline export function relu4(x: v128): v128 {
  return v128.and(x, f32x4.gt(x, f32x4.splat(0.0)));
}

/**
 * Lane-wise natural log (Cephes `logf`: x = m·2^e with m in [√½, √2), log(1 + t) by a degree-9
 * polynomial, e·ln2 added in two parts). log(±0) = −∞, log(x < 0) = NaN, log(+∞) = +∞;
 * subnormal inputs are rescaled by 2^23 first.
 */
// @ts-ignore: decorator
@inline export function log4(x: v128): v128 {
  const sub = f32x4.lt(x, f32x4.splat(1.17549435e-38));
  const xs = v128.bitselect(f32x4.mul(x, f32x4.splat(8388608.0)), x, sub);
  // frexp: xs = m·2^e, m in [0.5, 1)
  let e = i32x4.sub(i32x4.shr_u(v128.and(xs, i32x4.splat(0x7f800000)), 23), i32x4.splat(126));
  e = i32x4.sub(e, v128.and(sub, i32x4.splat(23)));
  const m = v128.or(v128.and(xs, i32x4.splat(0x007fffff)), i32x4.splat(0x3f000000));
  const lt = f32x4.lt(m, f32x4.splat(0.707106781186547524));
  e = i32x4.add(e, lt); // lt lanes are −1
  const t = f32x4.sub(f32x4.add(m, v128.and(m, lt)), f32x4.splat(1.0));
  const ef = f32x4.convert_i32x4_s(e);
  const z = f32x4.mul(t, t);
  let p = f32x4.splat(7.0376836292e-2);
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-1.1514610310e-1));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(1.1676998740e-1));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-1.2420140846e-1));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(1.4249322787e-1));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-1.6668057665e-1));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(2.0000714765e-1));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-2.4999993993e-1));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(3.3333331174e-1));
  let y = f32x4.mul(f32x4.mul(p, t), z);
  y = f32x4.add(y, f32x4.mul(ef, f32x4.splat(-2.12194440e-4)));
  y = f32x4.sub(y, f32x4.mul(z, f32x4.splat(0.5)));
  let r = f32x4.add(t, y);
  r = f32x4.add(r, f32x4.mul(ef, f32x4.splat(0.693359375)));
  // special values
  r = v128.bitselect(f32x4.splat(Infinity), r, f32x4.eq(x, f32x4.splat(Infinity)));
  r = v128.bitselect(f32x4.splat(-Infinity), r, f32x4.eq(x, f32x4.splat(0.0)));
  return v128.bitselect(f32x4.splat(NaN), r, v128.not(f32x4.ge(x, f32x4.splat(0.0))));
}
