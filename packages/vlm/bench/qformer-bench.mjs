// Q-Former forward time at BLIP-2's sizes (hidden 768, 12 heads, intermediate 3072, 32 queries over
// 257 image tokens of width 1408 — EVA ViT-g/14 at 224 px), random weights, per backend.
// Layers: 4 by default (cross-attention on 0 and 2, frequency 2 as BLIP-2); BLIP-2 has 12, and the
// time grows linearly with the layer count. Usage: node --experimental-wasm-relaxed-simd bench/qformer-bench.mjs [layers] [runs]
import { init, Tensor } from "@wasmformer/core";
import { Blip2QFormerModel, weightSource } from "@wasmformer/vlm";

const L = Number(process.argv[2] ?? 4);
const runs = Number(process.argv[3] ?? 5);
const cfg = {
  hidden_size: 768,
  num_hidden_layers: L,
  num_attention_heads: 12,
  intermediate_size: 3072,
  hidden_act: "gelu",
  layer_norm_eps: 1e-12,
  cross_attention_frequency: 2,
  encoder_hidden_size: 1408,
};
const Q = 32;
const Timg = 257;
let seed = 1;
const rand = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 2 ** 32 - 0.5;
};
const t = (shape, s = 0.05) => {
  const d = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < d.length; i++) d[i] = s * rand();
  return new Tensor(d, shape);
};
const m = new Map();
m.set("query_tokens", t([1, Q, 768], 1));
m.set("qformer.layernorm.weight", t([768], 1));
m.set("qformer.layernorm.bias", t([768]));
for (const w of (await import("@wasmformer/vlm")).qformerWants(cfg, Q)) if (!m.has(w.name)) m.set(w.name, t(w.shape));
const params = [...m.values()].reduce((a, x) => a + x.size, 0);
const img = t([1, Timg, 1408], 1);

console.log(
  `Q-Former ${L} layers, ${(params / 1e6).toFixed(1)} M parameters, ${Q} queries × ${Timg} image tokens, batch 1`,
);
for (const backend of ["wasm-relaxed", "wasm-simd", "ref"]) {
  await init({ backend });
  const q = await Blip2QFormerModel.fromWeights(cfg, Q, weightSource(m));
  q.forward(img); // warm-up (plans the scratch)
  const times = [];
  for (let i = 0; i < (backend === "ref" ? Math.min(runs, 2) : runs); i++) {
    const t0 = performance.now();
    q.forward(img);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const med = times[Math.floor(times.length / 2)];
  console.log(
    `${backend.padEnd(12)} median ${med.toFixed(1)} ms  (${(med / L).toFixed(1)} ms/layer, min ${times[0].toFixed(1)} ms, ${times.length} runs)`,
  );
}
