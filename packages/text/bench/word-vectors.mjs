// Top-k cosine search: 100,000 words × 300 dims, one query, single thread, `mostSimilar(vector, 10)`.
// The wasm builds run gemv (SIMD dot products) + topk (heap selection) on unit rows in wasm memory;
// `ref` is the same two kernels in plain TypeScript.
// Run after `pnpm build`: `node --experimental-wasm-relaxed-simd bench/word-vectors.mjs [words] [dim]`.
import { createRefRuntime, createRuntime, init } from "@wasmformer/core";
import { WordVectors } from "../dist/index.js";

const n = Number(process.argv[2] ?? 100_000);
const dim = Number(process.argv[3] ?? 300);
let s = 12345;
const rand = () => {
  s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
  return s / 4294967296 - 0.5;
};
const words = Array.from({ length: n }, (_, i) => `w${i}`);
const data = Float32Array.from({ length: n * dim }, rand);
const queries = Array.from({ length: 40 }, () => Float32Array.from({ length: dim }, rand));

const runtimes = [];
await init({ backend: "wasm-relaxed" });
runtimes.push(createRuntime());
await init({ backend: "wasm-simd" });
runtimes.push(createRuntime());
runtimes.push(createRefRuntime());

console.log(
  `mostSimilar(vector, 10) over ${n.toLocaleString("en-US")} words × ${dim} dims, one query at a time, single thread; node ${process.version}`,
);
console.log("| backend | median ms / query | min ms | load (normalise) ms |");
console.log("|---|---:|---:|---:|");
let reference;
for (const rt of runtimes) {
  const t0 = performance.now();
  const wv = new WordVectors(words, data, dim, rt);
  const load = performance.now() - t0;
  const reps = rt.backend === "ref" ? 10 : queries.length;
  for (let i = 0; i < 3; i++) wv.mostSimilar(queries[i], 10); // warm-up
  const times = [];
  let top;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    const r = wv.mostSimilar(queries[i], 10);
    times.push(performance.now() - t);
    if (i === 0) top = r.map((x) => x.word).join(",");
  }
  reference ??= top;
  if (top !== reference) throw new Error(`${rt.backend}: different neighbours (${top} vs ${reference})`);
  times.sort((a, b) => a - b);
  console.log(
    `| ${rt.backend} | ${times[times.length >> 1].toFixed(2)} | ${times[0].toFixed(2)} | ${load.toFixed(0)} |`,
  );
}
