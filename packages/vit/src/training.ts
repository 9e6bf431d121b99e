/**
 * Training of `ViTForImageClassification`, llm.c style (`train_gpt2.c`): the model's one forward
 * (vit-model.ts `run`) writes, in training mode only, each layer's activations into the buffers
 * planned here, and `vitBackward` walks the layers in reverse, one `*_backward` step per op:
 *
 * ```
 * logits = xF[:, 0] · W_headᵀ + b_head            → dW_head, db_head, dxF[:, 0]
 * xF     = layernorm(hOut)                        → dh (normStats, then layerNormBackward)
 * per layer l = L−1 … 0 (dh: the gradient of the residual stream):
 *   h   += gelu(pre) · W_2ᵀ + b_2, pre = x2·W_1ᵀ + b_1, x2 = ln2(hMid)
 *                                                 → dW_2, db_2, dpre, dW_1, db_1, dh += ln2ᵀ(dx2)
 *   hMid = hIn + ctx · W_oᵀ + b_o, ctx = attention(qkv), qkv = ln1(hIn)·W_qkvᵀ + b_qkv
 *                                                 → dW_o, db_o, dqkv (attentionBackward), dW_qkv,
 *                                                   db_qkv, dh += ln1ᵀ(dx1)
 * h0[b] = [cls; im2col(x_b)·W_patchᵀ + b_patch] + pos
 *                                                 → dpos = Σ_b dh[b], dcls = Σ_b dh[b, 0],
 *                                                   dW_patch += dYᵀ·im2col(x_b), db_patch
 * ```
 *
 * Every gradient buffer accumulates (`+=`): `fit` / the optimizer zero them between steps, so
 * micro-batches of one step add up. Parameters and gradients are in the checkpoint layout: in
 * training mode the encoder weights are unpacked from `gemmPacked`'s layout back to `[out, in]`
 * (plain `gemm`; the optimizer updates them in place), and `eval()` packs them again. HF's three
 * q, k, v weights are one `[3D, D]` buffer (rows q; k; v), so each of them is a contiguous slice of
 * it, and its `TrainParam` points into it (the same for the gradients).
 */
import {
  Act,
  type AttentionBackwardArgs,
  type Heap,
  mulberry32,
  packedIndex,
  type Runtime,
  Tensor,
} from "@wasmformer/core";
import type { TrainParam } from "@wasmformer/nn";
import { labelNames, type ViTConfig } from "./config.js";
import type { LayerPtrs, ViTWeights } from "./weights.js";

/** A trainable tensor of the ViT: its Hugging Face state-dict name and shape. */
export interface ViTParam extends TrainParam {
  readonly shape: readonly number[];
}

/** One example for `lossAndGrad` / `evaluate`: a preprocessed image and its class (or `ignoreIndex`). */
export interface ViTExample {
  /** `[C, H, W]` (or `[1, C, H, W]`) at the config's image size, as `Tensor` or flat `Float32Array`. */
  pixelValues: Tensor | Float32Array;
  label: number;
}

/** Per layer, the activations the backward reads (`[B·T, ·]` each, B ≤ maxBatch). */
export interface LayerActs {
  hIn: number; // residual stream entering the layer [BT, D]
  x1: number; // layernorm_before(hIn) [BT, D]
  qkv: number; // [BT, 3D]
  ctx: number; // attention output before the projection [BT, D]
  hMid: number; // residual after attention [BT, D]
  x2: number; // layernorm_after(hMid) [BT, D]
  pre: number; // fc1 output before the activation [BT, I]
  mlp: number; // act(pre) [BT, I]
}

/** Activation and backward scratch for up to `maxBatch` images (allocated once per max batch). */
export interface TrainActs {
  maxBatch: number;
  T: number;
  layers: LayerActs[];
  hOut: number; // residual stream after the last layer [BT, D]
  dh: number; // [BT, D] gradient of the residual stream
  dx: number; // [BT, D] gradient of a layer norm's output
  dqkv: number; // [BT, 3D]
  dctx: number; // [BT, D]
  dmlp: number; // [BT, I]
  dpre: number; // [BT, I]
  dlogits: number; // [B, num_labels]
  labels: number; // i32 [B]
  loss: number; // f32 [1]
  scratch: number; // [groups, T, T] dS of attentionBackward, one per slice group
  groups: number; // slice groups the attention backward may run side by side
  stats: number; // [2, BT] a layer norm's mean and rstd for its backward
}

const AL = 16; // bytes of alignment padding per buffer

/** Floats of one parameter set (the weights' layout, pooler excluded). */
function paramFloats(cfg: ViTConfig, T0: number): number {
  const D = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const K = cfg.num_channels * cfg.patch_size[0] * cfg.patch_size[0];
  const layer = 4 * D + 3 * D * D + 3 * D + D * D + D + I * D + I + D * I + D;
  return D + T0 * D + D * K + D + cfg.num_hidden_layers * layer + 2 * D + cfg.num_labels * (D + 1);
}

/** Position rows of the checkpoint's grid (CLS + patches at `image_size`). */
export function basePositions(cfg: ViTConfig): number {
  const p = cfg.patch_size[0];
  return Math.floor(cfg.image_size[0] / p) * Math.floor(cfg.image_size[1] / p) + 1;
}

/** Zeroed gradient buffers in the weights' layout (q; k; v fused as the weights are). */
export function allocGrads(heap: Heap, cfg: ViTConfig, w: ViTWeights): ViTWeights {
  const D = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const K = cfg.num_channels * cfg.patch_size[0] * cfg.patch_size[0];
  const T0 = basePositions(cfg);
  const floats = paramFloats(cfg, T0);
  heap.reserve(floats * 4 + AL * (16 + 12 * cfg.num_hidden_layers));
  const f = (n: number) => {
    const ptr = heap.allocF32(n);
    heap.f32(ptr, n).fill(0);
    return ptr;
  };
  const g: ViTWeights = {
    clsToken: f(D),
    posEmbed: f(T0 * D),
    patchW: f(D * K),
    patchB: f(D),
    layers: [],
    lnW: 0,
    lnB: 0,
    poolerW: 0,
    poolerB: 0,
    headW: 0,
    headB: 0,
    bytes: floats * 4,
  };
  for (const L of w.layers) {
    g.layers.push({
      ln1W: f(D),
      ln1B: f(D),
      qkvW: f(3 * D * D),
      qkvB: L.qkvB ? f(3 * D) : 0,
      projW: f(D * D),
      projB: f(D),
      ln2W: f(D),
      ln2B: f(D),
      fc1W: f(I * D),
      fc1B: f(I),
      fc2W: f(D * I),
      fc2B: f(D),
    });
  }
  g.lnW = f(D);
  g.lnB = f(D);
  g.headW = f(cfg.num_labels * D);
  g.headB = f(cfg.num_labels);
  return g;
}

/**
 * Activation buffers for batches of up to `maxBatch` images at the config's image size; `threads`:
 * the runtime's (the attention backward gets a scratch for each of 2 slice groups a thread).
 */
export function allocActs(heap: Heap, cfg: ViTConfig, maxBatch: number, threads = 1): TrainActs {
  const D = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const T = basePositions(cfg);
  const BT = maxBatch * T;
  const L = cfg.num_hidden_layers;
  const nl = cfg.num_labels;
  const groups = Math.min(maxBatch * cfg.num_attention_heads, threads > 1 ? 2 * threads : 1);
  const floats =
    L * BT * (9 * D + 2 * I) + BT * (3 * D + 3 * D + 2 * I) + maxBatch * (nl + 1) + 1 + groups * T * T + 2 * BT;
  heap.reserve(floats * 4 + AL * (8 * L + 16));
  const f = (n: number) => heap.allocF32(Math.max(n, 1));
  const layers: LayerActs[] = [];
  for (let l = 0; l < L; l++) {
    layers.push({
      hIn: f(BT * D),
      x1: f(BT * D),
      qkv: f(BT * 3 * D),
      ctx: f(BT * D),
      hMid: f(BT * D),
      x2: f(BT * D),
      pre: f(BT * I),
      mlp: f(BT * I),
    });
  }
  return {
    maxBatch,
    T,
    layers,
    hOut: f(BT * D),
    dh: f(BT * D),
    dx: f(BT * D),
    dqkv: f(BT * 3 * D),
    dctx: f(BT * D),
    dmlp: f(BT * I),
    dpre: f(BT * I),
    dlogits: f(maxBatch * nl),
    labels: f(maxBatch),
    loss: f(1),
    scratch: f(groups * T * T),
    groups,
    stats: f(2 * BT),
  };
}

/**
 * The trainable tensors under their Hugging Face names (`vit.` prefix, `classifier`), in the order
 * of HF's `state_dict()`, each pointing at its values in `w` and its gradient in `g` (0 without `g`).
 */
export function vitParams(cfg: ViTConfig, w: ViTWeights, g?: ViTWeights): ViTParam[] {
  const D = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const C = cfg.num_channels;
  const p = cfg.patch_size[0];
  const out: ViTParam[] = [];
  const add = (name: string, ptr: number, grad: number, shape: number[]) =>
    out.push({ name, ptr, grad: g ? grad : 0, size: shape.reduce((a, b) => a * b, 1), shape });
  const G0 = g ?? w; // without g every grad is 0 (above), the pointers of w only fill the slots
  const E = "vit.embeddings.";
  add(`${E}cls_token`, w.clsToken, G0.clsToken, [1, 1, D]);
  add(`${E}position_embeddings`, w.posEmbed, G0.posEmbed, [1, basePositions(cfg), D]);
  add(`${E}patch_embeddings.projection.weight`, w.patchW, G0.patchW, [D, C, p, p]);
  add(`${E}patch_embeddings.projection.bias`, w.patchB, G0.patchB, [D]);
  w.layers.forEach((L, l) => {
    const G = G0.layers[l]!;
    const n = `vit.encoder.layer.${l}.`;
    ["query", "key", "value"].forEach((q, j) => {
      add(`${n}attention.attention.${q}.weight`, L.qkvW + j * D * D * 4, G.qkvW + j * D * D * 4, [D, D]);
      if (L.qkvB) add(`${n}attention.attention.${q}.bias`, L.qkvB + j * D * 4, G.qkvB + j * D * 4, [D]);
    });
    add(`${n}attention.output.dense.weight`, L.projW, G.projW, [D, D]);
    add(`${n}attention.output.dense.bias`, L.projB, G.projB, [D]);
    add(`${n}intermediate.dense.weight`, L.fc1W, G.fc1W, [I, D]);
    add(`${n}intermediate.dense.bias`, L.fc1B, G.fc1B, [I]);
    add(`${n}output.dense.weight`, L.fc2W, G.fc2W, [D, I]);
    add(`${n}output.dense.bias`, L.fc2B, G.fc2B, [D]);
    add(`${n}layernorm_before.weight`, L.ln1W, G.ln1W, [D]);
    add(`${n}layernorm_before.bias`, L.ln1B, G.ln1B, [D]);
    add(`${n}layernorm_after.weight`, L.ln2W, G.ln2W, [D]);
    add(`${n}layernorm_after.bias`, L.ln2B, G.ln2B, [D]);
  });
  add("vit.layernorm.weight", w.lnW, G0.lnW, [D]);
  add("vit.layernorm.bias", w.lnB, G0.lnB, [D]);
  add("classifier.weight", w.headW, G0.headW, [cfg.num_labels, D]);
  add("classifier.bias", w.headB, G0.headB, [cfg.num_labels]);
  return out;
}

/** The encoder Linear weights that `packEncoderWeights` packs: pointer, out and in features. */
function packedLinears(cfg: ViTConfig, L: LayerPtrs): [number, number, number][] {
  const D = cfg.hidden_size;
  const I = cfg.intermediate_size;
  return [
    [L.qkvW, 3 * D, D],
    [L.projW, D, D],
    [L.fc1W, I, D],
    [L.fc2W, D, I],
  ];
}

/** A Linear weight `[out, in]` read from its packed layout (`packB` with K = in, N = out; out % 8 = 0). */
export function unpackLinear(packed: Float32Array, out: number, inF: number): Float32Array {
  const w = new Float32Array(out * inF);
  for (let j = 0; j < out; j++) for (let p = 0; p < inF; p++) w[j * inF + p] = packed[packedIndex(inF, out, p, j)]!;
  return w;
}

/** Unpack the encoder weights in place (back to `[out, in]`, for `gemm` and the optimizer). */
export function unpackEncoderWeights(rt: Runtime, cfg: ViTConfig, w: ViTWeights): void {
  if (!w.packed) return;
  for (const L of w.layers) {
    for (const [ptr, out, inF] of packedLinears(cfg, L)) {
      const v = unpackLinear(rt.heap.f32(ptr, out * inF).slice(), out, inF);
      rt.heap.f32(ptr, out * inF).set(v);
    }
  }
  w.packed = false;
}

/** The `[out, in]` values of an encoder weight, whether packed or not (for `save`). */
export function linearValues(rt: Runtime, cfg: ViTConfig, w: ViTWeights, ptr: number, size: number): Float32Array {
  const v = rt.heap.f32(ptr, size).slice();
  if (!w.packed) return v;
  for (const L of w.layers) {
    for (const [p, out, inF] of packedLinears(cfg, L)) {
      // a q/k/v parameter is a row slice of the packed qkv weight
      const byteEnd = p + out * inF * 4;
      if (ptr >= p && ptr < byteEnd) {
        const full = unpackLinear(rt.heap.f32(p, out * inF).slice(), out, inF);
        const off = (ptr - p) / 4;
        return full.subarray(off, off + size);
      }
    }
  }
  return v;
}

/**
 * Backward of a training forward over B images (the activations in `A`, the attention weights in
 * `probs` (per layer `[B, H, T, T]`), the pixels at `pix`, the final layer norm's output at `xF`,
 * `A.dlogits` set by the loss): adds every parameter's gradient into `g`. `cols` is `[N, C·p·p]`
 * scratch.
 */
export function vitBackward(
  rt: Runtime,
  cfg: ViTConfig,
  act: number,
  w: ViTWeights,
  g: ViTWeights,
  A: TrainActs,
  B: number,
  pix: number,
  cols: number,
  xF: number,
  probs: readonly number[],
): void {
  const { k } = rt;
  const D = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const C = cfg.num_channels;
  const p = cfg.patch_size[0];
  const [H, W] = cfg.image_size;
  const nh = cfg.num_attention_heads;
  const hs = D / nh;
  const Kp = C * p * p;
  const nl = cfg.num_labels;
  const eps = cfg.layer_norm_eps;
  const T = A.T;
  const N = T - 1;
  const BT = B * T;
  const zero = (ptr: number, n: number) => k.fill(ptr, n, 0);
  /** Linear y = x·Wᵀ + b over M rows: dx = dy·W (when dx ≠ 0), dW += dyᵀ·x, db += Σ_rows dy (when db ≠ 0). */
  const linearBack = (
    M: number,
    out: number,
    inF: number,
    dy: number,
    x: number,
    Wp: number,
    dx: number,
    dW: number,
    db: number,
  ) => {
    if (dx) k.gemm(M, inF, out, dy, out, 0, Wp, inF, 0, dx, inF, 0, 1, 0, Act.none);
    k.gemm(out, inF, M, dy, out, 1, x, inF, 0, dW, inF, 0, 1, 1, Act.none);
    if (db) k.biasGrad(db, dy, M, out, out);
  };
  /** Layer norm of x: dh += its input gradient from dx, dgamma, dbeta += theirs (statistics recomputed first). */
  const lnBack = (x: number, gamma: number, dgamma: number, dbeta: number) => {
    const rstd = A.stats + BT * 4;
    k.normStats(x, BT, D, eps, A.stats, rstd);
    k.layerNormBackward(A.dh, dgamma, dbeta, A.dx, x, gamma, A.stats, rstd, BT, D, eps);
  };

  // ---- classifier on the CLS rows (row stride T·D): dW_head += dlogitsᵀ·xF[:, 0], dxF[:, 0] = dlogits·W_head
  zero(A.dx, BT * D);
  k.gemm(nl, D, B, A.dlogits, nl, 1, xF, T * D, 0, g.headW, D, 0, 1, 1, Act.none);
  k.biasGrad(g.headB, A.dlogits, B, nl, nl);
  k.gemm(B, D, nl, A.dlogits, nl, 0, w.headW, D, 0, A.dx, T * D, 0, 1, 0, Act.none);
  // ---- final layer norm
  zero(A.dh, BT * D);
  lnBack(A.hOut, w.lnW, g.lnW, g.lnB);

  // ---- encoder layers in reverse
  const scale = 1 / Math.sqrt(hs);
  for (let l = cfg.num_hidden_layers - 1; l >= 0; l--) {
    const L = w.layers[l]!;
    const G = g.layers[l]!;
    const a = A.layers[l]!;
    // MLP: h += act(x2·W_1ᵀ + b_1)·W_2ᵀ + b_2
    linearBack(BT, D, I, A.dh, a.mlp, L.fc2W, A.dmlp, G.fc2W, G.fc2B);
    zero(A.dpre, BT * I);
    k.unaryBackward(A.dpre, A.dmlp, a.pre, BT * I, act);
    linearBack(BT, I, D, A.dpre, a.x2, L.fc1W, A.dx, G.fc1W, G.fc1B);
    lnBack(a.hMid, L.ln2W, G.ln2W, G.ln2B);
    // attention: h += ctx·W_oᵀ + b_o, ctx = softmax(q·kᵀ/√hs)·v per (image, head)
    linearBack(BT, D, D, A.dh, a.ctx, L.projW, A.dctx, G.projW, G.projB);
    zero(A.dqkv, BT * 3 * D);
    // every (image, head) slice at once, spread over the scratch groups (each slice writes its own dq, dk, dv)
    const slices: AttentionBackwardArgs[] = [];
    for (let b = 0; b < B; b++) {
      const q = a.qkv + b * T * 3 * D * 4;
      const dq = A.dqkv + b * T * 3 * D * 4;
      for (let hh = 0; hh < nh; hh++) {
        const off = hh * hs * 4;
        slices.push([
          dq + off,
          dq + D * 4 + off,
          dq + 2 * D * 4 + off,
          A.dctx + b * T * D * 4 + off,
          D,
          q + off,
          3 * D,
          q + D * 4 + off,
          3 * D,
          q + 2 * D * 4 + off,
          3 * D,
          probs[l]! + (b * nh + hh) * T * T * 4,
          0,
          A.scratch + ((b * nh + hh) % A.groups) * T * T * 4,
          T,
          T,
          hs,
          hs,
          scale,
        ]);
      }
    }
    k.attentionBackwardHeads(slices);
    linearBack(BT, 3 * D, D, A.dqkv, a.x1, L.qkvW, A.dx, G.qkvW, G.qkvB);
    lnBack(a.hIn, L.ln1W, G.ln1W, G.ln1B);
  }

  // ---- embeddings: h0[b] = [cls; patches_b] + pos
  k.biasGrad(g.posEmbed, A.dh, B, T * D, T * D); // dpos += Σ_b dh[b]
  k.biasGrad(g.clsToken, A.dh, B, D, T * D); // dcls += Σ_b dh[b, 0]
  for (let b = 0; b < B; b++) {
    const dY = A.dh + (b * T + 1) * D * 4; // [N, D]
    k.im2colPatch(pix + b * C * H * W * 4, C, H, W, p, cols); // [N, C·p·p]
    k.gemm(D, Kp, N, dY, D, 1, cols, Kp, 0, g.patchW, Kp, 0, 1, 1, Act.none); // dW_patch += dYᵀ·cols
    k.biasGrad(g.patchB, dY, N, D, D);
  }
}

/**
 * Parameters of a freshly initialised `ViTForImageClassification` under HF names, as HF's
 * `ViTPreTrainedModel._init_weights`: Linear and patch-convolution weights, `cls_token` and
 * `position_embeddings` from a normal(0, `initializerRange`) truncated at ±2σ; biases 0; layer-norm
 * gains 1 and biases 0. Seeded (mulberry32 + Box–Muller), so the same seed gives the same model.
 */
export function initViTParameters(cfg: ViTConfig, seed = 0, initializerRange = 0.02): Record<string, Tensor> {
  const rand = mulberry32(seed);
  const normal = () => {
    for (;;) {
      const u = 1 - rand();
      const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
      if (Math.abs(z) <= 2) return z * initializerRange;
    }
  };
  const D = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const C = cfg.num_channels;
  const p = cfg.patch_size[0];
  const out: Record<string, Tensor> = {};
  const put = (name: string, shape: number[], fill: "normal" | 0 | 1) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = fill === "normal" ? normal() : fill;
    out[name] = new Tensor(d, shape);
  };
  const E = "vit.embeddings.";
  put(`${E}cls_token`, [1, 1, D], "normal");
  put(`${E}position_embeddings`, [1, basePositions(cfg), D], "normal");
  put(`${E}patch_embeddings.projection.weight`, [D, C, p, p], "normal");
  put(`${E}patch_embeddings.projection.bias`, [D], 0);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const n = `vit.encoder.layer.${l}.`;
    for (const q of ["query", "key", "value"]) {
      put(`${n}attention.attention.${q}.weight`, [D, D], "normal");
      if (cfg.qkv_bias) put(`${n}attention.attention.${q}.bias`, [D], 0);
    }
    put(`${n}attention.output.dense.weight`, [D, D], "normal");
    put(`${n}attention.output.dense.bias`, [D], 0);
    put(`${n}intermediate.dense.weight`, [I, D], "normal");
    put(`${n}intermediate.dense.bias`, [I], 0);
    put(`${n}output.dense.weight`, [D, I], "normal");
    put(`${n}output.dense.bias`, [D], 0);
    put(`${n}layernorm_before.weight`, [D], 1);
    put(`${n}layernorm_before.bias`, [D], 0);
    put(`${n}layernorm_after.weight`, [D], 1);
    put(`${n}layernorm_after.bias`, [D], 0);
  }
  put("vit.layernorm.weight", [D], 1);
  put("vit.layernorm.bias", [D], 0);
  put("classifier.weight", [cfg.num_labels, D], "normal");
  put("classifier.bias", [cfg.num_labels], 0);
  return out;
}

/** An HF `config.json` object for a config (what `save` writes; `parseViTConfig` reads it back). */
export function hfConfigJson(cfg: ViTConfig): Record<string, unknown> {
  const id2label = labelNames(cfg);
  const label2id: Record<string, number> = {};
  for (const [i, label] of Object.entries(id2label)) label2id[label] = Number(i);
  return {
    architectures: ["ViTForImageClassification"],
    model_type: "vit",
    hidden_size: cfg.hidden_size,
    num_hidden_layers: cfg.num_hidden_layers,
    num_attention_heads: cfg.num_attention_heads,
    intermediate_size: cfg.intermediate_size,
    hidden_act: cfg.hidden_act,
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
    layer_norm_eps: cfg.layer_norm_eps,
    image_size: cfg.image_size[0] === cfg.image_size[1] ? cfg.image_size[0] : [...cfg.image_size],
    patch_size: cfg.patch_size[0],
    num_channels: cfg.num_channels,
    qkv_bias: cfg.qkv_bias,
    id2label,
    label2id,
    torch_dtype: "float32",
  };
}
