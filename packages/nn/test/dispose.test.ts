// dispose() on every module class: the runtime the load created goes back to core at once (the next
// model gets the same runtime and memory), a runtime passed in stays the caller's, a failed load
// gives its runtime back, and every later call on any module of the tree is a DisposedError.
import {
  createRuntime,
  DisposedError,
  init,
  type Runtime,
  releaseRuntime,
  Tensor,
  WeightsError,
} from "@wasmformer/core";
import { afterAll, describe, expect, it } from "vitest";
import { MultiheadAttention } from "../src/attention.js";
import { Embedding } from "../src/embedding.js";
import { LayerNorm } from "../src/layer-norm.js";
import { Linear } from "../src/linear.js";
import { LearnedPositionalEmbedding } from "../src/positional-encoding.js";
import { GRU, LSTM, RNN } from "../src/rnn.js";
import { RNNSeq2Seq } from "../src/rnn-seq2seq.js";
import { Seq2SeqTransformer } from "../src/seq2seq.js";
import { loadModule, tensorSource, type WeightScope } from "../src/state-dict.js";
import {
  Transformer,
  TransformerDecoder,
  TransformerDecoderLayer,
  TransformerEncoder,
  TransformerEncoderLayer,
} from "../src/transformer.js";
import { rng } from "./helpers.js";
import { DictBuilder } from "./weights.js";

const d = 4;
const F = 6;
const layer = { dModel: d, nhead: 2, dimFeedforward: F };
const ids = (rows: number[][]) => new Tensor(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length], "i32");
const x = (shape: number[], seed = 1) => rng(seed).tensor(shape);

interface Spec {
  name: string;
  weights: (wb: DictBuilder) => void;
  build: (s: WeightScope) => object;
  /** every public call, each returning something comparable */
  calls: ((m: never) => unknown)[];
}

const stack = (wb: DictBuilder, p: string, n: number, decoder: boolean) => {
  for (let i = 0; i < n; i++) wb.layer(`${p}layers.${i}.`, d, F, decoder);
  wb.norm(`${p}norm`, d);
};
const seq2seqWeights = (wb: DictBuilder) => {
  wb.add("src_tok_emb.embedding.weight", [7, d]).add("tgt_tok_emb.embedding.weight", [5, d]);
  stack(wb, "transformer.encoder.", 1, false);
  stack(wb, "transformer.decoder.", 1, true);
  wb.add("generator.weight", [5, d]).add("generator.bias", [5]);
};
const rnnSeq2SeqWeights = (wb: DictBuilder) => {
  wb.add("encoder.embedding.weight", [7, 3]).add("decoder.embedding.weight", [5, 3]);
  for (const part of ["encoder", "decoder"]) {
    const r = new DictBuilder(part.length).rnn(3, 3, d, 1, 1, true);
    for (const [k, v] of r.map) wb.map.set(`${part}.rnn.${k}`, v);
  }
  wb.add("decoder.out.weight", [5, d]).add("decoder.out.bias", [5]);
};

const SPECS: Spec[] = [
  {
    name: "Linear",
    weights: (wb) => wb.add("weight", [5, 3]).add("bias", [5]),
    build: (s) => new Linear(s, 3, 5),
    calls: [(m: Linear) => m.forward(x([2, 3]))],
  },
  {
    name: "Embedding",
    weights: (wb) => wb.add("weight", [6, 3]),
    build: (s) => new Embedding(s, 6, 3),
    calls: [(m: Embedding) => m.forward(ids([[1, 5, 0]]))],
  },
  {
    name: "LayerNorm",
    weights: (wb) => wb.add("weight", [3]).add("bias", [3]),
    build: (s) => new LayerNorm(s, 3),
    calls: [(m: LayerNorm) => m.forward(x([2, 3]))],
  },
  {
    name: "LearnedPositionalEmbedding",
    weights: (wb) => wb.add("weight", [8, 3]),
    build: (s) => new LearnedPositionalEmbedding(s, 8, 3),
    calls: [
      (m: LearnedPositionalEmbedding) => {
        const heap = m.rt.heap;
        const mark = heap.mark();
        const p = heap.put(new Float32Array(2 * 4 * 3));
        m.addTo(p, 2, 4);
        const out = heap.f32(p, 24).slice();
        heap.release(mark);
        return out;
      },
    ],
  },
  {
    name: "MultiheadAttention",
    weights: (wb) => wb.mha("", d),
    build: (s) => new MultiheadAttention(s, { embedDim: d, numHeads: 2 }),
    calls: [(m: MultiheadAttention) => m.forward(x([2, 3, d]), x([2, 5, d], 2), x([2, 5, d], 2))],
  },
  {
    name: "TransformerEncoderLayer",
    weights: (wb) => wb.layer("", d, F, false),
    build: (s) => new TransformerEncoderLayer(s, layer),
    calls: [(m: TransformerEncoderLayer) => m.forward(x([2, 3, d]))],
  },
  {
    name: "TransformerDecoderLayer",
    weights: (wb) => wb.layer("", d, F, true),
    build: (s) => new TransformerDecoderLayer(s, layer),
    calls: [(m: TransformerDecoderLayer) => m.forward(x([2, 3, d]), x([2, 4, d], 3))],
  },
  {
    name: "TransformerEncoder",
    weights: (wb) => stack(wb, "", 2, false),
    build: (s) => new TransformerEncoder(s, { ...layer, numLayers: 2, norm: true }),
    calls: [(m: TransformerEncoder) => m.forward(x([2, 3, d]))],
  },
  {
    name: "TransformerDecoder",
    weights: (wb) => stack(wb, "", 2, true),
    build: (s) => new TransformerDecoder(s, { ...layer, numLayers: 2, norm: true }),
    calls: [(m: TransformerDecoder) => m.forward(x([2, 3, d]), x([2, 4, d], 3))],
  },
  {
    name: "Transformer",
    weights: (wb) => {
      stack(wb, "encoder.", 1, false);
      stack(wb, "decoder.", 1, true);
    },
    build: (s) => new Transformer(s, { ...layer, numEncoderLayers: 1, numDecoderLayers: 1 }),
    calls: [(m: Transformer) => m.forward(x([2, 4, d]), x([2, 3, d], 3))],
  },
  {
    name: "Seq2SeqTransformer",
    weights: seq2seqWeights,
    build: (s) =>
      new Seq2SeqTransformer(s, {
        ...layer,
        numEncoderLayers: 1,
        numDecoderLayers: 1,
        srcVocabSize: 7,
        tgtVocabSize: 5,
      }),
    calls: [
      (m: Seq2SeqTransformer) => m.greedy(ids([[3, 4, 6]]), { maxNewTokens: 4 }),
      (m: Seq2SeqTransformer) => m.beamSearch(ids([[3, 4, 6]]), { maxNewTokens: 3, beamSize: 2, eosId: 2 }),
      (m: Seq2SeqTransformer) => m.encode(ids([[3, 4, 6]])),
      (m: Seq2SeqTransformer) => m.forward(ids([[3, 4, 6]]), ids([[1, 2]])),
    ],
  },
  ...(["RNN", "LSTM", "GRU"] as const).map(
    (name): Spec => ({
      name,
      weights: (wb) => wb.rnn(name === "LSTM" ? 4 : name === "GRU" ? 3 : 1, 3, d, 2, 1, true),
      build: (s) => {
        const o = { inputSize: 3, hiddenSize: d, numLayers: 2 };
        return name === "LSTM" ? new LSTM(s, o) : name === "GRU" ? new GRU(s, o) : new RNN(s, o);
      },
      calls: [(m: RNN) => m.forward(x([2, 5, 3])), (m: RNN) => m.step(x([2, 3]))],
    }),
  ),
  {
    name: "RNNSeq2Seq",
    weights: rnnSeq2SeqWeights,
    build: (s) => new RNNSeq2Seq(s, { cell: "gru", srcVocabSize: 7, tgtVocabSize: 5, embedDim: 3, hiddenSize: d }),
    calls: [
      (m: RNNSeq2Seq) => m.greedy(ids([[3, 4, 6]]), { maxNewTokens: 4 }),
      (m: RNNSeq2Seq) => m.encode(ids([[1, 2]])),
    ],
  },
];

/** The runtime holding a module's weights. */
const rtOf = (m: object): Runtime => (m instanceof RNNSeq2Seq ? m.out.rt : (m as { rt: Runtime }).rt);
const run = (s: Spec, m: object) => s.calls.map((c) => c(m as never));
const plain = (v: unknown): unknown =>
  v instanceof Tensor
    ? { shape: v.shape, data: Array.from(v.data) }
    : Array.isArray(v)
      ? v.map(plain)
      : v && typeof v === "object"
        ? Object.fromEntries(Object.entries(v).map(([k, w]) => [k, plain(w)]))
        : v;

afterAll(() => init({ backend: "auto" }));

describe.each(["ref", "auto"] as const)("dispose() on %s", (backend) => {
  for (const [i, s] of SPECS.entries()) {
    it(`${s.name}: frees its runtime for the next model; later calls are DisposedErrors naming it`, async () => {
      await init({ backend });
      const wb = new DictBuilder(100 + i);
      s.weights(wb);
      const load = (runtime?: Runtime) => loadModule(tensorSource(wb.map), s.build, runtime ? { runtime } : {});
      const m = load();
      const rt = rtOf(m);
      const want = plain(run(s, m));
      (m as { dispose(): void }).dispose();
      (m as { dispose(): void }).dispose(); // twice is fine
      for (const call of s.calls) {
        let err: unknown;
        try {
          call(m as never);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(DisposedError);
        expect((err as Error).message).toMatch(new RegExp(`^${s.name} has been disposed`));
      }
      // the next model is loaded into the same runtime, and computes the same
      const m2 = load();
      expect(rtOf(m2)).toBe(rt);
      expect(plain(run(s, m2))).toEqual(want);
      (m2 as { dispose(): void }).dispose();
      const next = createRuntime();
      expect(next).toBe(rt);
      // a runtime passed in is not released: the caller keeps it and can load into it again
      const m3 = load(next);
      (m3 as { dispose(): void }).dispose();
      expect(() => run(s, m3)).toThrow(DisposedError);
      expect(createRuntime()).not.toBe(next);
      const m4 = load(next);
      expect(plain(run(s, m4))).toEqual(want);
      releaseRuntime(next);
    });
  }

  it("disposing any module disposes the whole tree it was loaded with", async () => {
    await init({ backend });
    const wb = new DictBuilder(7);
    seq2seqWeights(wb);
    const m = loadModule(
      tensorSource(wb.map),
      SPECS.find((s) => s.name === "Seq2SeqTransformer")!.build,
    ) as Seq2SeqTransformer;
    m.transformer.encoder.layers[0]!.dispose();
    expect(() => m.greedy(ids([[1, 2]]), { maxNewTokens: 1 })).toThrow(/^Seq2SeqTransformer has been disposed/);
    expect(() => m.transformer.encoder.forward(x([1, 2, d]))).toThrow(/^TransformerEncoder has been disposed/);
    expect(() => m.generator.forward(x([1, d]))).toThrow(/^Linear has been disposed/);
    expect(() =>
      m.transformer.decoder.layers[0]!.multiheadAttn.forward(x([1, 2, d]), x([1, 2, d]), x([1, 2, d])),
    ).toThrow(/^MultiheadAttention has been disposed/);
  });

  it("a load that fails gives back the runtime it created", async () => {
    await init({ backend });
    const rt = createRuntime();
    releaseRuntime(rt);
    const wb = new DictBuilder(3).add("weight", [5, 3]); // no bias
    expect(() => loadModule(tensorSource(wb.map), (s) => new Linear(s, 3, 5))).toThrow(WeightsError);
    expect(createRuntime()).toBe(rt);
    releaseRuntime(rt);
  });
});
