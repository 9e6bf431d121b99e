/**
 * Drawn digits to MNIST inputs. MNIST's own preprocessing (LeCun et al.): the ink's bounding box is
 * scaled so that its longer side is 20 px (anti-aliased), then placed in a 28 × 28 frame with its
 * centre of mass at the frame's centre. A drawing of any size and position thus looks like the
 * digits the model was trained on. Pure functions, used by the worker.
 */
import { InputError } from "@wasmformer/core";

export const MNIST_SIZE = 28;
const BOX = 20;

/**
 * `gray` (`[h, w]`, 0 = background, 255 = ink) → a 28 × 28 MNIST-style digit (all zeros when there
 * is no ink).
 */
export function mnistDigit(gray: Uint8Array | Uint8ClampedArray, w: number, h: number): Uint8Array {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw new InputError(`digit: width and height must be positive integers, got ${w}×${h}`);
  }
  if (gray.length !== w * h) throw new InputError(`digit: ${gray.length} pixels for a ${w}×${h} image`);
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (gray[y * w + x] > 0) {
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
    }
  }
  const out = new Uint8Array(MNIST_SIZE * MNIST_SIZE);
  if (x1 < 0) return out;
  const bw = x1 - x0 + 1;
  const bh = y1 - y0 + 1;
  const scale = BOX / Math.max(bw, bh);
  const tw = Math.max(1, Math.round(bw * scale));
  const th = Math.max(1, Math.round(bh * scale));
  // each output pixel: the mean of 4 × 4 bilinear samples of the input rectangle it covers
  const box = new Float32Array(tw * th);
  const at = (x: number, y: number) => {
    const xi = Math.min(w - 1, Math.max(0, x));
    const yi = Math.min(h - 1, Math.max(0, y));
    return gray[yi * w + xi];
  };
  const S = 4;
  for (let oy = 0; oy < th; oy++) {
    for (let ox = 0; ox < tw; ox++) {
      let sum = 0;
      for (let sy = 0; sy < S; sy++) {
        for (let sx = 0; sx < S; sx++) {
          const fx = x0 + (ox + (sx + 0.5) / S) / scale - 0.5;
          const fy = y0 + (oy + (sy + 0.5) / S) / scale - 0.5;
          const ix = Math.floor(fx);
          const iy = Math.floor(fy);
          const ax = fx - ix;
          const ay = fy - iy;
          sum +=
            (1 - ay) * ((1 - ax) * at(ix, iy) + ax * at(ix + 1, iy)) +
            ay * ((1 - ax) * at(ix, iy + 1) + ax * at(ix + 1, iy + 1));
        }
      }
      box[oy * tw + ox] = sum / (S * S);
    }
  }
  // centre of mass of the scaled ink → the frame's centre
  let m = 0;
  let mx = 0;
  let my = 0;
  for (let y = 0; y < th; y++) {
    for (let x = 0; x < tw; x++) {
      const v = box[y * tw + x];
      m += v;
      mx += v * x;
      my += v * y;
    }
  }
  const cx = m > 0 ? mx / m : (tw - 1) / 2;
  const cy = m > 0 ? my / m : (th - 1) / 2;
  const dx = Math.round((MNIST_SIZE - 1) / 2 - cx);
  const dy = Math.round((MNIST_SIZE - 1) / 2 - cy);
  for (let y = 0; y < th; y++) {
    const ty = y + dy;
    if (ty < 0 || ty >= MNIST_SIZE) continue;
    for (let x = 0; x < tw; x++) {
      const tx = x + dx;
      if (tx >= 0 && tx < MNIST_SIZE) out[ty * MNIST_SIZE + tx] = Math.round(box[y * tw + x]);
    }
  }
  return out;
}

/** Normalisation of a processor config: `x = (v · rescale − mean[c]) / std[c]`. */
export interface PixelNorm {
  do_rescale: boolean;
  rescale_factor: number;
  do_normalize: boolean;
  image_mean: readonly number[];
  image_std: readonly number[];
}

/**
 * A 28 × 28 grey digit → `[channels, size, size]` model input: resized bilinearly to `size` (when it
 * differs), copied into every channel, rescaled and normalised as the processor config says.
 */
export function digitPixels(digit: Uint8Array, size: number, channels: number, p: PixelNorm): Float32Array {
  const S = MNIST_SIZE;
  const out = new Float32Array(channels * size * size);
  const plane = new Float32Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (size === S) {
        plane[y * size + x] = digit[y * S + x];
        continue;
      }
      const fx = Math.min(S - 1, Math.max(0, ((x + 0.5) * S) / size - 0.5));
      const fy = Math.min(S - 1, Math.max(0, ((y + 0.5) * S) / size - 0.5));
      const ix = Math.min(S - 2, Math.floor(fx));
      const iy = Math.min(S - 2, Math.floor(fy));
      const ax = fx - ix;
      const ay = fy - iy;
      const g = (xx: number, yy: number) => digit[yy * S + xx];
      plane[y * size + x] =
        (1 - ay) * ((1 - ax) * g(ix, iy) + ax * g(ix + 1, iy)) +
        ay * ((1 - ax) * g(ix, iy + 1) + ax * g(ix + 1, iy + 1));
    }
  }
  const scale = p.do_rescale ? p.rescale_factor : 1;
  for (let c = 0; c < channels; c++) {
    const mean = p.do_normalize ? (p.image_mean[c] ?? p.image_mean[0]) : 0;
    const std = p.do_normalize ? (p.image_std[c] ?? p.image_std[0]) : 1;
    for (let i = 0; i < size * size; i++) out[c * size * size + i] = (plane[i] * scale - mean) / std;
  }
  return out;
}
