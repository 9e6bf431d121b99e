/**
 * A sequence-to-sequence translation model: the PyTorch translation tutorial's
 * `Seq2SeqTransformer` (FORMAT.md §6.10), with greedy decoding and beam search.
 *
 *   embed(ids) = tok_emb[ids] · √d + PE[0:len]
 *   memory     = transformer.encoder(embed_src(src), src_key_padding_mask)         (incl. encoder.norm)
 *   logits     = generator(transformer.decoder(embed_tgt(ys), memory, causal tgt mask,
 *                                              memory_key_padding_mask = src_key_padding_mask))
 *
 * State-dict names: `src_tok_emb.embedding.weight [Vs, d]`, `tgt_tok_emb.embedding.weight [Vt, d]`,
 * `transformer.*` (nn.Transformer), `generator.weight [Vt, d]`, `generator.bias [Vt]`.
 *
 * Training: in training mode `forward` runs the layers' training forwards (embeddings, Transformer,
 * generator) and `backward(dLogits)` goes back through them, the embeddings' gradient scaled by √d
 * (the positional table is a constant). Decoding (`greedy`, `beamSearch`) is for eval mode.
 */
import { ConfigError, InputError, type Runtime, ShapeError, Tensor } from "@wasmformer/core";
import { type AttnMaskPtrs, NO_MASK, prepareMasks, putKeyPaddingMask } from "./attention.js";
import type { Seq2SeqExample } from "./attention-seq2seq.js";
import { Embedding } from "./embedding.js";
import type { BatchResult, Trainable } from "./fit.js";
import { Linear } from "./linear.js";
import { crossEntropy } from "./losses.js";
import { Module } from "./module.js";
import { SinusoidalPositionalEncoding } from "./positional-encoding.js";
import type { WeightScope } from "./state-dict.js";
import {
  type DecoderLayerCache,
  type DecoderWeights,
  reorderCaches,
  Transformer,
  type TransformerOptions,
} from "./transformer.js";
import { fmtShape, type ModuleLife, readF32, scratch } from "./util.js";

export interface Seq2SeqTransformerOptions extends TransformerOptions {
  srcVocabSize: number;
  tgtVocabSize: number;
  /** default 1 */
  bosId?: number;
  /** default 0 */
  padId?: number;
  /** sinusoidal table base, default 10000 */
  peBase?: number;
}

export interface BeamSearchOptions {
  beamSize?: number;
  maxNewTokens: number;
  /** a hypothesis ends when it emits this token (kept in its ids); none: every beam runs maxNewTokens */
  eosId?: number;
  /** score = logProb / length^lengthPenalty (length = generated tokens); default 1 */
  lengthPenalty?: number;
  srcKeyPaddingMask?: Tensor;
}

export interface Hypothesis {
  /** generated ids, BOS not included (the EOS id included when it ended one) */
  ids: number[];
  /** sum of the log-probabilities of the generated ids */
  logProb: number;
  /** length-normalised score */
  score: number;
  finished: boolean;
}

export interface Seq2SeqForwardOptions {
  srcKeyPaddingMask?: Tensor | undefined;
  tgtKeyPaddingMask?: Tensor | undefined;
}

/** `true` where `ids == padId` (a BOOL key padding mask of the same shape). */
export function paddingMask(ids: Tensor, padId = 0): Tensor<"bool"> {
  const m = new Uint8Array(ids.size);
  for (let i = 0; i < ids.size; i++) m[i] = ids.data[i] === padId ? 1 : 0;
  return new Tensor(m, ids.shape, "bool");
}

function checkIds(t: Tensor, what: string): void {
  if (t.dtype !== "i32") throw new ShapeError(`${what} must be i32 token ids, got ${t.dtype} ${fmtShape(t.shape)}`);
  if (t.ndim !== 2) throw new ShapeError(`${what} has shape ${fmtShape(t.shape)}, expected [B, T]`);
}

export class Seq2SeqTransformer extends Module implements Trainable<Seq2SeqExample> {
  readonly rt: Runtime;
  protected readonly life: ModuleLife;
  /** Training mode: the batch dims of each forward not yet backpropagated. */
  private readonly saved: { B: number; S: number; T: number }[] = [];
  readonly srcTokEmb: Embedding;
  readonly tgtTokEmb: Embedding;
  readonly transformer: Transformer;
  readonly generator: Linear;
  readonly pe: SinusoidalPositionalEncoding;
  readonly dModel: number;
  readonly nhead: number;
  readonly bosId: number;
  readonly padId: number;
  readonly tgtVocabSize: number;

  constructor(scope: WeightScope, opts: Seq2SeqTransformerOptions) {
    const d = opts.dModel;
    for (const [v, f] of [
      [opts.srcVocabSize, "src_vocab_size"],
      [opts.tgtVocabSize, "tgt_vocab_size"],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) throw new ConfigError(`expected a positive integer, got ${v}`, f);
    }
    super();
    this.rt = scope.rt;
    this.life = scope.life;
    this.dModel = d;
    this.nhead = opts.nhead;
    this.bosId = opts.bosId ?? 1;
    this.padId = opts.padId ?? 0;
    this.tgtVocabSize = opts.tgtVocabSize;
    if (!Number.isInteger(this.bosId) || this.bosId < 0 || this.bosId >= opts.tgtVocabSize) {
      throw new ConfigError(`must be an id in [0, ${opts.tgtVocabSize}), got ${this.bosId}`, "bos_id");
    }
    this.srcTokEmb = new Embedding(scope.pp("src_tok_emb").pp("embedding"), opts.srcVocabSize, d);
    this.tgtTokEmb = new Embedding(scope.pp("tgt_tok_emb").pp("embedding"), opts.tgtVocabSize, d);
    this.transformer = new Transformer(scope.pp("transformer"), opts);
    this.generator = new Linear(scope.pp("generator"), d, opts.tgtVocabSize);
    this.pe = new SinusoidalPositionalEncoding(d, opts.peBase ?? 10000, this.rt);
  }

  /** Pointer form: `out [B, T, d] = emb[ids] · √d + PE[offset : offset+T]`. */
  embed(emb: Embedding, ids: number, B: number, T: number, out: number, what: string, offset = 0): void {
    this.life.check("Seq2SeqTransformer");
    emb.run(ids, B * T, out, what);
    this.rt.k.scale(out, out, B * T * this.dModel, Math.sqrt(this.dModel), 0);
    this.pe.addTo(out, B, T, offset);
  }

  /**
   * Pointer form of one incremental decoding step: the logits `[B, Vt]` for the tokens `ids [B]` at
   * position `pos`, through the decoder's KV caches (`transformer.decoder.createCache`).
   */
  decodeStep(
    ids: number,
    B: number,
    pos: number,
    caches: readonly DecoderLayerCache[],
    memKpm: number,
    logits: number,
  ): void {
    this.life.check("Seq2SeqTransformer");
    const { rt, dModel: d } = this;
    const m = rt.heap.mark();
    const x = rt.heap.allocF32(B * d);
    const h = rt.heap.allocF32(B * d);
    this.embed(this.tgtTokEmb, ids, B, 1, x, "tgt_ids", pos);
    this.transformer.decoder.step(x, pos, caches, B, { ...NO_MASK, kpm: memKpm }, h);
    this.generator.run(h, B, logits);
    rt.heap.release(m);
  }

  /** Pointer form: encode `src [B, S]` ids into `memory [B, S, d]`. */
  encodeRun(
    src: number,
    B: number,
    S: number,
    masks: AttnMaskPtrs,
    memory: number,
    weights: readonly number[] = [],
  ): void {
    this.life.check("Seq2SeqTransformer");
    const m = this.rt.heap.mark();
    const x = this.rt.heap.allocF32(B * S * this.dModel);
    this.embed(this.srcTokEmb, src, B, S, x, "src_ids");
    this.transformer.encoder.run(x, B, S, masks, memory, weights);
    this.rt.heap.release(m);
  }

  /**
   * Pointer form: decode `ys [B, T]` against `memory [B, S, d]` with the causal target mask and write
   * the logits of the last `lastRows` positions of every row: `logits [B, lastRows, Vt]`.
   */
  decodeRun(
    ys: number,
    B: number,
    T: number,
    memory: number,
    S: number,
    tgtKpm: number,
    memKpm: number,
    logits: number,
    lastRows = T,
    selfWeights: readonly number[] = [],
    crossWeights: readonly number[] = [],
  ): void {
    this.life.check("Seq2SeqTransformer");
    const { rt, dModel: d } = this;
    const m = rt.heap.mark();
    const x = rt.heap.allocF32(B * T * d);
    this.embed(this.tgtTokEmb, ys, B, T, x, "tgt_ids");
    const h = rt.heap.allocF32(B * T * d);
    const masks = {
      tgt: { ...NO_MASK, kpm: tgtKpm, causal: 0 },
      memory: { ...NO_MASK, kpm: memKpm },
    };
    this.transformer.decoder.run(x, memory, B, T, S, masks, h, selfWeights, crossWeights);
    if (lastRows === T) this.generator.run(h, B * T, logits);
    else {
      for (let b = 0; b < B; b++) {
        const row = h + (b * T + T - lastRows) * d * 4;
        this.generator.run(row, lastRows, logits + b * lastRows * this.tgtVocabSize * 4);
      }
    }
    rt.heap.release(m);
  }

  private putIds(ids: Tensor): number {
    return this.rt.heap.put(ids.data as Int32Array);
  }

  /** Encoder output `[B, S, d]` for `srcIds [B, S]` (i32). */
  encode(srcIds: Tensor, opts: { srcKeyPaddingMask?: Tensor } = {}): Tensor<"f32"> {
    this.life.check("Seq2SeqTransformer");
    checkIds(srcIds, "src_ids");
    const [B, S] = srcIds.shape;
    return scratch(this.rt, () => {
      const masks = prepareMasks(this.rt, { keyPaddingMask: opts.srcKeyPaddingMask }, B, this.nhead, S, S, {
        attnMask: "src_mask",
        keyPaddingMask: "src_key_padding_mask",
      });
      const mem = this.rt.heap.allocF32(B * S * this.dModel);
      this.encodeRun(this.putIds(srcIds), B, S, masks, mem);
      return readF32(this.rt, mem, [B, S, this.dModel]);
    });
  }

  /** Teacher-forced logits `[B, T, Vt]` for `srcIds [B, S]`, `tgtIds [B, T]` (causal target mask). */
  /**
   * Teacher-forced logits `[B, T, Vt]`; with `needWeights: true`, `{ logits, weights }` holding every
   * attention layer's weights (encoder self-attention, decoder self- and cross-attention — the
   * source–target alignments).
   */
  forward(srcIds: Tensor, tgtIds: Tensor, opts?: Seq2SeqForwardOptions & { needWeights?: false }): Tensor<"f32">;
  forward(
    srcIds: Tensor,
    tgtIds: Tensor,
    opts: Seq2SeqForwardOptions & { needWeights: true },
  ): { logits: Tensor<"f32">; weights: { encoder: Tensor<"f32">[]; decoder: DecoderWeights[] } };
  forward(
    srcIds: Tensor,
    tgtIds: Tensor,
    opts: Seq2SeqForwardOptions & { needWeights?: boolean } = {},
  ): Tensor<"f32"> | { logits: Tensor<"f32">; weights: { encoder: Tensor<"f32">[]; decoder: DecoderWeights[] } } {
    this.life.check("Seq2SeqTransformer");
    checkIds(srcIds, "src_ids");
    checkIds(tgtIds, "tgt_ids");
    const [B, S] = srcIds.shape;
    const T = tgtIds.shape[1];
    if (tgtIds.shape[0] !== B)
      throw new ShapeError(
        `tgt_ids ${fmtShape(tgtIds.shape)} and src_ids ${fmtShape(srcIds.shape)} have different batch sizes`,
      );
    if (this.training) return this.trainForward(srcIds, tgtIds, opts);
    const rt = this.rt;
    return scratch(rt, () => {
      const skpm = opts.srcKeyPaddingMask
        ? putKeyPaddingMask(rt, opts.srcKeyPaddingMask, B, S, "src_key_padding_mask")
        : 0;
      const tkpm = opts.tgtKeyPaddingMask
        ? putKeyPaddingMask(rt, opts.tgtKeyPaddingMask, B, T, "tgt_key_padding_mask")
        : 0;
      const H = this.nhead;
      const need = !!opts.needWeights;
      const ew = need ? this.transformer.encoder.layers.map(() => rt.heap.allocF32(B * H * S * S)) : [];
      const sw = need ? this.transformer.decoder.layers.map(() => rt.heap.allocF32(B * H * T * T)) : [];
      const cw = need ? this.transformer.decoder.layers.map(() => rt.heap.allocF32(B * H * T * S)) : [];
      const mem = rt.heap.allocF32(B * S * this.dModel);
      this.encodeRun(this.putIds(srcIds), B, S, { ...NO_MASK, kpm: skpm }, mem, ew);
      const logits = rt.heap.allocF32(B * T * this.tgtVocabSize);
      this.decodeRun(this.putIds(tgtIds), B, T, mem, S, tkpm, skpm, logits, T, sw, cw);
      const out = readF32(rt, logits, [B, T, this.tgtVocabSize]);
      if (!need) return out;
      return {
        logits: out,
        weights: {
          encoder: ew.map((p) => readF32(rt, p, [B, H, S, S])),
          decoder: sw.map((p, i) => ({
            selfAttn: readF32(rt, p, [B, H, T, T]),
            crossAttn: readF32(rt, cw[i], [B, H, T, S]),
          })),
        },
      };
    });
  }

  /** `emb[ids] · √d + PE[0:L]` through the Embedding's training forward: `[B, L, d]`. */
  private embedTrain(emb: Embedding, ids: Tensor): Tensor<"f32"> {
    const [B, L] = ids.shape as [number, number];
    const d = this.dModel;
    const x = emb.forward(ids).data;
    const pe = this.pe.rows(L);
    const sc = Math.sqrt(d);
    for (let b = 0; b < B; b++) for (let i = 0; i < L * d; i++) x[b * L * d + i] = x[b * L * d + i]! * sc + pe[i]!;
    return new Tensor(x, [B, L, d], "f32");
  }

  /** The training forward: same logits as the inference path, the layers keeping their records. */
  private trainForward(
    srcIds: Tensor,
    tgtIds: Tensor,
    opts: Seq2SeqForwardOptions & { needWeights?: boolean },
  ): Tensor<"f32"> | { logits: Tensor<"f32">; weights: { encoder: Tensor<"f32">[]; decoder: DecoderWeights[] } } {
    const [B, S] = srcIds.shape as [number, number];
    const T = tgtIds.shape[1]!;
    // ids checked up front, so that a bad one leaves no half-recorded forward behind
    for (const [t, emb, what] of [
      [srcIds, this.srcTokEmb, "src_ids"],
      [tgtIds, this.tgtTokEmb, "tgt_ids"],
    ] as const) {
      const bad = (t.data as Int32Array).findIndex((v) => v < 0 || v >= emb.numEmbeddings);
      if (bad >= 0)
        throw new InputError(`${what}: id ${t.data[bad]} at flat position ${bad} is outside [0, ${emb.numEmbeddings})`);
    }
    const xs = this.embedTrain(this.srcTokEmb, srcIds);
    const xt = this.embedTrain(this.tgtTokEmb, tgtIds);
    const out = this.transformer.forward(xs, xt, {
      srcKeyPaddingMask: opts.srcKeyPaddingMask,
      tgtKeyPaddingMask: opts.tgtKeyPaddingMask,
      memoryKeyPaddingMask: opts.srcKeyPaddingMask,
      tgtIsCausal: true,
      needWeights: !!opts.needWeights,
    });
    const logits = this.generator.forward(out.output);
    this.saved.push({ B, S, T });
    return out.weights ? { logits, weights: out.weights } : logits;
  }

  protected override children(): Module[] {
    return [this.srcTokEmb, this.tgtTokEmb, this.transformer, this.generator];
  }

  protected override onMode(): void {
    this.saved.length = 0;
  }

  /**
   * Backward of the latest training forward: adds every parameter's gradient for `dLogits
   * [B, T, Vt]` (generator, Transformer, both embeddings).
   */
  backward(dLogits: Tensor): void {
    this.popRecord(this.saved, "Seq2SeqTransformer", (r) => {
      const want = [r.B, r.T, this.tgtVocabSize];
      if (dLogits.dtype !== "f32" || dLogits.ndim !== 3 || dLogits.shape.some((v, i) => v !== want[i]))
        throw new ShapeError(
          `Seq2SeqTransformer.backward dLogits: expected f32 ${fmtShape(want)}, got ${dLogits.dtype} ${fmtShape(dLogits.shape)}`,
        );
    });
    const { dsrc, dtgt } = this.transformer.backward(this.generator.backward(dLogits));
    const sc = Math.sqrt(this.dModel);
    const scaled = (t: Tensor<"f32">) =>
      new Tensor(
        Float32Array.from(t.data, (v) => v * sc),
        t.shape,
        "f32",
      );
    this.tgtTokEmb.backward(scaled(dtgt));
    this.srcTokEmb.backward(scaled(dsrc));
  }

  get runtime(): Runtime {
    return this.rt;
  }

  /**
   * A batch of `{ src, tgt }` pairs (target ids ending with EOS) as padded tensors: sources padded
   * with `padId` (and masked), decoder inputs `[BOS, tgt without its last id]`, labels padded with
   * −100.
   */
  private batchTensors(batch: readonly Seq2SeqExample[]) {
    if (batch.length === 0) throw new InputError("Seq2SeqTransformer: empty batch");
    const B = batch.length;
    const S = Math.max(...batch.map((e) => e.src.length));
    const T = Math.max(...batch.map((e) => e.tgt.length));
    const src = new Int32Array(B * S).fill(this.padId);
    const yIn = new Int32Array(B * T).fill(this.padId);
    const labels = new Int32Array(B * T).fill(-100);
    for (const [b, e] of batch.entries()) {
      if (e.src.length < 1 || e.tgt.length < 1)
        throw new InputError(`example ${b}: the ${e.src.length < 1 ? "source" : "target"} sequence is empty`);
      for (let i = 0; i < e.src.length; i++) src[b * S + i] = e.src[i]!;
      yIn[b * T] = this.bosId;
      for (let t = 0; t < e.tgt.length; t++) {
        const y = e.tgt[t]!;
        if (!Number.isInteger(y) || y < 0 || y >= this.tgtVocabSize)
          throw new InputError(`example ${b}: tgt[${t}]: id ${y} is outside [0, ${this.tgtVocabSize})`);
        labels[b * T + t] = y;
        if (t + 1 < T) yIn[b * T + t + 1] = y;
      }
    }
    const kpm = new Uint8Array(B * S);
    for (const [b, e] of batch.entries()) kpm.fill(1, b * S + e.src.length, (b + 1) * S);
    return {
      src: new Tensor(src, [B, S], "i32"),
      yIn: new Tensor(yIn, [B, T], "i32"),
      kpm: new Tensor(kpm, [B, S], "bool"),
      labels: new Tensor(labels, [B * T], "i32"),
      B,
      T,
    };
  }

  private batchLoss(batch: readonly Seq2SeqExample[], scale: number, grad: boolean): BatchResult {
    const { src, yIn, kpm, labels, B, T } = this.batchTensors(batch);
    const V = this.tgtVocabSize;
    const logits = this.forward(src, yIn, { srcKeyPaddingMask: kpm });
    const ce = crossEntropy(logits.reshape([B * T, V]), labels, { scale, runtime: this.rt });
    if (grad) this.backward(ce.grad.reshape([B, T, V]));
    let count = 0;
    let correct = 0;
    for (let r = 0; r < B * T; r++) {
      const y = labels.data[r]!;
      if (y === -100) continue;
      count++;
      let best = 0;
      for (let v = 1; v < V; v++) if (logits.data[r * V + v]! > logits.data[r * V + best]!) best = v;
      if (best === y) correct++;
    }
    return { loss: ce.loss, count, correct };
  }

  /** Forward + backward of a batch (teacher forcing, mean token cross-entropy): adds `scale · ∂loss/∂θ`. */
  lossAndGrad(batch: readonly Seq2SeqExample[], scale: number): BatchResult {
    const was = this.training;
    if (!was) this.train();
    try {
      return this.batchLoss(batch, scale, true);
    } catch (e) {
      if (was) this.train(); // drop the records of the failed pass
      throw e;
    } finally {
      if (!was) this.eval();
    }
  }

  /** Teacher-forced loss and token accuracy of a batch (inference path, no gradients). */
  evaluate(batch: readonly Seq2SeqExample[]): BatchResult {
    const was = this.training;
    if (was) this.eval();
    try {
      return this.batchLoss(batch, 0, false);
    } finally {
      if (was) this.train();
    }
  }

  /**
   * Greedy decoding (FORMAT.md §6.10): `ys = [bos]`; `maxNewTokens` times, decode `ys` (no target
   * padding), take the logits of the last position, append their argmax (first index on ties).
   * No early stop. Returns the ids `[B, N]` (BOS not included) and the logits each was chosen from
   * `[B, N, Vt]`.
   */
  greedy(
    srcIds: Tensor,
    opts: {
      maxNewTokens: number;
      srcKeyPaddingMask?: Tensor;
      /** default true: incremental decoding with a KV cache */
      useCache?: boolean;
    },
  ): { ids: Tensor<"i32">; stepLogits: Tensor<"f32"> } {
    this.life.check("Seq2SeqTransformer");
    checkIds(srcIds, "src_ids");
    const N = opts.maxNewTokens;
    if (!Number.isInteger(N) || N < 0) throw new InputError(`maxNewTokens must be an integer ≥ 0, got ${N}`);
    const [B, S] = srcIds.shape;
    const V = this.tgtVocabSize;
    const rt = this.rt;
    const ids = new Int32Array(B * N);
    const stepLogits = new Float32Array(B * N * V);
    scratch(rt, () => {
      const skpm = opts.srcKeyPaddingMask
        ? putKeyPaddingMask(rt, opts.srcKeyPaddingMask, B, S, "src_key_padding_mask")
        : 0;
      const mem = rt.heap.allocF32(B * S * this.dModel);
      this.encodeRun(this.putIds(srcIds), B, S, { ...NO_MASK, kpm: skpm }, mem);
      const logits = rt.heap.allocF32(B * V);
      const caches = opts.useCache === false ? [] : this.transformer.decoder.createCache(mem, B, S, N);
      const ys = new Int32Array(B * (N + 1));
      const last = new Int32Array(B).fill(this.bosId);
      for (let t = 0; t < N; t++) {
        const m = rt.heap.mark();
        if (opts.useCache === false) {
          // the definition: decode the whole prefix again, keep the last position
          const T = t + 1;
          for (let b = 0; b < B; b++) {
            ys[b * T] = this.bosId;
            for (let j = 0; j < t; j++) ys[b * T + 1 + j] = ids[b * N + j];
          }
          this.decodeRun(rt.heap.put(ys.subarray(0, B * T)), B, T, mem, S, 0, skpm, logits, 1);
        } else {
          this.decodeStep(rt.heap.put(last), B, t, caches, skpm, logits);
        }
        rt.heap.release(m);
        const l = rt.heap.f32(logits, B * V);
        for (let b = 0; b < B; b++) {
          let best = 0;
          for (let v = 1; v < V; v++) if (l[b * V + v] > l[b * V + best]) best = v;
          ids[b * N + t] = best;
          last[b] = best;
          stepLogits.set(l.subarray(b * V, b * V + V), (b * N + t) * V);
        }
      }
    });
    return { ids: new Tensor(ids, [B, N], "i32"), stepLogits: new Tensor(stepLogits, [B, N, V], "f32") };
  }

  /**
   * Beam search with length-normalised scores (`logProb / length^lengthPenalty`), one search per
   * batch row. Each step decodes all live beams of a row as one batch. A hypothesis that emits
   * `eosId` is finished; the search stops when no live beam can still beat the `beamSize`-th
   * finished one (an exact bound: log-probabilities only fall), or after `maxNewTokens` steps.
   * Returns, per row, the best `beamSize` hypotheses, best first.
   */
  beamSearch(srcIds: Tensor, opts: BeamSearchOptions): Hypothesis[][] {
    this.life.check("Seq2SeqTransformer");
    checkIds(srcIds, "src_ids");
    const K = opts.beamSize ?? 4;
    const N = opts.maxNewTokens;
    const alpha = opts.lengthPenalty ?? 1;
    if (!Number.isInteger(K) || K < 1) throw new InputError(`beamSize must be an integer ≥ 1, got ${K}`);
    if (!Number.isInteger(N) || N < 1) throw new InputError(`maxNewTokens must be an integer ≥ 1, got ${N}`);
    if (!(alpha >= 0)) throw new InputError(`lengthPenalty must be ≥ 0, got ${alpha}`);
    const eos = opts.eosId;
    if (eos !== undefined && (!Number.isInteger(eos) || eos < 0 || eos >= this.tgtVocabSize)) {
      throw new InputError(`eosId must be an id in [0, ${this.tgtVocabSize}), got ${eos}`);
    }
    const [B, S] = srcIds.shape;
    const V = this.tgtVocabSize;
    const d = this.dModel;
    const rt = this.rt;
    const norm = (lp: number, len: number) => lp / len ** alpha;
    return scratch(rt, () => {
      const skpm = opts.srcKeyPaddingMask
        ? putKeyPaddingMask(rt, opts.srcKeyPaddingMask, B, S, "src_key_padding_mask")
        : 0;
      const mem = rt.heap.allocF32(B * S * d);
      this.encodeRun(this.putIds(srcIds), B, S, { ...NO_MASK, kpm: skpm }, mem);
      // room for K beams of one row: memory and key padding replicated
      const memK = rt.heap.allocF32(K * S * d);
      const kpmK = skpm ? rt.heap.alloc(K * S) : 0;
      const logits = rt.heap.allocF32(K * V);
      const results: Hypothesis[][] = [];
      const tmp = rt.heap.allocF32(K * N * d);
      for (let b = 0; b < B; b++) {
        for (let i = 0; i < K; i++) {
          rt.k.copy2d(mem + b * S * d * 4, d, memK + i * S * d * 4, d, S, d);
          if (skpm) rt.heap.u8(kpmK + i * S, S).set(rt.heap.u8(skpm + b * S, S));
        }
        const rowMark = rt.heap.mark();
        const caches = this.transformer.decoder.createCache(memK, K, S, N);
        let beams: { ids: number[]; logProb: number }[] = [{ ids: [], logProb: 0 }];
        const finished: Hypothesis[] = [];
        for (let t = 0; t < N && beams.length > 0; t++) {
          const nb = beams.length;
          const last = Int32Array.from(beams, (bm) => (t === 0 ? this.bosId : bm.ids[t - 1]));
          const m = rt.heap.mark();
          this.decodeStep(rt.heap.put(last), nb, t, caches, kpmK, logits);
          rt.heap.release(m);
          rt.k.logSoftmax(logits, logits, nb, V, V);
          const lp = rt.heap.f32(logits, nb * V);
          // at most nb candidates end in EOS before K survive, so only the best nb + K of the nb·V
          // (by log-probability, then beam, then token) are ever read: keep those, sorted
          const cand = topCandidates(lp, beams, nb, V, nb + K);
          const next: { ids: number[]; logProb: number }[] = [];
          const parents: number[] = [];
          for (const c of cand) {
            if (next.length === K) break;
            const ids = [...beams[c.beam].ids, c.tok];
            if (eos !== undefined && c.tok === eos) {
              finished.push({ ids, logProb: c.logProb, score: norm(c.logProb, ids.length), finished: true });
            } else {
              next.push({ ids, logProb: c.logProb });
              parents.push(c.beam);
            }
          }
          // the surviving beams inherit their parents' cached keys and values (positions 0..t)
          reorderCaches(rt, caches, parents, t + 1, d, tmp);
          beams = next;
          if (finished.length >= K && beams.length > 0) {
            finished.sort((p, q) => q.score - p.score);
            const kth = finished[K - 1].score;
            // a live beam's score can at best reach logProb / maxLen^alpha (logProb ≤ 0 only falls)
            const bound = Math.max(...beams.map((bm) => norm(bm.logProb, alpha > 0 ? N : bm.ids.length)));
            if (bound < kth) beams = [];
          }
        }
        rt.heap.release(rowMark);
        for (const bm of beams)
          finished.push({ ids: bm.ids, logProb: bm.logProb, score: norm(bm.logProb, bm.ids.length), finished: false });
        finished.sort((p, q) => q.score - p.score);
        results.push(finished.slice(0, K));
      }
      return results;
    });
  }

  /**
   * Free the wasm memory of the module tree this Seq2SeqTransformer was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.life.dispose();
  }
}

/**
 * The best `M` of the candidates `(beam i, token v, beams[i].logProb + lp[i·V + v])`, in the order
 * logProb descending, then beam, then token ascending (ties keep the scan order, which is that order).
 */
function topCandidates(
  lp: Float32Array,
  beams: readonly { logProb: number }[],
  nb: number,
  V: number,
  M: number,
): { beam: number; tok: number; logProb: number }[] {
  const top: { beam: number; tok: number; logProb: number }[] = [];
  for (let i = 0; i < nb; i++) {
    const base = beams[i].logProb;
    for (let v = 0; v < V; v++) {
      const logProb = base + lp[i * V + v];
      if (top.length === M && !(logProb > top[M - 1].logProb)) continue;
      // insert after every kept candidate that is at least as good (those came earlier in the scan)
      let j = top.length === M ? M - 1 : top.length;
      while (j > 0 && logProb > top[j - 1].logProb) j--;
      if (top.length === M) top.pop();
      top.splice(j, 0, { beam: i, tok: v, logProb });
    }
  }
  return top;
}
