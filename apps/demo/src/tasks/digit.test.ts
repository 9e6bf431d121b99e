// Drawn digits → MNIST inputs: the ink's box scaled to 20 px and centred by mass in 28 × 28, the
// same result for the same shape at any size and place, and the processor's normalisation.
import { InputError } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { digitPixels, MNIST_SIZE, mnistDigit } from "./digit.js";

/** A `size`² canvas with an "L" of ink drawn at (x0, y0), `scale` pixels per unit of a 10 × 14 shape. */
function drawL(size: number, x0: number, y0: number, scale: number): Uint8Array {
  const g = new Uint8Array(size * size);
  const put = (x: number, y: number) => {
    for (let dy = 0; dy < scale; dy++)
      for (let dx = 0; dx < scale; dx++) g[(y0 + y * scale + dy) * size + x0 + x * scale + dx] = 255;
  };
  for (let y = 0; y < 14; y++) put(0, y);
  for (let x = 0; x < 10; x++) put(x, 13);
  return g;
}

/** Bounding box and centre of mass of a 28 × 28 digit. */
function stats(d: Uint8Array) {
  let [x0, y0, x1, y1, m, mx, my] = [99, 99, -1, -1, 0, 0, 0];
  for (let y = 0; y < MNIST_SIZE; y++)
    for (let x = 0; x < MNIST_SIZE; x++) {
      const v = d[y * MNIST_SIZE + x];
      if (v > 0) [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
      m += v;
      mx += v * x;
      my += v * y;
    }
  return { w: x1 - x0 + 1, h: y1 - y0 + 1, cx: mx / m, cy: my / m };
}

describe("mnistDigit", () => {
  it("scales the ink's box to 20 px on its longer side and centres its mass", () => {
    const d = mnistDigit(drawL(280, 30, 50, 12), 280, 280);
    const s = stats(d);
    expect(s.h).toBeGreaterThanOrEqual(20);
    expect(s.h).toBeLessThanOrEqual(21); // anti-aliased edge
    expect(s.w).toBeGreaterThanOrEqual(14);
    expect(s.w).toBeLessThanOrEqual(16);
    expect(Math.abs(s.cx - 13.5)).toBeLessThanOrEqual(0.75);
    expect(Math.abs(s.cy - 13.5)).toBeLessThanOrEqual(0.75);
  });

  it("gives (nearly) the same digit for the same shape at another size and place", () => {
    const a = mnistDigit(drawL(280, 30, 50, 12), 280, 280);
    const b = mnistDigit(drawL(100, 20, 10, 5), 100, 100);
    let diff = 0;
    let ink = 0;
    for (let i = 0; i < a.length; i++) {
      diff += Math.abs(a[i] - b[i]);
      ink += a[i];
    }
    expect(diff / ink).toBeLessThan(0.1);
  });

  it("leaves an MNIST digit (already centred, 20 px) about as it is", () => {
    // a 20 × 20 filled square in the middle of 28 × 28
    const d = new Uint8Array(784);
    for (let y = 4; y < 24; y++) for (let x = 4; x < 24; x++) d[y * 28 + x] = 200;
    const out = mnistDigit(d, 28, 28);
    let diff = 0;
    for (let i = 0; i < 784; i++) diff += Math.abs(out[i] - d[i]);
    expect(diff / (400 * 200)).toBeLessThan(0.05);
  });

  it("is all background without ink, and checks its sizes", () => {
    expect(mnistDigit(new Uint8Array(50 * 40), 50, 40).every((v) => v === 0)).toBe(true);
    expect(() => mnistDigit(new Uint8Array(10), 4, 4)).toThrow(InputError);
    expect(() => mnistDigit(new Uint8Array(0), 0, 0)).toThrow(InputError);
  });
});

describe("digitPixels", () => {
  const norm = {
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_std: [0.5, 0.5, 0.5],
  };

  it("rescales and normalises into every channel", () => {
    const d = new Uint8Array(784);
    d[0] = 255;
    const px = digitPixels(d, 28, 3, norm);
    expect(px.length).toBe(3 * 784);
    for (let c = 0; c < 3; c++) {
      expect(px[c * 784]).toBeCloseTo(1, 6); // (1 − 0.5) / 0.5
      expect(px[c * 784 + 1]).toBeCloseTo(-1, 6);
    }
  });

  it("resizes bilinearly to the model's size", () => {
    const d = new Uint8Array(784).fill(255);
    const px = digitPixels(d, 32, 1, { ...norm, do_normalize: false });
    expect(px.length).toBe(32 * 32);
    for (const v of px) expect(v).toBeCloseTo(1, 6);
  });
});
