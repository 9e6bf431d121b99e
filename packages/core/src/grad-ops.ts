/**
 * Tensor-level backward ops: the gradients of the ops in ops.ts, PyTorch semantics, each run on
 * the backward kernels (kernels.ts `BackwardKernels`) of `defaultRuntime()`. Each takes the
 * upstream gradient first, then what the forward saw (and saved), and returns fresh gradient
 * tensors. Names follow the forward (`layerNorm` → `layerNormBackward`); PyTorch's fused
 * `cross_entropy` is `softmaxCrossEntropy` (loss and dlogits in one pass).
 */
import { InputError, ShapeError } from "./errors.js";
import { Act } from "./kernels.js";
import { transpose } from "./ops.js";
import { defaultRuntime, type Runtime } from "./runtime.js";
import { formatShape as fmt, type Shape, shapeSize, Tensor } from "./tensor.js";

function needF32(t: Tensor, op: string, name: string): Tensor<"f32"> {
  if (t.dtype !== "f32") throw new ShapeError(`${op}: ${name} must be f32, got ${t.dtype}`);
  return t as Tensor<"f32">;
}

function sameShape(a: Tensor, b: Tensor, op: string, an: string, bn: string): void {
  if (a.ndim !== b.ndim || a.shape.some((v, i) => v !== b.shape[i]))
    throw new ShapeError(`${op}: ${an} ${fmt(a.shape)} and ${bn} ${fmt(b.shape)} must have the same shape`);
}

function scratch<T>(rt: Runtime, fn: (put: (d: Float32Array | Int32Array | Uint8Array) => number) => T): T {
  const mark = rt.heap.mark();
  try {
    return fn((d) => rt.heap.put(d));
  } finally {
    rt.heap.release(mark);
  }
}

function read(rt: Runtime, ptr: number, shape: Shape): Tensor<"f32"> {
  return new Tensor(rt.heap.f32(ptr, shapeSize(shape)).slice(), shape, "f32");
}

// ---------------------------------------------------------------------------------------------
// activations

function actBackward(act: number, op: string, dy: Tensor, src: Tensor, srcName: string): Tensor<"f32"> {
  const g = needF32(dy, op, "dy");
  const s = needF32(src, op, srcName);
  sameShape(g, s, op, "dy", srcName);
  if (g.size === 0) return Tensor.zeros(g.shape);
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const pg = put(g.data);
    const ps = put(s.data);
    const dx = rt.heap.allocF32(g.size);
    rt.k.unaryBackward(dx, pg, ps, g.size, act);
    return read(rt, dx, g.shape);
  });
}

/** Gradient of `relu` from its input x: dy where x > 0, else 0 (PyTorch `threshold_backward`). */
export const reluBackward = (dy: Tensor, x: Tensor) => actBackward(Act.relu, "reluBackward", dy, x, "x");
/** Gradient of `gelu` (`approximate` "none": erf form) or `geluTanh` ("tanh") from its input x. */
export const geluBackward = (dy: Tensor, x: Tensor, approximate: "none" | "tanh" = "none") =>
  actBackward(approximate === "tanh" ? Act.geluTanh : Act.gelu, "geluBackward", dy, x, "x");
/** Gradient of `silu` from its input x: dy·σ(x)·(1 + x·(1 − σ(x))). */
export const siluBackward = (dy: Tensor, x: Tensor) => actBackward(Act.silu, "siluBackward", dy, x, "x");
/** Gradient of `tanh` from its output y: dy·(1 − y²). */
export const tanhBackward = (dy: Tensor, y: Tensor) => actBackward(Act.tanh, "tanhBackward", dy, y, "y");
/** Gradient of `sigmoid` from its output y: dy·y·(1 − y). */
export const sigmoidBackward = (dy: Tensor, y: Tensor) => actBackward(Act.sigmoid, "sigmoidBackward", dy, y, "y");

// ---------------------------------------------------------------------------------------------
// norms, softmax

/**
 * Gradients of `layerNorm(x, weight, bias, eps)` over the last dim: `dx` and, when the forward had
 * them, `dweight` and `dbias` (summed over all rows). Statistics are recomputed from x.
 */
export function layerNormBackward(
  dy: Tensor,
  x: Tensor,
  weight?: Tensor,
  bias?: Tensor,
  eps = 1e-5,
): { dx: Tensor<"f32">; dweight?: Tensor<"f32">; dbias?: Tensor<"f32"> } {
  const op = "layerNormBackward";
  const g = needF32(dy, op, "dy");
  const t = needF32(x, op, "x");
  sameShape(g, t, op, "dy", "x");
  const d = t.shape[t.ndim - 1] ?? 1;
  for (const [p, name] of [
    [weight, "weight"],
    [bias, "bias"],
  ] as const) {
    if (p && (p.size !== d || p.dtype !== "f32"))
      throw new ShapeError(`${op}: ${name} must be f32 [${d}], got ${p.dtype} ${fmt(p.shape)}`);
  }
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const rows = d === 0 ? 0 : t.size / d;
    const px = put(t.data);
    const pg = put(g.data);
    const pw = weight ? put(weight.data as Float32Array) : 0;
    const dx = rt.heap.allocF32(t.size);
    const dw = rt.heap.allocF32(d);
    const db = rt.heap.allocF32(d);
    rt.k.layerNormBackward(dx, weight ? dw : 0, bias ? db : 0, pg, px, pw, 0, 0, rows, d, eps);
    return {
      dx: read(rt, dx, t.shape),
      dweight: weight ? read(rt, dw, weight.shape) : undefined,
      dbias: bias ? read(rt, db, bias.shape) : undefined,
    };
  });
}

/**
 * Gradients of RMS norm `y = x / √(mean(x²) + eps) ⊙ weight` over the last dim (Llama's
 * `LlamaRMSNorm`): `dx` and, with a weight, `dweight`.
 */
export function rmsNormBackward(
  dy: Tensor,
  x: Tensor,
  weight?: Tensor,
  eps = 1e-6,
): { dx: Tensor<"f32">; dweight?: Tensor<"f32"> } {
  const op = "rmsNormBackward";
  const g = needF32(dy, op, "dy");
  const t = needF32(x, op, "x");
  sameShape(g, t, op, "dy", "x");
  const d = t.shape[t.ndim - 1] ?? 1;
  if (weight && (weight.size !== d || weight.dtype !== "f32"))
    throw new ShapeError(`${op}: weight must be f32 [${d}], got ${weight.dtype} ${fmt(weight.shape)}`);
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const rows = d === 0 ? 0 : t.size / d;
    const px = put(t.data);
    const pg = put(g.data);
    const pw = weight ? put(weight.data as Float32Array) : 0;
    const dx = rt.heap.allocF32(t.size);
    const dw = rt.heap.allocF32(d);
    rt.k.rmsNormBackward(dx, weight ? dw : 0, pg, px, pw, 0, rows, d, eps);
    return { dx: read(rt, dx, t.shape), dweight: weight ? read(rt, dw, weight.shape) : undefined };
  });
}

/** Gradient of `softmax(x, dim)` from its output y: `y ⊙ (dy − Σ_dim dy ⊙ y)`. */
export function softmaxBackward(dy: Tensor, y: Tensor, dim = -1): Tensor<"f32"> {
  const op = "softmaxBackward";
  const g = needF32(dy, op, "dy");
  const o = needF32(y, op, "y");
  sameShape(g, o, op, "dy", "y");
  if (o.ndim === 0) return Tensor.zeros([]);
  const a = o.axis(dim);
  if (a !== o.ndim - 1) return transpose(softmaxBackward(transpose(g, a, -1), transpose(o, a, -1)), a, -1);
  const cols = o.shape[o.ndim - 1]!;
  if (o.size === 0) return Tensor.zeros(o.shape);
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const pg = put(g.data);
    const py = put(o.data);
    const dx = rt.heap.allocF32(o.size);
    rt.k.softmaxBackward(dx, pg, py, o.size / cols, cols, cols);
    return read(rt, dx, o.shape);
  });
}

// ---------------------------------------------------------------------------------------------
// embedding, linear, patch convolution

/**
 * Gradient of `embedding(table, ids)` w.r.t. the table `[vocab, D]`: rows of dy `[..., D]`
 * scatter-added at their ids (repeated ids accumulate; `paddingIdx` rows get nothing, as
 * `nn.Embedding(padding_idx)`). With `into` (f32 `[vocab, D]`) the rows are added to it in place and
 * it is returned: a tied weight then gets the sum of both uses.
 */
export function embeddingBackward(
  dy: Tensor,
  ids: Tensor,
  vocab: number,
  opts: { paddingIdx?: number; into?: Tensor } = {},
): Tensor<"f32"> {
  const op = "embeddingBackward";
  const g = needF32(dy, op, "dy");
  if (ids.dtype !== "i32") throw new ShapeError(`${op}: ids must be i32, got ${ids.dtype}`);
  if (!Number.isInteger(vocab) || vocab < 0)
    throw new InputError(`${op}: vocab must be a non-negative integer, got ${vocab}`);
  const D = g.shape[g.ndim - 1] ?? 0;
  if (g.ndim !== ids.ndim + 1 || ids.shape.some((v, i) => v !== g.shape[i]))
    throw new ShapeError(
      `${op}: dy must be [${[...ids.shape, "D"].join(", ")}] for ids ${fmt(ids.shape)}, got ${fmt(g.shape)}`,
    );
  let pad = opts.paddingIdx ?? -1;
  if (opts.paddingIdx !== undefined) {
    if (!Number.isInteger(pad) || pad < -vocab || pad >= vocab)
      throw new InputError(`${op}: paddingIdx ${pad} is outside [−${vocab}, ${vocab})`);
    if (pad < 0) pad += vocab;
  }
  const into = opts.into ? needF32(opts.into, op, "into") : undefined;
  if (into && (into.ndim !== 2 || into.shape[0] !== vocab || into.shape[1] !== D))
    throw new ShapeError(`${op}: into must be [${vocab}, ${D}], got ${fmt(into.shape)}`);
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const dW = into ? put(into.data) : rt.heap.allocF32(vocab * D);
    const bad = rt.k.embeddingBackward(dW, vocab, D, put(ids.data as Int32Array), ids.size, put(g.data), pad);
    if (bad >= 0) throw new InputError(`${op}: id ${ids.data[bad]} at position ${bad} is outside [0, ${vocab})`);
    if (!into) return read(rt, dW, [vocab, D]);
    into.data.set(rt.heap.f32(dW, vocab * D));
    return into;
  });
}

/**
 * Gradients of `linear(x, weight, bias)` (`y = x·Wᵀ + b`, x `[..., in]`, W `[out, in]`):
 * `dx = dy·W`, `dweight = dyᵀ·x` and `dbias = Σ_rows dy` (when `withBias`), by GEMM with transposes.
 */
export function linearBackward(
  dy: Tensor,
  x: Tensor,
  weight: Tensor,
  withBias = true,
): { dx: Tensor<"f32">; dweight: Tensor<"f32">; dbias?: Tensor<"f32"> } {
  const op = "linearBackward";
  const g = needF32(dy, op, "dy");
  const t = needF32(x, op, "x");
  const w = needF32(weight, op, "weight");
  if (w.ndim !== 2) throw new ShapeError(`${op}: weight must be [out, in], got ${fmt(w.shape)}`);
  const [O, In] = w.shape as [number, number];
  if (t.shape[t.ndim - 1] !== In)
    throw new ShapeError(`${op}: x ${fmt(t.shape)} must end in ${In} (weight ${fmt(w.shape)})`);
  const yShape = [...t.shape.slice(0, -1), O];
  if (g.ndim !== yShape.length || g.shape.some((v, i) => v !== yShape[i]))
    throw new ShapeError(`${op}: dy must be ${fmt(yShape)}, got ${fmt(g.shape)}`);
  const M = In === 0 ? shapeSize(t.shape.slice(0, -1)) : t.size / In;
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const px = put(t.data);
    const pw = put(w.data);
    const pg = put(g.data);
    const dx = rt.heap.allocF32(t.size);
    const dw = rt.heap.allocF32(O * In);
    const db = rt.heap.allocF32(O);
    if (M > 0 && O > 0 && In > 0) {
      rt.k.gemm(M, In, O, pg, O, 0, pw, In, 0, dx, In, 0, 1, 0, Act.none); // dx [M, in] = dy [M, out] · W
      rt.k.gemm(O, In, M, pg, O, 1, px, In, 0, dw, In, 0, 1, 0, Act.none); // dW [out, in] = dyᵀ · x
    }
    if (withBias && M > 0) rt.k.biasGrad(db, pg, M, O, O);
    return {
      dx: read(rt, dx, t.shape),
      dweight: read(rt, dw, w.shape),
      dbias: withBias ? read(rt, db, [O]) : undefined,
    };
  });
}

/**
 * Gradients of `conv2dPatch(x, weight, bias, k)` (stride = kernel = k, the ViT patch embedding):
 * dy `[B, O, gh, gw]` → `dx [B, C, H, W]` (0 for pixels past the last whole patch),
 * `dweight [O, C, k, k]`, `dbias [O]` (when `withBias`). Per image: dY `[P, O]`,
 * dW += dYᵀ·im2col(x), db += Σ_P dY, dcols = dY·W, dx = col2im(dcols).
 */
export function conv2dPatchBackward(
  dy: Tensor,
  x: Tensor,
  weight: Tensor,
  k: number,
  withBias = true,
): { dx: Tensor<"f32">; dweight: Tensor<"f32">; dbias?: Tensor<"f32"> } {
  const op = "conv2dPatchBackward";
  const g = needF32(dy, op, "dy");
  const t = needF32(x, op, "x");
  const w = needF32(weight, op, "weight");
  if (t.ndim !== 4) throw new ShapeError(`${op}: x must be [B, C, H, W], got ${fmt(t.shape)}`);
  const [B, C, H, W] = t.shape as [number, number, number, number];
  if (!Number.isInteger(k) || k < 1) throw new ShapeError(`${op}: kernel size must be a positive integer, got ${k}`);
  if (w.ndim !== 4 || w.shape[1] !== C || w.shape[2] !== k || w.shape[3] !== k)
    throw new ShapeError(`${op}: weight must be [O, ${C}, ${k}, ${k}], got ${fmt(w.shape)}`);
  const O = w.shape[0]!;
  const gh = Math.floor(H / k);
  const gw = Math.floor(W / k);
  const P = gh * gw;
  const ck = C * k * k;
  const yShape = [B, O, gh, gw];
  if (g.ndim !== 4 || g.shape.some((v, i) => v !== yShape[i]))
    throw new ShapeError(`${op}: dy must be ${fmt(yShape)}, got ${fmt(g.shape)}`);
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const px = put(t.data);
    const pw = put(w.data);
    const pg = put(g.data);
    const cols = rt.heap.allocF32(P * ck);
    const dY = rt.heap.allocF32(P * O);
    const dcols = rt.heap.allocF32(P * ck);
    const dx = rt.heap.allocF32(t.size);
    const dw = rt.heap.allocF32(O * ck);
    const db = rt.heap.allocF32(O);
    if (P > 0 && O > 0) {
      for (let b = 0; b < B; b++) {
        rt.k.transpose2d(pg + 4 * b * O * P, P, dY, O, O, P); // [O, P] → [P, O]
        rt.k.im2colPatch(px + 4 * b * C * H * W, C, H, W, k, cols);
        rt.k.gemm(O, ck, P, dY, O, 1, cols, ck, 0, dw, ck, 0, 1, 1, Act.none); // dW [O, ck] += dYᵀ·cols
        if (withBias) rt.k.biasGrad(db, dY, P, O, O);
        rt.k.gemm(P, ck, O, dY, O, 0, pw, ck, 0, dcols, ck, 0, 1, 0, Act.none); // dcols [P, ck] = dY·W
        rt.k.im2colPatchBackward(dx + 4 * b * C * H * W, dcols, C, H, W, k);
      }
    }
    return {
      dx: read(rt, dx, t.shape),
      dweight: read(rt, dw, w.shape),
      dbias: withBias ? read(rt, db, [O]) : undefined,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// cross-entropy

export interface CrossEntropyOptions {
  /** Target value whose rows count for nothing (PyTorch default −100). */
  ignoreIndex?: number;
  /** ε in [0, 1]: the target distribution is (1 − ε)·onehot + ε/V (default 0). */
  labelSmoothing?: number;
  /** "mean" over non-ignored rows (default) or "sum". */
  reduction?: "mean" | "sum";
  /** Upstream gradient of the loss (default 1); dlogits is scaled by it. */
  dloss?: number;
  /** Compute dlogits (default true); false gives the loss only. */
  grad?: boolean;
}

/**
 * Fused softmax + cross-entropy over the last dim of `logits` (`[..., V]`) with class-index
 * `targets` (i32 `[...]`): PyTorch `F.cross_entropy(logits, targets, ignore_index,
 * label_smoothing, reduction)` and its gradient in one pass. Mean over zero counted rows is NaN
 * (as PyTorch) with a zero gradient.
 * @example
 * ```ts
 * const { loss, dlogits } = softmaxCrossEntropy(logits, labels, { ignoreIndex: -100, labelSmoothing: 0.1 });
 * ```
 */
export function softmaxCrossEntropy(
  logits: Tensor,
  targets: Tensor,
  opts: CrossEntropyOptions = {},
): { loss: number; dlogits?: Tensor<"f32"> } {
  const op = "softmaxCrossEntropy";
  const x = needF32(logits, op, "logits");
  if (targets.dtype !== "i32") throw new ShapeError(`${op}: targets must be i32, got ${targets.dtype}`);
  if (x.ndim < 1 || targets.ndim !== x.ndim - 1 || targets.shape.some((v, i) => v !== x.shape[i]))
    throw new ShapeError(`${op}: logits ${fmt(x.shape)} must be targets ${fmt(targets.shape)} plus a class dim`);
  const V = x.shape[x.ndim - 1]!;
  const ignore = opts.ignoreIndex ?? -100;
  const eps = opts.labelSmoothing ?? 0;
  const reduction = opts.reduction ?? "mean";
  const dloss = opts.dloss ?? 1;
  if (!Number.isInteger(ignore)) throw new InputError(`${op}: ignoreIndex must be an integer, got ${ignore}`);
  if (!(eps >= 0 && eps <= 1)) throw new InputError(`${op}: labelSmoothing must be in [0, 1], got ${eps}`);
  if (reduction !== "mean" && reduction !== "sum")
    throw new InputError(`${op}: reduction must be "mean" or "sum", got ${JSON.stringify(reduction)}`);
  if (!Number.isFinite(dloss)) throw new InputError(`${op}: dloss must be finite, got ${dloss}`);
  const rows = targets.size;
  const grad = opts.grad ?? true;
  const rt = defaultRuntime();
  return scratch(rt, (put) => {
    const px = put(x.data);
    const pt = put(targets.data as Int32Array);
    const dl = grad ? rt.heap.allocF32(x.size) : 0;
    const lossOut = rt.heap.allocF32(1);
    const bad = rt.k.softmaxCrossEntropy(
      px,
      dl,
      V,
      rows,
      V,
      pt,
      ignore,
      eps,
      reduction === "mean" ? 0 : 1,
      dloss,
      lossOut,
    );
    if (bad >= 0)
      throw new InputError(
        `${op}: target ${targets.data[bad]} at position ${bad} is outside [0, ${V}) and is not ignoreIndex ${ignore}`,
      );
    const loss = rt.heap.f32(lossOut, 1)[0]!;
    return { loss, dlogits: grad ? read(rt, dl, x.shape) : undefined };
  });
}
