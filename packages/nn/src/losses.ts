/**
 * Losses with PyTorch semantics, each returning the loss and its gradient with respect to the
 * input in one call (`grad` = `scale · ∂loss/∂input`, ready for a module's `backward`):
 *
 *   crossEntropy        F.cross_entropy(logits [..., C], labels [...], ignore_index, label_smoothing)
 *   mseLoss             F.mse_loss: (x − y)²
 *   binaryCrossEntropy  F.binary_cross_entropy: −(y·log p + (1 − y)·log(1 − p)), logs clamped at −100
 *   binaryCrossEntropyWithLogits  F.binary_cross_entropy_with_logits: the same on p = σ(x), computed stably
 *
 * `reduction` is `"mean"` (default: over every element; cross-entropy over the rows whose label is
 * not `ignoreIndex`, NaN if there is none, as PyTorch) or `"sum"`.
 * https://pytorch.org/docs/stable/nn.html#loss-functions
 *
 * @example
 * ```ts
 * const { loss, grad } = crossEntropy(logits, labels, { labelSmoothing: 0.1 });
 * classifier.backward(grad);
 * ```
 */
import { InputError, type Runtime, ShapeError, Tensor } from "@wasmformer/core";
import { fmtShape, putF32, readF32, scratch, sharedRuntime } from "./util.js";

export interface LossResult {
  loss: number;
  /** `scale · ∂loss/∂input`, the input's shape. */
  grad: Tensor<"f32">;
}

export interface LossOptions {
  reduction?: "mean" | "sum";
  /** Multiplies the gradient (e.g. `1 / micro-batches` for gradient accumulation); default 1. */
  scale?: number;
}

export interface CrossEntropyOptions extends LossOptions {
  /** Label whose rows count for nothing (default −100). */
  ignoreIndex?: number;
  /** ε in [0, 1]: the target distribution is (1 − ε)·onehot + ε/C (default 0). */
  labelSmoothing?: number;
  /** Runtime whose kernels run it (default: the shared runtime of stateless functions). */
  runtime?: Runtime;
}

function checkOptions(op: string, o: LossOptions): { sum: boolean; scale: number } {
  const r = o.reduction ?? "mean";
  if (r !== "mean" && r !== "sum")
    throw new InputError(`${op}: reduction must be "mean" or "sum", got ${JSON.stringify(r)}`);
  const scale = o.scale ?? 1;
  if (typeof scale !== "number" || !Number.isFinite(scale))
    throw new InputError(`${op}: scale must be a finite number, got ${String(scale)}`);
  return { sum: r === "sum", scale };
}

function f32(t: Tensor, op: string, what: string): Float32Array {
  if (!(t instanceof Tensor) || t.dtype !== "f32")
    throw new ShapeError(`${op}: ${what} must be an f32 tensor, got ${t instanceof Tensor ? t.dtype : typeof t}`);
  return t.data as Float32Array;
}

function sameShape(op: string, x: Tensor, y: Tensor): void {
  if (x.ndim !== y.ndim || x.shape.some((d, i) => d !== y.shape[i]))
    throw new ShapeError(`${op}: input ${fmtShape(x.shape)} and target ${fmtShape(y.shape)} must have the same shape`);
}

/**
 * `F.cross_entropy` over the last axis of `logits [..., C]` with class-index `labels` (i32,
 * `logits.shape` without its last axis), on core's fused `softmaxCrossEntropy` kernel. A label
 * outside `[0, C)` that is not `ignoreIndex` is an InputError naming its position.
 */
export function crossEntropy(logits: Tensor, labels: Tensor, opts: CrossEntropyOptions = {}): LossResult {
  const op = "crossEntropy";
  const { sum, scale } = checkOptions(op, opts);
  f32(logits, op, "logits");
  if (!(labels instanceof Tensor) || labels.dtype !== "i32")
    throw new ShapeError(`${op}: labels must be an i32 tensor of class indices`);
  if (logits.ndim < 1 || labels.ndim !== logits.ndim - 1 || labels.shape.some((d, i) => d !== logits.shape[i]))
    throw new ShapeError(
      `${op}: logits ${fmtShape(logits.shape)} must be labels ${fmtShape(labels.shape)} plus a class axis`,
    );
  const ignore = opts.ignoreIndex ?? -100;
  const eps = opts.labelSmoothing ?? 0;
  if (!Number.isInteger(ignore)) throw new InputError(`${op}: ignoreIndex must be an integer, got ${ignore}`);
  if (!(eps >= 0 && eps <= 1)) throw new InputError(`${op}: labelSmoothing must be in [0, 1], got ${eps}`);
  const C = logits.shape[logits.ndim - 1]!;
  const rows = labels.size;
  const rt = sharedRuntime(opts.runtime);
  return scratch(rt, () => {
    const px = putF32(rt, logits, "logits");
    const pl = rt.heap.put(labels.data as Int32Array);
    const dl = rt.heap.allocF32(Math.max(1, logits.size));
    const lossOut = rt.heap.allocF32(1);
    const bad = rows ? rt.k.softmaxCrossEntropy(px, dl, C, rows, C, pl, ignore, eps, sum ? 1 : 0, scale, lossOut) : -1;
    if (bad >= 0) {
      throw new InputError(
        `${op}: label ${labels.data[bad]} at position ${bad} is outside [0, ${C}) (classes) and is not ignoreIndex ${ignore}`,
      );
    }
    const loss = rows ? rt.heap.f32(lossOut, 1)[0]! : sum ? 0 : Number.NaN;
    return { loss, grad: readF32(rt, dl, logits.shape) };
  });
}

/** `F.mse_loss(input, target)`: `(x − y)²`, mean or sum; grad `2·(x − y)` (÷ n for the mean). */
export function mseLoss(input: Tensor, target: Tensor, opts: LossOptions = {}): LossResult {
  const op = "mseLoss";
  const { sum, scale } = checkOptions(op, opts);
  const x = f32(input, op, "input");
  const y = f32(target, op, "target");
  sameShape(op, input, target);
  const n = x.length;
  const c = sum ? 1 : 1 / n;
  const g = new Float32Array(n);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i]! - y[i]!;
    loss += d * d;
    g[i] = 2 * d * c * scale;
  }
  return { loss: sum ? loss : loss / n, grad: new Tensor(g, input.shape, "f32") };
}

/**
 * `F.binary_cross_entropy(p, y)` on probabilities `p` in [0, 1] (an InputError naming the first
 * entry outside): `−(y·log p + (1 − y)·log(1 − p))` with each log clamped at −100 (as PyTorch);
 * grad `(p − y) / max(p·(1 − p), 1e-12)` (÷ n for the mean).
 */
export function binaryCrossEntropy(input: Tensor, target: Tensor, opts: LossOptions = {}): LossResult {
  const op = "binaryCrossEntropy";
  const { sum, scale } = checkOptions(op, opts);
  const p = f32(input, op, "input");
  const y = f32(target, op, "target");
  sameShape(op, input, target);
  const n = p.length;
  const c = (sum ? 1 : 1 / n) * scale;
  const g = new Float32Array(n);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const pi = p[i]!;
    if (!(pi >= 0 && pi <= 1))
      throw new InputError(
        `${op}: input[${i}] = ${pi} is not a probability in [0, 1] (use the WithLogits form on logits)`,
      );
    const yi = y[i]!;
    loss -= yi * Math.max(Math.log(pi), -100) + (1 - yi) * Math.max(Math.log(1 - pi), -100);
    g[i] = ((pi - yi) / Math.max(pi * (1 - pi), 1e-12)) * c;
  }
  return { loss: sum ? loss : loss / n, grad: new Tensor(g, input.shape, "f32") };
}

/**
 * `F.binary_cross_entropy_with_logits(x, y)`: `max(x, 0) − x·y + log(1 + e^−|x|)` (stable for any
 * x); grad `σ(x) − y` (÷ n for the mean).
 */
export function binaryCrossEntropyWithLogits(input: Tensor, target: Tensor, opts: LossOptions = {}): LossResult {
  const op = "binaryCrossEntropyWithLogits";
  const { sum, scale } = checkOptions(op, opts);
  const x = f32(input, op, "input");
  const y = f32(target, op, "target");
  sameShape(op, input, target);
  const n = x.length;
  const c = (sum ? 1 : 1 / n) * scale;
  const g = new Float32Array(n);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[i]!;
    const yi = y[i]!;
    loss += Math.max(xi, 0) - xi * yi + Math.log1p(Math.exp(-Math.abs(xi)));
    const s = xi >= 0 ? 1 / (1 + Math.exp(-xi)) : Math.exp(xi) / (1 + Math.exp(xi));
    g[i] = (s - yi) * c;
  }
  return { loss: sum ? loss : loss / n, grad: new Tensor(g, input.shape, "f32") };
}
