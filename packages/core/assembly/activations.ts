// Activation family: scalar and f32x4 forms of relu, gelu (erf, tanh), silu, tanh, sigmoid, exp.
// Codes match Act in src/kernels.ts.
import { exp4, gelu4, geluTanh4, log4, relu4, sigmoid4, silu4, tanh4 } from "./inline/vmath";

/** Scalar activation by code (used in GEMM epilogues and tails). */
export function act1(x: f32, act: i32): f32 {
  switch (act) {
    case 0: return x;
    case 1: return x < 0 ? 0 : x; // NaN stays NaN, as torch.relu
    // erfc / logistic forms of 0.5·x·(1 + erf(x/√2)) and 0.5·x·(1 + tanh(y)): no cancellation for x < 0
    case 2: return <f32>(0.5 * <f64>x * erfc64(-<f64>x * 0.7071067811865476));
    case 3: return <f32>(<f64>x / (1.0 + Math.exp(-1.5957691216057308 * (<f64>x + 0.044715 * <f64>x * <f64>x * <f64>x))));
    case 4: return <f32>(<f64>x / (1.0 + Math.exp(-<f64>x)));
    case 5: return <f32>Math.tanh(<f64>x);
    case 6: return <f32>(1.0 / (1.0 + Math.exp(-<f64>x)));
    case 7: return <f32>Math.exp(<f64>x);
    case 8: return -x;
    case 9: return <f32>Math.sqrt(<f64>x);
    case 10: return <f32>Math.abs(<f64>x);
    case 11: return <f32>Math.log(<f64>x);
    default: return x;
  }
}

/** erf in f64 (Abramowitz–Stegun 7.1.26 is too coarse; series + continued fraction). */
export function erf64(x: f64): f64 {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 60; n++) {
      term *= -x2 / <f64>n;
      const add = term / <f64>(2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    const r = 1.1283791670955126 * sum;
    return x < 0 ? -r : r;
  }
  if (ax > 6) return x < 0 ? -1.0 : 1.0;
  let cf: f64 = 0;
  for (let n = 60; n >= 1; n--) cf = (<f64>n * 0.5) / (ax + cf);
  const erfc = Math.exp(-ax * ax) * 0.5641895835477563 / (ax + cf);
  return x < 0 ? erfc - 1.0 : 1.0 - erfc;
}

/** erfc in f64 with full relative accuracy in the upper tail (continued fraction for x ≥ 2.5). */
export function erfc64(x: f64): f64 {
  if (isNaN(x)) return x;
  if (x < 2.5) return 1.0 - erf64(x);
  if (x > 27) return 0;
  let cf: f64 = 0;
  for (let n = 60; n >= 1; n--) cf = (<f64>n * 0.5) / (x + cf);
  return Math.exp(-x * x) * 0.5641895835477563 / (x + cf);
}

// ---------------------------------------------------------------------------------------------
// unary: y[i] = f(x[i]) for an Act code; f32x4 main loops (assembly/inline/vmath.ts), f64 scalar
// tails through act1. In place allowed (each lane is read before it is written).

/** Elementwise activation over n floats (Kernels.unary). */
export function unary(x: usize, y: usize, n: i32, act: i32): void {
  let i = 0;
  const n4 = n & ~3;
  switch (act) {
    case 0:
      if (x != y) memory.copy(y, x, <usize>n << 2);
      return;
    case 1:
      for (; i < n4; i += 4) v128.store(y + (<usize>i << 2), relu4(v128.load(x + (<usize>i << 2))));
      break;
    case 2:
      for (; i < n4; i += 4) v128.store(y + (<usize>i << 2), gelu4(v128.load(x + (<usize>i << 2))));
      break;
    case 3:
      for (; i < n4; i += 4) v128.store(y + (<usize>i << 2), geluTanh4(v128.load(x + (<usize>i << 2))));
      break;
    case 4:
      for (; i < n4; i += 4) v128.store(y + (<usize>i << 2), silu4(v128.load(x + (<usize>i << 2))));
      break;
    case 5:
      for (; i < n4; i += 4) v128.store(y + (<usize>i << 2), tanh4(v128.load(x + (<usize>i << 2))));
      break;
    case 6:
      for (; i < n4; i += 4) v128.store(y + (<usize>i << 2), sigmoid4(v128.load(x + (<usize>i << 2))));
      break;
    case 7:
      for (; i < n4; i += 4) v128.store(y + (<usize>i << 2), exp4(v128.load(x + (<usize>i << 2))));
      break;
    case 8:
      for (; i < n4; i += 4) v128.store(y + (<usize>i << 2), f32x4.neg(v128.load(x + (<usize>i << 2))));
      break;
    case 9:
      for (; i < n4; i += 4) v128.store(y + (<usize>i << 2), f32x4.sqrt(v128.load(x + (<usize>i << 2))));
      break;
    case 10:
      for (; i < n4; i += 4) v128.store(y + (<usize>i << 2), f32x4.abs(v128.load(x + (<usize>i << 2))));
      break;
    case 11:
      for (; i < n4; i += 4) v128.store(y + (<usize>i << 2), log4(v128.load(x + (<usize>i << 2))));
      break;
    default:
      // unknown code: act1 passes values through
      break;
  }
  for (; i < n; i++) {
    const p = <usize>i << 2;
    store<f32>(y + p, act1(load<f32>(x + p), act));
  }
}

/**
 * Vector activation by code, for fused epilogues (e.g. a GEMM tile leaving registers): the same
 * f32x4 forms as `unary`. Unknown codes pass values through, as act1 does.
 */
// @ts-ignore: decorator
@inline export function act4(v: v128, act: i32): v128 {
  switch (act) {
    case 1: return relu4(v);
    case 2: return gelu4(v);
    case 3: return geluTanh4(v);
    case 4: return silu4(v);
    case 5: return tanh4(v);
    case 6: return sigmoid4(v);
    case 7: return exp4(v);
    case 8: return f32x4.neg(v);
    case 9: return f32x4.sqrt(v);
    case 10: return f32x4.abs(v);
    case 11: return log4(v);
    default: return v;
  }
}
