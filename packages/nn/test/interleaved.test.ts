// One model used from several places at once. Every nn call is synchronous and keeps its state in
// per-call scratch or in values the caller holds (RNN states, decoder KV caches), so calls started
// from interleaved async tasks must give exactly the answers they give one after another.
import { Tensor } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { NO_MASK } from "../src/attention.js";
import { GRU, LSTM, type RNNState } from "../src/rnn.js";
import { Seq2SeqTransformer } from "../src/seq2seq.js";
import { loadModule, tensorSource } from "../src/state-dict.js";
import { backends, closeTo, rng } from "./helpers.js";
import { DictBuilder } from "./weights.js";

const bks = await backends();
const tick = () => new Promise<void>((r) => setTimeout(r, 0));
const ids = (rows: number[][]) => new Tensor(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length], "i32");
const plain = (v: unknown): unknown =>
  v instanceof Tensor
    ? { shape: v.shape, data: Array.from(v.data) }
    : Array.isArray(v)
      ? v.map(plain)
      : v && typeof v === "object"
        ? Object.fromEntries(Object.entries(v).map(([k, w]) => [k, plain(w)]))
        : v;

const d = 8;
function seq2seq(make: () => ReturnType<(typeof bks)[number]["make"]>) {
  const wb = new DictBuilder(5);
  wb.add("src_tok_emb.embedding.weight", [9, d], 0.4).add("tgt_tok_emb.embedding.weight", [6, d], 0.4);
  for (let i = 0; i < 2; i++) wb.layer(`transformer.encoder.layers.${i}.`, d, 12, false);
  for (let i = 0; i < 2; i++) wb.layer(`transformer.decoder.layers.${i}.`, d, 12, true);
  wb.norm("transformer.encoder.norm", d).norm("transformer.decoder.norm", d);
  wb.add("generator.weight", [6, d], 1.5).add("generator.bias", [6], 0.5);
  const opts = { dModel: d, nhead: 2, dimFeedforward: 12, numEncoderLayers: 2, numDecoderLayers: 2 };
  return loadModule(
    tensorSource(wb.map),
    (s) => new Seq2SeqTransformer(s, { ...opts, srcVocabSize: 9, tgtVocabSize: 6 }),
    { runtime: make() },
  );
}

describe.each(bks)("interleaved use of one model on $name", ({ make }) => {
  it("LSTM and GRU: streams stepped alternately from async tasks = each stream alone = forward()", async () => {
    for (const Cell of [LSTM, GRU]) {
      const wb = new DictBuilder(Cell === LSTM ? 1 : 2).rnn(Cell === LSTM ? 4 : 3, 3, 5, 2, 1, true);
      const net = loadModule(tensorSource(wb.map), (s) => new Cell(s, { inputSize: 3, hiddenSize: 5, numLayers: 2 }), {
        runtime: make(),
      });
      const T = 6;
      const xs = [rng(10).tensor([2, T, 3]), rng(11).tensor([1, T, 3]), rng(12).tensor([3, T, 3])];
      const stepOf = (x: Tensor, t: number) => {
        const [B] = x.shape;
        const row = new Float32Array(B! * 3);
        for (let b = 0; b < B!; b++)
          row.set(x.data.subarray((b * T + t) * 3, (b * T + t + 1) * 3) as Float32Array, b * 3);
        return new Tensor(row, [B!, 3]);
      };
      const alone = (x: Tensor) => {
        const outs: unknown[] = [];
        let st: RNNState | undefined;
        for (let t = 0; t < T; t++) {
          const r = net.step(stepOf(x, t), st);
          st = r.c ? { h: r.h, c: r.c } : { h: r.h };
          outs.push(plain(r.output));
        }
        return { outs, h: plain(st!.h) };
      };
      const want = xs.map(alone);
      const stream = async (x: Tensor, delay: number) => {
        const outs: unknown[] = [];
        let st: RNNState | undefined;
        for (let t = 0; t < T; t++) {
          for (let i = 0; i < delay; i++) await tick();
          const r = net.step(stepOf(x, t), st);
          st = r.c ? { h: r.h, c: r.c } : { h: r.h };
          outs.push(plain(r.output));
          // a whole-sequence call of the same network in between
          net.forward(xs[(t + delay) % xs.length]!);
        }
        return { outs, h: plain(st!.h) };
      };
      expect(await Promise.all(xs.map((x, i) => stream(x, i % 2)))).toEqual(want);
      // and the streamed final state is forward()'s (up to rounding: other GEMM paths)
      for (const [i, x] of xs.entries()) {
        const h = net.forward(x).h;
        expect(closeTo(h, (want[i]!.h as { data: number[] }).data, h.shape)).toBeUndefined();
      }
    }
  });

  it("Seq2SeqTransformer: greedy, beam search, forward and encode from concurrent tasks = sequential", async () => {
    const m = seq2seq(make);
    const src = [
      ids([[3, 5, 7, 2]]),
      ids([[4, 4, 1, 6, 2, 3, 5]]),
      ids([
        [1, 8],
        [2, 6],
      ]),
    ];
    const calls = (): (() => unknown)[] => [
      () => m.greedy(src[0]!, { maxNewTokens: 6 }),
      () => m.beamSearch(src[1]!, { maxNewTokens: 5, beamSize: 3, eosId: 2 }),
      () =>
        m.forward(
          src[2]!,
          ids([
            [1, 2, 3],
            [1, 4, 4],
          ]),
          { needWeights: true },
        ),
      () => m.greedy(src[2]!, { maxNewTokens: 4, useCache: false }),
      () => m.encode(src[1]!),
      () => m.beamSearch(src[2]!, { maxNewTokens: 4, beamSize: 2 }),
    ];
    const sequential = calls().map((f) => plain(f()));
    const task = async (f: () => unknown, i: number) => {
      for (let k = 0; k < (i * 7) % 3; k++) await tick();
      return plain(f());
    };
    expect(await Promise.all(calls().map(task))).toEqual(sequential);
    expect(await Promise.all([...calls()].reverse().map(task))).toEqual([...sequential].reverse());
  });

  it("decoder KV caches are the caller's: two decodings stepped alternately = each alone", async () => {
    const m = seq2seq(make);
    const rt = m.rt;
    const heap = rt.heap;
    const V = 6;
    const N = 5;
    const mark = heap.mark();
    /** A decoding of `src` by hand with its own memory and caches; `next()` runs one greedy step. */
    const decoding = (src: number[]) => {
      const S = src.length;
      const mem = heap.allocF32(S * d);
      m.encodeRun(heap.put(Int32Array.from(src)), 1, S, NO_MASK, mem);
      const caches = m.transformer.decoder.createCache(mem, 1, S, N);
      const logits = heap.allocF32(V);
      const last = heap.put(Int32Array.of(m.bosId));
      const out: number[] = [];
      return {
        out,
        next(t: number) {
          m.decodeStep(last, 1, t, caches, 0, logits);
          const l = heap.f32(logits, V);
          let best = 0;
          for (let v = 1; v < V; v++) if (l[v]! > l[best]!) best = v;
          heap.i32(last, 1)[0] = best;
          out.push(best);
        },
      };
    };
    const a = decoding([3, 5, 7, 2]);
    const b = decoding([4, 4, 1, 6, 2]);
    await Promise.all(
      [a, b].map(async (dec, i) => {
        for (let t = 0; t < N; t++) {
          if ((t + i) % 2) await tick();
          dec.next(t);
          m.greedy(ids([[1, 2, 3]]), { maxNewTokens: 2 }); // a whole call on the same model in between
        }
      }),
    );
    heap.release(mark);
    expect(a.out).toEqual(Array.from(m.greedy(ids([[3, 5, 7, 2]]), { maxNewTokens: N }).ids.data));
    expect(b.out).toEqual(Array.from(m.greedy(ids([[4, 4, 1, 6, 2]]), { maxNewTokens: N }).ids.data));
  });
});
