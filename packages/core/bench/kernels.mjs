// Throughput of the non-GEMM kernels (softmax, layerNorm, unary activations, attention, topk, transpose)
// in the plain-SIMD and relaxed-SIMD builds, next to a straightforward JS Float32Array loop for the same
// op (what the kernels replace) and @tensorflow/tfjs-backend-wasm (single-threaded SIMD build) where it
// has the op (softmax, exp, tanh, sigmoid, transpose; its tensors live on its backend, outputs are disposed). Single thread; the fastest of ROUNDS timed batches (robust on a
// shared, loaded machine; medians there mostly measure the neighbours). Not a test.
//
//   node --experimental-wasm-relaxed-simd bench/kernels.mjs        (after `pnpm run asbuild`)
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";

const ROUNDS = Number(process.env.ROUNDS ?? 15);
const BATCH_MS = Number(process.env.BATCH_MS ?? 60);

async function load(file) {
  const bytes = readFileSync(new URL(`../build/${file}`, import.meta.url));
  const { instance } = await WebAssembly.instantiate(bytes, {
    env: {
      abort() {
        throw new Error("abort");
      },
      seed: () => 0,
    },
  });
  const ex = instance.exports;
  let top = (ex.heapBase() + 15) & ~15;
  const alloc = (floats) => {
    const p = top;
    top += Math.ceil((floats * 4) / 16) * 16;
    const have = ex.memory.buffer.byteLength;
    if (top > have) ex.memory.grow(Math.ceil((top - have) / 65536));
    return p;
  };
  const f32 = (p, n) => new Float32Array(ex.memory.buffer, p, n);
  return { ex, alloc, f32 };
}

/** Fastest batch: time per call in µs. */
function time(fn) {
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    if (performance.now() - t0 > BATCH_MS / 4) break;
    reps *= 2;
  }
  reps = Math.max(1, Math.round(reps * 4));
  const ts = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    ts.push(((performance.now() - t0) * 1000) / reps);
  }
  return Math.min(...ts);
}

const rand = (n, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * Math.random());

// ---- JS baselines (f32 arrays, Math.* in f64), the loops the kernels replace
const js = {
  softmax(x, rows, cols) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let m = -Infinity;
      for (let j = 0; j < cols; j++) if (x[o + j] > m) m = x[o + j];
      let s = 0;
      for (let j = 0; j < cols; j++) s += x[o + j] = Math.exp(x[o + j] - m);
      for (let j = 0; j < cols; j++) x[o + j] /= s;
    }
  },
  layerNorm(x, y, rows, d, g, b) {
    for (let r = 0; r < rows; r++) {
      const o = r * d;
      let m = 0;
      for (let j = 0; j < d; j++) m += x[o + j];
      m /= d;
      let v = 0;
      for (let j = 0; j < d; j++) v += (x[o + j] - m) ** 2;
      const inv = 1 / Math.sqrt(v / d + 1e-5);
      for (let j = 0; j < d; j++) y[o + j] = (x[o + j] - m) * inv * g[j] + b[j];
    }
  },
  geluTanh(x, y) {
    const c = Math.sqrt(2 / Math.PI);
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      y[i] = 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v * v * v)));
    }
  },
  exp(x, y) {
    for (let i = 0; i < x.length; i++) y[i] = Math.exp(x[i]);
  },
};

const require = createRequire(import.meta.url);
const tf = await import("@tensorflow/tfjs-core");
const tfwasm = await import("@tensorflow/tfjs-backend-wasm");
tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
tfwasm.setThreadsCount(1);
tfwasm.setWasmPaths(`${dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm"))}/`);
if (!(await tf.setBackend("wasm"))) throw new Error("tfjs wasm backend failed to initialise");
await tf.ready();
/** Time a tfjs op on a resident tensor (output disposed). */
const tfTime = (t, op) => time(() => op(t).dispose());

const builds = [["simd", await load("core.wasm")]];
try {
  builds.push(["relaxed", await load("core-relaxed.wasm")]);
} catch {
  console.log("(relaxed build not loadable: run with --experimental-wasm-relaxed-simd)");
}

const rows = [];
function row(name, work, jsUs, results, tfUs = NaN) {
  rows.push({ name, work, js: jsUs, tf: tfUs, ...results });
}

// softmax: 12 heads × 197 rows of 197 (ViT-B/16 attention), and one GPT-2 vocab row
for (const [R, C] of [
  [12 * 197, 197],
  [1, 50257],
]) {
  const x0 = rand(R * C, -8, 8);
  const jx = x0.slice();
  const jsUs = time(() => {
    jx.set(x0);
    js.softmax(jx, R, C);
  });
  const res = {};
  for (const [name, { ex, alloc, f32 }] of builds) {
    const src = alloc(R * C),
      p = alloc(R * C);
    f32(src, R * C).set(x0);
    res[name] = time(() => ex.softmax(src, p, R, C, C, 0, 0));
  }
  const t = tf.tensor2d(x0, [R, C]);
  row(
    `softmax ${R}x${C}`,
    R * C,
    jsUs,
    res,
    tfTime(t, (a) => tf.softmax(a)),
  );
  t.dispose();
}

// layerNorm 197×768 (ViT-B), 1024×768
for (const [R, D] of [
  [197, 768],
  [1024, 768],
]) {
  const x0 = rand(R * D, -3, 3),
    g = rand(D),
    b = rand(D);
  const jy = new Float32Array(R * D);
  const jsUs = time(() => js.layerNorm(x0, jy, R, D, g, b));
  const res = {};
  for (const [name, { ex, alloc, f32 }] of builds) {
    const px = alloc(R * D),
      py = alloc(R * D),
      pg = alloc(D),
      pb = alloc(D);
    f32(px, R * D).set(x0);
    f32(pg, D).set(g);
    f32(pb, D).set(b);
    res[name] = time(() => ex.layerNorm(px, py, R, D, pg, pb, 1e-5));
  }
  row(`layerNorm ${R}x${D}`, R * D, jsUs, res);
}

// unary on 197×3072 (ViT-B MLP hidden)
{
  const n = 197 * 3072;
  const x0 = rand(n, -6, 6);
  const jy = new Float32Array(n);
  for (const [act, code, base] of [
    ["gelu", 2, null],
    ["gelu_tanh", 3, js.geluTanh],
    ["silu", 4, null],
    ["tanh", 5, null],
    ["sigmoid", 6, null],
    ["exp", 7, js.exp],
  ]) {
    const jsUs = base ? time(() => base(x0, jy)) : NaN;
    const res = {};
    for (const [name, { ex, alloc, f32 }] of builds) {
      const px = alloc(n),
        py = alloc(n);
      f32(px, n).set(x0);
      res[name] = time(() => ex.unary(px, py, n, code));
    }
    const tfOp = { tanh: tf.tanh, exp: tf.exp, sigmoid: tf.sigmoid }[act];
    const t = tf.tensor1d(x0);
    row(`unary ${act} ${n}`, n, jsUs, res, tfOp ? tfTime(t, tfOp) : NaN);
    t.dispose();
  }
}

// attention for one head: ViT (L=S=197, d=64), GPT-2 decode (L=1, S=1024, causal), prefill (L=S=512, causal)
for (const [L, S, d, causal] of [
  [197, 197, 64, -1],
  [1, 1024, 64, 1023],
  [512, 512, 64, 0],
]) {
  const res = {};
  for (const [name, { ex, alloc, f32 }] of builds) {
    const q = alloc(L * d),
      k = alloc(S * d),
      v = alloc(S * d),
      o = alloc(L * d),
      pr = alloc(L * S);
    f32(q, L * d).set(rand(L * d));
    f32(k, S * d).set(rand(S * d));
    f32(v, S * d).set(rand(S * d));
    res[name] = time(() => ex.attention(q, d, k, d, v, d, o, d, pr, L, S, d, d, 0.125, 0, 0, 0, causal));
  }
  row(`attention L${L} S${S} d${d}${causal >= 0 ? " causal" : ""}`, L * S * d * 2, NaN, res);
}

// topk over a vocab row
{
  const n = 50257,
    k = 50;
  const x0 = rand(n, -10, 10);
  const jsUs = time(() => {
    const idx = Array.from({ length: n }, (_, i) => i);
    idx.sort((a, b) => x0[b] - x0[a] || a - b);
    return idx.slice(0, k);
  });
  const res = {};
  for (const [name, { ex, alloc, f32 }] of builds) {
    const px = alloc(n),
      pi = alloc(k),
      pv = alloc(k);
    f32(px, n).set(x0);
    res[name] = time(() => ex.topk(px, n, k, pi, pv));
  }
  row(`topk n${n} k${k}`, n, jsUs, res);
}

// transpose 768×768
{
  const n = 768;
  const x0 = rand(n * n);
  const jy = new Float32Array(n * n);
  const jsUs = time(() => {
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) jy[c * n + r] = x0[r * n + c];
  });
  const res = {};
  for (const [name, { ex, alloc, f32 }] of builds) {
    const px = alloc(n * n),
      py = alloc(n * n);
    f32(px, n * n).set(x0);
    res[name] = time(() => ex.transpose2d(px, n, py, n, n, n));
  }
  const t = tf.tensor2d(x0, [n, n]);
  row(
    `transpose2d ${n}x${n}`,
    n * n,
    jsUs,
    res,
    tfTime(t, (a) => tf.transpose(a)),
  );
  t.dispose();
}

const fmt = (us) =>
  Number.isNaN(us) || us === undefined ? "—" : us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(1)} µs`;
console.log(`| kernel | JS loop | tfjs-wasm | wasm simd | wasm relaxed | simd vs JS | simd vs tfjs |`);
console.log(`|---|---|---|---|---|---|---|`);
const ratio = (a, b) => (Number.isNaN(a) ? "—" : `${(a / b).toFixed(1)}×`);
for (const r of rows) {
  console.log(
    `| ${r.name} | ${fmt(r.js)} | ${fmt(r.tf)} | ${fmt(r.simd)} | ${fmt(r.relaxed)} | ${ratio(r.js, r.simd)} | ${ratio(r.tf, r.simd)} |`,
  );
}
