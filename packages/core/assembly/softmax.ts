// Softmax family: masked row softmax (three passes: max, exp(x − max) and sum, scale) and
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
 * In-place softmax of one contiguous row of n floats that already hold the (masked) scores.
 * Row max ignores NaN; a row whose entries are all −∞ (or NaN/−∞ only) becomes all zeros.
 * @internal shared with attention.ts
 */
export function softmaxRowInPlace(p: usize, n: i32): void {
  const n4 = n & ~3;
  let mv = f32x4.splat(-Infinity);
  let j = 0;
  for (; j < n4; j += 4) mv = f32x4.pmax(mv, v128.load(p + (<usize>j << 2)));
  let max = hmaxIgnoringNaN(mv);
  for (; j < n; j++) {
    const v = load<f32>(p + (<usize>j << 2));
    if (v > max) max = v;
  }
  if (max == -Infinity) {
    memory.fill(p, 0, <usize>n << 2);
    return;
  }
  const mx = f32x4.splat(max);
  let s0 = f32x4.splat(0);
  let s1 = f32x4.splat(0);
  j = 0;
  for (; j + 8 <= n; j += 8) {
    const q = p + (<usize>j << 2);
    const e0 = expNeg4(f32x4.sub(v128.load(q), mx));
    const e1 = expNeg4(f32x4.sub(v128.load(q, 16), mx));
    v128.store(q, e0);
    v128.store(q, e1, 16);
    s0 = f32x4.add(s0, e0);
    s1 = f32x4.add(s1, e1);
  }
  for (; j < n4; j += 4) {
    const q = p + (<usize>j << 2);
    const e0 = expNeg4(f32x4.sub(v128.load(q), mx));
    v128.store(q, e0);
    s0 = f32x4.add(s0, e0);
  }
  let sum = hsum4(f32x4.add(s0, s1));
  for (; j < n; j++) {
    // scalar tail through a splat so that it uses the same exp as the vector lanes
    const q = p + (<usize>j << 2);
    const e = f32x4.extract_lane(expNeg4(f32x4.splat(load<f32>(q) - max)), 0);
    store<f32>(q, e);
    sum += e;
  }
  const inv = f32x4.splat(<f32>(1.0 / <f64>sum));
  j = 0;
  for (; j < n4; j += 4) {
    const q = p + (<usize>j << 2);
    v128.store(q, f32x4.mul(v128.load(q), inv));
  }
  const invs = f32x4.extract_lane(inv, 0);
  for (; j < n; j++) {
    const q = p + (<usize>j << 2);
    store<f32>(q, load<f32>(q) * invs);
  }
}

/** Row softmax with an optional additive mask (Kernels.softmax). In place allowed. */
export function softmax(x: usize, y: usize, rows: i32, cols: i32, ld: i32, mask: usize, maskLd: i32): void {
  const n4 = cols & ~3;
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>ld << 2);
    const yr = y + (<usize>r * <usize>ld << 2);
    if (mask) {
      // y = x + mask first (element j is read before it is written, so y = x is fine)
      const mr = mask + (<usize>r * <usize>maskLd << 2);
      let j = 0;
      for (; j < n4; j += 4) {
        const o = <usize>j << 2;
        v128.store(yr + o, f32x4.add(v128.load(xr + o), v128.load(mr + o)));
      }
      for (; j < cols; j++) {
        const o = <usize>j << 2;
        store<f32>(yr + o, load<f32>(xr + o) + load<f32>(mr + o));
      }
    } else if (xr != yr) {
      memory.copy(yr, xr, <usize>cols << 2);
    }
    softmaxRowInPlace(yr, cols);
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
