// Per-kernel time breakdown of one benchmark model on the relaxed-SIMD build (wraps every kernel of
// the runtime with a timer). Not a test.   node --experimental-wasm-relaxed-simd bench/profile.mjs lstm|gru|mha197|mha512
import { readFileSync } from "node:fs";
import * as core from "@wasmformer/core";
import * as nn from "../dist/index.js";

await core.init({ backend: "wasm-relaxed" });
const rt = core.createRuntime();
const stats = {};
const k = {};
for (const p of Object.keys(rt.k)) {
  const t = rt.k;
  const f = t[p];
  if (typeof f !== "function") continue;
  k[p] = (...a) => {
    const t0 = performance.now();
    const r = f.apply(t, a);
    // GEMMs are split by shape: one row (recurrent steps, decoding) or many (projections)
    const key = p === "gemm" || p === "gemmPacked" ? `${p} M${a[0] === 1 ? "=1" : ">1"}` : p;
    const s = (stats[key] ??= [0, 0]);
    s[0] += performance.now() - t0;
    s[1]++;
    return r;
  };
}
const prt = { backend: rt.backend, heap: rt.heap, k };
const name = process.argv[2] ?? "lstm";
const w = core.parseSafetensors(readFileSync(`bench/models/${name}.safetensors`));
const io = core.parseSafetensors(readFileSync(`bench/models/${name}.io.safetensors`));
const m = nn.loadModule(
  w,
  (s) =>
    name === "lstm"
      ? new nn.LSTM(s, { inputSize: 128, hiddenSize: 256, numLayers: 2 })
      : name === "gru"
        ? new nn.GRU(s, { inputSize: 128, hiddenSize: 256, numLayers: 2 })
        : new nn.MultiheadAttention(
            s,
            name === "mha197" ? { embedDim: 192, numHeads: 3 } : { embedDim: 768, numHeads: 12 },
          ),
  { runtime: prt },
);
const x = io.get("input.x");
const run = () => (name.startsWith("mha") ? m.forward(x, x, x) : m.forward(x));
for (let i = 0; i < 20; i++) run();
for (const s of Object.values(stats)) {
  s[0] = 0;
  s[1] = 0;
}
const N = name === "mha512" ? 5 : 50;
const t0 = performance.now();
for (let i = 0; i < N; i++) run();
const tot = (performance.now() - t0) / N;
console.log(name, "total", tot.toFixed(2), "ms");
for (const [p, [t, c]] of Object.entries(stats)) console.log(p.padEnd(12), (t / N).toFixed(3), "ms", c / N, "calls");
