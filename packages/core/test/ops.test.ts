// Tensor ops against straightforward f64 loops, on both backends, with odd shapes and broadcasting.
import { describe, expect, test } from "vitest";
// the shared test PRNG, by path (a package dependency core → test-utils → core would be a cycle)
import { mulberry32 as rng } from "../../../tools/test-utils/src/prng.js";
import {
  add,
  argmax,
  broadcastShapes,
  cast,
  concat,
  conv2dPatch,
  div,
  embedding,
  gather,
  gelu,
  geluTanh,
  InputError,
  indexSelect,
  init,
  layerNorm,
  linear,
  logSoftmax,
  matmul,
  max,
  mean,
  mul,
  narrow,
  permute,
  relu,
  ShapeError,
  sigmoid,
  silu,
  sinusoidalPositionalEncoding,
  slice,
  softmax,
  stack,
  sub,
  sum,
  Tensor,
  tensor,
  transpose,
} from "../src/index.js";
import { erf } from "../src/math.js";

function rand(shape: number[], seed = 1, scale = 1): Tensor<"f32"> {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = (r() * 2 - 1) * scale;
  return new Tensor(d, shape, "f32");
}
function close(actual: Tensor, expected: ArrayLike<number>, atol = 1e-5, rtol = 1e-4) {
  expect(actual.size).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual.data[i];
    const e = expected[i];
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) throw new Error(`element ${i}: ${a} vs ${e}`);
  }
}
function naiveMatmul(a: Float32Array, b: Float32Array, M: number, K: number, N: number) {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let p = 0; p < K; p++) s += a[i * K + p] * b[p * N + j];
      out[i * N + j] = s;
    }
  return out;
}

for (const backend of ["ref", "auto"] as const) {
  describe(`ops on backend ${backend}`, () => {
    test("init", async () => {
      await init({ backend });
    });

    test("matmul: odd sizes, vectors, batched broadcasting, transposes", async () => {
      await init({ backend });
      for (const [M, K, N] of [
        [1, 1, 1],
        [3, 5, 7],
        [17, 33, 5],
        [65, 129, 33],
      ]) {
        const a = rand([M, K], M);
        const b = rand([K, N], N + 100);
        close(matmul(a, b), naiveMatmul(a.data, b.data, M, K, N));
        close(matmul(transpose(a), b, { transA: true }), naiveMatmul(a.data, b.data, M, K, N));
        close(matmul(a, transpose(b), { transB: true }), naiveMatmul(a.data, b.data, M, K, N));
      }
      const v = rand([5], 3);
      const m = rand([5, 3], 4);
      expect(matmul(v, m).shape).toEqual([3]);
      close(matmul(v, m), naiveMatmul(v.data, m.data, 1, 5, 3));
      const A = rand([2, 1, 3, 4], 5);
      const B = rand([3, 4, 2], 6);
      const C = matmul(A, B);
      expect(C.shape).toEqual([2, 3, 3, 2]);
      for (let i = 0; i < 2; i++)
        for (let j = 0; j < 3; j++) {
          const a = A.data.subarray(i * 12, i * 12 + 12);
          const b = B.data.subarray(j * 8, j * 8 + 8);
          close(new Tensor(C.data.slice((i * 3 + j) * 6, (i * 3 + j) * 6 + 6), [6]), naiveMatmul(a, b, 3, 4, 2));
        }
      expect(() => matmul(rand([2, 3]), rand([4, 2]))).toThrow(ShapeError);
    });

    test("linear with bias and fused activation", async () => {
      await init({ backend });
      const x = rand([2, 3, 5], 7);
      const w = rand([4, 5], 8);
      const b = rand([4], 9);
      const y = linear(x, w, b, "relu");
      expect(y.shape).toEqual([2, 3, 4]);
      const exp: number[] = [];
      for (let r = 0; r < 6; r++)
        for (let o = 0; o < 4; o++) {
          let s = b.data[o];
          for (let i = 0; i < 5; i++) s += x.data[r * 5 + i] * w.data[o * 5 + i];
          exp.push(Math.max(0, s));
        }
      close(y, exp);
      expect(() => linear(x, rand([4, 6]))).toThrow(/expects 6/);
    });

    test("broadcasting elementwise", async () => {
      await init({ backend });
      expect(broadcastShapes([2, 1, 3], [4, 1])).toEqual([2, 4, 3]);
      expect(() => broadcastShapes([2, 3], [4])).toThrow(ShapeError);
      const a = rand([2, 1, 3], 1);
      const b = rand([4, 1], 2);
      const c = add(a, b);
      expect(c.shape).toEqual([2, 4, 3]);
      for (let i = 0; i < 2; i++)
        for (let j = 0; j < 4; j++)
          for (let k = 0; k < 3; k++) {
            expect(c.get(i, j, k)).toBeCloseTo(a.get(i, 0, k) + b.get(j, 0), 6);
          }
      const row = rand([3], 3);
      close(
        mul(a, row),
        Array.from(a.data, (v, i) => v * row.data[i % 3]),
      );
      close(
        sub(a, 2),
        Array.from(a.data, (v) => v - 2),
      );
      close(
        div(1, rand([3], 4)),
        Array.from(rand([3], 4).data, (v) => 1 / v),
        1e-5,
        1e-5,
      );
    });

    test("activations match their formulas", async () => {
      await init({ backend });
      const x = rand([129], 11, 8);
      close(
        relu(x),
        Array.from(x.data, (v) => Math.max(0, v)),
      );
      close(
        gelu(x),
        Array.from(x.data, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2))),
      );
      close(
        geluTanh(x),
        Array.from(x.data, (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))),
      );
      close(
        silu(x),
        Array.from(x.data, (v) => v / (1 + Math.exp(-v))),
      );
      close(
        sigmoid(x),
        Array.from(x.data, (v) => 1 / (1 + Math.exp(-v))),
      );
    });

    test("softmax over any axis, with −∞ mask, stable for large values", async () => {
      await init({ backend });
      const x = rand([3, 5, 7], 12, 1000);
      for (const dim of [0, 1, 2, -1]) {
        const y = softmax(x, dim);
        const s = sum(y, dim);
        close(s, new Array(s.size).fill(1), 1e-5, 0);
      }
      const m = tensor([[0, -Infinity, 0]]);
      const y = softmax(tensor([[1e4, 1e4 + 1, 1e4]]), -1, m);
      close(y, [0.5, 0, 0.5]);
      close(softmax(tensor([[-Infinity, -Infinity]])), [0, 0]);
      const ls = logSoftmax(x, 1);
      close(ls, Array.from(softmax(x, 1).data, Math.log), 1e-3, 1e-4);
    });

    test("layer norm: constant rows and a large common offset", async () => {
      await init({ backend });
      const d = 33;
      const x = rand([5, d], 13);
      for (let i = 0; i < x.size; i++) x.data[i] += 1e4;
      for (let j = 0; j < d; j++) x.data[j] = 7; // constant row
      const w = rand([d], 14);
      const b = rand([d], 15);
      const y = layerNorm(x, w, b, 1e-5);
      const exp: number[] = [];
      for (let r = 0; r < 5; r++) {
        const row = Array.from(x.data.subarray(r * d, r * d + d));
        const mu = row.reduce((a, c) => a + c, 0) / d;
        const v = row.reduce((a, c) => a + (c - mu) ** 2, 0) / d;
        for (const [j, c] of row.entries()) exp.push(((c - mu) / Math.sqrt(v + 1e-5)) * w.data[j] + b.data[j]);
      }
      close(y, exp, 1e-3, 1e-3);
      expect(() => layerNorm(x, rand([d + 1]))).toThrow(ShapeError);
    });

    test("reductions over any axis", async () => {
      await init({ backend });
      const x = rand([3, 4, 5], 16);
      const s = sum(x, 1);
      expect(s.shape).toEqual([3, 5]);
      for (let i = 0; i < 3; i++)
        for (let k = 0; k < 5; k++) {
          let t = 0;
          for (let j = 0; j < 4; j++) t += x.get(i, j, k);
          expect(s.get(i, k)).toBeCloseTo(t, 5);
        }
      expect(mean(x, 0, true).shape).toEqual([1, 4, 5]);
      expect(max(x).item()).toBe(Math.max(...x.data));
      expect(
        argmax(
          tensor([
            [1, 3, 3],
            [5, 0, 1],
          ]),
        ).toArray(),
      ).toEqual([1, 0]);
    });

    test("embedding gather rejects out-of-range ids", async () => {
      await init({ backend });
      const table = rand([10, 3], 17);
      const ids = new Tensor(new Int32Array([9, 0, 4]), [3]);
      const e = embedding(table, ids);
      expect(e.shape).toEqual([3, 3]);
      expect(Array.from(e.data.subarray(0, 3))).toEqual(Array.from(table.data.subarray(27, 30)));
      expect(() => embedding(table, new Tensor(new Int32Array([1, 10]), [2]))).toThrow(InputError);
      expect(() => embedding(table, new Tensor(new Int32Array([-1]), [1]))).toThrow(/position 0/);
    });

    test("patch conv2d equals the direct sum", async () => {
      await init({ backend });
      const [B, C, H, W, O, k] = [2, 3, 9, 10, 5, 3]; // rows/cols beyond whole patches are ignored
      const x = rand([B, C, H, W], 18);
      const w = rand([O, C, k, k], 19);
      const b = rand([O], 20);
      const y = conv2dPatch(x, w, b, k);
      expect(y.shape).toEqual([B, O, 3, 3]);
      for (let bb = 0; bb < B; bb++)
        for (let o = 0; o < O; o++)
          for (let r = 0; r < 3; r++)
            for (let c = 0; c < 3; c++) {
              let s = b.data[o];
              for (let ch = 0; ch < C; ch++)
                for (let u = 0; u < k; u++)
                  for (let v = 0; v < k; v++) {
                    s += w.get(o, ch, u, v) * x.get(bb, ch, r * k + u, c * k + v);
                  }
              expect(y.get(bb, o, r, c)).toBeCloseTo(s, 4);
            }
    });
  });
}

describe("layout ops (all dtypes)", () => {
  test("permute / transpose / slice / narrow / concat / stack / indexSelect / gather / cast", () => {
    const x = new Tensor(
      Int32Array.from({ length: 24 }, (_, i) => i),
      [2, 3, 4],
    );
    const p = permute(x, [2, 0, 1]);
    expect(p.shape).toEqual([4, 2, 3]);
    expect(p.get(3, 1, 2)).toBe(x.get(1, 2, 3));
    expect(transpose(x, 0, 2).get(3, 2, 1)).toBe(x.get(1, 2, 3));
    expect(slice(x, 2, 1, -1).toArray()).toEqual([
      [
        [1, 2],
        [5, 6],
        [9, 10],
      ],
      [
        [13, 14],
        [17, 18],
        [21, 22],
      ],
    ]);
    expect(slice(x, 1, 0, undefined, 2).shape).toEqual([2, 2, 4]);
    expect(narrow(x, 0, 1, 1).data[0]).toBe(12);
    expect(() => narrow(x, 0, 1, 2)).toThrow(ShapeError);
    const c = concat([x, x], 1);
    expect(c.shape).toEqual([2, 6, 4]);
    expect(c.get(1, 4, 2)).toBe(x.get(1, 1, 2));
    expect(stack([x, x], -1).shape).toEqual([2, 3, 4, 2]);
    expect(indexSelect(x, 1, [2, 0]).get(1, 0, 3)).toBe(x.get(1, 2, 3));
    expect(() => indexSelect(x, 1, [3])).toThrow(InputError);
    const idx = new Tensor(new Int32Array([2, 0, 1, 1, 0, 2]), [2, 3, 1]);
    expect(gather(x, 2, idx).toArray()).toEqual([
      [[2], [4], [9]],
      [[13], [16], [22]],
    ]);
    expect(cast(tensor([0, 2.7, -1.5]), "i32").toArray()).toEqual([0, 2, -1]);
    expect(cast(tensor([0, 2.7]), "bool").toArray()).toEqual([0, 1]);
    expect(x.reshape([4, -1]).shape).toEqual([4, 6]);
    expect(() => x.reshape([5, -1])).toThrow(ShapeError);
    expect(() => new Tensor(new Float32Array(3), [2, 2])).toThrow(ShapeError);
  });

  test("sinusoidal positional encoding, odd width", () => {
    const pe = sinusoidalPositionalEncoding(7, 5);
    expect(pe.shape).toEqual([7, 5]);
    for (let p = 0; p < 7; p++)
      for (let j = 0; j < 5; j++) {
        const w = 10000 ** (-(2 * Math.floor(j / 2)) / 5);
        expect(pe.get(p, j)).toBeCloseTo(j % 2 ? Math.cos(p * w) : Math.sin(p * w), 6);
      }
  });
});

describe("Tensor construction", () => {
  test("data that does not fit the dtype, an unknown dtype or non-array data are ShapeErrors", () => {
    expect(() => new Tensor(new BigInt64Array(2) as never, [2], "i64" as never)).toThrow(ShapeError);
    expect(() => new Tensor(new BigInt64Array(2) as never, [2], "i64" as never)).toThrow(/unknown dtype "i64"/);
    expect(() => new Tensor(new Float32Array(2) as never, [2], "i32")).toThrow(
      /dtype i32 does not match a Float32Array/,
    );
    expect(() => new Tensor(new Int32Array(2) as never, [2], "f32")).toThrow(/needs a Float32Array/);
    expect(() => new Tensor([1, 2] as never, [2])).toThrow(/must be a Float32Array, Int32Array or Uint8Array/);
    expect(() => new Tensor(null as never, [0])).toThrow(ShapeError);
    expect(() => new Tensor(new Float32Array(2), 2 as never)).toThrow(/shape must be an array/);
    expect(new Tensor(new Uint8Array(2), [2], "bool").dtype).toBe("bool");
  });
});
