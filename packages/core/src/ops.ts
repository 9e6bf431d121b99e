/**
 * Tensor operations. Layout ops (transpose, slice, concat, gather …) work on every dtype with plain
 * loops; math ops take f32 tensors and run on the kernel runtime (`defaultRuntime()`): inputs are
 * copied into its heap, the kernel runs, the result is copied out and the scratch is released.
 * Names follow PyTorch (`transpose`, `narrow`, `indexSelect`, `layerNorm`, `softmax(dim)`).
 */
import { allocData, type DataFor, type DType, type TypedData } from "./dtype.js";
import { InputError, ShapeError } from "./errors.js";
import { Act, BinOp, RedOp } from "./kernels.js";
import { defaultRuntime, type Runtime } from "./runtime.js";
import { formatShape as fmt, type Shape, shapeSize, Tensor } from "./tensor.js";

// ---------------------------------------------------------------------------------------------
// helpers

function needF32(t: Tensor, op: string, name = "input"): Tensor<"f32"> {
  if (t.dtype !== "f32") throw new ShapeError(`${op}: ${name} must be f32, got ${t.dtype}`);
  return t as Tensor<"f32">;
}

/** Run `fn` with heap scratch that is released afterwards. */
function scratch<T>(rt: Runtime, fn: (put: (d: Float32Array | Int32Array | Uint8Array) => number) => T): T {
  const mark = rt.heap.mark();
  try {
    return fn((d) => rt.heap.put(d));
  } finally {
    rt.heap.release(mark);
  }
}

function outF32(rt: Runtime, ptr: number, shape: Shape): Tensor<"f32"> {
  return new Tensor(rt.heap.f32(ptr, shapeSize(shape)).slice(), shape, "f32");
}

// ---------------------------------------------------------------------------------------------
// layout

/** Permute dimensions (a copy): `out.shape[i] = x.shape[perm[i]]`. */
export function permute<D extends DType>(x: Tensor<D>, perm: readonly number[]): Tensor<D> {
  const n = x.ndim;
  if (perm.length !== n) throw new ShapeError(`permute: ${perm.length} axes given for a ${n}-d tensor`);
  const p = perm.map((a) => x.axis(a));
  if (new Set(p).size !== n) throw new ShapeError(`permute: repeated axis in [${perm.join(", ")}]`);
  const shape = p.map((a) => x.shape[a]);
  const inStr = x.strides;
  return stridedCopy(
    x,
    shape,
    p.map((a) => inStr[a]),
  );
}

/**
 * A new contiguous tensor of `shape` whose element at index (i₀, …) is `x.data[Σ iₖ·srcStr[k]]`
 * (a permuted or broadcast view of `x`, materialised).
 */
function stridedCopy<D extends DType>(x: Tensor<D>, shape: Shape, srcStr: readonly number[]): Tensor<D> {
  const n = shapeSize(shape);
  const out = allocData(x.dtype, n) as DataFor<D>;
  const idx = new Array<number>(shape.length).fill(0);
  let src = 0;
  for (let o = 0; o < n; o++) {
    out[o] = x.data[src];
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d]++;
      src += srcStr[d];
      if (idx[d] < shape[d]) break;
      src -= srcStr[d] * shape[d];
      idx[d] = 0;
    }
  }
  return new Tensor(out, shape, x.dtype);
}

/** Swap two dimensions (a copy). */
export function transpose<D extends DType>(x: Tensor<D>, dim0 = -2, dim1 = -1): Tensor<D> {
  const p = Array.from({ length: x.ndim }, (_, i) => i);
  const a = x.axis(dim0);
  const b = x.axis(dim1);
  [p[a], p[b]] = [p[b], p[a]];
  return permute(x, p);
}

/** Elements `start … end−1` (step `step`) along `dim` (a copy). Negative start/end count from the end. */
export function slice<D extends DType>(x: Tensor<D>, dim: number, start = 0, end?: number, step = 1): Tensor<D> {
  const a = x.axis(dim);
  const size = x.shape[a];
  if (!Number.isInteger(step) || step < 1) throw new ShapeError(`slice: step must be a positive integer, got ${step}`);
  const norm = (v: number) => Math.min(size, Math.max(0, v < 0 ? v + size : v));
  const s = norm(start);
  const e = end === undefined ? size : norm(end);
  const len = e > s ? Math.ceil((e - s) / step) : 0;
  const outer = shapeSize(x.shape.slice(0, a));
  const inner = shapeSize(x.shape.slice(a + 1));
  const out = allocData(x.dtype, outer * len * inner) as DataFor<D>;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < len; i++) {
      const from = (o * size + s + i * step) * inner;
      out.set(x.data.subarray(from, from + inner) as never, (o * len + i) * inner);
    }
  }
  const shape = [...x.shape];
  shape[a] = len;
  return new Tensor(out, shape, x.dtype);
}

/** PyTorch `narrow`: `length` elements from `start` along `dim`. */
export function narrow<D extends DType>(x: Tensor<D>, dim: number, start: number, length: number): Tensor<D> {
  const a = x.axis(dim);
  if (start < 0 || length < 0 || start + length > x.shape[a]) {
    throw new ShapeError(`narrow: [${start}, ${start + length}) out of range for dim ${dim} of size ${x.shape[a]}`);
  }
  return slice(x, a, start, start + length);
}

/** Join tensors along an existing dimension. */
export function concat<D extends DType>(ts: readonly Tensor<D>[], dim = 0): Tensor<D> {
  if (ts.length === 0) throw new ShapeError("concat: no tensors");
  const first = ts[0];
  const a = first.axis(dim);
  for (const t of ts) {
    if (t.dtype !== first.dtype) throw new ShapeError(`concat: dtype ${t.dtype} differs from ${first.dtype}`);
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new ShapeError(`concat: shape ${fmt(t.shape)} does not match ${fmt(first.shape)} outside dim ${dim}`);
    }
  }
  const outer = shapeSize(first.shape.slice(0, a));
  const inner = shapeSize(first.shape.slice(a + 1));
  const total = ts.reduce((s, t) => s + t.shape[a], 0);
  const out = allocData(first.dtype, outer * total * inner) as DataFor<D>;
  let off = 0;
  for (const t of ts) {
    const chunk = t.shape[a] * inner;
    for (let o = 0; o < outer; o++)
      out.set(t.data.subarray(o * chunk, (o + 1) * chunk) as never, (o * total + off) * inner);
    off += t.shape[a];
  }
  const shape = [...first.shape];
  shape[a] = total;
  return new Tensor(out, shape, first.dtype);
}

/** Join tensors along a new dimension. */
export function stack<D extends DType>(ts: readonly Tensor<D>[], dim = 0): Tensor<D> {
  if (ts.length === 0) throw new ShapeError("stack: no tensors");
  const nd = ts[0].ndim + 1;
  const a = dim < 0 ? dim + nd : dim;
  return concat(
    ts.map((t) => unsqueeze(t, a)),
    a,
  );
}

export function unsqueeze<D extends DType>(x: Tensor<D>, dim: number): Tensor<D> {
  const a = dim < 0 ? dim + x.ndim + 1 : dim;
  if (a < 0 || a > x.ndim) throw new ShapeError(`unsqueeze: dim ${dim} out of range for ${x.ndim}-d tensor`);
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return x.reshape(s);
}

export function squeeze<D extends DType>(x: Tensor<D>, dim?: number): Tensor<D> {
  if (dim === undefined) return x.reshape(x.shape.filter((d) => d !== 1));
  const a = x.axis(dim);
  if (x.shape[a] !== 1) return x;
  return x.reshape(x.shape.filter((_, i) => i !== a));
}

/** Rows of `x` along `dim` picked by integer `index` (PyTorch `index_select`). */
export function indexSelect<D extends DType>(x: Tensor<D>, dim: number, index: Tensor | readonly number[]): Tensor<D> {
  const a = x.axis(dim);
  const ids = Array.isArray(index) ? index : Array.from((index as Tensor).data);
  const size = x.shape[a];
  const outer = shapeSize(x.shape.slice(0, a));
  const inner = shapeSize(x.shape.slice(a + 1));
  const out = allocData(x.dtype, outer * ids.length * inner) as DataFor<D>;
  ids.forEach((raw, i) => {
    const id = raw < 0 ? raw + size : raw;
    if (!Number.isInteger(id) || id < 0 || id >= size) {
      throw new InputError(`indexSelect: index ${raw} at position ${i} out of range for dim ${dim} of size ${size}`);
    }
    for (let o = 0; o < outer; o++) {
      const from = (o * size + id) * inner;
      out.set(x.data.subarray(from, from + inner) as never, (o * ids.length + i) * inner);
    }
  });
  const shape = [...x.shape];
  shape[a] = ids.length;
  return new Tensor(out, shape, x.dtype);
}

/** PyTorch `gather`: `out[i][j][k] = x[i][index[i][j][k]][k]` for dim = 1 (and likewise). */
export function gather<D extends DType>(x: Tensor<D>, dim: number, index: Tensor): Tensor<D> {
  const a = x.axis(dim);
  if (index.ndim !== x.ndim) throw new ShapeError(`gather: index has ${index.ndim} dims, input ${x.ndim}`);
  if (index.dtype !== "i32") throw new ShapeError(`gather: index must be i32, got ${index.dtype}`);
  for (let d = 0; d < x.ndim; d++) {
    if (d !== a && index.shape[d] > x.shape[d])
      throw new ShapeError(`gather: index shape ${fmt(index.shape)} exceeds input ${fmt(x.shape)} at dim ${d}`);
  }
  const out = allocData(x.dtype, index.size) as DataFor<D>;
  const xs = x.strides;
  const is = index.strides;
  for (let o = 0; o < index.size; o++) {
    let rem = o;
    let src = 0;
    for (let d = 0; d < index.ndim; d++) {
      const c = Math.floor(rem / is[d]);
      rem -= c * is[d];
      if (d === a) {
        const id = index.data[o];
        if (id < 0 || id >= x.shape[a])
          throw new InputError(`gather: index ${id} out of range for dim ${dim} of size ${x.shape[a]}`);
        src += id * xs[d];
      } else src += c * xs[d];
    }
    out[o] = x.data[src];
  }
  return new Tensor(out, index.shape, x.dtype);
}

/** The broadcast shape of two shapes (NumPy rules), or a ShapeError. */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new ShapeError(`cannot broadcast ${fmt(a)} with ${fmt(b)}`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Materialise `x` broadcast to `shape` (a copy). */
export function broadcastTo<D extends DType>(x: Tensor<D>, shape: Shape): Tensor<D> {
  const s = broadcastShapes(x.shape, shape);
  if (s.length !== shape.length || s.some((d, i) => d !== shape[i]))
    throw new ShapeError(`cannot broadcast ${fmt(x.shape)} to ${fmt(shape)}`);
  if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
  const pad = shape.length - x.ndim;
  const xs = x.strides;
  return stridedCopy(
    x,
    shape,
    shape.map((_, i) => (i < pad || x.shape[i - pad] === 1 ? 0 : xs[i - pad])),
  );
}

/** Convert the element type (f32 → i32 truncates toward zero; → bool is `x != 0`). */
export function cast<D extends DType>(x: Tensor, dtype: D): Tensor<D> {
  if (x.dtype === dtype) return x as unknown as Tensor<D>;
  const out = allocData(dtype, x.size) as TypedData;
  if (dtype === "bool") for (let i = 0; i < x.size; i++) out[i] = x.data[i] !== 0 ? 1 : 0;
  else out.set(x.data as never);
  return new Tensor(out as DataFor<D>, x.shape, dtype);
}

// ---------------------------------------------------------------------------------------------
// elementwise

type Bin = (typeof BinOp)[keyof typeof BinOp];

function binary(op: Bin, name: string, a: Tensor | number, b: Tensor | number): Tensor<"f32"> {
  const ta = typeof a === "number" ? new Tensor(new Float32Array([a]), []) : needF32(a, name, "a");
  const tb = typeof b === "number" ? new Tensor(new Float32Array([b]), []) : needF32(b, name, "b");
  const shape = broadcastShapes(ta.shape, tb.shape);
  const n = shapeSize(shape);
  const rt = defaultRuntime();
  const A = broadcastTo(ta, shape);
  // b: same shape, a trailing row, or a scalar go straight to the kernel; anything else is expanded
  let B: Tensor = tb;
  let rows = 1;
  let cols = n;
  const bRow = 0;
  let bCol = 1;
  if (tb.size === 1) bCol = 0;
  else if (tb.size === n) B = broadcastTo(tb, shape);
  else {
    const last = shape[shape.length - 1];
    const isRow = tb.size === last && tb.shape[tb.ndim - 1] === last;
    if (isRow && last > 0) {
      rows = n / last;
      cols = last;
    } else B = broadcastTo(tb, shape);
  }
  if (n === 0) return Tensor.zeros(shape);
  return scratch(rt, (put) => {
    const pa = put(A.data);
    const pb = put(B.data);
    rt.k.binary(pa, pb, pa, rows, cols, bRow, bCol, op);
    return outF32(rt, pa, shape);
  });
}

export const add = (a: Tensor | number, b: Tensor | number) => binary(BinOp.add, "add", a, b);
export const sub = (a: Tensor | number, b: Tensor | number) => binary(BinOp.sub, "sub", a, b);
export const mul = (a: Tensor | number, b: Tensor | number) => binary(BinOp.mul, "mul", a, b);
export const div = (a: Tensor | number, b: Tensor | number) => binary(BinOp.div, "div", a, b);
export const maximum = (a: Tensor | number, b: Tensor | number) => binary(BinOp.max, "maximum", a, b);
export const minimum = (a: Tensor | number, b: Tensor | number) => binary(BinOp.min, "minimum", a, b);

function unary(act: number, name: string, x: Tensor): Tensor<"f32"> {
  const t = needF32(x, name);
  if (t.size === 0) return Tensor.zeros(t.shape);
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const p = put(t.data);
    rt.k.unary(p, p, t.size, act);
    return outF32(rt, p, t.shape);
  });
}

export const relu = (x: Tensor) => unary(Act.relu, "relu", x);
/** Exact GELU, `0.5·x·(1 + erf(x/√2))`. */
export const gelu = (x: Tensor) => unary(Act.gelu, "gelu", x);
/** tanh-approximation GELU (`gelu_new`). */
export const geluTanh = (x: Tensor) => unary(Act.geluTanh, "geluTanh", x);
export const silu = (x: Tensor) => unary(Act.silu, "silu", x);
export const tanh = (x: Tensor) => unary(Act.tanh, "tanh", x);
export const sigmoid = (x: Tensor) => unary(Act.sigmoid, "sigmoid", x);
export const exp = (x: Tensor) => unary(Act.exp, "exp", x);
export const log = (x: Tensor) => unary(Act.log, "log", x);
export const neg = (x: Tensor) => unary(Act.neg, "neg", x);
export const sqrt = (x: Tensor) => unary(Act.sqrt, "sqrt", x);
export const abs = (x: Tensor) => unary(Act.abs, "abs", x);

/** `alpha · x + beta`. */
export function scale(x: Tensor, alpha: number, beta = 0): Tensor<"f32"> {
  const t = needF32(x, "scale");
  if (t.size === 0) return Tensor.zeros(t.shape);
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const p = put(t.data);
    rt.k.scale(p, p, t.size, alpha, beta);
    return outF32(rt, p, t.shape);
  });
}

// ---------------------------------------------------------------------------------------------
// reductions, normalisation

function reduce(op: number, name: string, x: Tensor, dim: number | undefined, keepdim: boolean): Tensor<"f32"> {
  const t = needF32(x, name);
  if (dim === undefined)
    return reduce(op, name, t.reshape([t.size]), 0, false).reshape(keepdim ? t.shape.map(() => 1) : []);
  const a = t.axis(dim);
  const n = t.shape[a];
  if (n === 0 && (op === RedOp.max || op === RedOp.min))
    throw new ShapeError(`${name}: cannot reduce an empty dimension`);
  const outer = shapeSize(t.shape.slice(0, a));
  const inner = shapeSize(t.shape.slice(a + 1));
  const shape = keepdim ? t.shape.map((d, i) => (i === a ? 1 : d)) : t.shape.filter((_, i) => i !== a);
  if (outer * inner === 0) return Tensor.zeros(shape);
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const p = put(t.data);
    const y = rt.heap.allocF32(outer * inner);
    rt.k.reduce(p, y, outer, n, inner, op);
    return outF32(rt, y, shape);
  });
}

export const sum = (x: Tensor, dim?: number, keepdim = false) => reduce(RedOp.sum, "sum", x, dim, keepdim);
export const mean = (x: Tensor, dim?: number, keepdim = false) => reduce(RedOp.mean, "mean", x, dim, keepdim);
export const max = (x: Tensor, dim?: number, keepdim = false) => reduce(RedOp.max, "max", x, dim, keepdim);
export const min = (x: Tensor, dim?: number, keepdim = false) => reduce(RedOp.min, "min", x, dim, keepdim);

/** Index of the largest element along `dim` (first on ties), as i32. */
export function argmax(x: Tensor, dim = -1, keepdim = false): Tensor<"i32"> {
  const t = needF32(x, "argmax");
  const a = t.axis(dim);
  const n = t.shape[a];
  if (n === 0) throw new ShapeError("argmax: empty dimension");
  const outer = shapeSize(t.shape.slice(0, a));
  const inner = shapeSize(t.shape.slice(a + 1));
  const out = new Int32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = 0;
      let bv = t.data[o * n * inner + i];
      for (let k = 1; k < n; k++) {
        const v = t.data[(o * n + k) * inner + i];
        if (v > bv || (Number.isNaN(v) && !Number.isNaN(bv))) {
          bv = v;
          best = k;
        }
      }
      out[o * inner + i] = best;
    }
  }
  const shape = keepdim ? t.shape.map((d, i) => (i === a ? 1 : d)) : t.shape.filter((_, i) => i !== a);
  return new Tensor(out, shape, "i32");
}

/** Moves `dim` last (a copy unless it already is), runs `fn` over rows, moves it back. */
function overLastAxis(x: Tensor<"f32">, dim: number, fn: (t: Tensor<"f32">) => Tensor<"f32">): Tensor<"f32"> {
  const a = x.axis(dim);
  if (a === x.ndim - 1) return fn(x);
  return transpose(fn(transpose(x, a, -1)), a, -1);
}

/**
 * Softmax along `dim`, numerically stable. An optional additive `mask` broadcastable to `x`
 * (−∞ = blocked) is added first; a row that is blocked everywhere comes out all zeros.
 */
export function softmax(x: Tensor, dim = -1, mask?: Tensor): Tensor<"f32"> {
  const t = needF32(x, "softmax");
  const m = mask ? broadcastTo(needF32(mask, "softmax", "mask"), t.shape) : undefined;
  const run = (u: Tensor<"f32">, mm?: Tensor<"f32">) => {
    const cols = u.shape[u.ndim - 1] ?? 1;
    const rows = cols === 0 ? 0 : u.size / cols;
    if (u.size === 0) return Tensor.zeros(u.shape);
    const rt = defaultRuntime();
    return scratch(rt, (put) => {
      const p = put(u.data);
      const pm = mm ? put(mm.data) : 0;
      rt.k.softmax(p, p, rows, cols, cols, pm, pm ? cols : 0);
      return outF32(rt, p, u.shape);
    });
  };
  if (t.ndim === 0) return run(t.reshape([1]), m?.reshape([1])).reshape([]);
  const a = t.axis(dim);
  if (a === t.ndim - 1) return run(t, m);
  return transpose(run(transpose(t, a, -1), m ? transpose(m, a, -1) : undefined), a, -1);
}

/** log(softmax(x)) along `dim`, computed stably. */
export function logSoftmax(x: Tensor, dim = -1): Tensor<"f32"> {
  return overLastAxis(needF32(x, "logSoftmax"), dim, (u) => {
    const cols = u.shape[u.ndim - 1];
    if (u.size === 0) return Tensor.zeros(u.shape);
    const rt = defaultRuntime();
    return scratch(rt, (put) => {
      const p = put(u.data);
      rt.k.logSoftmax(p, p, u.size / cols, cols, cols);
      return outF32(rt, p, u.shape);
    });
  });
}

/** Layer norm over the last axis (`normalized_shape = [D]`), biased variance, two-pass. */
export function layerNorm(x: Tensor, weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor<"f32"> {
  const t = needF32(x, "layerNorm");
  const d = t.shape[t.ndim - 1];
  for (const [p, name] of [
    [weight, "weight"],
    [bias, "bias"],
  ] as const) {
    if (p && (p.size !== d || p.dtype !== "f32"))
      throw new ShapeError(`layerNorm: ${name} must be f32 [${d}], got ${p.dtype} ${fmt(p.shape)}`);
  }
  if (t.size === 0) return Tensor.zeros(t.shape);
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const p = put(t.data);
    const g = weight ? put(weight.data) : 0;
    const b = bias ? put(bias.data) : 0;
    rt.k.layerNorm(p, p, t.size / d, d, g, b, eps);
    return outF32(rt, p, t.shape);
  });
}

// ---------------------------------------------------------------------------------------------
// products

/**
 * Matrix product with NumPy/PyTorch semantics: 1-d operands are promoted (and the added axis
 * removed), leading batch dimensions broadcast. `transA`/`transB` transpose the last two axes.
 */
export function matmul(a: Tensor, b: Tensor, opts: { transA?: boolean; transB?: boolean } = {}): Tensor<"f32"> {
  let A = needF32(a, "matmul", "a");
  let B = needF32(b, "matmul", "b");
  if (A.ndim === 0 || B.ndim === 0) throw new ShapeError("matmul: scalars are not matrices");
  const aVec = A.ndim === 1;
  const bVec = B.ndim === 1;
  if (aVec) A = A.reshape(opts.transA ? [A.size, 1] : [1, A.size]);
  if (bVec) B = B.reshape(opts.transB ? [1, B.size] : [B.size, 1]);
  const tA = !!opts.transA;
  const tB = !!opts.transB;
  const [ar, ac] = A.shape.slice(-2);
  const [br, bc] = B.shape.slice(-2);
  const M = tA ? ac : ar;
  const K = tA ? ar : ac;
  const K2 = tB ? bc : br;
  const N = tB ? br : bc;
  if (K !== K2)
    throw new ShapeError(
      `matmul: inner dimensions differ: ${fmt(a.shape)} · ${fmt(b.shape)}${tA ? " (a transposed)" : ""}${tB ? " (b transposed)" : ""}`,
    );
  const batch = broadcastShapes(A.shape.slice(0, -2), B.shape.slice(0, -2));
  const nb = shapeSize(batch);
  const Ab = broadcastBatch(A, batch);
  const Bb = broadcastBatch(B, batch);
  let outShape = [...batch, M, N];
  if (aVec) outShape = outShape.filter((_, i) => i !== outShape.length - 2);
  if (bVec) outShape = outShape.filter((_, i) => i !== outShape.length - 1);
  if (nb * M * N === 0) return Tensor.zeros(outShape);
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const pa = put(Ab.data);
    const pb = put(Bb.data);
    const pc = rt.heap.allocF32(nb * M * N);
    const sa = Ab.size === M * K ? 0 : M * K;
    const sb = Bb.size === K * N ? 0 : K * N;
    rt.k.bmm(nb, M, N, K, pa, sa, tA ? M : K, tA ? 1 : 0, pb, sb, tB ? K : N, tB ? 1 : 0, pc, M * N, N, 1, 0);
    return outF32(rt, pc, outShape);
  });
}

function broadcastBatch(x: Tensor<"f32">, batch: number[]): Tensor<"f32"> {
  const lead = x.shape.slice(0, -2);
  if (shapeSize(lead) === 1) return x.reshape(x.shape.slice(-2)); // broadcast by stride 0
  return broadcastTo(x, [...batch, ...x.shape.slice(-2)]);
}

/** `torch.nn.functional.linear`: `x · weightᵀ + bias`, weight `[out, in]`, over the last axis of x. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor, act: keyof typeof Act = "none"): Tensor<"f32"> {
  const t = needF32(x, "linear");
  const w = needF32(weight, "linear", "weight");
  if (w.ndim !== 2) throw new ShapeError(`linear: weight must be 2-d [out, in], got ${fmt(w.shape)}`);
  const [out, inF] = w.shape;
  const K = t.shape[t.ndim - 1];
  if (K !== inF) throw new ShapeError(`linear: input has ${K} features but weight ${fmt(w.shape)} expects ${inF}`);
  if (bias && (bias.size !== out || bias.dtype !== "f32"))
    throw new ShapeError(`linear: bias must be f32 [${out}], got ${fmt(bias.shape)}`);
  const M = K === 0 ? shapeSize(t.shape.slice(0, -1)) : t.size / K;
  const shape = [...t.shape.slice(0, -1), out];
  if (M * out === 0) return Tensor.zeros(shape);
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const pa = put(t.data);
    const pw = put(w.data);
    const pb = bias ? put(bias.data) : 0;
    const pc = rt.heap.allocF32(M * out);
    rt.k.gemm(M, out, K, pa, K, 0, pw, K, 1, pc, out, pb, 1, 0, Act[act]);
    return outF32(rt, pc, shape);
  });
}

/** Embedding lookup: rows of `table [V, D]` for integer `ids` of any shape → `[...ids.shape, D]`. */
export function embedding(table: Tensor, ids: Tensor): Tensor<"f32"> {
  const w = needF32(table, "embedding", "table");
  if (w.ndim !== 2) throw new ShapeError(`embedding: table must be [vocab, dim], got ${fmt(w.shape)}`);
  if (ids.dtype !== "i32") throw new ShapeError(`embedding: ids must be i32, got ${ids.dtype}`);
  const [V, D] = w.shape;
  const shape = [...ids.shape, D];
  if (ids.size * D === 0) {
    for (let i = 0; i < ids.size; i++) {
      if (ids.data[i] < 0 || ids.data[i] >= V)
        throw new InputError(`embedding: id ${ids.data[i]} at position ${i} is outside [0, ${V})`);
    }
    return Tensor.zeros(shape);
  }
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const pt = put(w.data);
    const pi = put(ids.data);
    const po = rt.heap.allocF32(ids.size * D);
    const bad = rt.k.gather(pt, V, D, pi, ids.size, po);
    if (bad >= 0) throw new InputError(`embedding: id ${ids.data[bad]} at position ${bad} is outside [0, ${V})`);
    return outF32(rt, po, shape);
  });
}

/**
 * Patch convolution (stride = kernel = k, no padding), the ViT patch embedding, via im2col + GEMM:
 * x `[B, C, H, W]`, weight `[O, C, k, k]`, bias `[O]` → `[B, O, ⌊H/k⌋, ⌊W/k⌋]`.
 */
export function conv2dPatch(x: Tensor, weight: Tensor, bias: Tensor | undefined, k: number): Tensor<"f32"> {
  const t = needF32(x, "conv2dPatch");
  const w = needF32(weight, "conv2dPatch", "weight");
  if (t.ndim !== 4) throw new ShapeError(`conv2dPatch: input must be [B, C, H, W], got ${fmt(t.shape)}`);
  const [B, C, H, W] = t.shape;
  if (!Number.isInteger(k) || k < 1)
    throw new ShapeError(`conv2dPatch: kernel size must be a positive integer, got ${k}`);
  if (w.ndim !== 4 || w.shape[1] !== C || w.shape[2] !== k || w.shape[3] !== k) {
    throw new ShapeError(`conv2dPatch: weight must be [O, ${C}, ${k}, ${k}], got ${fmt(w.shape)}`);
  }
  const O = w.shape[0];
  if (bias && (bias.size !== O || bias.dtype !== "f32")) throw new ShapeError(`conv2dPatch: bias must be f32 [${O}]`);
  const gh = Math.floor(H / k);
  const gw = Math.floor(W / k);
  const P = gh * gw;
  const ck = C * k * k;
  const shape = [B, O, gh, gw];
  if (B * O * P === 0) return Tensor.zeros(shape);
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const px = put(t.data);
    const pw = put(w.data);
    const pb = bias ? put(bias.data) : 0;
    const cols = rt.heap.allocF32(P * ck);
    const y = rt.heap.allocF32(P * O);
    const out = rt.heap.allocF32(B * O * P);
    for (let b = 0; b < B; b++) {
      rt.k.im2colPatch(px + 4 * b * C * H * W, C, H, W, k, cols);
      rt.k.gemm(P, O, ck, cols, ck, 0, pw, ck, 1, y, O, pb, 1, 0, 0); // [P, O]
      rt.k.transpose2d(y, O, out + 4 * b * O * P, P, P, O); // → [O, P]
    }
    return outF32(rt, out, shape);
  });
}

/** Sinusoidal positional-encoding table `[maxLen, d]` (Vaswani et al.; FORMAT.md §6.6), computed in f64. */
export function sinusoidalPositionalEncoding(maxLen: number, d: number, base = 10000): Tensor<"f32"> {
  if (!Number.isInteger(maxLen) || maxLen < 0 || !Number.isInteger(d) || d < 0) {
    throw new ShapeError(`positional encoding: maxLen and d must be non-negative integers, got ${maxLen}, ${d}`);
  }
  const out = new Float32Array(maxLen * d);
  const lnBase = Math.log(base);
  for (let j = 0; j < d; j++) {
    const w = Math.exp((-2 * Math.floor(j / 2) * lnBase) / d);
    for (let p = 0; p < maxLen; p++) out[p * d + j] = j % 2 === 0 ? Math.sin(p * w) : Math.cos(p * w);
  }
  return new Tensor(out, [maxLen, d], "f32");
}
