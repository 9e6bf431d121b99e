/**
 * ViT in the worker (@wasmformer/vit): load a Hugging Face folder (config.json, model.safetensors,
 * preprocessor_config.json), preprocess an image with the package's `ViTImageProcessor` (Pillow resize,
 * optional centre crop, rescale, normalise), classify it, and return the CLS attention maps per layer
 * and head and the mean attention distance per layer and head (Dosovitskiy et al. 2021, fig. 7).
 */
import { ConfigError, InputError, openSafetensors, Tensor } from "@wasmformer/core";
import {
  clsAttentionMap,
  type ImageProcessorConfig,
  meanAttentionDistance,
  sniffFormat,
  ViTModel,
} from "@wasmformer/vit";
import { digitPixels, mnistDigit } from "./digit.js";
import { type FolderSource, type Latest, type ProgressFn, readFolder, readJson } from "./folder.js";
import { loadSlots } from "./slots.js";

export interface VitInfo {
  layers: number;
  heads: number;
  hidden: number;
  imageSize: [number, number];
  patchSize: number;
  labels: number;
  classifier: boolean;
  weightBytes: number;
  loadMs: number;
  /** of which reading/downloading the files */
  readMs: number;
  preprocess: Preprocess;
}

type Preprocess = ImageProcessorConfig;

export interface VitResult {
  top: { index: number; label: string; prob: number }[];
  /** the model input as RGBA, for drawing overlays: `[height, width, 4]` */
  input: { width: number; height: number; rgba: Uint8ClampedArray };
  grid: [number, number];
  layers: number;
  heads: number;
  /** `[layers, heads, gh, gw]` attention of the CLS query to each patch */
  cls: Float32Array;
  /** `[layers, heads]` mean attention distance in pixels */
  meanDistance: Float32Array;
  ms: number;
}

let model: ViTModel | undefined;

/**
 * Load a ViT folder, or its files already being read (config.json, model.safetensors, optional
 * preprocessor_config.json); `kernels` (the worker's kernel loading) is awaited once they are read.
 */
export async function loadVit(
  src: FolderSource | Promise<Record<string, Blob>>,
  onProgress: ProgressFn,
  kernels?: Promise<unknown>,
  latest: Latest = loadSlots.vit.begin(),
): Promise<VitInfo> {
  const t0 = performance.now();
  // free the previous model's wasm memory now: the new one is loaded into it
  model?.dispose();
  model = undefined;
  const files = await ("kind" in src
    ? readFolder(src, ["config.json", "model.safetensors"], ["preprocessor_config.json"], onProgress)
    : src);
  const config = await readJson(files["config.json"], "config.json");
  const pp = files["preprocessor_config.json"]
    ? ((await readJson(files["preprocessor_config.json"], "preprocessor_config.json")) as Record<string, unknown>)
    : undefined;
  const blob = files["model.safetensors"];
  const readMs = performance.now() - t0;
  await kernels;
  onProgress({ stage: "copying the weights into the heap", loaded: 0, total: blob.size });
  // read lazily, one tensor at a time, straight from the Blob
  const file = await openSafetensors(blob);
  let m: ViTModel;
  try {
    m = await ViTModel.fromPretrained({ config, weights: file, preprocessor: pp });
  } finally {
    await file.close();
  }
  onProgress({ stage: "built", loaded: blob.size, total: blob.size });
  model = latest(m);
  return describe(m, performance.now() - t0, readMs);
}

function describe(m: ViTModel, loadMs: number, readMs: number): VitInfo {
  const c = m.config;
  return {
    layers: c.num_hidden_layers,
    heads: c.num_attention_heads,
    hidden: c.hidden_size,
    imageSize: c.image_size,
    patchSize: c.patch_size[0],
    labels: m.hasClassifier ? Object.keys(c.id2label).length || c.num_labels : 0,
    classifier: m.hasClassifier,
    weightBytes: m.weightBytes,
    loadMs,
    readMs,
    preprocess: m.processor.config,
  };
}

/** Make `m` (e.g. the Train page's model, in inference mode) the ViT page's model. */
export function useVitModel(m: ViTModel): VitInfo {
  loadSlots.vit.begin(); // a load still running must not replace it
  if (m !== model) model?.dispose();
  model = m;
  return describe(m, 0, 0);
}

export async function classifyImage(image: Blob, topK = 5): Promise<VitResult> {
  if (!model) throw new ConfigError("no ViT model is loaded: load a checkpoint folder first");
  const m = model;
  const t0 = performance.now();
  // decode and preprocess with the checkpoint's ViTImageProcessor → (1, 3, H, W). PNG and JPEG go to
  // the package as bytes; other formats the browser knows (WebP, GIF, AVIF…) as an ImageBitmap.
  const bytes = new Uint8Array(await image.arrayBuffer());
  let input: Uint8Array | ImageBitmap = bytes;
  if (!sniffFormat(bytes)) {
    try {
      input = await createImageBitmap(new Blob([bytes]), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    } catch {
      throw new InputError(`the image could not be decoded (not PNG or JPEG, and the browser cannot read it either)`);
    }
  }
  const px = await m.pixelValues(input);
  return analyse(m, px, t0, topK);
}

/**
 * Classify a drawn digit: `gray` (`[h, w]`, 0 = background, 255 = ink) is made MNIST-like
 * (`mnistDigit`) and given to the model at its image size and channels with its processor's
 * normalisation (the digits checkpoint's preprocessing).
 */
export function classifyDigit(gray: Uint8Array, w: number, h: number, topK = 10): VitResult {
  if (!model) throw new ConfigError("no ViT model is loaded: load a checkpoint folder first");
  const t0 = performance.now();
  const c = model.config;
  const size = c.image_size[0];
  const data = digitPixels(mnistDigit(gray, w, h), size, c.num_channels, model.processor.config);
  return analyse(model, new Tensor(data, [1, c.num_channels, size, size]), t0, topK);
}

/** Forward with attentions → top classes, CLS maps, mean attention distances, the input as RGBA. */
function analyse(m: ViTModel, px: Tensor, t0: number, topK: number): VitResult {
  const [, C, h, w] = px.shape;
  const out = m.forward(px, { outputAttentions: true });
  const atts = out.attentions ?? [];
  const grid = out.grid;
  const L = atts.length;
  const H = m.config.num_attention_heads;
  const N = grid[0] * grid[1];
  const cls = new Float32Array(L * H * N);
  atts.forEach((a, l) => {
    cls.set(clsAttentionMap(a, grid).data as Float32Array, l * H * N);
  });
  const meanDistance = Float32Array.from(
    meanAttentionDistance(atts, grid, m.config.patch_size[0]).data as Float32Array,
  );
  const top: VitResult["top"] = [];
  if (out.logits) {
    const z = out.logits.data as Float32Array;
    let mx = Number.NEGATIVE_INFINITY;
    for (const v of z) mx = Math.max(mx, v);
    let sum = 0;
    const e = Array.from(z, (v) => Math.exp(v - mx));
    for (const v of e) sum += v;
    const order = e.map((v, i) => [v / sum, i] as const).sort((a, b) => b[0] - a[0]);
    for (const [prob, index] of order.slice(0, topK)) {
      top.push({ index, prob, label: m.config.id2label[String(index)] ?? `LABEL_${index}` });
    }
  }
  // what the model saw, for the overlays: undo normalisation and rescaling
  const p = m.processor.config;
  const data = px.data as Float32Array;
  const rgba = new Uint8ClampedArray(h * w * 4);
  for (let c = 0; c < 3; c++) {
    const k = Math.min(c, C - 1); // a grey model's one channel shows as grey
    const mean = p.do_normalize ? (p.image_mean[k] ?? p.image_mean[0]) : 0;
    const std = p.do_normalize ? (p.image_std[k] ?? p.image_std[0]) : 1;
    const scale = p.do_rescale ? p.rescale_factor : 1;
    for (let i = 0; i < h * w; i++) rgba[i * 4 + c] = Math.round((data[k * h * w + i] * std + mean) / scale);
  }
  for (let i = 0; i < h * w; i++) rgba[i * 4 + 3] = 255;
  return {
    top,
    input: { width: w, height: h, rgba },
    grid,
    layers: L,
    heads: H,
    cls,
    meanDistance,
    ms: performance.now() - t0,
  };
}

export const vitTransferables = (r: VitResult): ArrayBuffer[] =>
  [r.input.rgba.buffer, r.cls.buffer, r.meanDistance.buffer] as ArrayBuffer[];
