// Top-k selection: the k largest of n floats, sorted descending, ties by lower index, NaN never
// selected. A size-k heap (worst kept entry at the root) lives in the index output itself, so the
// kernel needs no scratch; O(n log k), with an f32x4 pre-test that skips blocks below the root.
// Layout: src/kernels.ts.

// @ts-ignore: decorator
@inline function val(x: usize, i: i32): f32 {
  return load<f32>(x + (<usize>i << 2));
}

/** a ranks after b: smaller value, or same value and larger index. */
// @ts-ignore: decorator
@inline function worse(x: usize, a: i32, b: i32): bool {
  const va = val(x, a);
  const vb = val(x, b);
  return va < vb || (va == vb && a > b);
}

// @ts-ignore: decorator
@inline function hget(h: usize, i: i32): i32 {
  return load<i32>(h + (<usize>i << 2));
}

// @ts-ignore: decorator
@inline function hset(h: usize, i: i32, v: i32): void {
  store<i32>(h + (<usize>i << 2), v);
}

/** Restore the heap (worst at the root) below position i, heap of `size` entries. */
function siftDown(x: usize, h: usize, i: i32, size: i32): void {
  const item = hget(h, i);
  for (;;) {
    const l = 2 * i + 1;
    if (l >= size) break;
    let c = l;
    const r = l + 1;
    if (r < size && worse(x, hget(h, r), hget(h, l))) c = r;
    const ci = hget(h, c);
    if (!worse(x, ci, item)) break;
    hset(h, i, ci);
    i = c;
  }
  hset(h, i, item);
}

function siftUp(x: usize, h: usize, i: i32): void {
  const item = hget(h, i);
  while (i > 0) {
    const p = (i - 1) >> 1;
    const pi = hget(h, p);
    if (!worse(x, item, pi)) break;
    hset(h, i, pi);
    i = p;
  }
  hset(h, i, item);
}

/**
 * Kernels.topk: outIdx (i32) and outVal receive the k largest entries of x[0..n), descending,
 * ties by lower index. NaN entries are skipped; when fewer than k entries are valid, the remaining
 * slots get index −1 and value −∞.
 */
export function topk(x: usize, n: i32, k: i32, outIdx: usize, outVal: usize): void {
  if (k <= 0) return;
  const h = outIdx;
  let size = 0;
  let i = 0;
  // fill phase
  for (; i < n && size < k; i++) {
    if (isNaN(val(x, i))) continue;
    hset(h, size, i);
    siftUp(x, h, size);
    size++;
  }
  if (size == k) {
    // replace phase: indices only grow, so an equal value never beats the root
    let thr = val(x, hget(h, 0));
    for (; i < n && (i & 3) != 0; i++) {
      const v = val(x, i);
      if (v > thr) {
        hset(h, 0, i);
        siftDown(x, h, 0, size);
        thr = val(x, hget(h, 0));
      }
    }
    for (; i + 4 <= n; i += 4) {
      if (!v128.any_true(f32x4.gt(v128.load(x + (<usize>i << 2)), f32x4.splat(thr)))) continue;
      for (let t = i; t < i + 4; t++) {
        if (val(x, t) > thr) {
          hset(h, 0, t);
          siftDown(x, h, 0, size);
          thr = val(x, hget(h, 0));
        }
      }
    }
    for (; i < n; i++) {
      if (val(x, i) > thr) {
        hset(h, 0, i);
        siftDown(x, h, 0, size);
        thr = val(x, hget(h, 0));
      }
    }
  }
  // heap sort: move the worst to the end, repeatedly; leaves the best first
  for (let end = size - 1; end > 0; end--) {
    const w = hget(h, 0);
    hset(h, 0, hget(h, end));
    hset(h, end, w);
    siftDown(x, h, 0, end);
  }
  for (let t = 0; t < size; t++) store<f32>(outVal + (<usize>t << 2), val(x, hget(h, t)));
  for (let t = size; t < k; t++) {
    hset(h, t, -1);
    store<f32>(outVal + (<usize>t << 2), -Infinity);
  }
}
