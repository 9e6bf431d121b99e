/**
 * The SIMD optimizer kernels (plain and relaxed builds) against their reference twins
 * (src/backend/ref-optim.ts) on seeded random tensors of odd sizes: every branch (Adam, AdamW,
 * amsgrad, maximize, no decay; SGD plain, momentum first/later step, dampening, nesterov) must agree
 * bit for bit on the parameters and on every buffer, over several steps.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { prng as rng } from "../../../tools/test-utils/src/prng.js";
import { createRefRuntime, type Runtime } from "../src/runtime.js";
import { wasmBuilds } from "./wasm-builds.js";

const SIZES = [1, 3, 5, 7, 17, 33, 65, 130];
const wasm: Runtime[] = [];

beforeAll(async () => {
  wasm.push(...(await wasmBuilds()));
  expect(wasm.map((r) => r.backend)).toEqual(["wasm-simd", "wasm-relaxed"]);
});

/** Run `steps` updates on every runtime from the same data; returns each runtime's final buffers. */
function runAll(
  n: number,
  nbuf: number,
  seed: number,
  update: (rt: Runtime, p: number[], step: number) => void,
): Float32Array[][] {
  const r = rng(seed);
  const theta = r.f32(n, -2, 2);
  const grads = [r.f32(n, -1, 1), r.f32(n, -1e-3, 1e-3), r.f32(n, -3, 3)];
  grads[0]![0] = 0; // a zero gradient (v stays 0 on the first step: denominator eps)
  return [createRefRuntime(), ...wasm].map((rt) => {
    const h = rt.heap;
    const p = [h.put(theta), h.allocF32(n), ...Array.from({ length: nbuf }, () => h.allocF32(n))];
    grads.forEach((g, k) => {
      h.f32(p[1]!, n).set(g);
      update(rt, p, k + 1);
    });
    return p.filter((_, i) => i !== 1).map((ptr) => h.f32(ptr, n).slice());
  });
}

function expectSame(outs: Float32Array[][], what: string) {
  const [ref, ...rest] = outs;
  for (const got of rest) {
    got.forEach((buf, b) => {
      for (let i = 0; i < buf.length; i++) {
        if (!Object.is(buf[i], ref![b]![i])) {
          expect.fail(`${what}: buffer ${b} index ${i}: ${buf[i]} vs ref ${ref![b]![i]}`);
        }
      }
    });
  }
  // the update did something
  expect(ref![0]!.some((x) => Number.isFinite(x))).toBe(true);
}

describe("adamStep", () => {
  const cases = [
    { name: "AdamW", wd: 0.01, decoupled: 1, ams: false, sign: 1 },
    { name: "Adam L2", wd: 0.1, decoupled: 0, ams: false, sign: 1 },
    { name: "Adam no decay", wd: 0, decoupled: 0, ams: false, sign: 1 },
    { name: "AdamW amsgrad maximize", wd: 0.05, decoupled: 1, ams: true, sign: -1 },
  ];
  it("matches the reference bit for bit over three steps on odd sizes", () => {
    const [b1, b2, eps, lr] = [0.9, 0.999, 1e-8, 3e-3];
    for (const c of cases) {
      for (const n of SIZES) {
        const outs = runAll(n, 3, n * 7 + 1, (rt, p, t) => {
          rt.k.adamStep(
            p[0]!,
            p[1]!,
            p[2]!,
            p[3]!,
            c.ams ? p[4]! : 0,
            n,
            b1,
            1 - b1,
            b2,
            1 - b2,
            eps,
            lr / (1 - b1 ** t),
            Math.sqrt(1 - b2 ** t),
            c.wd,
            1 - lr * c.wd,
            c.decoupled,
            c.sign,
          );
        });
        expectSame(outs, `${c.name} n=${n}`);
      }
    }
  });
});

describe("sgdStep", () => {
  const cases = [
    { name: "plain", mu: 0, damp: 0, nesterov: 0, wd: 0, sign: 1 },
    { name: "momentum + decay", mu: 0.9, damp: 0, nesterov: 0, wd: 1e-2, sign: 1 },
    { name: "dampening", mu: 0.5, damp: 0.3, nesterov: 0, wd: 0, sign: 1 },
    { name: "nesterov maximize", mu: 0.9, damp: 0, nesterov: 1, wd: 1e-3, sign: -1 },
  ];
  it("matches the reference bit for bit over three steps on odd sizes", () => {
    for (const c of cases) {
      for (const n of SIZES) {
        const outs = runAll(n, 1, n * 13 + 5, (rt, p, t) => {
          rt.k.sgdStep(
            p[0]!,
            p[1]!,
            c.mu ? p[2]! : 0,
            n,
            0.05,
            c.wd,
            c.mu,
            1 - c.damp,
            t === 1 ? 1 : 0,
            c.nesterov,
            c.sign,
          );
        });
        expectSame(outs, `${c.name} n=${n}`);
      }
    }
  });

  it("reference formula: one momentum step by hand", () => {
    const rt = createRefRuntime();
    const th = rt.heap.put(Float32Array.of(1, -2));
    const g = rt.heap.put(Float32Array.of(0.5, 0.25));
    const b = rt.heap.put(Float32Array.of(0.2, 0.4));
    rt.k.sgdStep(th, g, b, 2, 0.5, 0, 0.5, 1, 0, 0, 1);
    // b = 0.5·b + g = [0.6, 0.45]; θ = θ − 0.5·b
    expect(Array.from(rt.heap.f32(b, 2))).toEqual([0.6, 0.45].map(Math.fround));
    const got = rt.heap.f32(th, 2);
    expect(got[0]).toBeCloseTo(0.7, 6);
    expect(got[1]).toBeCloseTo(-2.225, 6);
  });
});
