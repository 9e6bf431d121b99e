// Training benchmark of ViTForImageClassification (not a test): a ViT-Tiny-sized model (patch 16,
// 224², hidden 192, 12 layers, 3 heads, MLP 768, 1000 classes), random init (`fromConfig`), batch B
// random images. One training step (zeroGrad + forward + backward + AdamW) against the loss-only
// forward of the same batch (`evaluate`), wall and CPU time, medians over ROUNDS after a warm-up.
//
//   node --experimental-wasm-relaxed-simd packages/vit/bench/train.mjs
//   env: B=8 ROUNDS=5 BACKEND=auto|wasm-simd|wasm-relaxed
import os from "node:os";

const B = Number(process.env.B ?? 8);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const BACKEND = process.env.BACKEND ?? "auto";

const core = await import("@wasmformer/core");
const { ViTForImageClassification } = await import("@wasmformer/vit");
const { AdamW } = await import("@wasmformer/nn");
const backend = await core.init({ backend: BACKEND });

const config = {
  model_type: "vit",
  image_size: 224,
  patch_size: 16,
  num_channels: 3,
  hidden_size: 192,
  num_hidden_layers: 12,
  num_attention_heads: 3,
  intermediate_size: 768,
  hidden_act: "gelu",
  layer_norm_eps: 1e-12,
  num_labels: 1000,
};
const model = await ViTForImageClassification.fromConfig(config, { seed: 1 });
model.train({ maxBatch: B });
const params = model.parameters();
const opt = new AdamW(model.runtime, params, { lr: 1e-4 });
let s = 3;
const rand = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
const batch = Array.from({ length: B }, () => ({
  pixelValues: Float32Array.from({ length: 3 * 224 * 224 }, () => 2 * rand() - 1),
  label: Math.floor(rand() * 1000),
}));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};
const nParams = params.reduce((a, p) => a + p.size, 0);
console.log(
  `ViT-Tiny-sized (12 layers, 192, 3 heads, 1000 classes): ${(nParams / 1e6).toFixed(2)} M params; batch ${B}×3×224×224; ` +
    `backend ${backend}; node ${process.version}; ${os.cpus()[0]?.model}; load ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
);
const f = { wall: [], cpu: [] };
const st = { wall: [], cpu: [], adamw: [] };
for (let r = 0; r <= ROUNDS; r++) {
  let t = performance.now();
  let c = cpu();
  model.evaluate(batch);
  const fw = performance.now() - t;
  const fc = cpu() - c;
  t = performance.now();
  c = cpu();
  opt.zeroGrad();
  model.lossAndGrad(batch, 1);
  const t2 = performance.now();
  opt.step();
  const sw = performance.now() - t;
  const sc = cpu() - c;
  if (r === 0) continue;
  f.wall.push(fw);
  f.cpu.push(fc);
  st.wall.push(sw);
  st.cpu.push(sc);
  st.adamw.push(performance.now() - t2);
}
const [F, FC, S, SC] = [median(f.wall), median(f.cpu), median(st.wall), median(st.cpu)];
console.log(`forward (evaluate)  wall ${F.toFixed(1)} ms, CPU ${FC.toFixed(1)} ms`);
console.log(
  `training step       wall ${S.toFixed(1)} ms = ${(S / F).toFixed(2)}× forward, CPU ${SC.toFixed(1)} ms = ` +
    `${(SC / FC).toFixed(2)}× forward  (target ≤ 3.2×); AdamW ${median(st.adamw).toFixed(1)} ms`,
);
model.dispose();
