/**
 * Parity of the AssemblyScript SIMD kernels (plain and relaxed builds) with the reference backend,
 * ggml `test-backend-ops` style: every kernel runs on the same inputs on every backend and is
 * compared with the float64 reference under a per-op tolerance. Shapes include odd tails
 * (1, 3, 5, 17, 33, 65, 129); inputs come from a seeded generator.
 * GEMM/bmm/gemv are covered by the GEMM tests.
 */
import { fc, test as fcTest } from "@fast-check/vitest";
import { beforeAll, describe, expect, it } from "vitest";
// the shared test PRNG, by path (a package dependency core → test-utils → core would be a cycle)
import { prng as rng } from "../../../tools/test-utils/src/prng.js";
import { Act, BinOp, RedOp } from "../src/kernels.js";
import { createRefRuntime, type Runtime } from "../src/runtime.js";
import { wasmBuilds } from "./wasm-builds.js";

type Arr = Float32Array | Int32Array | Uint8Array;
type Ptrs = Record<string, number>;

const SIZES = [1, 3, 5, 17, 33, 65, 129];

const ref = createRefRuntime();
const wasm: Runtime[] = [];

beforeAll(async () => {
  wasm.push(...(await wasmBuilds()));
  expect(wasm.map((r) => r.backend)).toEqual(["wasm-simd", "wasm-relaxed"]);
});

// ---------------------------------------------------------------------------------------------
// harness

/** Bytes of sentinel after every buffer: a kernel writing past its output shows up here. */
const GUARD = 64;
const SENTINEL = 0xa5;

/**
 * Copy `bufs` into the runtime's heap (asserting 16-byte alignment, each followed by a sentinel
 * guard), run `call`, check that no guard was touched, read back the buffers named in `outs` and
 * release the heap.
 */
function exec(rt: Runtime, bufs: Record<string, Arr>, call: (k: Runtime["k"], p: Ptrs) => unknown, outs: string[]) {
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
    const bytes = rt.heap.u8(at, len);
    const bad = bytes.findIndex((b) => b !== SENTINEL);
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

/** |a − e| ≤ atol + rtol·|e| elementwise; NaN matches NaN, infinities must match exactly. */
function expectClose(actual: Arr, expected: Arr, atol: number, rtol: number, label: string) {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e) || Number.isNaN(a)) {
      if (Number.isNaN(e) !== Number.isNaN(a)) {
        worst = i;
        worstExcess = Number.POSITIVE_INFINITY;
        break;
      }
      continue;
    }
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      if (a !== e) {
        worst = i;
        worstExcess = Number.POSITIVE_INFINITY;
        break;
      }
      continue;
    }
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (worst >= 0) {
    expect.fail(
      `${label}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (atol ${atol}, rtol ${rtol})`,
    );
  }
}

/** Run on ref and on every wasm runtime, compare every output. */
function parity(
  label: string,
  bufs: Record<string, Arr>,
  call: (k: Runtime["k"], p: Ptrs) => unknown,
  outs: string[],
  atol: number,
  rtol: number,
) {
  const want = exec(ref, bufs, call, outs);
  for (const rt of wasm) {
    const got = exec(rt, bufs, call, outs);
    expect(got.ret, `${label} [${rt.backend}]: return value`).toEqual(want.ret);
    for (const name of outs)
      expectClose(got.out[name]!, want.out[name]!, atol, rtol, `${label} [${rt.backend}] ${name}`);
  }
  return want;
}

// ---------------------------------------------------------------------------------------------
// softmax / logSoftmax

describe("softmax", () => {
  it("matches ref on random shapes, masks (none, per-row, shared, with −∞), strides, in place", () => {
    const r = rng(1);
    for (const rows of [1, 3, 17, 65]) {
      for (const cols of SIZES) {
        for (const maskKind of ["none", "rows", "shared"] as const) {
          const ld = cols + (rows % 2 ? 0 : 3);
          const x = r.f32(rows * ld, -6, 6);
          const maskLd = maskKind === "rows" ? cols : 0;
          const mask = r.f32(maskKind === "none" ? 1 : maskKind === "rows" ? rows * cols : cols, -2, 2);
          for (let i = 0; i < mask.length; i++) if (r.next() < 0.2) mask[i] = Number.NEGATIVE_INFINITY;
          const y = new Float32Array(rows * ld);
          const label = `softmax ${rows}x${cols} ld ${ld} mask ${maskKind}`;
          parity(
            label,
            { x, y, mask },
            (k, p) => k.softmax(p.x!, p.y!, rows, cols, ld, maskKind === "none" ? 0 : p.mask!, maskLd),
            ["y"],
            1e-7,
            2e-6,
          );
          parity(
            `${label} in place`,
            { x, mask },
            (k, p) => k.softmax(p.x!, p.x!, rows, cols, ld, maskKind === "none" ? 0 : p.mask!, maskLd),
            ["x"],
            1e-7,
            2e-6,
          );
        }
      }
    }
  });

  it("handles −∞ rows (zeros), large magnitudes (±1e4) and a +1000 offset", () => {
    const cols = 37;
    const rows = 6;
    const r = rng(2);
    const x = new Float32Array(rows * cols);
    for (let j = 0; j < cols; j++) {
      x[j] = Number.NEGATIVE_INFINITY; // row 0: all −∞ → zeros
      x[cols + j] = j % 3 ? Number.NEGATIVE_INFINITY : r.uniform(-3, 3); // row 1: partly −∞
      x[2 * cols + j] = r.uniform(-1e4, 1e4); // row 2: huge spread
      x[3 * cols + j] = 1000 + r.uniform(-3, 3); // row 3: offset
      x[4 * cols + j] = 1e4; // row 4: constant large
      x[5 * cols + j] = 0; // row 5: zeros
    }
    const { out } = parity(
      "softmax edge",
      { x, y: new Float32Array(x.length) },
      (k, p) => k.softmax(p.x!, p.y!, rows, cols, cols, 0, 0),
      ["y"],
      1e-7,
      2e-6,
    );
    const y = out.y as Float32Array;
    expect(Array.from(y.subarray(0, cols)).every((v) => v === 0)).toBe(true);
    expect(y[4 * cols]).toBeCloseTo(1 / cols, 7);
  });

  it("an all −∞ mask row gives zeros", () => {
    const cols = 9;
    const x = rng(3).f32(2 * cols);
    const mask = new Float32Array(2 * cols).fill(Number.NEGATIVE_INFINITY);
    mask.fill(0, cols); // second row unmasked
    for (const rt of wasm) {
      const { out } = exec(
        rt,
        { x, mask, y: new Float32Array(2 * cols) },
        (k, p) => k.softmax(p.x!, p.y!, 2, cols, cols, p.mask!, cols),
        ["y"],
      );
      const y = out.y as Float32Array;
      expect(Array.from(y.subarray(0, cols))).toEqual(new Array(cols).fill(0));
      expect(y.subarray(cols).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 6);
    }
  });

  fcTest.prop([
    fc.array(fc.integer({ min: -8192, max: 8192 }), { minLength: 1, maxLength: 70 }),
    fc.integer({ min: -64, max: 64 }),
  ])("rows sum to 1 and ignore a constant shift", (ints, shift) => {
    // x = i/1024 and x + shift are exact in f32, so the shifted row must give the same output
    const cols = ints.length;
    const x = Float32Array.from(ints, (i) => i / 1024);
    const xs = Float32Array.from(ints, (i) => i / 1024 + shift);
    for (const rt of wasm) {
      const a = exec(rt, { x, y: new Float32Array(cols) }, (k, p) => k.softmax(p.x!, p.y!, 1, cols, cols, 0, 0), ["y"]);
      const b = exec(rt, { x: xs, y: new Float32Array(cols) }, (k, p) => k.softmax(p.x!, p.y!, 1, cols, cols, 0, 0), [
        "y",
      ]);
      const ya = a.out.y as Float32Array;
      let sum = 0;
      for (const v of ya) sum += v;
      expect(Math.abs(sum - 1)).toBeLessThan(2e-6);
      expectClose(b.out.y!, ya, 1e-7, 1e-6, `shift ${shift}`);
    }
  });
});

describe("logSoftmax", () => {
  it("matches ref on random shapes, strides, large magnitudes, −∞ entries, in place", () => {
    const r = rng(4);
    for (const rows of [1, 3, 17]) {
      for (const cols of SIZES) {
        const ld = cols + (rows === 3 ? 5 : 0);
        for (const mag of [4, 1e4]) {
          const x = r.f32(rows * ld, -mag, mag);
          for (let i = 0; i < x.length; i++) if (r.next() < 0.1) x[i] = Number.NEGATIVE_INFINITY;
          parity(
            `logSoftmax ${rows}x${cols} ±${mag}`,
            { x, y: new Float32Array(x.length) },
            (k, p) => k.logSoftmax(p.x!, p.y!, rows, cols, ld),
            ["y"],
            2e-6,
            2e-6,
          );
          parity(
            `logSoftmax in place ${rows}x${cols}`,
            { x },
            (k, p) => k.logSoftmax(p.x!, p.x!, rows, cols, ld),
            ["x"],
            2e-6,
            2e-6,
          );
        }
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// layerNorm

describe("layerNorm", () => {
  it("matches ref on random shapes, with and without gamma/beta, in place", () => {
    const r = rng(5);
    for (const rows of [1, 3, 17]) {
      for (const d of SIZES) {
        const x = r.f32(rows * d, -3, 3);
        const gamma = r.f32(d, 0.5, 1.5);
        const beta = r.f32(d, -1, 1);
        for (const [g, b] of [
          [0, 0],
          [1, 0],
          [0, 1],
          [1, 1],
        ] as const) {
          parity(
            `layerNorm ${rows}x${d} gamma ${g} beta ${b}`,
            { x, y: new Float32Array(x.length), gamma, beta },
            (k, p) => k.layerNorm(p.x!, p.y!, rows, d, g ? p.gamma! : 0, b ? p.beta! : 0, 1e-5),
            ["y"],
            2e-6,
            2e-6,
          );
        }
        parity(
          `layerNorm ${rows}x${d} in place`,
          { x, gamma, beta },
          (k, p) => k.layerNorm(p.x!, p.x!, rows, d, p.gamma!, p.beta!, 1e-5),
          ["x"],
          2e-6,
          2e-6,
        );
      }
    }
  });

  it("is exact for constant rows and accurate with a large common offset (1e4)", () => {
    const r = rng(6);
    for (const d of [5, 33, 129, 768]) {
      const rows = 3;
      const x = new Float32Array(rows * d);
      for (let j = 0; j < d; j++) {
        x[j] = 1e4; // constant row at a large offset
        x[d + j] = 1e4 + r.uniform(-1, 1); // offset + noise
        x[2 * d + j] = -1e4 + r.uniform(-0.01, 0.01); // offset + tiny noise (variance ~ eps)
      }
      const beta = r.f32(d);
      const { out } = parity(
        `layerNorm offset d=${d}`,
        { x, y: new Float32Array(x.length), beta },
        (k, p) => k.layerNorm(p.x!, p.y!, rows, d, 0, p.beta!, 1e-5),
        ["y"],
        3e-6,
        3e-6,
      );
      for (const rt of wasm) {
        const got = exec(
          rt,
          { x, y: new Float32Array(x.length), beta },
          (k, p) => k.layerNorm(p.x!, p.y!, rows, d, 0, p.beta!, 1e-5),
          ["y"],
        );
        expect(Array.from(got.out.y!.subarray(0, d))).toEqual(Array.from(beta));
      }
      expect(Array.from(out.y!.subarray(0, d))).toEqual(Array.from(beta));
    }
  });

  fcTest.prop([
    fc.array(fc.float({ min: -100, max: 100, noNaN: true }), { minLength: 2, maxLength: 80 }),
    fc.integer({ min: -3, max: 3 }),
  ])("output has mean ≈ 0 and variance ≈ 1", (vals, offExp) => {
    const off = offExp * 1000;
    const x = Float32Array.from(vals, (v) => v + off);
    const d = x.length;
    let m = 0;
    for (const v of x) m += v;
    m /= d;
    let v2 = 0;
    for (const v of x) v2 += (v - m) ** 2;
    fc.pre(v2 / d > 1e-2);
    for (const rt of wasm) {
      const { out } = exec(rt, { x, y: new Float32Array(d) }, (k, p) => k.layerNorm(p.x!, p.y!, 1, d, 0, 0, 1e-5), [
        "y",
      ]);
      const y = out.y as Float32Array;
      let mean = 0;
      for (const v of y) mean += v;
      mean /= d;
      let vv = 0;
      for (const v of y) vv += (v - mean) ** 2;
      vv /= d;
      expect(Math.abs(mean)).toBeLessThan(1e-5);
      expect(Math.abs(vv - 1)).toBeLessThan(1e-3);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// unary

const SPECIAL = [
  0,
  -0,
  1e-30,
  -1e-30,
  1e-7,
  -1e-7,
  0.5,
  -0.5,
  0.625,
  -0.625,
  1,
  -1,
  3,
  -3,
  9,
  -9,
  20,
  -20,
  87,
  -87,
  88.7,
  88.75,
  -103,
  -103.9,
  -104,
  -120,
  1e4,
  -1e4,
  1e30,
  -1e30,
  3.4e38,
  -3.4e38,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.NaN,
];

/** Per-code tolerance: exact ops bit-exact, approximations ~1e-6 relative. */
const UNARY_TOL: Record<number, [number, number]> = {
  [Act.none]: [0, 0],
  [Act.relu]: [0, 0],
  [Act.gelu]: [1e-44, 1e-6],
  [Act.geluTanh]: [1e-44, 1e-6],
  [Act.silu]: [1e-44, 1e-6],
  [Act.tanh]: [1e-44, 1e-6],
  [Act.sigmoid]: [1e-44, 1e-6],
  [Act.exp]: [1e-44, 1e-6],
  [Act.neg]: [0, 0],
  [Act.sqrt]: [0, 0],
  [Act.abs]: [0, 0],
  [Act.log]: [1e-44, 1e-6],
};

describe("unary", () => {
  it("matches ref for every activation on dense sweeps, special values and odd lengths", () => {
    const sweep = new Float32Array(8192);
    for (let i = 0; i < sweep.length; i++) sweep[i] = -30 + (60 * i) / sweep.length;
    const r = rng(7);
    const wide = Float32Array.from({ length: 4096 }, () => (r.next() < 0.5 ? -1 : 1) * 10 ** r.uniform(-8, 2.2));
    // random bit patterns: every exponent, subnormals, infinities and NaNs
    const bits = new Float32Array(Uint32Array.from({ length: 65536 }, () => (r.next() * 2 ** 32) >>> 0).buffer);
    for (const [name, code] of Object.entries(Act)) {
      const [atol, rtol] = UNARY_TOL[code]!;
      const inputs: [string, Float32Array][] = [
        ["sweep", sweep],
        ["wide", wide],
        ["bits", bits],
        ["special", Float32Array.from(SPECIAL)],
        ...SIZES.map((n): [string, Float32Array] => [`n=${n}`, r.f32(n, -6, 6)]),
      ];
      for (const [what, x] of inputs) {
        parity(
          `unary ${name} ${what}`,
          { x, y: new Float32Array(x.length) },
          (k, p) => k.unary(p.x!, p.y!, x.length, code),
          ["y"],
          atol,
          rtol,
        );
        parity(
          `unary ${name} ${what} in place`,
          { x },
          (k, p) => k.unary(p.x!, p.x!, x.length, code),
          ["x"],
          atol,
          rtol,
        );
      }
    }
  });

  it("keeps the special-value contract: exp(−∞)=0, exp(large)=∞, tanh(±large)=±1, relu(NaN)=NaN, no NaN from finite input", () => {
    const x = Float32Array.from([Number.NEGATIVE_INFINITY, -200, 100, 1e30, 50, -50, 1e4, -1e4]);
    for (const rt of wasm) {
      const run = (code: number) =>
        exec(rt, { x, y: new Float32Array(x.length) }, (k, p) => k.unary(p.x!, p.y!, x.length, code), ["y"]).out
          .y as Float32Array;
      const e = run(Act.exp);
      expect(Array.from(e.subarray(0, 4))).toEqual([0, 0, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY]);
      const t = run(Act.tanh);
      expect(Array.from(t.subarray(4))).toEqual([1, -1, 1, -1]);
      // relu as torch.relu: NaN stays NaN (vector lanes and the scalar tail)
      const nan = Float32Array.from([Number.NaN, -1, 2, Number.NaN, -3]);
      const r = exec(rt, { x: nan, y: new Float32Array(5) }, (k, p) => k.unary(p.x!, p.y!, 5, Act.relu), ["y"]).out
        .y as Float32Array;
      expect(Array.from(r)).toEqual([Number.NaN, 0, 2, Number.NaN, 0]);
      for (const code of [Act.gelu, Act.geluTanh, Act.silu, Act.sigmoid, Act.tanh, Act.exp]) {
        const y = run(code);
        for (let i = 1; i < x.length; i++) expect(Number.isNaN(y[i]), `code ${code} at ${x[i]}`).toBe(false);
      }
    }
  });

  fcTest.prop([
    fc.array(fc.float({ noDefaultInfinity: false }), { minLength: 1, maxLength: 40 }),
    fc.constantFrom(...Object.values(Act)),
  ])("wasm equals ref on arbitrary floats", (vals, code) => {
    const x = Float32Array.from(vals);
    const [atol, rtol] = UNARY_TOL[code]!;
    parity(
      `unary ${code}`,
      { x, y: new Float32Array(x.length) },
      (k, p) => k.unary(p.x!, p.y!, x.length, code),
      ["y"],
      atol,
      rtol,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// binary / scale / reduce / copy2d / transpose2d

describe("binary", () => {
  it("matches ref for every op and broadcast mode", () => {
    const r = rng(8);
    for (const rows of [1, 3, 17, 33]) {
      for (const cols of SIZES) {
        const a = r.f32(rows * cols, -4, 4);
        const modes: [string, number, number, number][] = [
          ["same", cols, 1, rows * cols],
          ["row", 0, 1, cols],
          ["col", 1, 0, rows],
          ["scalar", 0, 0, 1],
          ["strided", 2 * cols + 1, 2, rows * (2 * cols + 1) + 2 * cols],
        ];
        for (const [mode, bRow, bCol, bLen] of modes) {
          const b = r.f32(bLen, 0.25, 4);
          for (let i = 0; i < b.length; i++) if (r.next() < 0.5) b[i] = -b[i]!;
          for (const [opName, op] of Object.entries(BinOp)) {
            const label = `binary ${opName} ${mode} ${rows}x${cols}`;
            // f64-then-round (ref) vs f32 arithmetic: identical except for rare double rounding in div
            parity(
              label,
              { a, b, y: new Float32Array(a.length) },
              (k, p) => k.binary(p.a!, p.b!, p.y!, rows, cols, bRow, bCol, op),
              ["y"],
              0,
              1.2e-7,
            );
            parity(
              `${label} in place`,
              { a, b },
              (k, p) => k.binary(p.a!, p.b!, p.a!, rows, cols, bRow, bCol, op),
              ["a"],
              0,
              1.2e-7,
            );
          }
        }
      }
    }
  });

  it("propagates NaN in max/min like the reference", () => {
    const a = Float32Array.from([Number.NaN, 1, 2, Number.NaN, 5, -0]);
    const b = Float32Array.from([1, Number.NaN, 3, Number.NaN, -5, 0]);
    for (const op of [BinOp.max, BinOp.min]) {
      parity(
        `binary nan ${op}`,
        { a, b, y: new Float32Array(6) },
        (k, p) => k.binary(p.a!, p.b!, p.y!, 1, 6, 6, 1, op),
        ["y"],
        0,
        0,
      );
    }
  });
});

describe("scale", () => {
  it("matches ref on odd lengths, in place", () => {
    const r = rng(9);
    for (const n of [...SIZES, 1000]) {
      const x = r.f32(n, -10, 10);
      parity(
        `scale ${n}`,
        { x, y: new Float32Array(n) },
        (k, p) => k.scale(p.x!, p.y!, n, 0.37, -1.25),
        ["y"],
        1e-6,
        1e-6,
      );
      parity(`scale ${n} in place`, { x }, (k, p) => k.scale(p.x!, p.x!, n, -3, 0), ["x"], 0, 1e-7);
    }
  });
});

describe("reduce", () => {
  it("matches ref for sum/mean/max/min over the middle axis", () => {
    const r = rng(10);
    for (const outer of [1, 3, 5]) {
      for (const n of [1, 3, 17, 65, 129]) {
        for (const inner of [1, 2, 3, 4, 5, 17, 33]) {
          const x = r.f32(outer * n * inner, -2, 2);
          for (const [opName, op] of Object.entries(RedOp)) {
            const exact = op === RedOp.max || op === RedOp.min;
            parity(
              `reduce ${opName} [${outer},${n},${inner}]`,
              { x, y: new Float32Array(outer * inner) },
              (k, p) => k.reduce(p.x!, p.y!, outer, n, inner, op),
              ["y"],
              exact ? 0 : 2e-6 * n,
              exact ? 0 : 1e-6,
            );
          }
        }
      }
    }
  });

  it("propagates NaN for max/min", () => {
    const x = Float32Array.from([1, Number.NaN, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    for (const op of [RedOp.max, RedOp.min, RedOp.sum]) {
      for (const [n, inner] of [
        [12, 1],
        [3, 4],
        [2, 6],
      ] as const) {
        parity(
          `reduce nan ${op} ${n}x${inner}`,
          { x, y: new Float32Array(12 / n) },
          (k, p) => k.reduce(p.x!, p.y!, 1, n, inner, op),
          ["y"],
          0,
          0,
        );
      }
    }
  });
});

describe("fill", () => {
  it("writes the value to exactly n floats (zero, -0, a value; odd lengths)", () => {
    const r = rng(13);
    for (const n of [...SIZES, 130]) {
      for (const value of [0, -0, 1.5, Number.NaN]) {
        parity(`fill ${n} with ${value}`, { y: r.f32(n + 3) }, (k, p) => k.fill(p.y!, n, value), ["y"], 0, 0);
      }
    }
  });
});

describe("copy2d / transpose2d", () => {
  it("copy strided blocks exactly", () => {
    const r = rng(11);
    for (const rows of SIZES) {
      for (const cols of [1, 3, 17, 65]) {
        for (const [ldx, ldy] of [
          [cols, cols],
          [cols + 3, cols],
          [cols, cols + 5],
          [2 * cols + 1, cols + 7],
        ] as const) {
          const x = r.f32(rows * ldx);
          parity(
            `copy2d ${rows}x${cols} ${ldx}/${ldy}`,
            { x, y: r.f32(rows * ldy) },
            (k, p) => k.copy2d(p.x!, ldx, p.y!, ldy, rows, cols),
            ["y"],
            0,
            0,
          );
        }
      }
    }
  });

  it("transposes strided blocks exactly", () => {
    const r = rng(12);
    for (const rows of SIZES) {
      for (const cols of SIZES) {
        for (const [ldx, ldy] of [
          [cols, rows],
          [cols + 3, rows + 5],
        ] as const) {
          const x = r.f32(rows * ldx);
          parity(
            `transpose2d ${rows}x${cols} ${ldx}/${ldy}`,
            { x, y: r.f32(cols * ldy) },
            (k, p) => k.transpose2d(p.x!, ldx, p.y!, ldy, rows, cols),
            ["y"],
            0,
            0,
          );
        }
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// gather / im2colPatch

describe("gather", () => {
  it("gathers rows of random ids", () => {
    const r = rng(13);
    for (const dim of [1, 3, 4, 17, 64]) {
      for (const vocab of [1, 5, 129]) {
        const table = r.f32(vocab * dim);
        for (const n of [1, 5, 33]) {
          const ids = Int32Array.from({ length: n }, () => r.int(0, vocab));
          const { ret, out } = parity(
            `gather ${vocab}x${dim} n=${n}`,
            { table, ids, out: new Float32Array(n * dim) },
            (k, p) => k.gather(p.table!, vocab, dim, p.ids!, n, p.out!),
            ["out"],
            0,
            0,
          );
          expect(ret).toBe(-1);
          expect(out.out![dim * (n - 1)]).toBe(table[ids[n - 1]! * dim]);
        }
      }
    }
  });

  it("rejects out-of-range ids at the first bad position, without out-of-bounds reads", () => {
    const vocab = 7;
    const dim = 5;
    const table = rng(14).f32(vocab * dim);
    for (const bad of [-1, vocab, vocab + 1, 2 ** 31 - 1, -(2 ** 31), 1 << 28]) {
      for (const pos of [0, 2, 4]) {
        const ids = Int32Array.from([3, 0, 6, 1, 2]);
        ids[pos] = bad;
        const out = new Float32Array(5 * dim).fill(42);
        for (const rt of [ref, ...wasm]) {
          const got = exec(rt, { table, ids, out }, (k, p) => k.gather(p.table!, vocab, dim, p.ids!, 5, p.out!), [
            "out",
          ]);
          expect(got.ret, `${rt.backend} bad id ${bad} at ${pos}`).toBe(pos);
          const o = got.out.out as Float32Array;
          for (let t = 0; t < pos; t++)
            expect(Array.from(o.subarray(t * dim, (t + 1) * dim))).toEqual(
              Array.from(table.subarray(ids[t]! * dim, (ids[t]! + 1) * dim)),
            );
          expect(Array.from(o.subarray(pos * dim)).every((v) => v === 42)).toBe(true);
        }
      }
    }
  });
});

describe("im2colPatch", () => {
  it("matches ref for channels, sizes and patch sizes (partial patches ignored)", () => {
    const r = rng(15);
    for (const C of [1, 3]) {
      for (const [H, W] of [
        [5, 5],
        [17, 33],
        [33, 17],
        [32, 48],
      ] as const) {
        for (const k of [1, 2, 3, 4, 5, 16]) {
          if (k > Math.min(H, W)) continue;
          const x = r.f32(C * H * W);
          const rowsOut = Math.floor(H / k) * Math.floor(W / k);
          parity(
            `im2colPatch C${C} ${H}x${W} k${k}`,
            { x, out: new Float32Array(rowsOut * C * k * k) },
            (kk, p) => kk.im2colPatch(p.x!, C, H, W, k, p.out!),
            ["out"],
            0,
            0,
          );
        }
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// attention

describe("attention", () => {
  it("matches ref with masks, key padding, causal offsets and strided operands", () => {
    const r = rng(16);
    const shapes: [number, number, number, number][] = [
      [1, 1, 1, 1],
      [1, 17, 5, 3],
      [3, 5, 17, 33],
      [5, 5, 4, 4],
      [17, 33, 3, 5],
      [33, 65, 64, 64],
      [65, 65, 33, 17],
      [1, 129, 65, 1],
      [129, 129, 8, 8],
      [100, 150, 16, 16], // several causal row blocks with a key offset
    ];
    let caseNo = 0;
    for (const [L, S, dk, dv] of shapes) {
      for (const variant of ["plain", "mask", "shared-mask", "kpm", "causal", "causal-offset", "all"] as const) {
        caseNo++;
        const ldq = dk + (caseNo % 3);
        const ldk = dk + (caseNo % 2) * 2;
        const ldv = dv + (caseNo % 4);
        const ldo = dv + 1;
        const q = r.f32(L * ldq, -1, 1);
        const k = r.f32(S * ldk, -1, 1);
        const v = r.f32(S * ldv, -2, 2);
        const useMask = variant === "mask" || variant === "shared-mask" || variant === "all";
        const maskLd = variant === "shared-mask" ? 0 : S;
        const mask = r.f32(maskLd === 0 ? S : L * S, -1, 1);
        for (let i = 0; i < mask.length; i++) if (r.next() < 0.15) mask[i] = Number.NEGATIVE_INFINITY;
        const useKpm = variant === "kpm" || variant === "all";
        const kpm = Uint8Array.from({ length: S }, () => (r.next() < 0.3 ? 1 : 0));
        const causal =
          variant === "causal" ? 0 : variant === "causal-offset" || variant === "all" ? Math.max(0, S - L) : -1;
        const scale = 1 / Math.sqrt(dk);
        parity(
          `attention L${L} S${S} dk${dk} dv${dv} ${variant}`,
          { q, k, v, o: new Float32Array(L * ldo), probs: new Float32Array(L * S), mask, kpm },
          (kk, p) =>
            kk.attention(
              p.q!,
              ldq,
              p.k!,
              ldk,
              p.v!,
              ldv,
              p.o!,
              ldo,
              p.probs!,
              L,
              S,
              dk,
              dv,
              scale,
              useMask ? p.mask! : 0,
              maskLd,
              useKpm ? p.kpm! : 0,
              causal,
            ),
          ["o", "probs"],
          2e-6,
          2e-5,
        );
      }
    }
  });

  it("rows with every key blocked give zero weights and zero output; causal ignores later keys", () => {
    const L = 4;
    const S = 6;
    const d = 5;
    const r = rng(17);
    const q = r.f32(L * d);
    const k = r.f32(S * d);
    const v = r.f32(S * d);
    const kpm = new Uint8Array(S).fill(1);
    for (const rt of wasm) {
      const blocked = exec(
        rt,
        { q, k, v, o: new Float32Array(L * d).fill(9), probs: new Float32Array(L * S), kpm },
        (kk, p) => kk.attention(p.q!, d, p.k!, d, p.v!, d, p.o!, d, p.probs!, L, S, d, d, 0.5, 0, 0, p.kpm!, -1),
        ["o", "probs"],
      );
      expect(Array.from(blocked.out.o!).every((x) => x === 0)).toBe(true);
      expect(Array.from(blocked.out.probs!).every((x) => x === 0)).toBe(true);
      // causal: changing keys/values after position i must not change query i's output
      const k2 = k.slice();
      const v2 = v.slice();
      for (let j = 2; j < S; j++)
        for (let p = 0; p < d; p++) {
          k2[j * d + p] = 100;
          v2[j * d + p] = -100;
        }
      const run = (kk: Float32Array, vv: Float32Array) =>
        exec(
          rt,
          { q, k: kk, v: vv, o: new Float32Array(L * d), probs: new Float32Array(L * S) },
          (kx, p) => kx.attention(p.q!, d, p.k!, d, p.v!, d, p.o!, d, p.probs!, L, S, d, d, 0.5, 0, 0, 0, 0),
          ["o"],
        ).out.o!;
      const a = run(k, v);
      const b = run(k2, v2);
      expect(Array.from(a.subarray(0, 2 * d))).toEqual(Array.from(b.subarray(0, 2 * d)));
    }
  });
});

describe("degenerate sizes", () => {
  it("zero-length axes behave like the reference", () => {
    const r = rng(21);
    for (const [L, S, dk, dv] of [
      [20, 7, 0, 5],
      [20, 7, 5, 0],
      [3, 7, 0, 4],
      [20, 1, 3, 3],
    ] as const) {
      parity(
        `attention L${L} S${S} dk${dk} dv${dv}`,
        {
          q: r.f32(L * dk + 1),
          k: r.f32(S * dk + 1),
          v: r.f32(S * dv + 1),
          o: new Float32Array(L * dv + 1),
          probs: new Float32Array(L * S),
        },
        (kk, p) => kk.attention(p.q!, dk, p.k!, dk, p.v!, dv, p.o!, dv, p.probs!, L, S, dk, dv, 0.5, 0, 0, 0, -1),
        ["o", "probs"],
        1e-6,
        1e-5,
      );
    }
    const x = r.f32(12);
    for (const op of Object.values(RedOp)) {
      parity(
        `reduce n=0 op ${op}`,
        { x, y: new Float32Array(8) },
        (k, p) => k.reduce(p.x!, p.y!, 2, 0, 4, op),
        ["y"],
        0,
        0,
      );
      parity(
        `reduce n=0 inner=1 op ${op}`,
        { x, y: new Float32Array(3) },
        (k, p) => k.reduce(p.x!, p.y!, 3, 0, 1, op),
        ["y"],
        0,
        0,
      );
    }
    parity("softmax cols=0", { x }, (k, p) => k.softmax(p.x!, p.x!, 3, 0, 4, 0, 0), ["x"], 0, 0);
    parity(
      "topk n=0",
      { x, idx: new Int32Array(3), val: new Float32Array(3) },
      (k, p) => k.topk(p.x!, 0, 3, p.idx!, p.val!),
      ["idx", "val"],
      0,
      0,
    );
    parity(
      "gather dim=0",
      { t: x, ids: Int32Array.from([0, 2, 5]), out: new Float32Array(1) },
      (k, p) => k.gather(p.t!, 3, 0, p.ids!, 3, p.out!),
      ["out"],
      0,
      0,
    );
  });
});

describe("attention (property)", () => {
  fcTest.prop([
    fc.record({
      L: fc.integer({ min: 1, max: 40 }),
      S: fc.integer({ min: 1, max: 40 }),
      dk: fc.integer({ min: 1, max: 24 }),
      dv: fc.integer({ min: 1, max: 24 }),
      causal: fc.integer({ min: -1, max: 8 }),
      useMask: fc.boolean(),
      useKpm: fc.boolean(),
      seed: fc.integer({ min: 1, max: 1 << 30 }),
    }),
  ])("wasm equals ref on random shapes and masks", ({ L, S, dk, dv, causal, useMask, useKpm, seed }) => {
    const r = rng(seed);
    const mask = r.f32(L * S, -2, 2);
    for (let i = 0; i < mask.length; i++) if (r.next() < 0.2) mask[i] = Number.NEGATIVE_INFINITY;
    const kpm = Uint8Array.from({ length: S }, () => (r.next() < 0.25 ? 1 : 0));
    parity(
      `attention fc L${L} S${S} dk${dk} dv${dv} causal ${causal}`,
      {
        q: r.f32(L * dk),
        k: r.f32(S * dk),
        v: r.f32(S * dv),
        o: new Float32Array(L * dv),
        probs: new Float32Array(L * S),
        mask,
        kpm,
      },
      (kk, p) =>
        kk.attention(
          p.q!,
          dk,
          p.k!,
          dk,
          p.v!,
          dv,
          p.o!,
          dv,
          p.probs!,
          L,
          S,
          dk,
          dv,
          1 / Math.sqrt(dk),
          useMask ? p.mask! : 0,
          S,
          useKpm ? p.kpm! : 0,
          causal,
        ),
      ["o", "probs"],
      2e-6,
      2e-5,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// rnn cells

describe("lstmCell / gruCell / rnnSteps", () => {
  it("lstmCell matches ref", () => {
    const r = rng(18);
    for (const batch of [1, 3, 5]) {
      for (const H of SIZES) {
        const ldh = H + (batch % 2) * 3;
        const gates = r.f32(batch * 4 * H, -4, 4);
        const c = r.f32(batch * H, -2, 2);
        const h = r.f32(batch * ldh);
        parity(
          `lstmCell b${batch} H${H}`,
          { gates, c, h },
          (k, p) => k.lstmCell(p.gates!, p.c!, p.h!, ldh, H, batch),
          ["c", "h"],
          1e-6,
          2e-6,
        );
      }
    }
  });

  it("rnnSteps (RNN tanh/relu, LSTM, GRU; 1–2 rows, forward and reverse, strided output) matches ref", () => {
    const r = rng(20);
    const rowsSize = (N: number, K: number) => Math.ceil(N / 24) * 24 * Math.ceil(K / 4) * 4;
    for (const [mode, act, G] of [
      [0, Act.tanh, 1],
      [0, Act.relu, 1],
      [1, 0, 4],
      [2, 0, 3],
    ] as const) {
      for (const H of [1, 5, 17, 33, 50]) {
        for (const [B, T, reverse] of [
          [1, 1, 0],
          [1, 7, 1],
          [2, 6, 0],
        ] as const) {
          const GH = G * H;
          // a bidirectional layer's layout: this direction's units at offset H of rows of 2H
          const so = 2 * H;
          const ldo = T * so;
          const w = r.f32(GH * H, -0.5, 0.5);
          parity(
            `rnnSteps mode ${mode} act ${act} H${H} B${B} T${T} rev${reverse}`,
            {
              w,
              pw: new Float32Array(G * rowsSize(H, H)),
              bias: r.f32(GH, -0.5, 0.5),
              xproj: r.f32(T * B * GH, -2, 2),
              gh: new Float32Array(B * GH),
              c: r.f32(B * H, -1, 1),
              h0: r.f32(B * H, -1, 1),
              out: new Float32Array(B * ldo),
            },
            (k, p) => {
              for (let q = 0; q < G; q++) k.packRows(H, H, p.w! + q * H * H * 4, H, p.pw! + q * rowsSize(H, H) * 4);
              k.rnnSteps(
                mode,
                act,
                reverse,
                T,
                B,
                H,
                p.pw!,
                p.bias!,
                p.xproj!,
                p.gh!,
                p.c!,
                p.h0!,
                p.out! + H * 4,
                so,
                ldo,
                0,
                0,
                1,
              );
            },
            mode === 1 ? ["out", "c"] : ["out"],
            1e-5,
            1e-5,
          );
        }
      }
    }
  });

  it("gruCell matches ref, also with hOut aliasing hPrev", () => {
    const r = rng(19);
    for (const batch of [1, 3, 5]) {
      for (const H of SIZES) {
        const ldp = H + (batch === 3 ? 2 : 0);
        const ldo = H + (batch === 5 ? 1 : 0);
        const gx = r.f32(batch * 3 * H, -4, 4);
        const gh = r.f32(batch * 3 * H, -4, 4);
        const hPrev = r.f32(batch * ldp, -1, 1);
        parity(
          `gruCell b${batch} H${H}`,
          { gx, gh, hPrev, hOut: new Float32Array(batch * ldo) },
          (k, p) => k.gruCell(p.gx!, p.gh!, p.hPrev!, ldp, p.hOut!, ldo, H, batch),
          ["hOut"],
          1e-6,
          2e-6,
        );
        parity(
          `gruCell b${batch} H${H} aliased`,
          { gx, gh, hPrev },
          (k, p) => k.gruCell(p.gx!, p.gh!, p.hPrev!, ldp, p.hPrev!, ldp, H, batch),
          ["hPrev"],
          1e-6,
          2e-6,
        );
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// topk

describe("topk", () => {
  it("matches ref exactly: descending, ties by lower index, NaN skipped, short inputs padded", () => {
    const r = rng(20);
    for (const n of [...SIZES, 1000, 5000]) {
      for (const kind of ["random", "ties", "nan"] as const) {
        const x = Float32Array.from({ length: n }, () => (kind === "ties" ? r.int(-3, 4) : r.uniform(-100, 100)));
        if (kind === "nan") {
          for (let i = 0; i < n; i++) {
            const u = r.next();
            if (u < 0.2) x[i] = Number.NaN;
            else if (u < 0.25) x[i] = Number.NEGATIVE_INFINITY;
            else if (u < 0.27) x[i] = Number.POSITIVE_INFINITY;
          }
        }
        for (const k of [1, 3, 5, 17, n, n + 3]) {
          parity(
            `topk n=${n} k=${k} ${kind}`,
            { x, idx: new Int32Array(k), val: new Float32Array(k) },
            (kk, p) => kk.topk(p.x!, n, k, p.idx!, p.val!),
            ["idx", "val"],
            0,
            0,
          );
        }
      }
    }
  });

  it("all-NaN input gives idx −1 / val −∞", () => {
    const x = new Float32Array(9).fill(Number.NaN);
    for (const rt of wasm) {
      const { out } = exec(
        rt,
        { x, idx: new Int32Array(4), val: new Float32Array(4) },
        (k, p) => k.topk(p.x!, 9, 4, p.idx!, p.val!),
        ["idx", "val"],
      );
      expect(Array.from(out.idx!)).toEqual([-1, -1, -1, -1]);
      expect(Array.from(out.val!)).toEqual([-Infinity, -Infinity, -Infinity, -Infinity]);
    }
  });

  fcTest.prop([fc.array(fc.float(), { minLength: 0, maxLength: 60 }), fc.integer({ min: 1, max: 70 })])(
    "wasm equals ref on arbitrary floats",
    (vals, k) => {
      const x = Float32Array.from(vals);
      parity(
        `topk fc`,
        { x, idx: new Int32Array(k), val: new Float32Array(k) },
        (kk, p) => kk.topk(p.x!, x.length, k, p.idx!, p.val!),
        ["idx", "val"],
        0,
        0,
      );
    },
  );
});
