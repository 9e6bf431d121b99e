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
 * Prefill runs whole prompt chunks as GEMMs; decode runs one position per row per step (GEMV-shaped
 * GEMMs with M = batch). Rows of a batch share cache slots; a left-padded row blocks its padding
 * slots with a key-padding mask and starts its positions at its first real token, so that it
 * computes exactly what it computes unpadded.
 */
import {
  AbortError,
  checkBlockCount,
  createRuntime,
  formatShape,
  InputError,
  PACK_KC,
  packedIndex,
  type Runtime,
  ShapeError,
  Tensor,
  WasmformerError,
  WeightsError,
} from "@wasmformer/core";
import { activationCode, type GPT2Config, innerDim, parseGPT2Config } from "./config.js";
import {
  type GenerateOptions,
  type GenerationChunk,
  type GenerationResult,
  generate,
  generateAll,
  type Prompt,
} from "./generate.js";
import type { Tokenizer } from "./tokenizer.js";

// ---------------------------------------------------------------------------------------------
// weights

/** Where weights come from: a parsed safetensors file, a lazy one (async `get`), or any map alike. */
export interface WeightSource {
  names(): string[];
  has(name: string): boolean;
  /** Shape without reading the data (lazy files), when available. */
  info?(name: string): { readonly shape: readonly number[] };
  get(name: string): Tensor | Promise<Tensor>;
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
}

/** Pointers (bytes) of one block's weights in the heap. */
interface BlockWeights {
  ln1w: number; // (E,)
  ln1b: number; // (E,)
  attnW: number; // (E, 3E) Conv1D [in, out], as column blocks (see CONV1D)
  attnB: number; // (3E,)
  attnProjW: number; // (E, E)
  attnProjB: number; // (E,)
  ln2w: number; // (E,)
  ln2b: number; // (E,)
  fcW: number; // (E, inner)
  fcB: number; // (inner,)
  mlpProjW: number; // (inner, E)
  mlpProjB: number; // (E,)
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

interface Weights {
  wte: number; // (V, E) rows for the embedding gather; 0 when tied (the embedding is read from `head`)
  wpe: number; // (n_positions, E)
  blocks: BlockWeights[];
  lnfW: number; // (E,)
  lnfB: number; // (E,)
  head: number; // LM head (wte when tied) as column blocks: block b = (E, wb) with wb = min(HEAD_BLOCK, V − b·HEAD_BLOCK), at b·E·HEAD_BLOCK floats
}

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
  probs: number; // (chunk, n_positions) attention weights of one (row, head)
  logitRows: number; // capacity of `logits` in rows
  lnRows: number; // (logitRows, E) final-norm rows gathered for the LM head
  logits: number; // (logitRows, V)
  kCache: number; // (L, maxBatch, n_positions, E): row = one slot, heads side by side
  vCache: number; // (L, maxBatch, n_positions, E)
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
}

export interface PrefillOptions extends ForwardOptions {
  /** `[B, T]` 1 = real token, 0 = padding; padding must be on the left (HF `padding_side="left"`). */
  attentionMask?: ArrayLike<number>[] | Tensor;
}

const F32 = 4;

/** Rows of token ids from `number[][]`, typed-array rows or an integer `[B, T]` tensor. */
export function toIdRows(ids: ArrayLike<number>[] | Tensor, what = "input_ids"): Int32Array[] {
  if (ids instanceof Tensor) {
    if (ids.ndim !== 2) throw new ShapeError(`${what} must be [batch, time], got ${formatShape(ids.shape)}`);
    if (ids.dtype === "f32") throw new InputError(`${what} must be an integer tensor, got f32`);
    const [B, T] = ids.shape;
    return Array.from({ length: B }, (_, b) => Int32Array.from(ids.data.subarray(b * T, (b + 1) * T)));
  }
  if (!Array.isArray(ids)) throw new InputError(`${what} must be an array of rows or a [batch, time] tensor`);
  return ids.map((row, b) => {
    if (row === null || typeof row !== "object" || typeof row.length !== "number") {
      throw new InputError(`${what}[${b}] is not an array of token ids`);
    }
    const out = new Int32Array(row.length);
    for (let t = 0; t < row.length; t++) {
      const v = row[t];
      if (typeof v !== "number" || !Number.isInteger(v))
        throw new InputError(`${what}[${b}, ${t}] = ${String(v)} is not an integer token id`);
      out[t] = v;
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// the model

/**
 * Hugging Face `GPT2LMHeadModel` with a KV cache.
 *
 * @example
 * ```ts
 * await init();
 * const model = await GPT2LMHeadModel.fromWeights(config, parseSafetensors(bytes));
 * const { logits } = model.prefill([[464, 2068, 7586]], { logits: "all" }); // [1, 3, V]
 * const next = model.decode([11]);                                            // logits [1, 1, V]
 * ```
 */
export class GPT2LMHeadModel {
  readonly config: GPT2Config;
  readonly runtime: Runtime;
  readonly maxBatch: number;
  /** Positions per row per prefill pass. */
  readonly prefillChunk: number;
  /** Checkpoint tensors that the computation does not read (legacy buffers, a tied lm_head, extras). */
  readonly unusedWeights: string[];
  /** Bytes of the heap: weights, KV cache and scratch (planned once). */
  readonly heapBytes: number;
  /** The tokenizer used for text prompts and streamed text (set by `fromPretrained`, or by hand). */
  tokenizer: Tokenizer | undefined;

  private readonly w: Weights;
  private readonly s: Scratch;
  private readonly E: number;
  private readonly H: number;
  private readonly hs: number;
  private readonly inner: number;
  private readonly act: number;
  private colBlock = COL_BLOCK;
  private headBlock = HEAD_BLOCK;
  private packed = false;

  // cache state: every row of the current batch has filled the same slots [0, len)
  private len = 0;
  private batch = 0;
  /** leading padding slots per row */
  private pad: Int32Array;

  private constructor(
    config: GPT2Config,
    rt: Runtime,
    w: Weights,
    s: Scratch,
    maxBatch: number,
    chunk: number,
    unused: string[],
  ) {
    this.config = config;
    this.runtime = rt;
    this.w = w;
    this.s = s;
    this.maxBatch = maxBatch;
    this.prefillChunk = chunk;
    this.unusedWeights = unused;
    this.E = config.n_embd;
    this.H = config.n_head;
    this.hs = config.n_embd / config.n_head;
    this.inner = innerDim(config);
    this.act = activationCode(config.activation_function);
    this.pad = new Int32Array(maxBatch);
    this.heapBytes = rt.heap.used();
    this.tokenizer = undefined;
  }

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
    if (!Number.isInteger(headBlock) || headBlock < 1)
      throw new InputError(`headBlock must be a positive integer, got ${headBlock}`);
    if (!Number.isInteger(colBlock) || colBlock < 0)
      throw new InputError(`colBlock must be an integer ≥ 0, got ${colBlock}`);
    if (!Number.isInteger(maxBatch) || maxBatch < 1)
      throw new InputError(`maxBatch must be a positive integer, got ${maxBatch}`);
    const P = cfg.n_positions;
    const chunk = Math.min(P, opts.prefillChunk ?? Math.max(1, Math.ceil(512 / maxBatch)));
    if (!Number.isInteger(chunk) || chunk < 1)
      throw new InputError(`prefillChunk must be a positive integer, got ${opts.prefillChunk}`);

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
    const used = new Set<string>();
    type Spec = { name: string; shape: number[] };
    const specs: Spec[] = [];
    const spec = (name: string, shape: number[]) => {
      specs.push({ name, shape });
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
      const ignored = (n: string) =>
        (n.startsWith(prefix) && LEGACY_BUFFER.test(n.slice(prefix.length))) || (n === "lm_head.weight" && !untied);
      const extra = weights.names().filter((n) => !wanted.has(n) && !ignored(n));
      if (extra.length > 0) {
        const more = extra.length > 5 ? ` and ${extra.length - 5} more` : "";
        throw new WeightsError(
          `unexpected tensor${extra.length > 1 ? "s" : ""} ${extra
            .slice(0, 5)
            .map((n) => `"${n}"`)
            .join(", ")}${more}: the config (n_layer ${L}) does not use ${extra.length > 1 ? "them" : "it"} ` +
            `(pass strict: false to load anyway)`,
          extra,
        );
      }
    }
    const checkShape = (name: string, want: readonly number[], got: readonly number[]) => {
      if (got.length !== want.length || got.some((d, k) => d !== want[k])) {
        throw new WeightsError(
          `tensor "${name}" has shape ${formatShape(got)}, expected ${formatShape(want)} ` +
            `(config: vocab_size ${V}, n_positions ${P}, n_embd ${E}, n_inner ${I})`,
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

    // ---- plan the heap once: weights, KV cache, scratch
    const rows = maxBatch * chunk;
    const logitRows = Math.max(maxBatch, Math.min(rows, 16));
    const rt = opts.runtime ?? createRuntime();
    const headName = untied ? "lm_head.weight" : `${prefix}wte.weight`;
    /** floats a weight takes in the heap: packed Conv1D weights and head are padded to 8 columns */
    const floatsOf = (sp: Spec) => {
      if (packed && CONV1D.test(sp.name)) return rt.k.packedSize(sp.shape[0], sp.shape[1]);
      if (packed && sp.name === headName) return rt.k.packedSize(E, V);
      return sp.shape.reduce((x, y) => x * y, 1);
    };
    const weightFloats = specs.reduce((a, s) => a + floatsOf(s), 0);
    const cacheFloats = 2 * L * maxBatch * P * E;
    const scratchFloats = rows * (2 + E * 3 + 3 * E + I) + chunk * P + logitRows * (E + V) + (maxBatch * P) / 4;
    const heap = rt.heap;
    // the largest Conv1D weight or LM-head block, transposed or packed from here (packed: the
    // head's source rows and their packed copy)
    const packCols = Math.min(PACK_HEAD_COLS, Math.ceil(V / 8) * 8);
    const stagingFloats = Math.max(E * 3 * E, E * I, packed ? 2 * E * packCols : E * Math.min(V, headBlock));
    heap.reserve((weightFloats + cacheFloats + scratchFloats + stagingFloats) * F32 + 64 * 16 * (specs.length + 16));

    // weights first, then scratch and cache, then (temporarily) the staging buffer
    const ptrs = new Map<string, number>();
    for (const s of specs) ptrs.set(s.name, heap.allocF32(floatsOf(s)));
    const at = (name: string) => ptrs.get(name)!;
    const blocks: BlockWeights[] = [];
    for (let i = 0; i < L; i++) {
      const p = `${prefix}h.${i}.`;
      blocks.push({
        ln1w: at(`${p}ln_1.weight`),
        ln1b: at(`${p}ln_1.bias`),
        attnW: at(`${p}attn.c_attn.weight`),
        attnB: at(`${p}attn.c_attn.bias`),
        attnProjW: at(`${p}attn.c_proj.weight`),
        attnProjB: at(`${p}attn.c_proj.bias`),
        ln2w: at(`${p}ln_2.weight`),
        ln2b: at(`${p}ln_2.bias`),
        fcW: at(`${p}mlp.c_fc.weight`),
        fcB: at(`${p}mlp.c_fc.bias`),
        mlpProjW: at(`${p}mlp.c_proj.weight`),
        mlpProjB: at(`${p}mlp.c_proj.bias`),
      });
    }
    const w: Weights = {
      wte: untied ? at(`${prefix}wte.weight`) : 0,
      wpe: at(`${prefix}wpe.weight`),
      blocks,
      lnfW: at(`${prefix}ln_f.weight`),
      lnfB: at(`${prefix}ln_f.bias`),
      head: at(headName),
    };
    const s: Scratch = {
      rows,
      ids: heap.alloc(rows * 4),
      pos: heap.alloc(rows * 4),
      x: heap.allocF32(rows * E),
      xn: heap.allocF32(rows * E),
      qkv: heap.allocF32(rows * 3 * E),
      att: heap.allocF32(rows * E),
      h: heap.allocF32(rows * I),
      probs: heap.allocF32(chunk * P),
      logitRows,
      lnRows: heap.allocF32(logitRows * E),
      logits: heap.allocF32(logitRows * V),
      kCache: heap.allocF32(L * maxBatch * P * E),
      vCache: heap.allocF32(L * maxBatch * P * E),
      kpm: heap.alloc(maxBatch * P),
    };
    void hs;

    // ---- copy the weights in, one tensor at a time (a lazy file reads each just now)
    const mark = heap.mark();
    const staging = heap.allocF32(stagingFloats);
    // progress counts checkpoint bytes (packed weights take a little more heap: 8-column padding)
    const total = specs.reduce((a, sp) => a + sp.shape.reduce((x, y) => x * y, 1), 0) * F32;
    let loaded = 0;
    try {
      for (const sp of specs) {
        checkAbort();
        const t = await weights.get(sp.name);
        checkAbort();
        checkShape(sp.name, sp.shape, t.shape);
        if (t.dtype !== "f32") {
          throw new WeightsError(`tensor "${sp.name}" has dtype ${t.dtype}, expected a float tensor`, [sp.name]);
        }
        const ptr = ptrs.get(sp.name)!;
        if (sp.name === headName && packed) {
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
        } else if (CONV1D.test(sp.name)) {
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
    } finally {
      heap.release(mark);
    }
    const unused = weights.names().filter((n) => !used.has(n));
    const model = new GPT2LMHeadModel(cfg, rt, w, s, maxBatch, chunk, unused);
    model.colBlock = colBlock;
    model.headBlock = headBlock;
    model.packed = packed;
    return model;
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
    return generate(this, this.tokenizer, prompt, opts);
  }

  /** `generate` run to the end: the ids, texts and finish reasons per row. */
  generateAll(prompt: Prompt, opts: GenerateOptions = {}): Promise<GenerationResult> {
    return generateAll(this, this.tokenizer, prompt, opts);
  }

  /**
   * Load from a Hugging Face folder (Node): `config.json`, `model.safetensors`, and the tokenizer
   * (`tokenizer.json` or `vocab.json` + `merges.txt`) when present. See `loadPretrained`.
   */
  static async fromPretrained(
    folder: string,
    opts: GPT2Options & { tokenizer?: boolean } = {},
  ): Promise<GPT2LMHeadModel> {
    const { loadPretrained } = await import("./pretrained.js");
    return loadPretrained(folder, opts);
  }

  /** Slots filled in the KV cache (prompt + generated tokens, padding included). */
  get cacheLength(): number {
    return this.len;
  }
  /** Rows of the current batch (0 before the first prefill). */
  get batchSize(): number {
    return this.batch;
  }
  /** Leading padding slots of each row of the current batch. */
  get padding(): number[] {
    return Array.from(this.pad.subarray(0, this.batch));
  }

  /** Forget the cached sequence (the buffers stay allocated). */
  reset(): void {
    this.len = 0;
    this.batch = 0;
    this.pad.fill(0);
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
    const rows = toIdRows(inputIds);
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
    const P = this.config.n_positions;
    if (T > P) throw new InputError(`prompt of ${T} tokens exceeds n_positions ${P}`);
    this.checkIds(rows, 0);
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
    if (this.batch === 0) throw new InputError("decode() before prefill(): the cache is empty");
    if (ids.length !== this.batch)
      throw new InputError(`decode() got ${ids.length} token ids for a batch of ${this.batch} rows`);
    return this.extend(
      Array.from({ length: this.batch }, (_, b) => Int32Array.of(ids[b])),
      { logits: opts.logits ?? "last", outputAttentions: opts.outputAttentions },
    );
  }

  /** Append `T` tokens per row (`[B, T]`) to the cached sequence. */
  extend(inputIds: ArrayLike<number>[] | Tensor, opts: ForwardOptions = {}): ForwardOutput {
    if (this.batch === 0) throw new InputError("extend() before prefill(): the cache is empty");
    const rows = toIdRows(inputIds);
    if (rows.length !== this.batch) throw new InputError(`got ${rows.length} rows for a batch of ${this.batch}`);
    const T = rows[0].length;
    rows.forEach((r, b) => {
      if (r.length !== T)
        throw new InputError(`input_ids rows differ in length: row 0 has ${T}, row ${b} has ${r.length}`);
    });
    if (T === 0) throw new InputError("no tokens to append");
    this.checkCapacity(T);
    this.checkIds(rows, this.len);
    return this.run(rows, T, opts);
  }

  // -------------------------------------------------------------------------------------------
  // inputs_embeds (used by @wasmformer/vlm: image embeddings spliced between token embeddings)

  /**
   * Token embeddings `wte[ids]` of `[B, T]` ids as a `[B, T, E]` tensor (HF
   * `get_input_embeddings()(input_ids)`); T may be 0. Does not touch the KV cache.
   */
  embedTokens(inputIds: ArrayLike<number>[] | Tensor): Tensor<"f32"> {
    const rows = toIdRows(inputIds);
    const B = rows.length;
    const T = rows[0]?.length ?? 0;
    rows.forEach((r, b) => {
      if (r.length !== T)
        throw new InputError(`input_ids rows differ in length: row 0 has ${T}, row ${b} has ${r.length}`);
    });
    this.checkIds(rows, 0);
    const { E } = this;
    const out = new Float32Array(B * T * E);
    const flat = new Int32Array(B * T);
    for (let b = 0; b < B; b++) flat.set(rows[b], b * T);
    const heap = this.runtime.heap;
    for (let i0 = 0; i0 < flat.length; i0 += this.s.rows) {
      const n = Math.min(this.s.rows, flat.length - i0);
      heap.i32(this.s.ids, n).set(flat.subarray(i0, i0 + n));
      this.gatherWte(n);
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
    const { E } = this;
    if (!(inputsEmbeds instanceof Tensor)) throw new InputError("inputs_embeds must be a Tensor [batch, time, n_embd]");
    if (inputsEmbeds.dtype !== "f32") throw new InputError(`inputs_embeds must be f32, got ${inputsEmbeds.dtype}`);
    if (inputsEmbeds.ndim !== 3 || inputsEmbeds.shape[2] !== E) {
      throw new ShapeError(
        `inputs_embeds must be [batch, time, ${E}] (n_embd ${E}), got ${formatShape(inputsEmbeds.shape)}`,
      );
    }
    const [B, T] = inputsEmbeds.shape;
    if (B === 0) throw new InputError("inputs_embeds has no rows");
    if (B > this.maxBatch)
      throw new InputError(
        `batch of ${B} rows exceeds maxBatch ${this.maxBatch} (set maxBatch when loading the model)`,
      );
    if (T === 0) throw new InputError("inputs_embeds rows are empty: a prompt needs at least one position");
    const P = this.config.n_positions;
    if (T > P) throw new InputError(`prompt of ${T} positions exceeds n_positions ${P}`);
    const data = inputsEmbeds.data as Float32Array;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        const b = Math.floor(i / (T * E));
        const t = Math.floor(i / E) % T;
        throw new InputError(`inputs_embeds[${b}, ${t}, ${i % E}] = ${data[i]} is not finite`);
      }
    }
    this.len = 0;
    this.batch = B;
    this.pad = new Int32Array(this.maxBatch);
    this.runtime.heap.u8(this.s.kpm, this.maxBatch * P).fill(0);
    return this.run([], T, opts, data);
  }

  /** x (n, E) = wte[ids (n,)] from the scratch `ids` into the scratch `x` (ids already validated). */
  private gatherWte(n: number): void {
    const { E } = this;
    const V = this.config.vocab_size;
    const k = this.runtime.k;
    const s = this.s;
    const w = this.w;
    if (w.wte) {
      if (k.gather(w.wte, V, E, s.ids, n, s.x) !== -1)
        throw new WasmformerError("internal", "gather rejected a checked id");
      return;
    }
    const ids = this.runtime.heap.i32(s.ids, n);
    if (this.packed) {
      // tied: row `id` of wte is column `id` of the packed E×V head: per K block, kb floats 8 apart
      for (let i = 0; i < n; i++) {
        const id = ids[i];
        for (let pc = 0; pc < E; pc += PACK_KC) {
          const kb = Math.min(PACK_KC, E - pc);
          k.copy2d(w.head + packedIndex(E, V, pc, id) * F32, 8, s.x + (i * E + pc) * F32, 1, kb, 1);
        }
      }
      return;
    }
    // tied: row `id` of wte is column `id` of the transposed head blocks
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      const v0 = id - (id % this.headBlock);
      const wb = Math.min(this.headBlock, V - v0);
      k.copy2d(w.head + (v0 * E + (id - v0)) * F32, wb, s.x + i * E * F32, 1, E, 1);
    }
  }

  /** Throws the typed error for appending `n` more positions beyond `n_positions`. */
  checkCapacity(n: number): void {
    const P = this.config.n_positions;
    if (this.len + n > P) {
      throw new InputError(
        `sequence would reach ${this.len + n} positions (${this.len} cached + ${n} new), beyond n_positions ${P}`,
      );
    }
  }

  private checkIds(rows: Int32Array[], slot0: number): void {
    const V = this.config.vocab_size;
    rows.forEach((r, b) => {
      for (let t = 0; t < r.length; t++) {
        const id = r[t];
        if (id < 0 || id >= V) {
          throw new InputError(
            `token id ${id} at input_ids[${b}, ${slot0 + t}] is outside the vocabulary [0, ${V}) (vocab_size ${V})`,
          );
        }
      }
    });
  }

  // -------------------------------------------------------------------------------------------
  // the forward pass (llama2.c `forward`): T new positions per row, in chunks, on the heap buffers

  /**
   * y (n, N) = act(x (n, K) · W + b + beta·y) for a Conv1D weight in the planned layout (see CONV1D);
   * x and y are contiguous rows (ld K and N); beta 1 fuses the residual add.
   */
  private linear(
    n: number,
    x: number,
    K: number,
    N: number,
    w: number,
    bias: number,
    y: number,
    beta: number,
    act: number,
  ): void {
    const k = this.runtime.k;
    const cb = this.colBlock;
    if (this.packed) {
      k.gemmPacked(n, N, K, x, K, 0, w, y, N, bias, 1, beta, act);
      return;
    }
    if (cb === 0) {
      k.gemm(n, N, K, x, K, 0, w, K, 1, y, N, bias, 1, beta, act);
      return;
    }
    for (let c0 = 0; c0 < N; c0 += cb) {
      const wb = Math.min(cb, N - c0);
      k.gemm(n, wb, K, x, K, 0, w + c0 * K * F32, wb, 0, y + c0 * F32, N, bias + c0 * F32, 1, beta, act);
    }
  }

  /** logits (m, V) = x (m, E) · head (E, V), block by block (see HEAD_BLOCK). */
  private lmHead(m: number, x: number, logits: number): void {
    const { E } = this;
    const V = this.config.vocab_size;
    const hb = this.headBlock;
    if (this.packed) {
      this.runtime.k.gemmPacked(m, V, E, x, E, 0, this.w.head, logits, V, 0, 1, 0, 0);
      return;
    }
    for (let v0 = 0; v0 < V; v0 += hb) {
      const wb = Math.min(hb, V - v0);
      this.runtime.k.gemm(m, wb, E, x, E, 0, this.w.head + v0 * E * F32, wb, 0, logits + v0 * F32, V, 0, 1, 0, 0);
    }
  }

  /**
   * `embeds` (B·T·E floats, `inputs_embeds`) replaces `wte[ids]` when given; `rows` are then unused
   * (see `prefillEmbeds`).
   */
  private run(rows: Int32Array[], T: number, opts: ForwardOptions, embeds?: Float32Array): ForwardOutput {
    const { E, H, hs, inner } = this;
    const cfg = this.config;
    const V = cfg.vocab_size;
    const P = cfg.n_positions;
    const B = this.batch;
    const k = this.runtime.k;
    const heap = this.runtime.heap;
    const s = this.s;
    const w = this.w;
    const mode = opts.logits ?? "last";
    const Sfinal = this.len + T;
    const logitsOut =
      mode === "all" ? new Float32Array(B * T * V) : mode === "last" ? new Float32Array(B * V) : undefined;
    const attnOut = opts.outputAttentions
      ? Array.from({ length: cfg.n_layer }, () => new Float32Array(B * H * T * Sfinal))
      : undefined;
    const rowBytes = P * E * F32; // one (layer, batch row) slice of the cache: (n_positions, E)
    const cacheAt = (base: number, l: number, b: number) => base + (l * this.maxBatch + b) * rowBytes;
    const eps = cfg.layer_norm_epsilon;

    for (let t0 = 0; t0 < T; t0 += this.prefillChunk) {
      const Lc = Math.min(this.prefillChunk, T - t0); // positions per row in this chunk
      const n = B * Lc; // rows of the activation buffers, row = b·Lc + t
      const s0 = this.len; // first cache slot of the chunk

      // ---- embeddings: x = wte[ids] + wpe[positions]
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
        this.gatherWte(n);
      }
      if (k.gather(w.wpe, P, E, s.pos, n, s.xn) !== -1)
        throw new WasmformerError("internal", "gather rejected a position");
      k.binary(s.x, s.xn, s.x, n, E, E, 1, 0); // (n, E) += (n, E)

      for (let l = 0; l < cfg.n_layer; l++) {
        const bw = w.blocks[l];
        let scale = cfg.scale_attn_weights ? 1 / Math.sqrt(hs) : 1;
        if (cfg.scale_attn_by_inverse_layer_idx) scale /= l + 1;

        // ---- attention: qkv = ln_1(x) · W_attn + b
        k.layerNorm(s.x, s.xn, n, E, bw.ln1w, bw.ln1b, eps);
        this.linear(n, s.xn, E, 3 * E, bw.attnW, bw.attnB, s.qkv, 0, 0); // (n, 3E)
        for (let b = 0; b < B; b++) {
          const q0 = s.qkv + b * Lc * 3 * E * F32;
          // k, v of the new positions → cache slots [s0, s0 + Lc) of (l, b): (Lc, E), ld 3E → ld E
          const kc = cacheAt(s.kCache, l, b);
          const vc = cacheAt(s.vCache, l, b);
          k.copy2d(q0 + E * F32, 3 * E, kc + s0 * E * F32, E, Lc, E);
          k.copy2d(q0 + 2 * E * F32, 3 * E, vc + s0 * E * F32, E, Lc, E);
          for (let h = 0; h < H; h++) {
            // softmax(q·kᵀ·scale) over slots ≤ s0 + t, padding slots blocked → (Lc, hs) into att
            k.attention(
              q0 + h * hs * F32,
              3 * E,
              kc + h * hs * F32,
              E,
              vc + h * hs * F32,
              E,
              s.att + (b * Lc * E + h * hs) * F32,
              E,
              s.probs,
              Lc,
              s0 + Lc,
              hs,
              hs,
              scale,
              0,
              0,
              this.pad[b] > 0 ? s.kpm + b * P : 0,
              s0,
            );
            if (attnOut) {
              // probs (Lc, s0 + Lc) → attentions[l][b, h, t0 + t, 0 : s0 + Lc]
              const S = s0 + Lc;
              const pr = heap.f32(s.probs, Lc * S);
              const dst = attnOut[l];
              for (let t = 0; t < Lc; t++)
                dst.set(pr.subarray(t * S, (t + 1) * S), ((b * H + h) * T + t0 + t) * Sfinal);
            }
          }
        }
        // x = x + att · W_proj + b   (residual fused: beta = 1)
        this.linear(n, s.att, E, E, bw.attnProjW, bw.attnProjB, s.x, 1, 0);

        // ---- MLP: x = x + act(ln_2(x) · W_fc + b_fc) · W_proj + b_proj
        k.layerNorm(s.x, s.xn, n, E, bw.ln2w, bw.ln2b, eps);
        this.linear(n, s.xn, E, inner, bw.fcW, bw.fcB, s.h, 0, this.act); // (n, inner)
        this.linear(n, s.h, inner, E, bw.mlpProjW, bw.mlpProjB, s.x, 1, 0);
      }
      this.len += Lc;

      // ---- final norm + LM head, only on the rows whose logits are wanted
      if (mode === "all") {
        // every row of the chunk, `logitRows` at a time
        for (let r0 = 0; r0 < n; r0 += s.logitRows) {
          const m = Math.min(s.logitRows, n - r0);
          k.layerNorm(s.x + r0 * E * F32, s.lnRows, m, E, w.lnfW, w.lnfB, eps);
          this.lmHead(m, s.lnRows, s.logits); // (m, V)
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
        k.layerNorm(s.lnRows, s.lnRows, B, E, w.lnfW, w.lnfB, eps);
        this.lmHead(B, s.lnRows, s.logits); // (B, V)
        logitsOut!.set(heap.f32(s.logits, B * V));
      }
    }

    const out: ForwardOutput = {};
    if (logitsOut) out.logits = new Tensor(logitsOut, mode === "all" ? [B, T, V] : [B, 1, V], "f32");
    if (attnOut) out.attentions = attnOut.map((a) => new Tensor(a, [B, H, T, Sfinal], "f32"));
    return out;
  }
}
