/**
 * The BLIP-2 Querying Transformer (Li et al. 2023, https://arxiv.org/abs/2301.12597), query branch
 * only, with the names and computation of Hugging Face `Blip2QFormerModel`
 * (transformers `src/transformers/models/blip_2/modeling_blip_2.py`), run on the core kernels.
 *
 * Q learned queries attend to each other and, every `cross_attention_frequency` layers, to the
 * frozen image features; BERT-style post-LayerNorm blocks:
 *
 * ```
 * h = layernorm(query_tokens)                                   (B·Q, Dq)  the same queries per image
 * per layer i:
 *   a = LN(h + attention.output.dense(SelfAttn(h)))             q, k, v fused at load into one GEMM
 *   if i mod f == 0:
 *     a = LN(a + crossattention.output.dense(CrossAttn(q = a, k/v = image)))   k, v fused: (B·T_img, 2·Dq)
 *   h = LN(a + output_query.dense(gelu(intermediate_query.dense(a))))
 * last_hidden_state = h                                         (no final norm)
 * ```
 *
 * The text branch of a BLIP-2 checkpoint (`encoder.layer.{i}.intermediate.*`, `.output.*`) is not
 * used by the queries and is ignored. Weights are copied into the runtime heap once; activation
 * scratch is planned per (batch, image tokens) and reused.
 *
 * Training (`train()`; MiniGPT-4 may fine-tune the Q-Former with its projection): the same forward
 * keeps every layer's activations in buffers of their own (llm.c style: the layer input, q/k/v,
 * attention weights and outputs, each LayerNorm's input, the feed-forward's pre-activation), and
 * `backward(dOut)` runs the steps in reverse into the parameters' gradients, down to the query
 * tokens (the image features are frozen: no gradient flows into the vision tower). No dropout
 * (PyTorch `eval()` numerics in both modes). Gradients mirror the weights' heap layout, so a
 * stacked q/k/v buffer has a stacked gradient and each HF tensor is a contiguous slice of both.
 */
import {
  Act,
  checkBlockCount,
  checkTensors,
  createRuntime,
  DisposedError,
  type ExpectedTensor,
  InputError,
  type Runtime,
  releaseRuntime,
  ShapeError,
  shapeSize,
  Tensor,
  WeightFaults,
} from "@wasmformer/core";
import type { TrainParam } from "@wasmformer/nn";
import { parseQFormerConfig, type QFormerConfig, qformerActCode } from "./config.js";
import { putStacked, putTensor, type WeightSource } from "./weights.js";

const F32 = 4;

/** Byte pointers of one Q-Former layer's parameters. */
interface LayerPtrs {
  qkvW: number; // (3Dq, Dq) rows query; key; value
  qkvB: number; // (3Dq,)
  attnOutW: number; // (Dq, Dq)
  attnOutB: number; // (Dq,)
  ln1W: number; // (Dq,) attention.output.LayerNorm
  ln1B: number;
  cross: {
    qW: number; // (Dq, Dq)
    qB: number; // (Dq,)
    kvW: number; // (2Dq, Dv) rows key; value
    kvB: number; // (2Dq,)
    outW: number; // (Dq, Dq)
    outB: number; // (Dq,)
    lnW: number; // (Dq,)
    lnB: number;
  } | null;
  fc1W: number; // (Iq, Dq) intermediate_query.dense
  fc1B: number; // (Iq,)
  fc2W: number; // (Dq, Iq) output_query.dense
  fc2B: number; // (Dq,)
  ln2W: number; // (Dq,) output_query.LayerNorm
  ln2B: number;
}

interface QFormerWeights {
  queryTokens: number; // (Q, Dq)
  lnW: number; // (Dq,) qformer.layernorm
  lnB: number;
  layers: LayerPtrs[];
}

/** One layer's activation buffers; in inference every layer shares the same ones (and in-place LNs). */
interface LayerActs {
  hIn: number; // (B·Q, Dq) the layer's input
  qkv: number; // (B·Q, 3Dq)
  probsS: number; // (B·nh, Q, Q) self-attention weights (inference: one (Q, ·) scratch, stride 0)
  ctxS: number; // (B·Q, Dq)
  a1pre: number; // (B·Q, Dq) h + self-attention (input of attention.output.LayerNorm)
  a1: number; // (B·Q, Dq)
  cq: number;
  ckv: number; // (B·T_img, 2Dq)
  probsC: number; // (B·nh, Q, T_img)
  ctxC: number;
  a2pre: number; // a1 + cross-attention
  a2: number;
  midPre: number; // (B·Q, Iq) before the activation (inference: = midAct, fused)
  midAct: number;
  h3pre: number; // (B·Q, Dq) a + feed-forward (input of output_query.LayerNorm)
  hOut: number; // (B·Q, Dq)
  /** bytes between (image, head) slices of the attention weights (0: one shared scratch) */
  probsStride: number;
}

/** Backward scratch (training plans only). */
interface BackBufs {
  dH: number;
  dA: number;
  dT: number;
  dctx: number;
  dqkv: number;
  dcq: number;
  dckv: number;
  dmidAct: number;
  dmidPre: number;
  scratch: number;
}

/** Activation buffers for (B, T_img) (llama2.c `RunState`). */
interface Plan {
  training: boolean;
  layers: LayerActs[];
  back: BackBufs | undefined;
  B: number;
  Timg: number;
  img: number; // (B·T_img, Dv) the image features
  h: number; // (B·Q, Dq) layernorm(query_tokens): the first layer's input
  out: number; // (B·Q, Dq) last_hidden_state
}

/** Where the Q-Former's tensors are in a checkpoint. */
export interface QFormerNames {
  /** Prefix of the `Blip2QFormerModel` names (default `"qformer."`). */
  prefix?: string;
  /** Name of the learned queries `[1, Q, Dq]` (default `"query_tokens"`, as in `Blip2Model`). */
  queryTokens?: string;
}

export interface QFormerOptions extends QFormerNames {
  /** Runtime to own (default: a fresh `createRuntime()`). */
  runtime?: Runtime;
  /**
   * Other tensors under the Q-Former's prefix are a `WeightsError` (default true, as PyTorch's
   * strict loading; the text-branch feed-forward of BLIP-2 checkpoints is always accepted). false
   * ignores them.
   */
  strict?: boolean;
}

/** The text-branch feed-forward of BLIP-2 checkpoints: present in real checkpoints, unused by the queries. */
const TEXT_BRANCH = /^encoder\.layer\.\d+\.(intermediate|output)\./;

/** Expected tensors of a Q-Former (`prefix` + HF names, plus the query tokens). */
export function qformerWants(cfg: QFormerConfig, Q: number, names: QFormerNames = {}): ExpectedTensor[] {
  const p = names.prefix ?? "qformer.";
  const D = cfg.hidden_size;
  const Dv = cfg.encoder_hidden_size;
  const I = cfg.intermediate_size;
  const w: ExpectedTensor[] = [{ name: names.queryTokens ?? "query_tokens", shape: [1, Q, D] }];
  const add = (name: string, shape: number[]) => w.push({ name: p + name, shape });
  add("layernorm.weight", [D]);
  add("layernorm.bias", [D]);
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const L = `encoder.layer.${i}.`;
    for (const x of ["query", "key", "value"]) {
      add(`${L}attention.attention.${x}.weight`, [D, D]);
      add(`${L}attention.attention.${x}.bias`, [D]);
    }
    add(`${L}attention.output.dense.weight`, [D, D]);
    add(`${L}attention.output.dense.bias`, [D]);
    add(`${L}attention.output.LayerNorm.weight`, [D]);
    add(`${L}attention.output.LayerNorm.bias`, [D]);
    if (i % cfg.cross_attention_frequency === 0) {
      add(`${L}crossattention.attention.query.weight`, [D, D]);
      add(`${L}crossattention.attention.query.bias`, [D]);
      for (const x of ["key", "value"]) {
        add(`${L}crossattention.attention.${x}.weight`, [D, Dv]);
        add(`${L}crossattention.attention.${x}.bias`, [D]);
      }
      add(`${L}crossattention.output.dense.weight`, [D, D]);
      add(`${L}crossattention.output.dense.bias`, [D]);
      add(`${L}crossattention.output.LayerNorm.weight`, [D]);
      add(`${L}crossattention.output.LayerNorm.bias`, [D]);
    }
    add(`${L}intermediate_query.dense.weight`, [I, D]);
    add(`${L}intermediate_query.dense.bias`, [I]);
    add(`${L}output_query.dense.weight`, [D, I]);
    add(`${L}output_query.dense.bias`, [D]);
    add(`${L}output_query.LayerNorm.weight`, [D]);
    add(`${L}output_query.LayerNorm.bias`, [D]);
  }
  return w;
}

/**
 * Check a checkpoint's Q-Former tensors (every name under the prefix and the query tokens): missing,
 * wrong-shaped and unexpected ones are added to `faults`. The text branch is ignored.
 */
export async function checkQFormerWeights(
  src: WeightSource,
  cfg: QFormerConfig,
  Q: number,
  names: QFormerNames & { strict?: boolean } = {},
  faults: WeightFaults = new WeightFaults(),
): Promise<WeightFaults> {
  const p = names.prefix ?? "qformer.";
  const qt = names.queryTokens ?? "query_tokens";
  // more layers than the file holds fails before the expected names of every layer are listed
  checkBlockCount(
    src.names(),
    `${p}encoder.layer.`,
    cfg.num_hidden_layers,
    "num_hidden_layers",
    "attention.attention.query.weight",
  );
  await checkTensors(src, qformerWants(cfg, Q, names), {
    owns: (n) => n.startsWith(p) || n === qt,
    ignore: (n) => n.startsWith(p) && TEXT_BRANCH.test(n.slice(p.length)),
    faults,
    strict: names.strict,
  });
  return faults;
}

/**
 * Hugging Face `Blip2QFormerModel` (query branch) with its `query_tokens`.
 * @example
 * ```ts
 * const qformer = await Blip2QFormerModel.fromWeights(config.qformer_config, 32, parseSafetensors(bytes));
 * const h = qformer.forward(imageEmbeds);   // [B, T_img, encoder_hidden_size] → [B, 32, hidden_size]
 * ```
 */
export class Blip2QFormerModel {
  readonly config: QFormerConfig;
  readonly numQueryTokens: number;
  readonly runtime: Runtime;
  private readonly w: QFormerWeights;
  private readonly act: number;
  /** end of the weights */
  private readonly weightsEnd: number;
  /** start and end of this model's latest scratch (a shared runtime may hold other allocations around it) */
  private planStart: number;
  private top: number;
  private plan: Plan | undefined;
  /** `dispose()` gives the runtime back only when `fromWeights` created it */
  private ownsRuntime = false;
  private isDisposed = false;
  /** Training mode: forwards keep their activations for one `backward` (see the module comment). */
  private trainingMode = false;
  /** The latest training forward not yet backpropagated. */
  private record: Plan | undefined;
  /** Gradients: a copy of the weights' region [weightsBase, weightsEnd) at `weightsBase + gradShift`. */
  private gradShift: number | undefined;
  private readonly names: Required<QFormerNames>;

  private constructor(
    cfg: QFormerConfig,
    Q: number,
    rt: Runtime,
    w: QFormerWeights,
    private readonly weightsBase: number,
    names: QFormerNames,
  ) {
    this.config = cfg;
    this.numQueryTokens = Q;
    this.runtime = rt;
    this.w = w;
    this.act = qformerActCode(cfg.hidden_act);
    this.weightsEnd = rt.heap.mark();
    this.planStart = this.weightsEnd;
    this.top = this.weightsEnd;
    this.names = { prefix: names.prefix ?? "qformer.", queryTokens: names.queryTokens ?? "query_tokens" };
  }

  /**
   * Build from a `Blip2QFormerConfig` (object or parsed), the number of query tokens and checkpoint
   * tensors (names `qformer.…` and `query_tokens` by default). Every name and shape is checked
   * first; a `WeightsError` lists all missing, wrong-shaped and unexpected tensors.
   */
  static async fromWeights(
    config: QFormerConfig | Record<string, unknown>,
    numQueryTokens: number,
    src: WeightSource,
    opts: QFormerOptions = {},
  ): Promise<Blip2QFormerModel> {
    const cfg = parseQFormerConfig(config);
    if (!Number.isInteger(numQueryTokens) || numQueryTokens < 1)
      throw new InputError(`numQueryTokens must be a positive integer, got ${numQueryTokens}`);
    (await checkQFormerWeights(src, cfg, numQueryTokens, opts)).throwIfAny("Q-Former config");
    const rt = opts.runtime ?? createRuntime();
    const base = rt.heap.mark();
    const w = await loadQFormer(src, cfg, numQueryTokens, rt, opts);
    const model = new Blip2QFormerModel(cfg, numQueryTokens, rt, w, base, opts);
    model.ownsRuntime = opts.runtime === undefined;
    return model;
  }

  /**
   * Free the weights and scratch now (core's `releaseRuntime`, unless the runtime was passed in
   * through `runtime`: then it is only dropped). Every later call is a `DisposedError`.
   */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.plan = undefined;
    if (this.ownsRuntime) releaseRuntime(this.runtime);
  }

  /** True once `dispose()` has run. */
  get disposed(): boolean {
    return this.isDisposed;
  }

  /**
   * Scratch for (B, T_img), allocated after the weights (and gradients); the last plan is reused.
   * A training plan gives every layer buffers of its own and adds the backward's.
   */
  private planFor(B: number, Timg: number): Plan {
    const training = this.trainingMode;
    const p0 = this.plan;
    if (p0 && p0.B === B && p0.Timg === Timg && p0.training === training) return p0;
    const heap = this.runtime.heap;
    // free the previous plan (only it), unless someone allocated above it since (a shared runtime)
    if (heap.mark() === this.top) heap.release(this.planStart);
    this.planStart = heap.mark();
    this.record = undefined;
    const cfg = this.config;
    const D = cfg.hidden_size;
    const Dv = cfg.encoder_hidden_size;
    const I = cfg.intermediate_size;
    const nh = cfg.num_attention_heads;
    const Q = this.numQueryTokens;
    const BQ = B * Q;
    const BT = B * Timg;
    const L = cfg.num_hidden_layers;
    const f = (n: number) => heap.allocF32(Math.max(n, 1));
    const perLayer = training ? BQ * (12 * D + 2 * I) + BT * 2 * D + B * nh * Q * (Q + Timg) : 0;
    const back = training ? BQ * (8 * D + 2 * I) + BT * 2 * D + Q * Math.max(Q, Timg) : 0;
    heap.reserve(
      (BT * (Dv + 2 * D) + BQ * (8 * D + I) + Q * Math.max(Q, Timg) + L * perLayer + back) * F32 + 16 * (40 + 20 * L),
    );
    const img = f(BT * Dv);
    const h = f(BQ * D);
    let layers: LayerActs[];
    if (!training) {
      const a = f(BQ * D);
      const ctx = f(BQ * D);
      const mid = f(BQ * I);
      const probs = f(Q * Math.max(Q, Timg));
      const shared: LayerActs = {
        hIn: h,
        qkv: f(BQ * 3 * D),
        probsS: probs,
        ctxS: ctx,
        a1pre: a,
        a1: a,
        cq: f(BQ * D),
        ckv: f(BT * 2 * D),
        probsC: probs,
        ctxC: ctx,
        a2pre: a,
        a2: a,
        midPre: mid,
        midAct: mid,
        h3pre: h,
        hOut: h,
        probsStride: 0,
      };
      layers = Array.from({ length: L }, () => shared);
    } else {
      layers = [];
      let hIn = h;
      for (let l = 0; l < L; l++) {
        const cross = l % cfg.cross_attention_frequency === 0;
        const x: LayerActs = {
          hIn,
          qkv: f(BQ * 3 * D),
          probsS: f(B * nh * Q * Q),
          ctxS: f(BQ * D),
          a1pre: f(BQ * D),
          a1: f(BQ * D),
          cq: cross ? f(BQ * D) : 0,
          ckv: cross ? f(BT * 2 * D) : 0,
          probsC: cross ? f(B * nh * Q * Timg) : 0,
          ctxC: cross ? f(BQ * D) : 0,
          a2pre: cross ? f(BQ * D) : 0,
          a2: cross ? f(BQ * D) : 0,
          midPre: f(BQ * I),
          midAct: f(BQ * I),
          h3pre: f(BQ * D),
          hOut: f(BQ * D),
          probsStride: 1,
        };
        layers.push(x);
        hIn = x.hOut;
      }
    }
    const plan: Plan = {
      training,
      layers,
      back: training
        ? {
            dH: f(BQ * D),
            dA: f(BQ * D),
            dT: f(BQ * D),
            dctx: f(BQ * D),
            dqkv: f(BQ * 3 * D),
            dcq: f(BQ * D),
            dckv: f(BT * 2 * D),
            dmidAct: f(BQ * I),
            dmidPre: f(BQ * I),
            scratch: f(Q * Math.max(Q, Timg)),
          }
        : undefined,
      B,
      Timg,
      img,
      h,
      out: layers.length ? layers[L - 1]!.hOut : h,
    };
    this.plan = plan;
    this.top = heap.mark();
    return plan;
  }

  /**
   * Run the queries over image features `[B, T_img, encoder_hidden_size]` (a ViT's
   * `last_hidden_state`): returns `last_hidden_state` `[B, Q, hidden_size]`.
   */
  forward(imageEmbeds: Tensor): Tensor<"f32"> {
    if (this.isDisposed) throw new DisposedError("this Blip2QFormerModel");
    const cfg = this.config;
    const Dv = cfg.encoder_hidden_size;
    if (!(imageEmbeds instanceof Tensor))
      throw new InputError("image embeddings must be a Tensor [batch, tokens, width]");
    if (imageEmbeds.dtype !== "f32") throw new InputError(`image embeddings must be f32, got ${imageEmbeds.dtype}`);
    if (imageEmbeds.ndim !== 3 || imageEmbeds.shape[2] !== Dv) {
      throw new ShapeError(
        `image embeddings must be [batch, tokens, ${Dv}] (encoder_hidden_size ${Dv}), got [${imageEmbeds.shape.join(", ")}]`,
      );
    }
    const [B, Timg] = imageEmbeds.shape as [number, number, number];
    if (B < 1) throw new InputError("image embeddings have an empty batch");
    if (Timg < 1) throw new InputError("image embeddings have no tokens");
    const P = this.planFor(B, Timg);
    this.run(P, imageEmbeds.data as Float32Array);
    if (P.training) this.record = P;
    const BQ = B * this.numQueryTokens;
    return new Tensor(this.runtime.heap.f32(P.out, BQ * cfg.hidden_size).slice(), [
      B,
      this.numQueryTokens,
      cfg.hidden_size,
    ]);
  }

  /** The forward; a training plan keeps every layer's activations (the same steps either way). */
  private run(P: Plan, img: Float32Array): void {
    const { k, heap } = this.runtime;
    const cfg = this.config;
    const w = this.w;
    const D = cfg.hidden_size;
    const Dv = cfg.encoder_hidden_size;
    const I = cfg.intermediate_size;
    const nh = cfg.num_attention_heads;
    const hs = D / nh;
    const eps = cfg.layer_norm_eps;
    const Q = this.numQueryTokens;
    const { B, Timg } = P;
    const BQ = B * Q;
    const BT = B * Timg;
    const scale = 1 / Math.sqrt(hs);
    heap.f32(P.img, BT * Dv).set(img);

    // ---- h = layernorm(query_tokens), the same Q rows for every image
    k.layerNorm(w.queryTokens, P.h, Q, D, w.lnW, w.lnB, eps);
    for (let b = 1; b < B; b++) k.copy2d(P.h, D, P.h + b * Q * D * F32, D, Q, D);

    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const Lw = w.layers[l]!;
      const A = P.layers[l]!;
      // attention weights of (image b, head hh): its own [L, S] slice when training, else one scratch
      const probsAt = (base: number, b: number, hh: number, S: number) =>
        base + A.probsStride * (b * nh + hh) * Q * S * F32;
      // ---- self-attention over the queries: a = LN(h + SelfAttn(h)·W_oᵀ + b_o)
      k.gemm(BQ, 3 * D, D, A.hIn, D, 0, Lw.qkvW, D, 1, A.qkv, 3 * D, Lw.qkvB, 1, 0, Act.none); // (B·Q, 3D)
      for (let b = 0; b < B; b++) {
        const q0 = A.qkv + b * Q * 3 * D * F32;
        for (let hh = 0; hh < nh; hh++) {
          const off = hh * hs * F32;
          k.attention(
            q0 + off,
            3 * D,
            q0 + D * F32 + off,
            3 * D,
            q0 + 2 * D * F32 + off,
            3 * D,
            A.ctxS + b * Q * D * F32 + off,
            D,
            probsAt(A.probsS, b, hh, Q),
            Q,
            Q,
            hs,
            hs,
            scale,
            0,
            0,
            0,
            -1,
          ); // prettier-ignore
        }
      }
      k.copy2d(A.hIn, D, A.a1pre, D, BQ, D);
      k.gemm(BQ, D, D, A.ctxS, D, 0, Lw.attnOutW, D, 1, A.a1pre, D, Lw.attnOutB, 1, 1, Act.none); // a = h + attn
      k.layerNorm(A.a1pre, A.a1, BQ, D, Lw.ln1W, Lw.ln1B, eps);

      // ---- cross-attention to the image: a = LN(a + CrossAttn(a, img)·W_oᵀ + b_o)
      const c = Lw.cross;
      let a = A.a1;
      if (c) {
        k.gemm(BQ, D, D, A.a1, D, 0, c.qW, D, 1, A.cq, D, c.qB, 1, 0, Act.none); // (B·Q, D)
        k.gemm(BT, 2 * D, Dv, P.img, Dv, 0, c.kvW, Dv, 1, A.ckv, 2 * D, c.kvB, 1, 0, Act.none); // (B·T, 2D)
        for (let b = 0; b < B; b++) {
          const kv0 = A.ckv + b * Timg * 2 * D * F32;
          for (let hh = 0; hh < nh; hh++) {
            const off = hh * hs * F32;
            k.attention(
              A.cq + b * Q * D * F32 + off,
              D,
              kv0 + off,
              2 * D,
              kv0 + D * F32 + off,
              2 * D,
              A.ctxC + b * Q * D * F32 + off,
              D,
              probsAt(A.probsC, b, hh, Timg),
              Q,
              Timg,
              hs,
              hs,
              scale,
              0,
              0,
              0,
              -1,
            ); // prettier-ignore
          }
        }
        if (A.a2pre !== A.a1) k.copy2d(A.a1, D, A.a2pre, D, BQ, D);
        k.gemm(BQ, D, D, A.ctxC, D, 0, c.outW, D, 1, A.a2pre, D, c.outB, 1, 1, Act.none); // a += cross
        k.layerNorm(A.a2pre, A.a2, BQ, D, c.lnW, c.lnB, eps);
        a = A.a2;
      }

      // ---- query feed-forward: h = LN(a + gelu(a·W_1ᵀ + b_1)·W_2ᵀ + b_2)
      if (A.midPre === A.midAct) {
        k.gemm(BQ, I, D, a, D, 0, Lw.fc1W, D, 1, A.midAct, I, Lw.fc1B, 1, 0, this.act); // (B·Q, I)
      } else {
        k.gemm(BQ, I, D, a, D, 0, Lw.fc1W, D, 1, A.midPre, I, Lw.fc1B, 1, 0, Act.none);
        k.unary(A.midPre, A.midAct, BQ * I, this.act);
      }
      k.copy2d(a, D, A.h3pre, D, BQ, D);
      k.gemm(BQ, D, I, A.midAct, I, 0, Lw.fc2W, I, 1, A.h3pre, D, Lw.fc2B, 1, 1, Act.none); // h = a + ffn
      k.layerNorm(A.h3pre, A.hOut, BQ, D, Lw.ln2W, Lw.ln2B, eps);
    }
  }

  // -------------------------------------------------------------------------------------------
  // training

  /** Training mode (`train(false)` = `eval()`); the first call allocates the gradients (zeroed). */
  train(on = true): this {
    this.alive();
    this.trainingMode = on;
    this.record = undefined;
    if (on) this.gradShiftBytes();
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  get training(): boolean {
    return this.trainingMode;
  }

  /** Gradient region (a zeroed copy of the weights' region, below the scratch); its offset in bytes. */
  private gradShiftBytes(): number {
    if (this.gradShift !== undefined) return this.gradShift;
    const heap = this.runtime.heap;
    if (heap.mark() === this.top) heap.release(this.planStart);
    this.plan = undefined;
    this.record = undefined;
    const bytes = this.weightsEnd - this.weightsBase;
    heap.reserve(bytes + 64);
    // same alignment modulo 16 as the weights, so every slice lines up as its tensor does
    const ptr = heap.allocF32(Math.ceil(bytes / F32) + 4);
    const start = ptr + ((((this.weightsBase - ptr) % 16) + 16) % 16);
    heap.f32(ptr, Math.ceil(bytes / F32) + 4).fill(0);
    this.gradShift = start - this.weightsBase;
    this.planStart = heap.mark();
    this.top = this.planStart;
    return this.gradShift;
  }

  /** The gradient pointer of a weight pointer. */
  private g(ptr: number): number {
    return ptr ? ptr + this.gradShiftBytes() : 0;
  }

  /**
   * Every tensor as a `TrainParam` under its checkpoint name (`query_tokens`,
   * `qformer.layernorm.weight`, `qformer.encoder.layer.0.attention.attention.query.weight`, …),
   * values in place and gradients beside them.
   */
  parameters(): TrainParam[] {
    this.alive();
    const cfg = this.config;
    const D = cfg.hidden_size;
    const Dv = cfg.encoder_hidden_size;
    const I = cfg.intermediate_size;
    const p = this.names.prefix;
    const out: TrainParam[] = [];
    const add = (name: string, ptr: number, size: number) => out.push({ name, ptr, grad: this.g(ptr), size });
    const w = this.w;
    add(this.names.queryTokens, w.queryTokens, this.numQueryTokens * D);
    add(`${p}layernorm.weight`, w.lnW, D);
    add(`${p}layernorm.bias`, w.lnB, D);
    for (const [i, Lw] of w.layers.entries()) {
      const L = `${p}encoder.layer.${i}.`;
      for (const [j, x] of ["query", "key", "value"].entries()) {
        add(`${L}attention.attention.${x}.weight`, Lw.qkvW + j * D * D * F32, D * D);
        add(`${L}attention.attention.${x}.bias`, Lw.qkvB + j * D * F32, D);
      }
      add(`${L}attention.output.dense.weight`, Lw.attnOutW, D * D);
      add(`${L}attention.output.dense.bias`, Lw.attnOutB, D);
      add(`${L}attention.output.LayerNorm.weight`, Lw.ln1W, D);
      add(`${L}attention.output.LayerNorm.bias`, Lw.ln1B, D);
      const c = Lw.cross;
      if (c) {
        add(`${L}crossattention.attention.query.weight`, c.qW, D * D);
        add(`${L}crossattention.attention.query.bias`, c.qB, D);
        for (const [j, x] of ["key", "value"].entries()) {
          add(`${L}crossattention.attention.${x}.weight`, c.kvW + j * D * Dv * F32, D * Dv);
          add(`${L}crossattention.attention.${x}.bias`, c.kvB + j * D * F32, D);
        }
        add(`${L}crossattention.output.dense.weight`, c.outW, D * D);
        add(`${L}crossattention.output.dense.bias`, c.outB, D);
        add(`${L}crossattention.output.LayerNorm.weight`, c.lnW, D);
        add(`${L}crossattention.output.LayerNorm.bias`, c.lnB, D);
      }
      add(`${L}intermediate_query.dense.weight`, Lw.fc1W, I * D);
      add(`${L}intermediate_query.dense.bias`, Lw.fc1B, I);
      add(`${L}output_query.dense.weight`, Lw.fc2W, D * I);
      add(`${L}output_query.dense.bias`, Lw.fc2B, D);
      add(`${L}output_query.LayerNorm.weight`, Lw.ln2W, D);
      add(`${L}output_query.LayerNorm.bias`, Lw.ln2B, D);
    }
    return out;
  }

  /** Set every gradient to 0. */
  zeroGrad(): void {
    for (const p of this.parameters()) this.runtime.heap.f32(p.grad, p.size).fill(0);
  }

  /**
   * Backward of the latest training forward: `dOut` = ∂loss/∂last_hidden_state `[B, Q, hidden_size]`
   * → adds every parameter's gradient (down to `query_tokens`). The image features get none (frozen).
   */
  backward(dOut: Tensor): void {
    this.alive();
    const P = this.record;
    if (!P)
      throw new InputError("Blip2QFormerModel.backward: no training forward to backpropagate (train(), then forward)");
    const cfg = this.config;
    const D = cfg.hidden_size;
    const Q = this.numQueryTokens;
    if (!(dOut instanceof Tensor) || dOut.dtype !== "f32" || dOut.size !== P.B * Q * D)
      throw new ShapeError(
        `Blip2QFormerModel.backward: the gradient must be an f32 [${P.B}, ${Q}, ${D}] tensor, got ${dOut instanceof Tensor ? `[${dOut.shape.join(", ")}]` : typeof dOut}`,
      );
    this.record = undefined;
    const { k, heap } = this.runtime;
    const Dv = cfg.encoder_hidden_size;
    const I = cfg.intermediate_size;
    const nh = cfg.num_attention_heads;
    const hs = D / nh;
    const eps = cfg.layer_norm_eps;
    const { B, Timg } = P;
    const BQ = B * Q;
    const BT = B * Timg;
    const scale = 1 / Math.sqrt(hs);
    const G = P.back!;
    const g = (ptr: number) => this.g(ptr);
    const zero = (ptr: number, n: number) => heap.f32(ptr, n).fill(0);
    const outputBased = this.act === Act.tanh || this.act === Act.sigmoid;
    heap.f32(G.dH, BQ * D).set(dOut.data as Float32Array);
    for (let l = cfg.num_hidden_layers - 1; l >= 0; l--) {
      const Lw = this.w.layers[l]!;
      const A = P.layers[l]!;
      const c = Lw.cross;
      const a = c ? A.a2 : A.a1;
      // ---- h = LN(h3pre), h3pre = a + fc2(act(fc1(a)))
      zero(G.dT, BQ * D);
      k.layerNormBackward(G.dT, g(Lw.ln2W), g(Lw.ln2B), G.dH, A.h3pre, Lw.ln2W, 0, 0, BQ, D, eps);
      k.gemm(BQ, I, D, G.dT, D, 0, Lw.fc2W, I, 0, G.dmidAct, I, 0, 1, 0, Act.none); // d mid = dT·W2
      k.gemm(D, I, BQ, G.dT, D, 1, A.midAct, I, 0, g(Lw.fc2W), I, 0, 1, 1, Act.none); // dW2 += dTᵀ·mid
      k.biasGrad(g(Lw.fc2B), G.dT, BQ, D, D);
      zero(G.dmidPre, BQ * I);
      k.unaryBackward(G.dmidPre, G.dmidAct, outputBased ? A.midAct : A.midPre, BQ * I, this.act);
      k.copy2d(G.dT, D, G.dA, D, BQ, D); // residual
      k.gemm(BQ, D, I, G.dmidPre, I, 0, Lw.fc1W, D, 0, G.dA, D, 0, 1, 1, Act.none); // dA += dmid·W1
      k.gemm(I, D, BQ, G.dmidPre, I, 1, a, D, 0, g(Lw.fc1W), D, 0, 1, 1, Act.none); // dW1 += dmidᵀ·a
      k.biasGrad(g(Lw.fc1B), G.dmidPre, BQ, I, I);

      // ---- cross: a2 = LN(a2pre), a2pre = a1 + out(CrossAttn(a1·Wqᵀ, img·Wkvᵀ))
      if (c) {
        zero(G.dT, BQ * D);
        k.layerNormBackward(G.dT, g(c.lnW), g(c.lnB), G.dA, A.a2pre, c.lnW, 0, 0, BQ, D, eps);
        k.copy2d(G.dT, D, G.dA, D, BQ, D); // residual into a1
        k.gemm(BQ, D, D, G.dT, D, 0, c.outW, D, 0, G.dctx, D, 0, 1, 0, Act.none);
        k.gemm(D, D, BQ, G.dT, D, 1, A.ctxC, D, 0, g(c.outW), D, 0, 1, 1, Act.none);
        k.biasGrad(g(c.outB), G.dT, BQ, D, D);
        zero(G.dcq, BQ * D);
        zero(G.dckv, BT * 2 * D);
        for (let b = 0; b < B; b++) {
          const kv = b * Timg * 2 * D * F32;
          for (let hh = 0; hh < nh; hh++) {
            const off = hh * hs * F32;
            const q = b * Q * D * F32 + off;
            k.attentionBackward(
              G.dcq + q,
              G.dckv + kv + off,
              G.dckv + kv + D * F32 + off,
              G.dctx + q,
              D,
              A.cq + q,
              D,
              A.ckv + kv + off,
              2 * D,
              A.ckv + kv + D * F32 + off,
              2 * D,
              A.probsC + (b * nh + hh) * Q * Timg * F32,
              0,
              G.scratch,
              Q,
              Timg,
              hs,
              hs,
              scale,
            ); // prettier-ignore
          }
        }
        k.gemm(BQ, D, D, G.dcq, D, 0, c.qW, D, 0, G.dA, D, 0, 1, 1, Act.none); // dA += dcq·Wq
        k.gemm(D, D, BQ, G.dcq, D, 1, A.a1, D, 0, g(c.qW), D, 0, 1, 1, Act.none);
        k.biasGrad(g(c.qB), G.dcq, BQ, D, D);
        k.gemm(2 * D, Dv, BT, G.dckv, 2 * D, 1, P.img, Dv, 0, g(c.kvW), Dv, 0, 1, 1, Act.none); // no d img
        k.biasGrad(g(c.kvB), G.dckv, BT, 2 * D, 2 * D);
      }

      // ---- self: a1 = LN(a1pre), a1pre = h + out(SelfAttn(h·Wqkvᵀ))
      zero(G.dT, BQ * D);
      k.layerNormBackward(G.dT, g(Lw.ln1W), g(Lw.ln1B), G.dA, A.a1pre, Lw.ln1W, 0, 0, BQ, D, eps);
      k.copy2d(G.dT, D, G.dH, D, BQ, D); // residual into h
      k.gemm(BQ, D, D, G.dT, D, 0, Lw.attnOutW, D, 0, G.dctx, D, 0, 1, 0, Act.none);
      k.gemm(D, D, BQ, G.dT, D, 1, A.ctxS, D, 0, g(Lw.attnOutW), D, 0, 1, 1, Act.none);
      k.biasGrad(g(Lw.attnOutB), G.dT, BQ, D, D);
      zero(G.dqkv, BQ * 3 * D);
      for (let b = 0; b < B; b++) {
        const q0 = b * Q * 3 * D * F32;
        for (let hh = 0; hh < nh; hh++) {
          const off = hh * hs * F32;
          k.attentionBackward(
            G.dqkv + q0 + off,
            G.dqkv + q0 + D * F32 + off,
            G.dqkv + q0 + 2 * D * F32 + off,
            G.dctx + b * Q * D * F32 + off,
            D,
            A.qkv + q0 + off,
            3 * D,
            A.qkv + q0 + D * F32 + off,
            3 * D,
            A.qkv + q0 + 2 * D * F32 + off,
            3 * D,
            A.probsS + (b * nh + hh) * Q * Q * F32,
            0,
            G.scratch,
            Q,
            Q,
            hs,
            hs,
            scale,
          ); // prettier-ignore
        }
      }
      k.gemm(BQ, D, 3 * D, G.dqkv, 3 * D, 0, Lw.qkvW, D, 0, G.dH, D, 0, 1, 1, Act.none); // dH += dqkv·Wqkv
      k.gemm(3 * D, D, BQ, G.dqkv, 3 * D, 1, A.hIn, D, 0, g(Lw.qkvW), D, 0, 1, 1, Act.none);
      k.biasGrad(g(Lw.qkvB), G.dqkv, BQ, 3 * D, 3 * D);
    }
    // ---- h0 = layernorm(query_tokens) for every image: the images' gradients add up
    const w = this.w;
    for (let b = 0; b < B; b++)
      k.layerNormBackward(
        g(w.queryTokens),
        g(w.lnW),
        g(w.lnB),
        G.dH + b * Q * D * F32,
        w.queryTokens,
        w.lnW,
        0,
        0,
        Q,
        D,
        eps,
      );
  }

  private alive(): void {
    if (this.isDisposed) throw new DisposedError("this Blip2QFormerModel");
  }
}

/** Copy the (checked) Q-Former tensors into the heap; q/k/v (and cross k/v) are stacked. */
async function loadQFormer(
  src: WeightSource,
  cfg: QFormerConfig,
  Q: number,
  rt: Runtime,
  names: QFormerNames,
): Promise<QFormerWeights> {
  const p = names.prefix ?? "qformer.";
  const heap = rt.heap;
  const total = qformerWants(cfg, Q, names).reduce((a, w) => a + Math.ceil((shapeSize(w.shape) * F32) / 16) * 16, 0);
  heap.reserve(total + 64 * 16);
  const put = (n: string) => putTensor(heap, src, p + n);
  const queryTokens = await putTensor(heap, src, names.queryTokens ?? "query_tokens");
  const lnW = await put("layernorm.weight");
  const lnB = await put("layernorm.bias");
  const layers: LayerPtrs[] = [];
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const L = `${p}encoder.layer.${i}.`;
    const A = `${L}attention.attention.`;
    const C = `${L}crossattention.attention.`;
    const hasCross = i % cfg.cross_attention_frequency === 0;
    const E = `encoder.layer.${i}.`;
    layers.push({
      qkvW: await putStacked(heap, src, [`${A}query.weight`, `${A}key.weight`, `${A}value.weight`]),
      qkvB: await putStacked(heap, src, [`${A}query.bias`, `${A}key.bias`, `${A}value.bias`]),
      attnOutW: await put(`${E}attention.output.dense.weight`),
      attnOutB: await put(`${E}attention.output.dense.bias`),
      ln1W: await put(`${E}attention.output.LayerNorm.weight`),
      ln1B: await put(`${E}attention.output.LayerNorm.bias`),
      cross: hasCross
        ? {
            qW: await putTensor(heap, src, `${C}query.weight`),
            qB: await putTensor(heap, src, `${C}query.bias`),
            kvW: await putStacked(heap, src, [`${C}key.weight`, `${C}value.weight`]),
            kvB: await putStacked(heap, src, [`${C}key.bias`, `${C}value.bias`]),
            outW: await put(`${E}crossattention.output.dense.weight`),
            outB: await put(`${E}crossattention.output.dense.bias`),
            lnW: await put(`${E}crossattention.output.LayerNorm.weight`),
            lnB: await put(`${E}crossattention.output.LayerNorm.bias`),
          }
        : null,
      fc1W: await put(`${E}intermediate_query.dense.weight`),
      fc1B: await put(`${E}intermediate_query.dense.bias`),
      fc2W: await put(`${E}output_query.dense.weight`),
      fc2B: await put(`${E}output_query.dense.bias`),
      ln2W: await put(`${E}output_query.LayerNorm.weight`),
      ln2B: await put(`${E}output_query.LayerNorm.bias`),
    });
  }
  return { queryTokens, lnW, lnB, layers };
}
