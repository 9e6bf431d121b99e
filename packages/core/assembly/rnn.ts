// Recurrent cells: the gate arithmetic of torch.nn.LSTM (gate order i, f, g, o) and torch.nn.GRU
// (order r, z, n) after the input/hidden projections have been done by GEMM. Layout: src/kernels.ts.
// f32x4 main loops use the rational sigmoid/tanh of inline/vmath.ts (absolute error ≤ 3.2e-7, no
// exp, no branch: an LSTM cell of H = 256 takes 0.74 µs against 2.0 µs with the exp-based forms);
// tails use f64 scalar math.
import { sigmoidRational4 as sigmoid4, tanhRational4 as tanh4 } from "./inline/vmath";

// @ts-ignore: decorator
@inline function sigmoid1(x: f32): f32 {
  return <f32>(1.0 / (1.0 + Math.exp(-<f64>x)));
}

// @ts-ignore: decorator
@inline function tanh1(x: f32): f32 {
  return <f32>Math.tanh(<f64>x);
}

/**
 * Kernels.lstmCell: gates [batch, 4H] = (i, f, g, o) pre-activations.
 * c' = σ(f)⊙c + σ(i)⊙tanh(g) (in place in c [batch, H]); h' = σ(o)⊙tanh(c') to h (row stride ldh).
 */
export function lstmCell(gates: usize, c: usize, h: usize, ldh: i32, H: i32, batch: i32): void {
  const h4 = H & ~3;
  const gBytes = <usize>H << 2;
  for (let b = 0; b < batch; b++) {
    const g = gates + (<usize>b * <usize>(4 * H) << 2);
    const cr = c + (<usize>b * <usize>H << 2);
    const hr = h + (<usize>b * <usize>ldh << 2);
    let j = 0;
    for (; j < h4; j += 4) {
      const o = <usize>j << 2;
      const ig = sigmoid4(v128.load(g + o));
      const fg = sigmoid4(v128.load(g + gBytes + o));
      const gg = tanh4(v128.load(g + 2 * gBytes + o));
      const og = sigmoid4(v128.load(g + 3 * gBytes + o));
      const cn = f32x4.add(f32x4.mul(fg, v128.load(cr + o)), f32x4.mul(ig, gg));
      v128.store(cr + o, cn);
      v128.store(hr + o, f32x4.mul(og, tanh4(cn)));
    }
    for (; j < H; j++) {
      const o = <usize>j << 2;
      const ig = sigmoid1(load<f32>(g + o));
      const fg = sigmoid1(load<f32>(g + gBytes + o));
      const gg = tanh1(load<f32>(g + 2 * gBytes + o));
      const og = sigmoid1(load<f32>(g + 3 * gBytes + o));
      const cn = fg * load<f32>(cr + o) + ig * gg;
      store<f32>(cr + o, cn);
      store<f32>(hr + o, og * tanh1(cn));
    }
  }
}

/**
 * Kernels.gruCell: gx = W_ih x + b_ih, gh = W_hh h + b_hh, both [batch, 3H] in (r, z, n) order.
 * r = σ(gx_r + gh_r), z = σ(gx_z + gh_z), n = tanh(gx_n + r⊙gh_n), h' = (1 − z)⊙n + z⊙hPrev.
 * hOut may alias hPrev (each element is read before it is written).
 */
export function gruCell(gx: usize, gh: usize, hPrev: usize, ldp: i32, hOut: usize, ldo: i32, H: i32, batch: i32): void {
  const h4 = H & ~3;
  const gBytes = <usize>H << 2;
  const one = f32x4.splat(1.0);
  for (let b = 0; b < batch; b++) {
    const xr = gx + (<usize>b * <usize>(3 * H) << 2);
    const hg = gh + (<usize>b * <usize>(3 * H) << 2);
    const pr = hPrev + (<usize>b * <usize>ldp << 2);
    const or = hOut + (<usize>b * <usize>ldo << 2);
    let j = 0;
    for (; j < h4; j += 4) {
      const o = <usize>j << 2;
      const r = sigmoid4(f32x4.add(v128.load(xr + o), v128.load(hg + o)));
      const z = sigmoid4(f32x4.add(v128.load(xr + gBytes + o), v128.load(hg + gBytes + o)));
      const nn = tanh4(f32x4.add(v128.load(xr + 2 * gBytes + o), f32x4.mul(r, v128.load(hg + 2 * gBytes + o))));
      const hp = v128.load(pr + o);
      v128.store(or + o, f32x4.add(f32x4.mul(f32x4.sub(one, z), nn), f32x4.mul(z, hp)));
    }
    for (; j < H; j++) {
      const o = <usize>j << 2;
      const r = sigmoid1(load<f32>(xr + o) + load<f32>(hg + o));
      const z = sigmoid1(load<f32>(xr + gBytes + o) + load<f32>(hg + gBytes + o));
      const nn = tanh1(load<f32>(xr + 2 * gBytes + o) + r * load<f32>(hg + 2 * gBytes + o));
      store<f32>(or + o, (1 - z) * nn + z * load<f32>(pr + o));
    }
  }
}
