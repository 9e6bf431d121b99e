// Backward of the elementwise family: activation derivatives, bias reduction, embedding scatter-add
// and the patch-convolution col2im. Layout contracts: src/kernels.ts ("backward kernels").
// Every gradient output is accumulated (+=), as llm.c's `*_backward` do: a tensor used twice (a
// tied embedding, a residual stream) gets the sum of both uses. Tails run the same vector code on a
// splat, so a tail element gets exactly the value a vector lane would.
import { exp4, gelu4, sigmoid4, tanh4 } from "./inline/vmath";

// @ts-ignore: decorator
@inline const SQRT_2PI_INV: f32 = 0.3989422804014327; // 1/√(2π)
// @ts-ignore: decorator
@inline const GELU_TANH_C: f32 = 0.7978845608028654; // √(2/π)

/**
 * f'(·) for an `Act` code, lane-wise, from `s`: the forward input x for relu, gelu, geluTanh, silu,
 * abs, log; the forward output y for tanh, sigmoid, exp, sqrt (none and neg ignore s).
 */
// @ts-ignore: decorator
@inline function dact4(s: v128, act: i32): v128 {
  const one = f32x4.splat(1.0);
  switch (act) {
    case 1: // relu: 1 where x > 0 (torch's threshold_backward: 0 at x = 0)
      return v128.and(f32x4.gt(s, f32x4.splat(0.0)), one);
    case 2: {
      // exact GELU: Φ(x) + x·φ(x), Φ(x) = gelu(x)/x (½ at x ≈ 0), φ(x) = e^{−x²/2}/√(2π)
      const tiny = f32x4.lt(f32x4.abs(s), f32x4.splat(1e-20));
      const cdf = v128.bitselect(f32x4.splat(0.5), f32x4.div(gelu4(s), s), tiny);
      const pdf = f32x4.mul(exp4(f32x4.mul(f32x4.mul(s, s), f32x4.splat(-0.5))), f32x4.splat(SQRT_2PI_INV));
      return f32x4.add(cdf, f32x4.mul(s, pdf));
    }
    case 3: {
      // tanh GELU: with u = √(2/π)(x + 0.044715x³) and σ = σ(2u) = ½(1 + tanh u),
      // d/dx = σ(2u) + 2x·σ(2u)·σ(−2u)·√(2/π)(1 + 0.134145x²)
      const x2 = f32x4.mul(s, s);
      const u2 = f32x4.mul(f32x4.mul(s, f32x4.add(one, f32x4.mul(x2, f32x4.splat(0.044715)))), f32x4.splat(2 * GELU_TANH_C));
      const sp = sigmoid4(u2);
      const sn = sigmoid4(f32x4.neg(u2));
      const du = f32x4.mul(f32x4.add(one, f32x4.mul(x2, f32x4.splat(0.134145))), f32x4.splat(2 * GELU_TANH_C));
      return f32x4.add(sp, f32x4.mul(f32x4.mul(s, du), f32x4.mul(sp, sn)));
    }
    case 4: {
      // silu: σ(x)·(1 + x·σ(−x))
      const sp = sigmoid4(s);
      return f32x4.add(sp, f32x4.mul(s, f32x4.mul(sp, sigmoid4(f32x4.neg(s)))));
    }
    case 5: // tanh, from y: 1 − y²
      return f32x4.sub(one, f32x4.mul(s, s));
    case 6: // sigmoid, from y: y·(1 − y)
      return f32x4.mul(s, f32x4.sub(one, s));
    case 7: // exp, from y
      return s;
    case 8: // neg
      return f32x4.splat(-1.0);
    case 9: // sqrt, from y: 1/(2y)
      return f32x4.div(f32x4.splat(0.5), s);
    case 10: {
      // abs: sign(x), 0 at 0 (torch.sgn)
      const pos = v128.and(f32x4.gt(s, f32x4.splat(0.0)), one);
      const neg = v128.and(f32x4.lt(s, f32x4.splat(0.0)), one);
      return f32x4.sub(pos, neg);
    }
    case 11: // log: 1/x
      return f32x4.div(one, s);
    default: // none (and unknown codes: the identity, as `unary`)
      return one;
  }
}

/** dx[i] += dy[i]·f'(src[i]) for one `Act` code (act constant after inlining). */
// @ts-ignore: decorator
@inline function unaryBackwardLoop(dx: usize, dy: usize, src: usize, n: i32, act: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const d = f32x4.mul(v128.load(dy + o), dact4(v128.load(src + o), act));
    v128.store(dx + o, f32x4.add(v128.load(dx + o), d));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const d = load<f32>(dy + o) * f32x4.extract_lane(dact4(f32x4.splat(load<f32>(src + o)), act), 0);
    store<f32>(dx + o, load<f32>(dx + o) + d);
  }
}

/** Kernels.unaryBackward: dx += dy ⊙ f'(src) over n floats. dx may alias dy (not src). */
export function unaryBackward(dx: usize, dy: usize, src: usize, n: i32, act: i32): void {
  // one loop per code, so that the switch in dact4 folds away
  switch (act) {
    case 1: unaryBackwardLoop(dx, dy, src, n, 1); break;
    case 2: unaryBackwardLoop(dx, dy, src, n, 2); break;
    case 3: unaryBackwardLoop(dx, dy, src, n, 3); break;
    case 4: unaryBackwardLoop(dx, dy, src, n, 4); break;
    case 5: unaryBackwardLoop(dx, dy, src, n, 5); break;
    case 6: unaryBackwardLoop(dx, dy, src, n, 6); break;
    case 7: unaryBackwardLoop(dx, dy, src, n, 7); break;
    case 8: unaryBackwardLoop(dx, dy, dy, n, 8); break;
    case 9: unaryBackwardLoop(dx, dy, src, n, 9); break;
    case 10: unaryBackwardLoop(dx, dy, src, n, 10); break;
    case 11: unaryBackwardLoop(dx, dy, src, n, 11); break;
    default: unaryBackwardLoop(dx, dy, dy, n, 0); break;
  }
}

/** Kernels.biasGrad: db[j] += Σ_r dy[r·ld + j] for j < cols (the gradient of a bias added to every row). */
export function biasGrad(db: usize, dy: usize, rows: i32, cols: i32, ld: i32): void {
  let j = 0;
  // four column vectors at a time down the rows
  for (; j + 16 <= cols; j += 16) {
    const o = <usize>j << 2;
    let a0 = v128.load(db + o);
    let a1 = v128.load(db + o, 16);
    let a2 = v128.load(db + o, 32);
    let a3 = v128.load(db + o, 48);
    for (let r = 0; r < rows; r++) {
      const p = dy + (<usize>r * <usize>ld << 2) + o;
      a0 = f32x4.add(a0, v128.load(p));
      a1 = f32x4.add(a1, v128.load(p, 16));
      a2 = f32x4.add(a2, v128.load(p, 32));
      a3 = f32x4.add(a3, v128.load(p, 48));
    }
    v128.store(db + o, a0);
    v128.store(db + o, a1, 16);
    v128.store(db + o, a2, 32);
    v128.store(db + o, a3, 48);
  }
  for (; j + 4 <= cols; j += 4) {
    const o = <usize>j << 2;
    let a = v128.load(db + o);
    for (let r = 0; r < rows; r++) a = f32x4.add(a, v128.load(dy + (<usize>r * <usize>ld << 2) + o));
    v128.store(db + o, a);
  }
  for (; j < cols; j++) {
    const o = <usize>j << 2;
    let a = load<f32>(db + o);
    for (let r = 0; r < rows; r++) a += load<f32>(dy + (<usize>r * <usize>ld << 2) + o);
    store<f32>(db + o, a);
  }
}

/**
 * Kernels.embeddingBackward: dW[ids[t], :] += dy[t, :] for t < n (rows of `dim` floats), skipping
 * ids equal to `paddingIdx` (−1: none). Every id is checked first: returns −1 on success, or the
 * position of the first id outside [0, vocab) with nothing written.
 */
export function embeddingBackward(dW: usize, vocab: i32, dim: i32, ids: usize, n: i32, dy: usize, paddingIdx: i32): i32 {
  for (let t = 0; t < n; t++) {
    const id = load<i32>(ids + (<usize>t << 2));
    if (id < 0 || id >= vocab) return t;
  }
  for (let t = 0; t < n; t++) {
    const id = load<i32>(ids + (<usize>t << 2));
    if (id == paddingIdx) continue;
    const w = dW + (<usize>id * <usize>dim << 2);
    const g = dy + (<usize>t * <usize>dim << 2);
    let j = 0;
    for (; j + 4 <= dim; j += 4) {
      const o = <usize>j << 2;
      v128.store(w + o, f32x4.add(v128.load(w + o), v128.load(g + o)));
    }
    for (; j < dim; j++) {
      const o = <usize>j << 2;
      store<f32>(w + o, load<f32>(w + o) + load<f32>(g + o));
    }
  }
  return -1;
}

/**
 * Kernels.im2colPatchBackward (col2im for stride = kernel = k): dx[ch, r·k + u, c·k + v] +=
 * dcols[(r·gw + c), (ch·k + u)·k + v]. Patches do not overlap, so each pixel gets at most one term;
 * pixels past the last whole patch are left as they are.
 */
export function im2colPatchBackward(dx: usize, dcols: usize, C: i32, H: i32, W: i32, k: i32): void {
  const gh = H / k;
  const gw = W / k;
  const ck = C * k * k;
  for (let r = 0; r < gh; r++) {
    for (let c = 0; c < gw; c++) {
      const src = dcols + (<usize>(r * gw + c) * <usize>ck << 2);
      for (let ch = 0; ch < C; ch++) {
        for (let u = 0; u < k; u++) {
          const s = src + (<usize>((ch * k + u) * k) << 2);
          const d = dx + ((<usize>ch * <usize>H * <usize>W + <usize>(r * k + u) * <usize>W + <usize>(c * k)) << 2);
          let v = 0;
          for (; v + 4 <= k; v += 4) {
            const o = <usize>v << 2;
            v128.store(d + o, f32x4.add(v128.load(d + o), v128.load(s + o)));
          }
          for (; v < k; v++) {
            const o = <usize>v << 2;
            store<f32>(d + o, load<f32>(d + o) + load<f32>(s + o));
          }
        }
      }
    }
  }
}
