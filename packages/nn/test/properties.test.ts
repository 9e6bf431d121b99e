// Property tests (fast-check): random sizes and mask combinations for MultiheadAttention and the
// recurrent layers, against the float64 oracle, on every backend.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MultiheadAttention } from "../src/attention.js";
import { GRU, LSTM, RNN } from "../src/rnn.js";
import { loadModule, tensorSource } from "../src/state-dict.js";
import { backends, closeTo, rng } from "./helpers.js";
import * as O from "./oracle.js";
import { boolMask, DictBuilder, floatMask } from "./weights.js";

const bks = await backends();

describe.each(bks)("properties on $name", ({ make }) => {
  it("MultiheadAttention = oracle for random sizes, heads, masks, key padding and causality", () => {
    fc.assert(
      fc.property(
        fc.record({
          hd: fc.integer({ min: 1, max: 6 }),
          H: fc.integer({ min: 1, max: 4 }),
          B: fc.integer({ min: 1, max: 3 }),
          L: fc.integer({ min: 1, max: 9 }),
          S: fc.integer({ min: 1, max: 9 }),
          self: fc.boolean(),
          attn: fc.constantFrom("none", "bool", "f32", "bool3d"),
          kpm: fc.boolean(),
          causal: fc.boolean(),
          seed: fc.integer({ min: 0, max: 1e6 }),
        }),
        (c) => {
          const E = c.hd * c.H;
          const S = c.self ? c.L : c.S;
          const causal = c.causal && c.L === S;
          const r = rng(c.seed);
          const wb = new DictBuilder(c.seed + 1).mha("", E);
          const mha = loadModule(
            tensorSource(wb.map),
            (s) => new MultiheadAttention(s, { embedDim: E, numHeads: c.H }),
            { runtime: make() },
          );
          const q = r.tensor([c.B, c.L, E]);
          const k = c.self ? q : r.tensor([c.B, S, E]);
          const v = c.self ? q : r.tensor([c.B, S, E]);
          const am =
            c.attn === "bool"
              ? boolMask(r, [c.L, S])
              : c.attn === "f32"
                ? floatMask(r, [c.L, S])
                : c.attn === "bool3d"
                  ? boolMask(r, [c.B * c.H, c.L, S])
                  : undefined;
          const kp = c.kpm ? boolMask(r, [c.B, S], 0.4) : undefined;
          const got = mha.forward(q, k, v, { attnMask: am, keyPaddingMask: kp, isCausal: causal, needWeights: true });
          const want = O.mha(wb.record(), "", q.data, k.data, v.data, c.B, c.L, S, E, c.H, {
            attn: am
              ? { data: am.data, kind: am.dtype === "f32" ? "f32" : "bool", perSlice: am.ndim === 3 }
              : undefined,
            kpm: kp?.data,
            causal,
          });
          expect(closeTo(got.output, want.out, [c.B, c.L, E])).toBeUndefined();
          expect(closeTo(got.weights!, want.weights, [c.B, c.H, c.L, S])).toBeUndefined();
        },
      ),
      { numRuns: 40, seed: 42 },
    );
  });

  it("RNN / LSTM / GRU = oracle for random sizes, layers, directions, bias and initial states", () => {
    fc.assert(
      fc.property(
        fc.record({
          mode: fc.constantFrom("rnn_tanh", "rnn_relu", "lstm", "gru"),
          I: fc.integer({ min: 1, max: 6 }),
          H: fc.integer({ min: 1, max: 7 }),
          L: fc.integer({ min: 1, max: 3 }),
          bidir: fc.boolean(),
          bias: fc.boolean(),
          B: fc.integer({ min: 1, max: 3 }),
          T: fc.integer({ min: 1, max: 12 }),
          h0: fc.boolean(),
          seed: fc.integer({ min: 0, max: 1e6 }),
        }),
        (c) => {
          const D = c.bidir ? 2 : 1;
          const G = c.mode === "lstm" ? 4 : c.mode === "gru" ? 3 : 1;
          const wb = new DictBuilder(c.seed).rnn(G, c.I, c.H, c.L, D, c.bias);
          const opts = { inputSize: c.I, hiddenSize: c.H, numLayers: c.L, bidirectional: c.bidir, bias: c.bias };
          const net = loadModule(
            tensorSource(wb.map),
            (s) =>
              c.mode === "lstm"
                ? new LSTM(s, opts)
                : c.mode === "gru"
                  ? new GRU(s, opts)
                  : new RNN(s, { ...opts, nonlinearity: c.mode === "rnn_relu" ? "relu" : "tanh" }),
            { runtime: make() },
          );
          const r = rng(c.seed + 7);
          const x = r.tensor([c.B, c.T, c.I], 1.5);
          const h0 = c.h0 ? r.tensor([c.L * D, c.B, c.H]) : undefined;
          const c0 = c.h0 && c.mode === "lstm" ? r.tensor([c.L * D, c.B, c.H]) : undefined;
          const got = net instanceof LSTM ? net.forward(x, h0, c0) : (net as RNN | GRU).forward(x, h0);
          const want = O.rnn(c.mode, wb.record(), x.data, c.B, c.T, c.I, c.H, c.L, c.bidir, c.bias, h0?.data, c0?.data);
          expect(closeTo(got.output, want.output, [c.B, c.T, D * c.H])).toBeUndefined();
          expect(closeTo(got.h, want.h, [c.L * D, c.B, c.H])).toBeUndefined();
          if (c.mode === "lstm") expect(closeTo(got.c!, want.c, [c.L * D, c.B, c.H])).toBeUndefined();
        },
      ),
      { numRuns: 60, seed: 7 },
    );
  });
});
