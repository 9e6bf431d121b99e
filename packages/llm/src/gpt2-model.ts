/**
 * GPT-2 (Radford et al. 2019) as Hugging Face's `GPT2LMHeadModel`
 * (transformers `src/transformers/models/gpt2/modeling_gpt2.py`), run on the @wasmformer/core kernels.
 *
 * Organised like llama2.c `run.c`: the weights and every activation buffer (the `RunState`, here
 * `Scratch`) plus the KV cache are planned once from the config and the largest batch, in one
 * runtime heap; a forward pass only calls kernels on those pointers and never allocates.
 *
 * ```
 * h = wte[ids] + wpe[positions]
 * per block:  h = h + attn.c_proj(Attn(ln_1(h)));  h = h + mlp.c_proj(act(mlp.c_fc(ln_2(h))))
 * logits = ln_f(h) · wteᵀ            (lm_head tied to wte, or its own weight)
 * ```
 *
 * The same engine (`CausalLM`) runs the Llama family (llama.ts, llama-model.ts): the differences
 * are a few switches read from the config (`DecoderArch`, decoder-arch.ts: norm, positions, MLP
 * kind, head grouping, weight layout, biases).
 *
 * The forward is written once, in decoder-forward.ts (embeddings, the block of layer l, final norm,
 * LM head); this file's `run` calls it on the scratch buffers (residual in place, activation fused
 * into the GEMM, KV-cache attention). Training (`train()` … `eval()`, train.ts) calls the same steps
 * on kept per-layer buffers, with the matrices switched in place to the checkpoint layout, and
 * follows them in reverse in its backward.
 *
 * Prefill runs whole prompt chunks as GEMMs; decode runs one position per row per step (GEMV-shaped
 * GEMMs with M = batch). Rows of a batch share cache slots; a left-padded row blocks its padding
 * slots with a key-padding mask and starts its positions at its first real token, so that it
 * computes exactly what it computes unpadded.
 */

import {
  AbortError,
  type AttentionArgs,
  bf16ArrayToF32,
  checkBlockCount,
  checkWeightDtype,
  createRuntime,
  DisposedError,
  f16ArrayToF32,
  formatShape,
  GgmlType,
  InputError,
  PACK_KC,
  type QuantType,
  quantizeBlocks,
  quantizeBlocksTransposed,
  quantTypeOf,
  type Runtime,
  releaseRuntime,
  ShapeError,
  Tensor,
  tensorSource,
  type WeightDtype,
  WeightsError,
  writeSafetensors,
} from "@wasmformer/core";
import type { Trainable, TrainParam } from "@wasmformer/nn";
import { activationCode, eosTokenIds, type GPT2Config, innerDim, parseGPT2Config } from "./config.js";
import type { BlockNames, DecoderArch, WeightSpec } from "./decoder-arch.js";
import { type BlockActs, type BlockWeights, DecoderForward, type Weights } from "./decoder-forward.js";
import {
  type GenerateOptions,
  type GenerationChunk,
  type GenerationResult,
  generate,
  generateAll,
  type Prompt,
} from "./generate.js";
import { type CacheLayout, KVContext, restoreContext, saveContext } from "./kv-context.js";
import type { PretrainedOptions } from "./pretrained.js";
import type { Tokenizer } from "./tokenizer.js";
import { checkTrainOptions, DecoderTraining, type LMBatchResult, type LMExample, type TrainOptions } from "./train.js";

// ---------------------------------------------------------------------------------------------
// weights

/** Where weights come from: a parsed safetensors file, a lazy one (async `get`), or any map alike. */
export interface WeightSource {
  names(): string[];
  has(name: string): boolean;
  /** Shape (and the file's dtype) without reading the data (lazy files), when available. */
  info?(name: string): { readonly shape: readonly number[]; readonly dtype?: string };
  /**
   * The stored bytes of a tensor in chunks (a lazy safetensors file's `readRaw`): lets a quantized
   * load read a large matrix a few MB at a time instead of as one f32 tensor.
   */
  readRaw?(name: string, sink: (bytes: Uint8Array, at: number) => void, chunkBytes?: number): Promise<void>;
  get(name: string): Tensor | Promise<Tensor>;
  /** The ggml type a tensor is stored as ("Q8_0", "Q4_0", "F16", …; GGUF files), without reading it. */
  storedType?(name: string): string | undefined;
  /**
   * A matrix's stored blocks as the rows of its Linear `[out, in]` form (GGUF files), read without
   * dequantizing; undefined when not available.
   */
  linearBlocks?(name: string): Promise<{ type: string; data: Uint8Array } | undefined>;
}

/**
 * The checkpoint argument of `fromWeights` as a `WeightSource`: a `Map` or a plain object of
 * tensors is wrapped; anything else without `names`/`has`/`get` is an `InputError`.
 */
export function asWeightSource(weights: unknown): WeightSource {
  if (weights instanceof Map) return tensorSource(weights as Map<string, Tensor>);
  const w = weights as Partial<WeightSource> | null;
  if (
    w &&
    typeof w === "object" &&
    typeof w.names === "function" &&
    typeof w.has === "function" &&
    typeof w.get === "function"
  )
    return w as WeightSource;
  if (w && typeof w === "object" && !Array.isArray(w) && Object.values(w).every((t) => t instanceof Tensor))
    return tensorSource(w as Record<string, Tensor>);
  throw new InputError(
    "weights must be a safetensors file (parseSafetensors / openSafetensors), a Map or object of tensors, " +
      "or an object with names(), has() and get()",
  );
}

/** Progress of weight loading, in bytes of f32 copied into the heap. */
export interface LoadProgress {
  loaded: number;
  total: number;
  tensor: string;
}

export interface GPT2Options {
  /** Largest batch `prefill`/`generate` will be called with (sizes the KV cache). Default 1. */
  maxBatch?: number;
  /** Positions per row per prefill pass (sizes the scratch). Default: min(n_positions, ⌈512 / maxBatch⌉). */
  prefillChunk?: number;
  /**
   * @internal Layout of the Conv1D weights: w > 0 (default 256) = kept [in, out] and cut into
   * contiguous column blocks of width w (transB = 0); 0 = transposed to Linear [out, in] (transB = 1).
   */
  colBlock?: number;
  /** @internal Column-block width of the transposed LM head (default 768, see HEAD_BLOCK). */
  headBlock?: number;
  /**
   * @internal Weight layout: "packed" (default unless colBlock/headBlock are given; see PACKED) or
   * "blocks" (the column-block layouts of `colBlock`/`headBlock`).
   */
  layout?: "packed" | "blocks";
  /** The runtime to plan in. Default: a fresh `createRuntime()` (call core's `await init()` first for wasm). */
  runtime?: Runtime;
  onProgress?: (p: LoadProgress) => void;
  /**
   * Checkpoint tensors the config does not use are a `WeightsError` (default true, as PyTorch's
   * strict `load_state_dict`: a config with fewer layers than its checkpoint would otherwise load
   * as a different model). The legacy `h.{i}.attn.bias` / `attn.masked_bias` buffers and a stored
   * tied `lm_head.weight` are always accepted. false: load anyway (see `unusedWeights`).
   */
  strict?: boolean;
  /** Cancels loading: an `AbortError` before the next tensor is read (the CLI's Ctrl-C). */
  signal?: AbortSignal;
  /**
   * Weight storage: "f32", or quantized on load to ggml's Q8_0 ("q8", 8-bit) or Q4_0 ("q4", 4-bit)
   * blocks of 32 with ggml's rounding. Quantized projections and LM head run on the packed blocks
   * (decode: integer dot products on x quantized per block; prefill: the GEMM on panels dequantized
   * per block); the token embedding is gathered from the quantized table. Every quantized matrix's
   * input width must be a multiple of 32. Training needs f32 weights.
   *
   * Default: f32, except that a GGUF file's Q8_0 and Q4_0 matrices are used as stored (no
   * dequantize/requantize); with "q8"/"q4" they are kept too and the file's other matrices are
   * quantized; "f32" dequantizes everything.
   */
  dtype?: WeightDtype;
  /** @internal Bytes per read when a matrix is quantized from a streamed file (default 4 MiB; rounded to whole rows). */
  quantChunk?: number;
}

/**
 * The LM head (the tied `wte`, or `lm_head.weight`) is stored transposed, [E, V], cut into column
 * blocks of HEAD_BLOCK contiguous [E, HEAD_BLOCK] matrices. Decode then reads each block as one
 * sequential stream (transB = 0), which measured about 25% more bandwidth than dot products over
 * [V, E] rows (CPU time, 15 → 21 GB/s); the tied embedding lookup reads a column of a block.
 */
const HEAD_BLOCK = 768;

/**
 * HF GPT-2 uses a "Conv1D" module whose weight is [in, out] (y = x·W + b, so gemm with transB = 0).
 * We keep that orientation but store each weight as contiguous column blocks [in, COL_BLOCK]: in
 * decode (M = batch) the GEMV then reads every block as one sequential stream. Measured per decode
 * step on GPT-2-small (CPU time, A/B in one process): blocks of 256 ≈ 24 ms, 128/512 ≈ 26 ms,
 * Linear-transposed rows [out, in] with transB = 1 ≈ 28–31 ms, the plain [in, out] matrix slower
 * still. Prefill (packed GEMM) is the same for all layouts.
 */
const COL_BLOCK = 256;

/** The original GPT-2 files' causal-mask buffers: carry nothing beyond the causal rule, ignored. */
const LEGACY_BUFFER = /^h\.\d+\.attn\.(masked_)?bias$/;

/**
 * The default layout ("packed"): every Conv1D weight [in, out] and the LM head (as K×N = E×V) is
 * packed once at load into core's pre-packed GEMM layout (`Kernels.packB`), and every product runs
 * as one `gemmPacked`: no per-call B packing in prefill, and decode (M = batch ≤ 4) streams each
 * weight once for all rows. Measured against the column blocks above: see the README.
 */
const PACK_HEAD_COLS = 768; // head columns packed at a time at load (a multiple of 8)
const CONV1D = /\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;

/** Activation buffers, allocated once for `maxBatch × chunk` rows (llama2.c `RunState`). */
interface Scratch {
  rows: number; // capacity in rows (= maxBatch · chunk)
  ids: number; // (rows,) i32 token ids
  pos: number; // (rows,) i32 positions
  x: number; // (rows, E) residual stream
  xn: number; // (rows, E) layer-norm output / embedding scratch
  qkv: number; // (rows, 3E)
  att: number; // (rows, E) attention output, heads concatenated
  h: number; // (rows, inner) MLP hidden
  h2: number; // (rows, inner) the up projection of a gated MLP (0 otherwise)
  probs: number; // (chunk, n_positions) attention weights of one (row, head)
  logitRows: number; // capacity of `logits` in rows
  lnRows: number; // (logitRows, E) final-norm rows gathered for the LM head
  logits: number; // (logitRows, V)
  xq: number; // (4, xqRowBytes(max K)) bytes: up to 4 rows quantized per block for gemvQ (when any weight is quantized), else 0
  kCache: number; // (L, maxBatch, n_positions, KV·d): row = one slot, key/value heads side by side
  vCache: number; // (L, maxBatch, n_positions, KV·d)
  kpm: number; // (maxBatch, n_positions) u8, 1 = padded slot (blocked key)
}

/** What `prefill`/`decode` return. */
export interface ForwardOutput {
  /** `[B, T, V]` for `logits: "all"`, `[B, 1, V]` (the last position) for `"last"`; absent for `"none"`. */
  logits?: Tensor<"f32">;
  /** With `outputAttentions`: per layer `[B, H, T, S]` softmax weights, S = cache length after the call. */
  attentions?: Tensor<"f32">[];
}

export interface ForwardOptions {
  /** Which logits to compute: every new position, only the last one (default), or none. */
  logits?: "all" | "last" | "none";
  outputAttentions?: boolean;
  /** The sequence to run in (see `createContext`). Default: the model's own. */
  context?: KVContext;
}

export interface PrefillOptions extends ForwardOptions {
  /** `[B, T]` 1 = real token, 0 = padding; padding must be on the left (HF `padding_side="left"`). */
  attentionMask?: ArrayLike<number>[] | Tensor;
}

const F32 = 4;

/** A value as written in an error message (strings quoted, so `"1"` is not taken for 1). */
const show = (v: unknown): string => (typeof v === "string" ? JSON.stringify(v) : String(v));

/**
 * The token-id check of @wasmformer/llm and @wasmformer/vlm: `v` must be an integer in
 * [0, vocabSize). Otherwise an `InputError` naming the id, where it is (`where`, e.g.
 * `input_ids[0, 3]`) and the vocabulary size.
 */
export function checkTokenId(v: unknown, vocabSize: number, where: string): number {
  if (typeof v !== "number" || !Number.isInteger(v))
    throw new InputError(`token id ${show(v)} at ${where} is not an integer (vocab_size ${vocabSize})`);
  if (v < 0 || v >= vocabSize)
    throw new InputError(
      `token id ${v} at ${where} is outside the vocabulary [0, ${vocabSize}) (vocab_size ${vocabSize})`,
    );
  return v;
}

/**
 * Rows of token ids from `number[][]`, typed-array rows or an integer `[B, T]` tensor. With
 * `vocabSize`, every id is checked by `checkTokenId` (positions reported from column `t0`);
 * without, values must be int32 integers (masks, ids checked later).
 */
export function toIdRows(
  ids: ArrayLike<number>[] | Tensor,
  what = "input_ids",
  vocabSize?: number,
  t0 = 0,
): Int32Array[] {
  const check = (v: unknown, b: number, t: number): number => {
    if (vocabSize !== undefined) return checkTokenId(v, vocabSize, `${what}[${b}, ${t0 + t}]`);
    if (typeof v !== "number" || !Number.isInteger(v))
      throw new InputError(`${what}[${b}, ${t0 + t}] = ${show(v)} is not an integer`);
    if (v < -(2 ** 31) || v >= 2 ** 31)
      throw new InputError(`${what}[${b}, ${t0 + t}] = ${v} is outside the int32 range`);
    return v;
  };
  if (ids instanceof Tensor) {
    if (ids.ndim !== 2) throw new ShapeError(`${what} must be [batch, time], got ${formatShape(ids.shape)}`);
    if (ids.dtype === "f32") throw new InputError(`${what} must be an integer tensor, got f32`);
    const [B, T] = ids.shape;
    return Array.from({ length: B }, (_, b) => {
      const row = Int32Array.from(ids.data.subarray(b * T, (b + 1) * T));
      if (vocabSize !== undefined) row.forEach((v, t) => void check(v, b, t));
      return row;
    });
  }
  if (!Array.isArray(ids)) throw new InputError(`${what} must be an array of rows or a [batch, time] tensor`);
  return ids.map((row, b) => {
    if (row === null || typeof row !== "object" || typeof row.length !== "number") {
      throw new InputError(`${what}[${b}] is not an array of token ids`);
    }
    const out = new Int32Array(row.length);
    for (let t = 0; t < row.length; t++) out[t] = check(row[t], b, t);
    return out;
  });
}

const LOGITS_MODES = ["all", "last", "none"];

/** Typed errors for ill-typed `ForwardOptions` (the context itself is checked when entered). */
function checkForwardOptions(o: ForwardOptions): void {
  if (o === null || typeof o !== "object") throw new InputError(`options must be an object, got ${show(o)}`);
  if (o.logits !== undefined && !LOGITS_MODES.includes(o.logits))
    throw new InputError(`logits must be "all", "last" or "none", got ${show(o.logits)}`);
  if (o.outputAttentions !== undefined && typeof o.outputAttentions !== "boolean")
    throw new InputError(`outputAttentions must be a boolean, got ${show(o.outputAttentions)}`);
}

// ---------------------------------------------------------------------------------------------
// the model

/** @internal What `CausalLM.load` plans in the heap, handed to the constructor. */
export interface EngineParts {
  arch: DecoderArch;
  rt: Runtime;
  w: Weights;
  s: Scratch;
  maxBatch: number;
  chunk: number;
  unused: string[];
  colBlock: number;
  headBlock: number;
  packed: boolean;
  /** ggml type of each quantized weight, by heap pointer (the others are f32) */
  qtypes: Map<number, QuantType>;
  /** whether the engine created `rt` (then `dispose()` gives it back) */
  ownsRuntime: boolean;
}

/**
 * The decoder engine with a KV cache: a causal language model whose architecture is read from its
 * config (`arch`). `GPT2LMHeadModel` and `LlamaForCausalLM` are its two configurations; every
 * method (prefill, decode, extend, generate, inputs_embeds) works the same for both.
 */
export class CausalLM<C extends { readonly vocab_size: number } = { readonly vocab_size: number }>
  implements Trainable<LMExample>
{
  readonly config: C;
  /** The engine switches read from the config: norm, positions, MLP kind, head grouping, sizes. */
  readonly arch: DecoderArch;
  readonly runtime: Runtime;
  readonly maxBatch: number;
  /** Positions per row per prefill pass. */
  readonly prefillChunk: number;
  /** Checkpoint tensors that the computation does not read (legacy buffers, a tied lm_head, extras). */
  readonly unusedWeights: string[];
  /** Bytes of the heap: weights, KV cache and scratch (planned once). */
  readonly heapBytes: number;
  /**
   * How the matrices are stored: "f32"; "q8" / "q4" when the quantized ones are all Q8_0 / Q4_0
   * (matrices a GGUF file stores in other types may be f32); "mixed" when both occur.
   */
  get dtype(): WeightDtype | "mixed" {
    const types = new Set(this.qtypes.values());
    if (types.size === 0) return "f32";
    if (types.size > 1) return "mixed";
    return types.has(GgmlType.Q8_0) ? "q8" : "q4";
  }
  /** The tokenizer used for text prompts and streamed text (set by `fromPretrained`, or by hand). */
  tokenizer: Tokenizer | undefined;
  /** The class name errors give (`DisposedError`: "this LlamaForCausalLM has been disposed"). */
  protected readonly modelName: string = "CausalLM";

  private readonly w: Weights;
  private readonly s: Scratch;
  /** the forward steps shared with training (decoder-forward.ts): weights, their storage and layout */
  private readonly fwd: DecoderForward;
  /** where the blocks write in inference: the scratch, residual in place, activation fused */
  private readonly acts: BlockActs;
  private readonly E: number;
  private readonly H: number;
  private readonly hs: number;
  private readonly KV: number;
  /** ggml type of each quantized weight, by heap pointer (the others are f32) */
  private qtypes: Map<number, QuantType>;

  // cache state of the resident context: every row of its batch has filled the same slots [0, len)
  private len = 0;
  private batch = 0;
  /** leading padding slots per row */
  private pad: Int32Array;
  /** the model's own sequence (the stateful API without `context`) */
  private readonly own: KVContext;
  /** the context whose sequence the cache memory and `len`/`batch`/`pad` hold (see kv-context.ts) */
  private resident: KVContext | undefined;
  private readonly layout: CacheLayout;
  /** `dispose()` gives the runtime back only when `fromWeights` created it */
  private ownsRuntime = false;
  private isDisposed = false;
  /** training buffers (masters, gradients, activations; see train.ts), made by `train()`/`parameters()` */
  private trainer: DecoderTraining | undefined;
  private trainingMode = false;

  protected constructor(config: C, parts: EngineParts) {
    const { arch, rt, w, s, maxBatch, chunk, unused } = parts;
    this.config = config;
    this.arch = arch;
    this.runtime = rt;
    this.w = w;
    this.s = s;
    this.maxBatch = maxBatch;
    this.prefillChunk = chunk;
    this.unusedWeights = unused;
    this.E = arch.dim;
    this.H = arch.heads;
    this.hs = arch.headDim;
    this.KV = arch.kvHeads;
    this.qtypes = parts.qtypes;
    const { packed, colBlock, headBlock, qtypes } = parts;
    this.fwd = new DecoderForward(arch, rt, w, { packed, colBlock, headBlock, qtypes, xq: s.xq });
    this.acts = { x: s.x, xm: s.x, xo: s.x, ln: s.xn, qkv: s.qkv, att: s.att, h: s.h, up: s.h2, hact: s.h };
    this.ownsRuntime = parts.ownsRuntime;
    this.pad = new Int32Array(maxBatch);
    this.heapBytes = rt.heap.used();
    this.tokenizer = undefined;
    this.own = new KVContext(this, maxBatch);
    this.resident = this.own;
    this.layout = {
      runtime: rt,
      kCache: s.kCache,
      vCache: s.vCache,
      kpm: s.kpm,
      layers: arch.layers,
      maxBatch,
      positions: arch.maxPositions,
      width: arch.kvHeads * arch.headDim,
    };
  }

  /**
   * Plan the heap for `arch` (weights, KV cache, scratch) and copy the checkpoint tensors in, one at
   * a time; matrices are brought to the engine's layout (Conv1D [in, out] and Linear [out, in] alike).
   */
  protected static async load(arch: DecoderArch, weights: WeightSource, opts: GPT2Options = {}): Promise<EngineParts> {
    const signal = opts.signal;
    const checkAbort = () => {
      if (signal?.aborted) throw new AbortError("loading the model was aborted");
    };
    checkAbort();
    const maxBatch = opts.maxBatch ?? 1;
    const colBlock = opts.colBlock ?? COL_BLOCK;
    const headBlock = opts.headBlock ?? HEAD_BLOCK;
    const layout = opts.layout ?? (opts.colBlock !== undefined || opts.headBlock !== undefined ? "blocks" : "packed");
    if (layout !== "packed" && layout !== "blocks")
      throw new InputError(`layout must be "packed" or "blocks", got ${String(layout)}`);
    const packed = layout === "packed";
    const dtype = opts.dtype === undefined ? undefined : checkWeightDtype(opts.dtype, "dtype");
    const want: QuantType | 0 = (dtype && quantTypeOf(dtype)) || 0;
    if (!Number.isInteger(headBlock) || headBlock < 1)
      throw new InputError(`headBlock must be a positive integer, got ${headBlock}`);
    if (!Number.isInteger(colBlock) || colBlock < 0)
      throw new InputError(`colBlock must be an integer ≥ 0, got ${colBlock}`);
    if (!Number.isInteger(maxBatch) || maxBatch < 1)
      throw new InputError(`maxBatch must be a positive integer, got ${maxBatch}`);
    const P = arch.maxPositions;
    const chunk = Math.min(P, opts.prefillChunk ?? Math.max(1, Math.ceil(512 / maxBatch)));
    if (!Number.isInteger(chunk) || chunk < 1)
      throw new InputError(`prefillChunk must be a positive integer, got ${opts.prefillChunk}`);

    const E = arch.dim;
    const V = arch.vocab;
    const I = arch.inner;
    const L = arch.layers;
    const kvW = arch.kvHeads * arch.headDim; // key/value width of a cache slot
    const qkvW = (arch.heads + 2 * arch.kvHeads) * arch.headDim;
    const used = new Set<string>();
    type Spec = WeightSpec;
    const specs = arch.specs;
    const hasLmHead = weights.has("lm_head.weight");
    const untied = !arch.tied;

    // ---- check names and shapes before reading anything
    const missing = specs.filter((s) => !weights.has(s.name)).map((s) => s.name);
    if (missing.length > 0) {
      const more = missing.length > 5 ? ` and ${missing.length - 5} more` : "";
      throw new WeightsError(
        `missing tensor${missing.length > 1 ? "s" : ""} ${missing
          .slice(0, 5)
          .map((n) => `"${n}"`)
          .join(", ")}${more}`,
        missing,
      );
    }
    if (opts.strict ?? true) {
      const wanted = new Set(specs.map((s) => s.name));
      const extra = weights.names().filter((n) => !wanted.has(n) && !arch.ignorable(n));
      if (extra.length > 0) {
        const more = extra.length > 5 ? ` and ${extra.length - 5} more` : "";
        throw new WeightsError(
          `unexpected tensor${extra.length > 1 ? "s" : ""} ${extra
            .slice(0, 5)
            .map((n) => `"${n}"`)
            .join(
              ", ",
            )}${more}: the ${arch.modelType} config (${L} layers) does not use ${extra.length > 1 ? "them" : "it"} ` +
            `(pass strict: false to load anyway)`,
          extra,
        );
      }
    }
    const checkShape = (name: string, want: readonly number[], got: readonly number[]) => {
      if (got.length !== want.length || got.some((d, k) => d !== want[k])) {
        throw new WeightsError(
          `tensor "${name}" has shape ${formatShape(got)}, expected ${formatShape(want)} ` +
            `(config: ${arch.describe})`,
          [name],
        );
      }
    };
    // shapes before any heap is reserved: from `info`, or else from each tensor (a source without
    // `info` is read twice; the plan below trusts the config only once the file agrees with it)
    const shapeOf = async (name: string) => (weights.info ? weights.info(name) : await weights.get(name)).shape;
    for (const s of specs) {
      checkAbort();
      checkShape(s.name, s.shape, await shapeOf(s.name));
    }
    // tied: HF ties lm_head to wte and ignores a stored copy; only its shape is checked
    if (hasLmHead && !untied) checkShape("lm_head.weight", [V, E], await shapeOf("lm_head.weight"));

    // ---- which matrices are stored quantized: a GGUF file's Q8_0 / Q4_0 ones as stored (unless
    // dtype "f32"), the others when dtype asks; rows of the Linear [out, in] form either way
    const headName = arch.head;
    const outIn = (sp: Spec): [number, number] =>
      sp.layout === "conv1d" ? [sp.shape[1], sp.shape[0]] : [sp.shape[0], sp.shape[1]];
    const qtypeOf = new Map<string, QuantType>();
    const asStored = new Set<string>();
    for (const sp of specs) {
      if (!sp.layout && sp.name !== headName && sp.name !== arch.embed) continue;
      const st = dtype !== "f32" && weights.linearBlocks ? weights.storedType?.(sp.name) : undefined;
      const stored = st === "Q8_0" ? GgmlType.Q8_0 : st === "Q4_0" ? GgmlType.Q4_0 : 0;
      if (stored) asStored.add(sp.name);
      const t = stored || want;
      if (!t) continue;
      const K = outIn(sp)[1];
      if (K % 32 !== 0) {
        throw new ShapeError(
          `dtype "${dtype}": tensor "${sp.name}" has ${K} input features, not a multiple of 32 (the Q8_0/Q4_0 block size)`,
        );
      }
      qtypeOf.set(sp.name, t);
    }
    const anyQuant = qtypeOf.size > 0;

    // ---- plan the heap once: weights, KV cache, scratch
    const rows = maxBatch * chunk;
    const logitRows = Math.max(maxBatch, Math.min(rows, 16));
    const rt = opts.runtime ?? createRuntime();
    /** bytes of a quantized weight's rows */
    const qBytes = (sp: Spec) => {
      const [out, K] = outIn(sp);
      return out * rt.k.quantRowBytes(qtypeOf.get(sp.name)!, K);
    };
    /** floats a weight takes in the heap: packed matrices and head are padded to 8 columns */
    const floatsOf = (sp: Spec) => {
      if (qtypeOf.has(sp.name)) return Math.ceil(qBytes(sp) / F32);
      if (packed && sp.layout === "conv1d") return rt.k.packedSize(sp.shape[0], sp.shape[1]);
      if (packed && sp.layout === "linear") return rt.k.packedSize(sp.shape[1], sp.shape[0]);
      if (packed && sp.name === headName) return rt.k.packedSize(E, V);
      return sp.shape.reduce((x, y) => x * y, 1);
    };
    const weightFloats = specs.reduce((a, s) => a + floatsOf(s), 0);
    const cacheFloats = 2 * L * maxBatch * P * kvW;
    const attW = arch.heads * arch.headDim;
    const hFloats = arch.gated ? 2 * I : I;
    const ropeFloats = arch.invFreq ? arch.invFreq.length : 0;
    const maxK = Math.max(E, I, attW);
    const xqFloats = anyQuant ? (4 * rt.k.xqRowBytes(maxK)) / F32 : 0;
    const scratchFloats =
      rows * (2 + E * 2 + attW + qkvW + hFloats) +
      chunk * P +
      logitRows * (E + V) +
      (maxBatch * P) / 4 +
      ropeFloats +
      xqFloats;
    const heap = rt.heap;
    // the largest matrix or LM-head block, transposed or packed from here (packed: the head's
    // source rows and their packed copy)
    const packCols = Math.min(PACK_HEAD_COLS, Math.ceil(V / 8) * 8);
    // (quantized matrices need none: they are quantized straight from the tensor)
    const maxMatrix = specs.reduce(
      (a, sp) => (sp.layout && !qtypeOf.has(sp.name) ? Math.max(a, sp.shape[0] * sp.shape[1]) : a),
      0,
    );
    const stagingFloats = Math.max(
      maxMatrix,
      qtypeOf.has(headName) ? 0 : packed ? 2 * E * packCols : E * Math.min(V, headBlock),
    );
    heap.reserve((weightFloats + cacheFloats + scratchFloats + stagingFloats) * F32 + 64 * 16 * (specs.length + 16));

    // weights first, then scratch and cache, then (temporarily) the staging buffer
    const ptrs = new Map<string, number>();
    for (const s of specs) ptrs.set(s.name, heap.allocF32(floatsOf(s)));
    const at = (name: string | undefined) => (name === undefined ? 0 : ptrs.get(name)!);
    const blocks: BlockWeights[] = arch.blocks.map((b: BlockNames) => ({
      ln1w: at(b.ln1w),
      ln1b: at(b.ln1b),
      attnW: at(b.attnW),
      attnB: at(b.attnB),
      kW: at(b.kW),
      kB: at(b.kB),
      vW: at(b.vW),
      vB: at(b.vB),
      attnProjW: at(b.attnProjW),
      attnProjB: at(b.attnProjB),
      ln2w: at(b.ln2w),
      ln2b: at(b.ln2b),
      fcW: at(b.fcW),
      fcB: at(b.fcB),
      upW: at(b.upW),
      upB: at(b.upB),
      mlpProjW: at(b.mlpProjW),
      mlpProjB: at(b.mlpProjB),
    }));
    const w: Weights = {
      invFreq: arch.invFreq ? heap.allocF32(arch.invFreq.length) : 0,
      wte: untied ? at(arch.embed) : 0,
      wpe: at(arch.pos),
      blocks,
      lnfW: at(arch.normW),
      lnfB: at(arch.normB),
      head: at(headName),
    };
    if (arch.invFreq) heap.f32(w.invFreq, arch.invFreq.length).set(arch.invFreq);
    const s: Scratch = {
      rows,
      ids: heap.alloc(rows * 4),
      pos: heap.alloc(rows * 4),
      x: heap.allocF32(rows * E),
      xn: heap.allocF32(rows * E),
      qkv: heap.allocF32(rows * qkvW),
      att: heap.allocF32(rows * attW),
      h: heap.allocF32(rows * I),
      h2: arch.gated ? heap.allocF32(rows * I) : 0,
      probs: heap.allocF32(chunk * P),
      logitRows,
      lnRows: heap.allocF32(logitRows * E),
      logits: heap.allocF32(logitRows * V),
      xq: anyQuant ? heap.alloc(4 * rt.k.xqRowBytes(maxK)) : 0,
      kCache: heap.allocF32(L * maxBatch * P * kvW),
      vCache: heap.allocF32(L * maxBatch * P * kvW),
      kpm: heap.alloc(maxBatch * P),
    };

    // ---- copy the weights in, one tensor at a time (a lazy file reads each just now)
    const mark = heap.mark();
    const staging = heap.allocF32(stagingFloats);
    // progress counts checkpoint bytes (packed weights take a little more heap: 8-column padding)
    const total = specs.reduce((a, sp) => a + sp.shape.reduce((x, y) => x * y, 1), 0) * F32;
    let loaded = 0;
    try {
      for (const sp of specs) {
        checkAbort();
        const ptr = ptrs.get(sp.name)!;
        const qt = qtypeOf.get(sp.name);
        if (qt && asStored.has(sp.name)) {
          // stored Q8_0 / Q4_0 rows, copied as they are
          const b = await weights.linearBlocks!(sp.name);
          checkAbort();
          if (!b || b.data.length !== qBytes(sp)) {
            throw new WeightsError(
              `tensor "${sp.name}": ${b ? b.data.length : 0} bytes of stored ${b?.type ?? "blocks"}, expected ${qBytes(sp)}`,
              [sp.name],
            );
          }
          heap.u8(ptr, b.data.length).set(b.data);
          used.add(sp.name);
          loaded += sp.shape.reduce((x, y) => x * y, 1) * F32;
          opts.onProgress?.({ loaded, total, tensor: sp.name });
          continue;
        }
        const fileDtype = qt && weights.readRaw ? weights.info?.(sp.name).dtype : undefined;
        if (qt && (fileDtype === "F32" || fileDtype === "F16" || fileDtype === "BF16")) {
          // quantized while streaming the stored values a few MB at a time: whole output rows of
          // a Linear [out, in] weight, or bands of 32 input rows of a Conv1D [in, out] one
          const [nout, nin] = outIn(sp);
          const esz = fileDtype === "F32" ? 4 : 2;
          const conv = sp.layout === "conv1d";
          const unit = (conv ? 32 * nout : nin) * esz; // bytes of one row or band
          const qRow = rt.k.quantRowBytes(qt, nin);
          const chunk = unit * Math.max(1, Math.floor((opts.quantChunk ?? 1 << 22) / unit));
          await weights.readRaw!(
            sp.name,
            (bytes, at) => {
              const n = bytes.length / esz;
              const vals =
                fileDtype === "F32"
                  ? new Float32Array(bytes.slice().buffer)
                  : (fileDtype === "F16" ? f16ArrayToF32 : bf16ArrayToF32)(new Uint16Array(bytes.slice().buffer));
              const u0 = at / unit;
              const dst = heap.u8(ptr, qBytes(sp));
              if (conv) quantizeBlocksTransposed(qt, vals, n / nout, nout, dst, qRow, u0);
              else quantizeBlocks(qt, vals, dst.subarray(u0 * qRow, (u0 + n / nin) * qRow));
            },
            chunk,
          );
          checkAbort();
          used.add(sp.name);
          loaded += sp.shape.reduce((x, y) => x * y, 1) * F32;
          opts.onProgress?.({ loaded, total, tensor: sp.name });
          continue;
        }
        const t = await weights.get(sp.name);
        checkAbort();
        checkShape(sp.name, sp.shape, t.shape);
        if (t.dtype !== "f32") {
          throw new WeightsError(`tensor "${sp.name}" has dtype ${t.dtype}, expected a float tensor`, [sp.name]);
        }
        if (qt) {
          // Linear [out, in] rows (the head and wte are [V, E]; a Conv1D [in, out] weight's
          // columns) quantized block by block straight into the heap
          const [nout, nin] = outIn(sp);
          const dst = heap.u8(ptr, qBytes(sp));
          if (sp.layout === "conv1d") quantizeBlocksTransposed(qt, t.data as Float32Array, nin, nout, dst);
          else quantizeBlocks(qt, t.data as Float32Array, dst);
        } else if (sp.name === headName && packed) {
          // [V, E] rows = Wᵀ of the K×N = E×V head, packed PACK_HEAD_COLS columns at a time: each
          // column range is packed on its own, then each of its K blocks (kb rows × wb8 columns,
          // contiguous) is copied to its place pc·N8 + v0·kb in the whole operand (see Kernels.packB)
          const src = t.data as Float32Array;
          const N8 = Math.ceil(V / 8) * 8;
          const tmp = staging + E * packCols * F32;
          for (let v0 = 0; v0 < V; v0 += packCols) {
            const wb = Math.min(packCols, V - v0);
            const wb8 = Math.ceil(wb / 8) * 8;
            heap.f32(staging, wb * E).set(src.subarray(v0 * E, (v0 + wb) * E));
            rt.k.packB(E, wb, staging, E, 1, tmp);
            for (let pc = 0; pc < E; pc += PACK_KC) {
              const kb = Math.min(PACK_KC, E - pc);
              rt.k.copy2d(tmp + pc * wb8 * F32, kb * wb8, ptr + (pc * N8 + v0 * kb) * F32, kb * wb8, 1, kb * wb8);
            }
          }
        } else if (sp.name === headName) {
          // [V, E] rows → column blocks (E, wb) of the transposed head (see HEAD_BLOCK)
          const src = t.data as Float32Array;
          for (let v0 = 0; v0 < V; v0 += headBlock) {
            const wb = Math.min(headBlock, V - v0);
            heap.f32(staging, wb * E).set(src.subarray(v0 * E, (v0 + wb) * E));
            rt.k.transpose2d(staging, E, ptr + v0 * E * F32, wb, wb, E);
          }
        } else if (sp.layout === "linear") {
          // Linear [out, in]: packed as op(B) with transB = 1; kept as is for transB = 1 (colBlock
          // 0); or cut into the column blocks (in, wb) of its transpose
          const [nout, nin] = sp.shape;
          heap.f32(staging, t.size).set(t.data as Float32Array);
          if (packed) {
            rt.k.packB(nin, nout, staging, nin, 1, ptr);
          } else if (colBlock === 0) {
            rt.k.copy2d(staging, nin, ptr, nin, nout, nin);
          } else {
            for (let c0 = 0; c0 < nout; c0 += colBlock) {
              const wb = Math.min(colBlock, nout - c0);
              rt.k.transpose2d(staging + c0 * nin * F32, nin, ptr + c0 * nin * F32, wb, wb, nin);
            }
          }
        } else if (sp.layout === "conv1d") {
          const [nin, nout] = sp.shape;
          heap.f32(staging, t.size).set(t.data as Float32Array);
          if (packed) {
            rt.k.packB(nin, nout, staging, nout, 0, ptr); // Conv1D [in, out] is op(B) with transB = 0
          } else if (colBlock === 0) {
            rt.k.transpose2d(staging, nout, ptr, nin, nin, nout); // Conv1D [in, out] → Linear [out, in]
          } else {
            // [in, out] cut into contiguous column blocks (in, wb)
            for (let c0 = 0; c0 < nout; c0 += colBlock) {
              const wb = Math.min(colBlock, nout - c0);
              rt.k.copy2d(staging + c0 * F32, nout, ptr + c0 * nin * F32, wb, nin, wb);
            }
          }
        } else {
          heap.f32(ptr, t.size).set(t.data as Float32Array);
        }
        used.add(sp.name);
        loaded += t.size * F32;
        opts.onProgress?.({ loaded, total, tensor: sp.name });
      }
    } catch (e) {
      heap.release(mark);
      // an aborted or failed copy gives a runtime made here back at once (its heap is planned in full)
      if (opts.runtime === undefined) releaseRuntime(rt);
      throw e;
    }
    heap.release(mark);
    const unused = weights.names().filter((n) => !used.has(n));
    return {
      arch,
      rt,
      w,
      s,
      maxBatch,
      chunk,
      unused,
      colBlock,
      headBlock,
      packed,
      qtypes: new Map([...qtypeOf].map(([n, t]) => [ptrs.get(n)!, t])),
      ownsRuntime: opts.runtime === undefined,
    };
  }

  /**
   * Generate from text (needs `tokenizer`) or token ids, one prompt or a batch (shorter prompts are
   * left-padded). An async iterator of chunks, one per new token per row; its return value is the
   * whole result. See `GenerateOptions` for sampling, stopping, streaming and cancellation.
   * @example
   * ```ts
   * for await (const c of model.generate("Hello", { maxNewTokens: 20, temperature: 0.8, seed: 1 })) process.stdout.write(c.text);
   * ```
   */
  generate(prompt: Prompt, opts: GenerateOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult, void> {
    this.alive();
    return generate(this, this.tokenizer, prompt, opts);
  }

  /** `generate` run to the end: the ids, texts and finish reasons per row. */
  generateAll(prompt: Prompt, opts: GenerateOptions = {}): Promise<GenerationResult> {
    if (this.isDisposed) return Promise.reject(new DisposedError(`this ${this.modelName}`));
    return generateAll(this, this.tokenizer, prompt, opts);
  }

  /** Slots filled in the KV cache (prompt + generated tokens, padding included). */
  get cacheLength(): number {
    return this.stateOf(this.own).len;
  }
  /** Rows of the current batch (0 before the first prefill). */
  get batchSize(): number {
    return this.stateOf(this.own).batch;
  }
  /** Leading padding slots of each row of the current batch. */
  get padding(): number[] {
    const st = this.stateOf(this.own);
    return Array.from(st.pad.subarray(0, st.batch));
  }

  /** Forget the cached sequence (the buffers stay allocated). */
  reset(): void {
    this.enter(this.own, true);
    this.len = 0;
    this.batch = 0;
    this.pad.fill(0);
  }

  // -------------------------------------------------------------------------------------------
  // KV contexts (kv-context.ts) and dispose

  /**
   * A new, empty sequence of its own: pass it as `context` to `prefill`/`decode`/`extend`/
   * `prefillEmbeds`. Sequences of different contexts may be interleaved freely (each
   * `generate()` runs in one); the cache memory is swapped between them when needed.
   */
  createContext(): KVContext {
    this.alive();
    return new KVContext(this, this.maxBatch);
  }

  /** Drop a context made by `createContext` (its saved slots); using it afterwards is a `DisposedError`. */
  releaseContext(ctx: KVContext): void {
    if (!(ctx instanceof KVContext) || ctx.owner !== this || ctx === this.own) return;
    ctx.released = true;
    ctx.k = ctx.v = undefined;
    if (this.resident === ctx) this.resident = undefined; // nothing to save from it any more
  }

  /**
   * Free the model's wasm memory now (the runtime goes back to core's `releaseRuntime`, unless it
   * was passed in through `runtime`). Every later call is a `DisposedError`; a `generate()` in
   * flight ends with one at its next step.
   */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.resident = undefined;
    if (this.ownsRuntime) releaseRuntime(this.runtime);
  }

  /** True once `dispose()` has run. */
  get disposed(): boolean {
    return this.isDisposed;
  }

  // -------------------------------------------------------------------------------------------
  // training (train.ts): masters in the checkpoint layout, gradients, kept activations

  /**
   * Training mode: plans (once, for `maxBatch × maxSeqLen`) the parameters' gradients and the
   * activation buffers, and sets the loss (`ignoreIndex`, `labelSmoothing`, `shiftLabels`). Then
   * `lossAndGrad` / `evaluate` work and `fit` trains the model. The matrices have one copy, rewritten
   * in place between the inference layout and the checkpoint layout that training and the
   * optimizer use (train.ts): a training step switches to the checkpoint layout, any inference
   * (`prefill`, `decode`, `embedTokens`, …) back. So an optimizer step belongs after `lossAndGrad`,
   * not after an inference call (`fit` keeps that order).
   */
  train(opts: TrainOptions = {}): this {
    this.alive();
    checkTrainOptions(opts, this.arch.maxPositions);
    const tr = this.trainingState();
    const maxB = opts.maxBatch ?? Math.max(this.maxBatch, tr.plannedBatch);
    const maxT = opts.maxSeqLen ?? Math.max(Math.min(this.arch.maxPositions, 256), tr.plannedSeqLen);
    tr.plan(maxB, maxT);
    if (opts.ignoreIndex !== undefined) tr.ignoreIndex = opts.ignoreIndex;
    if (opts.labelSmoothing !== undefined) tr.labelSmoothing = opts.labelSmoothing;
    if (opts.shiftLabels !== undefined) tr.shiftLabels = opts.shiftLabels;
    if (opts.requiresGrad !== undefined) tr.requiresGrad = opts.requiresGrad;
    this.trainingMode = true;
    return this;
  }

  /**
   * Inference mode (the default): the parameters (when `train()` or `parameters()` made them) are
   * back in the inference layout; prefill and decode then run exactly as without training.
   */
  eval(): this {
    this.alive();
    this.trainer?.toInference();
    this.trainingMode = false;
    return this;
  }

  /** True between `train()` and `eval()`. */
  get training(): boolean {
    return this.trainingMode;
  }

  /**
   * The trainable tensors, named as in the Hugging Face state dict (`transformer.h.0.attn.c_attn.weight`,
   * `model.layers.0.self_attn.q_proj.weight`, …; a tied LM head is the embedding, not a tensor of
   * its own), each in its checkpoint shape and layout. Their gradients are what `lossAndGrad` adds to.
   */
  parameters(): TrainParam[] {
    this.alive();
    return this.trainingState().params;
  }

  /** Checkpoint shape of every parameter, by name. */
  parameterShapes(): Record<string, number[]> {
    this.alive();
    return this.trainingState().shapes;
  }

  /**
   * Forward over the batch (`[B, T]` ids, equal lengths), mean cross-entropy over the counted
   * (shifted) labels, and backward: adds `scale · ∂loss/∂θ` into every parameter's gradient (nn's
   * `Trainable`). Needs training mode. Examples with `inputsEmbeds` also get the gradient of those
   * rows back (`embedsGrads`); with `train({ requiresGrad: false })` that is all backward computes.
   */
  lossAndGrad(batch: readonly LMExample[], scale: number): LMBatchResult {
    this.alive();
    if (!this.trainingMode) throw new InputError("lossAndGrad: the model is in inference mode; call train() first");
    return this.trainer!.run(batch, scale, "lossAndGrad");
  }

  /** The mean loss of a batch without gradients (after `train()` planned the buffers; either mode). */
  evaluate(batch: readonly LMExample[]): LMBatchResult {
    this.alive();
    if (!this.trainer) throw new InputError("evaluate: call train() first (it plans the training buffers)");
    return this.trainer.run(batch, undefined, "evaluate");
  }

  /** The current parameters by Hugging Face name, in the checkpoint layout (copies). */
  stateDict(): Map<string, Tensor<"f32">> {
    this.alive();
    return this.trainingState().stateDict((n) => this.hfName(n));
  }

  /** `model.safetensors` bytes of the current parameters (Hugging Face names; no tied `lm_head`). */
  saveSafetensors(): Uint8Array {
    return writeSafetensors(this.stateDict(), { format: "pt" });
  }

  /** The `config.json` object of this model (HF fields, `model_type`, `architectures`). */
  configJson(): Record<string, unknown> {
    const t = this.arch.modelType;
    const archName =
      t === "gpt2"
        ? "GPT2LMHeadModel"
        : `${t === "qwen2" ? "Qwen2" : t === "mistral" ? "Mistral" : "Llama"}ForCausalLM`;
    return { architectures: [archName], ...(this.config as object), model_type: t };
  }

  /**
   * Write `config.json` and `model.safetensors` into `folder` (Node; created if needed), readable
   * by `fromPretrained` / `AutoModelForCausalLM` (and Hugging Face `from_pretrained`).
   */
  async save(folder: string): Promise<void> {
    const bytes = this.saveSafetensors();
    const fs = await import("node:fs/promises");
    const path = await import("node:path");
    await fs.mkdir(folder, { recursive: true });
    await fs.writeFile(path.join(folder, "config.json"), `${JSON.stringify(this.configJson(), null, 2)}\n`);
    await fs.writeFile(path.join(folder, "model.safetensors"), bytes);
  }

  /** The training buffers, made on first use (masters read from the inference storage). */
  private trainingState(): DecoderTraining {
    if (this.qtypes.size > 0) {
      throw new InputError(
        `training needs f32 weights: this ${this.modelName} was loaded with dtype "${this.dtype}" (load it without dtype to train)`,
      );
    }
    if (!this.trainer) {
      const engine = new Map<string, number>();
      const w = this.w;
      const arch = this.arch;
      const put = (name: string | undefined, ptr: number) => name !== undefined && engine.set(name, ptr);
      put(arch.embed, arch.tied ? w.head : w.wte);
      put(arch.pos, w.wpe);
      put(arch.normW, w.lnfW);
      put(arch.normB, w.lnfB);
      put(arch.head, w.head);
      arch.blocks.forEach((b, l) => {
        for (const key of Object.keys(b) as (keyof BlockNames)[]) put(b[key], w.blocks[l][key]);
      });
      this.trainer = new DecoderTraining(this.fwd, engine, (n) => this.hfName(n));
    }
    return this.trainer;
  }

  /** Hugging Face name of a checkpoint tensor (original GPT-2 names get the `transformer.` prefix). */
  private hfName(name: string): string {
    return this.arch.modelType === "gpt2" && !name.startsWith("transformer.") && name !== "lm_head.weight"
      ? `transformer.${name}`
      : name;
  }

  /**
   * Before any inference: the matrices back in the inference layout if training (or `parameters()`,
   * `stateDict()`) left them in the checkpoint layout (see train.ts); nothing to do otherwise.
   */
  private syncTrained(): void {
    this.trainer?.toInference();
  }

  private alive(): void {
    if (this.isDisposed) throw new DisposedError(`this ${this.modelName}`);
  }

  /** The sequence state of `ctx`: live fields when resident, else its saved state. */
  private stateOf(ctx: KVContext): { len: number; batch: number; pad: Int32Array } {
    return this.resident === ctx ? { len: this.len, batch: this.batch, pad: this.pad } : ctx.state;
  }

  /** Make `ctx` (default: the model's own) the resident context, swapping cache slots if needed. */
  private enter(ctx: KVContext | undefined, fresh = false): KVContext {
    this.alive();
    const c = ctx ?? this.own;
    if (!(c instanceof KVContext) || c.owner !== this)
      throw new InputError("context must be a KVContext created by this model's createContext()");
    c.check();
    if (this.resident === c) return c;
    if (fresh) {
      // a new sequence replaces the saved one: nothing to restore
      c.state = { len: 0, batch: 0, pad: new Int32Array(this.maxBatch) };
      c.k = c.v = undefined;
    }
    if (this.resident) saveContext(this.layout, { len: this.len, batch: this.batch, pad: this.pad }, this.resident);
    ({ len: this.len, batch: this.batch, pad: this.pad } = restoreContext(this.layout, c));
    this.resident = c;
    return c;
  }

  /**
   * Full forward pass over `[B, T]` token ids from an empty cache (HF `model(input_ids).logits`):
   * returns `[B, T, V]` logits. The cache then holds the sequence, so `decode` can continue it.
   */
  forward(inputIds: ArrayLike<number>[] | Tensor, opts: Omit<PrefillOptions, "logits"> = {}): Tensor<"f32"> {
    return this.prefill(inputIds, { ...opts, logits: "all" }).logits!;
  }

  /**
   * Reset the cache and run the prompt `[B, T]` (all rows of length T; pad shorter prompts on the
   * left and pass `attentionMask`). Default: logits of the last position only.
   */
  prefill(inputIds: ArrayLike<number>[] | Tensor, opts: PrefillOptions = {}): ForwardOutput {
    this.alive();
    checkForwardOptions(opts);
    const rows = toIdRows(inputIds, "input_ids", this.config.vocab_size);
    const B = rows.length;
    if (B === 0) throw new InputError("input_ids has no rows");
    if (B > this.maxBatch)
      throw new InputError(
        `batch of ${B} rows exceeds maxBatch ${this.maxBatch} (set maxBatch when loading the model)`,
      );
    const T = rows[0].length;
    if (T === 0) throw new InputError("input_ids rows are empty: a prompt needs at least one token");
    rows.forEach((r, b) => {
      if (r.length !== T)
        throw new InputError(
          `input_ids rows differ in length: row 0 has ${T}, row ${b} has ${r.length} (left-pad them and pass attentionMask)`,
        );
    });
    const P = this.arch.maxPositions;
    if (T > P) throw new InputError(`prompt of ${T} tokens exceeds ${this.arch.positionsField} ${P}`);
    const pad = new Int32Array(this.maxBatch);
    if (opts.attentionMask !== undefined) {
      const mask = toIdRows(opts.attentionMask, "attentionMask");
      if (mask.length !== B) throw new InputError(`attentionMask has ${mask.length} rows, input_ids has ${B}`);
      mask.forEach((m, b) => {
        if (m.length !== T)
          throw new InputError(`attentionMask row ${b} has ${m.length} entries, input_ids rows have ${T}`);
        let p = 0;
        while (p < T && m[p] === 0) p++;
        for (let t = p; t < T; t++) {
          if (m[t] !== 1) {
            throw new InputError(
              m[t] === 0
                ? `attentionMask[${b}, ${t}] = 0 after a real token: only left padding is supported`
                : `attentionMask[${b}, ${t}] = ${m[t]}: entries must be 0 or 1`,
            );
          }
        }
        if (p === T)
          throw new InputError(`attentionMask row ${b} is all padding: a prompt needs at least one real token`);
        pad[b] = p;
      });
    }
    // the new state is committed only once the inputs are known to be valid
    this.syncTrained();
    this.enter(opts.context, true);
    this.len = 0;
    this.batch = B;
    this.pad = pad;
    const kpm = this.runtime.heap.u8(this.s.kpm, this.maxBatch * P);
    kpm.fill(0);
    for (let b = 0; b < B; b++) kpm.fill(1, b * P, b * P + pad[b]);
    return this.run(rows, T, opts);
  }

  /**
   * Append one token per row (`ids[b]` for row b) at the next cache slot and return the logits of
   * that position (`[B, 1, V]`, or none with `logits: "none"`).
   */
  decode(ids: ArrayLike<number>, opts: ForwardOptions = {}): ForwardOutput {
    checkForwardOptions(opts);
    const { batch } = this.stateOf(this.enter(opts.context));
    if (batch === 0) throw new InputError("decode() before prefill(): the cache is empty");
    if (ids === null || typeof ids !== "object" || typeof ids.length !== "number")
      throw new InputError(`decode() takes one token id per row (an array), got ${show(ids)}`);
    if (ids.length !== batch) throw new InputError(`decode() got ${ids.length} token ids for a batch of ${batch} rows`);
    return this.extend(
      Array.from({ length: batch }, (_, b) => [ids[b]]),
      { logits: opts.logits ?? "last", outputAttentions: opts.outputAttentions, context: opts.context },
    );
  }

  /** Append `T` tokens per row (`[B, T]`) to the cached sequence. */
  extend(inputIds: ArrayLike<number>[] | Tensor, opts: ForwardOptions = {}): ForwardOutput {
    checkForwardOptions(opts);
    this.enter(opts.context);
    if (this.batch === 0) throw new InputError("extend() before prefill(): the cache is empty");
    const rows = toIdRows(inputIds, "input_ids", this.config.vocab_size, this.len);
    if (rows.length !== this.batch) throw new InputError(`got ${rows.length} rows for a batch of ${this.batch}`);
    const T = rows[0].length;
    rows.forEach((r, b) => {
      if (r.length !== T)
        throw new InputError(`input_ids rows differ in length: row 0 has ${T}, row ${b} has ${r.length}`);
    });
    if (T === 0) throw new InputError("no tokens to append");
    this.checkCapacity(T, opts.context);
    this.syncTrained();
    return this.run(rows, T, opts);
  }

  // -------------------------------------------------------------------------------------------
  // inputs_embeds (used by @wasmformer/vlm: image embeddings spliced between token embeddings)

  /**
   * Token embeddings `wte[ids]` of `[B, T]` ids as a `[B, T, E]` tensor (HF
   * `get_input_embeddings()(input_ids)`); T may be 0. Does not touch the KV cache.
   */
  embedTokens(inputIds: ArrayLike<number>[] | Tensor): Tensor<"f32"> {
    this.alive();
    const rows = toIdRows(inputIds, "input_ids", this.config.vocab_size);
    const B = rows.length;
    const T = rows[0]?.length ?? 0;
    rows.forEach((r, b) => {
      if (r.length !== T)
        throw new InputError(`input_ids rows differ in length: row 0 has ${T}, row ${b} has ${r.length}`);
    });
    this.syncTrained();
    const { E } = this;
    const out = new Float32Array(B * T * E);
    const flat = new Int32Array(B * T);
    for (let b = 0; b < B; b++) flat.set(rows[b], b * T);
    const heap = this.runtime.heap;
    for (let i0 = 0; i0 < flat.length; i0 += this.s.rows) {
      const n = Math.min(this.s.rows, flat.length - i0);
      heap.i32(this.s.ids, n).set(flat.subarray(i0, i0 + n));
      this.fwd.tokens(n, this.s.ids, this.s.x);
      out.set(heap.f32(this.s.x, n * E), i0 * E);
    }
    return new Tensor(out, [B, T, E], "f32");
  }

  /**
   * Reset the cache and run `inputs_embeds` `[B, T, E]` (HF `model(inputs_embeds=…)`): the
   * embeddings take the place of `wte[ids]`, positions 0 … T−1 are added as usual. `decode` then
   * continues with token ids at position T.
   */
  prefillEmbeds(inputsEmbeds: Tensor, opts: ForwardOptions = {}): ForwardOutput {
    this.alive();
    checkForwardOptions(opts);
    const { E } = this;
    if (!(inputsEmbeds instanceof Tensor)) throw new InputError("inputs_embeds must be a Tensor [batch, time, n_embd]");
    if (inputsEmbeds.dtype !== "f32") throw new InputError(`inputs_embeds must be f32, got ${inputsEmbeds.dtype}`);
    if (inputsEmbeds.ndim !== 3 || inputsEmbeds.shape[2] !== E) {
      throw new ShapeError(
        `inputs_embeds must be [batch, time, ${E}] (${this.arch.dimField} ${E}), got ${formatShape(inputsEmbeds.shape)}`,
      );
    }
    const [B, T] = inputsEmbeds.shape;
    if (B === 0) throw new InputError("inputs_embeds has no rows");
    if (B > this.maxBatch)
      throw new InputError(
        `batch of ${B} rows exceeds maxBatch ${this.maxBatch} (set maxBatch when loading the model)`,
      );
    if (T === 0) throw new InputError("inputs_embeds rows are empty: a prompt needs at least one position");
    const P = this.arch.maxPositions;
    if (T > P) throw new InputError(`prompt of ${T} positions exceeds ${this.arch.positionsField} ${P}`);
    const data = inputsEmbeds.data as Float32Array;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        const b = Math.floor(i / (T * E));
        const t = Math.floor(i / E) % T;
        throw new InputError(`inputs_embeds[${b}, ${t}, ${i % E}] = ${data[i]} is not finite`);
      }
    }
    this.syncTrained();
    this.enter(opts.context, true);
    this.len = 0;
    this.batch = B;
    this.pad = new Int32Array(this.maxBatch);
    this.runtime.heap.u8(this.s.kpm, this.maxBatch * P).fill(0);
    return this.run([], T, opts, data);
  }

  /** Throws the typed error for appending `n` more positions beyond `n_positions` / `max_position_embeddings` (to `context`, default the model's own). */
  checkCapacity(n: number, context?: KVContext): void {
    const P = this.arch.maxPositions;
    const { len } = this.stateOf(context ?? this.own);
    if (len + n > P) {
      throw new InputError(
        `sequence would reach ${len + n} positions (${len} cached + ${n} new), beyond ${this.arch.positionsField} ${P}`,
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // the forward pass (llama2.c `forward`): T new positions per row, in chunks, on the heap buffers

  /**
   * The inference forward: the steps of decoder-forward.ts (`tokens`, `positions`, `block(l)`,
   * `finalNorm`, `lmHead`) on the scratch (`acts`: residual in place, activation fused), with the
   * KV-cache attention below as the block's attention step. `embeds` (B·T·E floats,
   * `inputs_embeds`) replaces `wte[ids]` when given; `rows` are then unused (see `prefillEmbeds`).
   */
  private run(rows: Int32Array[], T: number, opts: ForwardOptions, embeds?: Float32Array): ForwardOutput {
    const { E, H, hs, KV } = this;
    const arch = this.arch;
    const V = this.config.vocab_size;
    const P = arch.maxPositions;
    const qW = H * hs; // query width = attention output width
    const kvW = KV * hs; // key (and value) width
    const qkvW = qW + 2 * kvW; // a row of the q | k | v scratch
    const group = H / KV; // query heads per key/value head
    const B = this.batch;
    const k = this.runtime.k;
    const heap = this.runtime.heap;
    const s = this.s;
    const fwd = this.fwd;
    const mode = opts.logits ?? "last";
    const Sfinal = this.len + T;
    const logitsOut =
      mode === "all" ? new Float32Array(B * T * V) : mode === "last" ? new Float32Array(B * V) : undefined;
    const attnOut = opts.outputAttentions
      ? Array.from({ length: arch.layers }, () => new Float32Array(B * H * T * Sfinal))
      : undefined;
    const rowBytes = P * kvW * F32; // one (layer, batch row) slice of the cache: (n_positions, KV·d)
    const cacheAt = (base: number, l: number, b: number) => base + (l * this.maxBatch + b) * rowBytes;
    let t0 = 0; // first position of the chunk
    let Lc = 0; // positions per row in the chunk
    let s0 = 0; // first cache slot of the chunk

    // The inference attention step of the shared block: k, v of the chunk into the cache, then
    // softmax(q·kᵀ·scale) over slots ≤ s0 + t, padding slots blocked → (Lc, hs) into att: every
    // (row, head) slice of the layer in one `attentionHeads` call (spread over the kernel threads),
    // each with its own weights in the probs scratch; as many slices a call as that scratch holds.
    const slices: AttentionArgs[] = [];
    const of: [number, number][] = [];
    const attend = (l: number) => {
      const scale = arch.attnScale(l);
      const S = s0 + Lc;
      const room = Math.max(1, Math.floor((this.prefillChunk * P) / (Lc * S)));
      const flush = () => {
        k.attentionHeads(slices);
        if (attnOut) {
          // probs (Lc, S) of slice i → attentions[l][b, h, t0 + t, 0 : S]
          const dst = attnOut[l];
          of.forEach(([b, h], i) => {
            const pr = heap.f32(s.probs + i * Lc * S * F32, Lc * S);
            for (let t = 0; t < Lc; t++) dst.set(pr.subarray(t * S, (t + 1) * S), ((b * H + h) * T + t0 + t) * Sfinal);
          });
        }
        slices.length = 0;
        of.length = 0;
      };
      for (let b = 0; b < B; b++) {
        const q0 = s.qkv + b * Lc * qkvW * F32;
        // k, v of the new positions → cache slots [s0, s0 + Lc) of (l, b): (Lc, KV·d), ld qkvW → ld KV·d
        const kc = cacheAt(s.kCache, l, b);
        const vc = cacheAt(s.vCache, l, b);
        k.copy2d(q0 + qW * F32, qkvW, kc + s0 * kvW * F32, kvW, Lc, kvW);
        k.copy2d(q0 + (qW + kvW) * F32, qkvW, vc + s0 * kvW * F32, kvW, Lc, kvW);
        for (let h = 0; h < H; h++) {
          const g = Math.floor(h / group); // the key/value head of query head h
          slices.push([
            q0 + h * hs * F32,
            qkvW,
            kc + g * hs * F32,
            kvW,
            vc + g * hs * F32,
            kvW,
            s.att + (b * Lc * qW + h * hs) * F32,
            qW,
            s.probs + slices.length * Lc * S * F32,
            Lc,
            S,
            hs,
            hs,
            scale,
            0,
            0,
            this.pad[b] > 0 ? s.kpm + b * P : 0,
            s0,
          ]);
          of.push([b, h]);
          if (slices.length === room) flush();
        }
      }
      if (slices.length > 0) flush();
    };

    for (t0 = 0; t0 < T; t0 += this.prefillChunk) {
      Lc = Math.min(this.prefillChunk, T - t0);
      s0 = this.len;
      const n = B * Lc; // rows of the activation buffers, row = b·Lc + t

      // ---- embeddings: x = wte[ids] (+ wpe[positions] with a learned table)
      const ids = heap.i32(s.ids, n);
      const pos = heap.i32(s.pos, n);
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < Lc; t++) {
          if (!embeds) ids[b * Lc + t] = rows[b][t0 + t];
          pos[b * Lc + t] = Math.max(0, s0 + t - this.pad[b]); // padding slots: any valid position (unused)
        }
      }
      if (embeds) {
        // inputs_embeds: rows (b, t0 … t0 + Lc) of the caller's [B, T, E] embeddings
        const xv = heap.f32(s.x, n * E);
        for (let b = 0; b < B; b++) xv.set(embeds.subarray((b * T + t0) * E, (b * T + t0 + Lc) * E), b * Lc * E);
      } else {
        fwd.tokens(n, s.ids, s.x);
      }
      fwd.positions(n, s.pos, s.x, s.xn);

      // ---- the blocks (decoder-forward.ts), on the scratch: residual in place, activation fused
      for (let l = 0; l < arch.layers; l++) fwd.block(l, n, s.pos, this.acts, attend);
      this.len += Lc;

      // ---- final norm + LM head, only on the rows whose logits are wanted
      if (mode === "all") {
        // every row of the chunk, `logitRows` at a time
        for (let r0 = 0; r0 < n; r0 += s.logitRows) {
          const m = Math.min(s.logitRows, n - r0);
          fwd.finalNorm(s.x + r0 * E * F32, s.lnRows, m);
          fwd.lmHead(m, s.lnRows, s.logits); // (m, V)
          const lg = heap.f32(s.logits, m * V);
          for (let r = 0; r < m; r++) {
            const b = Math.floor((r0 + r) / Lc);
            const t = (r0 + r) % Lc;
            logitsOut!.set(lg.subarray(r * V, (r + 1) * V), (b * T + t0 + t) * V);
          }
        }
      } else if (mode === "last" && t0 + Lc === T) {
        // the last position of each row: (B, E) gathered, then one (B, V) GEMM
        for (let b = 0; b < B; b++) k.copy2d(s.x + (b * Lc + Lc - 1) * E * F32, E, s.lnRows + b * E * F32, E, 1, E);
        fwd.finalNorm(s.lnRows, s.lnRows, B);
        fwd.lmHead(B, s.lnRows, s.logits); // (B, V)
        logitsOut!.set(heap.f32(s.logits, B * V));
      }
    }

    const out: ForwardOutput = {};
    if (logitsOut) out.logits = new Tensor(logitsOut, mode === "all" ? [B, T, V] : [B, 1, V], "f32");
    if (attnOut) out.attentions = attnOut.map((a) => new Tensor(a, [B, H, T, Sfinal], "f32"));
    return out;
  }
}

/**
 * Hugging Face `GPT2LMHeadModel` with a KV cache: the decoder engine with LayerNorm, a learned
 * position table, fused Conv1D q/k/v and a GELU MLP.
 *
 * @example
 * ```ts
 * await init();
 * const model = await GPT2LMHeadModel.fromWeights(config, parseSafetensors(bytes));
 * const { logits } = model.prefill([[464, 2068, 7586]], { logits: "all" }); // [1, 3, V]
 * const next = model.decode([11]);                                            // logits [1, 1, V]
 * ```
 */
export class GPT2LMHeadModel extends CausalLM<GPT2Config> {
  protected override readonly modelName: string = "GPT2LMHeadModel";
  /**
   * Build a model from a config (a `GPT2Config` or a raw `config.json` object) and checkpoint
   * tensors, copying the weights into the runtime heap once. Accepts HF names (`transformer.h.0…`)
   * and the original GPT-2 names (`h.0…`); ignores the legacy `attn.bias`/`attn.masked_bias`
   * buffers; uses `lm_head.weight` when the embeddings are not tied.
   */
  static async fromWeights(
    config: GPT2Config | Record<string, unknown>,
    weights: WeightSource,
    opts: GPT2Options = {},
  ): Promise<GPT2LMHeadModel> {
    const cfg = parseGPT2Config(config);
    const source = asWeightSource(weights);
    return new GPT2LMHeadModel(cfg, await CausalLM.load(gpt2Arch(cfg, source), source, opts));
  }

  /** @internal Build from a parsed config and an arch checked elsewhere (the GGUF loader, gguf-model.ts). */
  static async fromArch(
    cfg: GPT2Config,
    arch: DecoderArch,
    weights: WeightSource,
    opts: GPT2Options = {},
  ): Promise<GPT2LMHeadModel> {
    return new GPT2LMHeadModel(cfg, await CausalLM.load(arch, weights, opts));
  }

  /**
   * Load from a Hugging Face folder (Node) or model id (`owner/name[@revision]`, downloaded once
   * and cached; see core's `openModelFiles`): `config.json`, `model.safetensors`, and the tokenizer
   * (`tokenizer.json` or `vocab.json` + `merges.txt`) when present. See `loadPretrained`.
   */
  static async fromPretrained(folder: string, opts: PretrainedOptions = {}): Promise<GPT2LMHeadModel> {
    const { loadPretrained } = await import("./pretrained.js");
    return loadPretrained(folder, opts);
  }
}

/**
 * @internal The engine switches and tensor names of a GPT-2 checkpoint (HF names, or the original
 * ones without `transformer.`).
 */
export function gpt2Arch(cfg: GPT2Config, weights: WeightSource): DecoderArch {
  const P = cfg.n_positions;
  const E = cfg.n_embd;
  const V = cfg.vocab_size;
  const I = innerDim(cfg);
  const L = cfg.n_layer;
  const H = cfg.n_head;
  const hs = E / H;

  // ---- names: HF (`transformer.` prefix) or original GPT-2 layout (no prefix)
  const prefix = weights.has("transformer.wte.weight")
    ? "transformer."
    : weights.has("wte.weight")
      ? ""
      : "transformer.";
  // a config asking for more blocks than the file holds fails before the names are listed
  checkBlockCount(weights.names(), `${prefix}h.`, L, "n_layer", "ln_1.weight");
  const specs: WeightSpec[] = [];
  const spec = (name: string, shape: number[]) => {
    specs.push(CONV1D.test(name) ? { name, shape, layout: "conv1d" } : { name, shape });
    return name;
  };
  spec(`${prefix}wte.weight`, [V, E]);
  spec(`${prefix}wpe.weight`, [P, E]);
  for (let i = 0; i < L; i++) {
    const p = `${prefix}h.${i}.`;
    spec(`${p}ln_1.weight`, [E]);
    spec(`${p}ln_1.bias`, [E]);
    spec(`${p}attn.c_attn.weight`, [E, 3 * E]);
    spec(`${p}attn.c_attn.bias`, [3 * E]);
    spec(`${p}attn.c_proj.weight`, [E, E]);
    spec(`${p}attn.c_proj.bias`, [E]);
    spec(`${p}ln_2.weight`, [E]);
    spec(`${p}ln_2.bias`, [E]);
    spec(`${p}mlp.c_fc.weight`, [E, I]);
    spec(`${p}mlp.c_fc.bias`, [I]);
    spec(`${p}mlp.c_proj.weight`, [I, E]);
    spec(`${p}mlp.c_proj.bias`, [E]);
  }
  spec(`${prefix}ln_f.weight`, [E]);
  spec(`${prefix}ln_f.bias`, [E]);
  const hasLmHead = weights.has("lm_head.weight");
  const untied = !cfg.tie_word_embeddings;
  if (untied && !hasLmHead) {
    throw new WeightsError(`missing tensor "lm_head.weight" (required because tie_word_embeddings is false)`, [
      "lm_head.weight",
    ]);
  }
  if (untied) spec("lm_head.weight", [V, E]);

  const blocks: BlockNames[] = [];
  for (let i = 0; i < L; i++) {
    const p = `${prefix}h.${i}.`;
    blocks.push({
      ln1w: `${p}ln_1.weight`,
      ln1b: `${p}ln_1.bias`,
      attnW: `${p}attn.c_attn.weight`,
      attnB: `${p}attn.c_attn.bias`,
      attnProjW: `${p}attn.c_proj.weight`,
      attnProjB: `${p}attn.c_proj.bias`,
      ln2w: `${p}ln_2.weight`,
      ln2b: `${p}ln_2.bias`,
      fcW: `${p}mlp.c_fc.weight`,
      fcB: `${p}mlp.c_fc.bias`,
      mlpProjW: `${p}mlp.c_proj.weight`,
      mlpProjB: `${p}mlp.c_proj.bias`,
    });
  }
  return {
    modelType: "gpt2",
    positionsField: "n_positions",
    maxPositions: P,
    vocab: V,
    dim: E,
    dimField: "n_embd",
    layers: L,
    heads: H,
    kvHeads: H,
    headDim: hs,
    inner: I,
    norm: "layernorm",
    eps: cfg.layer_norm_epsilon,
    invFreq: null,
    gated: false,
    act: activationCode(cfg.activation_function),
    attnScale: (l) =>
      (cfg.scale_attn_weights ? 1 / Math.sqrt(hs) : 1) / (cfg.scale_attn_by_inverse_layer_idx ? l + 1 : 1),
    eosTokenIds: eosTokenIds(cfg),
    specs,
    embed: `${prefix}wte.weight`,
    pos: `${prefix}wpe.weight`,
    head: untied ? "lm_head.weight" : `${prefix}wte.weight`,
    tied: !untied,
    normW: `${prefix}ln_f.weight`,
    normB: `${prefix}ln_f.bias`,
    blocks,
    // the original files' causal-mask buffers, and a stored copy of the tied lm_head (HF ignores it)
    ignorable: (n) =>
      (n.startsWith(prefix) && LEGACY_BUFFER.test(n.slice(prefix.length))) || (n === "lm_head.weight" && !untied),
    describe: `vocab_size ${V}, n_positions ${P}, n_embd ${E}, n_inner ${I}`,
  };
}
