// Backward passes of every nn layer against central finite differences of the float64 oracle
// (test/oracle.ts), on every backend, on small odd shapes with batch > 1 and masks; and the
// gradients of the wasm builds equal to the reference backend's.
import { DisposedError, InputError, ShapeError, Tensor } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { activationBackward } from "../src/activations.js";
import { MultiheadAttention } from "../src/attention.js";
import { Embedding } from "../src/embedding.js";
import { LayerNorm } from "../src/layer-norm.js";
import { Linear } from "../src/linear.js";
import { GRU, LSTM, RNN } from "../src/rnn.js";
import { loadModule, tensorSource } from "../src/state-dict.js";
import {
  Transformer,
  TransformerDecoder,
  TransformerDecoderLayer,
  TransformerEncoder,
  TransformerEncoderLayer,
} from "../src/transformer.js";
import { type F64, type GradCase, gradCheck, maxRelDiff } from "./gradcheck.js";
import { backends, rng } from "./helpers.js";
import * as O from "./oracle.js";
import { boolMask, DictBuilder, floatMask } from "./weights.js";

const bks = await backends();
type Make = () => import("@wasmformer/core").Runtime;

const t32 = (a: Float32Array, shape: number[]) => new Tensor(a, shape, "f32");
const asW = (w: F64) => w as unknown as Record<string, Float32Array>;
const cat = (...xs: ArrayLike<number>[]) => xs.flatMap((x) => Array.from(x));

// ---- the cases: each builds a GradCase on a runtime ----

function linearCase(make: Make): GradCase {
  const wb = new DictBuilder(1).add("weight", [5, 7]).add("bias", [5]);
  const lin = loadModule(tensorSource(wb.map), (s) => new Linear(s, 7, 5), { runtime: make() }).train();
  const x = rng(2).tensor([2, 3, 7]).data as Float32Array;
  return {
    rt: lin.rt,
    params: lin.parameters(),
    weights: wb.record(),
    inputs: { x },
    ref: (w, i) => O.linear(i.x!, 6, w.weight!, w.bias, 7, 5),
    run: (dy) => {
      const y = lin.forward(t32(x, [2, 3, 7]));
      return { out: y.data, dInputs: { x: lin.backward(t32(dy, [2, 3, 5])).data } };
    },
  };
}

function embeddingCase(make: Make): GradCase {
  const wb = new DictBuilder(3).add("weight", [11, 5]);
  const emb = loadModule(tensorSource(wb.map), (s) => new Embedding(s, 11, 5), { runtime: make() }).train();
  const ids = Int32Array.from([3, 0, 10, 3, 7, 3, 1]); // repeats accumulate
  return {
    rt: emb.rt,
    params: emb.parameters(),
    weights: wb.record(),
    inputs: {},
    ref: (w) => cat(...[...ids].map((i) => w.weight!.subarray(i * 5, i * 5 + 5))),
    run: (dy) => {
      const y = emb.forward(new Tensor(ids, [1, 7], "i32"));
      emb.backward(t32(dy, [1, 7, 5]));
      return { out: y.data, dInputs: {} };
    },
  };
}

function layerNormCase(make: Make): GradCase {
  const wb = new DictBuilder(4).norm("", 7);
  // DictBuilder.norm names "<p>.weight": rename to the module's root names
  const weights = { weight: wb.f32(".weight"), bias: wb.f32(".bias") };
  const ln = loadModule(
    tensorSource({ weight: t32(weights.weight, [7]), bias: t32(weights.bias, [7]) }),
    (s) => new LayerNorm(s, 7),
    {
      runtime: make(),
    },
  ).train();
  const x = rng(5).tensor([3, 7], 2).data as Float32Array;
  return {
    rt: ln.rt,
    params: ln.parameters(),
    weights,
    inputs: { x },
    ref: (w, i) => O.layerNorm(i.x!, 3, 7, w.weight!, w.bias!, 1e-5),
    run: (dy) => {
      const y = ln.forward(t32(x, [3, 7]));
      return { out: y.data, dInputs: { x: ln.backward(t32(dy, [3, 7])).data } };
    },
  };
}

function activationCase(make: Make, name: "relu" | "gelu" | "gelu_tanh" | "silu" | "tanh" | "sigmoid"): GradCase {
  const r = rng(6);
  // away from relu's kink at 0
  const x = Float32Array.from({ length: 13 }, () => (r.next() < 0.5 ? -1 : 1) * r.uniform(0.05, 3));
  const rt = make();
  const f = (v: number) => (name === "sigmoid" ? O.sigmoid(v) : O.act(name, v));
  return {
    rt,
    params: [],
    weights: {},
    inputs: { x },
    ref: (_w, i) => Array.from(i.x!, f),
    run: (dy) => ({
      out: Array.from(x, f),
      dInputs: { x: activationBackward(t32(dy, [13]), t32(x, [13]), name, rt).data },
    }),
  };
}

type MaskKind = "none" | "bool" | "f32";

function mhaCase(
  make: Make,
  o: { self: boolean; mask: MaskKind; kpm: boolean; causal: boolean; kvdim?: number },
): GradCase {
  const [B, L, E, H] = [2, 3, 6, 2];
  const S = o.self ? L : 5;
  const kd = o.kvdim ?? E;
  const wb = new DictBuilder(7).mha("", E, { kdim: kd, vdim: kd });
  const mha = loadModule(
    tensorSource(wb.map),
    (s) => new MultiheadAttention(s, { embedDim: E, numHeads: H, kdim: kd, vdim: kd }),
    {
      runtime: make(),
    },
  ).train();
  const r = rng(8);
  const q = r.tensor([B, L, E]).data as Float32Array;
  const k = o.self ? q : (r.tensor([B, S, kd]).data as Float32Array);
  const v = o.self ? q : (r.tensor([B, S, kd]).data as Float32Array);
  const am = o.mask === "bool" ? boolMask(r, [L, S]) : o.mask === "f32" ? floatMask(r, [L, S]) : undefined;
  const kp = o.kpm ? boolMask(r, [B, S], 0.4) : undefined;
  const spec: O.MaskSpec = {
    attn: am ? { data: am.data, kind: am.dtype === "f32" ? "f32" : "bool", perSlice: false } : undefined,
    kpm: kp?.data,
    causal: o.causal,
  };
  const dims = { kdim: kd, vdim: kd };
  return {
    rt: mha.rt,
    params: mha.parameters(),
    weights: wb.record(),
    inputs: o.self ? { q } : { q, k, v },
    ref: (w, i) => {
      const r = o.self
        ? O.mha(asW(w), "", i.q!, i.q!, i.q!, B, L, S, E, H, spec, dims)
        : O.mha(asW(w), "", i.q!, i.k!, i.v!, B, L, S, E, H, spec, dims);
      return r.out;
    },
    run: (dy): ReturnType<GradCase["run"]> => {
      const qt = t32(q, [B, L, E]);
      const kt = o.self ? qt : t32(k, [B, S, kd]);
      const vt = o.self ? qt : t32(v, [B, S, kd]);
      const y = mha.forward(qt, kt, vt, { attnMask: am, keyPaddingMask: kp, isCausal: o.causal });
      const g = mha.backward(t32(dy, [B, L, E]));
      if (o.self)
        return {
          out: y.output.data,
          dInputs: { q: cat(g.dQuery.data).map((a, j) => a + g.dKey.data[j]! + g.dValue.data[j]!) },
        };
      return { out: y.output.data, dInputs: { q: g.dQuery.data, k: g.dKey.data, v: g.dValue.data } };
    },
  };
}

const LAYER_CFGS: O.LayerCfg[] = [
  { d: 6, H: 2, F: 7, act: "relu", normFirst: false, eps: 1e-5 },
  { d: 6, H: 3, F: 5, act: "gelu", normFirst: true, eps: 1e-5 },
  { d: 5, H: 1, F: 9, act: "gelu_tanh", normFirst: false, eps: 1e-5 },
  { d: 4, H: 2, F: 6, act: "silu", normFirst: true, eps: 1e-5 },
];
const layerOpts = (c: O.LayerCfg) => ({
  dModel: c.d,
  nhead: c.H,
  dimFeedforward: c.F,
  activation: c.act,
  normFirst: c.normFirst,
  layerNormEps: c.eps,
});

function encoderLayerCase(make: Make, c: O.LayerCfg, seed: number): GradCase {
  const [B, S] = [2, 4];
  const wb = new DictBuilder(seed).layer("", c.d, c.F, false);
  const layer = loadModule(tensorSource(wb.map), (s) => new TransformerEncoderLayer(s, layerOpts(c)), {
    runtime: make(),
  }).train();
  const r = rng(seed + 1);
  const x = r.tensor([B, S, c.d]).data as Float32Array;
  const am = boolMask(r, [S, S]);
  const kp = boolMask(r, [B, S], 0.3);
  const m: O.MaskSpec = { attn: { data: am.data, kind: "bool", perSlice: false }, kpm: kp.data };
  return {
    rt: layer.rt,
    params: layer.parameters(),
    weights: wb.record(),
    inputs: { x },
    ref: (w, i) => O.encoderLayer(asW(w), "", Array.from(i.x!), B, S, c, m),
    run: (dy) => {
      const y = layer.forward(t32(x, [B, S, c.d]), { srcMask: am, srcKeyPaddingMask: kp });
      return { out: y.data, dInputs: { x: layer.backward(t32(dy, [B, S, c.d])).data } };
    },
  };
}

function decoderLayerCase(make: Make, c: O.LayerCfg, seed: number): GradCase {
  const [B, T, S] = [2, 3, 5];
  const wb = new DictBuilder(seed).layer("", c.d, c.F, true);
  const layer = loadModule(tensorSource(wb.map), (s) => new TransformerDecoderLayer(s, layerOpts(c)), {
    runtime: make(),
  }).train();
  const r = rng(seed + 1);
  const x = r.tensor([B, T, c.d]).data as Float32Array;
  const mem = r.tensor([B, S, c.d]).data as Float32Array;
  const mkp = boolMask(r, [B, S], 0.3);
  const tm: O.MaskSpec = { causal: true };
  const mm: O.MaskSpec = { kpm: mkp.data };
  return {
    rt: layer.rt,
    params: layer.parameters(),
    weights: wb.record(),
    inputs: { x, mem },
    ref: (w, i) => O.decoderLayer(asW(w), "", Array.from(i.x!), Array.from(i.mem!), B, T, S, c, tm, mm),
    run: (dy) => {
      const y = layer.forward(t32(x, [B, T, c.d]), t32(mem, [B, S, c.d]), {
        tgtIsCausal: true,
        memoryKeyPaddingMask: mkp,
      });
      const g = layer.backward(t32(dy, [B, T, c.d]));
      return { out: y.data, dInputs: { x: g.dtgt.data, mem: g.dmemory.data } };
    },
  };
}

function transformerCase(make: Make, c: O.LayerCfg): GradCase {
  const [B, S, T] = [2, 4, 3];
  const wb = new DictBuilder(30);
  for (let i = 0; i < 2; i++) wb.layer(`encoder.layers.${i}.`, c.d, c.F, false);
  wb.norm("encoder.norm", c.d);
  wb.layer("decoder.layers.0.", c.d, c.F, true);
  wb.norm("decoder.norm", c.d);
  const model = loadModule(
    tensorSource(wb.map),
    (s) => new Transformer(s, { ...layerOpts(c), numEncoderLayers: 2, numDecoderLayers: 1 }),
    { runtime: make() },
  ).train();
  const r = rng(31);
  const src = r.tensor([B, S, c.d]).data as Float32Array;
  const tgt = r.tensor([B, T, c.d]).data as Float32Array;
  const skp = boolMask(r, [B, S], 0.3);
  const sm: O.MaskSpec = { kpm: skp.data };
  const tm: O.MaskSpec = { causal: true };
  return {
    rt: model.rt,
    params: model.parameters(),
    weights: wb.record(),
    inputs: { src, tgt },
    ref: (w, i) => {
      const o = O.transformer(asW(w), "", Array.from(i.src!), Array.from(i.tgt!), B, S, T, 2, 1, c, sm, tm, sm);
      return cat(o.memory, o.output);
    },
    run: (dy) => {
      const o = model.forward(t32(src, [B, S, c.d]), t32(tgt, [B, T, c.d]), {
        srcKeyPaddingMask: skp,
        memoryKeyPaddingMask: skp,
        tgtIsCausal: true,
      });
      const n = B * S * c.d;
      const g = model.backward(t32(dy.slice(n), [B, T, c.d]), t32(dy.slice(0, n), [B, S, c.d]));
      return { out: cat(o.memory.data, o.output.data), dInputs: { src: g.dsrc.data, tgt: g.dtgt.data } };
    },
  };
}

function stackCase(make: Make, kind: "encoder" | "decoder", c: O.LayerCfg): GradCase {
  const [B, S, T] = [3, 3, 2];
  const wb = new DictBuilder(40);
  for (let i = 0; i < 2; i++) wb.layer(`layers.${i}.`, c.d, c.F, kind === "decoder");
  wb.norm("norm", c.d);
  const opts = { ...layerOpts(c), numLayers: 2, norm: true };
  const rt = make();
  const r = rng(41);
  const L = kind === "encoder" ? S : T;
  const x = r.tensor([B, L, c.d]).data as Float32Array;
  const mem = r.tensor([B, S, c.d]).data as Float32Array;
  const kp = boolMask(r, [B, L], 0.3);
  const ln = (w: F64, v: number[], rows: number) =>
    O.layerNorm(v, rows, c.d, w["norm.weight"]!, w["norm.bias"]!, c.eps);
  if (kind === "encoder") {
    const enc = loadModule(tensorSource(wb.map), (s) => new TransformerEncoder(s, opts), { runtime: rt }).train();
    return {
      rt,
      params: enc.parameters(),
      weights: wb.record(),
      inputs: { x },
      ref: (w, i) => {
        let v = Array.from(i.x!);
        for (let l = 0; l < 2; l++) v = O.encoderLayer(asW(w), `layers.${l}.`, v, B, S, c, { kpm: kp.data });
        return ln(w, v, B * S);
      },
      run: (dy) => {
        const y = enc.forward(t32(x, [B, S, c.d]), { srcKeyPaddingMask: kp });
        return { out: y.data, dInputs: { x: enc.backward(t32(dy, [B, S, c.d])).data } };
      },
    };
  }
  const dec = loadModule(tensorSource(wb.map), (s) => new TransformerDecoder(s, opts), { runtime: rt }).train();
  return {
    rt,
    params: dec.parameters(),
    weights: wb.record(),
    inputs: { x, mem },
    ref: (w, i) => {
      let v = Array.from(i.x!);
      for (let l = 0; l < 2; l++)
        v = O.decoderLayer(
          asW(w),
          `layers.${l}.`,
          v,
          Array.from(i.mem!),
          B,
          T,
          S,
          c,
          { kpm: kp.data, causal: true },
          {},
        );
      return ln(w, v, B * T);
    },
    run: (dy) => {
      const y = dec.forward(t32(x, [B, T, c.d]), t32(mem, [B, S, c.d]), { tgtKeyPaddingMask: kp, tgtIsCausal: true });
      const g = dec.backward(t32(dy, [B, T, c.d]));
      return { out: y.data, dInputs: { x: g.dtgt.data, mem: g.dmemory!.data } };
    },
  };
}

function rnnCase(make: Make, mode: "rnn_tanh" | "rnn_relu" | "lstm" | "gru", bidir: boolean, L: number): GradCase {
  const [B, T, I, H] = [2, 4, 3, 5];
  const D = bidir ? 2 : 1;
  const G = { rnn_tanh: 1, rnn_relu: 1, lstm: 4, gru: 3 }[mode];
  const wb = new DictBuilder(50 + G).rnn(G, I, H, L, D, true);
  const o = { inputSize: I, hiddenSize: H, numLayers: L, bidirectional: bidir };
  const net = loadModule(
    tensorSource(wb.map),
    (s) =>
      mode === "lstm"
        ? new LSTM(s, o)
        : mode === "gru"
          ? new GRU(s, o)
          : new RNN(s, { ...o, nonlinearity: mode === "rnn_relu" ? "relu" : "tanh" }),
    { runtime: make() },
  ).train();
  const r = rng(60);
  const x = r.tensor([B, T, I]).data as Float32Array;
  const h0 = r.tensor([L * D, B, H], 0.5).data as Float32Array;
  const c0 = r.tensor([L * D, B, H], 0.5).data as Float32Array;
  const lstm = mode === "lstm";
  const nOut = B * T * D * H;
  const nSt = L * D * B * H;
  return {
    rt: net.rt,
    params: net.parameters(),
    weights: wb.record(),
    inputs: lstm ? { x, h0, c0 } : { x, h0 },
    ref: (w, i) => {
      const y = O.rnn(mode, asW(w), i.x!, B, T, I, H, L, bidir, true, i.h0, lstm ? i.c0 : undefined);
      return lstm ? cat(y.output, y.h, y.c) : cat(y.output, y.h);
    },
    run: (dy): ReturnType<GradCase["run"]> => {
      const st = (a: Float32Array) => t32(a, [L * D, B, H]);
      const dOut = t32(dy.slice(0, nOut), [B, T, D * H]);
      const dh = st(dy.slice(nOut, nOut + nSt));
      if (net instanceof LSTM) {
        const y = net.forward(t32(x, [B, T, I]), st(h0), st(c0));
        const g = net.backward(dOut, dh, st(dy.slice(nOut + nSt)));
        return {
          out: cat(y.output.data, y.h.data, y.c!.data),
          dInputs: { x: g.dx.data, h0: g.dh0.data, c0: g.dc0!.data },
        };
      }
      const y = (net as RNN).forward(t32(x, [B, T, I]), st(h0));
      const g = (net as RNN).backward(dOut, dh);
      return { out: cat(y.output.data, y.h.data), dInputs: { x: g.dx.data, h0: g.dh0.data } };
    },
  };
}

// ---- the tests ----

const CASES: [string, (make: Make) => GradCase][] = [
  ["Linear [2, 3, 7] → 5", linearCase],
  ["Embedding 11×5, repeated ids", embeddingCase],
  ["LayerNorm 7", layerNormCase],
  ...(["relu", "gelu", "gelu_tanh", "silu", "tanh", "sigmoid"] as const).map(
    (a): [string, (make: Make) => GradCase] => [`activation ${a}`, (m) => activationCase(m, a)],
  ),
  [
    "MHA self-attention, bool mask + key padding",
    (m) => mhaCase(m, { self: true, mask: "bool", kpm: true, causal: false }),
  ],
  ["MHA self-attention, causal", (m) => mhaCase(m, { self: true, mask: "none", kpm: false, causal: true })],
  [
    "MHA cross-attention, f32 mask + key padding",
    (m) => mhaCase(m, { self: false, mask: "f32", kpm: true, causal: false }),
  ],
  [
    "MHA cross-attention, kdim = vdim = 4 (separate weights)",
    (m) => mhaCase(m, { self: false, mask: "none", kpm: true, causal: false, kvdim: 4 }),
  ],
  ...LAYER_CFGS.map((c, i): [string, (make: Make) => GradCase] => [
    `encoder layer ${c.act} ${c.normFirst ? "pre" : "post"}-norm, mask + key padding`,
    (m) => encoderLayerCase(m, c, 70 + i),
  ]),
  ...LAYER_CFGS.map((c, i): [string, (make: Make) => GradCase] => [
    `decoder layer ${c.act} ${c.normFirst ? "pre" : "post"}-norm, causal + memory padding`,
    (m) => decoderLayerCase(m, c, 80 + i),
  ]),
  ["TransformerEncoder ×2 + norm", (m) => stackCase(m, "encoder", LAYER_CFGS[1]!)],
  ["TransformerDecoder ×2 + norm", (m) => stackCase(m, "decoder", LAYER_CFGS[0]!)],
  ["Transformer 2 + 1 layers, padding, causal, memory gradient", (m) => transformerCase(m, LAYER_CFGS[0]!)],
  ["RNN tanh 2 layers bidirectional", (m) => rnnCase(m, "rnn_tanh", true, 2)],
  ["RNN relu 1 layer", (m) => rnnCase(m, "rnn_relu", false, 1)],
  ["LSTM 2 layers bidirectional", (m) => rnnCase(m, "lstm", true, 2)],
  ["LSTM 1 layer", (m) => rnnCase(m, "lstm", false, 1)],
  ["GRU 2 layers bidirectional", (m) => rnnCase(m, "gru", true, 2)],
];

describe.each(bks)("backward vs finite differences on $name", ({ make }) => {
  it.each(CASES)("%s", (_name, build) => {
    const { failures } = gradCheck(build(make), 99);
    expect(failures).toEqual([]);
  });
});

describe("the wasm builds' gradients equal the reference backend's", () => {
  const ref = bks[0]!;
  it.each(CASES)("%s", (_name, build) => {
    const want = gradCheck(build(ref.make), 99, { perTensor: 0 }).grads;
    for (const b of bks.slice(1)) {
      const got = gradCheck(build(b.make), 99, { perTensor: 0 }).grads;
      expect(maxRelDiff(got, want), b.name).toBeLessThan(2e-5);
    }
  });
});

describe("training mode", () => {
  it("backward without a training forward is an InputError; eval() drops the records", () => {
    const wb = new DictBuilder(1).add("weight", [3, 2]).add("bias", [3]);
    const lin = loadModule(tensorSource(wb.map), (s) => new Linear(s, 2, 3));
    const x = t32(new Float32Array(4), [2, 2]);
    lin.forward(x);
    expect(() => lin.backward(t32(new Float32Array(6), [2, 3]))).toThrow(InputError);
    lin.train().forward(x);
    lin.eval();
    expect(() => lin.backward(t32(new Float32Array(6), [2, 3]))).toThrow(/no forward record/);
    lin.dispose();
  });

  it("a failed training forward keeps no record; a disposed module cannot train", () => {
    const wb = new DictBuilder(1).add("weight", [3, 2]).add("bias", [3]);
    const lin = loadModule(tensorSource(wb.map), (s) => new Linear(s, 2, 3)).train();
    expect(() => lin.forward(new Tensor(new Int32Array(4), [2, 2], "i32"))).toThrow(ShapeError);
    expect(() => lin.backward(t32(new Float32Array(6), [2, 3]))).toThrow(/no forward record/);
    // a gradient of the wrong shape is a ShapeError and leaves the record for a correct one
    lin.forward(t32(new Float32Array(4), [2, 2]));
    expect(() => lin.backward(t32(new Float32Array(4), [2, 2]))).toThrow(ShapeError);
    expect(lin.backward(t32(new Float32Array(6), [2, 3])).shape).toEqual([2, 2]);
    const rec = loadModule(
      tensorSource(new DictBuilder(2).rnn(4, 3, 4, 1, 1, true).map),
      (s) => new LSTM(s, { inputSize: 3, hiddenSize: 4 }),
    ).train();
    expect(() => rec.forward(t32(new Float32Array(6), [1, 2, 3]), t32(new Float32Array(4), [1, 1, 4]))).toThrow(
      InputError,
    );
    expect(() =>
      rec.forward(
        t32(new Float32Array(6), [1, 2, 3]),
        t32(new Float32Array(5), [1, 1, 5]),
        t32(new Float32Array(4), [1, 1, 4]),
      ),
    ).toThrow(ShapeError);
    expect(() => rec.backward()).toThrow(/no forward record/);
    rec.forward(t32(new Float32Array(6), [1, 2, 3]));
    expect(() => rec.backward(t32(new Float32Array(6), [1, 2, 3]))).toThrow(/LSTM.backward dOutput/);
    expect(rec.backward(t32(new Float32Array(8), [1, 2, 4])).dx.shape).toEqual([1, 2, 3]);
    rec.dispose();
    lin.dispose();
    expect(() => lin.parameters()).toThrow(DisposedError);
    expect(() => lin.train()).toThrow(DisposedError);
    expect(() => lin.backward(t32(new Float32Array(6), [2, 3]))).toThrow(DisposedError);
  });

  it("unbatched inputs ([T, I], [L, E]) backpropagate as a batch of one", () => {
    const r = rng(12);
    const wb = new DictBuilder(13).rnn(3, 3, 4, 2, 2, true);
    const o = { inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true };
    const grads = (unbatched: boolean) => {
      const net = loadModule(tensorSource(wb.map), (s) => new GRU(s, o)).train();
      const x = new Tensor(
        Float32Array.from({ length: 15 }, (_, i) => Math.sin(i)),
        unbatched ? [5, 3] : [1, 5, 3],
      );
      net.forward(x);
      const dOut = new Tensor(
        Float32Array.from({ length: 40 }, (_, i) => Math.cos(i)),
        unbatched ? [5, 8] : [1, 5, 8],
      );
      const dh = new Tensor(
        Float32Array.from({ length: 16 }, (_, i) => 0.1 * i),
        unbatched ? [4, 4] : [4, 1, 4],
      );
      const g = net.backward(dOut, dh);
      const out = {
        dx: Array.from(g.dx.data),
        dh0: Array.from(g.dh0.data),
        shape: g.dx.shape,
        params: net.parameters().map((p) => Array.from(net.rt.heap.f32(p.grad, p.size))),
      };
      net.dispose();
      return out;
    };
    const a = grads(true);
    const b = grads(false);
    expect(a.shape).toEqual([5, 3]);
    expect(a.dx).toEqual(b.dx);
    expect(a.dh0).toEqual(b.dh0);
    expect(a.params).toEqual(b.params);
    const mwb = new DictBuilder(14).mha("", 6);
    const qdata = r.tensor([4, 6]).data;
    const mg = (unbatched: boolean) => {
      const m = loadModule(
        tensorSource(mwb.map),
        (s) => new MultiheadAttention(s, { embedDim: 6, numHeads: 3 }),
      ).train();
      const q = new Tensor(qdata, unbatched ? [4, 6] : [1, 4, 6]);
      m.forward(q, q, q, {
        keyPaddingMask: new Tensor(Uint8Array.from([0, 0, 1, 0]), unbatched ? [4] : [1, 4], "bool"),
      });
      const g = m.backward(
        new Tensor(
          Float32Array.from({ length: 24 }, (_, i) => Math.cos(i)),
          unbatched ? [4, 6] : [1, 4, 6],
        ),
      );
      const out = { dq: g.dQuery, params: m.parameters().map((p) => Array.from(m.rt.heap.f32(p.grad, p.size))) };
      m.dispose();
      return out;
    };
    const ma = mg(true);
    const mb = mg(false);
    expect(ma.dq.shape).toEqual([4, 6]);
    expect(ma.params).toEqual(mb.params);
  });

  it("parameters() names every tensor by its state-dict name, in state-dict order, once", () => {
    const c = LAYER_CFGS[0]!;
    const wb = new DictBuilder(2).layer("", c.d, c.F, true);
    const layer = loadModule(tensorSource(wb.map), (s) => new TransformerDecoderLayer(s, layerOpts(c)));
    expect(
      layer
        .parameters()
        .map((p) => p.name)
        .sort(),
    ).toEqual([...wb.map.keys()].sort());
    expect(layer.parameters()[0]!.name).toBe("self_attn.in_proj_weight");
    layer.dispose();
  });

  it("inference output is unchanged by training mode, and an LSTM trained then switched to eval uses the new weights", () => {
    const wb = new DictBuilder(3).rnn(4, 3, 4, 2, 2, true);
    const o = { inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true };
    const net = loadModule(tensorSource(wb.map), (s) => new LSTM(s, o));
    const x = rng(4).tensor([2, 5, 3]);
    const before = net.forward(x).output;
    net.train();
    expect(net.forward(x).output.data).toEqual(before.data);
    // change a weight through its TrainParam (as an optimizer does)
    const p = net.parameters().find((q) => q.name === "weight_hh_l1_reverse")!;
    net.rt.heap.f32(p.ptr, p.size).fill(0.3);
    net.eval();
    const after = net.forward(x).output;
    const w = wb.record();
    w.weight_hh_l1_reverse = new Float32Array(p.size).fill(0.3);
    const want = O.rnn("lstm", w, x.data, 2, 5, 3, 4, 2, true, true).output;
    for (let i = 0; i < want.length; i++) expect(after.data[i]).toBeCloseTo(want[i]!, 5);
    net.dispose();
  });
});
