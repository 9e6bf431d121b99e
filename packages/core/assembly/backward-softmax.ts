// Backward of the softmax family: row softmax (dx = y ⊙ (dy − Σ dy ⊙ y)), scaled dot-product
// attention from its saved weights, and the fused softmax + cross-entropy (forward loss and
// dlogits in one pass over the logits, llm.c `crossentropy_softmax_backward`).
// Layout: src/kernels.ts. Gradient outputs accumulate (+=).
import { hsum4 } from "./inline/fma";
import { expNeg4 } from "./inline/vmath";
import { gemm } from "./gemm";

/** Σ_j a[j]·b[j] over n floats. */
// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0);
  let s1 = f32x4.splat(0);
  let j = 0;
  for (; j + 8 <= n; j += 8) {
    const o = <usize>j << 2;
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
  }
  for (; j + 4 <= n; j += 4) {
    const o = <usize>j << 2;
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  let s = hsum4(f32x4.add(s0, s1));
  for (; j < n; j++) s += load<f32>(a + (<usize>j << 2)) * load<f32>(b + (<usize>j << 2));
  return s;
}

/** dst[j] (+)= y[j]·(g[j] − c): accumulate when `acc`, else overwrite (dst may be g). */
// @ts-ignore: decorator
@inline function softmaxRowGrad(dst: usize, g: usize, y: usize, n: i32, c: f32, acc: bool): void {
  const cv = f32x4.splat(c);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize>j << 2;
    let t = f32x4.mul(v128.load(y + o), f32x4.sub(v128.load(g + o), cv));
    if (acc) t = f32x4.add(t, v128.load(dst + o));
    v128.store(dst + o, t);
  }
  for (; j < n; j++) {
    const o = <usize>j << 2;
    let t = load<f32>(y + o) * (load<f32>(g + o) - c);
    if (acc) t += load<f32>(dst + o);
    store<f32>(dst + o, t);
  }
}

/** Kernels.softmaxBackward: dx += y ⊙ (dy − Σ_j dy⊙y) per row (rows of `cols`, leading dim ld). */
export function softmaxBackward(dx: usize, dy: usize, y: usize, rows: i32, cols: i32, ld: i32): void {
  for (let r = 0; r < rows; r++) {
    const o = <usize>r * <usize>ld << 2;
    softmaxRowGrad(dx + o, dy + o, y + o, cols, dot(dy + o, y + o, cols), true);
  }
}

/**
 * Kernels.attentionBackward for one (batch, head) slice, from the weights P `[L, S]` of the forward:
 *   dV += Pᵀ·dO,  dP = dO·Vᵀ (+ dProbs),  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
 *   dQ += scale·dS·K,  dK += scale·dSᵀ·Q.
 * Masked or padded keys have P = 0, hence no gradient; `scratch` `[L, S]` ends up holding dS.
 */
export function attentionBackward(
  dQ: usize, dK: usize, dV: usize, dO: usize, ldo: i32,
  q: usize, ldq: i32, k: usize, ldk: i32, v: usize, ldv: i32,
  probs: usize, dProbs: usize, scratch: usize, L: i32, S: i32, dk: i32, dv: i32, scale: f32,
): void {
  if (L <= 0 || S <= 0) return;
  // dV [S, dv] += Pᵀ [S, L] · dO [L, dv]
  if (dV && dv > 0) gemm(S, dv, L, probs, S, 1, dO, ldo, 0, dV, ldv, 0, 1, 1, 0);
  // dP [L, S] = dO [L, dv] · Vᵀ (+ dProbs)
  if (dv > 0) gemm(L, S, dv, dO, ldo, 0, v, ldv, 1, scratch, S, 0, 1, 0, 0);
  else memory.fill(scratch, 0, <usize>L * <usize>S << 2);
  if (dProbs) {
    const n = L * S;
    let j = 0;
    for (; j + 4 <= n; j += 4) {
      const o = <usize>j << 2;
      v128.store(scratch + o, f32x4.add(v128.load(scratch + o), v128.load(dProbs + o)));
    }
    for (; j < n; j++) {
      const o = <usize>j << 2;
      store<f32>(scratch + o, load<f32>(scratch + o) + load<f32>(dProbs + o));
    }
  }
  // dS = P ⊙ (dP − rowsum(dP ⊙ P)), in place
  for (let i = 0; i < L; i++) {
    const o = <usize>i * <usize>S << 2;
    softmaxRowGrad(scratch + o, scratch + o, probs + o, S, dot(scratch + o, probs + o, S), false);
  }
  if (dk <= 0) return;
  // dQ [L, dk] += scale · dS [L, S] · K [S, dk];  dK [S, dk] += scale · dSᵀ [S, L] · Q [L, dk]
  if (dQ) gemm(L, dk, S, scratch, S, 0, k, ldk, 0, dQ, ldq, 0, scale, 1, 0);
  if (dK) gemm(S, dk, L, scratch, S, 1, q, ldq, 0, dK, ldk, 0, scale, 1, 0);
}

/**
 * Kernels.softmaxCrossEntropy: PyTorch `F.cross_entropy(logits, targets, ignore_index,
 * label_smoothing, reduction)` over `rows` rows of V logits (leading dim ld, shared by dlogits).
 * Per counted row (target ≠ ignoreIndex), with lse = log Σ e^x and ε = labelSmoothing:
 *   loss_r = lse − (1 − ε)·x[t] − (ε/V)·Σ_j x[j],   dlogits[r, j] += c·(p_j − ε/V − (1 − ε)·[j = t])
 * with c = dloss/N (mean over the N counted rows) or dloss (sum). The loss (mean: NaN when N = 0,
 * as PyTorch) goes to `lossOut`. Returns −1, or the first row whose target is out of [0, V) and not
 * ignored (then nothing is written).
 */
export function softmaxCrossEntropy(
  logits: usize, dlogits: usize, ld: i32, rows: i32, V: i32, targets: usize,
  ignoreIndex: i32, labelSmoothing: f32, reduction: i32, dloss: f32, lossOut: usize,
): i32 {
  let N = 0;
  for (let r = 0; r < rows; r++) {
    const t = load<i32>(targets + (<usize>r << 2));
    if (t == ignoreIndex) continue;
    if (t < 0 || t >= V) return r;
    N++;
  }
  const eps = <f64>labelSmoothing;
  const uni = eps / <f64>V;
  let total: f64 = 0;
  const c: f32 = reduction == 0 ? (N > 0 ? <f32>(<f64>dloss / <f64>N) : 0) : dloss;
  for (let r = 0; r < rows; r++) {
    const t = load<i32>(targets + (<usize>r << 2));
    if (t == ignoreIndex) continue;
    const xr = logits + (<usize>r * <usize>ld << 2);
    // max and Σx
    let mv = f32x4.splat(-Infinity);
    let sv = f32x4.splat(0);
    let j = 0;
    for (; j + 4 <= V; j += 4) {
      const x = v128.load(xr + (<usize>j << 2));
      mv = f32x4.max(mv, x);
      sv = f32x4.add(sv, x);
    }
    let max = Mathf.max(
      Mathf.max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)),
      Mathf.max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)),
    );
    let sx: f64 = <f64>hsum4(sv);
    for (; j < V; j++) {
      const x = load<f32>(xr + (<usize>j << 2));
      max = Mathf.max(max, x);
      sx += <f64>x;
    }
    // Σ e^{x − max}
    const mx = f32x4.splat(max);
    let ev = f32x4.splat(0);
    j = 0;
    for (; j + 4 <= V; j += 4) ev = f32x4.add(ev, expNeg4(f32x4.sub(v128.load(xr + (<usize>j << 2)), mx)));
    let se = hsum4(ev);
    for (; j < V; j++) se += f32x4.extract_lane(expNeg4(f32x4.splat(load<f32>(xr + (<usize>j << 2)) - max)), 0);
    const lse: f64 = <f64>max + Math.log(<f64>se);
    const xt = <f64>load<f32>(xr + (<usize>t << 2));
    total += lse - (1.0 - eps) * xt - (eps > 0 ? uni * sx : 0);
    if (!dlogits) continue;
    // dlogits += c·(p − ε/V), then −c·(1 − ε) at the target
    const dr = dlogits + (<usize>r * <usize>ld << 2);
    const inv = f32x4.splat(<f32>(1.0 / <f64>se) * c);
    const sub = f32x4.splat(<f32>(uni * <f64>c));
    j = 0;
    for (; j + 4 <= V; j += 4) {
      const o = <usize>j << 2;
      const p = f32x4.mul(expNeg4(f32x4.sub(v128.load(xr + o), mx)), inv);
      v128.store(dr + o, f32x4.add(v128.load(dr + o), f32x4.sub(p, sub)));
    }
    const invs = f32x4.extract_lane(inv, 0);
    const subs = f32x4.extract_lane(sub, 0);
    for (; j < V; j++) {
      const o = <usize>j << 2;
      const p = f32x4.extract_lane(expNeg4(f32x4.splat(load<f32>(xr + o) - max)), 0) * invs;
      store<f32>(dr + o, load<f32>(dr + o) + (p - subs));
    }
    const to = <usize>t << 2;
    store<f32>(dr + to, load<f32>(dr + to) - <f32>((1.0 - eps) * <f64>c));
  }
  store<f32>(lossOut, reduction == 0 ? <f32>(total / <f64>N) : <f32>total);
  return -1;
}
