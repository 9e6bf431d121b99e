/**
 * Tensor-level backward ops (src/grad-ops.ts) on the wasm backend against central finite
 * differences of float64 forwards, plus their typed errors.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { prng as rng } from "../../../tools/test-utils/src/prng.js";
import { applyAct } from "../src/backend/ref.js";
import { InputError, ShapeError } from "../src/errors.js";
import {
  conv2dPatchBackward,
  embeddingBackward,
  geluBackward,
  layerNormBackward,
  linearBackward,
  reluBackward,
  rmsNormBackward,
  sigmoidBackward,
  siluBackward,
  softmaxBackward,
  softmaxCrossEntropy,
  tanhBackward,
} from "../src/grad-ops.js";
import { Act } from "../src/kernels.js";
import { init } from "../src/runtime.js";
import { Tensor } from "../src/tensor.js";
import { dotLoss, expectClose, fdGrad } from "./backward-harness.js";

beforeAll(async () => {
  expect(await init()).toMatch(/^wasm/);
});

const T = (r: ReturnType<typeof rng>, shape: number[], lo = -1, hi = 1) =>
  new Tensor(
    r.f32(
      shape.reduce((a, b) => a * b, 1),
      lo,
      hi,
    ),
    shape,
    "f32",
  );
const TOL = [2e-5, 2e-4] as const;

describe("activation backward ops", () => {
  it("relu, gelu (erf, tanh), silu from x; tanh, sigmoid from y", () => {
    const r = rng(90);
    const x = T(r, [3, 5], -3, 3);
    const dy = T(r, [3, 5]);
    const fd = (act: number) =>
      fdGrad(
        (xx) =>
          dotLoss(
            xx.map((v) => applyAct(v, act)),
            dy.data,
          ),
        x.data,
      );
    expectClose(reluBackward(dy, x).data, fd(Act.relu), ...TOL, "relu");
    expectClose(geluBackward(dy, x).data, fd(Act.gelu), ...TOL, "gelu");
    expectClose(geluBackward(dy, x, "tanh").data, fd(Act.geluTanh), ...TOL, "geluTanh");
    expectClose(siluBackward(dy, x).data, fd(Act.silu), ...TOL, "silu");
    const y = (act: number) =>
      new Tensor(
        x.data.map((v) => applyAct(v, act)),
        x.shape,
        "f32",
      );
    expectClose(tanhBackward(dy, y(Act.tanh)).data, fd(Act.tanh), ...TOL, "tanh");
    expectClose(sigmoidBackward(dy, y(Act.sigmoid)).data, fd(Act.sigmoid), ...TOL, "sigmoid");
    expect(() => reluBackward(dy, T(r, [5, 3]))).toThrow(ShapeError);
  });
});

describe("norm and softmax backward ops", () => {
  it("layerNormBackward (with and without affine) and rmsNormBackward", () => {
    const r = rng(91);
    const [rows, d] = [4, 9];
    const x = T(r, [2, 2, d], -2, 2);
    const w = T(r, [d], 0.5, 1.5);
    const b = T(r, [d]);
    const dy = T(r, [2, 2, d]);
    const ln = (xx: ArrayLike<number>, ww: ArrayLike<number>, bb: ArrayLike<number>, rms: boolean) => {
      let s = 0;
      for (let i = 0; i < rows; i++) {
        let m = 0;
        for (let j = 0; j < d; j++) m += xx[i * d + j]!;
        m = rms ? 0 : m / d;
        let v = 0;
        for (let j = 0; j < d; j++) v += (xx[i * d + j]! - m) ** 2;
        const rs = 1 / Math.sqrt(v / d + (rms ? 1e-6 : 1e-5));
        for (let j = 0; j < d; j++)
          s += ((xx[i * d + j]! - m) * rs * ww[j]! + (rms ? 0 : bb[j]!)) * dy.data[i * d + j]!;
      }
      return s;
    };
    const g = layerNormBackward(dy, x, w, b);
    expectClose(
      g.dx.data,
      fdGrad((xx) => ln(xx, w.data, b.data, false), x.data),
      ...TOL,
      "ln dx",
    );
    expectClose(
      g.dweight!.data,
      fdGrad((ww) => ln(x.data, ww, b.data, false), w.data),
      ...TOL,
      "ln dw",
    );
    expectClose(
      g.dbias!.data,
      fdGrad((bb) => ln(x.data, w.data, bb, false), b.data),
      ...TOL,
      "ln db",
    );
    const ones = new Float32Array(d).fill(1);
    const plain = layerNormBackward(dy, x);
    expect(plain.dweight).toBeUndefined();
    expectClose(
      plain.dx.data,
      fdGrad((xx) => ln(xx, ones, new Float32Array(d), false), x.data),
      ...TOL,
      "ln plain",
    );
    const rg = rmsNormBackward(dy, x, w);
    expectClose(
      rg.dx.data,
      fdGrad((xx) => ln(xx, w.data, b.data, true), x.data),
      ...TOL,
      "rms dx",
    );
    expectClose(
      rg.dweight!.data,
      fdGrad((ww) => ln(x.data, ww, b.data, true), w.data),
      ...TOL,
      "rms dw",
    );
    expect(() => layerNormBackward(dy, x, T(r, [d + 1]))).toThrow(ShapeError);
  });

  it("softmaxBackward over a non-last dim", () => {
    const r = rng(92);
    const x = T(r, [3, 4], -2, 2);
    const dy = T(r, [3, 4]);
    // softmax over dim 0 (columns)
    const sm0 = (xx: ArrayLike<number>) => {
      const y = new Float64Array(12);
      for (let c = 0; c < 4; c++) {
        let s = 0;
        for (let i = 0; i < 3; i++) s += Math.exp(xx[i * 4 + c]!);
        for (let i = 0; i < 3; i++) y[i * 4 + c] = Math.exp(xx[i * 4 + c]!) / s;
      }
      return y;
    };
    const y = new Tensor(Float32Array.from(sm0(x.data)), [3, 4], "f32");
    expectClose(
      softmaxBackward(dy, y, 0).data,
      fdGrad((xx) => dotLoss(sm0(xx), dy.data), x.data),
      ...TOL,
      "dim 0",
    );
  });
});

describe("linear, patch convolution and embedding backward ops", () => {
  it("linearBackward: dx, dweight, dbias over a batched input", () => {
    const r = rng(93);
    const [In, O] = [5, 3];
    const x = T(r, [2, 3, In]);
    const w = T(r, [O, In]);
    const bias = T(r, [O]);
    const dy = T(r, [2, 3, O]);
    const lin = (xx: ArrayLike<number>, ww: ArrayLike<number>, bb: ArrayLike<number>) => {
      let s = 0;
      for (let m = 0; m < 6; m++)
        for (let o = 0; o < O; o++) {
          let z = bb[o]!;
          for (let i = 0; i < In; i++) z += xx[m * In + i]! * ww[o * In + i]!;
          s += z * dy.data[m * O + o]!;
        }
      return s;
    };
    const g = linearBackward(dy, x, w);
    expectClose(
      g.dx.data,
      fdGrad((xx) => lin(xx, w.data, bias.data), x.data),
      ...TOL,
      "dx",
    );
    expectClose(
      g.dweight.data,
      fdGrad((ww) => lin(x.data, ww, bias.data), w.data),
      ...TOL,
      "dw",
    );
    expectClose(
      g.dbias!.data,
      fdGrad((bb) => lin(x.data, w.data, bb), bias.data),
      ...TOL,
      "db",
    );
    expect(linearBackward(dy, x, w, false).dbias).toBeUndefined();
    expect(() => linearBackward(T(r, [2, 3, O + 1]), x, w)).toThrow(ShapeError);
  });

  it("conv2dPatchBackward: dx (0 past the last patch), dweight, dbias", () => {
    const r = rng(94);
    const [B, C, H, W, k, O] = [2, 3, 7, 5, 2, 4];
    const gh = Math.floor(H / k);
    const gw = Math.floor(W / k);
    const x = T(r, [B, C, H, W]);
    const w = T(r, [O, C, k, k]);
    const bias = T(r, [O]);
    const dy = T(r, [B, O, gh, gw]);
    const conv = (xx: ArrayLike<number>, ww: ArrayLike<number>, bb: ArrayLike<number>) => {
      let s = 0;
      for (let b = 0; b < B; b++)
        for (let o = 0; o < O; o++)
          for (let i = 0; i < gh; i++)
            for (let j = 0; j < gw; j++) {
              let z = bb[o]!;
              for (let c = 0; c < C; c++)
                for (let u = 0; u < k; u++)
                  for (let v = 0; v < k; v++)
                    z += xx[((b * C + c) * H + i * k + u) * W + j * k + v]! * ww[((o * C + c) * k + u) * k + v]!;
              s += z * dy.data[((b * O + o) * gh + i) * gw + j]!;
            }
      return s;
    };
    const g = conv2dPatchBackward(dy, x, w, k);
    expectClose(
      g.dx.data,
      fdGrad((xx) => conv(xx, w.data, bias.data), x.data),
      ...TOL,
      "dx",
    );
    expectClose(
      g.dweight.data,
      fdGrad((ww) => conv(x.data, ww, bias.data), w.data),
      ...TOL,
      "dw",
    );
    expectClose(
      g.dbias!.data,
      fdGrad((bb) => conv(x.data, w.data, bb), bias.data),
      ...TOL,
      "db",
    );
    expect(g.dx.data[W - 1]).toBe(0); // last column: past the last whole patch (W = 5, k = 2)
    expect(() => conv2dPatchBackward(T(r, [B, O, gh, gw + 1]), x, w, k)).toThrow(ShapeError);
  });

  it("embeddingBackward: repeated ids accumulate, into = tied accumulation, padding, bad ids", () => {
    const ids = new Tensor(Int32Array.from([2, 0, 2, 3]), [2, 2], "i32");
    const dy = new Tensor(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), [2, 2, 2], "f32");
    const g = embeddingBackward(dy, ids, 4);
    expect(Array.from(g.data)).toEqual([3, 4, 0, 0, 6, 8, 7, 8]);
    const tied = new Tensor(new Float32Array(8).fill(1), [4, 2], "f32");
    const same = embeddingBackward(dy, ids, 4, { into: tied });
    expect(same).toBe(tied);
    expect(Array.from(tied.data)).toEqual([4, 5, 1, 1, 7, 9, 8, 9]);
    expect(Array.from(embeddingBackward(dy, ids, 4, { paddingIdx: -2 }).data)).toEqual([3, 4, 0, 0, 0, 0, 7, 8]);
    const badIds = new Tensor(Int32Array.from([1, 4]), [2], "i32");
    expect(() => embeddingBackward(new Tensor(new Float32Array(4), [2, 2], "f32"), badIds, 4)).toThrow(
      /id 4 at position 1 is outside \[0, 4\)/,
    );
    expect(() => embeddingBackward(dy, ids, 4, { paddingIdx: 9 })).toThrow(InputError);
    expect(() => embeddingBackward(dy, ids, 4, { into: Tensor.zeros([3, 2]) })).toThrow(ShapeError);
  });
});

describe("softmaxCrossEntropy", () => {
  it("matches F.cross_entropy (float64) and its finite-difference gradient, with ignore_index and smoothing", () => {
    const r = rng(95);
    const V = 6;
    const logits = T(r, [2, 3, V], -3, 3);
    const targets = new Tensor(Int32Array.from([1, -100, 5, 0, 2, -100]), [2, 3], "i32");
    const ce = (x: ArrayLike<number>, eps: number, sum: boolean) => {
      let total = 0;
      let n = 0;
      for (let i = 0; i < 6; i++) {
        const t = targets.data[i]!;
        if (t === -100) continue;
        n++;
        let lse = 0;
        for (let j = 0; j < V; j++) lse += Math.exp(x[i * V + j]!);
        lse = Math.log(lse);
        for (let j = 0; j < V; j++) total -= ((j === t ? 1 - eps : 0) + eps / V) * (x[i * V + j]! - lse);
      }
      return sum ? total : total / n;
    };
    for (const eps of [0, 0.1]) {
      for (const reduction of ["mean", "sum"] as const) {
        const { loss, dlogits } = softmaxCrossEntropy(logits, targets, { labelSmoothing: eps, reduction, dloss: 2 });
        expect(loss).toBeCloseTo(ce(logits.data, eps, reduction === "sum"), 5);
        const want = fdGrad((x) => 2 * ce(x, eps, reduction === "sum"), logits.data);
        expectClose(dlogits!.data, want, ...TOL, `eps ${eps} ${reduction}`);
      }
    }
    expect(softmaxCrossEntropy(logits, targets, { grad: false }).dlogits).toBeUndefined();
    const allIgnored = new Tensor(new Int32Array(6).fill(-100), [2, 3], "i32");
    expect(softmaxCrossEntropy(logits, allIgnored).loss).toBeNaN();
  });

  it("rejects bad targets and options with typed errors", () => {
    const logits = Tensor.zeros([2, 3]);
    const bad = new Tensor(Int32Array.from([0, 3]), [2], "i32");
    expect(() => softmaxCrossEntropy(logits, bad)).toThrow(/target 3 at position 1 is outside \[0, 3\)/);
    expect(() => softmaxCrossEntropy(logits, bad)).toThrow(InputError);
    const ok = new Tensor(Int32Array.from([0, 2]), [2], "i32");
    expect(() => softmaxCrossEntropy(logits, ok, { labelSmoothing: 1.5 })).toThrow(InputError);
    expect(() => softmaxCrossEntropy(logits, ok, { reduction: "none" as "sum" })).toThrow(InputError);
    expect(() => softmaxCrossEntropy(logits, new Tensor(Int32Array.from([0]), [1], "i32"))).toThrow(ShapeError);
  });
});
