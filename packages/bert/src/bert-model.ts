/**
 * Hugging Face `BertModel` with its pooler (FORMAT.md §6.16, `modeling_bert.py`), inference:
 *
 *   e   = word[input_ids] + token_type[token_type_ids] + position[0 … T−1];   h = LayerNorm(e)
 *   ext = (1 − attention_mask) · finfo(float32).min                           (added to every query row)
 *   per layer (post-LN):  a = LN₁(h + Attn(h; ext));   h = LN₂(a + W₂·act(W₁·a))
 *   pooler_output = tanh(dense(h[:, 0]))
 *
 * A BERT layer is nn's post-norm `TransformerEncoderLayer` with BERT's eps and activation; only the
 * weight names differ (`LAYER_NAMES`: query/key/value are stacked into nn's `in_proj_weight`).
 * Everything runs on core's kernels: embedding gathers, GEMMs, the fused attention kernel, layer norm.
 */

import {
  Act,
  BinOp,
  type CheckableSource,
  checkBlockCount,
  checkTensors,
  DisposedError,
  type ExpectedTensor,
  formatShape,
  InputError,
  type Runtime,
  releaseRuntime,
  ShapeError,
  Tensor,
  WeightFaults,
} from "@wasmformer/core";
import {
  type AttnMaskPtrs,
  Embedding,
  HeapTensors,
  LayerNorm,
  Linear,
  linear,
  loadModule,
  NO_MASK,
  nnRuntime,
  TransformerEncoderLayer,
  type WeightScope,
} from "@wasmformer/nn";
import { activationOf, type BertConfig, parseBertConfig } from "./config.js";
import type { BertPretrainedOptions } from "./pretrained.js";

/** `torch.finfo(torch.float32).min`, the value HF adds at masked keys. */
const F32_MIN = -3.4028234663852886e38;

/** nn `TransformerEncoderLayer` name → BERT layer name (under `encoder.layer.{i}.`). */
const LAYER_NAMES: readonly [nn: string, bert: string][] = [
  ["self_attn.out_proj.weight", "attention.output.dense.weight"],
  ["self_attn.out_proj.bias", "attention.output.dense.bias"],
  ["norm1.weight", "attention.output.LayerNorm.weight"],
  ["norm1.bias", "attention.output.LayerNorm.bias"],
  ["linear1.weight", "intermediate.dense.weight"],
  ["linear1.bias", "intermediate.dense.bias"],
  ["linear2.weight", "output.dense.weight"],
  ["linear2.bias", "output.dense.bias"],
  ["norm2.weight", "output.LayerNorm.weight"],
  ["norm2.bias", "output.LayerNorm.bias"],
];

/** Token ids and friends as `[B, T]` tensors (any integer-valued dtype) or arrays of rows. */
export type IdsInput = Tensor | readonly (readonly number[])[];

export interface BertForwardOptions {
  /** `[B, T]`, 1 = token, 0 = padding (default: all 1) */
  attentionMask?: IdsInput | undefined;
  /** `[B, T]` segment ids in `[0, type_vocab_size)` (default: all 0) */
  tokenTypeIds?: IdsInput | undefined;
  /** also return the attention weights of every layer, `[B, H, T, T]` each */
  outputAttentions?: boolean;
}

export interface BertOutput {
  /** `[B, T, D]` */
  lastHiddenState: Tensor<"f32">;
  /** `[B, D]`; absent when the checkpoint has no pooler (e.g. a `BertForMaskedLM` one) */
  poolerOutput?: Tensor<"f32">;
  /** per layer `[B, H, T, T]` (rows = queries), with `outputAttentions` */
  attentions?: Tensor<"f32">[];
}

export interface BertLoadOptions {
  /** Runtime for the weights and activations (default: a new one; then `dispose()` releases it). */
  runtime?: Runtime;
  /**
   * Tensors under the model's prefix that the config does not use are a `WeightsError` (default
   * true, as PyTorch's strict `load_state_dict`; the `position_ids` buffer and the `cls.*` heads are
   * always accepted). false ignores them.
   */
  strict?: boolean;
}

/** `[B, T]` integer rows, checked: shape `[B, T]` when given, values integral and in `[0, limit)`. */
export interface IdRows {
  data: Int32Array;
  B: number;
  T: number;
}

/**
 * Read `[B, T]` integers from a tensor or arrays of rows.
 * @param limit values must lie in `[0, limit)` (InputError naming `what[b, t]` otherwise)
 * @param shape the required `[B, T]`, if any (ShapeError otherwise)
 */
export function idRows(x: IdsInput, what: string, limit: number, shape?: readonly [number, number]): IdRows {
  let B: number;
  let T: number;
  let flat: ArrayLike<number>;
  if (x instanceof Tensor) {
    if (x.ndim !== 2) throw new ShapeError(`${what} has shape ${formatShape(x.shape)}, expected [batch, length]`);
    [B, T] = x.shape as [number, number];
    flat = x.data;
  } else {
    if (!Array.isArray(x)) throw new InputError(`${what} must be a [batch, length] tensor or an array of rows`);
    B = x.length;
    T = B > 0 && Array.isArray(x[0]) ? x[0].length : 0;
    const a = new Array<number>(B * T);
    x.forEach((row, b) => {
      if (!Array.isArray(row)) throw new InputError(`${what}[${b}] is not an array of numbers`);
      if (row.length !== T) throw new ShapeError(`${what}[${b}] has ${row.length} entries, row 0 has ${T}`);
      for (let t = 0; t < T; t++) a[b * T + t] = row[t];
    });
    flat = a;
  }
  if (shape && (B !== shape[0] || T !== shape[1])) {
    throw new ShapeError(`${what} has shape [${B}, ${T}], input_ids has [${shape[0]}, ${shape[1]}]`);
  }
  const data = new Int32Array(B * T);
  for (let i = 0; i < B * T; i++) {
    const v = flat[i];
    if (!Number.isInteger(v) || v < 0 || v >= limit) {
      throw new InputError(
        `${what}[${Math.floor(i / T)}, ${i % T}] = ${v} is ${Number.isInteger(v) ? `outside [0, ${limit})` : "not an integer"}`,
      );
    }
    data[i] = v;
  }
  return { data, B, T };
}

export class BertModel {
  readonly config: BertConfig;
  readonly runtime: Runtime;
  /** Checkpoint tensors that the computation does not read (position_ids buffer, pretraining heads). */
  readonly unusedWeights: string[];
  readonly hiddenSize: number;
  readonly numHeads: number;
  private readonly word: Embedding;
  private readonly position: Embedding;
  private readonly tokenType: Embedding;
  private readonly embNorm: LayerNorm;
  private readonly layers: TransformerEncoderLayer[];
  private readonly pooler: Linear | undefined;
  private readonly ownsRuntime: boolean;
  private disposed = false;

  private constructor(
    config: BertConfig,
    scope: WeightScope,
    hasPooler: boolean,
    unused: string[],
    ownsRuntime: boolean,
  ) {
    const c = config;
    const D = c.hidden_size;
    this.config = c;
    this.runtime = scope.rt;
    this.unusedWeights = unused;
    this.ownsRuntime = ownsRuntime;
    this.hiddenSize = D;
    this.numHeads = c.num_attention_heads;
    const emb = scope.pp("embeddings");
    this.word = new Embedding(emb.pp("word_embeddings"), c.vocab_size, D);
    this.position = new Embedding(emb.pp("position_embeddings"), c.max_position_embeddings, D);
    this.tokenType = new Embedding(emb.pp("token_type_embeddings"), c.type_vocab_size, D);
    this.embNorm = new LayerNorm(emb.pp("LayerNorm"), D, c.layer_norm_eps);
    const layer = { dModel: D, nhead: c.num_attention_heads, dimFeedforward: c.intermediate_size };
    const opts = { ...layer, activation: activationOf(c), layerNormEps: c.layer_norm_eps, normFirst: false };
    this.layers = [];
    for (let i = 0; i < c.num_hidden_layers; i++) {
      this.layers.push(new TransformerEncoderLayer(scope.pp("encoder.layer").pp(i), opts));
    }
    this.pooler = hasPooler ? new Linear(scope.pp("pooler.dense"), D, D) : undefined;
  }

  /**
   * Build a model from a config (a `config.json` object) and checkpoint tensors (a parsed
   * safetensors file, a lazy one from `openSafetensors`, or any `TensorSource`), copying each weight
   * into the runtime heap as it is read (peak memory: the weights once plus one tensor). Names with
   * and without the `bert.` prefix are accepted, LayerNorm `gamma`/`beta` as `weight`/`bias`; the
   * `position_ids` buffer and the `cls.*` pretraining heads are ignored; the pooler is optional.
   * @throws ConfigError (config), WeightsError listing every missing, mis-shaped or unexpected tensor
   */
  static async fromWeights(
    config: BertConfig | Record<string, unknown>,
    weights: CheckableSource,
    opts: BertLoadOptions = {},
  ): Promise<BertModel> {
    const cfg = parseBertConfig(config);
    const plan = planWeights(cfg, weights);
    const faults = new WeightFaults();
    await checkTensors(weights, plan.wants, { faults, owns: plan.owns, ignore: plan.ignore, strict: opts.strict });
    const D = cfg.hidden_size;
    faults.throwIfAny(
      `BERT config (hidden_size ${D}, ${cfg.num_hidden_layers} layers, vocab_size ${cfg.vocab_size}, ` +
        `max_position_embeddings ${cfg.max_position_embeddings}, intermediate_size ${cfg.intermediate_size})`,
    );
    // the checkpoint fits: stream it into the heap under nn's names, one tensor at a time (query,
    // key, value stacked into in_proj), so the weights are never held twice
    const rt = nnRuntime(opts.runtime);
    const mark = rt.heap.mark();
    try {
      const placed = new HeapTensors(rt);
      const shapes = new Map(plan.wants.map((w) => [w.name, w.shape]));
      for (const [nn, parts] of plan.parts) {
        await placed.stack(
          nn,
          parts.map((name) => ({ name, shape: shapes.get(name)! })),
          weights,
        );
      }
      return loadModule(placed, (s) => new BertModel(cfg, s, plan.hasPooler, plan.unused, !opts.runtime), {
        runtime: rt,
      });
    } catch (e) {
      if (!opts.runtime) releaseRuntime(rt);
      else rt.heap.release(mark);
      throw e;
    }
  }

  /**
   * Load from a Hugging Face folder (Node) or model id (`owner/name[@revision]`, downloaded once and
   * cached; see core's `openModelFiles`): `config.json` and `model.safetensors` (read lazily).
   */
  static async fromPretrained(folder: string, opts: BertPretrainedOptions = {}): Promise<BertModel> {
    const { loadBertFolder } = await import("./pretrained.js");
    return loadBertFolder(folder, opts);
  }

  /** Whether the checkpoint had a pooler (`pooler_output` is computed). */
  get hasPooler(): boolean {
    return this.pooler !== undefined;
  }

  /**
   * `input_ids [B, T]` → `last_hidden_state [B, T, D]`, `pooler_output [B, D]` and, with
   * `outputAttentions`, the attention weights of every layer.
   * @throws InputError for ids out of range or not integers (naming `input_ids[b, t]`), a sequence
   *   longer than `max_position_embeddings`; ShapeError for a mask or type ids of another shape
   */
  forward(inputIds: IdsInput, opts: BertForwardOptions = {}): BertOutput {
    const { B, T, ids, mask, types } = this.checkInputs(inputIds, opts.attentionMask, opts.tokenTypeIds);
    const { runtime: rt, hiddenSize: D, numHeads: H } = this;
    const heap = rt.heap;
    const m = heap.mark();
    try {
      const att = opts.outputAttentions ? this.layers.map(() => heap.allocF32(B * H * T * T)) : undefined;
      const h = this.encode(ids, mask, types, B, T, att);
      const out: BertOutput = { lastHiddenState: read(rt, h, [B, T, D]) };
      if (this.pooler) {
        const p = heap.allocF32(B * D);
        linear(rt, h, B, this.pooler.weight, this.pooler.bias, p, { act: Act.tanh, ldx: T * D });
        out.poolerOutput = read(rt, p, [B, D]);
      }
      if (att) out.attentions = att.map((a) => read(rt, a, [B, H, T, T]));
      return out;
    } finally {
      heap.release(m);
    }
  }

  /**
   * @internal For poolers: run the encoder inside a scratch region of the heap and call `use` with
   * the pointer of `last_hidden_state [B·T, D]`; everything is released when `use` returns.
   */
  withLastHiddenState<R>(
    inputIds: IdsInput,
    opts: { attentionMask?: IdsInput | undefined; tokenTypeIds?: IdsInput | undefined },
    use: (h: number, B: number, T: number) => R,
  ): R {
    const { B, T, ids, mask, types } = this.checkInputs(inputIds, opts.attentionMask, opts.tokenTypeIds);
    const m = this.runtime.heap.mark();
    try {
      return use(this.encode(ids, mask, types, B, T), B, T);
    } finally {
      this.runtime.heap.release(m);
    }
  }

  /** Give the weights' memory back (when the model created its runtime). The model is unusable afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.ownsRuntime) releaseRuntime(this.runtime);
  }

  private checkInputs(inputIds: IdsInput, attentionMask?: IdsInput, tokenTypeIds?: IdsInput) {
    if (this.disposed) throw new DisposedError("BertModel");
    const c = this.config;
    const { data: ids, B, T } = idRows(inputIds, "input_ids", c.vocab_size);
    if (B === 0 || T === 0) throw new InputError(`input_ids has shape [${B}, ${T}]: need at least one token per row`);
    if (T > c.max_position_embeddings) {
      throw new InputError(
        `input_ids: sequence length ${T} exceeds max_position_embeddings ${c.max_position_embeddings}`,
      );
    }
    const mask = attentionMask === undefined ? undefined : idRows(attentionMask, "attention_mask", 2, [B, T]).data;
    const types =
      tokenTypeIds === undefined ? undefined : idRows(tokenTypeIds, "token_type_ids", c.type_vocab_size, [B, T]).data;
    return { B, T, ids, mask, types };
  }

  /** The encoder on checked inputs, in the caller's scratch: returns the pointer of `h [B·T, D]`. */
  private encode(
    ids: Int32Array,
    mask: Int32Array | undefined,
    types: Int32Array | undefined,
    B: number,
    T: number,
    attentions?: number[],
  ): number {
    const { runtime: rt, hiddenSize: D, numHeads: H } = this;
    const { heap, k } = rt;
    const n = B * T;
    // embeddings: (word + token type) + position, then LayerNorm
    let x = heap.allocF32(n * D);
    this.word.run(heap.put(ids), n, x, "input_ids");
    if (types?.some((v) => v !== 0)) {
      const t = heap.allocF32(n * D);
      this.tokenType.run(heap.put(types), n, t, "token_type_ids");
      k.binary(x, t, x, n, D, D, 1, BinOp.add);
    } else {
      k.binary(x, this.tokenType.weight.ptr, x, n, D, 0, 1, BinOp.add); // type 0 everywhere: row 0
    }
    for (let b = 0; b < B; b++) {
      const row = x + b * T * D * 4;
      k.binary(row, this.position.weight.ptr, row, T, D, D, 1, BinOp.add);
    }
    this.embNorm.run(x, n, x);
    // encoder
    const masks = extendedMask(rt, mask, B, H, T);
    let y = heap.allocF32(n * D);
    this.layers.forEach((layer, l) => {
      layer.run(x, B, T, masks, y, attentions?.[l] ?? 0);
      [x, y] = [y, x];
    });
    return x;
  }
}

/**
 * HF's extended attention mask in the heap: `(1 − mask[b, j]) · finfo.min` as one additive row per
 * (batch, head) slice, read by every query (`maskLd` 0). No mask, or no padding: `NO_MASK`.
 */
function extendedMask(rt: Runtime, mask: Int32Array | undefined, B: number, H: number, T: number): AttnMaskPtrs {
  if (!mask || mask.every((v) => v === 1)) return NO_MASK;
  const ext = new Float32Array(B * H * T);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) for (let j = 0; j < T; j++) ext[(b * H + h) * T + j] = (1 - mask[b * T + j]!) * F32_MIN;
  return { mask: rt.heap.put(ext), maskLd: 0, maskStride: T, kpm: 0, causal: -1 };
}

const read = (rt: Runtime, ptr: number, shape: number[]): Tensor<"f32"> =>
  new Tensor(
    rt.heap
      .f32(
        ptr,
        shape.reduce((a, b) => a * b, 1),
      )
      .slice(),
    shape,
    "f32",
  );

// ---------------------------------------------------------------------------------------------
// checkpoint names

interface WeightPlan {
  /** the tensors the model needs, under the checkpoint's names */
  wants: ExpectedTensor[];
  /** nn name → checkpoint names (several: stacked along the first axis) */
  parts: Map<string, string[]>;
  hasPooler: boolean;
  owns: (name: string) => boolean;
  ignore: (name: string) => boolean;
  unused: string[];
}

/**
 * Which checkpoint tensor feeds which nn parameter. The prefix is `bert.` (the `BertFor…`
 * checkpoints) or none (`BertModel` ones); a LayerNorm stored as `gamma`/`beta` (the original
 * releases) is read as `weight`/`bias`. Tensors outside the prefix (`cls.*` heads, a classifier)
 * are not the model's; `embeddings.position_ids` is a buffer.
 */
function planWeights(cfg: BertConfig, src: CheckableSource): WeightPlan {
  const prefix =
    src.has("embeddings.word_embeddings.weight") && !src.has("bert.embeddings.word_embeddings.weight") ? "" : "bert.";
  // a config asking for more layers than the file holds fails before the names are listed
  const layerPrefix = `${prefix}encoder.layer.`;
  checkBlockCount(src.names(), layerPrefix, cfg.num_hidden_layers, "num_hidden_layers", "attention.self.query.weight");
  const D = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const wants: ExpectedTensor[] = [];
  const parts = new Map<string, string[]>();
  /** the checkpoint name of a BERT name: LayerNorm weight/bias may be stored as gamma/beta */
  const stored = (name: string) => {
    const legacy = name.replace(/LayerNorm\.weight$/, "LayerNorm.gamma").replace(/LayerNorm\.bias$/, "LayerNorm.beta");
    return !src.has(prefix + name) && src.has(prefix + legacy) ? prefix + legacy : prefix + name;
  };
  const add = (nn: string, bert: string[], shapes: number[][]) => {
    const names = bert.map(stored);
    for (const [i, name] of names.entries()) wants.push({ name, shape: shapes[i]! });
    parts.set(nn, names);
  };
  const one = (name: string, shape: number[]) => add(name, [name], [shape]);
  one("embeddings.word_embeddings.weight", [cfg.vocab_size, D]);
  one("embeddings.position_embeddings.weight", [cfg.max_position_embeddings, D]);
  one("embeddings.token_type_embeddings.weight", [cfg.type_vocab_size, D]);
  one("embeddings.LayerNorm.weight", [D]);
  one("embeddings.LayerNorm.bias", [D]);
  const shapeOf: Record<string, number[]> = {
    "attention.output.dense.weight": [D, D],
    "intermediate.dense.weight": [I, D],
    "intermediate.dense.bias": [I],
    "output.dense.weight": [D, I],
  };
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `encoder.layer.${i}.`;
    const qkv = ["query", "key", "value"].map((x) => `${p}attention.self.${x}`);
    add(
      `${p}self_attn.in_proj_weight`,
      qkv.map((q) => `${q}.weight`),
      [
        [D, D],
        [D, D],
        [D, D],
      ],
    );
    add(
      `${p}self_attn.in_proj_bias`,
      qkv.map((q) => `${q}.bias`),
      [[D], [D], [D]],
    );
    for (const [nn, bert] of LAYER_NAMES) add(p + nn, [p + bert], [shapeOf[bert] ?? [D]]);
  }
  const hasPooler = src.has(stored("pooler.dense.weight")) || src.has(stored("pooler.dense.bias"));
  if (hasPooler) {
    one("pooler.dense.weight", [D, D]);
    one("pooler.dense.bias", [D]);
  }
  const owns = (n: string) => (prefix ? n.startsWith(prefix) : !n.startsWith("cls."));
  const ignore = (n: string) => n === `${prefix}embeddings.position_ids`;
  const known = new Set(wants.map((w) => w.name));
  // in strict loading every other name fails the check; with strict: false they are unused too
  const unused = src.names().filter((n) => !known.has(n));
  return { wants, parts, hasPooler, owns, ignore, unused };
}
