/**
 * The decoder's forward pass, written once (issue 14 §2): the embeddings, the block of layer l, the
 * final norm and the LM head of GPT-2 and the Llama family, read from the `DecoderArch` switches
 * (decoder-arch.ts) and run on the core kernels. Inference (`CausalLM.run`, gpt2-model.ts) and
 * training (`DecoderTraining`, train.ts, whose backward follows these steps in reverse, as llm.c's
 * `train_gpt2.c` does) call the same steps; they differ only in where the activations go
 * (`BlockActs`), in the attention step, and in the layout the matrices are in:
 *
 * |                 | inference                                  | training                                  |
 * |-----------------|--------------------------------------------|-------------------------------------------|
 * | residual stream | one scratch row block, updated in place    | kept per layer: X_l → Xm_l → X_{l+1}      |
 * | MLP activation  | fused into the c_fc / gate GEMM            | pre-activation kept (hpre_l), act after   |
 * | attention       | KV cache, padding mask, `attentionHeads`   | the batch's own rows, weights kept (P_l)  |
 * | matrices        | packed, column blocks or quantized         | the checkpoint's layout (`checkpoint`)    |
 *
 * ```
 * x = wte[ids] (+ wpe[positions])
 * block l:  ln = norm_1(x);  q | k | v = ln · W_qkv + b;  rope(q, k);  att = Attn_l(q, k, v)
 *           xm = x + att · W_o + b
 *           ln = norm_2(xm);  h = ln · W_fc + b;  (up = ln · W_up + b);  hact = act(h) (⊙ up)
 *           xo = xm + hact · W_proj + b
 * logits = norm_f(x) · headᵀ
 * ```
 *
 * Nothing here allocates: every step writes to buffers its caller planned.
 */
import { BinOp, PACK_KC, packedIndex, type QuantType, type Runtime, WasmformerError } from "@wasmformer/core";
import type { DecoderArch } from "./decoder-arch.js";

const F32 = 4;

/** Pointers (bytes) of one block's weights in the heap (0 = absent). */
export interface BlockWeights {
  ln1w: number; // (E,)
  ln1b: number; // (E,)
  attnW: number; // (E, 3E) Conv1D [in, out] (GPT-2, q | k | v fused); Llama: q (E, H·d)
  attnB: number; // (3E,)
  kW: number; // Llama: k (E, KV·d), 0 for GPT-2 (fused into attnW)
  kB: number;
  vW: number; // Llama: v (E, KV·d)
  vB: number;
  upW: number; // Llama: up (E, inner) of the gated MLP (fcW is the gate), 0 for GPT-2
  upB: number;
  attnProjW: number; // (E, E)
  attnProjB: number; // (E,)
  ln2w: number; // (E,)
  ln2b: number; // (E,)
  fcW: number; // (E, inner)
  fcB: number; // (inner,)
  mlpProjW: number; // (inner, E)
  mlpProjB: number; // (E,)
}

/** Pointers (bytes) of the model's weights; the matrices' storage is described by `MatrixStorage`. */
export interface Weights {
  invFreq: number; // (d/2,) rotary frequencies, 0 for a learned position table
  wte: number; // (V, E) rows for the embedding gather; 0 when tied (the embedding is read from `head`)
  wpe: number; // (n_positions, E); 0 with rotary positions
  blocks: BlockWeights[];
  lnfW: number; // (E,)
  lnfB: number; // (E,)
  head: number; // LM head (wte when tied), see `MatrixStorage`
}

/**
 * How the engine stores its matrices for inference (see gpt2-model.ts, `CausalLM.load`): pre-packed
 * GEMM operands, or contiguous column blocks of `colBlock` (0: Linear [out, in] rows) and of
 * `headBlock` for the LM head; a quantized matrix (`qtypes`) is Linear rows of ggml blocks.
 */
export interface MatrixStorage {
  packed: boolean;
  colBlock: number;
  headBlock: number;
  /** ggml type of each quantized matrix, by heap pointer (the others are f32) */
  qtypes: Map<number, QuantType>;
  /** (4, xqRowBytes(max K)) bytes: rows quantized for `gemvQ` (when any matrix is quantized), else 0 */
  xq: number;
}

/** Where one block reads and writes its activations (byte pointers, rows of n). */
export interface BlockActs {
  /** (n, E) the residual stream in */
  x: number;
  /** (n, E) after the attention branch; = x: updated in place */
  xm: number;
  /** (n, E) after the MLP branch (the next layer's x); = xm: in place */
  xo: number;
  /** (n, E) norm_1(x), then norm_2(xm) */
  ln: number;
  /** (n, H·d + 2·KV·d) q | k | v */
  qkv: number;
  /** (n, H·d) the attention output, heads side by side */
  att: number;
  /** (n, inner) the c_fc / gate output: before the activation, or after it when `hact` = h (fused) */
  h: number;
  /** (n, inner) the up projection of a gated MLP, 0 without */
  up: number;
  /** (n, inner) act(h) (⊙ up); = h: the activation fused into the GEMM and the product in place */
  hact: number;
}

/** att ← the attention of layer `l` over the q | k | v rows the block just wrote (rotary applied). */
export type AttentionStep = (l: number) => void;

/** The forward steps of one engine: its weights, their storage, and the layout they are in now. */
export class DecoderForward {
  /**
   * True while the matrices hold the checkpoint's layout (Conv1D [in, out], Linear [out, in], the
   * head [V, E]): set by training's `toTraining`, cleared by `toInference` (train.ts).
   */
  checkpoint = false;
  /** Pointers of the Conv1D [in, out] matrices (the others are Linear [out, in] in checkpoint layout). */
  private readonly conv1d = new Set<number>();

  constructor(
    readonly arch: DecoderArch,
    readonly rt: Runtime,
    readonly w: Weights,
    readonly storage: MatrixStorage,
  ) {
    const conv = new Set(arch.specs.filter((s) => s.layout === "conv1d").map((s) => s.name));
    arch.blocks.forEach((names, l) => {
      for (const key of Object.keys(names) as (keyof BlockWeights)[])
        if (conv.has(names[key]!)) this.conv1d.add(w.blocks[l][key]);
    });
  }

  /**
   * y (n, N) = act(x (n, K) · W + b + beta·y) for a matrix in its current layout; x is contiguous
   * rows (ld K), y rows of ld `ldy` (default N); beta 1 fuses the residual add.
   */
  linear(
    n: number,
    x: number,
    K: number,
    N: number,
    w: number,
    bias: number,
    y: number,
    beta: number,
    act: number,
    ldy = N,
  ): void {
    const k = this.rt.k;
    const st = this.storage;
    const qt = st.qtypes.get(w);
    if (qt) {
      // W [N, K] in ggml blocks: decode rows (n ≤ 4) as integer dot products, prefill as a GEMM
      if (n <= 4) {
        k.quantizeRowsQ8(x, K, n, K, st.xq);
        k.gemvQ(qt, n, N, K, st.xq, w, y, ldy, bias, beta, act);
      } else {
        k.gemmQ(qt, n, N, K, x, K, w, y, ldy, bias, beta, act);
      }
      return;
    }
    if (this.checkpoint) {
      // Conv1D [in, out] = [K, N] as it is, Linear [out, in] = [N, K] transposed
      if (this.conv1d.has(w)) k.gemm(n, N, K, x, K, 0, w, N, 0, y, ldy, bias, 1, beta, act);
      else k.gemm(n, N, K, x, K, 0, w, K, 1, y, ldy, bias, 1, beta, act);
      return;
    }
    if (st.packed) {
      k.gemmPacked(n, N, K, x, K, 0, w, y, ldy, bias, 1, beta, act);
      return;
    }
    const cb = st.colBlock;
    if (cb === 0) {
      k.gemm(n, N, K, x, K, 0, w, K, 1, y, ldy, bias, 1, beta, act);
      return;
    }
    for (let c0 = 0; c0 < N; c0 += cb) {
      const wb = Math.min(cb, N - c0);
      const b0 = bias ? bias + c0 * F32 : 0;
      k.gemm(n, wb, K, x, K, 0, w + c0 * K * F32, wb, 0, y + c0 * F32, ldy, b0, 1, beta, act);
    }
  }

  /** y (n, E) = the layer's norm of x (n, E): LayerNorm (weight, bias) or RMSNorm (weight). */
  norm(x: number, y: number, n: number, weight: number, bias: number): void {
    const a = this.arch;
    if (a.norm === "rmsnorm") this.rt.k.rmsNorm(x, y, n, a.dim, weight, a.eps);
    else this.rt.k.layerNorm(x, y, n, a.dim, weight, bias, a.eps);
  }

  // -------------------------------------------------------------------------------------------
  // the steps

  /** x (n, E) = wte[ids (n,) i32] (ids already validated), read from the table in its current layout. */
  tokens(n: number, ids: number, x: number): void {
    const { dim: E, vocab: V } = this.arch;
    const k = this.rt.k;
    const w = this.w;
    const qt = this.storage.qtypes.get(w.wte || w.head);
    if (qt) {
      // rows of the quantized table (the head when tied), dequantized
      k.dequantRowsQ(qt, E, w.wte || w.head, ids, n, x);
      return;
    }
    // untied, or tied with the head in the checkpoint's [V, E]: rows of a plain table
    const table = w.wte || (this.checkpoint ? w.head : 0);
    if (table) {
      if (k.gather(table, V, E, ids, n, x) !== -1)
        throw new WasmformerError("internal", "gather rejected a checked id");
      return;
    }
    const idv = this.rt.heap.i32(ids, n);
    if (this.storage.packed) {
      // tied: row `id` of wte is column `id` of the packed E×V head: per K block, kb floats 8 apart
      for (let i = 0; i < n; i++) {
        const id = idv[i];
        for (let pc = 0; pc < E; pc += PACK_KC) {
          const kb = Math.min(PACK_KC, E - pc);
          k.copy2d(w.head + packedIndex(E, V, pc, id) * F32, 8, x + (i * E + pc) * F32, 1, kb, 1);
        }
      }
      return;
    }
    // tied: row `id` of wte is column `id` of the transposed head blocks
    const hb = this.storage.headBlock;
    for (let i = 0; i < n; i++) {
      const id = idv[i];
      const v0 = id - (id % hb);
      const wb = Math.min(hb, V - v0);
      k.copy2d(w.head + (v0 * E + (id - v0)) * F32, wb, x + i * E * F32, 1, E, 1);
    }
  }

  /** x (n, E) += wpe[pos (n,) i32] with a learned position table (`tmp`: n × E scratch); rotary: nothing. */
  positions(n: number, pos: number, x: number, tmp: number): void {
    const w = this.w;
    if (!w.wpe) return;
    const k = this.rt.k;
    const E = this.arch.dim;
    if (k.gather(w.wpe, this.arch.maxPositions, E, pos, n, tmp) !== -1)
      throw new WasmformerError("internal", "gather rejected a position");
    k.binary(x, tmp, x, n, E, E, 1, BinOp.add);
  }

  /**
   * The block of layer `l` over n rows at positions `pos` (n,) i32: the one definition of the
   * GPT-2 / Llama block (see the module comment); `attend` computes att from qkv.
   */
  block(l: number, n: number, pos: number, a: BlockActs, attend: AttentionStep): void {
    const arch = this.arch;
    const k = this.rt.k;
    const bw = this.w.blocks[l];
    const { dim: E, inner: I, heads: H, kvHeads: KV, headDim: hs } = arch;
    const qW = H * hs; // query width = attention output width
    const kvW = KV * hs; // key (and value) width
    const qkvW = qW + 2 * kvW; // a row of q | k | v

    // ---- attention: q | k | v = norm_1(x) · W + b: one fused Conv1D (GPT-2) or three Linear
    this.norm(a.x, a.ln, n, bw.ln1w, bw.ln1b);
    if (bw.kW) {
      this.linear(n, a.ln, E, qW, bw.attnW, bw.attnB, a.qkv, 0, 0, qkvW);
      this.linear(n, a.ln, E, kvW, bw.kW, bw.kB, a.qkv + qW * F32, 0, 0, qkvW);
      this.linear(n, a.ln, E, kvW, bw.vW, bw.vB, a.qkv + (qW + kvW) * F32, 0, 0, qkvW);
    } else {
      this.linear(n, a.ln, E, qkvW, bw.attnW, bw.attnB, a.qkv, 0, 0);
    }
    // rotary positions: the H query heads and KV key heads lie side by side at the row start
    if (this.w.invFreq) k.rope(a.qkv, qkvW, n, H + KV, hs, pos, this.w.invFreq);
    attend(l);
    // xm = x + att · W_o + b   (residual fused: beta = 1)
    if (a.xm !== a.x) k.copy2d(a.x, E, a.xm, E, n, E);
    this.linear(n, a.att, qW, E, bw.attnProjW, bw.attnProjB, a.xm, 1, 0);

    // ---- MLP: xo = xm + act(norm_2(xm) · W_fc + b_fc) · W_proj + b_proj, or with a gate (SwiGLU):
    //      xo = xm + (act(norm_2(xm) · W_gate) ⊙ norm_2(xm) · W_up) · W_down
    const fused = a.hact === a.h;
    this.norm(a.xm, a.ln, n, bw.ln2w, bw.ln2b);
    this.linear(n, a.ln, E, I, bw.fcW, bw.fcB, a.h, 0, fused ? arch.act : 0);
    if (bw.upW) this.linear(n, a.ln, E, I, bw.upW, bw.upB, a.up, 0, 0);
    if (fused) {
      if (bw.upW) k.binary(a.h, a.up, a.h, n, I, I, 1, BinOp.mul);
    } else {
      this.mlpAct(n, a.h, bw.upW ? a.up : 0, a.hact);
    }
    if (a.xo !== a.xm) k.copy2d(a.xm, E, a.xo, E, n, E);
    this.linear(n, a.hact, I, E, bw.mlpProjW, bw.mlpProjB, a.xo, 1, 0);
  }

  /** hact (n, inner) = act(h) (⊙ up when up ≠ 0): the MLP activation when it is not fused into the GEMM. */
  mlpAct(n: number, h: number, up: number, hact: number): void {
    const k = this.rt.k;
    const I = this.arch.inner;
    k.unary(h, hact, n * I, this.arch.act);
    if (up) k.binary(hact, up, hact, n, I, I, 1, BinOp.mul);
  }

  /** y (n, E) = norm_f(x) (n, E). */
  finalNorm(x: number, y: number, n: number): void {
    this.norm(x, y, n, this.w.lnfW, this.w.lnfB);
  }

  /** logits (m, V) = x (m, E) · headᵀ, for the head in its current layout. */
  lmHead(m: number, x: number, logits: number): void {
    const { dim: E, vocab: V } = this.arch;
    const k = this.rt.k;
    const head = this.w.head;
    const st = this.storage;
    if (st.qtypes.has(head)) {
      this.linear(m, x, E, V, head, 0, logits, 0, 0);
      return;
    }
    if (this.checkpoint) {
      k.gemm(m, V, E, x, E, 0, head, E, 1, logits, V, 0, 1, 0, 0); // [V, E] rows
      return;
    }
    if (st.packed) {
      k.gemmPacked(m, V, E, x, E, 0, head, logits, V, 0, 1, 0, 0);
      return;
    }
    // [E, V] as column blocks of headBlock (see HEAD_BLOCK in gpt2-model.ts)
    const hb = st.headBlock;
    for (let v0 = 0; v0 < V; v0 += hb) {
      const wb = Math.min(hb, V - v0);
      k.gemm(m, wb, E, x, E, 0, head + v0 * E * F32, wb, 0, logits + v0 * F32, V, 0, 1, 0, 0);
    }
  }
}
