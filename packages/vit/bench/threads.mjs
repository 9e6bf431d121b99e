// Thread scaling of the ViT forward (batch 1, 224², patch 16) on random weights of the real shapes:
// ViT-Tiny and ViT-Base, 1 thread (single-thread build) against 2 threads (or THREADS="2,3"), both
// models in one process, runs interleaved. Not a test.
//
//   node --experimental-wasm-relaxed-simd packages/vit/bench/threads.mjs [tiny|base|all] [--rounds 8]
import { header, interleaved, loadNote, row } from "../../core/bench/threads-util.mjs";

const core = await import("@wasmformer/core");
const vit = await import("../dist/index.js");
const args = process.argv.slice(2);
const which = args.find((a) => !a.startsWith("--") && !/^\d+$/.test(a)) ?? "all";
const rounds = Number(args[args.indexOf("--rounds") + 1] || 8);
const counts = (process.env.THREADS ?? "2").split(",").map(Number);

const SIZES = { tiny: { D: 192, heads: 3 }, base: { D: 768, heads: 12 } };

function weights(D, I, layers, seed) {
  let s = seed >>> 0;
  const t = {};
  const rnd = (shape, scale) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      a[i] = (s / 2 ** 32 - 0.5) * scale;
    }
    return new core.Tensor(a, shape);
  };
  const N = 196;
  t["vit.embeddings.cls_token"] = rnd([1, 1, D], 1);
  t["vit.embeddings.position_embeddings"] = rnd([1, N + 1, D], 1);
  t["vit.embeddings.patch_embeddings.projection.weight"] = rnd([D, 3, 16, 16], 0.05);
  t["vit.embeddings.patch_embeddings.projection.bias"] = rnd([D], 0.02);
  t["vit.layernorm.weight"] = rnd([D], 2);
  t["vit.layernorm.bias"] = rnd([D], 0.02);
  t["classifier.weight"] = rnd([1000, D], 0.1);
  t["classifier.bias"] = rnd([1000], 0.02);
  for (let i = 0; i < layers; i++) {
    const p = `vit.encoder.layer.${i}.`;
    for (const n of ["query", "key", "value"]) {
      t[`${p}attention.attention.${n}.weight`] = rnd([D, D], 0.1);
      t[`${p}attention.attention.${n}.bias`] = rnd([D], 0.02);
    }
    t[`${p}attention.output.dense.weight`] = rnd([D, D], 0.1);
    t[`${p}attention.output.dense.bias`] = rnd([D], 0.02);
    t[`${p}intermediate.dense.weight`] = rnd([I, D], 0.1);
    t[`${p}intermediate.dense.bias`] = rnd([I], 0.02);
    t[`${p}output.dense.weight`] = rnd([D, I], 0.05);
    t[`${p}output.dense.bias`] = rnd([D], 0.02);
    for (const n of ["layernorm_before", "layernorm_after"]) {
      t[`${p}${n}.weight`] = rnd([D], 2);
      t[`${p}${n}.bias`] = rnd([D], 0.02);
    }
  }
  return core.writeSafetensors(t);
}

const pixels = new core.Tensor(
  new Float32Array(3 * 224 * 224).map((_, i) => Math.sin(i * 0.01)),
  [1, 3, 224, 224],
);
console.log(header("model", counts));
for (const size of which === "all" ? ["tiny", "base"] : [which]) {
  const { D, heads } = SIZES[size];
  const config = {
    architectures: ["ViTForImageClassification"],
    model_type: "vit",
    hidden_size: D,
    num_hidden_layers: 12,
    num_attention_heads: heads,
    intermediate_size: 4 * D,
    hidden_act: "gelu",
    layer_norm_eps: 1e-12,
    image_size: 224,
    patch_size: 16,
    num_channels: 3,
    qkv_bias: true,
    num_labels: 1000,
  };
  const bytes = weights(D, 4 * D, 12, 7);
  const engines = [];
  let first;
  for (const threads of [1, ...counts]) {
    await core.init({ threads });
    const model = await vit.ViTForImageClassification.fromPretrained({ config, weights: bytes });
    const out = model.forward(pixels).logits.data.slice();
    // same bits on every thread count
    if (!first) first = out;
    else if (!out.every((v, i) => Object.is(v, first[i]))) throw new Error(`${threads} threads: different logits`);
    engines.push({ run: () => model.forward(pixels) });
  }
  const ms = await interleaved(engines, { rounds });
  console.log(row(`ViT-${size[0].toUpperCase()}${size.slice(1)}/16, 224², batch 1`, ms));
}
console.log(`\n${loadNote()}; backend ${core.backendName()}`);
core.terminateThreads();
