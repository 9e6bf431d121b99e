// The RNN encoder–decoder against the float64 oracle (embedding → rnn → final state → per-step decoder).
import { Tensor } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { RNNSeq2Seq } from "../src/rnn-seq2seq.js";
import { loadModule, tensorSource } from "../src/state-dict.js";
import { backends } from "./helpers.js";
import * as O from "./oracle.js";
import { DictBuilder } from "./weights.js";

const bks = await backends();
const [Vs, Vt, E, H, L] = [11, 7, 5, 6, 2];

describe.each(bks)("RNNSeq2Seq on $name", ({ make }) => {
  for (const [cell, G] of [
    ["gru", 3],
    ["lstm", 4],
    ["rnn_tanh", 1],
  ] as const) {
    it(`${cell}: greedy decoding follows the oracle, rows stop at EOS`, () => {
      const wb = new DictBuilder(G * 10)
        .add("encoder.embedding.weight", [Vs, E], 1)
        .add("decoder.embedding.weight", [Vt, E], 1);
      const enc = new DictBuilder(G * 10 + 1).rnn(G, E, H, L, 1, true);
      const dec = new DictBuilder(G * 10 + 2).rnn(G, E, H, L, 1, true);
      for (const [k, v] of enc.map) wb.map.set(`encoder.rnn.${k}`, v);
      for (const [k, v] of dec.map) wb.map.set(`decoder.rnn.${k}`, v);
      wb.add("decoder.out.weight", [Vt, H], 2).add("decoder.out.bias", [Vt], 0.5);
      const model = loadModule(
        tensorSource(wb.map),
        (s) =>
          new RNNSeq2Seq(s, { cell, srcVocabSize: Vs, tgtVocabSize: Vt, embedDim: E, hiddenSize: H, numLayers: L }),
        {
          runtime: make(),
        },
      );
      const src = [
        [3, 9, 1, 4, 10],
        [2, 2, 7, 0, 5],
      ];
      const w = wb.record();
      const mode = cell === "rnn_tanh" ? "rnn_tanh" : cell;
      const sub = (p: string) =>
        Object.fromEntries(
          Object.entries(w)
            .filter(([k]) => k.startsWith(p))
            .map(([k, v]) => [k.slice(p.length), v]),
        );
      const N = 8;
      // oracle: pick an EOS that occurs in the unconstrained greedy output of row 0
      const oracle = (row: number[], eos?: number) => {
        const x = row.flatMap((id) => Array.from(w["encoder.embedding.weight"].subarray(id * E, id * E + E)));
        let st = O.rnn(mode, sub("encoder.rnn."), x, 1, row.length, E, H, L, false, true);
        let y = 1;
        const out: number[] = [];
        for (let t = 0; t < N; t++) {
          const xe = Array.from(w["decoder.embedding.weight"].subarray(y * E, y * E + E));
          st = O.rnn(mode, sub("decoder.rnn."), xe, 1, 1, E, H, L, false, true, st.h, st.c);
          const logits = O.linear(st.output, 1, w["decoder.out.weight"], w["decoder.out.bias"], H, Vt);
          let best = 0;
          for (let v = 1; v < Vt; v++) if (logits[v] > logits[best]) best = v;
          out.push(best);
          if (best === eos) break;
          y = best;
        }
        return out;
      };
      const ids = new Tensor(Int32Array.from(src.flat()), [2, 5], "i32");
      const got = model.greedy(ids, { maxNewTokens: N });
      expect(got).toEqual([oracle(src[0]), oracle(src[1])]);
      const eos = got[0][2];
      const stopped = model.greedy(ids, { maxNewTokens: N, eosId: eos });
      expect(stopped).toEqual([oracle(src[0], eos), oracle(src[1], eos)]);
      expect(stopped[0].length).toBeLessThanOrEqual(3);
    });
  }
});
