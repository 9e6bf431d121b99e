// Word2Vec family: the negative-sampling updates of word2vec.c (Mikolov et al. 2013), skip-gram and
// CBOW, for a batch of examples processed in order (exactly as one call per example would). The
// f32x4 dot / axpy helpers finish in a scalar tail (dim need not be a multiple of 4; rows need not
// be 16-byte aligned). σ is the exact logistic function (no table, no clipping), one exp per
// target. Layout and semantics: the "word2vec" section of src/kernels.ts.
import { fma4, hsum4 } from "./inline/fma";

// @ts-ignore: decorator
@inline function row(base: usize, id: i32, dim: i32): usize {
  return base + ((<usize>id * <usize>dim) << 2);
}

/** dot(a, b) over dim floats; four accumulators hide the multiply-add latency. */
function dot(a: usize, b: usize, dim: i32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let j = 0;
  for (; j + 16 <= dim; j += 16) {
    const o = <usize>j << 2;
    a0 = fma4(v128.load(a + o), v128.load(b + o), a0);
    a1 = fma4(v128.load(a + o, 16), v128.load(b + o, 16), a1);
    a2 = fma4(v128.load(a + o, 32), v128.load(b + o, 32), a2);
    a3 = fma4(v128.load(a + o, 48), v128.load(b + o, 48), a3);
  }
  for (; j + 4 <= dim; j += 4) a0 = fma4(v128.load(a + (<usize>j << 2)), v128.load(b + (<usize>j << 2)), a0);
  let s = hsum4(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  for (; j < dim; j++) s += load<f32>(a + (<usize>j << 2)) * load<f32>(b + (<usize>j << 2));
  return s;
}

/** y += alpha · x over dim floats. */
function axpy(y: usize, alpha: f32, x: usize, dim: i32): void {
  const va = f32x4.splat(alpha);
  let j = 0;
  for (; j + 8 <= dim; j += 8) {
    const o = <usize>j << 2;
    const y0 = fma4(va, v128.load(x + o), v128.load(y + o));
    const y1 = fma4(va, v128.load(x + o, 16), v128.load(y + o, 16));
    v128.store(y + o, y0);
    v128.store(y + o, y1, 16);
  }
  for (; j + 4 <= dim; j += 4) {
    const py = y + (<usize>j << 2);
    v128.store(py, fma4(va, v128.load(x + (<usize>j << 2)), v128.load(py)));
  }
  for (; j < dim; j++) {
    const py = y + (<usize>j << 2);
    store<f32>(py, load<f32>(py) + alpha * load<f32>(x + (<usize>j << 2)));
  }
}

function zero(p: usize, dim: i32): void {
  memory.fill(p, 0, <usize>dim << 2);
}

/**
 * Negative-sampling step of one hidden vector h against targets[0] (label 1) and targets[1..n)
 * (label 0): e += g·syn1[t], syn1[t] += g·h with g = alpha·(label − σ(h·syn1[t])). Returns the loss
 * Σ softplus(∓f). One exp per target: with u = e^{−|f|}, σ(f) = 1/(1+u) (f ≥ 0) or u/(1+u), and
 * softplus(±f) = max(±f, 0) + log(1+u); the logs are summed as one log of a product of factors in (1, 2].
 */
function nsStep(h: usize, e: usize, syn1: usize, dim: i32, targets: usize, nTargets: i32, alpha: f32): f32 {
  let lin: f32 = 0;
  let prod: f64 = 1;
  for (let t = 0; t < nTargets; t++) {
    const w = load<i32>(targets + (<usize>t << 2));
    const r = row(syn1, w, dim);
    const f = dot(h, r, dim);
    const u = Mathf.exp(-Mathf.abs(f));
    const inv = <f32>1.0 / (<f32>1.0 + u);
    const sig = f >= 0 ? inv : u * inv;
    // positive target: softplus(−f) = max(−f, 0) + log(1+u); negative: softplus(f) = max(f, 0) + log(1+u)
    if (t == 0) {
      if (f < 0) lin -= f;
    } else if (f > 0) {
      lin += f;
    }
    prod *= <f64>(<f32>1.0 + u);
    const g = alpha * ((t == 0 ? <f32>1.0 : <f32>0.0) - sig);
    axpy(e, g, r, dim);
    axpy(r, g, h, dim);
  }
  return lin + <f32>Math.log(prod);
}

/** True when every i32 of ids[0..n) is in [0, vocab). */
function idsOk(ids: usize, n: i32, vocab: i32): bool {
  for (let i = 0; i < n; i++) {
    const v = load<i32>(ids + (<usize>i << 2));
    if (v < 0 || v >= vocab) return false;
  }
  return true;
}

/** Kernels.w2vSgns: skip-gram, one example per input word. */
export function w2vSgns(
  syn0: usize, syn1: usize, vocab: i32, dim: i32,
  inWords: usize, targets: usize, nEx: i32, nTargets: i32, alpha: f32, work: usize,
): f32 {
  if (!idsOk(inWords, nEx, vocab) || !idsOk(targets, nEx * nTargets, vocab)) return NaN;
  let loss: f32 = 0;
  for (let x = 0; x < nEx; x++) {
    const h = row(syn0, load<i32>(inWords + (<usize>x << 2)), dim);
    zero(work, dim);
    loss += nsStep(h, work, syn1, dim, targets + ((<usize>x * <usize>nTargets) << 2), nTargets, alpha);
    axpy(h, 1, work, dim);
  }
  return loss;
}

/** Kernels.w2vCbow: CBOW, context words ctx[ctxOff[x]..ctxOff[x+1]) for example x. */
export function w2vCbow(
  syn0: usize, syn1: usize, vocab: i32, dim: i32,
  ctx: usize, ctxOff: usize, targets: usize, nEx: i32, nTargets: i32, alpha: f32, mean: i32, work: usize,
): f32 {
  if (nEx <= 0) return 0;
  if (load<i32>(ctxOff) != 0) return NaN;
  for (let x = 0; x < nEx; x++) {
    if (load<i32>(ctxOff + (<usize>(x + 1) << 2)) < load<i32>(ctxOff + (<usize>x << 2))) return NaN;
  }
  const nCtx = load<i32>(ctxOff + (<usize>nEx << 2));
  if (!idsOk(ctx, nCtx, vocab) || !idsOk(targets, nEx * nTargets, vocab)) return NaN;
  const h = work;
  const e = work + (<usize>dim << 2);
  let loss: f32 = 0;
  for (let x = 0; x < nEx; x++) {
    const c0 = load<i32>(ctxOff + (<usize>x << 2));
    const c1 = load<i32>(ctxOff + (<usize>(x + 1) << 2));
    if (c1 == c0) continue;
    zero(h, dim);
    zero(e, dim);
    for (let c = c0; c < c1; c++) axpy(h, 1, row(syn0, load<i32>(ctx + (<usize>c << 2)), dim), dim);
    if (mean) {
      const inv: f32 = <f32>1.0 / <f32>(c1 - c0);
      for (let j = 0; j < dim; j++) store<f32>(h + (<usize>j << 2), load<f32>(h + (<usize>j << 2)) * inv);
    }
    loss += nsStep(h, e, syn1, dim, targets + ((<usize>x * <usize>nTargets) << 2), nTargets, alpha);
    for (let c = c0; c < c1; c++) axpy(row(syn0, load<i32>(ctx + (<usize>c << 2)), dim), 1, e, dim);
  }
  return loss;
}
