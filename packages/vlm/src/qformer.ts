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

/** Activation buffers for (B, T_img) (llama2.c `RunState`). */
interface Plan {
  B: number;
  Timg: number;
  img: number; // (B·T_img, Dv) the image features
  h: number; // (B·Q, Dq) hidden state
  a: number; // (B·Q, Dq) after attention
  qkv: number; // (B·Q, 3Dq)
  ctx: number; // (B·Q, Dq) attention output, heads side by side
  cq: number; // (B·Q, Dq) cross-attention queries
  ckv: number; // (B·T_img, 2Dq) cross-attention keys; values
  mid: number; // (B·Q, Iq)
  probs: number; // (Q, max(Q, T_img)) attention weights of one (image, head)
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
  private readonly weightsMark: number;
  private top: number;
  private plan: Plan | undefined;
  /** `dispose()` gives the runtime back only when `fromWeights` created it */
  private ownsRuntime = false;
  private isDisposed = false;

  private constructor(cfg: QFormerConfig, Q: number, rt: Runtime, w: QFormerWeights) {
    this.config = cfg;
    this.numQueryTokens = Q;
    this.runtime = rt;
    this.w = w;
    this.act = qformerActCode(cfg.hidden_act);
    this.weightsMark = rt.heap.mark();
    this.top = this.weightsMark;
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
    const w = await loadQFormer(src, cfg, numQueryTokens, rt, opts);
    const model = new Blip2QFormerModel(cfg, numQueryTokens, rt, w);
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

  /** Scratch for (B, T_img), allocated after the weights; the last plan is reused. */
  private planFor(B: number, Timg: number): Plan {
    const p0 = this.plan;
    if (p0 && p0.B === B && p0.Timg === Timg) return p0;
    const heap = this.runtime.heap;
    // free the previous plan, unless someone allocated above it since (a shared runtime)
    if (heap.mark() === this.top) heap.release(this.weightsMark);
    const cfg = this.config;
    const D = cfg.hidden_size;
    const Dv = cfg.encoder_hidden_size;
    const I = cfg.intermediate_size;
    const Q = this.numQueryTokens;
    const BQ = B * Q;
    const f = (n: number) => heap.allocF32(Math.max(n, 1));
    heap.reserve((B * Timg * (Dv + 2 * D) + BQ * (7 * D + I) + Q * Math.max(Q, Timg)) * F32 + 16 * 16);
    const plan: Plan = {
      B,
      Timg,
      img: f(B * Timg * Dv),
      h: f(BQ * D),
      a: f(BQ * D),
      qkv: f(BQ * 3 * D),
      ctx: f(BQ * D),
      cq: f(BQ * D),
      ckv: f(B * Timg * 2 * D),
      mid: f(BQ * I),
      probs: f(Q * Math.max(Q, Timg)),
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
    const BQ = B * this.numQueryTokens;
    return new Tensor(this.runtime.heap.f32(P.h, BQ * cfg.hidden_size).slice(), [
      B,
      this.numQueryTokens,
      cfg.hidden_size,
    ]);
  }

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
      // ---- self-attention over the queries: a = LN(h + SelfAttn(h)·W_oᵀ + b_o)
      k.gemm(BQ, 3 * D, D, P.h, D, 0, Lw.qkvW, D, 1, P.qkv, 3 * D, Lw.qkvB, 1, 0, Act.none); // (B·Q, 3D)
      for (let b = 0; b < B; b++) {
        const q0 = P.qkv + b * Q * 3 * D * F32;
        for (let hh = 0; hh < nh; hh++) {
          const off = hh * hs * F32;
          k.attention(
            q0 + off,
            3 * D,
            q0 + D * F32 + off,
            3 * D,
            q0 + 2 * D * F32 + off,
            3 * D,
            P.ctx + b * Q * D * F32 + off,
            D,
            P.probs,
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
      k.copy2d(P.h, D, P.a, D, BQ, D);
      k.gemm(BQ, D, D, P.ctx, D, 0, Lw.attnOutW, D, 1, P.a, D, Lw.attnOutB, 1, 1, Act.none); // a = h + attn
      k.layerNorm(P.a, P.a, BQ, D, Lw.ln1W, Lw.ln1B, eps);

      // ---- cross-attention to the image: a = LN(a + CrossAttn(a, img)·W_oᵀ + b_o)
      const c = Lw.cross;
      if (c) {
        k.gemm(BQ, D, D, P.a, D, 0, c.qW, D, 1, P.cq, D, c.qB, 1, 0, Act.none); // (B·Q, D)
        k.gemm(BT, 2 * D, Dv, P.img, Dv, 0, c.kvW, Dv, 1, P.ckv, 2 * D, c.kvB, 1, 0, Act.none); // (B·T, 2D)
        for (let b = 0; b < B; b++) {
          const kv0 = P.ckv + b * Timg * 2 * D * F32;
          for (let hh = 0; hh < nh; hh++) {
            const off = hh * hs * F32;
            k.attention(
              P.cq + b * Q * D * F32 + off,
              D,
              kv0 + off,
              2 * D,
              kv0 + D * F32 + off,
              2 * D,
              P.ctx + b * Q * D * F32 + off,
              D,
              P.probs,
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
        k.gemm(BQ, D, D, P.ctx, D, 0, c.outW, D, 1, P.a, D, c.outB, 1, 1, Act.none); // a += cross
        k.layerNorm(P.a, P.a, BQ, D, c.lnW, c.lnB, eps);
      }

      // ---- query feed-forward: h = LN(a + gelu(a·W_1ᵀ + b_1)·W_2ᵀ + b_2)
      k.gemm(BQ, I, D, P.a, D, 0, Lw.fc1W, D, 1, P.mid, I, Lw.fc1B, 1, 0, this.act); // (B·Q, I)
      k.copy2d(P.a, D, P.h, D, BQ, D);
      k.gemm(BQ, D, I, P.mid, I, 0, Lw.fc2W, I, 1, P.h, D, Lw.fc2B, 1, 1, Act.none); // h = a + ffn
      k.layerNorm(P.h, P.h, BQ, D, Lw.ln2W, Lw.ln2B, eps);
    }
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
