/**
 * An LSTM encoder–decoder with Luong attention (Luong et al. 2015, "general" score, no input
 * feeding), trainable with teacher forcing. One definition serves training and greedy decoding:
 *
 *   encoder:    E = lstm_enc(emb_enc(src))              E [B, S, H], final state (h, c)
 *   decoder:    D = lstm_dec(emb_dec(y_in), (h, c))     D [B, T, H], y_in = BOS, y_0 … y_{T−2}
 *   attention:  K = E·W_aᵀ,  a[t, s] = softmax_s(D_t · K_s),  ctx_t = Σ_s a[t, s]·E_s
 *   output:     h̃_t = tanh(W_c [ctx_t; D_t] + b_c),  logits_t = W_o h̃_t + b_o
 *
 * Greedy decoding runs the same layers one step at a time (`LSTM.step`) and returns the attention
 * rows `a[t, :]`. With a vocabulary (from `config.json`), `translate(text)` maps characters to ids
 * and back.
 *
 * State-dict names: `encoder.embedding.weight [Vs, E]`, `encoder.lstm.*` and `decoder.lstm.*`
 * (PyTorch LSTM names), `decoder.embedding.weight [Vt, E]`, `decoder.attention.weight [H, H]`,
 * `decoder.concat.weight [H, 2H]`, `decoder.concat.bias [H]`, `decoder.out.weight [Vt, H]`,
 * `decoder.out.bias [Vt]`.
 */
import {
  ConfigError,
  InputError,
  mulberry32,
  parseSafetensors,
  type Runtime,
  ShapeError,
  Tensor,
  type TensorSource,
  tensorSource,
  writeSafetensors,
} from "@wasmformer/core";
import { Embedding } from "./embedding.js";
import type { BatchResult, Trainable } from "./fit.js";
import { Linear } from "./linear.js";
import { crossEntropy } from "./losses.js";
import { Module } from "./module.js";
import { LSTM } from "./rnn.js";
import { loadModule, type WeightScope } from "./state-dict.js";
import { fmtShape, type ModuleLife, posInt } from "./util.js";

export interface AttentionSeq2SeqOptions {
  srcVocabSize: number;
  tgtVocabSize: number;
  embedDim: number;
  hiddenSize: number;
  /** first decoder input (default 1) */
  bosId?: number;
  /** ends a decoded row (default 2) */
  eosId?: number;
}

/**
 * Character vocabularies of a text-to-text model: token `i` of a list is id `i`. Source characters
 * missing from `src` become `unkToken` (an InputError when there is none).
 */
export interface Seq2SeqVocab {
  src: string[];
  tgt: string[];
  /** lower-case the input first (default false) */
  lowercase?: boolean;
  /** default "<unk>" */
  unkToken?: string;
}

/** One training pair: source ids and target ids (ending with EOS). */
export interface Seq2SeqExample {
  src: ArrayLike<number>;
  tgt: ArrayLike<number>;
}

export interface GreedyResult {
  /** generated ids per row (BOS not included; EOS included when the row ended with it) */
  ids: number[][];
  /** per row, the attention weights `[ids.length, S]`: row t is a[t, :] when ids[t] was chosen */
  attention: Tensor<"f32">[];
}

export interface TranslateResult {
  /** the output characters (EOS not included) */
  text: string;
  /** generated ids, EOS included when decoding ended with it */
  ids: number[];
  /** the input characters as tokens (after lower-casing), the columns of `attention` */
  sourceTokens: string[];
  /** the output tokens (EOS as its token string), the rows of `attention` */
  targetTokens: string[];
  /** cross-attention weights `[targetTokens.length, sourceTokens.length]` (each row sums to 1) */
  attention: Tensor<"f32">;
}

/** The `config.json` of a checkpoint (written by `save`). */
export interface AttentionSeq2SeqConfig {
  architectures: ["AttentionSeq2Seq"];
  model_type: "lstm_attention_seq2seq";
  cell: "lstm";
  attention: "luong_general";
  src_vocab_size: number;
  tgt_vocab_size: number;
  embed_dim: number;
  hidden_size: number;
  bos_token_id: number;
  eos_token_id: number;
  /** longest output `translate` decodes by default (EOS included) */
  max_target_length?: number;
  src_vocab?: string[];
  tgt_vocab?: string[];
  lowercase?: boolean;
  unk_token?: string;
}

/** What a training forward keeps for `backward`. */
interface Record_ {
  B: number;
  T: number;
  S: number;
  /** encoder outputs, keys, decoder outputs, attention weights, tanh outputs */
  e: Float32Array;
  k: Float32Array;
  d: Float32Array;
  a: Float32Array;
  ht: Float32Array;
}

const IGNORE = -100;

/**
 * `a [B, T, S] = softmax_s(q[b, t]·k[b, s])` and `ctx [B, T, H] = Σ_s a·e[b, s]` (q `[B, T, H]`,
 * k and e `[B, S, H]`).
 */
function attend(
  q: Float32Array,
  k: Float32Array,
  e: Float32Array,
  B: number,
  T: number,
  S: number,
  H: number,
): { a: Float32Array; ctx: Float32Array } {
  const a = new Float32Array(B * T * S);
  const ctx = new Float32Array(B * T * H);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const qo = (b * T + t) * H;
      const ao = (b * T + t) * S;
      let max = -Infinity;
      for (let s = 0; s < S; s++) {
        const ko = (b * S + s) * H;
        let dot = 0;
        for (let j = 0; j < H; j++) dot += q[qo + j]! * k[ko + j]!;
        a[ao + s] = dot;
        if (dot > max) max = dot;
      }
      let sum = 0;
      for (let s = 0; s < S; s++) {
        const v = Math.exp(a[ao + s]! - max);
        a[ao + s] = v;
        sum += v;
      }
      for (let s = 0; s < S; s++) {
        const w = a[ao + s]! / sum;
        a[ao + s] = w;
        const eo = (b * S + s) * H;
        for (let j = 0; j < H; j++) ctx[qo + j] += w * e[eo + j]!;
      }
    }
  }
  return { a, ctx };
}

/** `[ctx; d]` per row: `[rows, 2H]`. */
function concatRows(ctx: Float32Array, d: Float32Array, rows: number, H: number): Float32Array {
  const out = new Float32Array(rows * 2 * H);
  for (let r = 0; r < rows; r++) {
    out.set(ctx.subarray(r * H, (r + 1) * H), r * 2 * H);
    out.set(d.subarray(r * H, (r + 1) * H), r * 2 * H + H);
  }
  return out;
}

function tanhInPlace(x: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = Math.tanh(x[i]!);
  return x;
}

function argmaxRows(l: Float32Array, B: number, V: number): Int32Array {
  const out = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    let best = 0;
    for (let v = 1; v < V; v++) if (l[b * V + v]! > l[b * V + best]!) best = v;
    out[b] = best;
  }
  return out;
}

function checkOptions(o: AttentionSeq2SeqOptions): void {
  for (const n of ["srcVocabSize", "tgtVocabSize", "embedDim", "hiddenSize"] as const) posInt(o[n], n);
  for (const n of ["bosId", "eosId"] as const) {
    const v = o[n];
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v >= o.tgtVocabSize))
      throw new ConfigError(`expected an id in [0, ${o.tgtVocabSize}), got ${String(v)}`, n);
  }
}

export class AttentionSeq2Seq extends Module implements Trainable<Seq2SeqExample> {
  readonly rt: Runtime;
  protected readonly life: ModuleLife;
  readonly encEmbedding: Embedding;
  readonly encoder: LSTM;
  readonly decEmbedding: Embedding;
  readonly decoder: LSTM;
  /** W_a: keys K = E·W_aᵀ */
  readonly attention: Linear;
  /** W_c, b_c on `[ctx; D]` */
  readonly concat: Linear;
  readonly out: Linear;
  readonly bosId: number;
  readonly eosId: number;
  readonly hiddenSize: number;
  readonly tgtVocabSize: number;
  readonly srcVocabSize: number;
  /** character vocabularies for `translate` (set by `fromPretrained` when the config has them) */
  vocab: Seq2SeqVocab | undefined;
  /** default output length limit of `translate` (EOS included) */
  maxTargetLength = 64;
  private readonly saved: Record_[] = [];
  /**
   * An optimizer may have changed the trainable weights since the last `eval()`: the LSTMs'
   * packed inference copies are refreshed before the next inference-mode forward.
   */
  private stale = false;

  constructor(
    scope: WeightScope,
    readonly opts: AttentionSeq2SeqOptions,
  ) {
    checkOptions(opts);
    super();
    this.rt = scope.rt;
    this.life = scope.life;
    const { embedDim: E, hiddenSize: H } = opts;
    const enc = scope.pp("encoder");
    const dec = scope.pp("decoder");
    this.encEmbedding = new Embedding(enc.pp("embedding"), opts.srcVocabSize, E);
    this.encoder = new LSTM(enc.pp("lstm"), { inputSize: E, hiddenSize: H });
    this.decEmbedding = new Embedding(dec.pp("embedding"), opts.tgtVocabSize, E);
    this.decoder = new LSTM(dec.pp("lstm"), { inputSize: E, hiddenSize: H });
    this.attention = new Linear(dec.pp("attention"), H, H, { bias: false });
    this.concat = new Linear(dec.pp("concat"), 2 * H, H);
    this.out = new Linear(dec.pp("out"), H, opts.tgtVocabSize);
    this.bosId = opts.bosId ?? 1;
    this.eosId = opts.eosId ?? 2;
    this.hiddenSize = H;
    this.srcVocabSize = opts.srcVocabSize;
    this.tgtVocabSize = opts.tgtVocabSize;
  }

  get runtime(): Runtime {
    return this.rt;
  }

  /**
   * A new model with PyTorch's default initialisation, drawn from `seed`: embeddings N(0, 1), LSTM
   * tensors U(−1/√H, 1/√H), the Linear layers U(−1/√in, 1/√in).
   */
  static create(
    opts: AttentionSeq2SeqOptions,
    o: { seed?: number; runtime?: Runtime; vocab?: Seq2SeqVocab } = {},
  ): AttentionSeq2Seq {
    checkOptions(opts);
    const { embedDim: E, hiddenSize: H } = opts;
    const rand = mulberry32(o.seed ?? 0);
    const tensors = new Map<string, Tensor>();
    const uniform = (name: string, shape: number[], bound: number) => {
      const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
      for (let i = 0; i < a.length; i++) a[i] = (2 * rand() - 1) * bound;
      tensors.set(name, new Tensor(a, shape, "f32"));
    };
    const normal = (name: string, shape: number[]) => {
      const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
      for (let i = 0; i < a.length; i++)
        a[i] = Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
      tensors.set(name, new Tensor(a, shape, "f32"));
    };
    for (const [part, V] of [
      ["encoder", opts.srcVocabSize],
      ["decoder", opts.tgtVocabSize],
    ] as const) {
      normal(`${part}.embedding.weight`, [V, E]);
      const b = 1 / Math.sqrt(H);
      uniform(`${part}.lstm.weight_ih_l0`, [4 * H, E], b);
      uniform(`${part}.lstm.weight_hh_l0`, [4 * H, H], b);
      uniform(`${part}.lstm.bias_ih_l0`, [4 * H], b);
      uniform(`${part}.lstm.bias_hh_l0`, [4 * H], b);
    }
    uniform("decoder.attention.weight", [H, H], 1 / Math.sqrt(H));
    uniform("decoder.concat.weight", [H, 2 * H], 1 / Math.sqrt(2 * H));
    uniform("decoder.concat.bias", [H], 1 / Math.sqrt(2 * H));
    uniform("decoder.out.weight", [opts.tgtVocabSize, H], 1 / Math.sqrt(H));
    uniform("decoder.out.bias", [opts.tgtVocabSize], 1 / Math.sqrt(H));
    const m = loadModule(tensorSource(tensors), (s) => new AttentionSeq2Seq(s, opts), { runtime: o.runtime });
    if (o.vocab) m.setVocab(o.vocab);
    return m;
  }

  /**
   * Load a checkpoint: `{ config, weights }` (a `config.json` object and `model.safetensors` bytes
   * or a tensor source), or in Node a folder path holding those two files.
   */
  static async fromPretrained(
    src: string | { config: unknown; weights: Uint8Array | ArrayBuffer | TensorSource },
    o: { runtime?: Runtime } = {},
  ): Promise<AttentionSeq2Seq> {
    if (typeof src === "string") {
      const fs = (await import(/* @vite-ignore */ "node:fs/promises" as string)) as typeof import("node:fs/promises");
      const path = (await import(/* @vite-ignore */ "node:path" as string)) as typeof import("node:path");
      const read = async (name: string) => {
        try {
          return await fs.readFile(path.join(src, name));
        } catch (e) {
          throw new ConfigError(`cannot read ${path.join(src, name)}: ${(e as Error).message}`);
        }
      };
      const text = (await read("config.json")).toString("utf8");
      let config: unknown;
      try {
        config = JSON.parse(text);
      } catch (e) {
        throw new ConfigError(`config.json in ${src} is not valid JSON: ${(e as Error).message}`);
      }
      return AttentionSeq2Seq.fromPretrained({ config, weights: await read("model.safetensors") }, o);
    }
    const c = parseConfig(src.config);
    const w = src.weights;
    const source = w instanceof Uint8Array || w instanceof ArrayBuffer ? parseSafetensors(w) : w;
    const m = loadModule(
      source,
      (s) =>
        new AttentionSeq2Seq(s, {
          srcVocabSize: c.src_vocab_size,
          tgtVocabSize: c.tgt_vocab_size,
          embedDim: c.embed_dim,
          hiddenSize: c.hidden_size,
          bosId: c.bos_token_id,
          eosId: c.eos_token_id,
        }),
      { runtime: o.runtime },
    );
    if (c.src_vocab && c.tgt_vocab)
      m.setVocab({ src: c.src_vocab, tgt: c.tgt_vocab, lowercase: c.lowercase, unkToken: c.unk_token });
    if (c.max_target_length !== undefined) m.maxTargetLength = c.max_target_length;
    return m;
  }

  /** Attach character vocabularies (their sizes must match the model's). */
  setVocab(v: Seq2SeqVocab): this {
    if (!Array.isArray(v.src) || v.src.length !== this.srcVocabSize)
      throw new ConfigError(`expected ${this.srcVocabSize} source tokens, got ${v.src?.length}`, "src_vocab");
    if (!Array.isArray(v.tgt) || v.tgt.length !== this.tgtVocabSize)
      throw new ConfigError(`expected ${this.tgtVocabSize} target tokens, got ${v.tgt?.length}`, "tgt_vocab");
    this.vocab = { ...v };
    return this;
  }

  protected override children(): Module[] {
    return [this.encEmbedding, this.encoder, this.decEmbedding, this.decoder, this.attention, this.concat, this.out];
  }

  protected override onMode(training: boolean): void {
    this.saved.length = 0;
    if (!training) this.stale = false;
  }

  /** Inference mode with the current weights (see `stale`). */
  private fresh(): void {
    if (!this.training && this.stale) this.eval();
  }

  /**
   * Teacher-forced logits `[B, T, Vt]` for `src [B, S]` and decoder inputs `yIn [B, T]` (i32; every
   * row of a batch has the same length). In training mode the forward is kept for `backward`.
   */
  forward(src: Tensor, yIn: Tensor): Tensor<"f32"> {
    this.life.check("AttentionSeq2Seq");
    for (const [t, n] of [
      [src, "src"],
      [yIn, "yIn"],
    ] as const)
      if (t.dtype !== "i32" || t.ndim !== 2 || t.shape[1]! < 1)
        throw new ShapeError(
          `AttentionSeq2Seq.forward: ${n} must be i32 [B, L ≥ 1], got ${t.dtype} ${fmtShape(t.shape)}`,
        );
    const [B, S] = src.shape as [number, number];
    const T = yIn.shape[1]!;
    if (yIn.shape[0] !== B)
      throw new ShapeError(`AttentionSeq2Seq.forward: yIn has ${yIn.shape[0]} rows, src has ${B}`);
    const H = this.hiddenSize;
    this.fresh();
    const enc = this.encoder.forward(this.encEmbedding.forward(src));
    const k = this.attention.forward(enc.output);
    const dec = this.decoder.forward(this.decEmbedding.forward(yIn), enc.h, enc.c);
    const e = enc.output.data;
    const d = dec.output.data;
    const { a, ctx } = attend(d, k.data, e, B, T, S, H);
    const ht = tanhInPlace(this.concat.forward(new Tensor(concatRows(ctx, d, B * T, H), [B, T, 2 * H], "f32")).data);
    const logits = this.out.forward(new Tensor(ht, [B, T, H], "f32"));
    if (this.training) this.saved.push({ B, T, S, e, k: k.data, d, a, ht });
    return logits;
  }

  /**
   * Backward of the latest training forward: adds every parameter's gradient for `dLogits`
   * `[B, T, Vt]` (through the output, attention, decoder LSTM with teacher forcing, encoder LSTM
   * and embeddings).
   */
  backward(dLogits: Tensor): void {
    const r = this.popRecord(this.saved, "AttentionSeq2Seq", (r) =>
      expectDims(dLogits, [r.B, r.T, this.tgtVocabSize], "AttentionSeq2Seq.backward dLogits"),
    );
    const { B, T, S, e, k, d, a, ht } = r;
    const H = this.hiddenSize;
    const dz = this.out.backward(dLogits).data.slice();
    for (let i = 0; i < dz.length; i++) dz[i] *= 1 - ht[i]! * ht[i]!;
    const dcat = this.concat.backward(new Tensor(dz, [B, T, H], "f32")).data;
    const dD = new Float32Array(B * T * H);
    const dE = new Float32Array(B * S * H);
    const dK = new Float32Array(B * S * H);
    const da = new Float32Array(S);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const row = b * T + t;
        const co = row * 2 * H; // dctx = dcat[row, :H], dD += dcat[row, H:]
        const ao = row * S;
        for (let j = 0; j < H; j++) dD[row * H + j] = dcat[co + H + j]!;
        let dot = 0;
        for (let s = 0; s < S; s++) {
          const eo = (b * S + s) * H;
          const w = a[ao + s]!;
          let g = 0;
          for (let j = 0; j < H; j++) {
            g += dcat[co + j]! * e[eo + j]!;
            dE[eo + j] += w * dcat[co + j]!;
          }
          da[s] = g;
          dot += w * g;
        }
        // softmax backward: dscore_s = a_s (da_s − Σ a·da); score = D_t·K_s
        for (let s = 0; s < S; s++) {
          const ds = a[ao + s]! * (da[s]! - dot);
          const ko = (b * S + s) * H;
          for (let j = 0; j < H; j++) {
            dD[row * H + j] += ds * k[ko + j]!;
            dK[ko + j] += ds * d[row * H + j]!;
          }
        }
      }
    }
    const dEk = this.attention.backward(new Tensor(dK, [B, S, H], "f32")).data;
    for (let i = 0; i < dE.length; i++) dE[i] += dEk[i]!;
    const g = this.decoder.backward(new Tensor(dD, [B, T, H], "f32"));
    this.decEmbedding.backward(g.dx);
    const ge = this.encoder.backward(new Tensor(dE, [B, S, H], "f32"), g.dh0, g.dc0);
    this.encEmbedding.backward(ge.dx);
  }

  /** Source ids, decoder inputs (BOS + target without its last id) and labels of equal-length rows. */
  private tensorsOf(batch: readonly Seq2SeqExample[], idx: number[]) {
    const B = idx.length;
    const S = batch[idx[0]!]!.src.length;
    const T = Math.max(...idx.map((i) => batch[i]!.tgt.length));
    const src = new Int32Array(B * S);
    const yIn = new Int32Array(B * T);
    const labels = new Int32Array(B * T).fill(IGNORE);
    for (const [r, i] of idx.entries()) {
      const ex = batch[i]!;
      for (let s = 0; s < S; s++) src[r * S + s] = checkId(ex.src[s], this.srcVocabSize, `example ${i}: src[${s}]`);
      yIn[r * T] = this.bosId;
      for (let t = 0; t < ex.tgt.length; t++) {
        const y = checkId(ex.tgt[t], this.tgtVocabSize, `example ${i}: tgt[${t}]`);
        labels[r * T + t] = y;
        if (t + 1 < T) yIn[r * T + t + 1] = y;
      }
    }
    return { src: new Tensor(src, [B, S], "i32"), yIn: new Tensor(yIn, [B, T], "i32"), labels, B, T };
  }

  /**
   * Rows grouped by source length (the encoder takes equal-length rows); the loss is the mean
   * token cross-entropy over the whole batch.
   */
  private passes(batch: readonly Seq2SeqExample[], scale: number, grad: boolean): BatchResult {
    if (batch.length === 0) throw new InputError("AttentionSeq2Seq: empty batch");
    const groups = new Map<number, number[]>();
    let count = 0;
    for (const [i, ex] of batch.entries()) {
      if (!ex || ex.src.length < 1) throw new InputError(`example ${i}: the source sequence is empty`);
      if (ex.tgt.length < 1) throw new InputError(`example ${i}: the target sequence is empty`);
      count += ex.tgt.length;
      const g = groups.get(ex.src.length);
      if (g) g.push(i);
      else groups.set(ex.src.length, [i]);
    }
    let loss = 0;
    let correct = 0;
    const V = this.tgtVocabSize;
    for (const idx of groups.values()) {
      const { src, yIn, labels, B, T } = this.tensorsOf(batch, idx);
      const logits = this.forward(src, yIn);
      const ce = crossEntropy(logits.reshape([B * T, V]), new Tensor(labels, [B * T], "i32"), {
        reduction: "sum",
        scale: scale / count,
        ignoreIndex: IGNORE,
        runtime: this.rt,
      });
      loss += ce.loss;
      if (grad) this.backward(ce.grad.reshape([B, T, V]));
      const best = argmaxRows(logits.data, B * T, V);
      for (let i = 0; i < labels.length; i++) if (labels[i] === best[i]) correct++;
    }
    return { loss: loss / count, count, correct };
  }

  /** Forward + backward of a batch (teacher forcing): adds `scale · ∂loss/∂θ` into the gradients. */
  lossAndGrad(batch: readonly Seq2SeqExample[], scale: number): BatchResult {
    const was = this.training;
    if (!was) this.train();
    try {
      return this.passes(batch, scale, true);
    } catch (e) {
      if (was) this.train(); // drop the records of the failed pass
      throw e;
    } finally {
      if (!was) {
        this.eval();
        this.stale = true; // an optimizer step follows
      }
    }
  }

  /** Teacher-forced loss and token accuracy of a batch (inference path, no gradients). */
  evaluate(batch: readonly Seq2SeqExample[]): BatchResult {
    const was = this.training;
    if (was) this.eval();
    try {
      return this.passes(batch, 0, false);
    } finally {
      if (was) this.train();
    }
  }

  /**
   * Greedy decoding of `srcIds [B, S]` (i32, equal-length rows): feed back the argmax (first index
   * on ties) for up to `maxNewTokens` steps; a row stops at EOS (included in its ids). Returns the
   * ids and each row's attention weights.
   */
  greedy(srcIds: Tensor, opts: { maxNewTokens: number; eosId?: number }): GreedyResult {
    this.life.check("AttentionSeq2Seq");
    const N = opts.maxNewTokens;
    if (!Number.isInteger(N) || N < 0) throw new InputError(`maxNewTokens must be an integer ≥ 0, got ${N}`);
    if (srcIds.dtype !== "i32" || srcIds.ndim !== 2 || srcIds.shape[1]! < 1)
      throw new ShapeError(`src_ids must be i32 [B, S ≥ 1], got ${srcIds.dtype} ${fmtShape(srcIds.shape)}`);
    const was = this.training;
    if (was) this.eval();
    try {
      return this.decode(srcIds, N, opts.eosId ?? this.eosId);
    } finally {
      if (was) this.train();
    }
  }

  private decode(srcIds: Tensor, N: number, eos: number): GreedyResult {
    const [B, S] = srcIds.shape as [number, number];
    const H = this.hiddenSize;
    const V = this.tgtVocabSize;
    this.fresh();
    const enc = this.encoder.forward(this.encEmbedding.forward(srcIds));
    const e = enc.output.data;
    const k = this.attention.forward(enc.output).data;
    let state = { h: enc.h, c: enc.c };
    const ids: number[][] = Array.from({ length: B }, () => []);
    const rows: Float32Array[][] = Array.from({ length: B }, () => []);
    const done = new Array<boolean>(B).fill(false);
    let y: Int32Array = new Int32Array(B).fill(this.bosId);
    for (let t = 0; t < N && !done.every(Boolean); t++) {
      const r = this.decoder.step(this.decEmbedding.forward(new Tensor(y, [B], "i32")), state);
      state = { h: r.h, c: r.c };
      const d = r.output.data;
      const { a, ctx } = attend(d, k, e, B, 1, S, H);
      const ht = tanhInPlace(this.concat.forward(new Tensor(concatRows(ctx, d, B, H), [B, 2 * H], "f32")).data);
      y = argmaxRows(this.out.forward(new Tensor(ht, [B, H], "f32")).data, B, V);
      for (let b = 0; b < B; b++) {
        if (done[b]) continue;
        ids[b]!.push(y[b]!);
        rows[b]!.push(a.slice(b * S, (b + 1) * S));
        if (y[b] === eos) done[b] = true;
      }
    }
    const attention = rows.map((rs) => {
      const m = new Float32Array(rs.length * S);
      for (const [i, row] of rs.entries()) m.set(row, i * S);
      return new Tensor(m, [rs.length, S], "f32");
    });
    return { ids, attention };
  }

  /** Source text → ids with the character vocabulary (lower-cased first if the vocabulary says so). */
  encodeText(text: string): { ids: Int32Array; tokens: string[] } {
    const v = this.needVocab();
    if (typeof text !== "string" || text.length === 0) throw new InputError("translate: the text is empty");
    const chars = [...(v.lowercase ? text.toLowerCase() : text)];
    const index = new Map(v.src.map((c, i) => [c, i]));
    const unk = index.get(v.unkToken ?? "<unk>");
    const ids = Int32Array.from(chars, (c, i) => {
      const id = index.get(c) ?? unk;
      if (id === undefined)
        throw new InputError(`translate: character ${JSON.stringify(c)} at index ${i} is not in the vocabulary`);
      return id;
    });
    return { ids, tokens: chars };
  }

  /** Greedy translation of one text with the character vocabularies, and its attention heatmap. */
  translate(text: string, opts: { maxNewTokens?: number } = {}): TranslateResult {
    const v = this.needVocab();
    const { ids: src, tokens } = this.encodeText(text);
    const r = this.greedy(new Tensor(src, [1, src.length], "i32"), {
      maxNewTokens: opts.maxNewTokens ?? this.maxTargetLength,
    });
    const ids = r.ids[0]!;
    const targetTokens = ids.map((i) => v.tgt[i]!);
    const body = ids.at(-1) === this.eosId ? targetTokens.slice(0, -1) : targetTokens;
    return { text: body.join(""), ids, sourceTokens: tokens, targetTokens, attention: r.attention[0]! };
  }

  private needVocab(): Seq2SeqVocab {
    this.life.check("AttentionSeq2Seq");
    if (!this.vocab)
      throw new InputError(
        "translate: the model has no vocabulary (load one with a config that has src_vocab and tgt_vocab, or call setVocab)",
      );
    return this.vocab;
  }

  /** The `config.json` object of this model (vocabularies included when set). */
  config(): AttentionSeq2SeqConfig {
    const c: AttentionSeq2SeqConfig = {
      architectures: ["AttentionSeq2Seq"],
      model_type: "lstm_attention_seq2seq",
      cell: "lstm",
      attention: "luong_general",
      src_vocab_size: this.srcVocabSize,
      tgt_vocab_size: this.tgtVocabSize,
      embed_dim: this.opts.embedDim,
      hidden_size: this.hiddenSize,
      bos_token_id: this.bosId,
      eos_token_id: this.eosId,
      max_target_length: this.maxTargetLength,
    };
    if (this.vocab) {
      c.src_vocab = this.vocab.src;
      c.tgt_vocab = this.vocab.tgt;
      c.lowercase = this.vocab.lowercase ?? false;
      c.unk_token = this.vocab.unkToken ?? "<unk>";
    }
    return c;
  }

  /** The current weights by state-dict name (copies). */
  stateDict(): Map<string, Tensor<"f32">> {
    const out = new Map<string, Tensor<"f32">>();
    const shapes = new Map<string, number[]>();
    const V = { enc: this.srcVocabSize, dec: this.tgtVocabSize };
    const { embedDim: E } = this.opts;
    const H = this.hiddenSize;
    for (const [p, Vp] of [
      ["encoder", V.enc],
      ["decoder", V.dec],
    ] as const) {
      shapes.set(`${p}.embedding.weight`, [Vp, E]);
      shapes.set(`${p}.lstm.weight_ih_l0`, [4 * H, E]);
      shapes.set(`${p}.lstm.weight_hh_l0`, [4 * H, H]);
    }
    shapes.set("decoder.attention.weight", [H, H]);
    shapes.set("decoder.concat.weight", [H, 2 * H]);
    shapes.set("decoder.out.weight", [V.dec, H]);
    for (const p of this.parameters())
      out.set(p.name, new Tensor(this.rt.heap.f32(p.ptr, p.size).slice(), shapes.get(p.name) ?? [p.size], "f32"));
    return out;
  }

  /** `{ config, weights }`: `config.json` and `model.safetensors` bytes (F32, or F16 with `dtype`). */
  save(o: { dtype?: "F32" | "F16" } = {}): { config: AttentionSeq2SeqConfig; weights: Uint8Array } {
    return {
      config: this.config(),
      weights: writeSafetensors(this.stateDict(), { format: "pt" }, { floatDtype: o.dtype ?? "F32" }),
    };
  }

  /** Node: write `config.json` and `model.safetensors` into `dir` (created if missing). */
  async saveTo(dir: string, o: { dtype?: "F32" | "F16" } = {}): Promise<void> {
    const { config, weights } = this.save(o);
    const fs = (await import(/* @vite-ignore */ "node:fs/promises" as string)) as typeof import("node:fs/promises");
    const path = (await import(/* @vite-ignore */ "node:path" as string)) as typeof import("node:path");
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
    await fs.writeFile(path.join(dir, "model.safetensors"), weights);
  }

  /** Free the wasm memory of the model's module tree; later calls throw a `DisposedError`. */
  dispose(): void {
    this.saved.length = 0;
    this.life.dispose();
  }
}

function expectDims(t: Tensor, shape: number[], what: string): void {
  if (!(t instanceof Tensor) || t.dtype !== "f32" || t.ndim !== shape.length || t.shape.some((d, i) => d !== shape[i]))
    throw new ShapeError(
      `${what}: expected f32 ${fmtShape(shape)}, got ${t instanceof Tensor ? `${t.dtype} ${fmtShape(t.shape)}` : typeof t}`,
    );
}

function checkId(v: number | undefined, n: number, what: string): number {
  if (!Number.isInteger(v) || v! < 0 || v! >= n) throw new InputError(`${what}: id ${String(v)} is outside [0, ${n})`);
  return v!;
}

/** Validate a `config.json` object (ConfigErrors name the field). */
function parseConfig(raw: unknown): AttentionSeq2SeqConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new ConfigError("config.json must be a JSON object");
  const c = raw as Record<string, unknown>;
  if (c.model_type !== "lstm_attention_seq2seq")
    throw new ConfigError(`expected "lstm_attention_seq2seq", got ${JSON.stringify(c.model_type)}`, "model_type");
  for (const n of ["src_vocab_size", "tgt_vocab_size", "embed_dim", "hidden_size"]) posInt(c[n], n);
  for (const n of ["bos_token_id", "eos_token_id"]) posInt(c[n], n, 0);
  if (c.max_target_length !== undefined) posInt(c.max_target_length, "max_target_length");
  for (const n of ["src_vocab", "tgt_vocab"]) {
    const v = c[n];
    if (v !== undefined && (!Array.isArray(v) || v.some((x) => typeof x !== "string")))
      throw new ConfigError("expected an array of strings", n);
  }
  return c as unknown as AttentionSeq2SeqConfig;
}
