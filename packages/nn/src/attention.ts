/**
 * Attention: scaled dot-product attention and `torch.nn.MultiheadAttention` (batch first).
 *
 *   weights = softmax(q·kᵀ / √d + mask),   out = weights · v                (per batch and head)
 *
 * Both run core's `attention` kernel once per (batch, head) slice, reading the heads in place from
 * the projected `[B, T, E]` activations (a head is a column block, FORMAT.md §5), so nothing is
 * transposed. Attention weights are written only when asked for (`needWeights`); otherwise the
 * kernel's probability scratch is one `[L, S]` buffer reused by every slice.
 *
 * Masks. `MultiheadAttention` follows PyTorch: a BOOL `attnMask` is true where a query may **not**
 * attend, an F32 one is added to the scores, `keyPaddingMask` BOOL `[B, S]` is true at padded keys,
 * and `isCausal` blocks keys after the query. `scaledDotProductAttention` follows
 * `torch.nn.functional.scaled_dot_product_attention`: a BOOL mask is true where a query **may**
 * attend. Every form ends up as one additive f32 mask (0 / −∞ / bias) plus a u8 key-padding row.
 */
import { Act, ConfigError, type Runtime, ShapeError, Tensor } from "@wasmformer/core";
import { linear } from "./linear.js";
import { Module } from "./module.js";
import type { Param, WeightScope } from "./state-dict.js";
import {
  expectDType,
  expectShape as expectShapeOf,
  fmtShape,
  type ModuleLife,
  putF32,
  readF32,
  scratch,
  sharedRuntime,
} from "./util.js";

/** Masks in the heap, as the attention kernel takes them. Pointers are 0 when absent. */
export interface AttnMaskPtrs {
  /** additive f32 mask, `[L, S]` (row stride `maskLd`) per slice */
  mask: number;
  maskLd: number;
  /** floats between the masks of consecutive (batch·heads + head) slices; 0 = one mask for all */
  maskStride: number;
  /** u8 `[B, S]`, nonzero = padded key */
  kpm: number;
  /** −1 = off; else key j is visible to query i iff j ≤ i + causal */
  causal: number;
}

export const NO_MASK: AttnMaskPtrs = { mask: 0, maskLd: 0, maskStride: 0, kpm: 0, causal: -1 };

/**
 * Copy an attention mask into the heap as an additive f32 mask.
 * Accepts `[L, S]` (shared by every slice) or `[slices, L, S]` (one per batch·head slice).
 * @param boolMeans `"block"` (PyTorch modules: true = may not attend) or `"attend"` (F.sdpa)
 */
export function putAttnMask(
  rt: Runtime,
  mask: Tensor,
  L: number,
  S: number,
  slices: number,
  what: string,
  boolMeans: "block" | "attend",
): { mask: number; maskLd: number; maskStride: number } {
  expectDType(mask, ["bool", "u8", "f32"], what);
  let stride: number;
  if (mask.ndim === 2 && mask.shape[0] === L && mask.shape[1] === S) stride = 0;
  else if (mask.ndim === 3 && mask.shape[0] === slices && mask.shape[1] === L && mask.shape[2] === S) stride = L * S;
  else {
    throw new ShapeError(`${what} has shape ${fmtShape(mask.shape)}, expected [${L}, ${S}] or [${slices}, ${L}, ${S}]`);
  }
  let add: Float32Array;
  if (mask.dtype === "f32") add = mask.data as Float32Array;
  else {
    const m = mask.data as Uint8Array;
    add = new Float32Array(m.length);
    const blocked = boolMeans === "block" ? 1 : 0;
    for (let i = 0; i < m.length; i++) if ((m[i] !== 0 ? 1 : 0) === blocked) add[i] = Number.NEGATIVE_INFINITY;
  }
  return { mask: rt.heap.put(add), maskLd: S, maskStride: stride };
}

/** Copy a BOOL `[B, S]` key padding mask (true = padded) into the heap as u8. */
export function putKeyPaddingMask(rt: Runtime, kpm: Tensor, B: number, S: number, what: string): number {
  expectDType(kpm, ["bool", "u8"], what);
  if (kpm.ndim !== 2 || kpm.shape[0] !== B || kpm.shape[1] !== S) {
    throw new ShapeError(`${what} has shape ${fmtShape(kpm.shape)}, expected [${B}, ${S}]`);
  }
  return rt.heap.put(kpm.data as Uint8Array);
}

/** Masks of one attention call, as tensors (PyTorch semantics). */
export interface AttnMaskInputs {
  attnMask?: Tensor | undefined;
  keyPaddingMask?: Tensor | undefined;
  isCausal?: boolean | undefined;
}

/** Put the masks of a `[B, H, L, S]` attention into the heap (caller's scratch). */
export function prepareMasks(
  rt: Runtime,
  m: AttnMaskInputs,
  B: number,
  H: number,
  L: number,
  S: number,
  names: { attnMask: string; keyPaddingMask: string } = { attnMask: "attn_mask", keyPaddingMask: "key_padding_mask" },
): AttnMaskPtrs {
  const am = m.attnMask ? putAttnMask(rt, m.attnMask, L, S, B * H, names.attnMask, "block") : undefined;
  const kpm = m.keyPaddingMask ? putKeyPaddingMask(rt, m.keyPaddingMask, B, S, names.keyPaddingMask) : 0;
  return {
    mask: am ? am.mask : 0,
    maskLd: am ? am.maskLd : 0,
    maskStride: am ? am.maskStride : 0,
    kpm,
    causal: m.isCausal ? 0 : -1,
  };
}

// -------------------------------------------------------------------------------------------------
// scaled dot-product attention (no parameters)

export interface SdpaOptions {
  /** BOOL (true = may attend) or F32 (added), `[L, S]` or the full `[..., L, S]` */
  attnMask?: Tensor;
  isCausal?: boolean;
  /** default `1/√d_k` */
  scale?: number;
  runtime?: Runtime;
}

/**
 * `softmax(q·kᵀ·scale + mask) · v` for `q [..., L, dk]`, `k [..., S, dk]`, `v [..., S, dv]` with the
 * same leading dimensions. Returns the output `[..., L, dv]` and the weights `[..., L, S]`.
 * Semantics of `torch.nn.functional.scaled_dot_product_attention` (bool mask: true = attend).
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: SdpaOptions = {},
): { output: Tensor<"f32">; weights: Tensor<"f32"> } {
  const rt = sharedRuntime(opts.runtime);
  if (q.ndim < 2 || k.ndim !== q.ndim || v.ndim !== q.ndim) {
    throw new ShapeError(
      `sdpa: q, k, v need the same rank ≥ 2, got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`,
    );
  }
  const lead = q.shape.slice(0, -2);
  for (const [t, n] of [
    [k, "k"],
    [v, "v"],
  ] as const) {
    if (t.shape.slice(0, -2).some((d, i) => d !== lead[i])) {
      throw new ShapeError(`sdpa: ${n} ${fmtShape(t.shape)} has other leading dimensions than q ${fmtShape(q.shape)}`);
    }
  }
  const [L, dk] = q.shape.slice(-2);
  const [S, dk2] = k.shape.slice(-2);
  const [S2, dv] = v.shape.slice(-2);
  if (dk2 !== dk) throw new ShapeError(`sdpa: k ${fmtShape(k.shape)} has d_k ${dk2}, q ${fmtShape(q.shape)} has ${dk}`);
  if (S2 !== S) throw new ShapeError(`sdpa: v ${fmtShape(v.shape)} has ${S2} keys, k has ${S}`);
  const N = lead.reduce((a, b) => a * b, 1);
  const scale = opts.scale ?? 1 / Math.sqrt(dk);
  return scratch(rt, () => {
    const qp = putF32(rt, q, "sdpa q");
    const kp = putF32(rt, k, "sdpa k");
    const vp = putF32(rt, v, "sdpa v");
    let mask = { mask: 0, maskLd: 0, maskStride: 0 };
    if (opts.attnMask) {
      const m = opts.attnMask;
      const full = m.ndim === q.ndim && m.shape.slice(0, -2).every((d, i) => d === lead[i]);
      const flat = full && m.ndim !== 2 ? new Tensor(m.data, [N, L, S], m.dtype) : m;
      if (!full && m.ndim !== 2) {
        throw new ShapeError(
          `sdpa mask has shape ${fmtShape(m.shape)}, expected [${L}, ${S}] or [${[...lead, L, S].join(", ")}]`,
        );
      }
      mask = putAttnMask(rt, flat, L, S, N, "sdpa mask", "attend");
    }
    const o = rt.heap.allocF32(N * L * dv);
    const w = rt.heap.allocF32(N * L * S);
    for (let n = 0; n < N; n++) {
      rt.k.attention(
        qp + n * L * dk * 4,
        dk,
        kp + n * S * dk * 4,
        dk,
        vp + n * S * dv * 4,
        dv,
        o + n * L * dv * 4,
        dv,
        w + n * L * S * 4,
        L,
        S,
        dk,
        dv,
        scale,
        mask.mask ? mask.mask + n * mask.maskStride * 4 : 0,
        mask.maskLd,
        0,
        opts.isCausal ? 0 : -1,
      );
    }
    return { output: readF32(rt, o, [...lead, L, dv]), weights: readF32(rt, w, [...lead, L, S]) };
  });
}

// -------------------------------------------------------------------------------------------------
// torch.nn.MultiheadAttention

export interface MultiheadAttentionOptions {
  embedDim: number;
  numHeads: number;
  /** in- and out-projection biases (default true) */
  bias?: boolean;
  /** key / value feature widths (default embedDim); when either differs, PyTorch stores separate
   * `q_proj_weight`, `k_proj_weight`, `v_proj_weight` instead of `in_proj_weight` */
  kdim?: number;
  vdim?: number;
}

export interface MhaForwardOptions extends AttnMaskInputs {
  /** return the attention weights (default false: they are not computed into an output) */
  needWeights?: boolean;
  /** average the weights over heads (`[B, L, S]`) instead of per head (`[B, H, L, S]`); default false */
  averageAttnWeights?: boolean;
}

/** What a training forward of `MultiheadAttention` keeps (batched `[B, ·, ·]` layouts, copies). */
interface MhaRecord {
  query: Float32Array;
  key: Float32Array;
  value: Float32Array;
  /** projections `[B·L, E]`, `[B·S, E]`, `[B·S, E]`, weights `[B, H, L, S]`, heads before out_proj `[B·L, E]` */
  Q: Float32Array;
  K: Float32Array;
  V: Float32Array;
  P: Float32Array;
  O: Float32Array;
  B: number;
  L: number;
  S: number;
  unbatched: boolean;
}

/** Gradients of `MultiheadAttention`'s inputs; for self-attention (query = key = value) add the three. */
export interface MhaGrads {
  dQuery: Tensor<"f32">;
  dKey: Tensor<"f32">;
  dValue: Tensor<"f32">;
}

export class MultiheadAttention extends Module {
  readonly rt: Runtime;
  protected readonly life: ModuleLife;
  private readonly saved: MhaRecord[] = [];
  readonly embedDim: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly kdim: number;
  readonly vdim: number;
  /** the packed `in_proj_weight [3E, E]`, when kdim = vdim = E */
  readonly inProj: Param | undefined;
  readonly wq: Param;
  readonly wk: Param;
  readonly wv: Param;
  readonly bq: Param | undefined;
  readonly bk: Param | undefined;
  readonly bv: Param | undefined;
  readonly inBias: Param | undefined;
  readonly outW: Param;
  readonly outB: Param | undefined;

  constructor(scope: WeightScope, opts: MultiheadAttentionOptions) {
    const E = opts.embedDim;
    const H = opts.numHeads;
    if (!Number.isInteger(E) || E < 1) throw new ConfigError(`expected a positive integer, got ${E}`, "embed_dim");
    if (!Number.isInteger(H) || H < 1 || E % H !== 0) {
      throw new ConfigError(`num_heads ${H} must be a positive divisor of embed_dim ${E}`, "num_heads");
    }
    super();
    this.rt = scope.rt;
    this.life = scope.life;
    this.embedDim = E;
    this.numHeads = H;
    this.headDim = E / H;
    this.kdim = opts.kdim ?? E;
    this.vdim = opts.vdim ?? E;
    const bias = opts.bias ?? true;
    // a block of rows of a packed weight: always 2-D `[rows, cols]` (linear() reads `[out, in]`
    // from it, also when embed_dim = 1 makes each block a single row)
    const sub = (p: Param, row: number, rows: number, cols: number): Param => ({
      name: p.name,
      ptr: p.ptr ? p.ptr + row * cols * 4 : 0,
      shape: [rows, cols],
    });
    if (this.kdim === E && this.vdim === E) {
      // PyTorch packs W_q, W_k, W_v as rows 0..E−1, E..2E−1, 2E..3E−1 of in_proj_weight
      this.inProj = scope.get("in_proj_weight", [3 * E, E]);
      this.wq = sub(this.inProj, 0, E, E);
      this.wk = sub(this.inProj, E, E, E);
      this.wv = sub(this.inProj, 2 * E, E, E);
    } else {
      this.inProj = undefined;
      this.wq = scope.get("q_proj_weight", [E, E]);
      this.wk = scope.get("k_proj_weight", [E, this.kdim]);
      this.wv = scope.get("v_proj_weight", [E, this.vdim]);
    }
    if (bias) {
      this.inBias = scope.get("in_proj_bias", [3 * E]);
      const b = this.inBias;
      const part = (i: number): Param => ({ name: b.name, ptr: b.ptr ? b.ptr + i * E * 4 : 0, shape: [E] });
      this.bq = part(0);
      this.bk = part(1);
      this.bv = part(2);
    }
    const out = scope.pp("out_proj");
    this.outW = out.get("weight", [E, E]);
    this.outB = bias ? out.get("bias", [E]) : undefined;
  }

  /**
   * Pointer form. `q [B, L, E]`, `k [B, S, kdim]`, `v [B, S, vdim]` (the same pointer for self-attention
   * fuses the three projections into one GEMM). Writes `out [B, L, E]` — added to what `out` holds
   * when `accumulate` (a fused residual) — and, when `weights` is given, the per-head attention
   * weights `[B, H, L, S]` there.
   */
  run(
    q: number,
    k: number,
    v: number,
    B: number,
    L: number,
    S: number,
    masks: AttnMaskPtrs,
    out: number,
    opts: { weights?: number; accumulate?: boolean } = {},
  ): void {
    this.life.check("MultiheadAttention");
    const { rt, embedDim: E } = this;
    const heap = rt.heap;
    const m = heap.mark();
    let qp: number, kp: number, vp: number, ldq: number, ldk: number, ldv: number;
    if (this.inProj && q === k && k === v && L === S) {
      // self-attention: one GEMM for Q, K and V → [B·L, 3E]
      const qkv = heap.allocF32(B * L * 3 * E);
      linear(rt, q, B * L, this.inProj, this.inBias, qkv);
      qp = qkv;
      kp = qkv + E * 4;
      vp = qkv + 2 * E * 4;
      ldq = ldk = ldv = 3 * E;
    } else {
      qp = heap.allocF32(B * L * E);
      linear(rt, q, B * L, this.wq, this.bq, qp);
      ldq = E;
      if (this.inProj && k === v) {
        // cross-attention over one memory: K and V in one GEMM → [B·S, 2E]
        const kv = heap.allocF32(B * S * 2 * E);
        const wkv: Param = { name: this.wk.name, ptr: this.wk.ptr, shape: [2 * E, E] };
        const bkv: Param | undefined = this.bk ? { name: this.bk.name, ptr: this.bk.ptr, shape: [2 * E] } : undefined;
        linear(rt, k, B * S, wkv, bkv, kv);
        kp = kv;
        vp = kv + E * 4;
        ldk = ldv = 2 * E;
      } else {
        kp = heap.allocF32(B * S * E);
        vp = heap.allocF32(B * S * E);
        linear(rt, k, B * S, this.wk, this.bk, kp);
        linear(rt, v, B * S, this.wv, this.bv, vp);
        ldk = ldv = E;
      }
    }
    this.attend(qp, ldq, kp, vp, ldk, ldv, S * ldk, S * ldv, B, L, S, masks, out, opts);
    heap.release(m);
  }

  /**
   * Keys and values projected once (for a cache, or a memory attended to many times):
   * `kOut = key·W_kᵀ + b_k`, `vOut = value·W_vᵀ + b_v`, `rows` rows, written with row stride `ld`.
   */
  projectKV(key: number, value: number, rows: number, kOut: number, vOut: number, ld: number = this.embedDim): void {
    this.life.check("MultiheadAttention");
    linear(this.rt, key, rows, this.wk, this.bk, kOut, { ldo: ld });
    linear(this.rt, value, rows, this.wv, this.bv, vOut, { ldo: ld });
  }

  /**
   * Pointer form over keys/values projected by `projectKV`: `q [B, L, E]` (projected here) attends to
   * `S` keys of batch row b at `k + b·batchStride` floats (row stride `ld`), likewise `v`. Writes or
   * accumulates `out [B, L, E]`. This is the incremental-decoding path: with a KV cache, `L = 1`.
   */
  attendKV(
    q: number,
    B: number,
    L: number,
    S: number,
    k: number,
    v: number,
    ld: number,
    batchStride: number,
    masks: AttnMaskPtrs,
    out: number,
    opts: { weights?: number; accumulate?: boolean } = {},
  ): void {
    this.life.check("MultiheadAttention");
    const heap = this.rt.heap;
    const m = heap.mark();
    const qp = heap.allocF32(B * L * this.embedDim);
    linear(this.rt, q, B * L, this.wq, this.bq, qp);
    this.attend(qp, this.embedDim, k, v, ld, ld, batchStride, batchStride, B, L, S, masks, out, opts);
    heap.release(m);
  }

  /** The attention kernel over every (batch, head) slice, then the output projection. */
  private attend(
    qp: number,
    ldq: number,
    kp: number,
    vp: number,
    ldk: number,
    ldv: number,
    kStride: number,
    vStride: number,
    B: number,
    L: number,
    S: number,
    masks: AttnMaskPtrs,
    out: number,
    opts: { weights?: number; accumulate?: boolean },
  ): void {
    const { rt, embedDim: E, numHeads: H, headDim: d } = this;
    const heap = rt.heap;
    const m = heap.mark();
    const o = heap.allocF32(B * L * E);
    const probs = opts.weights ? 0 : heap.allocF32(L * S);
    const scale = 1 / Math.sqrt(d);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const slice = b * H + h;
        rt.k.attention(
          qp + (b * L * ldq + h * d) * 4,
          ldq,
          kp + (b * kStride + h * d) * 4,
          ldk,
          vp + (b * vStride + h * d) * 4,
          ldv,
          o + (b * L * E + h * d) * 4,
          E,
          opts.weights ? opts.weights + slice * L * S * 4 : probs,
          L,
          S,
          d,
          d,
          scale,
          masks.mask ? masks.mask + slice * masks.maskStride * 4 : 0,
          masks.maskLd,
          masks.kpm ? masks.kpm + b * S : 0,
          masks.causal,
        );
      }
    }
    linear(rt, o, B * L, this.outW, this.outB, out, { beta: opts.accumulate ? 1 : 0, act: Act.none });
    heap.release(m);
  }

  /**
   * `query [B, L, E]`, `key [B, S, kdim]`, `value [B, S, vdim]` (or unbatched `[L, E]` …) →
   * `{ output [B, L, E], weights? }`; weights are `[B, H, L, S]`, or `[B, L, S]` when averaged.
   */
  forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    opts: MhaForwardOptions = {},
  ): { output: Tensor<"f32">; weights?: Tensor<"f32"> } {
    this.life.check("MultiheadAttention");
    const { rt, embedDim: E, numHeads: H } = this;
    const unbatched = query.ndim === 2;
    const rank = unbatched ? 2 : 3;
    for (const [t, n, w] of [
      [query, "query", E],
      [key, "key", this.kdim],
      [value, "value", this.vdim],
    ] as const) {
      if (t.ndim !== rank || t.shape[rank - 1] !== w) {
        const want = unbatched ? `[*, ${w}]` : `[B, *, ${w}]`;
        throw new ShapeError(`MultiheadAttention ${n} has shape ${fmtShape(t.shape)}, expected ${want}`);
      }
    }
    const B = unbatched ? 1 : query.shape[0];
    const L = query.shape[rank - 2];
    const S = key.shape[rank - 2];
    if (!unbatched && (key.shape[0] !== B || value.shape[0] !== B)) {
      throw new ShapeError(
        `MultiheadAttention: batch sizes differ: query ${fmtShape(query.shape)}, key ${fmtShape(key.shape)}, value ${fmtShape(value.shape)}`,
      );
    }
    if (value.shape[rank - 2] !== S) {
      throw new ShapeError(
        `MultiheadAttention: key ${fmtShape(key.shape)} and value ${fmtShape(value.shape)} have different lengths`,
      );
    }
    const kpm =
      opts.keyPaddingMask && unbatched && opts.keyPaddingMask.ndim === 1
        ? new Tensor(opts.keyPaddingMask.data, [1, S], opts.keyPaddingMask.dtype)
        : opts.keyPaddingMask;
    if (this.training) return this.trainForward(query, key, value, { ...opts, keyPaddingMask: kpm }, B, L, S);
    return scratch(rt, () => {
      const masks = prepareMasks(rt, { ...opts, keyPaddingMask: kpm }, B, H, L, S);
      const qp = putF32(rt, query, "query");
      const kp = key === query ? qp : putF32(rt, key, "key");
      const vp = value === key ? kp : value === query ? qp : putF32(rt, value, "value");
      const out = rt.heap.allocF32(B * L * E);
      const w = opts.needWeights ? rt.heap.allocF32(B * H * L * S) : 0;
      this.run(qp, kp, vp, B, L, S, masks, out, { weights: w || undefined });
      const output = readF32(rt, out, unbatched ? [L, E] : [B, L, E]);
      if (!w) return { output };
      let weights = readF32(rt, w, [B, H, L, S]);
      if (opts.averageAttnWeights) {
        const avg = new Float32Array(B * L * S);
        const src = weights.data;
        for (let b = 0; b < B; b++)
          for (let h = 0; h < H; h++)
            for (let i = 0; i < L * S; i++) avg[b * L * S + i] += src[(b * H + h) * L * S + i] / H;
        weights = new Tensor(avg, [B, L, S], "f32");
      }
      if (unbatched) weights = weights.reshape(weights.shape.slice(1));
      return { output, weights };
    });
  }

  /**
   * The training forward: the three projections, attention with its weights and the output
   * projection, keeping the inputs, projections, weights and heads for `backward`.
   */
  private trainForward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    opts: MhaForwardOptions,
    B: number,
    L: number,
    S: number,
  ): { output: Tensor<"f32">; weights?: Tensor<"f32"> } {
    const { rt, embedDim: E, numHeads: H, headDim: d } = this;
    const unbatched = query.ndim === 2;
    const heap = rt.heap;
    return scratch(rt, () => {
      const masks = prepareMasks(rt, opts, B, H, L, S);
      const qx = putF32(rt, query, "query");
      const kx = putF32(rt, key, "key");
      const vx = putF32(rt, value, "value");
      const Q = heap.allocF32(B * L * E);
      const K = heap.allocF32(B * S * E);
      const V = heap.allocF32(B * S * E);
      linear(rt, qx, B * L, this.wq, this.bq, Q);
      linear(rt, kx, B * S, this.wk, this.bk, K);
      linear(rt, vx, B * S, this.wv, this.bv, V);
      const P = heap.allocF32(B * H * L * S);
      const O = heap.allocF32(B * L * E);
      const scale = 1 / Math.sqrt(d);
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < H; h++) {
          const slice = b * H + h;
          rt.k.attention(
            Q + (b * L * E + h * d) * 4,
            E,
            K + (b * S * E + h * d) * 4,
            E,
            V + (b * S * E + h * d) * 4,
            E,
            O + (b * L * E + h * d) * 4,
            E,
            P + slice * L * S * 4,
            L,
            S,
            d,
            d,
            scale,
            masks.mask ? masks.mask + slice * masks.maskStride * 4 : 0,
            masks.maskLd,
            masks.kpm ? masks.kpm + b * S : 0,
            masks.causal,
          );
        }
      }
      const out = heap.allocF32(B * L * E);
      linear(rt, O, B * L, this.outW, this.outB, out);
      const copy = (p: number, n: number) => heap.f32(p, n).slice();
      this.saved.push({
        query: query.data as Float32Array,
        key: key.data as Float32Array,
        value: value.data as Float32Array,
        Q: copy(Q, B * L * E),
        K: copy(K, B * S * E),
        V: copy(V, B * S * E),
        P: copy(P, B * H * L * S),
        O: copy(O, B * L * E),
        B,
        L,
        S,
        unbatched,
      });
      const output = readF32(rt, out, unbatched ? [L, E] : [B, L, E]);
      if (!opts.needWeights) return { output };
      let weights = readF32(rt, P, [B, H, L, S]);
      if (opts.averageAttnWeights) {
        const avg = new Float32Array(B * L * S);
        const src = weights.data;
        for (let b = 0; b < B; b++)
          for (let h = 0; h < H; h++)
            for (let i = 0; i < L * S; i++) avg[b * L * S + i] += src[(b * H + h) * L * S + i] / H;
        weights = new Tensor(avg, [B, L, S], "f32");
      }
      if (unbatched) weights = weights.reshape(weights.shape.slice(1));
      return { output, weights };
    });
  }

  protected override ownParams(): Param[] {
    const ps: Param[] = this.inProj ? [this.inProj] : [this.wq, this.wk, this.wv];
    if (this.inBias) ps.push(this.inBias);
    ps.push(this.outW);
    if (this.outB) ps.push(this.outB);
    return ps;
  }

  protected override onMode(): void {
    this.saved.length = 0;
  }

  /** The gradient pointer of `p`, a weight of this module or a row block of `in_proj_weight` / `in_proj_bias`. */
  private gradPtr(p: Param): number {
    const owner =
      this.inProj && p.name === this.inProj.name
        ? this.inProj
        : this.inBias && p.name === this.inBias.name
          ? this.inBias
          : p;
    return this.gradOf(owner) + (p.ptr - owner.ptr);
  }

  /**
   * Backward of the latest training forward, from `dOutput` (the output's shape): adds the
   * projection weights' and biases' gradients and returns those of query, key and value (for
   * self-attention, where the three are one tensor, its gradient is their sum). Masked weights get
   * no gradient; the returned attention weights are treated as not used by the loss.
   */
  backward(dOutput: Tensor): MhaGrads {
    const { rt, embedDim: E, numHeads: H, headDim: d } = this;
    const r = this.popRecord(this.saved, "MultiheadAttention", (r) =>
      expectShapeOf(dOutput, r.unbatched ? [r.L, E] : [r.B, r.L, E], "MultiheadAttention.backward dOutput"),
    );
    const { B, L, S } = r;
    const heap = rt.heap;
    return scratch(rt, () => {
      const put = (a: Float32Array) => heap.put(a);
      const dOut = putF32(rt, dOutput, "dOutput");
      const O = put(r.O);
      // out = O·W_oᵀ + b_o
      const dO = heap.allocF32(B * L * E);
      rt.k.gemm(B * L, E, E, dOut, E, 0, this.outW.ptr, E, 0, dO, E, 0, 1, 0, Act.none);
      rt.k.gemm(E, E, B * L, dOut, E, 1, O, E, 0, this.gradOf(this.outW), E, 0, 1, 1, Act.none);
      if (this.outB) rt.k.biasGrad(this.gradOf(this.outB), dOut, B * L, E, E);
      const Q = put(r.Q);
      const K = put(r.K);
      const V = put(r.V);
      const P = put(r.P);
      const dQ = heap.allocF32(B * L * E);
      const dK = heap.allocF32(B * S * E);
      const dV = heap.allocF32(B * S * E);
      const scr = heap.allocF32(L * S);
      const scale = 1 / Math.sqrt(d);
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < H; h++) {
          const q = (b * L * E + h * d) * 4;
          const kv = (b * S * E + h * d) * 4;
          rt.k.attentionBackward(
            dQ + q,
            dK + kv,
            dV + kv,
            dO + q,
            E,
            Q + q,
            E,
            K + kv,
            E,
            V + kv,
            E,
            P + (b * H + h) * L * S * 4,
            0,
            scr,
            L,
            S,
            d,
            d,
            scale,
          );
        }
      }
      // X·W_xᵀ + b_x for x = query, key, value: dW_x += dXᵀ·x, db_x += Σ dX, dx = dX·W_x
      const proj = (dX: number, x: Float32Array, rows: number, w: Param, b: Param | undefined, shape: number[]) => {
        const In = w.shape[1]!;
        const px = put(x);
        const dx = heap.allocF32(rows * In);
        rt.k.gemm(rows, In, E, dX, E, 0, w.ptr, In, 0, dx, In, 0, 1, 0, Act.none);
        rt.k.gemm(E, In, rows, dX, E, 1, px, In, 0, this.gradPtr(w), In, 0, 1, 1, Act.none);
        if (b) rt.k.biasGrad(this.gradPtr(b), dX, rows, E, E);
        return readF32(rt, dx, shape);
      };
      const lead = (n: number) => (r.unbatched ? [n] : [B, n]);
      return {
        dQuery: proj(dQ, r.query, B * L, this.wq, this.bq, [...lead(L), E]),
        dKey: proj(dK, r.key, B * S, this.wk, this.bk, [...lead(S), this.kdim]),
        dValue: proj(dV, r.value, B * S, this.wv, this.bv, [...lead(S), this.vdim]),
      };
    });
  }

  /**
   * Free the wasm memory of the module tree this MultiheadAttention was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.saved.length = 0;
    this.life.dispose();
  }
}
