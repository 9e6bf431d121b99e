// Backward of one recurrent step (torch.nn.LSTM gates i, f, g, o; torch.nn.GRU gates r, z, n with
// b_hn inside r ⊙ (W_hn h + b_hn)). The kernels turn the gradient of the step's outputs into the
// gradient of its gate pre-activations; the caller does the products with GEMM (dW += dgatesᵀ·x,
// dx += dgates·W, dh_prev += dgates·W_hh). Layout and the BPTT composition: src/kernels.ts.
// Activations are recomputed from the saved pre-activations with the accurate vector sigmoid/tanh.
import { sigmoid4, tanh4 } from "./inline/vmath";

/** 16-byte slots for the scalar tails (one element in lane 0 of each). */
let lstmTmp: usize = memory.data(176, 16);
let gruTmp: usize = memory.data(240, 16);

/** Point this instance's scratch (416 bytes) at `base` (threaded builds). */
export function rnnScratch(base: usize): void {
  lstmTmp = base;
  gruTmp = base + 176;
}

/**
 * One LSTM element block of 4 lanes: from the pre-activations (pi, pf, pg, po), c_{t−1}, dh and
 * dc (the gradient reaching c_t from later steps), returns the four gate gradients and dc_{t−1}.
 */
// @ts-ignore: decorator
@inline function lstmLanes(g: usize, gB: usize, o: usize, cp: usize, dhp: usize, dcp: usize, dg: usize): void {
  const one = f32x4.splat(1.0);
  const i = sigmoid4(v128.load(g + o));
  const f = sigmoid4(v128.load(g + gB + o));
  const gg = tanh4(v128.load(g + 2 * gB + o));
  const og = sigmoid4(v128.load(g + 3 * gB + o));
  const cPrev = v128.load(cp + o);
  const tc = tanh4(f32x4.add(f32x4.mul(f, cPrev), f32x4.mul(i, gg)));
  const dh = v128.load(dhp + o);
  // dc_t = dc + dh·o·(1 − tanh²c_t)
  const dct = f32x4.add(v128.load(dcp + o), f32x4.mul(f32x4.mul(dh, og), f32x4.sub(one, f32x4.mul(tc, tc))));
  v128.store(dg + o, f32x4.mul(f32x4.mul(dct, gg), f32x4.mul(i, f32x4.sub(one, i))));
  v128.store(dg + gB + o, f32x4.mul(f32x4.mul(dct, cPrev), f32x4.mul(f, f32x4.sub(one, f))));
  v128.store(dg + 2 * gB + o, f32x4.mul(f32x4.mul(dct, i), f32x4.sub(one, f32x4.mul(gg, gg))));
  v128.store(dg + 3 * gB + o, f32x4.mul(f32x4.mul(dh, tc), f32x4.mul(og, f32x4.sub(one, og))));
  v128.store(dcp + o, f32x4.mul(dct, f));
}

/** Kernels.lstmCellBackward (see src/kernels.ts). */
export function lstmCellBackward(dgates: usize, dc: usize, dh: usize, ldh: i32, gates: usize, cPrev: usize, H: i32, batch: i32): void {
  const gB = <usize>H << 2;
  const tmp = lstmTmp;
  for (let b = 0; b < batch; b++) {
    const g = gates + (<usize>b * <usize>(4 * H) << 2);
    const dg = dgates + (<usize>b * <usize>(4 * H) << 2);
    const cp = cPrev + (<usize>b * <usize>H << 2);
    const dhr = dh + (<usize>b * <usize>ldh << 2);
    const dcr = dc + (<usize>b * <usize>H << 2);
    let j = 0;
    for (; j + 4 <= H; j += 4) lstmLanes(g, gB, <usize>j << 2, cp, dhr, dcr, dg);
    for (; j < H; j++) {
      // tail: gather the element into lane 0 of 16-byte slots and run the vector code
      const o = <usize>j << 2;
      const tg = tmp; // 4 gate slots of 16 bytes, then c, dh, dc
      for (let q = 0; q < 4; q++) store<f32>(tg + (<usize>q << 4), load<f32>(g + <usize>q * gB + o));
      store<f32>(tg + 64, load<f32>(cp + o));
      store<f32>(tg + 80, load<f32>(dhr + o));
      store<f32>(tg + 96, load<f32>(dcr + o));
      const tdg = tg + 112; // 4 gate-gradient slots
      lstmLanes(tg, 16, 0, tg + 64, tg + 80, tg + 96, tdg);
      for (let q = 0; q < 4; q++) store<f32>(dg + <usize>q * gB + o, load<f32>(tdg + (<usize>q << 4)));
      store<f32>(dcr + o, load<f32>(tg + 96));
    }
  }
}

/** One GRU block of 4 lanes (see gruCellBackward). */
// @ts-ignore: decorator
@inline function gruLanes(
  xr: usize, hg: usize, gB: usize, o: usize, hp: usize, dhp: usize, dgx: usize, dgh: usize, dhPrev: usize,
): void {
  const one = f32x4.splat(1.0);
  const ghn = v128.load(hg + 2 * gB + o);
  const r = sigmoid4(f32x4.add(v128.load(xr + o), v128.load(hg + o)));
  const z = sigmoid4(f32x4.add(v128.load(xr + gB + o), v128.load(hg + gB + o)));
  const n = tanh4(f32x4.add(v128.load(xr + 2 * gB + o), f32x4.mul(r, ghn)));
  const dh = v128.load(dhp + o);
  const hPrev = v128.load(hp + o);
  // h = (1 − z)·n + z·h_prev
  const dnPre = f32x4.mul(f32x4.mul(dh, f32x4.sub(one, z)), f32x4.sub(one, f32x4.mul(n, n)));
  const dzPre = f32x4.mul(f32x4.mul(dh, f32x4.sub(hPrev, n)), f32x4.mul(z, f32x4.sub(one, z)));
  const drPre = f32x4.mul(f32x4.mul(dnPre, ghn), f32x4.mul(r, f32x4.sub(one, r)));
  v128.store(dgx + o, drPre);
  v128.store(dgx + gB + o, dzPre);
  v128.store(dgx + 2 * gB + o, dnPre);
  v128.store(dgh + o, drPre);
  v128.store(dgh + gB + o, dzPre);
  v128.store(dgh + 2 * gB + o, f32x4.mul(dnPre, r));
  v128.store(dhPrev + o, f32x4.add(v128.load(dhPrev + o), f32x4.mul(dh, z)));
}

/** Kernels.gruCellBackward (see src/kernels.ts). */
export function gruCellBackward(
  dgx: usize, dgh: usize, dhPrev: usize, dh: usize, ldh: i32, gx: usize, gh: usize, hPrev: usize, ldp: i32, H: i32, batch: i32,
): void {
  const gB = <usize>H << 2;
  const tmp = gruTmp;
  for (let b = 0; b < batch; b++) {
    const b3 = <usize>b * <usize>(3 * H) << 2;
    const xr = gx + b3;
    const hg = gh + b3;
    const hp = hPrev + (<usize>b * <usize>ldp << 2);
    const dhr = dh + (<usize>b * <usize>ldh << 2);
    const dpr = dhPrev + (<usize>b * <usize>H << 2);
    let j = 0;
    for (; j + 4 <= H; j += 4) gruLanes(xr, hg, gB, <usize>j << 2, hp, dhr, dgx + b3, dgh + b3, dpr);
    for (; j < H; j++) {
      // tail through 16-byte slots: gx 0..2, gh 3..5, hPrev 6, dh 7, dgx 8..10, dgh 11..13, dhPrev 14
      const o = <usize>j << 2;
      for (let q = 0; q < 3; q++) {
        store<f32>(tmp + (<usize>q << 4), load<f32>(xr + <usize>q * gB + o));
        store<f32>(tmp + (<usize>(q + 3) << 4), load<f32>(hg + <usize>q * gB + o));
      }
      store<f32>(tmp + 96, load<f32>(hp + o));
      store<f32>(tmp + 112, load<f32>(dhr + o));
      store<f32>(tmp + 224, load<f32>(dpr + o));
      gruLanes(tmp, tmp + 48, 16, 0, tmp + 96, tmp + 112, tmp + 128, tmp + 176, tmp + 224);
      for (let q = 0; q < 3; q++) {
        store<f32>(dgx + b3 + <usize>q * gB + o, load<f32>(tmp + 128 + (<usize>q << 4)));
        store<f32>(dgh + b3 + <usize>q * gB + o, load<f32>(tmp + 176 + (<usize>q << 4)));
      }
      store<f32>(dpr + o, load<f32>(tmp + 224));
    }
  }
}
