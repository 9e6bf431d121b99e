// Backward of layer norm and RMS norm over the last axis (llm.c `layernorm_backward`; the RMS norm
// of Zhang & Sennrich 2019). With x̂ = (x − mean)·rstd, g = dy ⊙ gamma:
//   layer norm: dx += rstd·(g − mean(g) − x̂·mean(g ⊙ x̂)),  dgamma += dy ⊙ x̂,  dbeta += dy
//   RMS norm:   dx += rstd·(g − x·rstd²·mean(g ⊙ x)),      dgamma += dy ⊙ x·rstd
// Row statistics come from the forward (saved mean/rstd) or are recomputed here (pointer 0).
// Layout: src/kernels.ts. All outputs accumulate.
import { hsum4 } from "./inline/fma";

/** Scratch for one row's recomputed (mean, rstd). */
let stats: usize = memory.data(8, 16);

/** Point this instance's scratch (16 bytes) at `base` (threaded builds). */
export function normScratch(base: usize): void {
  stats = base;
}

/** Row mean of d floats, then 1/sqrt(var + eps) (biased variance, corrected two-pass as layerNorm). */
// @ts-ignore: decorator
@inline function lnStats(xr: usize, d: i32, eps: f32, out: usize): void {
  const invD: f64 = 1.0 / <f64>d;
  let a = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= d; j += 4) a = f32x4.add(a, v128.load(xr + (<usize>j << 2)));
  let s = hsum4(a);
  for (; j < d; j++) s += load<f32>(xr + (<usize>j << 2));
  const m = <f32>(<f64>s * invD);
  const mv = f32x4.splat(m);
  let c1 = f32x4.splat(0);
  let c2 = f32x4.splat(0);
  j = 0;
  for (; j + 4 <= d; j += 4) {
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
  store<f32>(out, <f32>(<f64>m + c));
  store<f32>(out, <f32>(1.0 / Math.sqrt(v + <f64>eps)), 4);
}

/**
 * Kernels.normStats: per row of d floats, layer-norm statistics (mean, 1/√(var + eps)) when `mean`
 * is given, RMS-norm statistics (rstd = 1/√(mean(x²) + eps)) when it is 0: what a training forward
 * saves for layerNormBackward / rmsNormBackward.
 */
export function normStats(x: usize, rows: i32, d: i32, eps: f32, mean: usize, rstd: usize): void {
  if (d <= 0) return;
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>d << 2);
    if (mean) {
      lnStats(xr, d, eps, stats);
      store<f32>(mean + (<usize>r << 2), load<f32>(stats));
      store<f32>(rstd + (<usize>r << 2), load<f32>(stats, 4));
    } else store<f32>(rstd + (<usize>r << 2), rmsRstd(xr, d, eps));
  }
}

/** 1/√(mean(x²) + eps) over d floats. */
// @ts-ignore: decorator
@inline function rmsRstd(xr: usize, d: i32, eps: f32): f32 {
  let q = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= d; j += 4) {
    const v = v128.load(xr + (<usize>j << 2));
    q = f32x4.add(q, f32x4.mul(v, v));
  }
  let s = hsum4(q);
  for (; j < d; j++) {
    const v = load<f32>(xr + (<usize>j << 2));
    s += v * v;
  }
  return <f32>(1.0 / Math.sqrt(<f64>s / <f64>d + <f64>eps));
}

/** Kernels.layerNormBackward (see src/kernels.ts). */
export function layerNormBackward(
  dx: usize, dgamma: usize, dbeta: usize, dy: usize, x: usize, gamma: usize,
  mean: usize, rstd: usize, rows: i32, d: i32, eps: f32,
): void {
  if (d <= 0) return;
  const invD: f32 = <f32>(1.0 / <f64>d);
  const one = f32x4.splat(1.0);
  for (let r = 0; r < rows; r++) {
    const row = <usize>r * <usize>d << 2;
    const xr = x + row;
    const dyr = dy + row;
    let mu: f32, rs: f32;
    if (mean && rstd) {
      mu = load<f32>(mean + (<usize>r << 2));
      rs = load<f32>(rstd + (<usize>r << 2));
    } else {
      lnStats(xr, d, eps, stats);
      mu = load<f32>(stats);
      rs = load<f32>(stats, 4);
    }
    const muv = f32x4.splat(mu);
    const rsv = f32x4.splat(rs);
    // pass 1: Σg, Σg·x̂ and the parameter grads
    let sa = f32x4.splat(0);
    let sb = f32x4.splat(0);
    let j = 0;
    for (; j + 4 <= d; j += 4) {
      const o = <usize>j << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + o), muv), rsv);
      const g0 = v128.load(dyr + o);
      const g = f32x4.mul(g0, gamma ? v128.load(gamma + o) : one);
      sa = f32x4.add(sa, g);
      sb = f32x4.add(sb, f32x4.mul(g, xh));
      if (dgamma) v128.store(dgamma + o, f32x4.add(v128.load(dgamma + o), f32x4.mul(g0, xh)));
      if (dbeta) v128.store(dbeta + o, f32x4.add(v128.load(dbeta + o), g0));
    }
    let a = hsum4(sa);
    let b = hsum4(sb);
    for (; j < d; j++) {
      const o = <usize>j << 2;
      const xh = (load<f32>(xr + o) - mu) * rs;
      const g0 = load<f32>(dyr + o);
      const g = gamma ? g0 * load<f32>(gamma + o) : g0;
      a += g;
      b += g * xh;
      if (dgamma) store<f32>(dgamma + o, load<f32>(dgamma + o) + g0 * xh);
      if (dbeta) store<f32>(dbeta + o, load<f32>(dbeta + o) + g0);
    }
    if (!dx) continue;
    // pass 2: dx += rstd·(g − Σg/d − x̂·Σg·x̂/d)
    const am = a * invD;
    const bm = b * invD;
    const amv = f32x4.splat(am);
    const bmv = f32x4.splat(bm);
    const dxr = dx + row;
    j = 0;
    for (; j + 4 <= d; j += 4) {
      const o = <usize>j << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + o), muv), rsv);
      const g = f32x4.mul(v128.load(dyr + o), gamma ? v128.load(gamma + o) : one);
      const t = f32x4.sub(f32x4.sub(g, amv), f32x4.mul(xh, bmv));
      v128.store(dxr + o, f32x4.add(v128.load(dxr + o), f32x4.mul(t, rsv)));
    }
    for (; j < d; j++) {
      const o = <usize>j << 2;
      const xh = (load<f32>(xr + o) - mu) * rs;
      const g = gamma ? load<f32>(dyr + o) * load<f32>(gamma + o) : load<f32>(dyr + o);
      store<f32>(dxr + o, load<f32>(dxr + o) + (g - am - xh * bm) * rs);
    }
  }
}

/** Kernels.rmsNormBackward (see src/kernels.ts). */
export function rmsNormBackward(
  dx: usize, dgamma: usize, dy: usize, x: usize, gamma: usize, rstd: usize, rows: i32, d: i32, eps: f32,
): void {
  if (d <= 0) return;
  const invD: f64 = 1.0 / <f64>d;
  const one = f32x4.splat(1.0);
  for (let r = 0; r < rows; r++) {
    const row = <usize>r * <usize>d << 2;
    const xr = x + row;
    const dyr = dy + row;
    const rs: f32 = rstd ? load<f32>(rstd + (<usize>r << 2)) : rmsRstd(xr, d, eps);
    const rsv = f32x4.splat(rs);
    // pass 1: Σ g·x and dgamma
    let sb = f32x4.splat(0);
    let j = 0;
    for (; j + 4 <= d; j += 4) {
      const o = <usize>j << 2;
      const xv = v128.load(xr + o);
      const g0 = v128.load(dyr + o);
      sb = f32x4.add(sb, f32x4.mul(f32x4.mul(g0, gamma ? v128.load(gamma + o) : one), xv));
      if (dgamma) v128.store(dgamma + o, f32x4.add(v128.load(dgamma + o), f32x4.mul(g0, f32x4.mul(xv, rsv))));
    }
    let b = hsum4(sb);
    for (; j < d; j++) {
      const o = <usize>j << 2;
      const xv = load<f32>(xr + o);
      const g0 = load<f32>(dyr + o);
      b += (gamma ? g0 * load<f32>(gamma + o) : g0) * xv;
      if (dgamma) store<f32>(dgamma + o, load<f32>(dgamma + o) + g0 * xv * rs);
    }
    if (!dx) continue;
    // pass 2: dx += rstd·g − x·rstd³·Σ(g·x)/d
    const c = <f32>(<f64>b * invD * <f64>rs * <f64>rs * <f64>rs);
    const cv = f32x4.splat(c);
    const dxr = dx + row;
    j = 0;
    for (; j + 4 <= d; j += 4) {
      const o = <usize>j << 2;
      const g = f32x4.mul(v128.load(dyr + o), gamma ? v128.load(gamma + o) : one);
      const t = f32x4.sub(f32x4.mul(g, rsv), f32x4.mul(v128.load(xr + o), cv));
      v128.store(dxr + o, f32x4.add(v128.load(dxr + o), t));
    }
    for (; j < d; j++) {
      const o = <usize>j << 2;
      const g = gamma ? load<f32>(dyr + o) * load<f32>(gamma + o) : load<f32>(dyr + o);
      store<f32>(dxr + o, load<f32>(dxr + o) + g * rs - load<f32>(xr + o) * c);
    }
  }
}
