// Property tests (fast-check): resampling preserves constant images and stays within the input's range,
// rollout rows are distributions, mean attention distance is bounded by the grid's diameter.
import { fc, test } from "@fast-check/vitest";
import { Tensor } from "@wasmformer/core";
import { describe, expect } from "vitest";
import { attentionRollout, meanAttentionDistance } from "../src/introspection.js";
import { type PilFilter, resamplePil } from "../src/resample.js";

const filters: PilFilter[] = ["nearest", "box", "bilinear", "hamming", "bicubic", "lanczos"];

/** Random row-stochastic attention [1, H, T, T]. */
const attention = (H: number, T: number, seed: number[]) => {
  const d = new Float32Array(H * T * T);
  for (let r = 0; r < H * T; r++) {
    let s = 0;
    for (let j = 0; j < T; j++) s += d[r * T + j] = 1e-3 + seed[(r * T + j) % seed.length]!;
    for (let j = 0; j < T; j++) d[r * T + j]! /= s;
  }
  return new Tensor(d, [1, H, T, T]);
};

describe("properties", () => {
  test.prop([
    fc.constantFrom(...filters),
    fc.integer({ min: 1, max: 12 }),
    fc.integer({ min: 1, max: 12 }),
    fc.integer({ min: 1, max: 12 }),
    fc.integer({ min: 1, max: 12 }),
    fc.integer({ min: 0, max: 255 }),
  ])("a constant image stays constant under every Pillow filter", (f, h, w, oh, ow, v) => {
    const out = resamplePil(new Uint8Array(h * w * 3).fill(v), h, w, 3, oh, ow, f);
    expect(out.length).toBe(oh * ow * 3);
    for (const x of out) expect(x).toBe(v);
  });

  test.prop([
    fc.constantFrom("box", "bilinear", "hamming"),
    fc.uint8Array({ minLength: 16, maxLength: 16 }),
    fc.integer({ min: 1, max: 9 }),
    fc.integer({ min: 1, max: 9 }),
  ])("non-negative filters never leave the input's range", (f, px, oh, ow) => {
    const out = resamplePil(px, 4, 4, 1, oh, ow, f as PilFilter);
    const lo = Math.min(...px);
    const hi = Math.max(...px);
    for (const x of out) {
      expect(x).toBeGreaterThanOrEqual(lo);
      expect(x).toBeLessThanOrEqual(hi);
    }
  });

  test.prop([
    fc.integer({ min: 1, max: 3 }),
    fc.integer({ min: 2, max: 6 }),
    fc.integer({ min: 1, max: 3 }),
    fc.array(fc.float({ min: 0, max: 1, noNaN: true }), { minLength: 7, maxLength: 40 }),
  ])("rollout rows are probability distributions", (H, T, L, seed) => {
    const layers = Array.from({ length: L }, (_, l) =>
      attention(
        H,
        T,
        seed.map((v, i) => (v + i * 0.1 * l) % 1),
      ),
    );
    const r = attentionRollout(layers);
    for (let i = 0; i < T; i++) {
      let s = 0;
      for (let j = 0; j < T; j++) {
        expect(r.data[i * T + j]!).toBeGreaterThanOrEqual(0);
        s += r.data[i * T + j]!;
      }
      expect(s).toBeCloseTo(1, 5);
    }
  });

  test.prop([
    fc.integer({ min: 1, max: 4 }),
    fc.integer({ min: 1, max: 4 }),
    fc.integer({ min: 1, max: 32 }),
    fc.array(fc.float({ min: 0, max: 1, noNaN: true }), { minLength: 5, maxLength: 30 }),
  ])("mean attention distance lies in [0, p·diameter]", (gh, gw, p, seed) => {
    const T = gh * gw + 1;
    const d = meanAttentionDistance([attention(2, T, seed)], [gh, gw], p);
    const diam = p * Math.hypot(gh - 1, gw - 1);
    for (const v of d.data) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(diam + 1e-4);
    }
  });
});
