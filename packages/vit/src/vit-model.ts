/**
 * Vision Transformer (Dosovitskiy et al., 2020, https://arxiv.org/abs/2010.11929) inference, with
 * the names and computation of Hugging Face's `ViTModel` / `ViTForImageClassification`
 * (`transformers/models/vit/modeling_vit.py`); timm `VisionTransformer` checkpoints load into the
 * same engine (see `fromTimm`).
 *
 * llama2.c-style: the model owns one core `Runtime`; its weights are copied into the runtime heap
 * once at load; activation scratch is planned once per (batch, image size, attentions kept) and
 * reused; `forward` is a fixed sequence of core kernels:
 *
 * ```
 * patches = im2colPatch(pixels) · W_patchᵀ + b          (B, N, D)   conv2d stride p as a GEMM
 * h       = concat(cls, patches) + pos                   (B, T, D)   pos interpolated for other sizes
 * per layer:
 *   qkv = layernorm_before(h) · W_qkvᵀ + b               (B·T, 3D)   q, k, v fused at load
 *   ctx = softmax(q·kᵀ/√hs)·v     per (batch, head)      (B·T, D)    core attention kernel
 *   h  += ctx · W_oᵀ + b_o                               (B·T, D)    GEMM with beta = 1: fused residual
 *   h  += gelu(layernorm_after(h) · W_1ᵀ + b_1) · W_2ᵀ + b_2         GELU fused in the GEMM epilogue
 * last_hidden_state = layernorm(h);  logits = classifier(last_hidden_state[:, 0])
 * ```
 *
 * `ViTForImageClassification` also trains (`train()`, `parameters()`, `lossAndGrad`: nn's
 * `Trainable`, so nn's `fit` trains it): the same `run` then keeps each layer's activations, and
 * training.ts walks the layers back (see there).
 */
import {
  Act,
  type AttentionArgs,
  BinOp,
  ConfigError,
  createRuntime,
  DisposedError,
  type Heap,
  type HubOptions,
  InputError,
  type LazySafetensorsFile,
  type ModelFiles,
  openModelFiles,
  parseSafetensors,
  type Runtime,
  releaseRuntime,
  ShapeError,
  Tensor,
  tensorSource,
  WeightsError,
  writeSafetensors,
} from "@wasmformer/core";
import type { BatchResult, Trainable } from "@wasmformer/nn";
import { actCode, labelNames, parseViTConfig, patchGrid, type ViTConfig } from "./config.js";
import { type DecodeOptions, type ImageInput, toImageData } from "./image-io.js";
import { ViTImageProcessor } from "./image-processing.js";
import {
  attentionRollout,
  checkRolloutOptions,
  clsAttentionMap,
  meanAttentionDistance,
  type RolloutOptions,
  rolloutMap,
  upsampleNearest,
} from "./introspection.js";
import { interpolateBicubic, resamplePilF32 } from "./resample.js";
import {
  allocActs,
  allocGrads,
  hfConfigJson,
  initViTParameters,
  linearValues,
  type TrainActs,
  unpackEncoderWeights,
  type ViTExample,
  type ViTParam,
  vitBackward,
  vitParams,
} from "./training.js";
import {
  type AnyTensorSource,
  detectNaming,
  type LazyTensorSource,
  loadWeights,
  type Naming,
  type TensorSource,
  tensorMeta,
  type ViTWeights,
} from "./weights.js";

export type { ViTExample, ViTParam } from "./training.js";

/** What `forward` returns. Tensors are copies (they do not alias wasm memory). */
export interface ViTOutput {
  /** `[B, T, D]`, after the final layer norm; token 0 is CLS. */
  lastHiddenState: Tensor<"f32">;
  /** `[B, num_labels]` when the model has a classifier. */
  logits?: Tensor<"f32">;
  /** `[B, D]`: `tanh(dense(last_hidden_state[:, 0]))`, when the checkpoint has HF's pooler. */
  poolerOutput?: Tensor<"f32">;
  /**
   * With `outputHiddenStates`: L + 1 tensors `[B, T, D]`, the embeddings' output and each layer's
   * output (before the final layer norm), as HF's `hidden_states`.
   */
  hiddenStates?: Tensor<"f32">[];
  /** Per layer `[B, H, T, T]` softmax weights (queries × keys), with `outputAttentions`. */
  attentions?: Tensor<"f32">[];
  /** Patch grid `[gh, gw]` of this input. */
  grid: [number, number];
}

export interface ForwardOptions {
  /** Keep and return every layer's attention weights (costs L·B·H·T² floats of scratch). */
  outputAttentions?: boolean;
  /** Also return the residual stream after the embeddings and after every layer (HF `output_hidden_states`). */
  outputHiddenStates?: boolean;
}

/** How the position-embedding grid is resized for other image sizes. */
export type PosInterpolation = "bicubic" | "bicubic-antialias";

export interface LoadOptions {
  /** Runtime to own (default: a fresh `createRuntime()`: wasm after `await init()`, else ref). */
  runtime?: Runtime;
  /** `"bicubic"`: HF `interpolate_pos_encoding` (PyTorch bicubic, no antialias; the default for HF
   * checkpoints). `"bicubic-antialias"`: timm `resample_abs_pos_embed` (the default for timm). */
  posInterpolation?: PosInterpolation;
  /** @internal Repack the encoder weights for `gemmPacked` at load (default true; false = plain `gemm`, for A/B). */
  packWeights?: boolean;
  /**
   * Checkpoint tensors the config does not use are a `WeightsError` (default true, as PyTorch's
   * strict `load_state_dict`); the extras HF itself ignores (`embeddings.mask_token`, the pooler
   * of a classifier, the classifier of a backbone) are always accepted. false: ignore them all.
   */
  strict?: boolean;
}

/**
 * Source of a checkpoint: safetensors bytes, any named-tensor source, or a lazily read file
 * (`await openSafetensors(pathOrBlobOrUrl)` from core: tensors are read one at a time, so the
 * whole file is never held in memory besides the heap).
 */
export type WeightsInput = Uint8Array | ArrayBuffer | TensorSource | LazyTensorSource;

/** A Hugging Face checkpoint: parsed `config.json`, `model.safetensors`, optional `preprocessor_config.json`. */
export interface PretrainedSource {
  config: unknown;
  weights: WeightsInput;
  preprocessor?: unknown;
}

/** A timm checkpoint: weights, optional timm `config.json`, optional head count. */
export interface TimmSource {
  weights: WeightsInput;
  config?: unknown;
  numHeads?: number;
  preprocessor?: unknown;
}

/** One class of a classification result. */
export interface Prediction {
  index: number;
  label: string;
  /** softmax probability */
  score: number;
}

/** Options of the introspection helpers. */
export interface AttentionMapOptions {
  /** Layer (default: the last); negative counts from the end. */
  layer?: number;
}

interface Plan {
  B: number;
  H: number;
  W: number;
  gh: number;
  gw: number;
  N: number; // patches
  T: number; // tokens = N + 1
  keepAttn: boolean;
  pix: number; // [B, C, H, W]
  cols: number; // [N, C·p·p] im2col of one image
  h: number; // [B·T, D] residual stream
  x: number; // [B·T, D] normed / final hidden state
  qkv: number; // [B·T, 3D]
  ctx: number; // [B·T, D]
  mlp: number; // [B·T, I]
  pos: number; // [T, D] position embeddings for this grid (may be the weights themselves)
  probs: number[]; // per layer [B, H, T, T] (keepAttn) or one [H, T, T] scratch repeated
  logits: number; // [B, num_labels] or 0
  pooled: number; // [B, D] or 0
}

/** Models whose runtime their loader created (not passed in `LoadOptions.runtime`): `dispose()` releases it. */
const ownsRuntime = new WeakSet<ViTModel>();

function toSource(weights: WeightsInput): AnyTensorSource {
  if (weights instanceof Uint8Array || weights instanceof ArrayBuffer) return parseSafetensors(weights);
  return weights;
}

/**
 * A ViT encoder (HF `ViTModel`) with an optional classifier head. Use `ViTForImageClassification`
 * when the classifier is required.
 * @example
 * ```ts
 * await init();
 * const model = await ViTModel.fromPretrained({ config, weights: bytes }); // config.json object, safetensors bytes
 * const { lastHiddenState } = model.forward(pixelValues);                  // [B, 3, 224, 224] → [B, 197, D]
 * ```
 */
export class ViTModel {
  readonly config: ViTConfig;
  readonly rt: Runtime;
  /** Checkpoint naming it was loaded from. */
  readonly naming: Naming;
  /** Milliseconds from checkpoint bytes (or tensors) to a ready model. */
  loadMs = 0;
  /** Image preprocessing (from `preprocessor_config.json`, else HF ViT defaults at `image_size`). */
  processor: ViTImageProcessor;
  protected readonly w: ViTWeights;
  protected readonly act: number;
  private readonly posInterp: PosInterpolation;
  private readonly weightsMark: number;
  /** Where the activation plan starts: after the weights, or after the training buffers. */
  protected planBase: number;
  /** Heap top after our last allocation (weights or plan). */
  protected top: number;
  /** Lowest heap address `releaseAbove` may free to: above any foreign allocation seen above ours. */
  private floor: number;
  protected plan: Plan | undefined;
  private disposed = false;
  /** The class name `DisposedError` reports (explicit: minifiers rename classes). */
  protected readonly modelName: string = "ViTModel";

  /** @internal use `fromPretrained` / `fromTimm` */
  constructor(cfg: ViTConfig, rt: Runtime, w: ViTWeights, naming: Naming, posInterp: PosInterpolation) {
    this.config = cfg;
    this.rt = rt;
    this.w = w;
    this.naming = naming;
    this.act = actCode(cfg.hidden_act);
    this.posInterp = posInterp;
    this.weightsMark = rt.heap.mark();
    this.planBase = this.weightsMark;
    this.top = this.weightsMark;
    this.floor = this.weightsMark;
    this.processor = ViTImageProcessor.fromConfig({}, cfg.image_size[0]);
    if (cfg.image_size[0] !== cfg.image_size[1]) {
      this.processor = ViTImageProcessor.fromConfig({ size: { height: cfg.image_size[0], width: cfg.image_size[1] } });
    }
  }

  /**
   * Free the model's wasm memory at once: the runtime its loader created goes back to core
   * (`releaseRuntime`), to be reused by the next model; a runtime passed in `LoadOptions.runtime`
   * stays the caller's. Every later call throws a `DisposedError`. Calling it twice does nothing.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.plan = undefined;
    if (ownsRuntime.has(this)) releaseRuntime(this.rt);
  }

  /** Throw a `DisposedError` once `dispose()` has been called. */
  protected checkLive(): void {
    if (this.disposed) throw new DisposedError(this.modelName);
  }

  /** Whether a classifier head is loaded. */
  get hasClassifier(): boolean {
    return this.w.headW !== 0;
  }

  /** Bytes of parameters in the heap. */
  get weightBytes(): number {
    return this.w.bytes;
  }

  /**
   * Load a Hugging Face checkpoint: `config` is the parsed `config.json`, `weights` the
   * `model.safetensors` bytes (or a tensor source). Works for `ViTModel` (names without prefix,
   * e.g. DINO `facebook/dino-vits16`) and `ViTForImageClassification` (`vit.` prefix + `classifier`).
   * A string is a folder (Node) or a Hugging Face model id such as `google/vit-base-patch16-224`
   * (`owner/name[@revision]`, downloaded once and cached): see `loadViTModel`.
   */
  static async fromPretrained(src: PretrainedSource | string, opts: PretrainedLoadOptions = {}): Promise<ViTModel> {
    if (typeof src === "string") return loadViTModel(src, opts);
    return buildHf(ViTModel, src, opts, "optional");
  }

  /**
   * Load a timm `VisionTransformer` checkpoint (`patch_embed.proj`, `cls_token`, `pos_embed`,
   * `blocks.{i}.attn.qkv` fused [q; k; v], `norm`, `head`), e.g. `vit_tiny_patch16_224`, DeiT,
   * or the original DINO ViT-S/B weights (no head).
   *
   * Sizes are read from the tensors; the head count, which the tensors cannot tell, from
   * `numHeads`, else from the `architecture` name (`tiny` 3, `small` 6, `medium` 8, `base` 12,
   * `large`/`huge`/`giant` 16), else head size 64. `config` is timm's `config.json` (optional:
   * `architecture`, `num_classes`, `label_names`, `pretrained_cfg.input_size`).
   */
  static async fromTimm(src: TimmSource, opts: LoadOptions = {}): Promise<ViTModel> {
    return buildTimm(ViTModel, src, opts, "optional");
  }

  // -------------------------------------------------------------------------------------------
  // planning

  /** Activation scratch for (B, H, W, keepAttn), allocated after the weights; the last plan is reused. */
  protected planFor(B: number, H: number, W: number, keepAttn: boolean): Plan {
    const p0 = this.plan;
    if (p0 && p0.B === B && p0.H === H && p0.W === W && p0.keepAttn === keepAttn) return p0;
    this.releaseAbove(this.planBase);
    const heap = this.rt.heap;
    const cfg = this.config;
    const D = cfg.hidden_size;
    const I = cfg.intermediate_size;
    const C = cfg.num_channels;
    const p = cfg.patch_size[0];
    const nh = cfg.num_attention_heads;
    const L = cfg.num_hidden_layers;
    const [gh, gw] = patchGrid(cfg, H, W);
    const N = gh * gw;
    const T = N + 1;
    const probsFloats = keepAttn ? L * B * nh * T * T : nh * T * T;
    const floats =
      B * C * H * W +
      N * C * p * p +
      2 * B * T * D +
      B * T * 3 * D +
      B * T * D +
      B * T * I +
      T * D +
      probsFloats +
      B * (cfg.num_labels + D);
    heap.reserve(floats * 4 + 16 * 16);
    const f = (n: number) => heap.allocF32(Math.max(n, 1));
    const plan: Plan = {
      B,
      H,
      W,
      gh,
      gw,
      N,
      T,
      keepAttn,
      pix: f(B * C * H * W),
      cols: f(N * C * p * p),
      h: f(B * T * D),
      x: f(B * T * D),
      qkv: f(B * T * 3 * D),
      ctx: f(B * T * D),
      mlp: f(B * T * I),
      pos: 0,
      probs: [],
      logits: this.w.headW ? f(B * cfg.num_labels) : 0,
      pooled: this.w.poolerW ? f(B * D) : 0,
    };
    if (keepAttn) for (let l = 0; l < L; l++) plan.probs.push(f(B * nh * T * T));
    else {
      const s = f(nh * T * T);
      for (let l = 0; l < L; l++) plan.probs.push(s);
    }
    const [g0h, g0w] = patchGrid(cfg, cfg.image_size[0], cfg.image_size[1]);
    if (gh === g0h && gw === g0w) {
      plan.pos = this.w.posEmbed;
    } else {
      plan.pos = f(T * D);
      const table = heap.f32(this.w.posEmbed, (g0h * g0w + 1) * D).slice();
      const grid = table.subarray(D); // [g0h, g0w, D]
      const resized =
        this.posInterp === "bicubic"
          ? interpolateBicubic(grid, g0h, g0w, D, gh, gw)
          : resamplePilF32(grid, g0h, g0w, D, gh, gw, "bicubic");
      const dst = heap.f32(plan.pos, T * D);
      dst.set(table.subarray(0, D), 0); // the CLS position is kept as is
      dst.set(resized, D);
    }
    this.plan = plan;
    this.top = heap.mark();
    return plan;
  }

  /**
   * Drop the plan and free the heap down to `mark` (one of ours), but never below `floor`. Someone
   * who allocated above our last allocation (an optimizer's moments, another model on a shared
   * runtime) raises `floor` to the heap top: their memory is never freed under them, and our later
   * plans go above it.
   */
  protected releaseAbove(mark: number): void {
    const heap = this.rt.heap;
    if (heap.mark() === this.top) heap.release(Math.max(mark, this.floor));
    else this.floor = heap.mark();
    this.plan = undefined;
    this.top = heap.mark();
  }

  /** Heap bytes in use (weights + current plan). */
  get heapBytes(): number {
    this.checkLive();
    return this.rt.heap.used();
  }

  // -------------------------------------------------------------------------------------------
  // forward

  /** Check `pixelValues` `[B, C, H, W]` against the config; every value must be finite. */
  protected checkPixels(pixelValues: Tensor): [number, number, number] {
    const cfg = this.config;
    if (!(pixelValues instanceof Tensor))
      throw new InputError("pixel_values must be a Tensor [batch, channels, height, width]");
    if (pixelValues.dtype !== "f32") throw new InputError(`pixel_values must be f32, got ${pixelValues.dtype}`);
    if (pixelValues.ndim !== 4) {
      throw new ShapeError(
        `pixel_values must be [batch, channels, height, width], got [${pixelValues.shape.join(", ")}]`,
      );
    }
    const [B, C, H, W] = pixelValues.shape as [number, number, number, number];
    if (C !== cfg.num_channels) {
      throw new InputError(
        `pixel_values has ${C} channels, the model was configured with num_channels = ${cfg.num_channels}`,
      );
    }
    if (B < 1) throw new InputError("pixel_values has an empty batch");
    const p = cfg.patch_size[0];
    if (H < p || W < p) throw new InputError(`image ${H}x${W} is smaller than one ${p}x${p} patch`);
    const data = pixelValues.data as Float32Array;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i]!)) {
        const idx = [Math.floor(i / (C * H * W)), Math.floor(i / (H * W)) % C, Math.floor(i / W) % H, i % W];
        throw new InputError(`pixel_values[${idx.join(", ")}] = ${data[i]} is not finite`);
      }
    }
    return [B, H, W];
  }

  /**
   * Run the encoder (and the classifier, if loaded) on `pixelValues` `[B, C, H, W]` (already
   * preprocessed). Other image sizes than `config.image_size` use interpolated position embeddings.
   */
  forward(pixelValues: Tensor, opts: ForwardOptions = {}): ViTOutput {
    this.checkLive();
    if (typeof opts !== "object" || opts === null)
      throw new InputError(`forward: options must be an object, got ${String(opts)}`);
    for (const k of ["outputAttentions", "outputHiddenStates"] as const) {
      if (opts[k] !== undefined && typeof opts[k] !== "boolean")
        throw new InputError(`forward: ${k} must be a boolean, got ${JSON.stringify(opts[k])}`);
    }
    const [B, H, W] = this.checkPixels(pixelValues);
    const keepAttn = opts.outputAttentions ?? false;
    const P = this.planFor(B, H, W, keepAttn);
    const hidden: Tensor<"f32">[] | undefined = opts.outputHiddenStates ? [] : undefined;
    this.run(P, pixelValues.data as Float32Array, hidden);
    const out = this.collect(P);
    if (hidden) out.hiddenStates = hidden;
    return out;
  }

  /**
   * The forward. With `acts` (training) each layer's activations are written to its own buffers
   * for the backward (and the MLP's activation runs apart from its GEMM, to keep its input);
   * without, the inference path: shared scratch, activation fused in the GEMM.
   */
  protected run(P: Plan, pixels: Float32Array, hidden?: Tensor<"f32">[], acts?: TrainActs): void {
    const { k, heap } = this.rt;
    const cfg = this.config;
    const w = this.w;
    const { B, H, W, N, T } = P;
    const D = cfg.hidden_size;
    const I = cfg.intermediate_size;
    const C = cfg.num_channels;
    const p = cfg.patch_size[0];
    const nh = cfg.num_attention_heads;
    const hs = D / nh;
    const K = C * p * p;
    const eps = cfg.layer_norm_eps;
    const BT = B * T;
    heap.f32(P.pix, B * C * H * W).set(pixels);

    // ---- embeddings: h[b] = [cls; patches·Wᵀ + b] + pos                               (B, T, D)
    for (let b = 0; b < B; b++) {
      const hb = P.h + b * T * D * 4;
      k.im2colPatch(P.pix + b * C * H * W * 4, C, H, W, p, P.cols); // (N, C·p·p)
      k.gemm(N, D, K, P.cols, K, 0, w.patchW, K, 1, hb + D * 4, D, w.patchB, 1, 0, Act.none);
      k.copy2d(w.clsToken, D, hb, D, 1, D);
      k.binary(hb, P.pos, hb, T, D, D, 1, BinOp.add);
    }

    // the residual stream, copied out on request (HF hidden_states)
    const keep = hidden ? () => hidden.push(new Tensor(heap.f32(P.h, BT * D).slice(), [B, T, D])) : () => {};
    keep();

    // ---- encoder layers (pre-norm)
    const scale = 1 / Math.sqrt(hs);
    /** y (M, N) = act(x (M, K) · Wᵀ + b + beta·y) for an encoder weight (packed or [N, K], see packEncoderWeights) */
    const linear = (
      M: number,
      N: number,
      K: number,
      x: number,
      W: number,
      y: number,
      b: number,
      beta: number,
      a: number,
    ) =>
      w.packed
        ? k.gemmPacked(M, N, K, x, K, 0, W, y, N, b, 1, beta, a)
        : k.gemm(M, N, K, x, K, 0, W, K, 1, y, N, b, 1, beta, a);
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const Lw = w.layers[l]!;
      const a = acts?.layers[l];
      if (a) k.copy2d(P.h, D, a.hIn, D, BT, D);
      const x1 = a ? a.x1 : P.x;
      const qkv = a ? a.qkv : P.qkv;
      const ctx = a ? a.ctx : P.ctx;
      k.layerNorm(P.h, x1, BT, D, Lw.ln1W, Lw.ln1B, eps);
      linear(BT, 3 * D, D, x1, Lw.qkvW, qkv, Lw.qkvB, 0, Act.none); // (B·T, 3D)
      const probs = P.probs[l]!;
      // every head of an image in one call (the kernel threads split it by head, and by query rows)
      for (let b = 0; b < B; b++) {
        const q = qkv + b * T * 3 * D * 4;
        const heads: AttentionArgs[] = [];
        for (let hh = 0; hh < nh; hh++) {
          const off = hh * hs * 4;
          const pr = probs + ((P.keepAttn ? b * nh : 0) + hh) * T * T * 4;
          heads.push([
            q + off,
            3 * D,
            q + D * 4 + off,
            3 * D,
            q + 2 * D * 4 + off,
            3 * D,
            ctx + b * T * D * 4 + off,
            D,
            pr,
            T,
            T,
            hs,
            hs,
            scale,
            0,
            0,
            0,
            -1,
          ]);
        }
        k.attentionHeads(heads);
      }
      linear(BT, D, D, ctx, Lw.projW, P.h, Lw.projB, 1, Act.none); // h += attn
      if (a) k.copy2d(P.h, D, a.hMid, D, BT, D);
      const x2 = a ? a.x2 : P.x;
      k.layerNorm(P.h, x2, BT, D, Lw.ln2W, Lw.ln2B, eps);
      if (a) {
        linear(BT, I, D, x2, Lw.fc1W, a.pre, Lw.fc1B, 0, Act.none); // (B·T, I) before the activation
        k.unary(a.pre, a.mlp, BT * I, this.act);
      } else linear(BT, I, D, x2, Lw.fc1W, P.mlp, Lw.fc1B, 0, this.act); // (B·T, I)
      linear(BT, D, I, a ? a.mlp : P.mlp, Lw.fc2W, P.h, Lw.fc2B, 1, Act.none); // h += mlp
      keep();
    }
    if (acts) k.copy2d(P.h, D, acts.hOut, D, BT, D);
    k.layerNorm(P.h, P.x, BT, D, w.lnW, w.lnB, eps); // last_hidden_state

    // ---- heads on the CLS rows (row stride T·D)
    if (P.logits) {
      k.gemm(B, cfg.num_labels, D, P.x, T * D, 0, w.headW, D, 1, P.logits, cfg.num_labels, w.headB, 1, 0, Act.none);
    }
    if (P.pooled) k.gemm(B, D, D, P.x, T * D, 0, w.poolerW, D, 1, P.pooled, D, w.poolerB, 1, 0, Act.tanh);
  }

  private collect(P: Plan): ViTOutput {
    const heap = this.rt.heap;
    const cfg = this.config;
    const { B, T } = P;
    const D = cfg.hidden_size;
    const nh = cfg.num_attention_heads;
    const out: ViTOutput = {
      lastHiddenState: new Tensor(heap.f32(P.x, B * T * D).slice(), [B, T, D]),
      grid: [P.gh, P.gw],
    };
    if (P.logits) out.logits = new Tensor(heap.f32(P.logits, B * cfg.num_labels).slice(), [B, cfg.num_labels]);
    if (P.pooled) out.poolerOutput = new Tensor(heap.f32(P.pooled, B * D).slice(), [B, D]);
    if (P.keepAttn)
      out.attentions = P.probs.map((pr) => new Tensor(heap.f32(pr, B * nh * T * T).slice(), [B, nh, T, T]));
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // images and introspection

  /** Images (raw pixels, PNG/JPEG bytes, browser images) → `pixel_values` through `processor`. */
  async pixelValues(images: ImageInput | readonly ImageInput[], opts: DecodeOptions = {}): Promise<Tensor<"f32">> {
    this.checkLive();
    const list = Array.isArray(images) ? (images as readonly ImageInput[]) : [images as ImageInput];
    const raws = await Promise.all(list.map((im) => toImageData(im, opts)));
    return this.processor.preprocess(raws);
  }

  private inputs(x: Tensor | ImageInput | readonly ImageInput[]): Promise<Tensor> {
    return x instanceof Tensor ? Promise.resolve(x) : this.pixelValues(x);
  }

  private layerIndex(layer: number | undefined): number {
    const L = this.config.num_hidden_layers;
    if (layer !== undefined && !Number.isInteger(layer))
      throw new InputError(`layer must be an integer layer index, got ${JSON.stringify(layer)}`);
    const l = layer === undefined ? L - 1 : layer < 0 ? L + layer : layer;
    if (!Number.isInteger(l) || l < 0 || l >= L)
      throw new InputError(`layer ${layer} out of range (the model has ${L} layers)`);
    return l;
  }

  /**
   * The CLS token's attention to the patches, per head, of one layer (the last by default), as in
   * DINO: `grid` `[B, H, gh, gw]` and `image` `[B, H, gh·p, gw·p]` (nearest upsampling by the patch
   * size, over the pixels the model saw).
   */
  async clsAttention(
    x: Tensor | ImageInput | readonly ImageInput[],
    opts: AttentionMapOptions = {},
  ): Promise<{ grid: Tensor<"f32">; image: Tensor<"f32"> }> {
    this.checkLive();
    if (typeof opts !== "object" || opts === null) {
      throw new InputError(`clsAttention: options must be an object { layer?: number }, got ${String(opts)}`);
    }
    const unknown = Object.keys(opts).find((k) => k !== "layer");
    if (unknown !== undefined) throw new InputError(`clsAttention: unknown option "${unknown}" (allowed: layer)`);
    const l = this.layerIndex(opts.layer);
    const out = this.forward(await this.inputs(x), { outputAttentions: true });
    const grid = clsAttentionMap(out.attentions![l]!, out.grid);
    const p = this.config.patch_size[0];
    return { grid, image: upsampleNearest(grid, out.grid[0] * p, out.grid[1] * p) };
  }

  /**
   * Attention rollout (Abnar & Zuidema, 2020) of the CLS token over the patches: `map` `[B, gh, gw]`
   * (divided by its maximum), and the full `[B, T, T]` rollout.
   */
  async attentionRollout(
    x: Tensor | ImageInput | readonly ImageInput[],
    opts: RolloutOptions = {},
  ): Promise<{ map: Tensor<"f32">; rollout: Tensor<"f32"> }> {
    this.checkLive();
    checkRolloutOptions(opts, this.config.num_hidden_layers); // before the model runs
    const out = this.forward(await this.inputs(x), { outputAttentions: true });
    const rollout = attentionRollout(out.attentions!, opts);
    return { map: rolloutMap(rollout, out.grid, { normalize: true }), rollout };
  }

  /** Mean attention distance in pixels per layer and head, `[B, L, H]` (FORMAT.md §6.11). */
  async meanAttentionDistance(x: Tensor | ImageInput | readonly ImageInput[]): Promise<Tensor<"f32">> {
    this.checkLive();
    const out = this.forward(await this.inputs(x), { outputAttentions: true });
    return meanAttentionDistance(out.attentions!, out.grid, this.config.patch_size[0]);
  }
}

/**
 * A ViT with its classification head (HF `ViTForImageClassification`: `ViTModel` without pooler +
 * `classifier` on the CLS token; or timm's `head`).
 */
export class ViTForImageClassification extends ViTModel implements Trainable<ViTExample> {
  protected override readonly modelName: string = "ViTForImageClassification";
  /** Gradient buffers (allocated by the first `train()`, kept until `dispose()`). */
  private grads: ViTWeights | undefined;
  /** Heap mark after the gradient buffers. */
  private gradsEnd = 0;
  /** Activation buffers: present exactly in training mode. */
  private acts: TrainActs | undefined;
  /** The encoder weights were packed at load: `eval()` packs them again. */
  private repack = false;
  private lossOpts = { ignoreIndex: -100, labelSmoothing: 0 };

  private labels?: Record<string, string>;

  /** Class index → label: `config.id2label`, or `LABEL_i` for each of `num_labels` classes when the config gave no names. */
  get id2label(): Record<string, string> {
    this.labels ??= labelNames(this.config);
    return this.labels;
  }

  /** A checkpoint (see `ViTModel.fromPretrained`), a folder or a model id; the classifier is required. */
  static override async fromPretrained(
    src: PretrainedSource | string,
    opts: PretrainedLoadOptions = {},
  ): Promise<ViTForImageClassification> {
    if (typeof src === "string") return loadViTForImageClassification(src, opts);
    return buildHf(ViTForImageClassification, src, opts, "required");
  }

  static override async fromTimm(src: TimmSource, opts: LoadOptions = {}): Promise<ViTForImageClassification> {
    return buildTimm(ViTForImageClassification, src, opts, "required");
  }

  override forward(pixelValues: Tensor, opts: ForwardOptions = {}): ViTOutput & { logits: Tensor<"f32"> } {
    return super.forward(pixelValues, opts) as ViTOutput & { logits: Tensor<"f32"> };
  }

  /**
   * Classify images: the `topK` most probable labels (softmax over the logits), best first.
   * One image → `Prediction[]`; an array of images → one list per image.
   * @example
   * ```ts
   * const top = await model.classify(await loadImage("cat.jpg"), { topK: 3 });
   * // [{ index: 281, label: "tabby, tabby cat", score: 0.91 }, …]
   * ```
   */
  async classify(images: ImageInput | Tensor, opts?: { topK?: number }): Promise<Prediction[]>;
  async classify(images: readonly ImageInput[], opts?: { topK?: number }): Promise<Prediction[][]>;
  async classify(
    images: ImageInput | Tensor | readonly ImageInput[],
    opts: { topK?: number } = {},
  ): Promise<Prediction[] | Prediction[][]> {
    this.checkLive();
    if (typeof opts !== "object" || opts === null)
      throw new InputError(`classify: options must be an object { topK?: number }, got ${String(opts)}`);
    const n = this.config.num_labels;
    const topK = opts.topK ?? 5;
    if (!Number.isInteger(topK) || topK < 1) throw new InputError(`topK must be a positive integer, got ${topK}`);
    const px = images instanceof Tensor ? images : await this.pixelValues(images as ImageInput | readonly ImageInput[]);
    const { logits } = this.forward(px);
    const B = logits.shape[0]!;
    const k = Math.min(topK, n);
    const lists: Prediction[][] = [];
    for (let b = 0; b < B; b++) {
      const row = logits.data.subarray(b * n, (b + 1) * n);
      let max = Number.NEGATIVE_INFINITY;
      for (const v of row) max = Math.max(max, v);
      let z = 0;
      for (const v of row) z += Math.exp(v - max);
      const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => row[j]! - row[i]! || i - j);
      lists.push(
        order.slice(0, k).map((i) => ({
          index: i,
          label: this.config.id2label[String(i)] ?? `LABEL_${i}`,
          score: Math.exp(row[i]! - max) / z,
        })),
      );
    }
    return Array.isArray(images) ? lists : lists[0]!;
  }

  // -------------------------------------------------------------------------------------------
  // training (training.ts)

  /**
   * A fresh, randomly initialised model (HF's `_init_weights`, seeded) for a `config.json` object
   * with `id2label` or `num_labels`, to be trained from scratch.
   */
  static async fromConfig(
    config: unknown,
    opts: LoadOptions & { seed?: number; initializerRange?: number } = {},
  ): Promise<ViTForImageClassification> {
    const cfg = parseViTConfig(config);
    if (cfg.num_labels === 0)
      throw new ConfigError("a classification model needs id2label (or num_labels)", "id2label");
    const range = opts.initializerRange ?? (config as { initializer_range?: unknown }).initializer_range ?? 0.02;
    if (typeof range !== "number" || !(range >= 0) || !Number.isFinite(range))
      throw new ConfigError(`expected a non-negative number, got ${JSON.stringify(range)}`, "initializer_range");
    const seed = opts.seed ?? 0;
    if (!Number.isInteger(seed)) throw new InputError(`fromConfig: seed must be an integer, got ${String(seed)}`);
    const weights = tensorSource(initViTParameters(cfg, seed, range));
    return ViTForImageClassification.fromPretrained({ config: hfConfigJson(cfg), weights }, opts);
  }

  /** The runtime holding the parameters (nn's `Trainable`). */
  get runtime(): Runtime {
    return this.rt;
  }

  /** Whether the model is in training mode (`train()`), as PyTorch's `module.training`. */
  get training(): boolean {
    return this.acts !== undefined;
  }

  /**
   * Enter training mode: gradient buffers are allocated (once; they stay until `dispose()`, so
   * `parameters()` and optimizers built on them remain valid across `eval()` / `train()`),
   * activation buffers are planned for batches of up to `maxBatch` images (default 32; a larger
   * batch re-plans them), and the encoder weights are unpacked to their checkpoint layout
   * `[out, in]`, where the optimizer updates them in place. `labelSmoothing` and `ignoreIndex`
   * set the loss (PyTorch `cross_entropy`). Training uses the config's image size, no dropout.
   */
  train(opts: { maxBatch?: number; labelSmoothing?: number; ignoreIndex?: number } = {}): this {
    this.checkLive();
    if (typeof opts !== "object" || opts === null)
      throw new InputError(`train: options must be an object, got ${String(opts)}`);
    const maxBatch = opts.maxBatch ?? this.acts?.maxBatch ?? 32;
    if (!Number.isInteger(maxBatch) || maxBatch < 1)
      throw new InputError(`train: maxBatch must be a positive integer, got ${String(maxBatch)}`);
    const eps = opts.labelSmoothing ?? this.lossOpts.labelSmoothing;
    if (typeof eps !== "number" || !(eps >= 0 && eps <= 1))
      throw new InputError(`train: labelSmoothing must be a number in [0, 1], got ${String(eps)}`);
    const ignore = opts.ignoreIndex ?? this.lossOpts.ignoreIndex;
    if (!Number.isInteger(ignore) || (ignore >= 0 && ignore < this.config.num_labels))
      throw new InputError(
        `train: ignoreIndex must be an integer outside [0, ${this.config.num_labels}), got ${ignore}`,
      );
    this.lossOpts = { ignoreIndex: ignore, labelSmoothing: eps };
    if (!this.grads) {
      this.releaseAbove(this.planBase);
      this.grads = allocGrads(this.rt.heap, this.config, this.w);
      this.gradsEnd = this.rt.heap.mark();
      this.top = this.gradsEnd;
    }
    if (this.w.packed) {
      unpackEncoderWeights(this.rt, this.config, this.w);
      this.repack = true;
    }
    if (!this.acts || this.acts.maxBatch < maxBatch) this.planActs(maxBatch);
    return this;
  }

  /**
   * Back to inference: activation buffers are freed, the encoder weights packed again (when they
   * were at load), and `forward` runs exactly the inference path. Gradient buffers stay.
   */
  eval(): this {
    this.checkLive();
    if (!this.acts) return this;
    this.acts = undefined;
    this.releaseAbove(this.gradsEnd);
    this.planBase = this.top;
    if (this.repack) packEncoderWeights(this.rt, this.config, this.w);
    return this;
  }

  private planActs(maxBatch: number): void {
    this.acts = undefined;
    this.releaseAbove(this.gradsEnd);
    this.acts = allocActs(this.rt.heap, this.config, maxBatch, this.rt.threads);
    this.top = this.rt.heap.mark();
    this.planBase = this.top;
  }

  /**
   * Every trainable tensor under its Hugging Face name (`vit.embeddings.cls_token`,
   * `vit.encoder.layer.0.attention.attention.query.weight`, …, `classifier.bias`), in the order of
   * HF's `state_dict()`, with its shape; values and gradients in the runtime heap, in checkpoint
   * layout. Needs `train()` first (the gradient buffers). Freeze by name with nn's `selectParams`.
   */
  parameters(): ViTParam[] {
    this.checkLive();
    if (!this.grads) throw new InputError("parameters: call train() first (it allocates the gradient buffers)");
    return vitParams(this.config, this.w, this.grads);
  }

  /** Validate a batch and gather its pixels `[B, C, H, W]` and labels. */
  private batchInputs(batch: readonly ViTExample[], where: string): { pixels: Float32Array; labels: Int32Array } {
    const cfg = this.config;
    if (!Array.isArray(batch) || batch.length === 0)
      throw new InputError(`${where}: the batch must be a non-empty array`);
    const C = cfg.num_channels;
    const [H, W] = cfg.image_size;
    const n = C * H * W;
    const pixels = new Float32Array(batch.length * n);
    const labels = new Int32Array(batch.length);
    const { ignoreIndex } = this.lossOpts;
    batch.forEach((ex, b) => {
      if (typeof ex !== "object" || ex === null) throw new InputError(`${where}: example ${b} is not an object`);
      const px = ex.pixelValues;
      let data: Float32Array;
      if (px instanceof Tensor) {
        const s = px.shape;
        const ok =
          px.dtype === "f32" &&
          (s.length === 3 || (s.length === 4 && s[0] === 1)) &&
          s.slice(-3).join() === `${C},${H},${W}`;
        if (!ok) {
          throw new ShapeError(
            `${where}: example ${b} pixelValues must be f32 [${C}, ${H}, ${W}], got ${px.dtype} [${s.join(", ")}]`,
          );
        }
        data = px.data as Float32Array;
      } else if (px instanceof Float32Array) {
        if (px.length !== n)
          throw new ShapeError(
            `${where}: example ${b} pixelValues has ${px.length} values, expected ${C}·${H}·${W} = ${n}`,
          );
        data = px;
      } else throw new InputError(`${where}: example ${b} pixelValues must be a Tensor or a Float32Array`);
      for (let i = 0; i < n; i++) {
        if (!Number.isFinite(data[i]!))
          throw new InputError(`${where}: example ${b} pixel ${i} = ${data[i]} is not finite`);
      }
      pixels.set(data, b * n);
      const y = ex.label;
      if (!Number.isInteger(y) || ((y < 0 || y >= cfg.num_labels) && y !== ignoreIndex)) {
        throw new InputError(
          `${where}: example ${b} label ${String(y)} is outside [0, ${cfg.num_labels}) and is not ignoreIndex ${ignoreIndex}`,
        );
      }
      labels[b] = y;
    });
    return { pixels, labels };
  }

  /** Mean cross-entropy of the logits at `P.logits` (dlogits scaled by `dloss` when `dlogits` ≠ 0), count and correct. */
  private loss(
    P: Plan,
    labels: Int32Array,
    lossPtr: number,
    labelsPtr: number,
    dlogits: number,
    dloss: number,
  ): BatchResult {
    const { k, heap } = this.rt;
    const nl = this.config.num_labels;
    const B = labels.length;
    heap.i32(labelsPtr, B).set(labels);
    if (dlogits) heap.f32(dlogits, B * nl).fill(0);
    const { ignoreIndex, labelSmoothing } = this.lossOpts;
    k.softmaxCrossEntropy(P.logits, dlogits, nl, B, nl, labelsPtr, ignoreIndex, labelSmoothing, 0, dloss, lossPtr);
    const loss = heap.f32(lossPtr, 1)[0]!;
    const logits = heap.f32(P.logits, B * nl);
    let count = 0;
    let correct = 0;
    for (let b = 0; b < B; b++) {
      if (labels[b] === ignoreIndex) continue;
      count++;
      let best = 0;
      for (let j = 1; j < nl; j++) if (logits[b * nl + j]! > logits[b * nl + best]!) best = j;
      if (best === labels[b]) correct++;
    }
    return { loss, count, correct };
  }

  /**
   * Forward + backward over a batch in training mode: mean cross-entropy over the examples whose
   * label is not `ignoreIndex`, and `scale · ∂loss/∂θ` added into every parameter's gradient
   * (zero them first: `fit` and the optimizers' `zeroGrad` do). Also reports accuracy.
   */
  lossAndGrad(batch: readonly ViTExample[], scale = 1): BatchResult {
    this.checkLive();
    if (!this.acts) throw new InputError("lossAndGrad: the model is in inference mode; call train() first");
    if (!Number.isFinite(scale)) throw new InputError(`lossAndGrad: scale must be finite, got ${scale}`);
    const { pixels, labels } = this.batchInputs(batch, "lossAndGrad");
    const B = labels.length;
    if (B > this.acts.maxBatch) this.planActs(B);
    const A = this.acts;
    const [H, W] = this.config.image_size;
    const P = this.planFor(B, H, W, true);
    this.run(P, pixels, undefined, A);
    const r = this.loss(P, labels, A.loss, A.labels, A.dlogits, scale);
    if (r.count > 0 && scale !== 0)
      vitBackward(this.rt, this.config, this.act, this.w, this.grads!, A, B, P.pix, P.cols, P.x, P.probs);
    return r;
  }

  /** Loss and accuracy of a batch without gradients (either mode; validation in `fit`). */
  evaluate(batch: readonly ViTExample[]): BatchResult {
    this.checkLive();
    const { pixels, labels } = this.batchInputs(batch, "evaluate");
    const [H, W] = this.config.image_size;
    const P = this.planFor(labels.length, H, W, false);
    this.run(P, pixels);
    const heap = this.rt.heap;
    const mark = heap.mark();
    try {
      return this.loss(P, labels, heap.allocF32(1), heap.allocF32(labels.length), 0, 1);
    } finally {
      heap.release(mark);
    }
  }

  /**
   * The model as a Hugging Face checkpoint: `config` (a `config.json` object) and `weights`
   * (`model.safetensors` bytes, every parameter under its HF name, q/k/v split, checkpoint
   * layout). `ViTForImageClassification.fromPretrained(model.save())` gives the same outputs.
   */
  save(): { config: Record<string, unknown>; weights: Uint8Array } {
    this.checkLive();
    const tensors: Record<string, Tensor> = {};
    for (const p of vitParams(this.config, this.w)) {
      tensors[p.name] = new Tensor(linearValues(this.rt, this.config, this.w, p.ptr, p.size), [...p.shape]);
    }
    return { config: hfConfigJson(this.config), weights: writeSafetensors(tensors, { format: "pt" }) };
  }

  /** Node: write `config.json` and `model.safetensors` into `dir` (created if missing); `loadViTForImageClassification(dir)` reads it. */
  async saveTo(dir: string): Promise<void> {
    const { config, weights } = this.save();
    const fs = (await import(/* @vite-ignore */ "node:fs/promises" as string)) as typeof import("node:fs/promises");
    const path = (await import(/* @vite-ignore */ "node:path" as string)) as typeof import("node:path");
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
    await fs.writeFile(path.join(dir, "model.safetensors"), weights);
  }
}

/**
 * Repack the encoder's Linear weights (qkv, proj, fc1, fc2; `[out, in]`) in place into core's
 * pre-packed GEMM layout (`Kernels.packB`, K×N = in×out), once at load, so every encoder GEMM runs
 * as `gemmPacked` without re-packing its weight per call. In place needs packedSize = out·in, i.e.
 * every `out` a multiple of 8 (hidden and intermediate sizes); otherwise the weights stay `[out, in]`
 * for `gemm`. A staging copy of the largest weight is taken above the heap top and released.
 */
function packEncoderWeights(rt: Runtime, cfg: ViTConfig, w: ViTWeights): void {
  const D = cfg.hidden_size;
  const I = cfg.intermediate_size;
  if (D % 8 !== 0 || I % 8 !== 0) return;
  const { heap, k } = rt;
  const mark = heap.mark();
  const staging = heap.allocF32(Math.max(3 * D * D, I * D));
  const pack = (ptr: number, out: number, inF: number) => {
    k.copy2d(ptr, inF, staging, inF, out, inF);
    k.packB(inF, out, staging, inF, 1, ptr);
  };
  for (const L of w.layers) {
    pack(L.qkvW, 3 * D, D);
    pack(L.projW, D, D);
    pack(L.fc1W, I, D);
    pack(L.fc2W, D, I);
  }
  heap.release(mark);
  w.packed = true;
}

type ModelClass<M> = new (cfg: ViTConfig, rt: Runtime, w: ViTWeights, naming: Naming, posInterp: PosInterpolation) => M;

async function buildHf<M extends ViTModel>(
  cls: ModelClass<M>,
  src: PretrainedSource,
  opts: LoadOptions,
  head: "required" | "optional",
): Promise<M> {
  const t0 = performance.now();
  const cfg = parseViTConfig(src.config);
  const source = toSource(src.weights);
  const { naming, prefix } = detectNaming(source);
  if (naming !== "hf") {
    throw new WeightsError(`checkpoint uses timm names (cls_token, blocks.*); load it with fromTimm()`, []);
  }
  if (head === "required" && cfg.num_labels === 0) {
    throw new ConfigError("a classification model needs id2label (or num_labels)", "id2label");
  }
  const rt = opts.runtime ?? createRuntime();
  // a backbone config without labels: a classifier in the checkpoint is ignored, as HF's ViTModel does
  const want = head === "optional" && cfg.num_labels === 0 ? "none" : head;
  const w = await loadWeights(source, cfg, rt.heap, naming, prefix, want, { strict: opts.strict });
  if (opts.packWeights !== false) packEncoderWeights(rt, cfg, w);
  const m = new cls(cfg, rt, w, naming, opts.posInterpolation ?? "bicubic");
  if (!opts.runtime) ownsRuntime.add(m);
  if (src.preprocessor !== undefined) m.processor = ViTImageProcessor.fromConfig(src.preprocessor, cfg.image_size[0]);
  m.loadMs = performance.now() - t0;
  return m;
}

async function buildTimm<M extends ViTModel>(
  cls: ModelClass<M>,
  src: TimmSource,
  opts: LoadOptions,
  head: "required" | "optional",
): Promise<M> {
  const t0 = performance.now();
  const source = toSource(src.weights);
  const cfg = timmConfig(source, src.config, src.numHeads);
  if (head === "required" && cfg.num_labels === 0) {
    throw new WeightsError(`a classification model needs the "head.weight" / "head.bias" tensors`, ["head.weight"]);
  }
  const rt = opts.runtime ?? createRuntime();
  const w = await loadWeights(source, cfg, rt.heap, "timm", "", head, { strict: opts.strict });
  if (opts.packWeights !== false) packEncoderWeights(rt, cfg, w);
  const m = new cls(cfg, rt, w, "timm", opts.posInterpolation ?? "bicubic-antialias");
  if (!opts.runtime) ownsRuntime.add(m);
  const pc = (src.config as { pretrained_cfg?: Record<string, unknown> } | undefined)?.pretrained_cfg;
  if (src.preprocessor !== undefined) m.processor = ViTImageProcessor.fromConfig(src.preprocessor, cfg.image_size[0]);
  else if (pc) m.processor = timmProcessor(pc, cfg);
  m.loadMs = performance.now() - t0;
  return m;
}

// ---------------------------------------------------------------------------------------------
// timm config

const TIMM_HEADS: [RegExp, number][] = [
  [/tiny/, 3],
  [/small/, 6],
  [/medium/, 8],
  [/base/, 12],
  [/large|huge|giant/, 16],
];

/** Build a `ViTConfig` for a timm checkpoint from its tensor shapes and (optional) timm config.json. */
export function timmConfig(src: AnyTensorSource, rawConfig: unknown, numHeads?: number): ViTConfig {
  const cfg = (typeof rawConfig === "object" && rawConfig !== null ? rawConfig : {}) as Record<string, unknown>;
  const need = (n: string) => {
    if (!src.has(n)) throw new WeightsError(`timm checkpoint lacks "${n}"`, [n]);
    const m = tensorMeta(src, n);
    return { shape: m.shape, ndim: m.shape.length };
  };
  const cls = need("cls_token");
  const D = cls.shape[cls.ndim - 1]!;
  const pw = need("patch_embed.proj.weight");
  if (pw.ndim !== 4 || pw.shape[0] !== D || pw.shape[2] !== pw.shape[3]) {
    throw new WeightsError(`"patch_embed.proj.weight" has shape [${pw.shape.join(", ")}], expected [${D}, C, p, p]`, [
      "patch_embed.proj.weight",
    ]);
  }
  const C = pw.shape[1]!;
  const p = pw.shape[2]!;
  let L = 0;
  while (src.has(`blocks.${L}.norm1.weight`)) L++;
  if (L === 0) throw new WeightsError(`timm checkpoint has no "blocks.0.*" tensors`, ["blocks.0.norm1.weight"]);
  const fc1 = need("blocks.0.mlp.fc1.weight");
  const I = fc1.shape[0]!;
  const pos = need("pos_embed");
  const Tpos = pos.shape[1] ?? 0;
  let image: [number, number];
  const input = (cfg.pretrained_cfg as Record<string, unknown> | undefined)?.input_size ?? cfg.input_size;
  if (Array.isArray(input) && input.length === 3 && input.every((v) => Number.isInteger(v) && v > 0)) {
    image = [input[1] as number, input[2] as number];
  } else {
    const g = Math.round(Math.sqrt(Math.max(Tpos - 1, 0)));
    if (g * g !== Tpos - 1) {
      throw new WeightsError(
        `"pos_embed" has ${Tpos} positions, not 1 + a square grid; give pretrained_cfg.input_size in the config`,
        ["pos_embed"],
      );
    }
    image = [g * p, g * p];
  }
  let heads = numHeads;
  if (heads === undefined && typeof cfg.num_heads === "number") heads = cfg.num_heads;
  const arch = typeof cfg.architecture === "string" ? cfg.architecture : typeof cfg.arch === "string" ? cfg.arch : "";
  if (heads === undefined && arch) for (const [re, n] of TIMM_HEADS) if (re.test(arch)) heads = n;
  if (heads === undefined) heads = D % 64 === 0 ? D / 64 : 1;
  let num_labels = 0;
  if (src.has("head.weight")) num_labels = tensorMeta(src, "head.weight").shape[0]!;
  const names = Array.isArray(cfg.label_names) ? (cfg.label_names as unknown[]) : undefined;
  const hfLike: Record<string, unknown> = {
    hidden_size: D,
    num_hidden_layers: L,
    num_attention_heads: heads,
    intermediate_size: I,
    hidden_act: "gelu",
    layer_norm_eps: 1e-6, // timm's LayerNorm eps for ViT
    image_size: image,
    patch_size: p,
    num_channels: C,
    qkv_bias: src.has("blocks.0.attn.qkv.bias"),
  };
  if (num_labels > 0) {
    const id2label: Record<string, string> = {};
    for (let i = 0; i < num_labels; i++) {
      const n = names?.[i];
      id2label[String(i)] = typeof n === "string" ? n : `LABEL_${i}`;
    }
    hfLike.id2label = id2label;
  }
  return parseViTConfig(hfLike);
}

/** A processor from timm's `pretrained_cfg` (`input_size`, `interpolation`, `mean`, `std`, `crop_pct`). */
function timmProcessor(pc: Record<string, unknown>, cfg: ViTConfig): ViTImageProcessor {
  const [H, W] = cfg.image_size;
  const crop = typeof pc.crop_pct === "number" && pc.crop_pct > 0 ? pc.crop_pct : 1;
  const interp = pc.interpolation === "bicubic" ? 3 : pc.interpolation === "nearest" ? 0 : 2;
  // timm's eval transform (torchvision on PIL images): resize the shorter side to ⌊size / crop_pct⌋,
  // then CenterCrop(size)
  const scale = Math.floor(Math.min(H, W) / crop);
  return ViTImageProcessor.fromConfig({
    do_resize: true,
    size: crop === 1 && H === W ? { height: H, width: W } : { shortest_edge: scale },
    resample: interp,
    do_center_crop: true,
    crop_size: { height: H, width: W },
    image_mean: pc.mean,
    image_std: pc.std,
    crop_offset: "round", // torchvision CenterCrop
  });
}

/** `LoadOptions` and, for model ids, the hub options of core's `openModelFiles`. */
export interface PretrainedLoadOptions extends LoadOptions, HubOptions {}

/**
 * Open a checkpoint folder (Node) or Hugging Face model id (`owner/name[@revision]`, downloaded once
 * and cached: see core's `openModelFiles`; an existing folder of that name wins): parse
 * `config.json` and `preprocessor_config.json` (optional), and open `model.safetensors` lazily
 * (tensors are read one by one while they are copied into the heap, so the file is never held in
 * memory as a whole). The caller closes `weights`. Also used by @wasmformer/vlm for checkpoints
 * whose vision tower is a ViT.
 */
export async function openCheckpointFolder(
  dir: string | ModelFiles,
  opts: HubOptions = {},
): Promise<{ config: unknown; weights: LazySafetensorsFile; preprocessor?: unknown }> {
  const files = typeof dir === "string" ? await openModelFiles(dir, opts) : dir;
  const readJson = async (name: string, required: boolean): Promise<unknown> => {
    const text = await files.text(name);
    if (text === undefined) {
      if (!required) return undefined;
      throw new ConfigError(`cannot read ${files.where(name)}: no such file`);
    }
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new ConfigError(`${name} is not valid JSON: ${(e as Error).message}`);
    }
  };
  const config = await readJson("config.json", true);
  const preprocessor = await readJson("preprocessor_config.json", false);
  const weights = await files.safetensors("model.safetensors");
  if (!weights) {
    throw new WeightsError(`cannot read ${files.where("model.safetensors")}: no such file`, ["model.safetensors"]);
  }
  return { config, weights, ...(preprocessor !== undefined ? { preprocessor } : {}) };
}

const isTimmConfig = (c: unknown) => typeof (c as Record<string, unknown> | null)?.architecture === "string";

/**
 * Load a ViT from a checkpoint folder (Node) or model id (HF `ViTModel`, DINO,
 * `ViTForImageClassification`; or timm, recognised by its config's `architecture` field).
 */
export async function loadViTModel(dir: string, opts: PretrainedLoadOptions = {}): Promise<ViTModel> {
  const f = await openCheckpointFolder(dir, opts);
  try {
    return await (isTimmConfig(f.config) ? ViTModel.fromTimm(f, opts) : ViTModel.fromPretrained(f, opts));
  } finally {
    await f.weights.close();
  }
}

/**
 * Load a ViT image classifier from a checkpoint folder (Node) or model id (HF
 * `ViTForImageClassification`, or timm with `head`).
 */
export async function loadViTForImageClassification(
  dir: string,
  opts: PretrainedLoadOptions = {},
): Promise<ViTForImageClassification> {
  const f = await openCheckpointFolder(dir, opts);
  try {
    return await (isTimmConfig(f.config)
      ? ViTForImageClassification.fromTimm(f, opts)
      : ViTForImageClassification.fromPretrained(f, opts));
  } finally {
    await f.weights.close();
  }
}

/** @internal for tests: the heap of a model. */
export function modelHeap(m: ViTModel): Heap {
  return m.rt.heap;
}
