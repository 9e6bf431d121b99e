/**
 * `rnnForwardBackward` (BPTT over stacked, bidirectional RNN/LSTM/GRU): the reference backend
 * against finite differences of a float64 forward written here from the PyTorch definitions
 * (https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html, GRU, RNN), and both wasm builds
 * against the reference backend on odd sizes.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { prng as rng } from "../../../tools/test-utils/src/prng.js";
import { InputError, ShapeError, WeightsError } from "../src/errors.js";
import { type RnnMode, type RnnSpec, rnnForwardBackward } from "../src/rnn-grad.js";
import { createRefRuntime, type Runtime } from "../src/runtime.js";
import { Tensor } from "../src/tensor.js";
import { dotLoss, expectClose, fdGrad } from "./backward-harness.js";
import { wasmBuilds } from "./wasm-builds.js";

const ref = createRefRuntime();
const wasm: Runtime[] = [];
beforeAll(async () => {
  wasm.push(...(await wasmBuilds()));
});

const GATES = { rnn_tanh: 1, rnn_relu: 1, lstm: 4, gru: 3 } as const;
const sig = (x: number) => 1 / (1 + Math.exp(-x));

function paramShapes(spec: RnnSpec): Record<string, number[]> {
  const D = spec.bidirectional ? 2 : 1;
  const GH = GATES[spec.mode] * spec.hiddenSize;
  const out: Record<string, number[]> = {};
  for (let l = 0; l < (spec.numLayers ?? 1); l++)
    for (let d = 0; d < D; d++) {
      const sfx = `l${l}${d ? "_reverse" : ""}`;
      out[`weight_ih_${sfx}`] = [GH, l === 0 ? spec.inputSize : D * spec.hiddenSize];
      out[`weight_hh_${sfx}`] = [GH, spec.hiddenSize];
      if (spec.bias ?? true) {
        out[`bias_ih_${sfx}`] = [GH];
        out[`bias_hh_${sfx}`] = [GH];
      }
    }
  return out;
}

/** float64 forward of the whole network (batch first): output, hN, cN flattened. */
function forward64(
  spec: RnnSpec,
  W: Record<string, ArrayLike<number>>,
  x: ArrayLike<number>,
  B: number,
  T: number,
  h0: ArrayLike<number>,
  c0: ArrayLike<number>,
) {
  const { mode, hiddenSize: H } = spec;
  const L = spec.numLayers ?? 1;
  const D = spec.bidirectional ? 2 : 1;
  const G = GATES[mode];
  const bias = spec.bias ?? true;
  let inp = Float64Array.from(x);
  let In = spec.inputSize;
  const hN = new Float64Array(L * D * B * H);
  const cN = new Float64Array(L * D * B * H);
  for (let l = 0; l < L; l++) {
    const out = new Float64Array(B * T * D * H);
    for (let d = 0; d < D; d++) {
      const sfx = `l${l}${d ? "_reverse" : ""}`;
      const wih = W[`weight_ih_${sfx}`]!;
      const whh = W[`weight_hh_${sfx}`]!;
      const bih = bias ? W[`bias_ih_${sfx}`]! : undefined;
      const bhh = bias ? W[`bias_hh_${sfx}`]! : undefined;
      const row = (l * D + d) * B * H;
      for (let b = 0; b < B; b++) {
        let h = Array.from({ length: H }, (_, j) => h0[row + b * H + j]!);
        let c = Array.from({ length: H }, (_, j) => c0[row + b * H + j]!);
        for (let s = 0; s < T; s++) {
          const t = d ? T - 1 - s : s;
          const gi = new Float64Array(G * H);
          const gh = new Float64Array(G * H);
          for (let g = 0; g < G * H; g++) {
            let a = bih ? bih[g]! : 0;
            for (let i = 0; i < In; i++) a += wih[g * In + i]! * inp[(b * T + t) * In + i]!;
            gi[g] = a;
            let e = bhh ? bhh[g]! : 0;
            for (let j = 0; j < H; j++) e += whh[g * H + j]! * h[j]!;
            gh[g] = e;
          }
          const hn = new Array<number>(H);
          const cn = new Array<number>(H);
          for (let j = 0; j < H; j++) {
            if (mode === "lstm") {
              const ig = sig(gi[j]! + gh[j]!);
              const fg = sig(gi[H + j]! + gh[H + j]!);
              const gg = Math.tanh(gi[2 * H + j]! + gh[2 * H + j]!);
              const og = sig(gi[3 * H + j]! + gh[3 * H + j]!);
              cn[j] = fg * c[j]! + ig * gg;
              hn[j] = og * Math.tanh(cn[j]!);
            } else if (mode === "gru") {
              const r = sig(gi[j]! + gh[j]!);
              const z = sig(gi[H + j]! + gh[H + j]!);
              const nn = Math.tanh(gi[2 * H + j]! + r * gh[2 * H + j]!);
              hn[j] = (1 - z) * nn + z * h[j]!;
            } else {
              const v = gi[j]! + gh[j]!;
              hn[j] = mode === "rnn_relu" ? Math.max(v, 0) : Math.tanh(v);
            }
          }
          h = hn;
          if (mode === "lstm") c = cn;
          for (let j = 0; j < H; j++) out[(b * T + t) * D * H + d * H + j] = h[j]!;
        }
        for (let j = 0; j < H; j++) {
          hN[row + b * H + j] = h[j]!;
          cN[row + b * H + j] = c[j]!;
        }
      }
    }
    inp = out;
    In = D * H;
  }
  return { out: inp, hN, cN };
}

function setup(spec: RnnSpec, B: number, T: number, seed: number) {
  const r = rng(seed);
  const L = spec.numLayers ?? 1;
  const D = spec.bidirectional ? 2 : 1;
  const H = spec.hiddenSize;
  const W: Record<string, Tensor<"f32">> = {};
  for (const [name, shape] of Object.entries(paramShapes(spec)))
    W[name] = new Tensor(
      r.f32(
        shape.reduce((a, b) => a * b, 1),
        -0.6,
        0.6,
      ),
      shape,
      "f32",
    );
  const sN = L * D * B * H;
  return {
    W,
    x: new Tensor(r.f32(B * T * spec.inputSize), [B, T, spec.inputSize], "f32"),
    h0: new Tensor(r.f32(sN, -0.5, 0.5), [L * D, B, H], "f32"),
    c0: new Tensor(r.f32(sN, -0.5, 0.5), [L * D, B, H], "f32"),
    wOut: new Tensor(r.f32(B * T * D * H), [B, T, D * H], "f32"),
    wh: new Tensor(r.f32(sN), [L * D, B, H], "f32"),
    wc: new Tensor(r.f32(sN), [L * D, B, H], "f32"),
  };
}

describe("rnnForwardBackward against finite differences (float64 forward)", () => {
  const modes: RnnMode[] = ["rnn_tanh", "rnn_relu", "lstm", "gru"];
  for (const mode of modes) {
    it(`${mode}: 2 layers, bidirectional: dx, dh0, dc0 and every parameter`, () => {
      const spec: RnnSpec = { mode, inputSize: 3, hiddenSize: 2, numLayers: 2, bidirectional: true };
      const [B, T] = [2, 3];
      const s = setup(spec, B, T, 50 + modes.indexOf(mode));
      const lstm = mode === "lstm";
      const res = rnnForwardBackward(spec, s.W, s.x, s.wOut, {
        h0: s.h0,
        c0: lstm ? s.c0 : undefined,
        dhN: s.wh,
        dcN: lstm ? s.wc : undefined,
        runtime: ref,
      });
      const W64 = Object.fromEntries(
        Object.entries(s.W).map(([n, t]) => [n, Float64Array.from(t.data as Float32Array)]),
      );
      const loss = (
        w: Record<string, ArrayLike<number>>,
        x: ArrayLike<number>,
        h0: ArrayLike<number>,
        c0: ArrayLike<number>,
      ) => {
        const f = forward64(spec, w, x, B, T, h0, c0);
        return dotLoss(f.out, s.wOut.data) + dotLoss(f.hN, s.wh.data) + (lstm ? dotLoss(f.cN, s.wc.data) : 0);
      };
      const zeros = new Float64Array(s.c0.size);
      const c0 = lstm ? s.c0.data : zeros;
      // the forward agrees
      const f = forward64(spec, W64, s.x.data, B, T, s.h0.data, c0);
      expectClose(res.output.data as Float32Array, f.out, 1e-5, 1e-4, `${mode} output`);
      expectClose(res.hN.data as Float32Array, f.hN, 1e-5, 1e-4, `${mode} hN`);
      if (lstm) expectClose(res.cN!.data as Float32Array, f.cN, 1e-5, 1e-4, `${mode} cN`);
      // and every gradient
      const tol = [2e-5, 2e-4] as const;
      expectClose(
        res.dx.data as Float32Array,
        fdGrad((x) => loss(W64, x, s.h0.data, c0), s.x.data),
        ...tol,
        `${mode} dx`,
      );
      expectClose(
        res.dh0.data as Float32Array,
        fdGrad((h) => loss(W64, s.x.data, h, c0), s.h0.data),
        ...tol,
        `${mode} dh0`,
      );
      if (lstm)
        expectClose(
          res.dc0!.data as Float32Array,
          fdGrad((c) => loss(W64, s.x.data, s.h0.data, c), c0),
          ...tol,
          `${mode} dc0`,
        );
      expect(Object.keys(res.grads).sort()).toEqual(Object.keys(s.W).sort());
      for (const name of Object.keys(s.W)) {
        const want = fdGrad((p) => loss({ ...W64, [name]: p }, s.x.data, s.h0.data, c0), W64[name]!);
        expectClose(res.grads[name]!.data as Float32Array, want, ...tol, `${mode} ${name}`);
        expect(res.grads[name]!.shape).toEqual(s.W[name]!.shape);
      }
    });
  }

  it("without bias, single layer, unidirectional, zero initial states (GRU)", () => {
    const spec: RnnSpec = { mode: "gru", inputSize: 2, hiddenSize: 3, bias: false };
    const [B, T] = [1, 4];
    const s = setup(spec, B, T, 60);
    const res = rnnForwardBackward(spec, s.W, s.x, s.wOut, { runtime: ref });
    const W64 = Object.fromEntries(Object.entries(s.W).map(([n, t]) => [n, Float64Array.from(t.data as Float32Array)]));
    const z = new Float64Array(3);
    const loss = (w: Record<string, ArrayLike<number>>, x: ArrayLike<number>) =>
      dotLoss(forward64(spec, w, x, B, T, z, z).out, s.wOut.data);
    expectClose(
      res.dx.data as Float32Array,
      fdGrad((x) => loss(W64, x), s.x.data),
      2e-5,
      2e-4,
      "dx",
    );
    expect(Object.keys(res.grads).sort()).toEqual(["weight_hh_l0", "weight_ih_l0"]);
    const want = fdGrad((p) => loss({ ...W64, weight_hh_l0: p }, s.x.data), W64.weight_hh_l0!);
    expectClose(res.grads.weight_hh_l0!.data as Float32Array, want, 2e-5, 2e-4, "dW_hh");
  });
});

describe("rnnForwardBackward on the wasm builds", () => {
  it("matches the reference backend on odd sizes (3 layers, bidirectional)", () => {
    for (const mode of ["rnn_tanh", "lstm", "gru"] as const) {
      const spec: RnnSpec = { mode, inputSize: 5, hiddenSize: 7, numLayers: 3, bidirectional: true };
      const [B, T] = [3, 5];
      const s = setup(spec, B, T, 70);
      const run = (rt: Runtime) =>
        rnnForwardBackward(spec, s.W, s.x, s.wOut, { h0: s.h0, c0: s.c0, dhN: s.wh, dcN: s.wc, runtime: rt });
      const want = run(ref);
      for (const rt of wasm) {
        const got = run(rt);
        const label = `${mode} [${rt.backend}]`;
        expectClose(got.output.data, want.output.data, 2e-6, 1e-4, `${label} output`);
        expectClose(got.dx.data, want.dx.data, 1e-5, 1e-4, `${label} dx`);
        expectClose(got.dh0.data, want.dh0.data, 1e-5, 1e-4, `${label} dh0`);
        for (const name of Object.keys(want.grads))
          expectClose(got.grads[name]!.data, want.grads[name]!.data, 1e-5, 1e-4, `${label} ${name}`);
      }
    }
  });

  it("rejects bad shapes, missing weights and modes with typed errors", () => {
    const spec: RnnSpec = { mode: "lstm", inputSize: 2, hiddenSize: 2 };
    const s = setup(spec, 1, 2, 80);
    expect(() => rnnForwardBackward(spec, {}, s.x, s.wOut, { runtime: ref })).toThrow(WeightsError);
    expect(() => rnnForwardBackward(spec, s.W, s.x, Tensor.zeros([1, 2, 3]), { runtime: ref })).toThrow(ShapeError);
    expect(() => rnnForwardBackward({ ...spec, mode: "lstmx" as RnnMode }, s.W, s.x, s.wOut)).toThrow(InputError);
    expect(() => rnnForwardBackward({ ...spec, hiddenSize: 0 }, s.W, s.x, s.wOut)).toThrow(InputError);
    expect(() => rnnForwardBackward(spec, s.W, Tensor.zeros([1, 0, 2]), Tensor.zeros([1, 0, 2]))).toThrow(ShapeError);
  });
});
