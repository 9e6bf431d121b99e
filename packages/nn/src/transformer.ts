/**
 * `torch.nn.TransformerEncoderLayer`, `TransformerDecoderLayer`, their stacks and `Transformer`
 * (batch first, inference: dropout is the identity). State-dict names are PyTorch's.
 *
 *   SA(x) = MHA(x, x, x),  CA(x, m) = MHA(x, m, m),  FF(x) = linear2(act(linear1(x)))
 *   post-norm:  x = norm1(x + SA(x));  [x = norm2(x + CA(x, m));]  x = normN(x + FF(x))
 *   pre-norm:   x = x + SA(norm1(x));  [x = x + CA(norm2(x), m);]  x = x + FF(normN(x))
 *
 * Residual additions are fused into the output projections (GEMM with beta = 1 into a copy of x),
 * and the activation into `linear1`'s GEMM.
 *
 * Training mode (`train()`): the tensor-level `forward` composes the sub-modules' training forwards
 * (each keeps its own input) in the order above, and `backward` walks them in reverse, adding the
 * residual branches' gradients; the pointer forms (`run`, `step`) are the inference path only.
 */
import { type ActCode, ConfigError, type Runtime, ShapeError, Tensor } from "@wasmformer/core";
import { type ActivationName, activationCode, activationGrad, applyActivation } from "./activations.js";
import { type AttnMaskPtrs, type MhaGrads, MultiheadAttention, NO_MASK, prepareMasks } from "./attention.js";
import { LayerNorm } from "./layer-norm.js";
import { Linear } from "./linear.js";
import { Module } from "./module.js";
import type { WeightScope } from "./state-dict.js";
import { fmtShape, type ModuleLife, putF32, readF32, scratch } from "./util.js";

export interface TransformerLayerOptions {
  dModel: number;
  nhead: number;
  /** default 2048 (PyTorch) */
  dimFeedforward?: number;
  /** `"relu"` (default), `"gelu"` (exact) or another nn activation (`"gelu_tanh"`, `"silu"`, …) */
  activation?: ActivationName;
  /** default 1e-5 */
  layerNormEps?: number;
  /** pre-norm (default false: post-norm) */
  normFirst?: boolean;
  /** biases of the linear layers and attention (default true) */
  bias?: boolean;
}

function resolve(o: TransformerLayerOptions) {
  const act = activationCode(o.activation ?? "relu"); // ConfigError "activation" for an unknown name
  const F = o.dimFeedforward ?? 2048;
  if (!Number.isInteger(F) || F < 1) throw new ConfigError(`expected a positive integer, got ${F}`, "dim_feedforward");
  return {
    F,
    act,
    eps: o.layerNormEps ?? 1e-5,
    normFirst: o.normFirst ?? false,
    bias: o.bias ?? true,
  };
}

const copyRows = (rt: Runtime, x: number, y: number, rows: number, d: number) => rt.k.copy2d(x, d, y, d, rows, d);

/** Check a `[B, T, d]` input. */
function checkSeq(t: Tensor, d: number, what: string, B?: number): void {
  if (t.ndim !== 3 || t.shape[2] !== d || (B !== undefined && t.shape[0] !== B)) {
    throw new ShapeError(`${what} has shape ${fmtShape(t.shape)}, expected [${B ?? "B"}, *, ${d}]`);
  }
}

/** `a + b` (same shapes), a new tensor. */
function add(a: Tensor, b: Tensor): Tensor<"f32"> {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! + y[i]!;
  return new Tensor(out, a.shape, "f32");
}

/** The self-attention input's gradient: query, key and value were one tensor. */
const selfGrad = (g: MhaGrads) => add(add(g.dQuery, g.dKey), g.dValue);

/** Training forward of the feed-forward block `linear2(act(linear1(x)))`; keeps the pre-activation. */
function ffForward(rt: Runtime, l1: Linear, l2: Linear, act: ActCode, x: Tensor, pre: Tensor<"f32">[]): Tensor<"f32"> {
  const h = l1.forward(x);
  pre.push(h);
  return l2.forward(applyActivation(rt, h, act));
}

function ffBackward(rt: Runtime, l1: Linear, l2: Linear, act: ActCode, dy: Tensor, h: Tensor<"f32">): Tensor<"f32"> {
  return l1.backward(activationGrad(rt, l2.backward(dy), h, act));
}

/** The feed-forward block on `rows` rows: `out += linear2(act(linear1(x)))`. */
function feedForward(rt: Runtime, l1: Linear, l2: Linear, act: ActCode, x: number, rows: number, out: number): void {
  const m = rt.heap.mark();
  const h = rt.heap.allocF32(rows * l1.outFeatures);
  l1.run(x, rows, h, act);
  l2.run(h, rows, out, 0, 1);
  rt.heap.release(m);
}

// -------------------------------------------------------------------------------------------------

export class TransformerEncoderLayer extends Module {
  readonly rt: Runtime;
  protected readonly life: ModuleLife;
  /** training: the feed-forward pre-activations */
  private readonly pre: Tensor<"f32">[] = [];
  readonly dModel: number;
  readonly selfAttn: MultiheadAttention;
  readonly linear1: Linear;
  readonly linear2: Linear;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  private readonly act: ActCode;
  readonly normFirst: boolean;

  constructor(scope: WeightScope, opts: TransformerLayerOptions) {
    const r = resolve(opts);
    super();
    this.rt = scope.rt;
    this.life = scope.life;
    this.dModel = opts.dModel;
    this.selfAttn = new MultiheadAttention(scope.pp("self_attn"), {
      embedDim: opts.dModel,
      numHeads: opts.nhead,
      bias: r.bias,
    });
    this.linear1 = new Linear(scope.pp("linear1"), opts.dModel, r.F, { bias: r.bias });
    this.linear2 = new Linear(scope.pp("linear2"), r.F, opts.dModel, { bias: r.bias });
    this.norm1 = new LayerNorm(scope.pp("norm1"), opts.dModel, r.eps);
    this.norm2 = new LayerNorm(scope.pp("norm2"), opts.dModel, r.eps);
    this.act = r.act;
    this.normFirst = r.normFirst;
  }

  /**
   * Pointer form: `out [B, S, d]` (must not alias `x`); when `weights` is given, the self-attention
   * weights `[B, H, S, S]` are written there.
   */
  run(x: number, B: number, S: number, masks: AttnMaskPtrs, out: number, weights = 0): void {
    this.life.check("TransformerEncoderLayer");
    const { rt, dModel: d } = this;
    const rows = B * S;
    const w = { accumulate: true, weights: weights || undefined };
    copyRows(rt, x, out, rows, d);
    if (!this.normFirst) {
      this.selfAttn.run(x, x, x, B, S, S, masks, out, w);
      this.norm1.run(out, rows, out);
      const m = rt.heap.mark();
      const t = rt.heap.allocF32(rows * d);
      copyRows(rt, out, t, rows, d);
      feedForward(rt, this.linear1, this.linear2, this.act, t, rows, out);
      rt.heap.release(m);
      this.norm2.run(out, rows, out);
    } else {
      const m = rt.heap.mark();
      const t = rt.heap.allocF32(rows * d);
      this.norm1.run(x, rows, t);
      this.selfAttn.run(t, t, t, B, S, S, masks, out, w);
      this.norm2.run(out, rows, t);
      feedForward(rt, this.linear1, this.linear2, this.act, t, rows, out);
      rt.heap.release(m);
    }
  }

  /**
   * `src [B, S, d]` → `[B, S, d]`; with `needWeights: true`, `{ output, weights }` where `weights` are
   * the self-attention weights `[B, H, S, S]`.
   */
  forward(src: Tensor, opts?: EncoderLayerOptions & { needWeights?: false }): Tensor<"f32">;
  forward(
    src: Tensor,
    opts: EncoderLayerOptions & { needWeights: true },
  ): { output: Tensor<"f32">; weights: Tensor<"f32"> };
  forward(
    src: Tensor,
    opts: EncoderLayerOptions & { needWeights?: boolean } = {},
  ): Tensor<"f32"> | { output: Tensor<"f32">; weights: Tensor<"f32"> } {
    this.life.check("TransformerEncoderLayer");
    checkSeq(src, this.dModel, "src");
    const [B, S] = src.shape;
    const H = this.selfAttn.numHeads;
    if (this.training) {
      const m = { attnMask: opts.srcMask, keyPaddingMask: opts.srcKeyPaddingMask, isCausal: opts.isCausal };
      return this.trainForward(src, m, !!opts.needWeights);
    }
    return scratch(this.rt, () => {
      const masks = prepareMasks(
        this.rt,
        { attnMask: opts.srcMask, keyPaddingMask: opts.srcKeyPaddingMask, isCausal: opts.isCausal },
        B,
        this.selfAttn.numHeads,
        S,
        S,
        { attnMask: "src_mask", keyPaddingMask: "src_key_padding_mask" },
      );
      const x = putF32(this.rt, src, "src");
      const out = this.rt.heap.allocF32(B * S * this.dModel);
      const w = opts.needWeights ? this.rt.heap.allocF32(B * H * S * S) : 0;
      this.run(x, B, S, masks, out, w);
      const output = readF32(this.rt, out, src.shape);
      return w ? { output, weights: readF32(this.rt, w, [B, H, S, S]) } : output;
    });
  }

  protected override children(): Module[] {
    return [this.selfAttn, this.linear1, this.linear2, this.norm1, this.norm2];
  }

  protected override onMode(): void {
    this.pre.length = 0;
  }

  private trainForward(
    x: Tensor,
    m: { attnMask?: Tensor; keyPaddingMask?: Tensor; isCausal?: boolean },
    needWeights: boolean,
  ): Tensor<"f32"> | { output: Tensor<"f32">; weights: Tensor<"f32"> } {
    const { rt, act } = this;
    const sa = (t: Tensor) => this.selfAttn.forward(t, t, t, { ...m, needWeights });
    let out: Tensor<"f32">;
    let w: Tensor<"f32"> | undefined;
    if (!this.normFirst) {
      const a = sa(x);
      w = a.weights;
      const y1 = this.norm1.forward(add(x, a.output));
      out = this.norm2.forward(add(y1, ffForward(rt, this.linear1, this.linear2, act, y1, this.pre)));
    } else {
      const a = sa(this.norm1.forward(x));
      w = a.weights;
      const h1 = add(x, a.output);
      out = add(h1, ffForward(rt, this.linear1, this.linear2, act, this.norm2.forward(h1), this.pre));
    }
    return needWeights ? { output: out, weights: w! } : out;
  }

  /** Backward of the latest training forward: `dy [B, S, d]` → `dsrc`. */
  backward(dy: Tensor): Tensor<"f32"> {
    const h = this.popRecord(this.pre, "TransformerEncoderLayer");
    const { rt, act } = this;
    if (!this.normFirst) {
      const dh2 = this.norm2.backward(dy);
      const dy1 = add(dh2, ffBackward(rt, this.linear1, this.linear2, act, dh2, h));
      const dh1 = this.norm1.backward(dy1);
      return add(dh1, selfGrad(this.selfAttn.backward(dh1)));
    }
    const dh1 = add(dy, this.norm2.backward(ffBackward(rt, this.linear1, this.linear2, act, dy, h)));
    return add(dh1, this.norm1.backward(selfGrad(this.selfAttn.backward(dh1))));
  }

  /**
   * Free the wasm memory of the module tree this TransformerEncoderLayer was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.life.dispose();
  }
}

export interface EncoderLayerOptions {
  srcMask?: Tensor | undefined;
  srcKeyPaddingMask?: Tensor | undefined;
  isCausal?: boolean | undefined;
}

/** A decoder layer's KV cache (heap pointers): self-attention keys/values `[B, maxLen, d]`, the memory's `[B, S, d]`. */
export interface DecoderLayerCache {
  k: number;
  v: number;
  ck: number;
  cv: number;
  maxLen: number;
  S: number;
}

/**
 * Reorder the self-attention caches of beams: new row `i` takes old row `parents[i]` (positions
 * `0..len−1`). Uses `tmp`, room for `parents.length · maxLen · d` floats.
 */
export function reorderCaches(
  rt: Runtime,
  caches: readonly DecoderLayerCache[],
  parents: readonly number[],
  len: number,
  d: number,
  tmp: number,
): void {
  for (const c of caches) {
    for (const buf of [c.k, c.v]) {
      const stride = c.maxLen * d * 4;
      // a beam that continues itself keeps its rows where they are (and no other beam overwrites them)
      for (let i = 0; i < parents.length; i++)
        if (parents[i] !== i) rt.k.copy2d(buf + parents[i] * stride, d, tmp + i * stride, d, len, d);
      for (let i = 0; i < parents.length; i++)
        if (parents[i] !== i) rt.k.copy2d(tmp + i * stride, d, buf + i * stride, d, len, d);
    }
  }
}

/** Attention weights of a decoder layer: self-attention `[B, H, T, T]`, cross-attention `[B, H, T, S]`. */
export interface DecoderWeights {
  selfAttn: Tensor<"f32">;
  crossAttn: Tensor<"f32">;
}

// -------------------------------------------------------------------------------------------------

export interface DecoderMaskPtrs {
  tgt: AttnMaskPtrs;
  memory: AttnMaskPtrs;
}

export class TransformerDecoderLayer extends Module {
  readonly rt: Runtime;
  protected readonly life: ModuleLife;
  /** training: the feed-forward pre-activations */
  private readonly pre: Tensor<"f32">[] = [];
  readonly dModel: number;
  readonly selfAttn: MultiheadAttention;
  readonly multiheadAttn: MultiheadAttention;
  readonly linear1: Linear;
  readonly linear2: Linear;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly norm3: LayerNorm;
  private readonly act: ActCode;
  readonly normFirst: boolean;

  constructor(scope: WeightScope, opts: TransformerLayerOptions) {
    const r = resolve(opts);
    super();
    this.rt = scope.rt;
    this.life = scope.life;
    this.dModel = opts.dModel;
    const mha = { embedDim: opts.dModel, numHeads: opts.nhead, bias: r.bias };
    this.selfAttn = new MultiheadAttention(scope.pp("self_attn"), mha);
    this.multiheadAttn = new MultiheadAttention(scope.pp("multihead_attn"), mha);
    this.linear1 = new Linear(scope.pp("linear1"), opts.dModel, r.F, { bias: r.bias });
    this.linear2 = new Linear(scope.pp("linear2"), r.F, opts.dModel, { bias: r.bias });
    this.norm1 = new LayerNorm(scope.pp("norm1"), opts.dModel, r.eps);
    this.norm2 = new LayerNorm(scope.pp("norm2"), opts.dModel, r.eps);
    this.norm3 = new LayerNorm(scope.pp("norm3"), opts.dModel, r.eps);
    this.act = r.act;
    this.normFirst = r.normFirst;
  }

  /**
   * Pointer form: `x [B, T, d]`, `memory [B, S, d]` → `out [B, T, d]` (must not alias x or memory);
   * attention weights are written to `selfWeights [B, H, T, T]` / `crossWeights [B, H, T, S]` when given.
   */
  run(
    x: number,
    memory: number,
    B: number,
    T: number,
    S: number,
    masks: DecoderMaskPtrs,
    out: number,
    selfWeights = 0,
    crossWeights = 0,
  ): void {
    this.life.check("TransformerDecoderLayer");
    const { rt, dModel: d } = this;
    const rows = B * T;
    const m = rt.heap.mark();
    const t = rt.heap.allocF32(rows * d);
    const sw = { accumulate: true, weights: selfWeights || undefined };
    const cw = { accumulate: true, weights: crossWeights || undefined };
    copyRows(rt, x, out, rows, d);
    if (!this.normFirst) {
      this.selfAttn.run(x, x, x, B, T, T, masks.tgt, out, sw);
      this.norm1.run(out, rows, out);
      copyRows(rt, out, t, rows, d);
      this.multiheadAttn.run(t, memory, memory, B, T, S, masks.memory, out, cw);
      this.norm2.run(out, rows, out);
      copyRows(rt, out, t, rows, d);
      feedForward(rt, this.linear1, this.linear2, this.act, t, rows, out);
      this.norm3.run(out, rows, out);
    } else {
      this.norm1.run(x, rows, t);
      this.selfAttn.run(t, t, t, B, T, T, masks.tgt, out, sw);
      this.norm2.run(out, rows, t);
      this.multiheadAttn.run(t, memory, memory, B, T, S, masks.memory, out, cw);
      this.norm3.run(out, rows, t);
      feedForward(rt, this.linear1, this.linear2, this.act, t, rows, out);
    }
    rt.heap.release(m);
  }

  /**
   * A KV cache for incremental decoding of `B` rows of up to `maxLen` positions against
   * `memory [B, S, d]` (its cross-attention keys and values are projected here, once).
   * Allocated in the heap: call inside the caller's scratch.
   */
  createCache(memory: number, B: number, S: number, maxLen: number): DecoderLayerCache {
    this.life.check("TransformerDecoderLayer");
    const heap = this.rt.heap;
    const E = this.dModel;
    const c: DecoderLayerCache = {
      k: heap.allocF32(B * maxLen * E),
      v: heap.allocF32(B * maxLen * E),
      ck: heap.allocF32(B * S * E),
      cv: heap.allocF32(B * S * E),
      maxLen,
      S,
    };
    this.multiheadAttn.projectKV(memory, memory, B * S, c.ck, c.cv);
    return c;
  }

  /**
   * Incremental decoding: the layer's output `out [B, d]` for the token at position `pos` (input
   * `x [B, d]`), attending to the cached positions `0..pos` (this one's keys and values are added
   * to the cache here) and to the memory. Equal to row `pos` of `run` with a causal target mask.
   */
  step(x: number, pos: number, cache: DecoderLayerCache, B: number, memMasks: AttnMaskPtrs, out: number): void {
    this.life.check("TransformerDecoderLayer");
    const { rt, dModel: d } = this;
    const { maxLen, S } = cache;
    const m = rt.heap.mark();
    const t = rt.heap.allocF32(B * d);
    const self = (inp: number) => {
      this.selfAttn.projectKV(inp, inp, B, cache.k + pos * d * 4, cache.v + pos * d * 4, maxLen * d);
      this.selfAttn.attendKV(inp, B, 1, pos + 1, cache.k, cache.v, d, maxLen * d, NO_MASK, out, { accumulate: true });
    };
    const cross = (inp: number) =>
      this.multiheadAttn.attendKV(inp, B, 1, S, cache.ck, cache.cv, d, S * d, memMasks, out, { accumulate: true });
    copyRows(rt, x, out, B, d);
    if (!this.normFirst) {
      self(x);
      this.norm1.run(out, B, out);
      copyRows(rt, out, t, B, d);
      cross(t);
      this.norm2.run(out, B, out);
      copyRows(rt, out, t, B, d);
      feedForward(rt, this.linear1, this.linear2, this.act, t, B, out);
      this.norm3.run(out, B, out);
    } else {
      this.norm1.run(x, B, t);
      self(t);
      this.norm2.run(out, B, t);
      cross(t);
      this.norm3.run(out, B, t);
      feedForward(rt, this.linear1, this.linear2, this.act, t, B, out);
    }
    rt.heap.release(m);
  }

  /**
   * `tgt [B, T, d]`, `memory [B, S, d]` → `[B, T, d]`; with `needWeights: true`,
   * `{ output, weights: { selfAttn [B, H, T, T], crossAttn [B, H, T, S] } }`.
   */
  forward(tgt: Tensor, memory: Tensor, opts?: DecoderMaskInputs & { needWeights?: false }): Tensor<"f32">;
  forward(
    tgt: Tensor,
    memory: Tensor,
    opts: DecoderMaskInputs & { needWeights: true },
  ): { output: Tensor<"f32">; weights: DecoderWeights };
  forward(
    tgt: Tensor,
    memory: Tensor,
    opts: DecoderMaskInputs & { needWeights?: boolean } = {},
  ): Tensor<"f32"> | { output: Tensor<"f32">; weights: DecoderWeights } {
    this.life.check("TransformerDecoderLayer");
    checkSeq(tgt, this.dModel, "tgt");
    checkSeq(memory, this.dModel, "memory", tgt.shape[0]);
    const [B, T] = tgt.shape;
    const S = memory.shape[1];
    const H = this.selfAttn.numHeads;
    if (this.training) return this.trainForward(tgt, memory, opts, !!opts.needWeights);
    return scratch(this.rt, () => {
      const masks = prepareDecoderMasks(this.rt, opts, B, H, T, S);
      const x = putF32(this.rt, tgt, "tgt");
      const mem = putF32(this.rt, memory, "memory");
      const out = this.rt.heap.allocF32(B * T * this.dModel);
      const sw = opts.needWeights ? this.rt.heap.allocF32(B * H * T * T) : 0;
      const cw = opts.needWeights ? this.rt.heap.allocF32(B * H * T * S) : 0;
      this.run(x, mem, B, T, S, masks, out, sw, cw);
      const output = readF32(this.rt, out, tgt.shape);
      if (!opts.needWeights) return output;
      return {
        output,
        weights: { selfAttn: readF32(this.rt, sw, [B, H, T, T]), crossAttn: readF32(this.rt, cw, [B, H, T, S]) },
      };
    });
  }

  protected override children(): Module[] {
    return [this.selfAttn, this.multiheadAttn, this.linear1, this.linear2, this.norm1, this.norm2, this.norm3];
  }

  protected override onMode(): void {
    this.pre.length = 0;
  }

  private trainForward(
    x: Tensor,
    mem: Tensor,
    o: DecoderMaskInputs,
    needWeights: boolean,
  ): Tensor<"f32"> | { output: Tensor<"f32">; weights: DecoderWeights } {
    const { rt, act } = this;
    const sm = { attnMask: o.tgtMask, keyPaddingMask: o.tgtKeyPaddingMask, isCausal: o.tgtIsCausal, needWeights };
    const cm = { attnMask: o.memoryMask, keyPaddingMask: o.memoryKeyPaddingMask, needWeights };
    const sa = (t: Tensor) => this.selfAttn.forward(t, t, t, sm);
    const ca = (t: Tensor) => this.multiheadAttn.forward(t, mem, mem, cm);
    let out: Tensor<"f32">;
    let a: { weights?: Tensor<"f32"> };
    let c: { weights?: Tensor<"f32"> };
    if (!this.normFirst) {
      a = sa(x);
      const y1 = this.norm1.forward(add(x, (a as { output: Tensor }).output));
      c = ca(y1);
      const y2 = this.norm2.forward(add(y1, (c as { output: Tensor }).output));
      out = this.norm3.forward(add(y2, ffForward(rt, this.linear1, this.linear2, act, y2, this.pre)));
    } else {
      const ar = sa(this.norm1.forward(x));
      a = ar;
      const h1 = add(x, ar.output);
      const cr = ca(this.norm2.forward(h1));
      c = cr;
      const h2 = add(h1, cr.output);
      out = add(h2, ffForward(rt, this.linear1, this.linear2, act, this.norm3.forward(h2), this.pre));
    }
    return needWeights ? { output: out, weights: { selfAttn: a.weights!, crossAttn: c.weights! } } : out;
  }

  /** Backward of the latest training forward: `dy [B, T, d]` → `{ dtgt, dmemory }`. */
  backward(dy: Tensor): { dtgt: Tensor<"f32">; dmemory: Tensor<"f32"> } {
    const h = this.popRecord(this.pre, "TransformerDecoderLayer");
    const { rt, act } = this;
    if (!this.normFirst) {
      const dh3 = this.norm3.backward(dy);
      const dy2 = add(dh3, ffBackward(rt, this.linear1, this.linear2, act, dh3, h));
      const dh2 = this.norm2.backward(dy2);
      const cg = this.multiheadAttn.backward(dh2);
      const dh1 = this.norm1.backward(add(dh2, cg.dQuery));
      return { dtgt: add(dh1, selfGrad(this.selfAttn.backward(dh1))), dmemory: add(cg.dKey, cg.dValue) };
    }
    const dh2 = add(dy, this.norm3.backward(ffBackward(rt, this.linear1, this.linear2, act, dy, h)));
    const cg = this.multiheadAttn.backward(dh2);
    const dh1 = add(dh2, this.norm2.backward(cg.dQuery));
    return {
      dtgt: add(dh1, this.norm1.backward(selfGrad(this.selfAttn.backward(dh1)))),
      dmemory: add(cg.dKey, cg.dValue),
    };
  }

  /**
   * Free the wasm memory of the module tree this TransformerDecoderLayer was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.life.dispose();
  }
}

export interface DecoderMaskInputs {
  tgtMask?: Tensor | undefined;
  memoryMask?: Tensor | undefined;
  tgtKeyPaddingMask?: Tensor | undefined;
  memoryKeyPaddingMask?: Tensor | undefined;
  tgtIsCausal?: boolean | undefined;
}

export function prepareDecoderMasks(
  rt: Runtime,
  o: DecoderMaskInputs,
  B: number,
  H: number,
  T: number,
  S: number,
): DecoderMaskPtrs {
  return {
    tgt: prepareMasks(
      rt,
      { attnMask: o.tgtMask, keyPaddingMask: o.tgtKeyPaddingMask, isCausal: o.tgtIsCausal },
      B,
      H,
      T,
      T,
      {
        attnMask: "tgt_mask",
        keyPaddingMask: "tgt_key_padding_mask",
      },
    ),
    memory: prepareMasks(rt, { attnMask: o.memoryMask, keyPaddingMask: o.memoryKeyPaddingMask }, B, H, T, S, {
      attnMask: "memory_mask",
      keyPaddingMask: "memory_key_padding_mask",
    }),
  };
}

// -------------------------------------------------------------------------------------------------
// stacks

export interface StackOptions extends TransformerLayerOptions {
  numLayers: number;
  /** a final LayerNorm `norm.*` after the stack (nn.Transformer always has one) */
  norm?: boolean;
}

/** A stack's layers `layers.{i}.*` (built by `make`) and its optional final `norm.*`. */
function buildStack<L>(
  scope: WeightScope,
  opts: StackOptions,
  make: (s: WeightScope) => L,
): { layers: L[]; norm: LayerNorm | undefined } {
  if (!Number.isInteger(opts.numLayers) || opts.numLayers < 0)
    throw new ConfigError(`expected an integer ≥ 0, got ${opts.numLayers}`, "num_layers");
  const ls = scope.pp("layers");
  // one by one (Array.from({ length }) would allocate all of a huge count first): a count beyond
  // the checkpoint stops at the state dict's MAX_MISSING
  const layers: L[] = [];
  for (let i = 0; i < opts.numLayers; i++) layers.push(make(ls.pp(i)));
  const norm = opts.norm ? new LayerNorm(scope.pp("norm"), opts.dModel, opts.layerNormEps ?? 1e-5) : undefined;
  return { layers, norm };
}

/**
 * Run `n` layers from `x` to `out` (`[rows, d]`; x is never written): `layer(i, src, dst)` runs
 * layer i, ping-ponging through one spare buffer so that the last layer writes `out`; then the
 * final norm in place.
 */
function runStack(
  rt: Runtime,
  n: number,
  norm: LayerNorm | undefined,
  x: number,
  out: number,
  rows: number,
  d: number,
  layer: (i: number, src: number, dst: number) => void,
): void {
  const m = rt.heap.mark();
  const spare = n > 1 ? rt.heap.allocF32(rows * d) : 0;
  let cur = x;
  for (let i = 0; i < n; i++) {
    const dst = (n - 1 - i) % 2 === 0 ? out : spare;
    layer(i, cur, dst);
    cur = dst;
  }
  if (n === 0) copyRows(rt, x, out, rows, d);
  if (norm) norm.run(out, rows, out);
  rt.heap.release(m);
}

/** `torch.nn.TransformerEncoder`: `layers.{i}.*` and an optional final `norm.*`. */
export class TransformerEncoder extends Module {
  readonly rt: Runtime;
  protected readonly life: ModuleLife;
  private readonly saved: true[] = [];
  readonly layers: TransformerEncoderLayer[];
  readonly norm: LayerNorm | undefined;
  readonly dModel: number;
  readonly nhead: number;

  constructor(scope: WeightScope, opts: StackOptions) {
    const stack = buildStack(scope, opts, (s) => new TransformerEncoderLayer(s, opts));
    super();
    this.layers = stack.layers;
    this.norm = stack.norm;
    this.rt = scope.rt;
    this.life = scope.life;
    this.dModel = opts.dModel;
    this.nhead = opts.nhead;
  }

  /** Pointer form: `out [B, S, d]` (must not alias x); `weights[i]`: layer i's `[B, H, S, S]` weights, or 0. */
  run(x: number, B: number, S: number, masks: AttnMaskPtrs, out: number, weights: readonly number[] = []): void {
    this.life.check("TransformerEncoder");
    runStack(this.rt, this.layers.length, this.norm, x, out, B * S, this.dModel, (i, src, dst) =>
      this.layers[i].run(src, B, S, masks, dst, weights[i] ?? 0),
    );
  }

  /** `src [B, S, d]` → `[B, S, d]`; with `needWeights: true`, `{ output, weights }` (one `[B, H, S, S]` per layer). */
  forward(src: Tensor, opts?: EncoderStackOptions & { needWeights?: false }): Tensor<"f32">;
  forward(
    src: Tensor,
    opts: EncoderStackOptions & { needWeights: true },
  ): { output: Tensor<"f32">; weights: Tensor<"f32">[] };
  forward(
    src: Tensor,
    opts: EncoderStackOptions & { needWeights?: boolean } = {},
  ): Tensor<"f32"> | { output: Tensor<"f32">; weights: Tensor<"f32">[] } {
    this.life.check("TransformerEncoder");
    checkSeq(src, this.dModel, "src");
    const [B, S] = src.shape;
    const H = this.nhead;
    if (this.training) {
      const lo = { srcMask: opts.mask, srcKeyPaddingMask: opts.srcKeyPaddingMask, isCausal: opts.isCausal };
      let cur: Tensor<"f32"> = src as Tensor<"f32">;
      const weights: Tensor<"f32">[] = [];
      for (const layer of this.layers) {
        if (opts.needWeights) {
          const r = layer.forward(cur, { ...lo, needWeights: true });
          weights.push(r.weights);
          cur = r.output;
        } else cur = layer.forward(cur, lo);
      }
      if (this.norm) cur = this.norm.forward(cur);
      else if (this.layers.length === 0) cur = src.clone() as Tensor<"f32">;
      this.saved.push(true);
      return opts.needWeights ? { output: cur, weights } : cur;
    }
    return scratch(this.rt, () => {
      const masks = prepareMasks(
        this.rt,
        { attnMask: opts.mask, keyPaddingMask: opts.srcKeyPaddingMask, isCausal: opts.isCausal },
        B,
        this.nhead,
        S,
        S,
        {
          attnMask: "mask",
          keyPaddingMask: "src_key_padding_mask",
        },
      );
      const x = putF32(this.rt, src, "src");
      const out = this.rt.heap.allocF32(B * S * this.dModel);
      const ws = opts.needWeights ? this.layers.map(() => this.rt.heap.allocF32(B * H * S * S)) : [];
      this.run(x, B, S, masks, out, ws);
      const output = readF32(this.rt, out, src.shape);
      return opts.needWeights ? { output, weights: ws.map((w) => readF32(this.rt, w, [B, H, S, S])) } : output;
    });
  }

  protected override children(): Module[] {
    return this.norm ? [...this.layers, this.norm] : [...this.layers];
  }

  protected override onMode(): void {
    this.saved.length = 0;
  }

  /** Backward of the latest training forward: `dy [B, S, d]` → `dsrc`. */
  backward(dy: Tensor): Tensor<"f32"> {
    this.popRecord(this.saved, "TransformerEncoder");
    let g = dy as Tensor<"f32">;
    if (this.norm) g = this.norm.backward(g);
    for (let i = this.layers.length - 1; i >= 0; i--) g = this.layers[i]!.backward(g);
    return g;
  }

  /**
   * Free the wasm memory of the module tree this TransformerEncoder was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.life.dispose();
  }
}

export interface EncoderStackOptions {
  mask?: Tensor | undefined;
  srcKeyPaddingMask?: Tensor | undefined;
  isCausal?: boolean | undefined;
}

/** `torch.nn.TransformerDecoder`: `layers.{i}.*` and an optional final `norm.*`. */
export class TransformerDecoder extends Module {
  readonly rt: Runtime;
  protected readonly life: ModuleLife;
  private readonly saved: true[] = [];
  readonly layers: TransformerDecoderLayer[];
  readonly norm: LayerNorm | undefined;
  readonly dModel: number;
  readonly nhead: number;

  constructor(scope: WeightScope, opts: StackOptions) {
    const stack = buildStack(scope, opts, (s) => new TransformerDecoderLayer(s, opts));
    super();
    this.layers = stack.layers;
    this.norm = stack.norm;
    this.rt = scope.rt;
    this.life = scope.life;
    this.dModel = opts.dModel;
    this.nhead = opts.nhead;
  }

  /** Pointer form: `out [B, T, d]` (must not alias x or memory); per-layer weight pointers (or 0) optional. */
  run(
    x: number,
    memory: number,
    B: number,
    T: number,
    S: number,
    masks: DecoderMaskPtrs,
    out: number,
    selfWeights: readonly number[] = [],
    crossWeights: readonly number[] = [],
  ): void {
    this.life.check("TransformerDecoder");
    runStack(this.rt, this.layers.length, this.norm, x, out, B * T, this.dModel, (i, src, dst) =>
      this.layers[i].run(src, memory, B, T, S, masks, dst, selfWeights[i] ?? 0, crossWeights[i] ?? 0),
    );
  }

  /** KV caches of every layer (see `TransformerDecoderLayer.createCache`). */
  createCache(memory: number, B: number, S: number, maxLen: number): DecoderLayerCache[] {
    this.life.check("TransformerDecoder");
    return this.layers.map((l) => l.createCache(memory, B, S, maxLen));
  }

  /** Incremental decoding of position `pos`: `x [B, d]` → `out [B, d]` (through every layer and the final norm). */
  step(
    x: number,
    pos: number,
    caches: readonly DecoderLayerCache[],
    B: number,
    memMasks: AttnMaskPtrs,
    out: number,
  ): void {
    this.life.check("TransformerDecoder");
    runStack(this.rt, this.layers.length, this.norm, x, out, B, this.dModel, (i, src, dst) =>
      this.layers[i].step(src, pos, caches[i], B, memMasks, dst),
    );
  }

  /** `tgt [B, T, d]`, `memory [B, S, d]` → `[B, T, d]`; with `needWeights: true`, per-layer weights too. */
  forward(tgt: Tensor, memory: Tensor, opts?: DecoderMaskInputs & { needWeights?: false }): Tensor<"f32">;
  forward(
    tgt: Tensor,
    memory: Tensor,
    opts: DecoderMaskInputs & { needWeights: true },
  ): { output: Tensor<"f32">; weights: DecoderWeights[] };
  forward(
    tgt: Tensor,
    memory: Tensor,
    opts: DecoderMaskInputs & { needWeights?: boolean } = {},
  ): Tensor<"f32"> | { output: Tensor<"f32">; weights: DecoderWeights[] } {
    this.life.check("TransformerDecoder");
    checkSeq(tgt, this.dModel, "tgt");
    checkSeq(memory, this.dModel, "memory", tgt.shape[0]);
    const [B, T] = tgt.shape;
    const S = memory.shape[1];
    const H = this.nhead;
    if (this.training) {
      let cur: Tensor<"f32"> = tgt as Tensor<"f32">;
      const weights: DecoderWeights[] = [];
      for (const layer of this.layers) {
        if (opts.needWeights) {
          const r = layer.forward(cur, memory, { ...opts, needWeights: true });
          weights.push(r.weights);
          cur = r.output;
        } else cur = layer.forward(cur, memory, { ...opts, needWeights: false });
      }
      if (this.norm) cur = this.norm.forward(cur);
      else if (this.layers.length === 0) cur = tgt.clone() as Tensor<"f32">;
      this.saved.push(true);
      return opts.needWeights ? { output: cur, weights } : cur;
    }
    return scratch(this.rt, () => {
      const masks = prepareDecoderMasks(this.rt, opts, B, H, T, S);
      const x = putF32(this.rt, tgt, "tgt");
      const mem = putF32(this.rt, memory, "memory");
      const out = this.rt.heap.allocF32(B * T * this.dModel);
      const sw = opts.needWeights ? this.layers.map(() => this.rt.heap.allocF32(B * H * T * T)) : [];
      const cw = opts.needWeights ? this.layers.map(() => this.rt.heap.allocF32(B * H * T * S)) : [];
      this.run(x, mem, B, T, S, masks, out, sw, cw);
      const output = readF32(this.rt, out, tgt.shape);
      if (!opts.needWeights) return output;
      const weights = sw.map((p, i) => ({
        selfAttn: readF32(this.rt, p, [B, H, T, T]),
        crossAttn: readF32(this.rt, cw[i], [B, H, T, S]),
      }));
      return { output, weights };
    });
  }

  protected override children(): Module[] {
    return this.norm ? [...this.layers, this.norm] : [...this.layers];
  }

  protected override onMode(): void {
    this.saved.length = 0;
  }

  /** Backward of the latest training forward: `dy [B, T, d]` → `{ dtgt, dmemory }` (memory's gradient summed over layers). */
  backward(dy: Tensor): { dtgt: Tensor<"f32">; dmemory: Tensor<"f32"> | undefined } {
    this.popRecord(this.saved, "TransformerDecoder");
    let g = dy as Tensor<"f32">;
    let dmem: Tensor<"f32"> | undefined;
    if (this.norm) g = this.norm.backward(g);
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const r = this.layers[i]!.backward(g);
      g = r.dtgt;
      dmem = dmem ? add(dmem, r.dmemory) : r.dmemory;
    }
    return { dtgt: g, dmemory: dmem };
  }

  /**
   * Free the wasm memory of the module tree this TransformerDecoder was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.life.dispose();
  }
}

// -------------------------------------------------------------------------------------------------

export interface TransformerOptions extends TransformerLayerOptions {
  numEncoderLayers?: number;
  numDecoderLayers?: number;
}

export interface TransformerMaskInputs {
  srcMask?: Tensor | undefined;
  tgtMask?: Tensor | undefined;
  memoryMask?: Tensor | undefined;
  srcKeyPaddingMask?: Tensor | undefined;
  tgtKeyPaddingMask?: Tensor | undefined;
  memoryKeyPaddingMask?: Tensor | undefined;
  srcIsCausal?: boolean | undefined;
  tgtIsCausal?: boolean | undefined;
}

/**
 * `torch.nn.Transformer`: `encoder.layers.{i}`, `encoder.norm`, `decoder.layers.{i}`, `decoder.norm`.
 * As in PyTorch, `memoryKeyPaddingMask` is separate from `srcKeyPaddingMask` (pass the same tensor
 * to mask padded source positions in cross-attention).
 */
export class Transformer extends Module {
  readonly rt: Runtime;
  protected readonly life: ModuleLife;
  private readonly saved: { S: number; B: number }[] = [];
  readonly encoder: TransformerEncoder;
  readonly decoder: TransformerDecoder;
  readonly dModel: number;
  readonly nhead: number;

  constructor(scope: WeightScope, opts: TransformerOptions) {
    super();
    this.rt = scope.rt;
    this.life = scope.life;
    this.dModel = opts.dModel;
    this.nhead = opts.nhead;
    this.encoder = new TransformerEncoder(scope.pp("encoder"), {
      ...opts,
      numLayers: opts.numEncoderLayers ?? 6,
      norm: true,
    });
    this.decoder = new TransformerDecoder(scope.pp("decoder"), {
      ...opts,
      numLayers: opts.numDecoderLayers ?? 6,
      norm: true,
    });
  }

  /**
   * `src [B, S, d]`, `tgt [B, T, d]` → `{ memory [B, S, d], output [B, T, d] }`, plus, with
   * `needWeights: true`, every attention layer's weights (`encoder[i]`, `decoder[i].selfAttn/crossAttn`).
   */
  forward(src: Tensor, tgt: Tensor, m: TransformerMaskInputs & { needWeights?: boolean } = {}): TransformerOutput {
    this.life.check("Transformer");
    const d = this.dModel;
    checkSeq(src, d, "src");
    checkSeq(tgt, d, "tgt", src.shape[0]);
    const [B, S] = src.shape;
    const T = tgt.shape[1];
    const rt = this.rt;
    if (this.training) {
      const need = !!m.needWeights;
      const eo = { mask: m.srcMask, srcKeyPaddingMask: m.srcKeyPaddingMask, isCausal: m.srcIsCausal };
      const e = need ? this.encoder.forward(src, { ...eo, needWeights: true }) : undefined;
      const memory = e ? e.output : this.encoder.forward(src, eo);
      const d = need ? this.decoder.forward(tgt, memory, { ...m, needWeights: true }) : undefined;
      const output = d ? d.output : this.decoder.forward(tgt, memory, { ...m, needWeights: false });
      this.saved.push({ B, S });
      const res: TransformerOutput = { memory, output };
      if (e && d) res.weights = { encoder: e.weights, decoder: d.weights };
      return res;
    }
    return scratch(rt, () => {
      const encMasks = prepareMasks(
        rt,
        { attnMask: m.srcMask, keyPaddingMask: m.srcKeyPaddingMask, isCausal: m.srcIsCausal },
        B,
        this.nhead,
        S,
        S,
        {
          attnMask: "src_mask",
          keyPaddingMask: "src_key_padding_mask",
        },
      );
      const decMasks = prepareDecoderMasks(rt, m, B, this.nhead, T, S);
      const sp = putF32(rt, src, "src");
      const tp = putF32(rt, tgt, "tgt");
      const mem = rt.heap.allocF32(B * S * d);
      const out = rt.heap.allocF32(B * T * d);
      const H = this.nhead;
      const need = !!m.needWeights;
      const ew = need ? this.encoder.layers.map(() => rt.heap.allocF32(B * H * S * S)) : [];
      const sw = need ? this.decoder.layers.map(() => rt.heap.allocF32(B * H * T * T)) : [];
      const cw = need ? this.decoder.layers.map(() => rt.heap.allocF32(B * H * T * S)) : [];
      this.encoder.run(sp, B, S, encMasks, mem, ew);
      this.decoder.run(tp, mem, B, T, S, decMasks, out, sw, cw);
      const res: TransformerOutput = { memory: readF32(rt, mem, [B, S, d]), output: readF32(rt, out, [B, T, d]) };
      if (need) {
        res.weights = {
          encoder: ew.map((p) => readF32(rt, p, [B, H, S, S])),
          decoder: sw.map((p, i) => ({
            selfAttn: readF32(rt, p, [B, H, T, T]),
            crossAttn: readF32(rt, cw[i], [B, H, T, S]),
          })),
        };
      }
      return res;
    });
  }

  protected override children(): Module[] {
    return [this.encoder, this.decoder];
  }

  protected override onMode(): void {
    this.saved.length = 0;
  }

  /**
   * Backward of the latest training forward: `dOutput [B, T, d]` (and optionally `dMemory
   * [B, S, d]`, when the returned memory is used by the loss too) → `{ dsrc, dtgt }`.
   */
  backward(dOutput: Tensor, dMemory?: Tensor): { dsrc: Tensor<"f32">; dtgt: Tensor<"f32"> } {
    const { B, S } = this.popRecord(this.saved, "Transformer");
    const r = this.decoder.backward(dOutput);
    let dm = r.dmemory ?? new Tensor(new Float32Array(B * S * this.dModel), [B, S, this.dModel], "f32");
    if (dMemory) {
      checkSeq(dMemory, this.dModel, "dMemory", B);
      dm = add(dm, dMemory);
    }
    return { dsrc: this.encoder.backward(dm), dtgt: r.dtgt };
  }

  /**
   * Free the wasm memory of the module tree this Transformer was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.life.dispose();
  }
}

export interface TransformerOutput {
  memory: Tensor<"f32">;
  output: Tensor<"f32">;
  /** with `needWeights`: the encoder layers' self-attention weights and the decoder layers' weights */
  weights?: { encoder: Tensor<"f32">[]; decoder: DecoderWeights[] };
}

export { NO_MASK };
