// RMS norm over the last axis (Llama `LlamaRMSNorm`): y = x / sqrt(mean(x²) + eps) · gamma.
// No mean subtraction and no bias. The sum of squares is accumulated in f32 SIMD lanes, then in f64.
import { hsum4 } from "./inline/fma";

/** Kernels.rmsNorm: `rows` rows of `d` contiguous floats; gamma may be 0. In place allowed. */
export function rmsNorm(x: usize, y: usize, rows: i32, d: i32, gamma: usize, eps: f32): void {
  if (d <= 0) return;
  const n4 = d & ~3;
  for (let r = 0; r < rows; r++) {
    const xr = x + ((<usize>r * <usize>d) << 2);
    const yr = y + ((<usize>r * <usize>d) << 2);
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let j = 0;
    for (; j + 8 <= d; j += 8) {
      const p = xr + (<usize>j << 2);
      const u = v128.load(p);
      const w = v128.load(p, 16);
      a0 = f32x4.add(a0, f32x4.mul(u, u));
      a1 = f32x4.add(a1, f32x4.mul(w, w));
    }
    for (; j < n4; j += 4) {
      const u = v128.load(xr + (<usize>j << 2));
      a0 = f32x4.add(a0, f32x4.mul(u, u));
    }
    let s: f64 = <f64>hsum4(f32x4.add(a0, a1));
    for (; j < d; j++) {
      const t = <f64>load<f32>(xr + (<usize>j << 2));
      s += t * t;
    }
    const inv = <f32>(1.0 / Math.sqrt(s / <f64>d + <f64>eps));
    const iv = f32x4.splat(inv);
    j = 0;
    for (; j < n4; j += 4) {
      const o = <usize>j << 2;
      let t = f32x4.mul(v128.load(xr + o), iv);
      if (gamma) t = f32x4.mul(t, v128.load(gamma + o));
      v128.store(yr + o, t);
    }
    for (; j < d; j++) {
      const o = <usize>j << 2;
      let t = load<f32>(xr + o) * inv;
      if (gamma) t *= load<f32>(gamma + o);
      store<f32>(yr + o, t);
    }
  }
}
