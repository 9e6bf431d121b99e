/**
 * An RNN encoder–decoder (Sutskever et al. 2014; the PyTorch "seq2seq translation" tutorial's
 * `EncoderRNN`/`DecoderRNN` without attention), composed from `Embedding`, `GRU`/`LSTM`/`RNN` and
 * `Linear`:
 *
 *   encoder:  h_S = rnn_enc(embedding_enc(src))                          (final state only)
 *   decoder:  y_0 = bos;  h ← h_S;  each step: o, h = rnn_dec.step(embedding_dec(y_t), h)
 *             logits = out(o),  y_{t+1} = argmax logits
 *
 * State-dict names: `encoder.embedding.weight [Vs, E]`, `encoder.rnn.<weight_ih_l0 …>`,
 * `decoder.embedding.weight [Vt, E]`, `decoder.rnn.<…>`, `decoder.out.weight [Vt, H]`,
 * `decoder.out.bias [Vt]`. Encoder and decoder use the same cell type, hidden size and layer count
 * (the encoder's final state is the decoder's initial state); the encoder is unidirectional.
 */
import { ConfigError, InputError, ShapeError, Tensor } from "@wasmformer/core";
import { Embedding } from "./embedding.js";
import { Linear } from "./linear.js";
import { GRU, LSTM, RNN, type RNNState } from "./rnn.js";
import type { WeightScope } from "./state-dict.js";
import { fmtShape, type ModuleLife } from "./util.js";

export interface RNNSeq2SeqOptions {
  cell: "gru" | "lstm" | "rnn_tanh" | "rnn_relu";
  srcVocabSize: number;
  tgtVocabSize: number;
  embedDim: number;
  hiddenSize: number;
  /** default 1 */
  numLayers?: number;
  /** default 1 */
  bosId?: number;
}

type Cell = GRU | LSTM | RNN;

function makeCell(scope: WeightScope, o: RNNSeq2SeqOptions): Cell {
  const opts = { inputSize: o.embedDim, hiddenSize: o.hiddenSize, numLayers: o.numLayers ?? 1 };
  switch (o.cell) {
    case "gru":
      return new GRU(scope, opts);
    case "lstm":
      return new LSTM(scope, opts);
    case "rnn_tanh":
    case "rnn_relu":
      return new RNN(scope, { ...opts, nonlinearity: o.cell === "rnn_relu" ? "relu" : "tanh" });
    default:
      throw new ConfigError(`expected "gru", "lstm", "rnn_tanh" or "rnn_relu", got ${JSON.stringify(o.cell)}`, "cell");
  }
}

export class RNNSeq2Seq {
  private readonly life: ModuleLife;
  readonly encEmbedding: Embedding;
  readonly encRnn: Cell;
  readonly decEmbedding: Embedding;
  readonly decRnn: Cell;
  readonly out: Linear;
  readonly bosId: number;
  readonly tgtVocabSize: number;

  constructor(
    scope: WeightScope,
    readonly opts: RNNSeq2SeqOptions,
  ) {
    const enc = scope.pp("encoder");
    const dec = scope.pp("decoder");
    this.life = scope.life;
    this.encEmbedding = new Embedding(enc.pp("embedding"), opts.srcVocabSize, opts.embedDim);
    this.encRnn = makeCell(enc.pp("rnn"), opts);
    this.decEmbedding = new Embedding(dec.pp("embedding"), opts.tgtVocabSize, opts.embedDim);
    this.decRnn = makeCell(dec.pp("rnn"), opts);
    this.out = new Linear(dec.pp("out"), opts.hiddenSize, opts.tgtVocabSize);
    this.bosId = opts.bosId ?? 1;
    this.tgtVocabSize = opts.tgtVocabSize;
  }

  /** Encode `srcIds [B, S]` (i32, unpadded or equal-length rows): the encoder's final state. */
  encode(srcIds: Tensor): RNNState {
    this.life.check("RNNSeq2Seq");
    if (srcIds.dtype !== "i32" || srcIds.ndim !== 2)
      throw new ShapeError(`src_ids must be i32 [B, S], got ${srcIds.dtype} ${fmtShape(srcIds.shape)}`);
    const x = this.encEmbedding.forward(srcIds);
    const r = this.encRnn.forward(x);
    return r.c ? { h: r.h, c: r.c } : { h: r.h };
  }

  /** One decoder step: `ids [B]` and the state → logits `[B, Vt]` and the new state. */
  decodeStep(ids: Tensor, state: RNNState): { logits: Tensor<"f32">; state: RNNState } {
    this.life.check("RNNSeq2Seq");
    const x = this.decEmbedding.forward(ids);
    const r = this.decRnn.step(x, state);
    return { logits: this.out.forward(r.output), state: r.c ? { h: r.h, c: r.c } : { h: r.h } };
  }

  /**
   * Greedy decoding: feed back the argmax (first index on ties) for `maxNewTokens` steps; a row
   * stops at `eosId` (included in its ids). Returns the generated ids per row (BOS not included).
   */
  greedy(srcIds: Tensor, opts: { maxNewTokens: number; eosId?: number }): number[][] {
    this.life.check("RNNSeq2Seq");
    const N = opts.maxNewTokens;
    if (!Number.isInteger(N) || N < 0) throw new InputError(`maxNewTokens must be an integer ≥ 0, got ${N}`);
    const B = srcIds.shape[0];
    let state = this.encode(srcIds);
    const V = this.tgtVocabSize;
    const out: number[][] = Array.from({ length: B }, () => []);
    const done = new Array<boolean>(B).fill(false);
    let y = new Int32Array(B).fill(this.bosId);
    for (let t = 0; t < N && !done.every(Boolean); t++) {
      const step = this.decodeStep(new Tensor(y, [B], "i32"), state);
      state = step.state;
      const l = step.logits.data;
      const next = new Int32Array(B);
      for (let b = 0; b < B; b++) {
        let best = 0;
        for (let v = 1; v < V; v++) if (l[b * V + v] > l[b * V + best]) best = v;
        next[b] = best;
        if (!done[b]) {
          out[b].push(best);
          if (best === opts.eosId) done[b] = true;
        }
      }
      y = next;
    }
    return out;
  }

  /**
   * Free the wasm memory of the module tree this RNNSeq2Seq was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.life.dispose();
  }
}
