// Softmax family: masked row softmax (three passes: max (+ mask), exp(x − max) and sum, scale) and
// log-softmax. Layout: src/kernels.ts (rows of `cols` floats, leading dimension `ld`).
import { expNeg4 } from "./inline/vmath";
import { hsum4 } from "./inline/fma";

/** Largest lane, NaN lanes ignored (pmax keeps the accumulator when the new lane is NaN). */
// @ts-ignore: decorator
@inline function hmaxIgnoringNaN(v: v128): f32 {
  let m = f32x4.extract_lane(v, 0);
  const l1 = f32x4.extract_lane(v, 1);
  const l2 = f32x4.extract_lane(v, 2);
  const l3 = f32x4.extract_lane(v, 3);
  if (l1 > m) m = l1;
  if (l2 > m) m = l2;
  if (l3 > m) m = l3;
  return m;
}

/**
 * Softmax of one contiguous row: dst = softmax(src + mask) (mask may be 0). With a mask, pass 1
 * writes src + mask to dst while taking the max; without one it only reads src. Pass 2 writes
 * e^{v − max} to dst and sums it, pass 3 scales. dst may equal src.
 * Row max ignores NaN; a row whose entries are all −∞ (or NaN/−∞ only) becomes all zeros.
 */
function softmaxRow(src: usize, dst: usize, n: i32, mask: usize): void {
  const n4 = n & ~3;
  let m0 = f32x4.splat(-Infinity);
  let m1 = f32x4.splat(-Infinity);
  let j = 0;
  if (mask) {
    for (; j < n4; j += 4) {
      const o = <usize>j << 2;
      const v = f32x4.add(v128.load(src + o), v128.load(mask + o));
      v128.store(dst + o, v);
      m0 = f32x4.pmax(m0, v);
    }
  } else {
    for (; j + 8 <= n; j += 8) {
      const q = src + (<usize>j << 2);
      m0 = f32x4.pmax(m0, v128.load(q));
      m1 = f32x4.pmax(m1, v128.load(q, 16));
    }
    for (; j < n4; j += 4) m0 = f32x4.pmax(m0, v128.load(src + (<usize>j << 2)));
  }
  let max = hmaxIgnoringNaN(f32x4.pmax(m0, m1));
  for (; j < n; j++) {
    const o = <usize>j << 2;
    let v = load<f32>(src + o);
    if (mask) {
      v += load<f32>(mask + o);
      store<f32>(dst + o, v);
    }
    if (v > max) max = v;
  }
  if (max == -Infinity) {
    memory.fill(dst, 0, <usize>n << 2);
    return;
  }
  const s = mask ? dst : src; // the scores
  const mx = f32x4.splat(max);
  let s0 = f32x4.splat(0);
  let s1 = f32x4.splat(0);
  j = 0;
  for (; j + 8 <= n; j += 8) {
    const o = <usize>j << 2;
    const e0 = expNeg4(f32x4.sub(v128.load(s + o), mx));
    const e1 = expNeg4(f32x4.sub(v128.load(s + o, 16), mx));
    v128.store(dst + o, e0);
    v128.store(dst + o, e1, 16);
    s0 = f32x4.add(s0, e0);
    s1 = f32x4.add(s1, e1);
  }
  for (; j < n4; j += 4) {
    const o = <usize>j << 2;
    const e0 = expNeg4(f32x4.sub(v128.load(s + o), mx));
    v128.store(dst + o, e0);
    s0 = f32x4.add(s0, e0);
  }
  let sum = hsum4(f32x4.add(s0, s1));
  for (; j < n; j++) {
    // scalar tail through a splat so that it uses the same exp as the vector lanes
    const o = <usize>j << 2;
    const e = f32x4.extract_lane(expNeg4(f32x4.splat(load<f32>(s + o) - max)), 0);
    store<f32>(dst + o, e);
    sum += e;
  }
  const inv = f32x4.splat(<f32>(1.0 / <f64>sum));
  j = 0;
  for (; j < n4; j += 4) {
    const q = dst + (<usize>j << 2);
    v128.store(q, f32x4.mul(v128.load(q), inv));
  }
  const invs = f32x4.extract_lane(inv, 0);
  for (; j < n; j++) {
    const q = dst + (<usize>j << 2);
    store<f32>(q, load<f32>(q) * invs);
  }
}

/**
 * In-place softmax of one contiguous row of n floats that already hold the (masked) scores.
 * @internal shared with attention.ts
 */
export function softmaxRowInPlace(p: usize, n: i32): void {
  softmaxRow(p, p, n, 0);
}

/** Row softmax with an optional additive mask (Kernels.softmax). In place allowed. */
export function softmax(x: usize, y: usize, rows: i32, cols: i32, ld: i32, mask: usize, maskLd: i32): void {
  for (let r = 0; r < rows; r++) {
    const mr = mask ? mask + (<usize>r * <usize>maskLd << 2) : 0;
    softmaxRow(x + (<usize>r * <usize>ld << 2), y + (<usize>r * <usize>ld << 2), cols, mr);
  }
}

/** Row log-softmax, y = (x − max) − log Σ exp(x − max) (Kernels.logSoftmax). In place allowed. */
export function logSoftmax(x: usize, y: usize, rows: i32, cols: i32, ld: i32): void {
  const n4 = cols & ~3;
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>ld << 2);
    const yr = y + (<usize>r * <usize>ld << 2);
    // NaN-propagating max (as the reference's Math.max): a NaN row comes out NaN
    let mv = f32x4.splat(-Infinity);
    let j = 0;
    for (; j < n4; j += 4) mv = f32x4.max(mv, v128.load(xr + (<usize>j << 2)));
    let max = Mathf.max(
      Mathf.max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)),
      Mathf.max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)),
    );
    for (; j < cols; j++) max = Mathf.max(max, load<f32>(xr + (<usize>j << 2)));
    const mx = f32x4.splat(max);
    let s = f32x4.splat(0);
    j = 0;
    for (; j < n4; j += 4) s = f32x4.add(s, expNeg4(f32x4.sub(v128.load(xr + (<usize>j << 2)), mx)));
    let sum = hsum4(s);
    for (; j < cols; j++) {
      sum += f32x4.extract_lane(expNeg4(f32x4.splat(load<f32>(xr + (<usize>j << 2)) - max)), 0);
    }
    const lse = <f32>Math.log(<f64>sum);
    const ls = f32x4.splat(lse);
    j = 0;
    for (; j < n4; j += 4) {
      const o = <usize>j << 2;
      v128.store(yr + o, f32x4.sub(f32x4.sub(v128.load(xr + o), mx), ls));
    }
    for (; j < cols; j++) {
      const o = <usize>j << 2;
      store<f32>(yr + o, load<f32>(xr + o) - max - lse);
    }
  }
}
