/**
 * Image preprocessing as Hugging Face's `ViTImageProcessor` (and its relatives: DeiT, BEiT, DINO)
 * does it, from a `preprocessor_config.json`: convert to RGB → resize (Pillow filter, 8-bit) →
 * center crop → rescale (×1/255) → normalize ((x − mean) / std) → `[B, 3, H, W]` float32.
 * https://github.com/huggingface/transformers/blob/main/src/transformers/models/vit/image_processing_vit.py
 *
 * Inputs are RGBA pixel buffers shaped like the DOM's `ImageData` (`{ data, width, height }`), or
 * RGB / grey buffers with `channels: 3 | 1`. Browser images (`ImageBitmap`, `OffscreenCanvas`,
 * canvases) and encoded PNG/JPEG bytes go through `toImageData` in `image-io.ts` first.
 */
import { ConfigError, InputError, Tensor } from "@wasmformer/core";
import { PIL_RESAMPLE, type PilFilter, resamplePil } from "./resample.js";

/** An 8-bit image, row-major, interleaved channels (RGBA by default, like `ImageData`). */
export interface RawImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  /** Interleaved channels per pixel: 4 (RGBA, the default), 3 (RGB) or 1 (grey). */
  channels?: number;
}

/** `{ height, width }` or `{ shortest_edge }` (HF size dicts). */
export type SizeSpec = { height: number; width: number } | { shortest_edge: number; longest_edge?: number };

/** The fields of `preprocessor_config.json` that are used, with HF's ViT defaults. */
export interface ImageProcessorConfig {
  do_resize: boolean;
  size: SizeSpec;
  resample: PilFilter;
  do_center_crop: boolean;
  crop_size: { height: number; width: number };
  do_rescale: boolean;
  rescale_factor: number;
  do_normalize: boolean;
  image_mean: [number, number, number];
  image_std: [number, number, number];
  /** Crop offset rounding: `"floor"` (HF, `(orig − crop) // 2`) or `"round"` (torchvision's
   * `CenterCrop`, Python `round`, used by timm's eval transform). */
  crop_offset: "floor" | "round";
}

/** HF `IMAGENET_STANDARD_MEAN` / `_STD` (ViT's defaults). */
const STANDARD = [0.5, 0.5, 0.5] as [number, number, number];

function sizeSpec(v: unknown, field: string, square: boolean): SizeSpec {
  const pos = (x: unknown) => typeof x === "number" && Number.isInteger(x) && x > 0;
  if (pos(v)) {
    const s = v as number;
    return square ? { height: s, width: s } : { shortest_edge: s };
  }
  if (typeof v === "object" && v !== null) {
    const o = v as Record<string, unknown>;
    if (pos(o.height) && pos(o.width)) return { height: o.height as number, width: o.width as number };
    if (pos(o.shortest_edge)) {
      if (o.longest_edge !== undefined && !pos(o.longest_edge))
        throw new ConfigError("longest_edge must be a positive integer", field);
      return {
        shortest_edge: o.shortest_edge as number,
        ...(o.longest_edge !== undefined ? { longest_edge: o.longest_edge as number } : {}),
      };
    }
  }
  throw new ConfigError(
    `expected a positive integer, {height, width} or {shortest_edge}, got ${JSON.stringify(v)}`,
    field,
  );
}

function triple(v: unknown, field: string, dflt: [number, number, number]): [number, number, number] {
  if (v === undefined) return dflt;
  if (typeof v === "number" && Number.isFinite(v)) return [v, v, v];
  if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === "number" && Number.isFinite(x))) {
    return v as [number, number, number];
  }
  throw new ConfigError(`expected a number or 3 numbers, got ${JSON.stringify(v)}`, field);
}

function bool(v: unknown, field: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") throw new ConfigError(`expected a boolean, got ${JSON.stringify(v)}`, field);
  return v;
}

/**
 * Read a `preprocessor_config.json` object (missing fields get ViT's defaults; `defaultSize` is
 * the model's `image_size`).
 */
export function parseImageProcessorConfig(raw: unknown, defaultSize = 224): ImageProcessorConfig {
  const cfg = (raw ?? {}) as Record<string, unknown>;
  if (typeof cfg !== "object" || Array.isArray(cfg)) throw new ConfigError("preprocessor config must be a JSON object");
  let resample: PilFilter = "bilinear";
  if (cfg.resample !== undefined) {
    const r = cfg.resample;
    if (typeof r === "number" && PIL_RESAMPLE[r]) resample = PIL_RESAMPLE[r]!;
    else if (typeof r === "string" && Object.values(PIL_RESAMPLE).includes(r as PilFilter)) resample = r as PilFilter;
    else
      throw new ConfigError(
        `expected a PIL resampling code 0…5 or a filter name, got ${JSON.stringify(r)}`,
        "resample",
      );
  }
  const size = cfg.size === undefined ? { height: defaultSize, width: defaultSize } : sizeSpec(cfg.size, "size", true);
  const crop =
    cfg.crop_size !== undefined
      ? sizeSpec(cfg.crop_size, "crop_size", true)
      : "height" in size
        ? size
        : { height: size.shortest_edge, width: size.shortest_edge };
  if (!("height" in crop)) throw new ConfigError("crop_size must be {height, width} or an integer", "crop_size");
  const rf = cfg.rescale_factor ?? 1 / 255;
  if (typeof rf !== "number" || !Number.isFinite(rf))
    throw new ConfigError(`expected a number, got ${JSON.stringify(rf)}`, "rescale_factor");
  const std = triple(cfg.image_std, "image_std", STANDARD);
  if (std.some((s) => s === 0)) throw new ConfigError("image_std must not contain 0", "image_std");
  return {
    do_resize: bool(cfg.do_resize, "do_resize", true),
    size,
    resample,
    do_center_crop: bool(cfg.do_center_crop, "do_center_crop", false),
    crop_size: crop,
    do_rescale: bool(cfg.do_rescale, "do_rescale", true),
    rescale_factor: rf,
    do_normalize: bool(cfg.do_normalize, "do_normalize", true),
    image_mean: triple(cfg.image_mean, "image_mean", STANDARD),
    image_std: std,
    crop_offset: cfg.crop_offset === "round" ? "round" : "floor",
  };
}

/** Check a raw image and return it as tightly packed RGB (alpha dropped, grey replicated). */
export function toRgb(img: RawImage): { rgb: Uint8Array; width: number; height: number } {
  if (typeof img !== "object" || img === null) throw new InputError("image must be { data, width, height }");
  const { width, height } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new InputError(`image width and height must be positive integers, got ${width}x${height}`);
  }
  const ch = img.channels ?? 4;
  if (ch !== 1 && ch !== 3 && ch !== 4)
    throw new InputError(`image has ${ch} channels; 1 (grey), 3 (RGB) or 4 (RGBA) are supported`);
  const data = img.data;
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) {
    throw new InputError("image data must be a Uint8Array or Uint8ClampedArray (8-bit samples)");
  }
  const n = width * height;
  if (data.length !== n * ch) {
    const guess = data.length % n === 0 ? ` (it looks like ${data.length / n} channels)` : "";
    throw new InputError(
      `image data has ${data.length} bytes but ${width}x${height}x${ch} channels needs ${n * ch}${guess}`,
    );
  }
  const rgb = new Uint8Array(n * 3);
  if (ch === 3) rgb.set(data);
  else
    for (let i = 0; i < n; i++) {
      // PIL's convert("RGB") drops alpha (no compositing); grey is replicated
      rgb[3 * i] = data[i * ch]!;
      rgb[3 * i + 1] = data[i * ch + (ch === 1 ? 0 : 1)]!;
      rgb[3 * i + 2] = data[i * ch + (ch === 1 ? 0 : 2)]!;
    }
  return { rgb, width, height };
}

/** HF `get_resize_output_image_size`: `[height, width]` after resizing. */
export function resizeOutputSize(size: SizeSpec, height: number, width: number): [number, number] {
  if ("height" in size) return [size.height, size.width];
  const short = Math.min(height, width);
  const long = Math.max(height, width);
  let newShort = size.shortest_edge;
  let newLong = Math.trunc((newShort * long) / short);
  if (size.longest_edge !== undefined && newLong > size.longest_edge) {
    newShort = Math.trunc((size.longest_edge * newShort) / newLong);
    newLong = size.longest_edge;
  }
  return width <= height ? [newLong, newShort] : [newShort, newLong];
}

/** Python's `round` (half to even). */
const roundHalfEven = (x: number) => {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
};

/**
 * Center crop of an 8-bit `[h, w, ch]` image (zero padding where the crop is larger). The offset is
 * `(orig − crop) // 2` as in HF's `center_crop`, or `round((orig − crop) / 2)` as torchvision's.
 */
export function centerCrop(
  src: Uint8Array,
  h: number,
  w: number,
  ch: number,
  oh: number,
  ow: number,
  offset: "floor" | "round" = "floor",
): Uint8Array {
  const out = new Uint8Array(oh * ow * ch);
  // top/left of the crop in source coordinates (negative = padding)
  const at = offset === "floor" ? Math.floor : roundHalfEven;
  const top = at((h - oh) / 2);
  const left = at((w - ow) / 2);
  for (let y = 0; y < oh; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= h) continue;
    for (let x = 0; x < ow; x++) {
      const sx = x + left;
      if (sx < 0 || sx >= w) continue;
      for (let c = 0; c < ch; c++) out[(y * ow + x) * ch + c] = src[(sy * w + sx) * ch + c]!;
    }
  }
  return out;
}

/**
 * `ViTImageProcessor`: turns images into the model's `pixel_values`.
 * @example
 * ```ts
 * const proc = ViTImageProcessor.fromConfig(JSON.parse(preprocessorJson));
 * const pixelValues = proc.preprocess(imageData);   // Tensor [1, 3, 224, 224]
 * ```
 */
export class ViTImageProcessor {
  constructor(readonly config: ImageProcessorConfig) {}

  static fromConfig(raw: unknown, defaultSize = 224): ViTImageProcessor {
    return new ViTImageProcessor(parseImageProcessorConfig(raw, defaultSize));
  }

  /** One image → `[3, H, W]` floats (and its size). */
  processOne(img: RawImage): { data: Float32Array; height: number; width: number } {
    const c = this.config;
    let { rgb, width: w, height: h } = toRgb(img);
    if (c.do_resize) {
      const [oh, ow] = resizeOutputSize(c.size, h, w);
      if (oh !== h || ow !== w) rgb = resamplePil(rgb, h, w, 3, oh, ow, c.resample);
      h = oh;
      w = ow;
    }
    if (c.do_center_crop) {
      const { height: oh, width: ow } = c.crop_size;
      if (oh !== h || ow !== w) rgb = centerCrop(rgb, h, w, 3, oh, ow, c.crop_offset);
      h = oh;
      w = ow;
    }
    const out = new Float32Array(3 * h * w);
    const f = Math.fround;
    const mean = c.image_mean.map(f);
    const std = c.image_std.map(f);
    const n = h * w;
    for (let i = 0; i < n; i++) {
      for (let ch = 0; ch < 3; ch++) {
        let v = rgb[3 * i + ch]!;
        if (c.do_rescale) v = f(v * c.rescale_factor); // HF: float64 product, stored as float32
        if (c.do_normalize) v = f(f(v - mean[ch]!) / std[ch]!);
        if (!Number.isFinite(v)) {
          // only a preprocessor config can do this (8-bit samples are finite): say which pixel and why
          throw new InputError(
            `pixel_values[${ch}, ${Math.floor(i / w)}, ${i % w}] = ${v} is not finite (sample ${rgb[3 * i + ch]} after rescale_factor ${c.rescale_factor}, image_mean ${c.image_mean[ch]}, image_std ${c.image_std[ch]})`,
          );
        }
        out[ch * n + i] = v;
      }
    }
    return { data: out, height: h, width: w };
  }

  /** Images → `pixel_values` `[B, 3, H, W]` (all images must come out the same size). */
  preprocess(images: RawImage | readonly RawImage[]): Tensor<"f32"> {
    const list = Array.isArray(images) ? (images as readonly RawImage[]) : [images as RawImage];
    if (list.length === 0) throw new InputError("preprocess: no images");
    const outs = list.map((im, i) => {
      try {
        return this.processOne(im);
      } catch (e) {
        if (e instanceof InputError && list.length > 1) throw new InputError(`image ${i}: ${e.message}`);
        throw e;
      }
    });
    const { height, width } = outs[0]!;
    outs.forEach((o, i) => {
      if (o.height !== height || o.width !== width) {
        throw new InputError(
          `image ${i} comes out ${o.height}x${o.width}, image 0 ${height}x${width}: cannot batch them`,
        );
      }
    });
    const each = 3 * height * width;
    const data = new Float32Array(list.length * each);
    for (const [i, o] of outs.entries()) data.set(o.data, i * each);
    return new Tensor(data, [list.length, 3, height, width]);
  }
}
