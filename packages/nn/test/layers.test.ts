// Linear, Embedding, LayerNorm, activations and positional encodings against float64 loops.
import { InputError, openSafetensors, ShapeError, Tensor, WeightsError, writeSafetensors } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { activation } from "../src/activations.js";
import { Embedding } from "../src/embedding.js";
import { LayerNorm } from "../src/layer-norm.js";
import { Linear } from "../src/linear.js";
import {
  LearnedPositionalEmbedding,
  SinusoidalPositionalEncoding,
  sinusoidalPositionalEncoding,
} from "../src/positional-encoding.js";
import { GRU, LSTM } from "../src/rnn.js";
import { loadModule, loadModuleAsync, StateDict, tensorSource } from "../src/state-dict.js";
import { backends, closeTo, rng } from "./helpers.js";
import * as O from "./oracle.js";
import { DictBuilder } from "./weights.js";

const bks = await backends();

describe.each(bks)("layers on $name", ({ make }) => {
  it("Linear with and without bias, [..., in] inputs", () => {
    for (const bias of [true, false]) {
      const wb = new DictBuilder(1).add("fc.weight", [7, 5]);
      if (bias) wb.add("fc.bias", [7]);
      const lin = loadModule(tensorSource(wb.map), (s) => new Linear(s.pp("fc"), 5, 7, { bias }), { runtime: make() });
      const x = rng(2).tensor([2, 3, 5]);
      const want = O.linear(x.data, 6, wb.f32("fc.weight"), bias ? wb.f32("fc.bias") : undefined, 5, 7);
      expect(closeTo(lin.forward(x), want, [2, 3, 7])).toBeUndefined();
      expect(() => lin.forward(rng(2).tensor([2, 4]))).toThrow(/Linear input has shape \[2, 4\]/);
    }
  });

  it("Embedding gathers rows; an id out of range is an InputError naming it", () => {
    const wb = new DictBuilder(3).add("weight", [6, 4]);
    const emb = loadModule(tensorSource(wb.map), (s) => new Embedding(s, 6, 4), { runtime: make() });
    const ids = new Tensor(Int32Array.from([5, 0, 3, 3]), [2, 2], "i32");
    const out = emb.forward(ids);
    expect(out.shape).toEqual([2, 2, 4]);
    for (let t = 0; t < 4; t++)
      for (let j = 0; j < 4; j++) expect(out.data[t * 4 + j]).toBe(wb.f32("weight")[ids.data[t] * 4 + j]);
    expect(() => emb.forward(new Tensor(Int32Array.from([1, 6]), [2], "i32"))).toThrow(
      /id 6 at flat position 1 is outside \[0, 6\)/,
    );
    expect(() => emb.forward(new Tensor(Int32Array.from([-1]), [1], "i32"))).toThrow(InputError);
    expect(() => emb.forward(new Tensor(new Float32Array(2), [2], "f32"))).toThrow(ShapeError);
  });

  it("LayerNorm over the last axis (biased variance)", () => {
    const wb = new DictBuilder(4).norm("ln", 9);
    const ln = loadModule(tensorSource(wb.map), (s) => new LayerNorm(s.pp("ln"), 9, 1e-5), { runtime: make() });
    const x = rng(5).tensor([4, 9], 3);
    expect(
      closeTo(ln.forward(x), O.layerNorm(x.data, 4, 9, wb.f32("ln.weight"), wb.f32("ln.bias"), 1e-5), [4, 9]),
    ).toBeUndefined();
  });

  it("activations: relu, gelu (exact), gelu_tanh, silu, tanh, sigmoid", () => {
    const x = rng(6).tensor([50], 4);
    const f: Record<string, (v: number) => number> = {
      relu: (v) => Math.max(0, v),
      gelu: (v) => 0.5 * v * (1 + O.erf(v / Math.SQRT2)),
      gelu_tanh: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
      silu: (v) => v * O.sigmoid(v),
      tanh: Math.tanh,
      sigmoid: O.sigmoid,
    };
    for (const [name, fn] of Object.entries(f)) {
      const got = activation(x, name as "relu", make());
      expect(closeTo(got, Array.from(x.data, fn), [50], 1e-6, 1e-5), name).toBeUndefined();
    }
  });

  it("sinusoidal table: even and odd d_model, added by the layer; learned positions", () => {
    for (const [L, d] of [
      [64, 16],
      [10, 7],
      [1, 1],
    ]) {
      expect(closeTo(sinusoidalPositionalEncoding(L, d), O.pe(L, d), [L, d], 1e-6, 1e-6)).toBeUndefined();
    }
    const rt = make();
    const pe = new SinusoidalPositionalEncoding(7, 10000, rt);
    const x = rng(7).tensor([2, 5, 7]);
    const m = rt.heap.mark();
    const p = rt.heap.put(x.data);
    pe.addTo(p, 2, 5);
    const got = new Tensor(rt.heap.f32(p, 70).slice(), [2, 5, 7], "f32");
    rt.heap.release(m);
    const table = O.pe(5, 7);
    expect(
      closeTo(
        got,
        Array.from(x.data, (v, i) => v + table[i % 35]),
        [2, 5, 7],
        1e-6,
        1e-5,
      ),
    ).toBeUndefined();

    const wb = new DictBuilder(8).add("pos.weight", [6, 7]);
    const sd = new StateDict(tensorSource(wb.map), rt);
    const lp = new LearnedPositionalEmbedding(sd.root().pp("pos"), 6, 7);
    sd.finish();
    const q = rt.heap.put(x.data);
    lp.addTo(q, 2, 5);
    const w = wb.f32("pos.weight");
    expect(
      closeTo(
        new Tensor(rt.heap.f32(q, 70).slice(), [2, 5, 7], "f32"),
        Array.from(x.data, (v, i) => v + w[i % 35]),
        [2, 5, 7],
        1e-6,
        1e-5,
      ),
    ).toBeUndefined();
    expect(() => lp.addTo(q, 1, 7)).toThrow(/sequence length 7 exceeds the 6 positions/);
  });

  it("loadModuleAsync reads only the tensors a module asks for from a lazily opened file", async () => {
    const wb = new DictBuilder(12).rnn(4, 3, 5, 1, 1, true);
    const all = new Map<string, Tensor>();
    for (const [k, v] of wb.map) all.set(`enc.rnn.${k}`, v);
    all.set("dec.huge", new Tensor(new Float32Array(1000), [1000], "f32"));
    const file = await openSafetensors(writeSafetensors(all));
    const read: string[] = [];
    const spy = {
      names: () => file.names(),
      has: (n: string) => file.has(n),
      get: (n: string) => {
        read.push(n);
        return file.get(n);
      },
    };
    const opts = { inputSize: 3, hiddenSize: 5 };
    const lstm = await loadModuleAsync(spy, (s) => new LSTM(s.pp("rnn"), opts), { runtime: make(), prefix: "enc." });
    expect(read.sort()).toEqual([...wb.map.keys()].map((k) => `enc.rnn.${k}`).sort());
    const eager = loadModule(tensorSource(wb.map), (s) => new LSTM(s, opts), { runtime: make() });
    const x = rng(3).tensor([2, 4, 3]);
    expect(Array.from(lstm.forward(x).output.data)).toEqual(Array.from(eager.forward(x).output.data));
    all.set("enc.extra", new Tensor(new Float32Array(2), [2], "f32"));
    const file2 = await openSafetensors(writeSafetensors(all));
    await expect(
      loadModuleAsync(file2, (s) => new LSTM(s.pp("rnn"), opts), { runtime: make(), prefix: "enc." }),
    ).rejects.toThrow(/1 unexpected\): unexpected "enc\.extra"/);
  });

  it("per-call scratch is released: the heap does not grow across calls", () => {
    const rt = make();
    const wb = new DictBuilder(21).rnn(3, 4, 6, 2, 2, true);
    const gru = loadModule(
      tensorSource(wb.map),
      (s) => new GRU(s, { inputSize: 4, hiddenSize: 6, numLayers: 2, bidirectional: true }),
      { runtime: rt },
    );
    const x = rng(1).tensor([2, 9, 4]);
    gru.forward(x);
    const used = rt.heap.used();
    for (let i = 0; i < 20; i++) gru.forward(x);
    expect(rt.heap.used()).toBe(used);
    expect(() => gru.forward(rng(1).tensor([2, 9, 5]))).toThrow(ShapeError);
    expect(rt.heap.used()).toBe(used);
  });

  it("StateDict: prefix scoping, ignore list, dtype mismatch", () => {
    const wb = new DictBuilder(9)
      .add("enc.fc.weight", [3, 2])
      .add("enc.fc.bias", [3])
      .add("dec.fc.weight", [1, 1])
      .add("enc.buf", [1]);
    const lin = loadModule(tensorSource(wb.map), (s) => new Linear(s.pp("fc"), 2, 3), {
      runtime: make(),
      prefix: "enc.",
      ignore: (n) => n === "enc.buf",
    });
    expect(lin.weight.shape).toEqual([3, 2]);
    expect(() =>
      loadModule(tensorSource(wb.map), (s) => new Linear(s.pp("fc"), 2, 3), { runtime: make(), prefix: "enc." }),
    ).toThrow(/1 unexpected\): unexpected "enc\.buf"/);
    wb.map.set("enc.fc.bias", new Tensor(new Int32Array(3), [3], "i32"));
    expect(() =>
      loadModule(tensorSource(wb.map), (s) => new Linear(s.pp("fc"), 2, 3), {
        runtime: make(),
        prefix: "enc.",
        ignore: (n) => n === "enc.buf",
      }),
    ).toThrow(WeightsError);
  });
});
