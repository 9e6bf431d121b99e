// An RNN encoder–decoder (GRU) that reverses digit sequences, trained in PyTorch by
// examples/train_reverse.py and run here with @wasmformer/nn: greedy decoding, then the same
// decoding written out with the streaming step() API.
//
//   pnpm --filter @wasmformer/nn run build
//   node --experimental-wasm-relaxed-simd packages/nn/examples/rnn-seq2seq.mjs 3 1 4 1 5 9
import { readFileSync } from "node:fs";
import * as core from "@wasmformer/core";
import { loadModule, RNNSeq2Seq } from "../dist/index.js";

const BOS = 1;
const EOS = 2;
const digitsToIds = (ds) => ds.map((d) => d + 3);
const idsToDigits = (ids) => ids.filter((i) => i >= 3).map((i) => i - 3);

await core.init(); // the wasm SIMD backend (relaxed SIMD where the engine has it)
const weights = core.parseSafetensors(readFileSync(new URL("./reverse-gru.safetensors", import.meta.url)));
const model = loadModule(
  weights,
  (s) =>
    new RNNSeq2Seq(s, { cell: "gru", srcVocabSize: 13, tgtVocabSize: 13, embedDim: 32, hiddenSize: 64, bosId: BOS }),
);

const inputs =
  process.argv.length > 2
    ? [process.argv.slice(2).map(Number)]
    : [
        [3, 1, 4, 1, 5],
        [2, 7, 1, 8, 2, 8],
        [9, 0, 5],
      ];
for (const digits of inputs) {
  if (digits.some((d) => !Number.isInteger(d) || d < 0 || d > 9)) throw new Error("give digits 0..9");
  const src = new core.Tensor(Int32Array.from(digitsToIds(digits)), [1, digits.length], "i32");
  const [out] = model.greedy(src, { maxNewTokens: digits.length + 1, eosId: EOS });
  console.log(`${digits.join(" ")}  →  ${idsToDigits(out).join(" ")}${out.at(-1) === EOS ? "  <eos>" : ""}`);
}

// The same greedy loop by hand: the encoder's final state seeds the decoder, which then advances
// one token at a time with step() — the streaming API (GRU.step / LSTM.step / RNN.step).
const digits = inputs[0];
let state = model.encode(new core.Tensor(Int32Array.from(digitsToIds(digits)), [1, digits.length], "i32"));
let y = BOS;
const out = [];
for (let t = 0; t <= digits.length && y !== EOS; t++) {
  const emb = model.decEmbedding.forward(new core.Tensor(Int32Array.of(y), [1], "i32")); // [1, 32]
  const r = model.decRnn.step(emb, state); // output [1, 64], new state h [1, 1, 64]
  const logits = model.out.forward(r.output).data;
  y = logits.indexOf(Math.max(...logits));
  state = { h: r.h };
  out.push(y);
}
console.log(`step() by hand: ${idsToDigits(out).join(" ")}`);
