// Elementwise and layout family: broadcasting binary ops, affine scale, middle-axis reductions,
// strided 2-D copy and transpose. Layouts: src/kernels.ts. Main loops are f32x4, tails scalar.
import { hsum4 } from "./inline/fma";

// ---------------------------------------------------------------------------------------------
// binary

// @ts-ignore: decorator
@inline function binVec(a: v128, b: v128, op: i32): v128 {
  switch (op) {
    case 0: return f32x4.add(a, b);
    case 1: return f32x4.sub(a, b);
    case 2: return f32x4.mul(a, b);
    case 3: return f32x4.div(a, b);
    case 4: return f32x4.max(a, b); // NaN-propagating, as the reference
    default: return f32x4.min(a, b);
  }
}

// @ts-ignore: decorator
@inline function binScalar(a: f32, b: f32, op: i32): f32 {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return Mathf.max(a, b);
    default: return Mathf.min(a, b);
  }
}

/** y[j] = op(a[j], b[j]) for j < n (all contiguous). */
function binRow(a: usize, b: usize, y: usize, n: i32, op: i32): void {
  const n4 = n & ~3;
  let j = 0;
  // one loop per op: the switch stays out of the hot loop
  switch (op) {
    case 0:
      for (; j < n4; j += 4) { const o = <usize>j << 2; v128.store(y + o, binVec(v128.load(a + o), v128.load(b + o), 0)); }
      break;
    case 1:
      for (; j < n4; j += 4) { const o = <usize>j << 2; v128.store(y + o, binVec(v128.load(a + o), v128.load(b + o), 1)); }
      break;
    case 2:
      for (; j < n4; j += 4) { const o = <usize>j << 2; v128.store(y + o, binVec(v128.load(a + o), v128.load(b + o), 2)); }
      break;
    case 3:
      for (; j < n4; j += 4) { const o = <usize>j << 2; v128.store(y + o, binVec(v128.load(a + o), v128.load(b + o), 3)); }
      break;
    case 4:
      for (; j < n4; j += 4) { const o = <usize>j << 2; v128.store(y + o, binVec(v128.load(a + o), v128.load(b + o), 4)); }
      break;
    default:
      for (; j < n4; j += 4) { const o = <usize>j << 2; v128.store(y + o, binVec(v128.load(a + o), v128.load(b + o), 5)); }
      break;
  }
  for (; j < n; j++) {
    const o = <usize>j << 2;
    store<f32>(y + o, binScalar(load<f32>(a + o), load<f32>(b + o), op));
  }
}

/** y[j] = op(a[j], s) for j < n. */
function binRowScalar(a: usize, s: f32, y: usize, n: i32, op: i32): void {
  const n4 = n & ~3;
  const sv = f32x4.splat(s);
  let j = 0;
  switch (op) {
    case 0:
      for (; j < n4; j += 4) { const o = <usize>j << 2; v128.store(y + o, binVec(v128.load(a + o), sv, 0)); }
      break;
    case 1:
      for (; j < n4; j += 4) { const o = <usize>j << 2; v128.store(y + o, binVec(v128.load(a + o), sv, 1)); }
      break;
    case 2:
      for (; j < n4; j += 4) { const o = <usize>j << 2; v128.store(y + o, binVec(v128.load(a + o), sv, 2)); }
      break;
    case 3:
      for (; j < n4; j += 4) { const o = <usize>j << 2; v128.store(y + o, binVec(v128.load(a + o), sv, 3)); }
      break;
    case 4:
      for (; j < n4; j += 4) { const o = <usize>j << 2; v128.store(y + o, binVec(v128.load(a + o), sv, 4)); }
      break;
    default:
      for (; j < n4; j += 4) { const o = <usize>j << 2; v128.store(y + o, binVec(v128.load(a + o), sv, 5)); }
      break;
  }
  for (; j < n; j++) {
    const o = <usize>j << 2;
    store<f32>(y + o, binScalar(load<f32>(a + o), s, op));
  }
}

/**
 * Kernels.binary: y[r·cols + j] = op(a[r·cols + j], b[r·bRow + j·bCol]) (BinOp codes).
 * bCol = 1 runs the SIMD row loop (one flat loop when b has a's shape); bCol = 0 splats b per row.
 */
export function binary(a: usize, b: usize, y: usize, rows: i32, cols: i32, bRow: i32, bCol: i32, op: i32): void {
  if (rows <= 0 || cols <= 0) return;
  if (bCol == 1 && bRow == cols) {
    binRow(a, b, y, rows * cols, op);
  } else if (bCol == 0 && bRow == 0) {
    binRowScalar(a, load<f32>(b), y, rows * cols, op);
  } else if (bCol == 1) {
    for (let r = 0; r < rows; r++) {
      const o = <usize>r * <usize>cols << 2;
      binRow(a + o, b + (<usize>(r * bRow) << 2), y + o, cols, op);
    }
  } else if (bCol == 0) {
    for (let r = 0; r < rows; r++) {
      const o = <usize>r * <usize>cols << 2;
      binRowScalar(a + o, load<f32>(b + (<usize>(r * bRow) << 2)), y + o, cols, op);
    }
  } else {
    // general strides (rare): scalar
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < cols; j++) {
        const o = <usize>(r * cols + j) << 2;
        store<f32>(y + o, binScalar(load<f32>(a + o), load<f32>(b + (<usize>(r * bRow + j * bCol) << 2)), op));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// scale

/** Kernels.scale: y[i] = alpha·x[i] + beta. In place allowed. */
export function scale(x: usize, y: usize, n: i32, alpha: f32, beta: f32): void {
  const av = f32x4.splat(alpha);
  const bv = f32x4.splat(beta);
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.add(f32x4.mul(v128.load(x + o), av), bv));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(x + o) * alpha + beta);
  }
}

// ---------------------------------------------------------------------------------------------
// reduce

// @ts-ignore: decorator
@inline function redInit(op: i32): f32 {
  return op == 2 ? -Infinity : op == 3 ? Infinity : 0;
}

// @ts-ignore: decorator
@inline function redVec(acc: v128, v: v128, op: i32): v128 {
  if (op == 2) return f32x4.max(acc, v); // NaN-propagating, as the reference
  if (op == 3) return f32x4.min(acc, v);
  return f32x4.add(acc, v);
}

// @ts-ignore: decorator
@inline function redScalar(acc: f32, v: f32, op: i32): f32 {
  if (op == 2) return Mathf.max(acc, v);
  if (op == 3) return Mathf.min(acc, v);
  return acc + v;
}

/**
 * Kernels.reduce over the middle axis of [outer, n, inner] (RedOp codes: sum, mean, max, min).
 * inner = 1: lanes run along n; inner ≥ 4: lanes run along inner, y row as the accumulator.
 */
export function reduce(x: usize, y: usize, outer: i32, n: i32, inner: i32, op: i32): void {
  if (outer <= 0 || inner <= 0) return;
  const init = redInit(op);
  const isMean = op == 1;
  if (inner == 1) {
    const n4 = n & ~3;
    for (let o = 0; o < outer; o++) {
      const xr = x + (<usize>o * <usize>n << 2);
      let acc = f32x4.splat(init);
      let k = 0;
      for (; k < n4; k += 4) acc = redVec(acc, v128.load(xr + (<usize>k << 2)), op);
      let s: f32;
      if (op == 2) {
        s = Mathf.max(Mathf.max(f32x4.extract_lane(acc, 0), f32x4.extract_lane(acc, 1)),
          Mathf.max(f32x4.extract_lane(acc, 2), f32x4.extract_lane(acc, 3)));
      } else if (op == 3) {
        s = Mathf.min(Mathf.min(f32x4.extract_lane(acc, 0), f32x4.extract_lane(acc, 1)),
          Mathf.min(f32x4.extract_lane(acc, 2), f32x4.extract_lane(acc, 3)));
      } else {
        s = hsum4(acc);
      }
      for (; k < n; k++) s = redScalar(s, load<f32>(xr + (<usize>k << 2)), op);
      store<f32>(y + (<usize>o << 2), isMean ? <f32>(<f64>s / <f64>n) : s);
    }
    return;
  }
  const i4 = inner >= 4 ? inner & ~3 : 0;
  for (let o = 0; o < outer; o++) {
    const yr = y + (<usize>o * <usize>inner << 2);
    const xo = x + (<usize>o * <usize>n * <usize>inner << 2);
    let i = 0;
    for (; i < i4; i += 4) v128.store(yr + (<usize>i << 2), f32x4.splat(init));
    for (; i < inner; i++) store<f32>(yr + (<usize>i << 2), init);
    for (let k = 0; k < n; k++) {
      const xr = xo + (<usize>k * <usize>inner << 2);
      i = 0;
      for (; i < i4; i += 4) {
        const q = <usize>i << 2;
        v128.store(yr + q, redVec(v128.load(yr + q), v128.load(xr + q), op));
      }
      for (; i < inner; i++) {
        const q = <usize>i << 2;
        store<f32>(yr + q, redScalar(load<f32>(yr + q), load<f32>(xr + q), op));
      }
    }
    if (isMean) {
      const nv = f32x4.splat(<f32>n);
      i = 0;
      for (; i < i4; i += 4) {
        const q = <usize>i << 2;
        v128.store(yr + q, f32x4.div(v128.load(yr + q), nv));
      }
      for (; i < inner; i++) {
        const q = <usize>i << 2;
        store<f32>(yr + q, load<f32>(yr + q) / <f32>n);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// fill / copy2d / transpose2d

/** Kernels.fill: y[i] = value for i < n (memory.fill when value is +0). */
export function fill(y: usize, n: i32, value: f32): void {
  if (n <= 0) return;
  if (reinterpret<u32>(value) == 0) {
    memory.fill(y, 0, <usize>n << 2);
    return;
  }
  const v = f32x4.splat(value);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), v);
  for (; i < n; i++) store<f32>(y + (<usize>i << 2), value);
}

/** Kernels.copy2d: y[r·ldy + j] = x[r·ldx + j] (memory.copy per row; overlapping rows are safe). */
export function copy2d(x: usize, ldx: i32, y: usize, ldy: i32, rows: i32, cols: i32): void {
  if (rows <= 0 || cols <= 0) return;
  if (ldx == cols && ldy == cols) {
    memory.copy(y, x, <usize>rows * <usize>cols << 2);
    return;
  }
  const bytes = <usize>cols << 2;
  for (let r = 0; r < rows; r++) {
    memory.copy(y + (<usize>r * <usize>ldy << 2), x + (<usize>r * <usize>ldx << 2), bytes);
  }
}

// @ts-ignore: decorator
@inline const TILE = 32;

/**
 * Kernels.transpose2d: y[j·ldy + r] = x[r·ldx + j]. 32×32 cache tiles, 4×4 register transposes
 * (two rounds of f32x4 shuffles) inside, scalar edges.
 */
export function transpose2d(x: usize, ldx: i32, y: usize, ldy: i32, rows: i32, cols: i32): void {
  if (rows <= 0 || cols <= 0) return;
  const sx = <usize>ldx << 2;
  const sy = <usize>ldy << 2;
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = min(r0 + TILE, rows);
    const r4 = r0 + ((r1 - r0) & ~3);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = min(c0 + TILE, cols);
      const c4 = c0 + ((c1 - c0) & ~3);
      let r = r0;
      for (; r < r4; r += 4) {
        const xr = x + <usize>r * sx;
        let j = c0;
        for (; j < c4; j += 4) {
          const p = xr + (<usize>j << 2);
          const a0 = v128.load(p);
          const a1 = v128.load(p + sx);
          const a2 = v128.load(p + 2 * sx);
          const a3 = v128.load(p + 3 * sx);
          const t0 = f32x4.shuffle(a0, a1, 0, 4, 1, 5);
          const t1 = f32x4.shuffle(a0, a1, 2, 6, 3, 7);
          const t2 = f32x4.shuffle(a2, a3, 0, 4, 1, 5);
          const t3 = f32x4.shuffle(a2, a3, 2, 6, 3, 7);
          const q = y + <usize>j * sy + (<usize>r << 2);
          v128.store(q, f32x4.shuffle(t0, t2, 0, 1, 4, 5));
          v128.store(q + sy, f32x4.shuffle(t0, t2, 2, 3, 6, 7));
          v128.store(q + 2 * sy, f32x4.shuffle(t1, t3, 0, 1, 4, 5));
          v128.store(q + 3 * sy, f32x4.shuffle(t1, t3, 2, 3, 6, 7));
        }
        for (; j < c1; j++) {
          for (let rr = r; rr < r + 4; rr++) {
            store<f32>(y + <usize>j * sy + (<usize>rr << 2), load<f32>(x + <usize>rr * sx + (<usize>j << 2)));
          }
        }
      }
      for (; r < r1; r++) {
        for (let j = c0; j < c1; j++) {
          store<f32>(y + <usize>j * sy + (<usize>r << 2), load<f32>(x + <usize>r * sx + (<usize>j << 2)));
        }
      }
    }
  }
}
