// Activation family: scalar and f32x4 forms of relu, gelu (erf, tanh), silu, tanh, sigmoid, exp.
// Codes match Act in src/kernels.ts.

/** Scalar activation by code (used in GEMM epilogues and tails). */
export function act1(x: f32, act: i32): f32 {
  switch (act) {
    case 0: return x;
    case 1: return x > 0 ? x : 0;
    case 2: return <f32>(0.5 * <f64>x * (1.0 + erf64(<f64>x * 0.7071067811865476)));
    case 3: return <f32>(0.5 * <f64>x * (1.0 + Math.tanh(0.7978845608028654 * (<f64>x + 0.044715 * <f64>x * <f64>x * <f64>x))));
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
