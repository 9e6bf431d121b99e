/**
 * The Llama-family kernels (`rmsNorm`, `rope`) on both wasm builds against the reference backend,
 * and the reference against a float64 evaluation of the formulas, on random odd shapes (d/2 odd,
 * tails of 1–3 lanes, strided rows, several heads).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { prng as rng } from "../../../tools/test-utils/src/prng.js";
import { createRefRuntime, type Runtime } from "../src/runtime.js";
import { wasmBuilds } from "./wasm-builds.js";

const ref = createRefRuntime();
const wasm: Runtime[] = [];
beforeAll(async () => {
  wasm.push(...(await wasmBuilds()));
});

type Bufs = Record<string, Float32Array | Int32Array>;

/** Put `bufs` in the heap (each followed by a guard), run `call`, check the guards, read back `out`. */
function exec(rt: Runtime, bufs: Bufs, call: (k: Runtime["k"], p: Record<string, number>) => void, out: string) {
  const mark = rt.heap.mark();
  const p: Record<string, number> = {};
  const guards: [number, number][] = [];
  for (const [name, data] of Object.entries(bufs)) {
    p[name] = rt.heap.put(data);
    const g = rt.heap.alloc(32);
    rt.heap.u8(g, 32).fill(0xa5);
    guards.push([g, 32]);
  }
  call(rt.k, p);
  for (const [g, n] of guards)
    expect(
      rt.heap.u8(g, n).every((b) => b === 0xa5),
      `${rt.backend}: guard written`,
    ).toBe(true);
  const res = rt.heap.f32(p[out]!, bufs[out]!.length).slice();
  rt.heap.release(mark);
  return res;
}

function expectClose(got: Float32Array, want: ArrayLike<number>, atol: number, rtol: number, label: string) {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const e = want[i]!;
    if (!(Math.abs(got[i]! - e) <= atol + rtol * Math.abs(e)))
      expect.fail(`${label}: element ${i} is ${got[i]}, expected ${e}`);
  }
}

describe("rmsNorm", () => {
  it("matches the float64 formula on ref and both wasm builds, with and without gamma, in place", () => {
    const r = rng(151);
    for (const rows of [1, 3, 7]) {
      for (const d of [1, 2, 3, 5, 7, 9, 17, 33, 66, 129]) {
        const x = r.f32(rows * d, -3, 3);
        const gamma = r.f32(d, 0.5, 1.5);
        const eps = d % 2 ? 1e-6 : 1e-5;
        for (const withGamma of [false, true]) {
          const want = new Float64Array(rows * d);
          for (let i = 0; i < rows; i++) {
            let ss = 0;
            for (let j = 0; j < d; j++) ss += x[i * d + j]! ** 2;
            const inv = 1 / Math.sqrt(ss / d + eps);
            for (let j = 0; j < d; j++) want[i * d + j] = x[i * d + j]! * inv * (withGamma ? gamma[j]! : 1);
          }
          for (const rt of [ref, ...wasm]) {
            const label = `${rt.backend} ${rows}x${d} gamma ${withGamma}`;
            const y = exec(
              rt,
              { x, y: new Float32Array(x.length), gamma },
              (k, p) => k.rmsNorm(p.x!, p.y!, rows, d, withGamma ? p.gamma! : 0, eps),
              "y",
            );
            expectClose(y, want, 1e-6, 2e-6, label);
            const inPlace = exec(
              rt,
              { x, gamma },
              (k, p) => k.rmsNorm(p.x!, p.x!, rows, d, withGamma ? p.gamma! : 0, eps),
              "x",
            );
            expectClose(inPlace, want, 1e-6, 2e-6, `${label} in place`);
          }
        }
      }
    }
  });

  it("leaves an all-zero row at zero (eps keeps it finite)", () => {
    for (const rt of [ref, ...wasm]) {
      const y = exec(
        rt,
        { x: new Float32Array(13), y: new Float32Array(13).fill(7) },
        (k, p) => k.rmsNorm(p.x!, p.y!, 1, 13, 0, 1e-6),
        "y",
      );
      expect(Array.from(y)).toEqual(new Array(13).fill(0));
    }
  });
});

describe("rope", () => {
  it("rotates features j and j + d/2 by pos·invFreq[j] in every head, on strided rows, as the float64 formula", () => {
    const r = rng(152);
    for (const d of [2, 4, 6, 8, 10, 14, 16, 26, 64]) {
      for (const heads of [1, 3, 5]) {
        const rows = 1 + r.int(0, 6);
        const ldx = heads * d + r.int(0, 3); // extra floats after the heads stay untouched
        const half = d / 2;
        const x = r.f32(rows * ldx, -2, 2);
        const pos = Int32Array.from({ length: rows }, () => r.int(0, 5000));
        const invFreq = Float32Array.from({ length: half }, (_, j) => 10000 ** (-(2 * j) / d));
        const want = Float64Array.from(x);
        for (let i = 0; i < rows; i++) {
          for (let h = 0; h < heads; h++) {
            for (let j = 0; j < half; j++) {
              const a = pos[i]! * invFreq[j]!;
              const lo = i * ldx + h * d + j;
              want[lo] = x[lo]! * Math.cos(a) - x[lo + half]! * Math.sin(a);
              want[lo + half] = x[lo + half]! * Math.cos(a) + x[lo]! * Math.sin(a);
            }
          }
        }
        for (const rt of [ref, ...wasm]) {
          const got = exec(
            rt,
            { x, pos, invFreq },
            (k, p) => k.rope(p.x!, ldx, rows, heads, d, p.pos!, p.invFreq!),
            "x",
          );
          expectClose(got, want, 2e-6, 2e-6, `${rt.backend} d ${d} heads ${heads} rows ${rows} ld ${ldx}`);
        }
      }
    }
  });

  it("is the identity at position 0 and does nothing for rows = 0", () => {
    const x = Float32Array.from({ length: 24 }, (_, i) => i - 11.5);
    for (const rt of [ref, ...wasm]) {
      const inv = Float32Array.of(1, 0.5, 0.25);
      expect(
        Array.from(
          exec(rt, { x, pos: new Int32Array(4), inv }, (k, p) => k.rope(p.x!, 6, 4, 1, 6, p.pos!, p.inv!), "x"),
        ),
      ).toEqual(Array.from(x));
      expect(
        Array.from(
          exec(rt, { x, pos: Int32Array.of(9), inv }, (k, p) => k.rope(p.x!, 6, 0, 1, 6, p.pos!, p.inv!), "x"),
        ),
      ).toEqual(Array.from(x));
    }
  });
});
