/**
 * One-row product with a row-group packed weight (packedRowsSize, packRows, gemvRows): both wasm
 * builds against the reference backend on seeded random data.
 * - `packRows` writes the documented layout (`packedRowsIndex`) bit for bit in every backend,
 *   zero padding included, and nothing past `packedRowsSize(N, K)` floats.
 * - `gemvRows` equals the float64 product within 8·ε·√K·(Σ_k |x_k·W_jk| + |bias_j| + |beta·y_j|)
 *   (ε = 2⁻²⁴; through tanh, which is 1-Lipschitz, plus tanh's own 2ε), writes nothing outside
 *   y[0..N) and reads nothing of x past K (NaN planted there).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { prng as rng } from "../../../tools/test-utils/src/prng.js";
import { ShapeError } from "../src/errors.js";
import { Act } from "../src/kernels.js";
import { packedRowsIndex, packRowsWeight } from "../src/packed.js";
import { createRefRuntime, type Runtime } from "../src/runtime.js";
import { wasmBuilds } from "./wasm-builds.js";

const ref = createRefRuntime();
const wasm: Runtime[] = [];

beforeAll(async () => {
  wasm.push(...(await wasmBuilds()));
});

const GUARD = 8;
const EPS = 2 ** -24;

function rand(r: ReturnType<typeof rng>, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r.next() * 2 - 1;
  return a;
}

const SHAPES: [number, number][] = [
  [1, 1],
  [6, 3],
  [7, 4],
  [8, 5],
  [13, 7],
  [14, 8],
  [23, 2],
  [24, 6],
  [25, 9],
  [40, 33],
  [48, 1],
  [49, 130],
  [1024, 256],
  [771, 257],
];

describe("packRows / gemvRows", () => {
  it("packRows writes the documented layout, padding 0, nothing past packedRowsSize", () => {
    const r = rng(11);
    for (const [N, K] of SHAPES) {
      for (const ld of [K, K + 3]) {
        const W = rand(r, N * ld);
        const size = ref.k.packedRowsSize(N, K);
        expect(size).toBe(Math.ceil(N / 24) * 24 * Math.ceil(K / 4) * 4);
        const want = new Float32Array(size);
        for (let j = 0; j < N; j++) for (let p = 0; p < K; p++) want[packedRowsIndex(K, j, p)] = W[j * ld + p];
        for (const rt of [ref, ...wasm]) {
          expect(rt.k.packedRowsSize(N, K)).toBe(size);
          const m = rt.heap.mark();
          const b = rt.heap.put(W);
          const dst = rt.heap.allocF32(size + GUARD);
          rt.heap.f32(dst, size + GUARD).fill(Number.NaN);
          rt.k.packRows(N, K, b, ld, dst);
          const got = rt.heap.f32(dst, size + GUARD);
          expect(Array.from(got.subarray(0, size)), `${rt.backend} N${N} K${K} ld${ld}`).toEqual(Array.from(want));
          expect(got.subarray(size).every(Number.isNaN), `${rt.backend} wrote past the end`).toBe(true);
          rt.heap.release(m);
        }
      }
    }
    expect(ref.k.packedRowsSize(0, 5)).toBe(0);
    expect(ref.k.packedRowsSize(5, 0)).toBe(0);
    for (const rt of wasm) expect(rt.k.packedRowsSize(0, 5) + rt.k.packedRowsSize(5, -1)).toBe(0);
  });

  it("gemvRows matches the float64 product (bias, beta, relu, tanh), touches only y[0..N)", () => {
    const r = rng(12);
    for (const [N, K] of SHAPES) {
      for (const withBias of [false, true]) {
        for (const beta of [0, 1]) {
          for (const act of [Act.none, Act.relu, Act.tanh]) {
            const W = rand(r, N * K);
            const x = rand(r, K);
            const bias = rand(r, N);
            const y0 = rand(r, N);
            const tag = `N${N} K${K} bias=${withBias} beta=${beta} act=${act}`;
            for (const rt of [ref, ...wasm]) {
              const h = rt.heap;
              const m = h.mark();
              const w = packRowsWeight(rt, h.put(W), N, K);
              const xp = h.allocF32(K + GUARD);
              h.f32(xp, K + GUARD).fill(Number.NaN);
              h.f32(xp, K).set(x);
              const bp = withBias ? h.put(bias) : 0;
              const yp = h.allocF32(N + 2 * GUARD);
              h.f32(yp, N + 2 * GUARD).fill(-7);
              h.f32(yp + GUARD * 4, N).set(y0);
              rt.k.gemvRows(N, K, xp, w.ptr, yp + GUARD * 4, bp, beta, act);
              const all = h.f32(yp, N + 2 * GUARD).slice();
              h.release(m);
              for (let g = 0; g < GUARD; g++) {
                expect(all[g], `${rt.backend} ${tag}: wrote before y`).toBe(-7);
                expect(all[GUARD + N + g], `${rt.backend} ${tag}: wrote after y`).toBe(-7);
              }
              for (let j = 0; j < N; j++) {
                let s = 0;
                let mag = 0;
                for (let p = 0; p < K; p++) {
                  s += Math.fround(W[j * K + p]) * x[p];
                  mag += Math.abs(W[j * K + p] * x[p]);
                }
                if (withBias) {
                  s += bias[j];
                  mag += Math.abs(bias[j]);
                }
                if (beta) {
                  s += y0[j];
                  mag += Math.abs(y0[j]);
                }
                const want = act === Act.relu ? Math.max(s, 0) : act === Act.tanh ? Math.tanh(s) : s;
                const tol =
                  8 * EPS * Math.sqrt(K + 2) * mag + (act === Act.tanh ? 2 * EPS * Math.abs(want) : 0) + 1e-30;
                const got = all[GUARD + j];
                if (!(Math.abs(got - want) <= tol))
                  expect.fail(`${rt.backend} ${tag} y[${j}] = ${got}, want ${want} (tol ${tol})`);
              }
            }
          }
        }
      }
    }
  });

  it("gemvRows gives bit-identical results call after call (it alternates its walk over the rows)", () => {
    const r = rng(13);
    for (const [N, K] of [
      [1024, 256],
      [49, 130],
      [5, 3],
    ] as const) {
      const W = rand(r, N * K);
      const x = rand(r, K);
      const bias = rand(r, N);
      for (const rt of wasm) {
        const h = rt.heap;
        const m = h.mark();
        const w = packRowsWeight(rt, h.put(W), N, K);
        const xp = h.put(x);
        const bp = h.put(bias);
        const yp = h.allocF32(N);
        const runs: Float32Array[] = [];
        for (let i = 0; i < 3; i++) {
          rt.k.gemvRows(N, K, xp, w.ptr, yp, bp, 0, Act.none);
          runs.push(h.f32(yp, N).slice());
        }
        h.release(m);
        expect(Array.from(runs[1]), `${rt.backend} N${N} K${K}`).toEqual(Array.from(runs[0]));
        expect(Array.from(runs[2]), `${rt.backend} N${N} K${K}`).toEqual(Array.from(runs[0]));
      }
    }
  });

  it("packRowsWeight checks its sizes", () => {
    const w = ref.heap.put(new Float32Array(12));
    expect(() => packRowsWeight(ref, w, 0, 4)).toThrow(ShapeError);
    expect(() => packRowsWeight(ref, w, 3, 4, 2)).toThrow(/ld 2 is less than the row length 4/);
  });
});
