// Accuracy of the vector activations (`unary`) against float64: max relative error over dense
// sweeps of [−20, 20] and [−120, 90] (log: (0, 2], (0, 1e30], [0.5, 1.5]), normal results only.
// The figures in assembly/inline/vmath.ts come from here. Not a test (the parity tests use ref.ts).
//
//   node bench/vmath-accuracy.mjs [build/core.wasm]
//   node --experimental-wasm-relaxed-simd bench/vmath-accuracy.mjs build/core-relaxed.wasm
import { readFileSync } from "node:fs";

const file = new URL(`../${process.argv[2] ?? "build/core.wasm"}`, import.meta.url);
const imports = {
  env: {
    abort: () => {
      throw new Error("abort");
    },
    seed: () => 0,
  },
};
const { instance } = await WebAssembly.instantiate(readFileSync(file), imports);
const ex = instance.exports;

// float64 references (erfc with full relative accuracy in the tail, as src/math.ts)
function erf(x) {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let t = ax;
    let s = ax;
    for (let n = 1; n < 60; n++) {
      t *= (-ax * ax) / n;
      const a = t / (2 * n + 1);
      s += a;
      if (Math.abs(a) < 1e-17 * Math.abs(s)) break;
    }
    const r = (2 / Math.sqrt(Math.PI)) * s;
    return x < 0 ? -r : r;
  }
  return x < 0 ? erfc(ax) - 1 : 1 - erfc(ax);
}
function erfc(x) {
  if (x < 2.5) return 1 - erf(x);
  if (x > 27) return 0;
  let cf = 0;
  for (let n = 60; n >= 1; n--) cf = n / 2 / (x + cf);
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / (x + cf);
}
const C = Math.sqrt(2 / Math.PI);
const fns = {
  gelu: [2, (x) => 0.5 * x * erfc(-x * Math.SQRT1_2)],
  gelu_tanh: [3, (x) => x / (1 + Math.exp(-2 * C * (x + 0.044715 * x * x * x)))],
  silu: [4, (x) => x / (1 + Math.exp(-x))],
  tanh: [5, Math.tanh],
  sigmoid: [6, (x) => 1 / (1 + Math.exp(-x))],
  exp: [7, Math.exp],
  log: [11, Math.log],
};

const N = 1 << 20;
const base = (ex.heapBase() + 15) & ~15;
const need = base + 8 * N;
if (ex.memory.buffer.byteLength < need) ex.memory.grow(Math.ceil((need - ex.memory.buffer.byteLength) / 65536));
const xs = new Float32Array(ex.memory.buffer, base, N);
const ys = new Float32Array(ex.memory.buffer, base + 4 * N, N);
for (const [name, [code, fn]] of Object.entries(fns)) {
  let worst = 0;
  let at = 0;
  const ranges =
    code === 11
      ? [
          [0, 2],
          [0, 1e30],
          [0.5, 1.5],
        ]
      : [
          [-20, 20],
          [-120, 90],
        ];
  for (const [lo, hi] of ranges) {
    for (let i = 0; i < N; i++) xs[i] = lo + ((hi - lo) * i) / N;
    ex.unary(base, base + 4 * N, N, code);
    for (let i = 0; i < N; i++) {
      const e = Math.fround(fn(xs[i]));
      if (Math.abs(e) < 1.1754943508222875e-38 || !Number.isFinite(e)) continue;
      const r = Math.abs(ys[i] - e) / Math.abs(e);
      if (r > worst) {
        worst = r;
        at = xs[i];
      }
    }
  }
  console.log(`${name.padEnd(10)} max rel err ${worst.toExponential(2)} at x = ${at}`);
}
