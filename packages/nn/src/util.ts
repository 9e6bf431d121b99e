/**
 * Small helpers shared by the layers: moving tensors in and out of the runtime heap, argument
 * checks that throw typed errors, and the choice of a runtime.
 */
import {
  ConfigError,
  createRefRuntime,
  createRuntime,
  DisposedError,
  defaultRuntime,
  formatShape,
  type Kernels,
  type Runtime,
  releaseRuntime,
  ShapeError,
  Tensor,
  WeightsError,
} from "@wasmformer/core";
import type { TrainParam } from "./optim.js";

/** `[2, 3]`: core's shape formatting, under the name the layers use. */
export const fmtShape = formatShape;

/** Kernels the nn layers call; a wasm build without one of them cannot run this package. */
const NEEDED: (keyof Kernels)[] = [
  "gemm",
  "attention",
  "layerNorm",
  "unary",
  "copy2d",
  "gather",
  "lstmCell",
  "gruCell",
  "logSoftmax",
  "scale",
  "binary",
];

/**
 * A runtime for a model: `createRuntime()` (the wasm backend after `init()`, else the reference
 * backend). While the wasm build lacks a kernel this package needs, the reference backend is used.
 */
export function nnRuntime(rt?: Runtime): Runtime {
  if (rt) return rt;
  const r = createRuntime();
  if (missingKernels(r).length === 0) return r;
  releaseRuntime(r);
  return createRefRuntime();
}

/**
 * What the modules of one loaded tree share (every module built from one `StateDict`): the runtime
 * holding their weights, whether the load created it, and whether the tree was disposed.
 */
export class ModuleLife {
  private disposed = false;
  /** Gradient buffers of the tree's trainable tensors, by full name (allocated on first use). */
  private readonly grads = new Map<string, TrainParam>();

  constructor(
    readonly rt: Runtime,
    /** the load created `rt` (then `dispose()` gives it back to core) */
    readonly ownsRuntime: boolean,
  ) {}

  /**
   * Dispose the whole tree: the runtime the load created is released at once (`releaseRuntime`: the
   * next `createRuntime()` reuses its memory); a runtime the caller passed in is left to the caller.
   * Calling it again does nothing.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.ownsRuntime) releaseRuntime(this.rt);
  }

  /**
   * The `TrainParam` of a weight: its values at `ptr` and a zero-filled gradient buffer of the same
   * size, allocated in the tree's heap the first time it is asked for (by `train()`), then shared by
   * every module that uses the weight.
   */
  trainParam(name: string, ptr: number, size: number): TrainParam {
    let p = this.grads.get(name);
    if (!p) {
      if (!ptr) throw new WeightsError(`${name} was not loaded; it cannot be trained`, [name]);
      p = { name, ptr, size, grad: this.rt.heap.allocF32(size) };
      this.grads.set(name, p);
    }
    return p;
  }

  /** Throw a `DisposedError` naming `what` (the module class called) once the tree is disposed. */
  check(what: string): void {
    if (this.disposed) throw new DisposedError(what);
  }
}

let sharedRef: Runtime | undefined;

/**
 * The runtime of stateless functions (activations, `scaledDotProductAttention`): core's shared
 * `defaultRuntime()` (scratch is released after each call), or one shared reference runtime while
 * the wasm build lacks a kernel this package needs.
 */
export function sharedRuntime(rt?: Runtime): Runtime {
  if (rt) return rt;
  const d = defaultRuntime();
  if (missingKernels(d).length === 0) return d;
  sharedRef ??= createRefRuntime();
  return sharedRef;
}

/** Kernels this package needs that the runtime's backend does not export (empty when complete). */
export function missingKernels(rt: Runtime): string[] {
  return NEEDED.filter((n) => typeof (rt.k as unknown as Record<string, unknown>)[n] !== "function");
}

/** Copy an f32 tensor into the heap. */
export function putF32(rt: Runtime, t: Tensor, what: string): number {
  if (t.dtype !== "f32") throw new ShapeError(`${what}: expected an f32 tensor, got ${t.dtype} ${fmtShape(t.shape)}`);
  return rt.heap.put(t.data as Float32Array);
}

/** Read `n` floats at `ptr` into a new f32 tensor of `shape`. */
export function readF32(rt: Runtime, ptr: number, shape: readonly number[]): Tensor<"f32"> {
  let n = 1;
  for (const d of shape) n *= d;
  return new Tensor(rt.heap.f32(ptr, n).slice(), shape, "f32");
}

/** Throw a ShapeError unless `t` has exactly `shape` (−1 = any size). */
export function expectShape(t: Tensor, shape: readonly number[], what: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => shape[i] >= 0 && d !== shape[i])) {
    const want = shape.map((d) => (d < 0 ? "*" : String(d))).join(", ");
    throw new ShapeError(`${what} has shape ${fmtShape(t.shape)}, expected [${want}]`);
  }
}

export function expectDType(t: Tensor, dtypes: readonly string[], what: string): void {
  if (!dtypes.includes(t.dtype)) {
    throw new ShapeError(`${what} has dtype ${t.dtype}, expected ${dtypes.join(" or ")}`);
  }
}

/** Run `f` with per-call scratch: everything allocated inside is released afterwards. */
export function scratch<T>(rt: Runtime, f: () => T): T {
  const m = rt.heap.mark();
  try {
    return f();
  } finally {
    rt.heap.release(m);
  }
}

// ---- configuration checks (constructors and the parity kinds) ----

export function posInt(v: unknown, field: string, min = 1): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new ConfigError(`expected an integer ≥ ${min}, got ${JSON.stringify(v)}`, field);
  }
  return v;
}

export function bool(v: unknown, field: string, dflt?: boolean): boolean {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== "boolean") throw new ConfigError(`expected a boolean, got ${JSON.stringify(v)}`, field);
  return v;
}

export function num(v: unknown, field: string, dflt?: number): number {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new ConfigError(`expected a number, got ${JSON.stringify(v)}`, field);
  return v;
}

export function oneOf<T extends string>(v: unknown, field: string, allowed: readonly T[], dflt?: T): T {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    throw new ConfigError(
      `expected one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}, got ${JSON.stringify(v)}`,
      field,
    );
  }
  return v as T;
}
