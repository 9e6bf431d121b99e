// Layer norm over the last axis: y = (x − mean)/sqrt(var + eps)·gamma + beta, biased variance.
// Two passes with the corrected two-pass algorithm (Chan, Golub & LeVeque 1983): pass 1 gives an
// f32 mean m; pass 2 sums d = x − m (exact when x is near m) and d², so mean = m + c with
// c = Σd/D and var = Σd²/D − c². The output is formed as ((x − m) − c)·inv, which keeps full
// accuracy for rows with a large common offset (1e4 + small noise) where m alone is off by an ulp.
import { hsum4 } from "./inline/fma";

/** Kernels.layerNorm: `rows` rows of `d` contiguous floats; gamma/beta may be 0. In place allowed. */
export function layerNorm(x: usize, y: usize, rows: i32, d: i32, gamma: usize, beta: usize, eps: f32): void {
  if (d <= 0) return;
  const n4 = d & ~3;
  const invD: f64 = 1.0 / <f64>d;
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>d << 2);
    const yr = y + (<usize>r * <usize>d << 2);
    // pass 1: provisional mean
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let j = 0;
    for (; j + 8 <= d; j += 8) {
      const p = xr + (<usize>j << 2);
      a0 = f32x4.add(a0, v128.load(p));
      a1 = f32x4.add(a1, v128.load(p, 16));
    }
    for (; j < n4; j += 4) a0 = f32x4.add(a0, v128.load(xr + (<usize>j << 2)));
    let s = hsum4(f32x4.add(a0, a1));
    for (; j < d; j++) s += load<f32>(xr + (<usize>j << 2));
    const m = <f32>(<f64>s * invD);
    // pass 2: centred first and second moments
    const mv = f32x4.splat(m);
    let c1 = f32x4.splat(0);
    let c2 = f32x4.splat(0);
    j = 0;
    for (; j < n4; j += 4) {
      const t = f32x4.sub(v128.load(xr + (<usize>j << 2)), mv);
      c1 = f32x4.add(c1, t);
      c2 = f32x4.add(c2, f32x4.mul(t, t));
    }
    let s1 = hsum4(c1);
    let s2 = hsum4(c2);
    for (; j < d; j++) {
      const t = load<f32>(xr + (<usize>j << 2)) - m;
      s1 += t;
      s2 += t * t;
    }
    const c: f64 = <f64>s1 * invD;
    let v: f64 = <f64>s2 * invD - c * c;
    if (v < 0) v = 0;
    const inv = <f32>(1.0 / Math.sqrt(v + <f64>eps));
    const cf = <f32>c;
    // pass 3: normalise, scale, shift
    const cv = f32x4.splat(cf);
    const iv = f32x4.splat(inv);
    j = 0;
    for (; j < n4; j += 4) {
      const o = <usize>j << 2;
      let t = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(xr + o), mv), cv), iv);
      if (gamma) t = f32x4.mul(t, v128.load(gamma + o));
      if (beta) t = f32x4.add(t, v128.load(beta + o));
      v128.store(yr + o, t);
    }
    for (; j < d; j++) {
      const o = <usize>j << 2;
      let t = (load<f32>(xr + o) - m - cf) * inv;
      if (gamma) t *= load<f32>(gamma + o);
      if (beta) t += load<f32>(beta + o);
      store<f32>(yr + o, t);
    }
  }
}
