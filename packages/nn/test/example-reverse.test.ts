// The trained example model (examples/reverse-gru.safetensors, trained in PyTorch by
// examples/train_reverse.py) decodes with RNNSeq2Seq: it reverses digit sequences.
import { readFileSync } from "node:fs";
import { parseSafetensors, Tensor } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { RNNSeq2Seq } from "../src/rnn-seq2seq.js";
import { loadModule } from "../src/state-dict.js";
import { backends, rng } from "./helpers.js";

const bks = await backends();
const file = parseSafetensors(readFileSync(new URL("../examples/reverse-gru.safetensors", import.meta.url)));

describe.each(bks)("trained GRU encoder-decoder on $name", ({ make }) => {
  it("reverses random digit sequences (length 3–7), stopping at EOS", () => {
    const model = loadModule(
      file,
      (s) => new RNNSeq2Seq(s, { cell: "gru", srcVocabSize: 13, tgtVocabSize: 13, embedDim: 32, hiddenSize: 64 }),
      { runtime: make() },
    );
    const r = rng(2024);
    let exact = 0;
    const n = 40;
    for (let i = 0; i < n; i++) {
      const len = 3 + r.int(0, 5);
      const digits = Array.from({ length: len }, () => r.int(0, 10));
      const src = new Tensor(Int32Array.from(digits.map((d) => d + 3)), [1, len], "i32");
      const [out] = model.greedy(src, { maxNewTokens: len + 2, eosId: 2 });
      if (JSON.stringify(out) === JSON.stringify([...digits.reverse().map((d) => d + 3), 2])) exact++;
    }
    expect(exact / n).toBeGreaterThanOrEqual(0.9);
  });
});
