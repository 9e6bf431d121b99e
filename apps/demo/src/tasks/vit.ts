/**
 * ViT in the worker (@wasmformer/vit): load a Hugging Face folder (config.json, model.safetensors,
 * preprocessor_config.json), preprocess an image as `ViTImageProcessor` does (Pillow resize, optional
 * centre crop, rescale, normalise), classify it, and return the CLS attention maps per layer and head
 * and the mean attention distance per layer and head (Dosovitskiy et al. 2021, fig. 7).
 */
import { ConfigError, InputError, Tensor } from "@wasmformer/core";
import { clsAttentionMap, meanAttentionDistance, PIL_RESAMPLE, resamplePil, ViTModel } from "@wasmformer/vit";
import { type FolderSource, type ProgressFn, readFolder, readJson } from "./folder.js";

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

interface Preprocess {
  doResize: boolean;
  size: [number, number];
  resample: number;
  doCenterCrop: boolean;
  crop: [number, number];
  doRescale: boolean;
  rescale: number;
  doNormalize: boolean;
  mean: [number, number, number];
  std: [number, number, number];
}

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
let pre: Preprocess | undefined;

const pair = (v: unknown, what: string): [number, number] => {
  if (typeof v === "number") return [v, v];
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (typeof o.height === "number" && typeof o.width === "number") return [o.height, o.width];
    if (typeof o.shortest_edge === "number") return [o.shortest_edge, o.shortest_edge];
  }
  throw new ConfigError(`preprocessor_config.json: ${what} must be a number or {height, width}`, what);
};

const triple = (v: unknown, what: string, dflt: number): [number, number, number] => {
  if (v === undefined) return [dflt, dflt, dflt];
  if (typeof v === "number") return [v, v, v];
  if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === "number")) return v as [number, number, number];
  throw new ConfigError(`preprocessor_config.json: ${what} must be 3 numbers`, what);
};

function parsePreprocessor(raw: Record<string, unknown> | undefined, imageSize: [number, number]): Preprocess {
  const r = raw ?? {};
  const size = r.size !== undefined ? pair(r.size, "size") : imageSize;
  const resample = r.resample === undefined ? 2 : Number(r.resample);
  if (!(resample in PIL_RESAMPLE))
    throw new ConfigError(`preprocessor_config.json: unknown resample ${r.resample}`, "resample");
  return {
    doResize: r.do_resize !== false,
    size,
    resample,
    doCenterCrop: r.do_center_crop === true,
    crop: r.crop_size !== undefined ? pair(r.crop_size, "crop_size") : size,
    doRescale: r.do_rescale !== false,
    rescale: typeof r.rescale_factor === "number" ? r.rescale_factor : 1 / 255,
    doNormalize: r.do_normalize !== false,
    mean: triple(r.image_mean, "image_mean", 0.5),
    std: triple(r.image_std, "image_std", 0.5),
  };
}

export async function loadVit(src: FolderSource, onProgress: ProgressFn): Promise<VitInfo> {
  const t0 = performance.now();
  model = undefined;
  const files = await readFolder(src, ["config.json", "model.safetensors"], ["preprocessor_config.json"], onProgress);
  const config = await readJson(files["config.json"], "config.json");
  const pp = files["preprocessor_config.json"]
    ? ((await readJson(files["preprocessor_config.json"], "preprocessor_config.json")) as Record<string, unknown>)
    : undefined;
  const blob = files["model.safetensors"];
  onProgress({ stage: "reading model.safetensors", loaded: 0, total: blob.size });
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const readMs = performance.now() - t0;
  onProgress({ stage: "building the model", loaded: blob.size, total: blob.size });
  const m = await ViTModel.fromPretrained({ config, weights: bytes });
  const c = m.config;
  pre = parsePreprocessor(pp, c.image_size);
  model = m;
  return {
    layers: c.num_hidden_layers,
    heads: c.num_attention_heads,
    hidden: c.hidden_size,
    imageSize: c.image_size,
    patchSize: c.patch_size[0],
    labels: m.hasClassifier ? Object.keys(c.id2label).length || c.num_labels : 0,
    classifier: m.hasClassifier,
    weightBytes: m.weightBytes,
    loadMs: performance.now() - t0,
    readMs,
    preprocess: pre,
  };
}

/** Decode an image file to RGB `[h, w, 3]` (no colour management, no premultiplication). */
async function decode(image: Blob): Promise<{ rgb: Uint8Array; h: number; w: number }> {
  let bmp: ImageBitmap;
  try {
    bmp = await createImageBitmap(image, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch (e) {
    throw new InputError(`the image could not be decoded: ${(e as Error).message}`);
  }
  const { width: w, height: h } = bmp;
  const ctx = new OffscreenCanvas(w, h).getContext("2d") as OffscreenCanvasRenderingContext2D;
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const rgb = new Uint8Array(w * h * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  return { rgb, h, w };
}

export async function classifyImage(image: Blob, topK = 5): Promise<VitResult> {
  if (!model || !pre) throw new ConfigError("no ViT model is loaded: load a checkpoint folder first");
  const m = model;
  const p = pre;
  const t0 = performance.now();
  let { rgb, h, w } = await decode(image);
  // ViTImageProcessor: resize (Pillow, 8-bit) → centre crop → rescale → normalise, channels first
  if (p.doResize && (h !== p.size[0] || w !== p.size[1])) {
    rgb = resamplePil(rgb, h, w, 3, p.size[0], p.size[1], PIL_RESAMPLE[p.resample]);
    [h, w] = p.size;
  }
  if (p.doCenterCrop && (h !== p.crop[0] || w !== p.crop[1])) {
    const [ch, cw] = p.crop;
    if (ch > h || cw > w) throw new InputError(`crop ${ch}x${cw} is larger than the resized image ${h}x${w}`);
    const top = Math.floor((h - ch) / 2);
    const left = Math.floor((w - cw) / 2);
    const out = new Uint8Array(ch * cw * 3);
    for (let y = 0; y < ch; y++)
      out.set(rgb.subarray(((top + y) * w + left) * 3, ((top + y) * w + left + cw) * 3), y * cw * 3);
    rgb = out;
    [h, w] = [ch, cw];
  }
  const px = new Float32Array(3 * h * w); // (1, 3, H, W)
  for (let c = 0; c < 3; c++) {
    const scale = p.doRescale ? p.rescale : 1;
    const mean = p.doNormalize ? p.mean[c] : 0;
    const std = p.doNormalize ? p.std[c] : 1;
    for (let i = 0; i < h * w; i++) px[c * h * w + i] = (rgb[i * 3 + c] * scale - mean) / std;
  }
  const out = m.forward(new Tensor(px, [1, 3, h, w]), { outputAttentions: true });
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
  const rgba = new Uint8ClampedArray(h * w * 4);
  for (let i = 0; i < h * w; i++) {
    rgba[i * 4] = rgb[i * 3];
    rgba[i * 4 + 1] = rgb[i * 3 + 1];
    rgba[i * 4 + 2] = rgb[i * 3 + 2];
    rgba[i * 4 + 3] = 255;
  }
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
