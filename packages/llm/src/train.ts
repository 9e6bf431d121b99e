/**
 * Training mode of the decoder engine (`CausalLM.train()`), in the style of llm.c `train_gpt2.c`:
 * the forward over `[B, T]` token ids that keeps every layer's activations, the fused
 * softmax + cross-entropy, then one `*_backward` step per forward step in reverse. The forward is
 * not written here: it is the engine's own (decoder-forward.ts: `tokens`, `positions`,
 * `block(l)`, `finalNorm`, `lmHead`, the one definition of the GPT-2 / Llama block), called with
 * this file's buffers (`BlockActs` per layer: X_l, Xm_l, qkv_l, hpre_l, up_l kept) and this file's
 * attention step (`attend`, which keeps the weights P_l). So GPT-2 and the Llama family train
 * through the same code that serves inference, and the backward below follows it step by step.
 *
 * Parameters. Inference keeps its matrices packed (or cut into column blocks) for speed. Training
 * needs every matrix and the LM head in the checkpoint's own layout (Conv1D `[in, out]`, Linear
 * `[out, in]`, embeddings `[V, E]`): the `TrainParam`s point at them, so gradients and optimizer
 * updates act on the tensors exactly as named and shaped in the checkpoint. There is one copy of
 * each: the engine's own buffer, rewritten in place between the two layouts (a packed buffer is at
 * least as large as the plain matrix) through a scratch of one matrix at the heap top.
 * `toTraining()` unpacks, `toInference()` re-packs (each sets `DecoderForward.checkpoint`, on which
 * the shared forward's `linear`, token gather and LM head dispatch); the engine calls them before a
 * training step and before any inference. Vectors (norm gains, biases) and the position/untied
 * embedding tables have the checkpoint's layout in both modes and are never rewritten.
 *
 * Memory is planned once: the masters and gradients (`params`), then the activations of
 * `maxBatch × maxSeqLen` rows (`plan`). A step allocates nothing.
 *
 * ```
 * forward (kept: X_l, qkv, P, Xm, hpre, up, X_L, lnf; recomputed by the backward one layer at
 *          a time instead of kept for every layer: norm1(X_l), norm2(Xm), att = P·v, hact = act(hpre) (⊙ up))
 *   X_0 = wte[ids] (+ wpe[t]);  per layer: Xm = X + Attn(norm1(X))·Wo;  X' = Xm + MLP(norm2(Xm))
 *   loss = CE(lnf(X_L) · headᵀ, labels)   (rows of the head done in chunks, loss and dlogits fused)
 * backward: the same steps in reverse; dX is the residual stream's gradient, each branch adds in.
 * ```
 */
import {
  Act,
  type AttentionBackwardArgs,
  BinOp,
  InputError,
  PACK_KC,
  packedIndex,
  type Runtime,
  ShapeError,
  Tensor,
  WasmformerError,
} from "@wasmformer/core";
import type { BatchResult, TrainParam } from "@wasmformer/nn";
import type { BlockNames, DecoderArch, WeightSpec } from "./decoder-arch.js";
import type { BlockActs, DecoderForward } from "./decoder-forward.js";

const F32 = 4;

/**
 * One training example: token ids (labels = the ids), or ids with their own labels (`ignoreIndex` =
 * not counted), optionally with `inputsEmbeds` rows that replace the token embeddings of positions
 * `[start, start + M)` (HF `inputs_embeds`: an image's projected embeddings spliced between the
 * prompt's text embeddings; the ids there are placeholders, any valid id). Position embeddings are
 * added to them as to token embeddings.
 */
export type LMExample =
  | ArrayLike<number>
  | { inputIds: ArrayLike<number>; labels?: ArrayLike<number>; inputsEmbeds?: LMEmbedsPart };

/** `M × dim` floats (row-major) that take the place of the token embeddings from position `start` on. */
export interface LMEmbedsPart {
  start: number;
  data: ArrayLike<number>;
}

/** A batch's loss; with examples carrying `inputsEmbeds` and a gradient asked for, theirs too. */
export interface LMBatchResult extends BatchResult {
  /**
   * Per example (undefined for those without `inputsEmbeds`): `scale · ∂loss/∂inputsEmbeds.data`,
   * `M × dim` floats — what flows back into a projection that made them.
   */
  embedsGrads?: (Float32Array | undefined)[];
}

export interface TrainOptions {
  /** Largest batch `lossAndGrad`/`evaluate` take (sizes the activations). Default: the model's `maxBatch`. */
  maxBatch?: number;
  /** Longest sequence (sizes the activations). Default: min(positions, 256). */
  maxSeqLen?: number;
  /** Labels equal to this count for nothing (PyTorch `ignore_index`). Default −100. */
  ignoreIndex?: number;
  /** PyTorch `label_smoothing` in [0, 1]. Default 0. */
  labelSmoothing?: number;
  /** Causal LM loss: logits at t predict labels at t + 1 (HF `labels = input_ids`). Default true. */
  shiftLabels?: boolean;
  /**
   * false freezes the whole model (PyTorch `requires_grad_(False)` on every parameter): backward
   * runs only down to the inputs (the gradient of `inputsEmbeds`), skipping every weight-gradient
   * GEMM and leaving the gradient buffers untouched. Default true.
   */
  requiresGrad?: boolean;
}

/** How the inference engine stores its matrices (see `CausalLM.load`). */
export interface EngineLayout {
  packed: boolean;
  colBlock: number;
  headBlock: number;
}

type Kind = "head" | "conv1d" | "linear" | "plain";

interface Param {
  spec: WeightSpec;
  kind: Kind;
  /** the engine's buffer of this tensor: checkpoint layout while training, else its inference layout */
  ptr: number;
  grad: number;
}

/** Pointers of one block's tensors (0 = absent) and their layouts. */
type BlockPtrs = { [K in keyof BlockNames]-?: number };

interface Acts {
  maxB: number;
  maxT: number;
  ids: number;
  pos: number;
  targets: number;
  X: number[];
  Xm: number[];
  /** norm1(X_l) or norm2(Xm) of one layer: written by the forward, recomputed by the backward */
  ln: number;
  qkv: number[];
  /** the attention output of one layer: written by the forward, recomputed by the backward */
  att: number;
  probs: number[];
  hpre: number[];
  up: number[];
  /** act(hpre) (⊙ up) of one layer: written by the forward, recomputed by the backward */
  hact: number;
  lnf: number;
  dX: number;
  dln: number;
  dqkv: number;
  datt: number;
  dhact: number;
  dhpre: number;
  dup: number;
  tmp: number;
  /** `attScratches` scratches of maxT² floats for `attentionBackwardHeads` (one per slice group) */
  attScratch: number;
  attScratches: number;
  /** a norm's row statistics for its backward: mean `[N]`, then rstd `[N]` */
  stats: number;
  headRows: number;
  logits: number;
  dlogits: number;
  lossOut: number;
  /** the rotary frequencies negated (the backward's inverse rotation), 0 for a learned position table */
  negInvFreq: number;
  /** where layer l's block writes in the shared forward: X_l → Xm_l → X_{l+1} and the kept buffers */
  blocks: BlockActs[];
}

/** Float index of op(B)[p, j] (B is K×N) in the engine's storage of a matrix or of the LM head. */
function storageIndex(lay: EngineLayout, head: boolean, K: number, N: number, p: number, j: number): number {
  if (lay.packed) return packedIndex(K, N, p, j);
  const cb = head ? lay.headBlock : lay.colBlock;
  if (cb === 0) return j * K + p; // Linear [N, K] rows
  const c0 = j - (j % cb);
  const wb = Math.min(cb, N - c0);
  return c0 * K + p * wb + (j - c0); // contiguous column blocks [K, wb]
}

/** (K, N, transB) of a matrix as op(B) of y = x·op(B), and the leading dimension of its checkpoint layout. */
function asOperand(p: Param, E: number, V: number): { K: number; N: number; trans: 0 | 1; ld: number } {
  const [a, b] = p.spec.shape;
  if (p.kind === "head") return { K: E, N: V, trans: 1, ld: E }; // [V, E]
  if (p.kind === "conv1d") return { K: a, N: b, trans: 0, ld: b }; // [in, out]
  return { K: b, N: a, trans: 1, ld: b }; // Linear [out, in]
}

export class DecoderTraining {
  readonly params: TrainParam[];
  /** Every parameter's shape, by its (Hugging Face) name. */
  readonly shapes: Record<string, number[]> = {};
  ignoreIndex = -100;
  labelSmoothing = 0;
  shiftLabels = true;
  /** false: no parameter gradient is computed (see `TrainOptions.requiresGrad`). */
  requiresGrad = true;
  private readonly byName = new Map<string, Param>();
  private readonly w: BlockPtrs[];
  private readonly g: BlockPtrs[];
  private readonly kind: { [K in keyof BlockNames]-?: Kind }[];
  private acts: Acts | undefined;
  private actsStart = 0;
  private actsEnd = 0;

  private readonly arch: DecoderArch;
  private readonly rt: Runtime;
  /** how the engine stores its matrices for inference (what `toTraining` unpacks) */
  private readonly layout: EngineLayout;

  /**
   * `fwd`: the engine's forward steps (decoder-forward.ts), which this forward calls too; `engine`:
   * its buffer of every checkpoint tensor, by name.
   */
  constructor(
    private readonly fwd: DecoderForward,
    engine: Map<string, number>,
    hfName: (name: string) => string,
  ) {
    const arch = fwd.arch;
    const rt = fwd.rt;
    this.arch = arch;
    this.rt = rt;
    this.layout = fwd.storage;
    const heap = rt.heap;
    // the matrices to the checkpoint layout, in place, then the gradients (planned once)
    const kinds = arch.specs.map((sp): Kind => (sp.name === arch.head ? "head" : (sp.layout ?? "plain")));
    let floats = 0;
    for (const sp of arch.specs) floats += sp.shape.reduce((x, y) => x * y, 1);
    const made = arch.specs.map((spec, i): Param => {
      const eng = engine.get(spec.name);
      if (eng === undefined) throw new WasmformerError("internal", `no engine buffer for "${spec.name}"`);
      const p: Param = { spec, kind: kinds[i], ptr: eng, grad: 0 };
      this.byName.set(spec.name, p);
      this.shapes[hfName(spec.name)] = [...spec.shape];
      return p;
    });
    this.toTraining();
    heap.reserve(floats * F32 + 16 * arch.specs.length);
    this.params = made.map((p) => {
      const size = p.spec.shape.reduce((x, y) => x * y, 1);
      p.grad = heap.allocF32(size);
      return { name: hfName(p.spec.name), ptr: p.ptr, grad: p.grad, size };
    });
    const at = (name: string | undefined, f: (p: Param) => number) => (name ? f(this.byName.get(name)!) : 0);
    const map = (f: (p: Param) => number) =>
      arch.blocks.map((b) => {
        const o = {} as BlockPtrs;
        for (const key of BLOCK_KEYS) o[key] = at(b[key], f);
        return o;
      });
    this.w = map((p) => p.ptr);
    this.g = map((p) => p.grad);
    this.kind = arch.blocks.map((b) => {
      const o = {} as { [K in keyof BlockNames]-?: Kind };
      for (const key of BLOCK_KEYS) o[key] = b[key] ? this.byName.get(b[key]!)!.kind : "plain";
      return o;
    });
  }

  /** Values of every parameter in the checkpoint's layout, by (Hugging Face) name. */
  stateDict(hfName: (name: string) => string): Map<string, Tensor<"f32">> {
    this.toTraining();
    const out = new Map<string, Tensor<"f32">>();
    for (const p of this.byName.values()) {
      const size = p.spec.shape.reduce((x, y) => x * y, 1);
      out.set(hfName(p.spec.name), new Tensor(this.rt.heap.f32(p.ptr, size).slice(), [...p.spec.shape], "f32"));
    }
    return out;
  }

  /** Floats the engine's storage of a matrix takes (a packed operand pads N to a multiple of 8). */
  private storageFloats(p: Param): number {
    const { K, N } = asOperand(p, this.arch.dim, this.arch.vocab);
    return this.layout.packed ? K * Math.ceil(N / 8) * 8 : K * N;
  }

  /** Run `f(scratch)` with a scratch buffer as large as the largest matrix, at the heap top. */
  private withScratch(f: (scratch: number) => void): void {
    const heap = this.rt.heap;
    let most = 0;
    for (const p of this.byName.values()) if (p.kind !== "plain") most = Math.max(most, this.storageFloats(p));
    const mark = heap.mark();
    try {
      f(heap.allocF32(most));
    } finally {
      heap.release(mark);
    }
  }

  /** Every matrix to the checkpoint layout, in place (before training reads or updates them). */
  toTraining(): void {
    if (this.fwd.checkpoint) return;
    this.withScratch((scratch) => {
      for (const p of this.byName.values()) {
        if (p.kind === "plain") continue;
        const n = this.storageFloats(p);
        const all = new Float32Array(this.rt.heap.buffer());
        all.copyWithin(scratch / F32, p.ptr / F32, p.ptr / F32 + n);
        this.unpack(p, scratch);
      }
    });
    this.fwd.checkpoint = true;
  }

  /** Checkpoint layout at `p.ptr` ← the inference layout of `p` held at `src`. */
  private unpack(p: Param, src: number): void {
    const { K, N, trans, ld } = asOperand(p, this.arch.dim, this.arch.vocab);
    const all = new Float32Array(this.rt.heap.buffer());
    const e0 = src / F32;
    const m0 = p.ptr / F32;
    const head = p.kind === "head";
    // strides of the master: element (r, j) of op(B) at m0 + r·sr + j·sj
    const sr = trans ? 1 : ld;
    const sj = trans ? ld : 1;
    if (this.layout.packed) {
      // walk the packed operand in storage order (see `packedIndex`): K blocks, 8-column panels, rows
      const N8 = Math.ceil(N / 8) * 8;
      for (let pc = 0; pc < K; pc += PACK_KC) {
        const kb = Math.min(PACK_KC, K - pc);
        for (let j0 = 0; j0 < N; j0 += 8) {
          const cols = Math.min(8, N - j0);
          let from = e0 + pc * N8 + j0 * kb;
          for (let r = pc; r < pc + kb; r++, from += 8) {
            const dst = m0 + r * sr + j0 * sj;
            for (let c = 0; c < cols; c++) all[dst + c * sj] = all[from + c];
          }
        }
      }
      return;
    }
    for (let r = 0; r < K; r++)
      for (let j = 0; j < N; j++) all[m0 + r * sr + j * sj] = all[e0 + storageIndex(this.layout, head, K, N, r, j)];
  }

  /** Every matrix back to the inference layout, in place (before any inference). */
  toInference(): void {
    if (!this.fwd.checkpoint) return;
    const k = this.rt.k;
    this.withScratch((scratch) => {
      for (const p of this.byName.values()) {
        if (p.kind === "plain") continue;
        const { K, N, trans, ld } = asOperand(p, this.arch.dim, this.arch.vocab);
        const all = new Float32Array(this.rt.heap.buffer());
        all.copyWithin(scratch / F32, p.ptr / F32, p.ptr / F32 + K * N);
        if (this.layout.packed) {
          k.packB(K, N, scratch, ld, trans, p.ptr);
          continue;
        }
        const e0 = p.ptr / F32;
        const m0 = scratch / F32;
        const head = p.kind === "head";
        for (let r = 0; r < K; r++)
          for (let j = 0; j < N; j++)
            all[e0 + storageIndex(this.layout, head, K, N, r, j)] = all[m0 + (trans ? j * ld + r : r * ld + j)];
      }
    });
    this.fwd.checkpoint = false;
  }

  /** Set every gradient to 0. */
  zeroGrad(): void {
    for (const p of this.params) this.rt.k.fill(p.grad, p.size, 0);
  }

  get plannedBatch(): number {
    return this.acts?.maxB ?? 0;
  }
  get plannedSeqLen(): number {
    return this.acts?.maxT ?? 0;
  }

  /**
   * Plan the activation and backward buffers for `maxB × maxT` rows (once; a larger plan replaces
   * it, reusing its memory when nothing was allocated after it).
   */
  plan(maxB: number, maxT: number): void {
    if (this.acts && this.acts.maxB >= maxB && this.acts.maxT >= maxT) return;
    const a = this.arch;
    const heap = this.rt.heap;
    if (this.acts && heap.mark() === this.actsEnd) heap.release(this.actsStart);
    const N = maxB * maxT;
    const { dim: E, inner: I, layers: L, vocab: V, headDim: hs } = a;
    const qW = a.heads * hs;
    const qkvW = qW + 2 * a.kvHeads * hs;
    const headRows = Math.min(N, Math.max(8, Math.ceil((1 << 20) / V)));
    // slice groups the attention backward runs side by side: a few per thread
    const attScratches = Math.min(maxB * a.kvHeads, this.rt.threads > 1 ? 2 * this.rt.threads : 1);
    const perLayer = N * (4 * E + qkvW + qW + (a.gated ? 3 : 2) * I) + maxB * a.heads * maxT * maxT;
    const floats =
      3 * N +
      L * perLayer +
      N * E * 4 +
      N * (qkvW + qW + (a.gated ? 4 : 2) * I) +
      attScratches * maxT * maxT +
      2 * N +
      2 * headRows * V +
      4 +
      hs / 2;
    heap.reserve(floats * F32 + 16 * (L * 12 + 32));
    this.actsStart = heap.mark();
    const f = (n: number) => heap.allocF32(n);
    const layers = (n: number) => Array.from({ length: L }, () => f(n));
    const acts: Acts = {
      maxB,
      maxT,
      ids: f(N),
      pos: f(N),
      targets: f(N),
      X: Array.from({ length: L + 1 }, () => f(N * E)),
      Xm: layers(N * E),
      ln: f(N * E),
      qkv: layers(N * qkvW),
      att: f(N * qW),
      probs: layers(maxB * a.heads * maxT * maxT),
      hpre: layers(N * I),
      up: a.gated ? layers(N * I) : [],
      hact: f(N * I),
      lnf: f(N * E),
      dX: f(N * E),
      dln: f(N * E),
      dqkv: f(N * qkvW),
      datt: f(N * qW),
      dhact: f(N * I),
      dhpre: f(N * I),
      dup: a.gated ? f(N * I) : 0,
      tmp: a.gated ? f(N * I) : 0,
      attScratch: f(attScratches * maxT * maxT),
      attScratches,
      stats: f(2 * N),
      headRows,
      logits: f(headRows * V),
      dlogits: f(headRows * V),
      lossOut: f(4),
      negInvFreq: a.invFreq ? f(hs / 2) : 0,
      blocks: [],
    };
    if (a.invFreq) heap.f32(acts.negInvFreq, hs / 2).set(a.invFreq.map((x) => -x));
    // the block's buffers per layer: kept (X, Xm, qkv, hpre, up) or one-layer (ln, att, hact)
    acts.blocks = Array.from({ length: L }, (_, l) => ({
      x: acts.X[l],
      xm: acts.Xm[l],
      xo: acts.X[l + 1],
      ln: acts.ln,
      qkv: acts.qkv[l],
      att: acts.att,
      h: acts.hpre[l],
      up: a.gated ? acts.up[l] : 0,
      hact: acts.hact,
    }));
    this.acts = acts;
    this.actsEnd = heap.mark();
  }

  // -------------------------------------------------------------------------------------------
  // batches

  /** Checks a batch and writes its ids and (shifted) targets; returns B, T and the counted targets. */
  private load(
    batch: readonly LMExample[],
    what: string,
  ): { B: number; T: number; count: number; parts: (LMEmbedsPart | undefined)[] } {
    const a = this.acts;
    if (!a) throw new InputError(`${what}: call train() first (it plans the training buffers)`);
    if (!Array.isArray(batch)) throw new InputError(`${what}: the batch must be an array of examples`);
    if (batch.length === 0) throw new InputError(`${what}: the batch has no examples`);
    const B = batch.length;
    if (B > a.maxB)
      throw new InputError(`${what}: batch of ${B} examples exceeds the planned maxBatch ${a.maxB} (see train())`);
    const V = this.arch.vocab;
    const rows: { ids: ArrayLike<number>; labels: ArrayLike<number>; emb?: LMEmbedsPart }[] = batch.map((ex, b) => {
      if (ex === null || typeof ex !== "object")
        throw new InputError(`${what}: example ${b} must be token ids or { inputIds, labels? }`);
      if ("inputIds" in ex) {
        const ids = ex.inputIds;
        if (ids === null || typeof ids !== "object" || typeof ids.length !== "number")
          throw new InputError(`${what}: example ${b}: inputIds must be an array of token ids`);
        const labels = ex.labels ?? ids;
        if (labels === null || typeof labels !== "object" || typeof labels.length !== "number")
          throw new InputError(`${what}: example ${b}: labels must be an array`);
        return { ids, labels, emb: ex.inputsEmbeds };
      }
      if (typeof (ex as ArrayLike<number>).length !== "number")
        throw new InputError(`${what}: example ${b} must be token ids or { inputIds, labels? }`);
      return { ids: ex as ArrayLike<number>, labels: ex as ArrayLike<number> };
    });
    const T = rows[0].ids.length;
    if (T === 0) throw new InputError(`${what}: example 0 has no tokens`);
    if (T > a.maxT)
      throw new InputError(`${what}: sequences of ${T} tokens exceed the planned maxSeqLen ${a.maxT} (see train())`);
    if (T > this.arch.maxPositions)
      throw new InputError(
        `${what}: sequences of ${T} tokens exceed ${this.arch.positionsField} ${this.arch.maxPositions}`,
      );
    const heap = this.rt.heap;
    const ids = heap.i32(a.ids, B * T);
    const pos = heap.i32(a.pos, B * T);
    const tg = heap.i32(a.targets, B * T);
    const ig = this.ignoreIndex;
    let count = 0;
    for (const [b, r] of rows.entries()) {
      if (r.ids.length !== T)
        throw new InputError(`${what}: example ${b} has ${r.ids.length} tokens, example 0 has ${T} (equal lengths)`);
      if (r.labels.length !== T)
        throw new InputError(`${what}: example ${b} has ${r.labels.length} labels for ${T} tokens`);
      for (let t = 0; t < T; t++) {
        const id = r.ids[t];
        if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= V)
          throw new InputError(
            `${what}: token id ${String(id)} at input_ids[${b}, ${t}] is outside [0, ${V}) (vocab_size ${V})`,
          );
        const lb = r.labels[t];
        if (typeof lb !== "number" || !Number.isInteger(lb) || (lb !== ig && (lb < 0 || lb >= V)))
          throw new InputError(
            `${what}: label ${String(lb)} at labels[${b}, ${t}] is neither in [0, ${V}) nor ignore_index ${ig}`,
          );
        ids[b * T + t] = id;
        pos[b * T + t] = t;
      }
      if (r.emb !== undefined) this.checkEmbeds(r.emb, T, `${what}: example ${b}: inputsEmbeds`);
      for (let t = 0; t < T; t++) {
        const lb = this.shiftLabels ? (t + 1 < T ? r.labels[t + 1] : ig) : r.labels[t];
        tg[b * T + t] = lb;
        if (lb !== ig) count++;
      }
    }
    return { B, T, count, parts: rows.map((r) => r.emb) };
  }

  /** An `inputsEmbeds` part: a whole number of rows inside the sequence, finite. */
  private checkEmbeds(e: LMEmbedsPart, T: number, what: string): void {
    const E = this.arch.dim;
    if (e === null || typeof e !== "object") throw new InputError(`${what} must be { start, data }`);
    const d = e.data;
    if (d === null || typeof d !== "object" || typeof d.length !== "number")
      throw new InputError(`${what}.data must be an array of floats`);
    if (d.length % E !== 0 || d.length === 0)
      throw new ShapeError(`${what}.data has ${d.length} floats: not a positive whole number of rows of ${E}`);
    const M = d.length / E;
    if (!Number.isInteger(e.start) || e.start < 0 || e.start + M > T)
      throw new InputError(`${what}.start ${String(e.start)}: ${M} rows from there do not fit in ${T} positions`);
    for (let i = 0; i < d.length; i++)
      if (typeof d[i] !== "number" || !Number.isFinite(d[i]))
        throw new InputError(`${what}.data[${i}] is ${String(d[i])}, not a finite number`);
  }

  /**
   * att = softmax(q·kᵀ·scale, causal) · v of layer `l` for every (batch, head), from the kept qkv,
   * into the one-layer `att` buffer; the weights P go to the layer's kept `probs`. The backward
   * calls it again to recompute att (the same kernel on the same inputs: the same bits).
   */
  private attend(l: number, B: number, T: number): void {
    const a = this.acts!;
    const k = this.rt.k;
    const arch = this.arch;
    const H = arch.heads;
    const hs = arch.headDim;
    const group = H / arch.kvHeads;
    const qW = H * hs;
    const kvW = arch.kvHeads * hs;
    const qkvW = qW + 2 * kvW;
    const scale = arch.attnScale(l);
    for (let b = 0; b < B; b++) {
      const q0 = a.qkv[l] + b * T * qkvW * F32;
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / group);
        k.attention(
          q0 + h * hs * F32,
          qkvW,
          q0 + (qW + g * hs) * F32,
          qkvW,
          q0 + (qW + kvW + g * hs) * F32,
          qkvW,
          a.att + (b * T * qW + h * hs) * F32,
          qW,
          a.probs[l] + (b * H + h) * T * T * F32,
          T,
          T,
          hs,
          hs,
          scale,
          0,
          0,
          0,
          0,
        );
      }
    }
  }

  /** hact = act(hpre_l) (⊙ up_l for a gated MLP) of layer `l` over `n` rows, into the one-layer buffer. */
  private mlpAct(l: number, n: number): void {
    const a = this.acts!;
    this.fwd.mlpAct(n, a.hpre[l], a.up.length > 0 ? a.up[l] : 0, a.hact);
  }

  /** Mean loss over the counted targets, and with `scale` ≠ 0 adds `scale · ∂loss/∂θ` into the gradients. */
  run(batch: readonly LMExample[], scale: number | undefined, what: string): LMBatchResult {
    if (scale !== undefined && (typeof scale !== "number" || !Number.isFinite(scale)))
      throw new InputError(`${what}: scale must be a finite number, got ${String(scale)}`);
    const { B, T, count, parts } = this.load(batch, what);
    this.toTraining();
    this.forward(B, T, parts);
    const asked = scale !== undefined && scale !== 0;
    const grad = asked && count > 0;
    const E = this.arch.dim;
    if (grad) {
      const n = B * T;
      this.rt.heap.f32(this.acts!.dX, n * E).fill(0);
      this.rt.heap.f32(this.acts!.dln, n * E).fill(0);
    }
    const sum = this.head(B * T, grad ? scale / count : 0);
    const out: LMBatchResult = { loss: count > 0 ? sum / count : Number.NaN, count };
    const eg = grad ? this.backward(B, T, parts) : undefined;
    // the residual stream's input gradient at the spliced rows (0 without a counted label)
    if (asked && parts.some((p) => p !== undefined))
      out.embedsGrads = parts.map((p, b) => (p ? (eg?.[b] ?? new Float32Array(p.data.length)) : undefined));
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // forward (keeping activations) and backward

  /**
   * Backward of the forward's `linear` (decoder-forward.ts) in checkpoint layout: dx (n, K) += dy·op(W)ᵀ,
   * dW += (xᵀ·dy in W's layout), db += Σ dy (a 0 pointer: skipped).
   */
  private linBack(
    n: number,
    dy: number,
    ldy: number,
    x: number,
    K: number,
    N: number,
    W: number,
    kind: Kind,
    dx: number,
    dW: number,
    db: number,
  ): void {
    const k = this.rt.k;
    if (kind === "conv1d") {
      if (dx) k.gemm(n, K, N, dy, ldy, 0, W, N, 1, dx, K, 0, 1, 1, 0);
      if (dW) k.gemm(K, N, n, x, K, 1, dy, ldy, 0, dW, N, 0, 1, 1, 0);
    } else {
      if (dx) k.gemm(n, K, N, dy, ldy, 0, W, K, 0, dx, K, 0, 1, 1, 0);
      if (dW) k.gemm(N, K, n, dy, ldy, 1, x, K, 0, dW, K, 0, 1, 1, 0);
    }
    if (db) k.biasGrad(db, dy, n, N, ldy);
  }

  /** The forward's norm (recomputed by the backward). */
  private norm(x: number, y: number, n: number, gamma: number, beta: number): void {
    this.fwd.norm(x, y, n, gamma, beta);
  }

  /**
   * dx += the norm's input gradient, dgamma, dbeta += theirs; the row statistics are recomputed from
   * x first (given to the backward, its dgamma/dbeta pass runs beside the dx rows on the threads).
   */
  private normBack(dx: number, dgamma: number, dbeta: number, dy: number, x: number, gamma: number, n: number): void {
    const a = this.arch;
    const k = this.rt.k;
    const mean = this.acts!.stats;
    const rstd = mean + n * F32;
    if (a.norm === "rmsnorm") {
      k.normStats(x, n, a.dim, a.eps, 0, rstd);
      k.rmsNormBackward(dx, dgamma, dy, x, gamma, rstd, n, a.dim, a.eps);
    } else {
      k.normStats(x, n, a.dim, a.eps, mean, rstd);
      k.layerNormBackward(dx, dgamma, dbeta, dy, x, gamma, mean, rstd, n, a.dim, a.eps);
    }
  }

  /** An activation's derivative reads the forward input (gelu, silu, relu) or its output (tanh, sigmoid). */
  private static outputBased(act: number): boolean {
    return act === Act.tanh || act === Act.sigmoid;
  }

  /**
   * The forward over `[B, T]` rows: the engine's own steps (decoder-forward.ts) on the checkpoint
   * layout, each layer's block writing into its kept buffers (`acts.blocks[l]`) with the attention
   * that keeps its weights (`attend`).
   */
  private forward(B: number, T: number, parts: readonly (LMEmbedsPart | undefined)[]): void {
    const a = this.acts!;
    const fwd = this.fwd;
    const E = this.arch.dim;
    const n = B * T;
    fwd.tokens(n, a.ids, a.X[0]);
    for (const [b, p] of parts.entries())
      if (p) this.rt.heap.f32(a.X[0] + (b * T + p.start) * E * F32, p.data.length).set(p.data);
    fwd.positions(n, a.pos, a.X[0], a.dln);
    const attend = (l: number) => this.attend(l, B, T);
    for (let l = 0; l < this.arch.layers; l++) fwd.block(l, n, a.pos, a.blocks[l], attend);
    fwd.finalNorm(a.X[this.arch.layers], a.lnf, n);
  }

  /**
   * LM head + cross-entropy over the n rows, `headRows` at a time: returns the summed loss; with
   * dloss ≠ 0 also dlnf (in `dln`) += ∂/∂lnf and dHead += ∂/∂head, the loss being dloss · Σ.
   */
  private head(n: number, dloss: number): number {
    const a = this.acts!;
    const k = this.rt.k;
    const heap = this.rt.heap;
    const { dim: E, vocab: V } = this.arch;
    const hp = this.byName.get(this.arch.head)!;
    let sum = 0;
    for (let r0 = 0; r0 < n; r0 += a.headRows) {
      const m = Math.min(a.headRows, n - r0);
      const x = a.lnf + r0 * E * F32;
      this.fwd.lmHead(m, x, a.logits);
      if (dloss) k.fill(a.dlogits, m * V, 0);
      const bad = k.softmaxCrossEntropy(
        a.logits,
        dloss ? a.dlogits : 0,
        V,
        m,
        V,
        a.targets + r0 * 4,
        this.ignoreIndex,
        this.labelSmoothing,
        1,
        dloss,
        a.lossOut,
      );
      if (bad !== -1) throw new WasmformerError("internal", "cross-entropy rejected a checked label");
      sum += heap.f32(a.lossOut, 1)[0];
      if (dloss) {
        k.gemm(m, E, V, a.dlogits, V, 0, hp.ptr, E, 0, a.dln + r0 * E * F32, E, 0, 1, 1, 0);
        if (this.requiresGrad) k.gemm(V, E, m, a.dlogits, V, 1, x, E, 0, hp.grad, E, 0, 1, 1, 0);
      }
    }
    return sum;
  }

  /** Backward into the gradients; returns `∂/∂` each example's `inputsEmbeds` rows (times the loss scale). */
  private backward(B: number, T: number, parts: readonly (LMEmbedsPart | undefined)[]): (Float32Array | undefined)[] {
    const a = this.acts!;
    const arch = this.arch;
    const k = this.rt.k;
    const heap = this.rt.heap;
    const { dim: E, inner: I, heads: H, kvHeads: KV, headDim: hs, vocab: V } = arch;
    const qW = H * hs;
    const kvW = KV * hs;
    const qkvW = qW + 2 * kvW;
    const group = H / KV;
    const n = B * T;
    const zero = (p: number, floats: number) => k.fill(p, floats, 0);
    const pg = this.requiresGrad;
    const nrm = this.byName.get(arch.normW)!;
    const nrmB = arch.normB ? this.byName.get(arch.normB)! : undefined;
    this.normBack(a.dX, pg ? nrm.grad : 0, pg ? (nrmB?.grad ?? 0) : 0, a.dln, a.X[arch.layers], nrm.ptr, n);
    const srcOut = DecoderTraining.outputBased(arch.act);
    for (let l = arch.layers - 1; l >= 0; l--) {
      const w = this.w[l];
      const g = pg ? this.g[l] : NO_GRADS;
      const kd = this.kind[l];
      // ---- MLP: X_{l+1} = Xm + hact · W_proj + b   (hact and norm2(Xm) recomputed)
      this.mlpAct(l, n);
      this.norm(a.Xm[l], a.ln, n, w.ln2w, w.ln2b);
      zero(a.dhact, n * I);
      this.linBack(n, a.dX, E, a.hact, I, E, w.mlpProjW, kd.mlpProjW, a.dhact, g.mlpProjW, g.mlpProjB);
      zero(a.dhpre, n * I);
      if (w.upW) {
        // hact = act(gate) ⊙ up
        k.unary(a.hpre[l], a.tmp, n * I, arch.act);
        k.binary(a.dhact, a.tmp, a.dup, n, I, I, 1, BinOp.mul); // d up
        k.binary(a.dhact, a.up[l], a.dhact, n, I, I, 1, BinOp.mul); // d act(gate)
        k.unaryBackward(a.dhpre, a.dhact, srcOut ? a.tmp : a.hpre[l], n * I, arch.act);
      } else {
        k.unaryBackward(a.dhpre, a.dhact, srcOut ? a.hact : a.hpre[l], n * I, arch.act);
      }
      zero(a.dln, n * E);
      this.linBack(n, a.dhpre, I, a.ln, E, I, w.fcW, kd.fcW, a.dln, g.fcW, g.fcB);
      if (w.upW) this.linBack(n, a.dup, I, a.ln, E, I, w.upW, kd.upW, a.dln, g.upW, g.upB);
      this.normBack(a.dX, g.ln2w, g.ln2b, a.dln, a.Xm[l], w.ln2w, n);

      // ---- attention: Xm = X_l + att · W_o + b   (norm1(X_l) recomputed)
      this.norm(a.X[l], a.ln, n, w.ln1w, w.ln1b);
      zero(a.datt, n * qW);
      this.attend(l, B, T);
      this.linBack(n, a.dX, E, a.att, qW, E, w.attnProjW, kd.attnProjW, a.datt, g.attnProjW, g.attnProjB);
      zero(a.dqkv, n * qkvW);
      const scale = arch.attnScale(l);
      // every (batch, head) slice at once; the heads of one key/value head share a scratch (they add into its dK, dV)
      const slices: AttentionBackwardArgs[] = [];
      for (let b = 0; b < B; b++) {
        const off = b * T * qkvW * F32;
        for (let h = 0; h < H; h++) {
          const kv = Math.floor(h / group);
          slices.push([
            a.dqkv + off + h * hs * F32,
            a.dqkv + off + (qW + kv * hs) * F32,
            a.dqkv + off + (qW + kvW + kv * hs) * F32,
            a.datt + (b * T * qW + h * hs) * F32,
            qW,
            a.qkv[l] + off + h * hs * F32,
            qkvW,
            a.qkv[l] + off + (qW + kv * hs) * F32,
            qkvW,
            a.qkv[l] + off + (qW + kvW + kv * hs) * F32,
            qkvW,
            a.probs[l] + (b * H + h) * T * T * F32,
            0,
            a.attScratch + ((b * KV + kv) % a.attScratches) * a.maxT * a.maxT * F32,
            T,
            T,
            hs,
            hs,
            scale,
          ]);
        }
      }
      k.attentionBackwardHeads(slices);
      // the backward of a rotation by θ is the rotation by −θ
      if (a.negInvFreq) k.rope(a.dqkv, qkvW, n, H + KV, hs, a.pos, a.negInvFreq);
      zero(a.dln, n * E);
      if (w.kW) {
        this.linBack(n, a.dqkv, qkvW, a.ln, E, qW, w.attnW, kd.attnW, a.dln, g.attnW, g.attnB);
        this.linBack(n, a.dqkv + qW * F32, qkvW, a.ln, E, kvW, w.kW, kd.kW, a.dln, g.kW, g.kB);
        this.linBack(n, a.dqkv + (qW + kvW) * F32, qkvW, a.ln, E, kvW, w.vW, kd.vW, a.dln, g.vW, g.vB);
      } else {
        this.linBack(n, a.dqkv, qkvW, a.ln, E, qkvW, w.attnW, kd.attnW, a.dln, g.attnW, g.attnB);
      }
      this.normBack(a.dX, g.ln1w, g.ln1b, a.dln, a.X[l], w.ln1w, n);
    }
    // ---- the spliced rows' input gradient, then embeddings (a tied table already holds the LM head's share)
    const dX = heap.f32(a.dX, n * E);
    const grads = parts.map((p, b) => {
      if (!p) return undefined;
      const at = (b * T + p.start) * E;
      const g = dX.slice(at, at + p.data.length);
      dX.fill(0, at, at + p.data.length); // these positions took no token embedding (positions still do)
      return g;
    });
    if (pg) {
      const emb = this.byName.get(arch.embed)!;
      if (k.embeddingBackward(emb.grad, V, E, a.ids, n, a.dX, -1) !== -1)
        throw new WasmformerError("internal", "embeddingBackward rejected a checked id");
    }
    if (pg && arch.pos) {
      // the position table's share of the spliced rows is back in place for it
      for (const [b, p] of parts.entries()) if (p) dX.set(grads[b]!, (b * T + p.start) * E);
      const wpe = this.byName.get(arch.pos)!;
      if (k.embeddingBackward(wpe.grad, arch.maxPositions, E, a.pos, n, a.dX, -1) !== -1)
        throw new WasmformerError("internal", "embeddingBackward rejected a position");
    }
    return grads;
  }
}

const BLOCK_KEYS: (keyof BlockNames)[] = [
  "ln1w",
  "ln1b",
  "attnW",
  "attnB",
  "kW",
  "kB",
  "vW",
  "vB",
  "attnProjW",
  "attnProjB",
  "ln2w",
  "ln2b",
  "fcW",
  "fcB",
  "upW",
  "upB",
  "mlpProjW",
  "mlpProjB",
];

/** The gradient pointers of a frozen block: every weight gradient skipped. */
const NO_GRADS = Object.fromEntries(BLOCK_KEYS.map((key) => [key, 0])) as BlockPtrs;

/** Typed checks of `TrainOptions`. */
export function checkTrainOptions(o: TrainOptions, maxPositions: number): void {
  if (o === null || typeof o !== "object") throw new InputError(`train options must be an object, got ${String(o)}`);
  for (const f of ["maxBatch", "maxSeqLen"] as const) {
    const v = o[f];
    if (v !== undefined && (!Number.isInteger(v) || v < 1))
      throw new InputError(`train: ${f} must be a positive integer, got ${String(v)}`);
  }
  if (o.maxSeqLen !== undefined && o.maxSeqLen > maxPositions)
    throw new ShapeError(`train: maxSeqLen ${o.maxSeqLen} exceeds the model's ${maxPositions} positions`);
  if (o.ignoreIndex !== undefined && !Number.isInteger(o.ignoreIndex))
    throw new InputError(`train: ignoreIndex must be an integer, got ${String(o.ignoreIndex)}`);
  const ls = o.labelSmoothing;
  if (ls !== undefined && (typeof ls !== "number" || !(ls >= 0 && ls <= 1)))
    throw new InputError(`train: labelSmoothing must be a number in [0, 1], got ${String(ls)}`);
  if (o.requiresGrad !== undefined && typeof o.requiresGrad !== "boolean")
    throw new InputError(`train: requiresGrad must be a boolean, got ${String(o.requiresGrad)}`);
  if (o.shiftLabels !== undefined && typeof o.shiftLabels !== "boolean")
    throw new InputError(`train: shiftLabels must be a boolean, got ${String(o.shiftLabels)}`);
}
