// RNN (tanh/relu), LSTM and GRU against the float64 oracle on every backend: layers, directions,
// bias on/off, initial states, odd sizes, length 1, batch > 1, long sequences; step() streaming.
import { ConfigError, InputError, ShapeError, WeightsError } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { GRU, LSTM, RNN, type RNNBase } from "../src/rnn.js";
import { loadModule, tensorSource } from "../src/state-dict.js";
import { backends, closeTo, rng } from "./helpers.js";
import * as O from "./oracle.js";
import { DictBuilder } from "./weights.js";

const bks = await backends();
type Mode = "rnn_tanh" | "rnn_relu" | "lstm" | "gru";
const G: Record<Mode, number> = { rnn_tanh: 1, rnn_relu: 1, lstm: 4, gru: 3 };

function build(
  mode: Mode,
  wb: DictBuilder,
  o: { I: number; H: number; L: number; bidir: boolean; bias: boolean },
  make: () => ReturnType<(typeof bks)[number]["make"]>,
) {
  const opts = { inputSize: o.I, hiddenSize: o.H, numLayers: o.L, bidirectional: o.bidir, bias: o.bias };
  return loadModule(
    tensorSource(wb.map),
    (s): RNNBase =>
      mode === "lstm"
        ? new LSTM(s, opts)
        : mode === "gru"
          ? new GRU(s, opts)
          : new RNN(s, { ...opts, nonlinearity: mode === "rnn_relu" ? "relu" : "tanh" }),
    { runtime: make() },
  );
}

function forward(
  net: RNNBase,
  x: ReturnType<ReturnType<typeof rng>["tensor"]>,
  h0?: ReturnType<ReturnType<typeof rng>["tensor"]>,
  c0?: ReturnType<ReturnType<typeof rng>["tensor"]>,
) {
  return net instanceof LSTM ? net.forward(x, h0, c0) : (net as RNN | GRU).forward(x, h0);
}

describe.each(bks)("recurrent layers on $name", ({ make }) => {
  for (const mode of ["rnn_tanh", "rnn_relu", "lstm", "gru"] as Mode[]) {
    it(`${mode}: layers {1,3} × bidirectional × bias × h0 given, B ∈ {1,3}, T ∈ {1,6}`, () => {
      let seed = 1;
      for (const L of [1, 3])
        for (const bidir of [false, true])
          for (const bias of [true, false])
            for (const given of [false, true])
              for (const [B, T] of [
                [1, 1],
                [3, 6],
              ]) {
                const I = 3;
                const H = 5;
                const D = bidir ? 2 : 1;
                const wb = new DictBuilder(seed++).rnn(G[mode], I, H, L, D, bias);
                const net = build(mode, wb, { I, H, L, bidir, bias }, make);
                const r = rng(seed++);
                const x = r.tensor([B, T, I], 1.5);
                const h0 = given ? r.tensor([L * D, B, H]) : undefined;
                const c0 = given && mode === "lstm" ? r.tensor([L * D, B, H]) : undefined;
                const got = forward(net, x, h0, c0);
                const want = O.rnn(mode, wb.record(), x.data, B, T, I, H, L, bidir, bias, h0?.data, c0?.data);
                const tag = `L${L} bidir=${bidir} bias=${bias} h0=${given} B${B} T${T}`;
                expect(closeTo(got.output, want.output, [B, T, D * H]), tag).toBeUndefined();
                expect(closeTo(got.h, want.h, [L * D, B, H]), tag).toBeUndefined();
                if (mode === "lstm") expect(closeTo(got.c!, want.c, [L * D, B, H]), tag).toBeUndefined();
                else expect(got.c).toBeUndefined();
              }
    });

    it(`${mode}: long sequence (T = 300, 2 layers, bidirectional, B = 2)`, () => {
      const [I, H, L, B, T] = [7, 9, 2, 2, 300];
      const wb = new DictBuilder(99).rnn(G[mode], I, H, L, 2, true);
      const net = build(mode, wb, { I, H, L, bidir: true, bias: true }, make);
      const x = rng(5).tensor([B, T, I]);
      const got = forward(net, x);
      const want = O.rnn(mode, wb.record(), x.data, B, T, I, H, L, true, true);
      expect(closeTo(got.output, want.output, [B, T, 2 * H])).toBeUndefined();
      expect(closeTo(got.h, want.h, [L * 2, B, H])).toBeUndefined();
    });

    it(`${mode}: packed weights — B ∈ {1, 2, 3, 4, 5, 9}, I and H past one 256-row K block`, () => {
      // B ≤ 2 take gemvRows per row, 3..4 the packed stream, ≥ 5 the packed blocked GEMM; K = 261 /
      // 270 spans two K blocks of the packB layout and ends in a partial chunk of the packRows one,
      // N = G·270 ends in a partial panel / row group
      const [I, H, L, T] = [261, 270, 2, 3];
      const wb = new DictBuilder(31).rnn(G[mode], I, H, L, 1, true);
      const net = build(mode, wb, { I, H, L, bidir: false, bias: true }, make);
      for (const B of [1, 2, 3, 4, 5, 9]) {
        const r = rng(40 + B);
        const x = r.tensor([B, T, I]);
        const h0 = r.tensor([L, B, H]);
        const c0 = mode === "lstm" ? r.tensor([L, B, H]) : undefined;
        const got = forward(net, x, h0, c0);
        const want = O.rnn(mode, wb.record(), x.data, B, T, I, H, L, false, true, h0.data, c0?.data);
        expect(closeTo(got.output, want.output, [B, T, H]), `B${B}`).toBeUndefined();
        expect(closeTo(got.h, want.h, [L, B, H]), `B${B}`).toBeUndefined();
        if (mode === "lstm") expect(closeTo(got.c!, want.c, [L, B, H]), `B${B}`).toBeUndefined();
      }
    });

    it(`${mode}: step() over a stream equals forward() over the whole sequence`, () => {
      const [I, H, L, B, T] = [4, 6, 2, 3, 9];
      const wb = new DictBuilder(7).rnn(G[mode], I, H, L, 1, true);
      const net = build(mode, wb, { I, H, L, bidir: false, bias: true }, make) as RNN | LSTM | GRU;
      const x = rng(8).tensor([B, T, I]);
      const whole = forward(net, x);
      let state: { h: typeof whole.h; c?: typeof whole.h } | undefined;
      for (let t = 0; t < T; t++) {
        const xt = new Float32Array(B * I);
        for (let b = 0; b < B; b++) xt.set(x.data.subarray((b * T + t) * I, (b * T + t + 1) * I), b * I);
        const r = net.step(new (x.constructor as typeof import("@wasmformer/core").Tensor)(xt, [B, I], "f32"), state);
        expect(r.output.shape).toEqual([B, H]);
        for (let b = 0; b < B; b++)
          for (let j = 0; j < H; j++)
            expect(r.output.data[b * H + j]).toBeCloseTo(whole.output.data[(b * T + t) * H + j], 5);
        state = { h: r.h, c: r.c };
      }
      expect(closeTo(state!.h, whole.h.data, whole.h.shape, 1e-6, 1e-5)).toBeUndefined();
      if (mode === "lstm") expect(closeTo(state!.c!, whole.c!.data, whole.c!.shape, 1e-6, 1e-5)).toBeUndefined();
    });
  }

  it("unbatched input [T, I] and [L·D, H] states", () => {
    const wb = new DictBuilder(3).rnn(4, 3, 4, 1, 1, true);
    const net = build("lstm", wb, { I: 3, H: 4, L: 1, bidir: false, bias: true }, make) as LSTM;
    const r = rng(1);
    const x = r.tensor([5, 3]);
    const h0 = r.tensor([1, 4]);
    const c0 = r.tensor([1, 4]);
    const u = net.forward(x, h0, c0);
    const b = net.forward(x.reshape([1, 5, 3]), h0.reshape([1, 1, 4]), c0.reshape([1, 1, 4]));
    expect(u.output.shape).toEqual([5, 4]);
    expect(u.h.shape).toEqual([1, 4]);
    expect(Array.from(u.output.data)).toEqual(Array.from(b.output.data));
  });

  it("bad input: typed errors that name the fault", () => {
    const wb = new DictBuilder(3).rnn(3, 4, 6, 2, 2, true);
    const gru = build("gru", wb, { I: 4, H: 6, L: 2, bidir: true, bias: true }, make) as GRU;
    const r = rng(2);
    expect(() => gru.forward(r.tensor([2, 5, 5]))).toThrow(/input x has shape \[2, 5, 5\].*input_size 4/);
    expect(() => gru.forward(r.tensor([2, 0, 4]))).toThrow(ShapeError);
    expect(() => gru.forward(r.tensor([2, 5, 4]), r.tensor([4, 3, 6]))).toThrow(
      /h0 has shape \[4, 3, 6\], expected \[4, 2, 6\]/,
    );
    expect(() => gru.step(r.tensor([2, 4]))).toThrow(InputError);
    const lb = new DictBuilder(4).rnn(4, 4, 6, 1, 1, true);
    const lstm = build("lstm", lb, { I: 4, H: 6, L: 1, bidir: false, bias: true }, make) as LSTM;
    expect(() => lstm.forward(r.tensor([2, 5, 4]), r.tensor([1, 2, 6]))).toThrow(InputError);
    expect(() => lstm.step(r.tensor([2, 4]), { h: r.tensor([1, 2, 6]) })).toThrow(InputError);
    expect(() => lstm.step(r.tensor([2, 5]))).toThrow(ShapeError);
  });

  it("weights: bias off with biases in the file → unexpected; missing reverse weights listed", () => {
    const wb = new DictBuilder(5).rnn(4, 3, 5, 2, 2, true);
    wb.map.delete("weight_hh_l1_reverse");
    let err: unknown;
    try {
      build("lstm", wb, { I: 3, H: 5, L: 2, bidir: true, bias: false }, make);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WeightsError);
    const names = (err as WeightsError).names;
    expect(names).toContain("weight_hh_l1_reverse");
    expect(names).toContain("bias_ih_l0");
    expect(names).toContain("bias_hh_l1_reverse");
    expect(names.length).toBe(1 + 8);
    // a weight_ih of the wrong input width
    const wb2 = new DictBuilder(6).rnn(3, 4, 5, 1, 1, true);
    expect(() => build("gru", wb2, { I: 3, H: 5, L: 1, bidir: false, bias: true }, make)).toThrow(
      /"weight_ih_l0" has shape \[15, 4\], the config needs \[15, 3\]/,
    );
  });

  it("config errors are ConfigErrors", () => {
    const wb = new DictBuilder(5).rnn(1, 3, 5, 1, 1, true);
    expect(() =>
      loadModule(
        tensorSource(wb.map),
        (s) => new RNN(s, { inputSize: 3, hiddenSize: 5, nonlinearity: "sigmoid" as "tanh" }),
        { runtime: make() },
      ),
    ).toThrow(ConfigError);
    expect(() =>
      loadModule(tensorSource(wb.map), (s) => new RNN(s, { inputSize: 3, hiddenSize: 0 }), { runtime: make() }),
    ).toThrow(ConfigError);
  });
});

describe.each(bks)("recurrent weights on $name", ({ make }) => {
  it("are kept only packed: the heap holds the packed copies and the biases, not the unpacked weights", () => {
    for (const [mode, G] of [
      ["lstm", 4],
      ["gru", 3],
    ] as const) {
      const I = 13;
      const H = 9;
      const wb = new DictBuilder(41).rnn(G, I, H, 2, 2, true);
      const rt = make();
      const before = rt.heap.used();
      const net = build(mode, wb, { I, H, L: 2, bidir: true, bias: true }, () => rt);
      let packed = 0;
      let biases = 0;
      for (const dirs of net.weights) {
        for (const w of dirs) {
          expect(w.ih.ptr).toBe(0);
          expect(w.hh.ptr).toBe(0);
          packed += w.ihP!.floats + w.hhP!.floats + w.hhR!.floats;
          biases += w.bih!.shape[0]! + w.bhh!.shape[0]!;
        }
      }
      const allocations = net.weights.length * 2 * 5; // five buffers per direction, each padded to 16 bytes
      expect(rt.heap.used() - before).toBeLessThanOrEqual((packed + biases) * 4 + allocations * 16);
      // and the packed weights still compute what PyTorch does (the oracle tests above)
      const x = rng(5).tensor([2, 4, I], 1);
      const y = forward(net, x).output;
      expect(y.shape).toEqual([2, 4, 2 * H]);
      for (const v of y.data) expect(Number.isFinite(v)).toBe(true);
    }
  });
});
