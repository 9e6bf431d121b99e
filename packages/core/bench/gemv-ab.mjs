// A/B of gemvRows (the one-row product on a weight packed by packRows) between wasm builds of
// @wasmformer/core, in one process, interleaved round by round (the order rotates), CPU-time medians.
// Each timed batch calls gemvRows on the same weight again and again, as an RNN's steps do. Build each
// variant, copy its build/core-relaxed.wasm (or core.wasm) aside, then
//
//   node --experimental-wasm-relaxed-simd bench/gemv-ab.mjs /tmp/a/core-relaxed.wasm /tmp/b/core-relaxed.wasm
//   SHAPES=1024x256,3072x768 ROUNDS=31 node --experimental-wasm-relaxed-simd bench/gemv-ab.mjs …
//
// Shapes are N×K (a Linear weight [out, in]). A file whose name contains "relaxed" is loaded as the
// relaxed-SIMD build. Not a test.
import { readFileSync } from "node:fs";

const core = await import("@wasmformer/core");
const files = process.argv.slice(2);
if (files.length === 0) throw new Error("usage: gemv-ab.mjs <core.wasm> [<core.wasm> …]");
const rts = [];
for (const f of files) {
  const relaxed = f.includes("relaxed");
  const bytes = readFileSync(f);
  await core.init(relaxed ? { backend: "wasm-relaxed", wasmRelaxed: bytes } : { backend: "wasm-simd", wasm: bytes });
  rts.push(core.createRuntime());
}
const shapes = (process.env.SHAPES ?? "1024x256,768x256,1024x128,2304x768,3072x768,768x3072")
  .split(",")
  .map((s) => s.split("x").map(Number));
const ROUNDS = Number(process.env.ROUNDS ?? 21);
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];

function rand(n, seed) {
  // xorshift32, deterministic inputs in [-1, 1)
  let x = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

console.log(
  `# gemvRows GFLOP/s (µs per call), CPU time, median of ${ROUNDS} interleaved rounds; columns: ${files.join("  ")}`,
);
for (const [N, K] of shapes) {
  const W = rand(N * K, 3);
  const X = rand(K, 4);
  const runs = rts.map(({ k, heap: h }) => {
    const w = h.put(W);
    const x = h.put(X);
    const pw = h.allocF32(k.packedRowsSize(N, K));
    const y = h.allocF32(N);
    k.packRows(N, K, w, K, pw);
    const fn = () => k.gemvRows(N, K, x, pw, y, 0, 0, 0);
    // warm-up, then about 40 ms per timed batch
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < 100) {
      fn();
      n++;
    }
    return { fn, reps: Math.max(1, Math.round((40 * n) / (performance.now() - t0))), times: [] };
  });
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < runs.length; i++) {
      const run = runs[(i + r) % runs.length];
      const s = cpuSeconds();
      for (let q = 0; q < run.reps; q++) run.fn();
      run.times.push((cpuSeconds() - s) / run.reps);
    }
  }
  const cells = runs.map((r) => {
    const t = median(r.times);
    return `${((2 * N * K) / t / 1e9).toFixed(1)} (${(t * 1e6).toFixed(2)} µs)`;
  });
  console.log(`${N}×${K}`.padEnd(12), cells.join("  "));
}
