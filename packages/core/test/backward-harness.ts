/**
 * Helpers of the backward-kernel tests: run a kernel call on a runtime over copies of named
 * buffers (16-byte aligned, each followed by a sentinel guard that must stay untouched), compare
 * backends elementwise, and central finite differences in float64.
 */
import { expect } from "vitest";
import type { Runtime } from "../src/runtime.js";

export type Arr = Float32Array | Int32Array | Uint8Array;
export type Ptrs = Record<string, number>;

const GUARD = 64;
const SENTINEL = 0xa5;

/** Copy `bufs` into the heap, run `call`, check the guards, read back `outs`, release the heap. */
export function exec(
  rt: Runtime,
  bufs: Record<string, Arr>,
  call: (k: Runtime["k"], p: Ptrs) => unknown,
  outs: string[],
): { ret: unknown; out: Record<string, Arr> } {
  const mark = rt.heap.mark();
  const p: Ptrs = {};
  const guards: [string, number, number][] = [];
  for (const [name, data] of Object.entries(bufs)) {
    p[name] = rt.heap.put(data);
    expect(p[name]! % 16, `${name} pointer alignment`).toBe(0);
    const end = p[name]! + data.byteLength;
    const g = rt.heap.alloc(GUARD);
    guards.push([name, end, g + GUARD - end]);
    rt.heap.u8(end, g + GUARD - end).fill(SENTINEL);
  }
  const ret = call(rt.k, p);
  for (const [name, at, len] of guards) {
    const bad = rt.heap.u8(at, len).findIndex((b) => b !== SENTINEL);
    expect(bad, `${rt.backend}: write past the end of ${name} (byte ${bad} after it)`).toBe(-1);
  }
  const out: Record<string, Arr> = {};
  for (const name of outs) {
    const src = bufs[name]!;
    const ptr = p[name]!;
    out[name] =
      src instanceof Float32Array
        ? rt.heap.f32(ptr, src.length).slice()
        : src instanceof Int32Array
          ? rt.heap.i32(ptr, src.length).slice()
          : rt.heap.u8(ptr, src.length).slice();
  }
  rt.heap.release(mark);
  return { ret, out };
}

/** |a − e| ≤ atol + rtol·|e| elementwise; NaN must match NaN, infinities exactly. */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol: number,
  label: string,
): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e) || Number.isNaN(a) || !Number.isFinite(e) || !Number.isFinite(a)) {
      if (!Object.is(a, e) && !(a === e)) expect.fail(`${label}: element ${i} is ${a}, expected ${e}`);
      continue;
    }
    if (Math.abs(a - e) > atol + rtol * Math.abs(e)) {
      expect.fail(`${label}: element ${i} is ${a}, expected ${e} (atol ${atol}, rtol ${rtol})`);
    }
  }
}

/** Run on `ref` and on every wasm runtime; every output must agree within (atol, rtol). */
export function parity(
  ref: Runtime,
  wasm: readonly Runtime[],
  label: string,
  bufs: Record<string, Arr>,
  call: (k: Runtime["k"], p: Ptrs) => unknown,
  outs: string[],
  atol: number,
  rtol: number,
): { ret: unknown; out: Record<string, Arr> } {
  const want = exec(ref, bufs, call, outs);
  for (const rt of wasm) {
    const got = exec(rt, bufs, call, outs);
    expect(got.ret, `${label} [${rt.backend}]: return value`).toEqual(want.ret);
    for (const name of outs)
      expectClose(got.out[name]!, want.out[name]!, atol, rtol, `${label} [${rt.backend}] ${name}`);
  }
  return want;
}

/** Central differences of a float64 scalar function: ∂f/∂x_i ≈ (f(x + h·e_i) − f(x − h·e_i)) / 2h. */
export function fdGrad(fn: (x: Float64Array) => number, x0: ArrayLike<number>, h = 1e-6): Float64Array {
  const x = Float64Array.from(x0);
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    x[i] = v + h;
    const fp = fn(x);
    x[i] = v - h;
    const fm = fn(x);
    x[i] = v;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/** Σ_i a[i]·w[i]: the scalar "loss" whose gradient w.r.t. a is w (the upstream gradient dy). */
export function dotLoss(a: ArrayLike<number>, w: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * w[i]!;
  return s;
}
