/**
 * Q8_0 / Q4_0 packed weights (src/quant.ts, assembly/quant.ts):
 * - `quantizeQ8_0` / `quantizeQ4_0` write the bytes of ggml's `quantize_row_*_ref` on hand-worked
 *   block-boundary cases, and `dequantize` (gguf.ts) of them gives ggml's values;
 * - `quantizeRowsQ8`, `gemvQ` and `dequantRowsQ`: both wasm builds equal the reference bit for bit
 *   on seeded random odd shapes (N odd, K multiples of 32, M = 1..4, bias, residual, relu), also
 *   with subnormal and zero scales;
 * - `gemmQ` equals `gemmPacked` (M ≥ 5) on the dequantized weight bit for bit, and the f64
 *   reference within f32 rounding;
 * - typed errors for a bad dtype and K not a multiple of 32.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { prng as rng } from "../../../tools/test-utils/src/prng.js";
import { InputError, ShapeError } from "../src/errors.js";
import { f16BitsToF32Bits, f16ToF32, f32ToF16 } from "../src/float16.js";
import { dequantize } from "../src/gguf.js";
import { Act } from "../src/kernels.js";
import {
  checkWeightDtype,
  GgmlType,
  linearQ,
  type QuantType,
  quantizeBlocks,
  quantizeBlocksTransposed,
  quantizeLinearWeight,
  quantizeQ4_0,
  quantizeQ8_0,
  repackQ,
  repackQInPlace,
} from "../src/quant.js";
import { createRefRuntime, type Runtime } from "../src/runtime.js";
import { wasmBuilds } from "./wasm-builds.js";

const ref = createRefRuntime();
const wasm: Runtime[] = [];

beforeAll(async () => {
  wasm.push(...(await wasmBuilds()));
});

const NAME = { [GgmlType.Q8_0]: "Q8_0", [GgmlType.Q4_0]: "Q4_0" } as const;
const TYPES: QuantType[] = [GgmlType.Q8_0, GgmlType.Q4_0];

function rand(r: ReturnType<typeof rng>, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r.next() * 2 - 1) * scale;
  return a;
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe("quantize (ggml's reference rounding)", () => {
  it("Q8_0: d = amax/127 as f16, q = roundf(x/d), block by block", () => {
    const x = new Float32Array(64);
    // block 0: amax 127 at the last position, so d = 1 and q = roundf(x): halves go away from zero
    for (let j = 0; j < 31; j++) x[j] = j - 15.5;
    x[31] = -127;
    // block 1: all zero → d = 0, q = 0
    const b = quantizeQ8_0(x);
    const dv = new DataView(b.buffer);
    expect(dv.getUint16(0, true)).toBe(f32ToF16(1));
    for (let j = 0; j < 31; j++) {
      const v = j - 15.5;
      expect(dv.getInt8(2 + j), `x = ${v}`).toBe(v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5));
    }
    expect(dv.getInt8(33)).toBe(-127);
    expect(dv.getUint16(34, true)).toBe(0);
    expect(Array.from(b.subarray(36, 68)).every((q) => q === 0)).toBe(true);
    const y = dequantize("Q8_0", b, 64);
    expect(y[31]).toBe(-127);
    expect(y[0]).toBe(-16); // −15.5 → −16
    expect(y[16]).toBe(1); // 0.5 → 1
    expect(Array.from(y.subarray(32)).every((v) => v === 0)).toBe(true);
  });

  it("Q4_0: the signed extreme maps to −8, d = max/−8, q = min(15, trunc(x/d + 8.5))", () => {
    const x = new Float32Array(64);
    // block 0: max = −8 (first of the two magnitude-8 values wins), d = 1: q = trunc(−x + 8.5)
    x[0] = -8;
    x[5] = 8; // same magnitude, later: not the max; x/d = 8 → 16.5 → clamped to 15
    x[16] = 7.5; // 7.5 + 8.5 = 16 → clamped to 15
    x[17] = -7.5; // −7.5 + 8.5 = 1
    x[18] = 0.5; // 0.5 + 8.5 = 9
    x[19] = -0.49; // 8.01 → 8
    // block 1: max positive 4 at the last position → d = −0.5
    x[63] = 4;
    x[40] = -3.9; // x/d = 7.8 → 16.3 → 15
    const b = quantizeQ4_0(x);
    const dv = new DataView(b.buffer);
    expect(dv.getUint16(0, true)).toBe(f32ToF16(1));
    const nib = (blk: number, j: number) => {
      const q = b[blk * 18 + 2 + (j % 16)];
      return j < 16 ? q & 15 : q >> 4;
    };
    expect(nib(0, 0)).toBe(0);
    expect(nib(0, 5)).toBe(15);
    expect(nib(0, 16)).toBe(15);
    expect(nib(0, 17)).toBe(1);
    expect(nib(0, 18)).toBe(9);
    expect(nib(0, 19)).toBe(8);
    expect(nib(0, 1)).toBe(8); // zero
    expect(dv.getUint16(18, true)).toBe(f32ToF16(-0.5));
    expect(nib(1, 31)).toBe(0);
    expect(nib(1, 8)).toBe(15);
    const y = dequantize("Q4_0", b, 64);
    expect(y[0]).toBe(-8);
    expect(y[5]).toBe(7);
    expect(y[16]).toBe(7);
    expect(y[17]).toBe(-7);
    expect(y[63]).toBe(4);
    expect(y[40]).toBe(-3.5);
    expect(y[33]).toBe(-0); // (8 − 8)·(−0.5)
  });

  it("round trip: |dequantize(quantize(x)) − x| ≤ d/2 (Q8_0), d (Q4_0), plus q·|d − f16(d)|", () => {
    const r = rng(3);
    for (const t of TYPES) {
      const x = rand(r, 32 * 50, 3);
      for (let i = 0; i < x.length; i += 97) x[i] = 0;
      const y = dequantize(NAME[t], quantizeBlocks(t, x), x.length);
      for (let b = 0; b < 50; b++) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
        const d = Math.fround(t === GgmlType.Q8_0 ? amax / 127 : amax / 8);
        const dh = Math.abs(f16ToF32(f32ToF16(d)) - d); // the stored scale's rounding
        const bound = t === GgmlType.Q8_0 ? 0.5 * d + 127 * dh : d + 8 * dh;
        for (let j = 0; j < 32; j++) {
          const e = Math.abs(y[b * 32 + j] - x[b * 32 + j]);
          expect(e).toBeLessThanOrEqual(bound * (1 + 1e-6));
        }
      }
    }
  });

  it("quantizeBlocksTransposed = quantizeBlocks of the transpose (a Conv1D [in, out] weight)", () => {
    const r = rng(8);
    for (const t of TYPES) {
      const [rows, cols] = [96, 13];
      const x = rand(r, rows * cols);
      const xt = new Float32Array(rows * cols);
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) xt[j * rows + i] = x[i * cols + j];
      expect(Array.from(quantizeBlocksTransposed(t, x, rows, cols))).toEqual(Array.from(quantizeBlocks(t, xt)));
    }
  });

  it("typed errors: bad dtype, K not a multiple of 32, wrong length", () => {
    expect(() => checkWeightDtype("q5")).toThrow(InputError);
    expect(() => checkWeightDtype("q5")).toThrow(/dtype must be "f32", "q8" or "q4", got "q5"/);
    expect(() => checkWeightDtype(8)).toThrow(InputError);
    expect(checkWeightDtype(undefined)).toBe("f32");
    expect(() => quantizeLinearWeight(ref, new Float32Array(33 * 2), 2, 33, "q8")).toThrow(ShapeError);
    expect(() => quantizeLinearWeight(ref, new Float32Array(33 * 2), 2, 33, "q8")).toThrow(
      /33 is not a positive multiple of 32/,
    );
    expect(() => quantizeLinearWeight(ref, new Float32Array(10), 2, 32, "q4")).toThrow(ShapeError);
    expect(() => quantizeLinearWeight(ref, new Float32Array(64), 2, 32, "q3" as "q4")).toThrow(InputError);
  });
});

/** Quantized W (N×K, ggml rows `wq`) repacked + x rows in a runtime's heap. */
function setup(rt: Runtime, t: QuantType, N: number, K: number, wq: Uint8Array, x: Float32Array) {
  const packed = repackQ(t, N, K, wq);
  expect(packed.length).toBe(rt.k.quantBytes(t, N, K));
  const w = rt.heap.alloc(packed.length + 64);
  rt.heap.u8(w, packed.length).set(packed);
  const xp = rt.heap.put(x);
  return { w, xp };
}

const SHAPES: [number, number][] = [
  [1, 32],
  [3, 64],
  [5, 96],
  [7, 32],
  [37, 160],
  [101, 800],
  [9, 1056],
];

describe("repackQ: ggml rows → row groups of four, losslessly", () => {
  it("moves every quant and widens every f16 scale exactly (subnormal, ±0, ±∞, NaN), zero rows past N", () => {
    const r = rng(41);
    const SPECIAL = [0x0000, 0x8000, 0x0001, 0x83ff, 0x7c00, 0xfc00, 0x7e01, 0x3c00];
    for (const t of TYPES) {
      const bsz = t === GgmlType.Q8_0 ? 34 : 18;
      const qb = bsz - 2;
      for (const [N, K] of SHAPES) {
        const nb = K / 32;
        const rows = new Uint8Array(N * nb * bsz);
        for (let i = 0; i < rows.length; i++) rows[i] = Math.floor(r.next() * 256);
        const dv = new DataView(rows.buffer);
        for (let i = 0; i < SPECIAL.length && i < N * nb; i++) dv.setUint16(i * bsz, SPECIAL[i], true);
        const out = repackQ(t, N, K, rows);
        expect(out.length).toBe(ref.k.quantBytes(t, N, K));
        const ov = new DataView(out.buffer);
        for (let j = 0; j < Math.ceil(N / 4) * 4; j++) {
          for (let b = 0; b < nb; b++) {
            const o = (Math.floor(j / 4) * nb + b) * (16 + 4 * qb);
            const scale = ov.getUint32(o + 4 * (j % 4), true);
            const quants = Array.from(out.subarray(o + 16 + (j % 4) * qb, o + 16 + ((j % 4) + 1) * qb));
            if (j >= N) {
              expect(scale).toBe(0);
              expect(quants.every((v) => v === 0)).toBe(true);
              continue;
            }
            const s = (j * nb + b) * bsz;
            expect(scale, `row ${j} block ${b}`).toBe(f16BitsToF32Bits(dv.getUint16(s, true)));
            expect(quants).toEqual(Array.from(rows.subarray(s + 2, s + bsz)));
          }
        }
      }
    }
  });

  it("typed errors: K not a multiple of 32, a short buffer, a wrong row count", () => {
    expect(() => repackQ(GgmlType.Q8_0, 2, 48, new Uint8Array(2 * 51))).toThrow(ShapeError);
    expect(() => repackQ(GgmlType.Q4_0, 3, 32, new Uint8Array(2 * 18))).toThrow(/not 3 rows of 32 values/);
    expect(() => repackQInPlace(GgmlType.Q4_0, 3, 32, new Uint8Array(3 * 18))).toThrow(/needs 80/);
    expect(() => repackQInPlace(GgmlType.Q4_0, 0, 32, new Uint8Array(80))).toThrow(/N must be an integer ≥ 1/);
  });
});

describe("gemvQ / quantizeRowsQ8: wasm = reference bit for bit", () => {
  it("random odd shapes, M = 1..4 and 9, bias, residual, relu", () => {
    const r = rng(17);
    for (const t of TYPES) {
      for (const [N, K] of SHAPES) {
        for (const M of [1, 2, 3, 4, 9]) {
          const ldy = N + 3;
          const W = rand(r, N * K);
          // a few rows with a zero block and a subnormal scale
          W.fill(0, 0, Math.min(32, K));
          if (N > 2) for (let p = 0; p < 32; p++) W[2 * K + p] = (p % 3) * 1e-8;
          const wq = quantizeBlocks(t, W);
          const x = rand(r, M * K, 2);
          const y0 = rand(r, M * ldy);
          const bias = rand(r, N);
          const opts = [
            { bias: true, beta: 1, act: Act.none },
            { bias: false, beta: 0, act: Act.relu },
          ];
          for (const o of opts) {
            const outs: number[][] = [];
            const xqs: number[][] = [];
            for (const rt of [ref, ...wasm]) {
              const m = rt.heap.mark();
              const { w, xp } = setup(rt, t, N, K, wq, x);
              const xqB = rt.k.xqRowBytes(K);
              expect(xqB % 16).toBe(0);
              const xq = rt.heap.alloc(M * xqB);
              const y = rt.heap.put(y0);
              const bp = o.bias ? rt.heap.put(bias) : 0;
              rt.k.quantizeRowsQ8(xp, K, M, K, xq);
              rt.k.gemvQ(t, M, N, K, xq, w, y, ldy, bp, o.beta, o.act);
              outs.push(bits(rt.heap.f32(y, M * ldy)));
              xqs.push(Array.from(rt.heap.u8(xq, M * xqB)).slice(0, M * xqB));
              rt.heap.release(m);
            }
            for (let i = 1; i < outs.length; i++) {
              const tag = `${NAME[t]} ${wasm[i - 1].backend} M${M} N${N} K${K} act${o.act}`;
              expect(xqs[i], `${tag} xq`).toEqual(xqs[0]);
              expect(outs[i], tag).toEqual(outs[0]);
            }
          }
        }
      }
    }
  });

  it("is within the quantization error of the f32 product", () => {
    const r = rng(5);
    for (const t of TYPES) {
      const N = 64;
      const K = 256;
      const W = rand(r, N * K);
      const x = rand(r, K);
      const wq = quantizeBlocks(t, W);
      const Wd = dequantize(NAME[t], wq, N * K);
      for (const rt of wasm) {
        const m = rt.heap.mark();
        const { w, xp } = setup(rt, t, N, K, wq, x);
        const xq = rt.heap.alloc(rt.k.xqRowBytes(K));
        const y = rt.heap.allocF32(N);
        linearQ(rt, { ptr: w, type: t, K, N }, 1, xp, y, { xq });
        const got = rt.heap.f32(y, N);
        for (let j = 0; j < N; j++) {
          let s = 0;
          let a = 0;
          for (let p = 0; p < K; p++) {
            s += Wd[j * K + p] * x[p];
            a += Math.abs(Wd[j * K + p] * x[p]);
          }
          // activations rounded to 8 bits: relative error per term ≤ 1/254 of the block's amax
          expect(Math.abs(got[j] - s)).toBeLessThan(a * 0.02 + 1e-4);
        }
        rt.heap.release(m);
      }
    }
  });
});

describe("gemmQ: dequantize-and-pack GEMM", () => {
  it("equals gemmPacked on the dequantized weight bit for bit (M ≥ 5), the f64 product within rounding", () => {
    const r = rng(23);
    const cases: [number, number, number][] = [
      [5, 7, 32],
      [17, 37, 544], // two K blocks (512 + 32)
      [33, 1030, 96], // two column slices (1024 + 6)
      [6, 9, 1056],
    ];
    for (const t of TYPES) {
      for (const [M, N, K] of cases) {
        const W = rand(r, N * K);
        const wq = quantizeBlocks(t, W);
        const Wd = dequantize(NAME[t], wq, N * K);
        const A = rand(r, M * (K + 2));
        const C0 = rand(r, M * N);
        const bias = rand(r, N);
        const outs: Float32Array[] = [];
        for (const rt of [ref, ...wasm]) {
          const m = rt.heap.mark();
          const { w } = setup(rt, t, N, K, wq, new Float32Array(0));
          const a = rt.heap.put(A);
          const c = rt.heap.put(C0);
          const bp = rt.heap.put(bias);
          rt.k.gemmQ(t, M, N, K, a, K + 2, w, c, N, bp, 1, Act.gelu);
          const got = rt.heap.f32(c, M * N).slice();
          outs.push(got);
          if (rt !== ref) {
            // the same product through gemmPacked on the dequantized, packed weight
            const wd = rt.heap.put(Wd);
            const pb = rt.heap.allocF32(rt.k.packedSize(K, N));
            rt.k.packB(K, N, wd, K, 1, pb);
            const c2 = rt.heap.put(C0);
            rt.k.gemmPacked(M, N, K, a, K + 2, 0, pb, c2, N, bp, 1, 1, Act.gelu);
            expect(bits(got), `${NAME[t]} ${rt.backend} M${M} N${N} K${K}`).toEqual(bits(rt.heap.f32(c2, M * N)));
          }
          rt.heap.release(m);
        }
        for (let i = 0; i < M * N; i++) {
          const row = Math.floor(i / N);
          const j = i % N;
          let a = Math.abs(bias[j]) + Math.abs(C0[i]);
          for (let p = 0; p < K; p++) a += Math.abs(A[row * (K + 2) + p] * Wd[j * K + p]);
          for (const o of outs.slice(1))
            expect(Math.abs(o[i] - outs[0][i])).toBeLessThan(8 * 2 ** -24 * Math.sqrt(K) * a + 1e-6);
        }
      }
    }
  });
});

describe("dequantRowsQ: the embedding gather", () => {
  it("gathers dequantized rows bit for bit", () => {
    const r = rng(31);
    for (const t of TYPES) {
      const V = 13;
      const K = 96;
      const wq = quantizeBlocks(t, rand(r, V * K));
      const Wd = dequantize(NAME[t], wq, V * K);
      const ids = Int32Array.from([12, 0, 5, 5, 7]);
      for (const rt of [ref, ...wasm]) {
        const m = rt.heap.mark();
        const { w } = setup(rt, t, V, K, wq, new Float32Array(0));
        const ip = rt.heap.alloc(ids.length * 4);
        rt.heap.i32(ip, ids.length).set(ids);
        const dst = rt.heap.allocF32(ids.length * K);
        rt.k.dequantRowsQ(t, K, w, ip, ids.length, dst);
        const got = rt.heap.f32(dst, ids.length * K);
        for (let i = 0; i < ids.length; i++) {
          expect(bits(got.slice(i * K, (i + 1) * K)), `${rt.backend} row ${ids[i]}`).toEqual(
            bits(Wd.slice(ids[i] * K, (ids[i] + 1) * K)),
          );
        }
        rt.heap.release(m);
      }
    }
  });
});
