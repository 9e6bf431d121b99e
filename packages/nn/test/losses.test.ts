// Losses (PyTorch semantics) and their gradients against float64 formulas and central finite
// differences, cross-entropy on every backend; typed errors for labels out of range and shape
// mismatches.
import { InputError, ShapeError, Tensor } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { binaryCrossEntropy, binaryCrossEntropyWithLogits, crossEntropy, mseLoss } from "../src/losses.js";
import { backends, closeTo, rng } from "./helpers.js";

const bks = await backends();
const t32 = (a: ArrayLike<number>, shape: number[]) => new Tensor(Float32Array.from(a), shape, "f32");

/** PyTorch's cross-entropy in float64 (rows of C logits). */
function ce64(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  C: number,
  ignore: number,
  eps: number,
  sum: boolean,
): number {
  let s = 0;
  let n = 0;
  for (let r = 0; r < y.length; r++) {
    if (y[r] === ignore) continue;
    const row = Array.from({ length: C }, (_, j) => x[r * C + j]!);
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
    s += lse - (1 - eps) * row[y[r]!]! - (eps / C) * row.reduce((a, v) => a + v, 0);
    n++;
  }
  return sum ? s : s / n;
}

/** Central differences of `f` at `x` (float64). */
function numGrad(f: (x: Float64Array) => number, x: ArrayLike<number>): number[] {
  const v = Float64Array.from(x);
  return Array.from(v, (_, i) => {
    const h = 1e-6;
    const o = v[i]!;
    v[i] = o + h;
    const up = f(v);
    v[i] = o - h;
    const down = f(v);
    v[i] = o;
    return (up - down) / (2 * h);
  });
}

describe.each(bks)("crossEntropy on $name", ({ make }) => {
  it.each([
    { eps: 0, sum: false, scale: 1 },
    { eps: 0.1, sum: false, scale: 0.5 },
    { eps: 0.25, sum: true, scale: 1 },
  ])("label smoothing $eps, sum $sum, scale $scale, an ignored row, [3, 2, 5] logits", ({ eps, sum, scale }) => {
    const rt = make();
    const r = rng(3);
    const x = r.tensor([3, 2, 5], 3);
    const y = Int32Array.from([4, 0, -100, 2, 1, 3]);
    const labels = new Tensor(y, [3, 2], "i32");
    const res = crossEntropy(x, labels, { labelSmoothing: eps, reduction: sum ? "sum" : "mean", scale, runtime: rt });
    const f = (v: ArrayLike<number>) => ce64(v, y, 5, -100, eps, sum);
    expect(res.loss).toBeCloseTo(f(x.data), 5);
    const g = numGrad(f, x.data).map((v) => v * scale);
    expect(closeTo(res.grad, g, [3, 2, 5], 1e-6, 1e-4)).toBeUndefined();
    // ignored rows get no gradient
    for (let j = 0; j < 5; j++) expect(res.grad.data[2 * 5 + j]).toBe(0);
  });

  it("a custom ignoreIndex; every row ignored gives NaN (mean) as PyTorch, and a zero gradient", () => {
    const rt = make();
    const x = rng(4).tensor([2, 3]);
    const a = crossEntropy(x, new Tensor(Int32Array.from([7, 1]), [2], "i32"), { ignoreIndex: 7, runtime: rt });
    expect(a.loss).toBeCloseTo(ce64(x.data, [7, 1], 3, 7, 0, false), 5);
    const b = crossEntropy(x, new Tensor(Int32Array.from([7, 7]), [2], "i32"), { ignoreIndex: 7, runtime: rt });
    expect(b.loss).toBeNaN();
    expect([...b.grad.data].every((v) => v === 0)).toBe(true);
  });

  it("a label out of range is an InputError naming its position and value", () => {
    const rt = make();
    const x = rng(5).tensor([3, 4]);
    for (const bad of [4, -1, -101]) {
      const labels = new Tensor(Int32Array.from([0, bad, 1]), [3], "i32");
      expect(() => crossEntropy(x, labels, { runtime: rt })).toThrow(InputError);
      expect(() => crossEntropy(x, labels, { runtime: rt })).toThrow(
        new RegExp(`label ${bad} at position 1 is outside \\[0, 4\\)`),
      );
    }
  });
});

describe("crossEntropy, mseLoss, binaryCrossEntropy(WithLogits): arguments", () => {
  const x = t32([0.2, 0.7, 0.5, 0.9], [2, 2]);
  it("shape mismatches are ShapeErrors naming both shapes", () => {
    expect(() => crossEntropy(x, new Tensor(Int32Array.from([0, 1, 0]), [3], "i32"))).toThrow(ShapeError);
    expect(() => crossEntropy(x, new Tensor(Int32Array.from([0, 1, 0]), [3], "i32"))).toThrow(/\[2, 2\].*\[3\]/);
    expect(() => crossEntropy(x, t32([0, 1], [2]))).toThrow(/labels must be an i32 tensor/);
    for (const f of [mseLoss, binaryCrossEntropy, binaryCrossEntropyWithLogits]) {
      expect(() => f(x, t32([1, 0, 1], [3]))).toThrow(ShapeError);
      expect(() => f(x, t32([1, 0, 1], [3]))).toThrow(/input \[2, 2\] and target \[3\]/);
    }
  });
  it("bad options are InputErrors naming the option", () => {
    const y = new Tensor(Int32Array.from([0, 1]), [2], "i32");
    expect(() => crossEntropy(x, y, { labelSmoothing: 1.5 })).toThrow(/labelSmoothing/);
    expect(() => crossEntropy(x, y, { reduction: "none" as "sum" })).toThrow(/reduction/);
    expect(() => mseLoss(x, x, { scale: Number.NaN })).toThrow(/scale/);
  });
  it("binaryCrossEntropy rejects an input outside [0, 1], naming the entry", () => {
    expect(() => binaryCrossEntropy(t32([0.5, 1.5], [2]), t32([1, 0], [2]))).toThrow(InputError);
    expect(() => binaryCrossEntropy(t32([0.5, 1.5], [2]), t32([1, 0], [2]))).toThrow(/input\[1\] = 1.5/);
  });
});

describe("mseLoss and binary cross-entropy against float64 formulas", () => {
  const r = rng(6);
  const x = r.tensor([3, 5], 2);
  const y = r.tensor([3, 5], 1);
  const p = t32(
    Array.from(x.data, (v) => 1 / (1 + Math.exp(-v))),
    [3, 5],
  );
  const t = t32(
    Array.from(y.data, (v) => (v + 1) / 2),
    [3, 5],
  ); // soft targets in [0, 1]
  it.each([false, true])("sum %s", (sum) => {
    const red = sum ? "sum" : "mean";
    const n = sum ? 1 : 15;
    const mse = (v: ArrayLike<number>) => Array.from(v).reduce((a, xi, i) => a + (xi - y.data[i]!) ** 2, 0) / n;
    const m = mseLoss(x, y, { reduction: red });
    expect(m.loss).toBeCloseTo(mse(x.data), 5);
    expect(closeTo(m.grad, numGrad(mse, x.data), [3, 5], 1e-6, 1e-4)).toBeUndefined();

    const bce = (v: ArrayLike<number>) =>
      -Array.from(v).reduce((a, pi, i) => a + t.data[i]! * Math.log(pi) + (1 - t.data[i]!) * Math.log(1 - pi), 0) / n;
    const b = binaryCrossEntropy(p, t, { reduction: red });
    expect(b.loss).toBeCloseTo(bce(p.data), 5);
    expect(closeTo(b.grad, numGrad(bce, p.data), [3, 5], 1e-5, 1e-4)).toBeUndefined();

    const bcel = (v: ArrayLike<number>) => bce(Array.from(v, (xi) => 1 / (1 + Math.exp(-xi))));
    const bl = binaryCrossEntropyWithLogits(x, t, { reduction: red, scale: 2 });
    expect(bl.loss).toBeCloseTo(bcel(x.data), 5);
    expect(
      closeTo(
        bl.grad,
        numGrad(bcel, x.data).map((v) => 2 * v),
        [3, 5],
        1e-6,
        1e-4,
      ),
    ).toBeUndefined();
  });

  it("PyTorch's edge values: log clamped at −100, logits stable at ±100", () => {
    expect(binaryCrossEntropy(t32([0, 1], [2]), t32([1, 0], [2])).loss).toBe(100);
    const big = binaryCrossEntropyWithLogits(t32([100, -100], [2]), t32([0, 1], [2]));
    expect(big.loss).toBeCloseTo(100, 5);
    expect(Array.from(big.grad.data)).toEqual([0.5, -0.5]);
  });
});
