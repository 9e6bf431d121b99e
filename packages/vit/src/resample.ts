/**
 * Separable image resampling, in two flavours:
 *
 * - `interpolateBicubic`: PyTorch `F.interpolate(mode="bicubic", align_corners=False)` (cubic
 *   convolution with A = −0.75, border samples clamped, no antialiasing). This is what Hugging Face's
 *   `ViTEmbeddings.interpolate_pos_encoding` uses to resize the position-embedding grid.
 * - `resamplePil`: Pillow's `Image.resize` (`ImagingResample`): a filter whose support widens with
 *   the downscale factor (antialiasing), weights renormalised over the in-range taps, horizontal
 *   pass then vertical pass. On 8-bit images it uses Pillow's 22-bit fixed-point arithmetic and
 *   rounds to uint8 after each pass, so it reproduces what HF image processors feed the model
 *   (they resize through PIL). On float data (`resamplePilF32`) it is PyTorch's `antialias=True`
 *   interpolation (timm's `resample_abs_pos_embed`).
 */

// ---------------------------------------------------------------------------------------------
// PyTorch bicubic (no antialias)

const A_TORCH = -0.75;
const cc1 = (x: number) => ((A_TORCH + 2) * x - (A_TORCH + 3)) * x * x + 1; // |x| ≤ 1
const cc2 = (x: number) => ((A_TORCH * x - 5 * A_TORCH) * x + 8 * A_TORCH) * x - 4 * A_TORCH; // 1 < |x| < 2

/** Tap indices (clamped) and weights for one output coordinate of a torch bicubic resize. */
function torchTaps(inSize: number, outSize: number): { idx: Int32Array; w: Float64Array } {
  const scale = inSize / outSize;
  const idx = new Int32Array(outSize * 4);
  const w = new Float64Array(outSize * 4);
  for (let o = 0; o < outSize; o++) {
    const src = (o + 0.5) * scale - 0.5; // not clamped for cubic (PyTorch area_pixel_compute_source_index)
    const i0 = Math.floor(src);
    const t = src - i0;
    const ws = [cc2(t + 1), cc1(t), cc1(1 - t), cc2(2 - t)];
    for (let k = 0; k < 4; k++) {
      idx[o * 4 + k] = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
      w[o * 4 + k] = ws[k]!;
    }
  }
  return { idx, w };
}

/**
 * Resize a `[h, w, C]` (channels last) float grid to `[oh, ow, C]` like
 * `F.interpolate(x.permute(..., C, h, w), size=(oh, ow), mode="bicubic", align_corners=False)`.
 * Computed in f64, rounded once.
 */
export function interpolateBicubic(
  src: Float32Array,
  h: number,
  w: number,
  C: number,
  oh: number,
  ow: number,
): Float32Array {
  const out = new Float32Array(oh * ow * C);
  if (oh === h && ow === w) {
    out.set(src.subarray(0, h * w * C));
    return out;
  }
  const ty = torchTaps(h, oh);
  const tx = torchTaps(w, ow);
  const acc = new Float64Array(C);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      acc.fill(0);
      for (let i = 0; i < 4; i++) {
        const wy = ty.w[y * 4 + i]!;
        const row = ty.idx[y * 4 + i]! * w;
        for (let j = 0; j < 4; j++) {
          const wxy = wy * tx.w[x * 4 + j]!;
          const base = (row + tx.idx[x * 4 + j]!) * C;
          for (let c = 0; c < C; c++) acc[c]! += wxy * src[base + c]!;
        }
      }
      const o = (y * ow + x) * C;
      for (let c = 0; c < C; c++) out[o + c] = acc[c]!;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pillow resampling

/** Pillow's resampling filters (`PIL.Image.Resampling` codes in brackets). */
export type PilFilter = "nearest" | "box" | "bilinear" | "hamming" | "bicubic" | "lanczos";

/** `PIL.Image.Resampling` integer code → filter name (as stored in `preprocessor_config.json` `resample`). */
export const PIL_RESAMPLE: Record<number, PilFilter> = {
  0: "nearest",
  1: "lanczos",
  2: "bilinear",
  3: "bicubic",
  4: "box",
  5: "hamming",
};

const sinc = (x: number) => {
  if (x === 0) return 1;
  const px = Math.PI * x;
  return Math.sin(px) / px;
};
const FILTERS: Record<Exclude<PilFilter, "nearest">, { support: number; f: (x: number) => number }> = {
  box: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: { support: 1, f: (x) => (x < 0 ? (x > -1 ? 1 + x : 0) : x < 1 ? 1 - x : 0) },
  hamming: {
    support: 1,
    f: (x) => {
      const ax = Math.abs(x);
      if (ax >= 1) return 0;
      if (x === 0) return 1;
      return sinc(x) * (0.54 + 0.46 * Math.cos(Math.PI * x));
    },
  },
  bicubic: {
    support: 2,
    f: (x) => {
      const a = -0.5; // Pillow's (and PyTorch antialias's) cubic
      const ax = Math.abs(x);
      if (ax < 1) return ((a + 2) * ax - (a + 3)) * ax * ax + 1;
      if (ax < 2) return (((ax - 5) * ax + 8) * ax - 4) * a;
      return 0;
    },
  },
  lanczos: { support: 3, f: (x) => (x > -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

interface Taps {
  /** first input index of each output */
  start: Int32Array;
  /** tap count of each output */
  count: Int32Array;
  /** weights, `maxTaps` per output */
  w: Float64Array;
  maxTaps: number;
}

/** Pillow's `precompute_coeffs` for the full input range. */
function pilTaps(inSize: number, outSize: number, filter: Exclude<PilFilter, "nearest">): Taps {
  const { support: fs, f } = FILTERS[filter];
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = fs * filterscale;
  const maxTaps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const w = new Float64Array(outSize * maxTaps);
  const ss = 1 / filterscale;
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let sum = 0;
    for (let x = 0; x < n; x++) {
      const v = f((x + xmin - center + 0.5) * ss);
      w[o * maxTaps + x] = v;
      sum += v;
    }
    if (sum !== 0) for (let x = 0; x < n; x++) w[o * maxTaps + x]! /= sum;
    start[o] = xmin;
    count[o] = n;
  }
  return { start, count, w, maxTaps };
}

const PRECISION_BITS = 32 - 8 - 2;

/** Pillow's fixed-point coefficients (`normalize_coeffs_8bpc`). */
function fixedTaps(t: Taps): Int32Array {
  const k = new Int32Array(t.w.length);
  for (let i = 0; i < t.w.length; i++) {
    const v = t.w[i]! * (1 << PRECISION_BITS);
    k[i] = v < 0 ? Math.trunc(-0.5 + v) : Math.trunc(0.5 + v);
  }
  return k;
}

const clip8 = (v: number) => Math.min(Math.max(v, 0), 255);

/** One 8-bit pass along x (`horizontal`) or y of a `[h, w, C]` uint8 image. */
function pass8(
  src: Uint8Array,
  h: number,
  w: number,
  C: number,
  outLen: number,
  horizontal: boolean,
  t: Taps,
): Uint8Array {
  const k = fixedTaps(t);
  const oh = horizontal ? h : outLen;
  const ow = horizontal ? outLen : w;
  const out = new Uint8Array(oh * ow * C);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const o = horizontal ? x : y;
      const s0 = t.start[o]!;
      const n = t.count[o]!;
      for (let c = 0; c < C; c++) {
        let ss = half;
        for (let j = 0; j < n; j++) {
          const sy = horizontal ? y : s0 + j;
          const sx = horizontal ? s0 + j : x;
          ss += src[(sy * w + sx) * C + c]! * k[o * t.maxTaps + j]!;
        }
        // arithmetic shift of a possibly negative 32-bit sum, as in C
        out[(y * ow + x) * C + c] = clip8(Math.floor(ss / (1 << PRECISION_BITS)));
      }
    }
  }
  return out;
}

/** Pillow's nearest-neighbour resize (`ImagingTransform` affine with NEAREST): source = ⌊(o + 0.5)·scale⌋. */
function nearest<T extends Uint8Array | Float32Array>(
  src: T,
  h: number,
  w: number,
  C: number,
  oh: number,
  ow: number,
  out: T,
): T {
  const sy = h / oh;
  const sx = w / ow;
  for (let y = 0; y < oh; y++) {
    const iy = Math.min(Math.floor((y + 0.5) * sy), h - 1);
    for (let x = 0; x < ow; x++) {
      const ix = Math.min(Math.floor((x + 0.5) * sx), w - 1);
      for (let c = 0; c < C; c++) out[(y * ow + x) * C + c] = src[(iy * w + ix) * C + c]!;
    }
  }
  return out;
}

/**
 * Resize an 8-bit `[h, w, C]` (channels last) image like Pillow's `Image.resize((ow, oh), filter)`.
 */
export function resamplePil(
  src: Uint8Array,
  h: number,
  w: number,
  C: number,
  oh: number,
  ow: number,
  filter: PilFilter,
): Uint8Array {
  if (filter === "nearest") return nearest(src, h, w, C, oh, ow, new Uint8Array(oh * ow * C));
  let img = src;
  let cw = w;
  if (ow !== w) {
    img = pass8(img, h, w, C, ow, true, pilTaps(w, ow, filter));
    cw = ow;
  }
  if (oh !== h) img = pass8(img, h, cw, C, oh, false, pilTaps(h, oh, filter));
  return img === src ? src.slice() : img;
}

/**
 * Resize a float `[h, w, C]` grid with Pillow's filters in f64 (no 8-bit rounding): PyTorch's
 * `F.interpolate(..., antialias=True, align_corners=False)` for bilinear/bicubic.
 */
export function resamplePilF32(
  src: Float32Array,
  h: number,
  w: number,
  C: number,
  oh: number,
  ow: number,
  filter: PilFilter,
): Float32Array {
  if (filter === "nearest") return nearest(src, h, w, C, oh, ow, new Float32Array(oh * ow * C));
  const tx = pilTaps(w, ow, filter);
  const ty = pilTaps(h, oh, filter);
  const mid = new Float64Array(h * ow * C);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < ow; x++)
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let j = 0; j < tx.count[x]!; j++)
          s += src[(y * w + tx.start[x]! + j) * C + c]! * tx.w[x * tx.maxTaps + j]!;
        mid[(y * ow + x) * C + c] = s;
      }
  const out = new Float32Array(oh * ow * C);
  for (let y = 0; y < oh; y++)
    for (let x = 0; x < ow; x++)
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let j = 0; j < ty.count[y]!; j++)
          s += mid[((ty.start[y]! + j) * ow + x) * C + c]! * ty.w[y * ty.maxTaps + j]!;
        out[(y * ow + x) * C + c] = s;
      }
  return out;
}
