/**
 * `Tensor`: a dtype, a shape and contiguous row-major data in a typed array. Views (`reshape`)
 * share data; every other op returns a new tensor. Heavy ops run on the kernel runtime
 * (`defaultRuntime()`), the rest are plain loops.
 */
import { allocData, type DataFor, type DType, dtypeOf, type TypedData } from "./dtype.js";
import { ShapeError } from "./errors.js";
import * as ops from "./ops.js";

export type Shape = readonly number[];

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** `[2, 3]` */
export function formatShape(s: Shape): string {
  return `[${s.join(", ")}]`;
}

export function checkShape(shape: Shape, what = "shape"): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0)
      throw new ShapeError(`${what} [${shape.join(", ")}] has an invalid dimension ${d}`);
  }
}

export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export class Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: Shape;
  readonly data: DataFor<D>;

  /**
   * @param data contiguous row-major elements (not copied)
   * @param shape dimensions; the element count must equal `data.length`
   * @param dtype defaults to the typed array's type (`Uint8Array` → `"u8"`); pass `"bool"` for masks
   */
  constructor(data: DataFor<D>, shape: Shape, dtype?: D) {
    if (!Array.isArray(shape))
      throw new ShapeError(`tensor shape must be an array of dimensions, got ${String(shape)}`);
    checkShape(shape);
    if (!ArrayBuffer.isView(data) || data instanceof DataView) {
      throw new ShapeError(`tensor data must be a Float32Array, Int32Array or Uint8Array, got ${String(data)}`);
    }
    const n = shapeSize(shape);
    if (data.length !== n) {
      throw new ShapeError(`tensor data has ${data.length} elements but shape [${shape.join(", ")}] needs ${n}`);
    }
    const d = (dtype ?? dtypeOf(data)) as D;
    const storage =
      d === "f32" ? Float32Array : d === "i32" ? Int32Array : d === "u8" || d === "bool" ? Uint8Array : undefined;
    if (!storage) throw new ShapeError(`unknown dtype ${JSON.stringify(d)} (expected "f32", "i32", "u8" or "bool")`);
    if (!(data instanceof storage)) {
      throw new ShapeError(`dtype ${d} does not match a ${data.constructor.name} (it needs a ${storage.name})`);
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
    this.dtype = d;
  }

  get size(): number {
    return this.data.length;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get strides(): number[] {
    return stridesOf(this.shape);
  }

  /** A zero-filled tensor. */
  static zeros<D extends DType = "f32">(shape: Shape, dtype: D = "f32" as D): Tensor<D> {
    checkShape(shape);
    return new Tensor(allocData(dtype, shapeSize(shape)) as DataFor<D>, shape, dtype);
  }

  /** Normalise a possibly negative axis. */
  axis(dim: number): number {
    const a = dim < 0 ? dim + this.ndim : dim;
    if (!Number.isInteger(a) || a < 0 || a >= this.ndim) {
      throw new ShapeError(`axis ${dim} out of range for a ${this.ndim}-d tensor [${this.shape.join(", ")}]`);
    }
    return a;
  }

  /** Same data, new shape (one dimension may be −1). Shares the data. */
  reshape(shape: Shape): Tensor<D> {
    const s = [...shape];
    const neg = s.indexOf(-1);
    if (neg >= 0) {
      const rest = shapeSize(s.filter((_, i) => i !== neg));
      if (rest === 0 || this.size % rest !== 0) {
        throw new ShapeError(`cannot reshape [${this.shape.join(", ")}] to [${shape.join(", ")}]`);
      }
      s[neg] = this.size / rest;
    }
    if (shapeSize(s) !== this.size)
      throw new ShapeError(`cannot reshape [${this.shape.join(", ")}] to [${shape.join(", ")}]`);
    return new Tensor(this.data, s, this.dtype);
  }
  /** Alias of `reshape` (PyTorch's name). */
  view(shape: Shape): Tensor<D> {
    return this.reshape(shape);
  }

  /** A deep copy. */
  clone(): Tensor<D> {
    return new Tensor(this.data.slice() as DataFor<D>, this.shape, this.dtype);
  }

  /** Nested JS arrays (numbers; bool as 0/1). */
  toArray(): unknown {
    const rec = (dim: number, off: number): unknown => {
      if (dim === this.ndim) return this.data[off];
      const st = this.strides[dim];
      return Array.from({ length: this.shape[dim] }, (_, i) => rec(dim + 1, off + i * st));
    };
    return rec(0, 0);
  }

  /** The single element of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new ShapeError(`item() needs one element, tensor has ${this.size}`);
    return this.data[0];
  }

  /** The element at a multi-index. */
  get(...idx: number[]): number {
    if (idx.length !== this.ndim) throw new ShapeError(`get: expected ${this.ndim} indices, got ${idx.length}`);
    let off = 0;
    const st = this.strides;
    for (let i = 0; i < idx.length; i++) {
      const v = idx[i] < 0 ? idx[i] + this.shape[i] : idx[i];
      if (v < 0 || v >= this.shape[i])
        throw new ShapeError(`index ${idx[i]} out of range for dim ${i} of size ${this.shape[i]}`);
      off += v * st[i];
    }
    return this.data[off];
  }

  // ---- ops as methods (PyTorch names); see ops.ts for the documentation of each ----
  transpose(dim0 = -2, dim1 = -1): Tensor<D> {
    return ops.transpose(this, dim0, dim1);
  }
  permute(...perm: number[]): Tensor<D> {
    return ops.permute(this, perm);
  }
  slice(dim: number, start = 0, end?: number, step = 1): Tensor<D> {
    return ops.slice(this, dim, start, end, step);
  }
  narrow(dim: number, start: number, length: number): Tensor<D> {
    return ops.narrow(this, dim, start, length);
  }
  unsqueeze(dim: number): Tensor<D> {
    return ops.unsqueeze(this, dim);
  }
  squeeze(dim?: number): Tensor<D> {
    return ops.squeeze(this, dim);
  }
  indexSelect(dim: number, index: Tensor | readonly number[]): Tensor<D> {
    return ops.indexSelect(this, dim, index);
  }
  gather(dim: number, index: Tensor): Tensor<D> {
    return ops.gather(this, dim, index);
  }
  expand(shape: Shape): Tensor<D> {
    return ops.broadcastTo(this, shape);
  }
  to<E extends DType>(dtype: E): Tensor<E> {
    return ops.cast(this, dtype);
  }
  add(o: Tensor | number): Tensor<"f32"> {
    return ops.add(this, o);
  }
  sub(o: Tensor | number): Tensor<"f32"> {
    return ops.sub(this, o);
  }
  mul(o: Tensor | number): Tensor<"f32"> {
    return ops.mul(this, o);
  }
  div(o: Tensor | number): Tensor<"f32"> {
    return ops.div(this, o);
  }
  matmul(o: Tensor): Tensor<"f32"> {
    return ops.matmul(this, o);
  }
  softmax(dim = -1): Tensor<"f32"> {
    return ops.softmax(this, dim);
  }
  sum(dim?: number, keepdim = false): Tensor<"f32"> {
    return ops.sum(this, dim, keepdim);
  }
  mean(dim?: number, keepdim = false): Tensor<"f32"> {
    return ops.mean(this, dim, keepdim);
  }
  max(dim?: number, keepdim = false): Tensor<"f32"> {
    return ops.max(this, dim, keepdim);
  }
  argmax(dim = -1, keepdim = false): Tensor<"i32"> {
    return ops.argmax(this, dim, keepdim);
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(", ")}])`;
  }
}

/** Build a tensor from nested arrays, a typed array plus shape, or a scalar. */
export function tensor(values: unknown, shape?: Shape, dtype: DType = "f32"): Tensor {
  if (ArrayBuffer.isView(values)) {
    const data = values as TypedData;
    return new Tensor(data, shape ?? [data.length], shape ? undefined : undefined);
  }
  const dims: number[] = [];
  let v: unknown = values;
  while (Array.isArray(v)) {
    dims.push(v.length);
    v = v[0];
  }
  const flat = (Array.isArray(values) ? (values as unknown[]).flat(Number.POSITIVE_INFINITY) : [values]) as (
    | number
    | boolean
  )[];
  const s = shape ?? dims;
  if (flat.length !== shapeSize(s))
    throw new ShapeError(`ragged or mis-sized nested array for shape [${s.join(", ")}]`);
  const data = allocData(dtype, flat.length);
  for (let i = 0; i < flat.length; i++) data[i] = Number(flat[i]);
  return new Tensor(data, s, dtype);
}
